"""One runner for every experiment: the machinery they share, once.

An experiment module holds only its own logic, as a subclass of :class:`Experiment` registered
under the ``experiment = "..."`` key of its TOML file (:mod:`hil.experiments.registry`). This
module does everything else, identically for all of them (the plan / engine split of Bluesky):

* the run file: :meth:`RunStore.create` with the experiment's stored configuration, seed,
  backend and instrument identities (nothing is written until the configuration is valid, the
  data are loaded and the arrays are open), or :meth:`RunStore.resume`;
* the arrays attached to the store, so every device operation is logged with its array;
* a checkpoint **before the first stage** (a run killed during its first stage resumes) and after
  every stage; ``resume`` continues from the last one bit-identically (all state the experiment
  returns from :meth:`Experiment.state`);
* the progress bar (tqdm): the stage's name in the description, the experiment's running
  metrics as postfix;
* the arrays closed (outputs off) on every exit path: completion, a stop, an exception,
  Ctrl-C; the file's ``status`` says which (``complete``, ``stopped``, ``failed: <Error>``);
* the final metrics (:meth:`Experiment.summary` -> ``/metrics/final.<name>``) and the figures
  (:meth:`Experiment.report`) at the end.

The contract an experiment implements
-------------------------------------
::

    @registry.register            # or listed in registry.BUILTIN
    class MyExperiment(Experiment):
        name = "my-experiment"    # the TOML `experiment` key
        config_type = MyConfig    # frozen dataclass tree; gives schema_paths() for free

        @classmethod
        def parse_config(cls, data, base_dir):   # raw dict (no `experiment` key) -> cfg;
            ...                                  # raises ConfigError(field, value, allowed);
                                                 # rejects unknown keys by dotted name
        def __init__(self, cfg, *, arrays=None): # load data, open arrays; write nothing
        def arrays(self) -> dict[str, CrossbarArray]   # attached to the store, closed by the runner
        def stages(self) -> list[str]            # checkpoint boundaries, in order
        def stage_work(self, i) -> int           # progress units of stage i (default 1)
        def run_stage(self, i, ctx)              # ctx.metric / .snapshot / .advance / .postfix
        def state(self) -> (dict[str, ndarray], dict)   # everything to resume bit-identically
        def load_state(self, arrays, meta)
        def summary(self) -> dict[str, float]    # written as /metrics/final.<key> when complete
        @classmethod
        def report(cls, reader, out_dir, stem) -> list[Path]   # PNG figures of a run file

Run-level facts come from the configuration by convention: ``cfg.out`` (run file), ``cfg.seed``,
``cfg.overwrite``, ``cfg.name`` (progress-bar label) and ``cfg.to_dict()`` (stored JSON, with the
``experiment`` key; ``parse_config`` must accept it back, as ``resume`` rebuilds the
configuration from it). Override :meth:`Experiment.out_path` etc. for another layout. ``state()``
may use any array names (``"learner/w0"``); the runner stores them under safe names and
restores the originals. ``meta`` must be JSON-ready. The experiment must not checkpoint, close
arrays or open the store itself.

Entry points: :func:`start` (a new run from a validated config), :func:`resume` (a run file),
:func:`run_file` (a TOML file), all returning an :class:`Outcome`. ``stop_after=n`` stops after
``n`` stages in total (an interruption on purpose, for tests and staged work).
"""

from __future__ import annotations

import json
import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from drivers.array import CrossbarArray
from hil import provenance
from hil.experiments import registry
from hil.experiments.schema import ConfigError, schema_paths
from hil.store import RunFinishedError, RunReader, RunStore, open_run

log = logging.getLogger(__name__)

__all__ = ["Experiment", "StageContext", "Outcome", "RunnerError", "start", "resume", "run_file", "set_dotted"]


class RunnerError(ValueError):
    """A run cannot start or resume (no checkpoint, a file from another version, ...)."""


class StageContext:
    """What a stage may do with the run: log metrics and snapshots, move the progress bar.

    Args:
        store: the run store (``None``: metrics are dropped, for unit tests of an experiment).
        bar: the progress bar (``None``: no bar).
        stage: index of the running stage; ``stage_name`` its name.
        step: the last metric step logged so far (continues across a resume).
    """

    def __init__(self, store: RunStore | None, bar: Any | None, stage: int, stage_name: str, step: int = 0) -> None:
        self.store = store
        self.bar = bar
        self.stage = stage
        self.stage_name = stage_name
        self.step = step

    def metric(self, name: str, value: float, *, step: int | None = None, epoch: int | None = None) -> None:
        """Append ``value`` to ``/metrics/<name>`` at ``step`` (default: the last step given) and
        ``epoch`` (default: the number of this stage, 1-based)."""
        if step is not None:
            self.step = int(step)
        if self.store is not None:
            self.store.metric(name, self.step, self.stage + 1 if epoch is None else int(epoch), float(value))

    def snapshot(self, name: str, g_map: np.ndarray, time_s: float) -> None:
        """Append a 2-D map (e.g. conductances, S) to ``/snapshots/<name>`` at bench time ``time_s`` (s)."""
        if self.store is not None:
            self.store.snapshot(name, g_map, time_s)

    def advance(self, n: int = 1) -> None:
        """Move the progress bar by ``n`` work units (see :meth:`Experiment.stage_work`)."""
        if self.bar is not None:
            self.bar.update(n)

    def postfix(self, values: dict[str, Any]) -> None:
        """Show running metrics beside the bar (floats are shown with 3 significant digits)."""
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.3g}" if isinstance(v, float) else v for k, v in values.items()}, refresh=False)

    def flush(self) -> None:
        if self.store is not None:
            self.store.flush()


class Experiment(ABC):
    """An experiment: its configuration schema, its stages and its state (see the module doc)."""

    #: the TOML ``experiment`` key
    name: ClassVar[str]
    #: the dataclass of the validated configuration (for :meth:`schema_paths`)
    config_type: ClassVar[type | None] = None

    cfg: Any

    # ------------------------------------------------------------------ configuration
    @classmethod
    @abstractmethod
    def parse_config(cls, data: dict[str, Any], base_dir: Path | None) -> Any:
        """Validate a raw mapping (the TOML file without its ``experiment`` key) into a config."""

    @classmethod
    def schema_paths(cls) -> list[str]:
        """Every dotted key the configuration accepts (``"learning.m_star"``), e.g. for sweep grids."""
        if cls.config_type is None:
            raise NotImplementedError(f"{cls.__name__} has no config_type; override schema_paths()")
        return schema_paths(cls.config_type)

    def config_dict(self) -> dict[str, Any]:
        """The configuration as stored in the run file (JSON-ready, with the ``experiment`` key)."""
        d = dict(self.cfg.to_dict())
        d["experiment"] = self.name
        return d

    def out_path(self) -> Path:
        return Path(self.cfg.out)

    def seed(self) -> int | None:
        return getattr(self.cfg, "seed", None)

    def overwrite(self) -> bool:
        return bool(getattr(self.cfg, "overwrite", False))

    def label(self) -> str:
        return str(getattr(self.cfg, "name", self.name))

    def backend(self) -> str:
        """``"sim"``, ``"bench"`` or ``"software"`` (root attribute of the run file)."""
        return "sim"

    def log_ops(self) -> bool:
        """Whether the arrays' device operations are logged to ``/ops``."""
        return True

    # ------------------------------------------------------------------ the run
    @abstractmethod
    def arrays(self) -> dict[str, CrossbarArray]:
        """The open arrays by name; the runner attaches them to the store and closes them."""

    @abstractmethod
    def stages(self) -> list[str]:
        """Names of the stages, in order; a checkpoint follows each."""

    def stage_work(self, i: int) -> int:
        """Progress-bar units of stage ``i`` (what the stage passes to ``ctx.advance``)."""
        return 1

    def total_work(self) -> int:
        return sum(self.stage_work(i) for i in range(len(self.stages())))

    def checkpoint_after(self, i: int) -> bool:
        """Whether to checkpoint after stage ``i`` (default: always)."""
        return True

    @abstractmethod
    def run_stage(self, i: int, ctx: StageContext) -> None:
        """Run stage ``i`` from the current state."""

    @abstractmethod
    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(arrays, JSON-ready meta): everything needed to continue bit-identically."""

    @abstractmethod
    def load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned."""

    def summary(self) -> dict[str, float]:
        """Final scalar results (``/metrics/final.<key>``), after the last stage."""
        return {}

    def describe(self) -> list[str]:
        """Lines the command line prints after the run (default: the summary)."""
        return [f"  {k}: {v:.6g}" for k, v in self.summary().items()]

    @classmethod
    def report(cls, reader: RunReader, out_dir: Path, stem: str) -> list[Path]:
        """PNG figures of a run file of this experiment (default: none)."""
        return []


@dataclass
class Outcome:
    """What :func:`start` / :func:`resume` return.

    Attributes:
        path: the run file.
        experiment: the experiment object in its final state.
        complete: every stage ran.
        stages_done: stages completed (over the whole run, resumes included).
        summary: :meth:`Experiment.summary` (empty unless complete).
        figures: PNG files drawn.
        wall_time: s, of this invocation.
    """

    path: Path
    experiment: Experiment
    complete: bool
    stages_done: int
    summary: dict[str, float] = field(default_factory=dict)
    figures: list[Path] = field(default_factory=list)
    wall_time: float = 0.0


# ---------------------------------------------------------------------- checkpoints
def _encode(arrays: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], list[str]]:
    names = list(arrays)
    safe = {f"{k:04d}_{n.replace('/', '|').lstrip('.')}": np.asarray(arrays[n]) for k, n in enumerate(names)}
    return safe, names


def _decode(stored: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
    by_index = {int(k.split("_", 1)[0]): v for k, v in stored.items()}
    return {n: by_index[k] for k, n in enumerate(names)}


def _checkpoint(store: RunStore, exp: Experiment, next_stage: int, step: int) -> None:
    arrays, meta = exp.state()
    safe, names = _encode(arrays)
    store.checkpoint(safe, {"runner": {"next_stage": next_stage, "step": step, "names": names,
                                       "experiment": exp.name}, "experiment": meta})


def _close_arrays(exp: Experiment | None, arrays: dict[str, CrossbarArray] | None = None) -> None:
    """Close every array (outputs off), even if one of them fails; re-raise the first failure."""
    if arrays is None:
        try:
            arrays = exp.arrays() if exp is not None else {}
        except Exception:  # noqa: BLE001 - a broken experiment must not keep instruments on
            log.exception("could not list the experiment's arrays to close them")
            return
    first: BaseException | None = None
    for name, array in arrays.items():
        try:
            array.close()
        except BaseException as exc:  # noqa: BLE001
            log.error("closing array %s failed: %s", name, exc)
            first = first or exc
    if first is not None:
        raise first


# ---------------------------------------------------------------------- driving
def _drive(exp: Experiment, store: RunStore, first: int, step: int, *, initial_checkpoint: bool,
           progress: bool, stop_after: int | None) -> tuple[bool, int, dict[str, float]]:
    """Run stages ``first..`` into ``store``; the caller closes store and arrays."""
    names = exp.stages()
    n = len(names)
    if initial_checkpoint:
        _checkpoint(store, exp, first, step)
    done_work = sum(exp.stage_work(j) for j in range(first))
    bar = None
    if progress:  # tqdm is imported only for a bar (its import costs ~50 ms of every sweep trial)
        from tqdm import tqdm

        bar = tqdm(total=exp.total_work(), initial=done_work, dynamic_ncols=True, mininterval=0.5, desc=exp.label(),
                   unit="")
    i = first
    try:
        for i in range(first, n):
            if stop_after is not None and i >= stop_after:
                break
            if bar is not None:
                bar.set_description(f"{exp.label()} [{names[i]}]")
            ctx = StageContext(store, bar, i, names[i], step)
            t0 = time.perf_counter()
            exp.run_stage(i, ctx)
            log.info("%s: stage %s done in %.1f s", exp.label(), names[i], time.perf_counter() - t0)
            step = ctx.step
            store.flush()
            if exp.checkpoint_after(i) or i == n - 1:
                _checkpoint(store, exp, i + 1, step)
        else:
            i = n
    finally:
        if bar is not None:
            bar.close()
    complete = i >= n
    summary: dict[str, float] = {}
    if complete:
        summary = exp.summary()  # (a resume truncates the file to its checkpoint: written once)
        for key, value in summary.items():
            store.metric(f"final.{key}", step, n, float(value))
    return complete, i, summary


def _execute(exp: Experiment, open_store, first: int, step: int, *, initial_checkpoint: bool, progress: bool,
             stop_after: int | None, figures: bool, out_dir: Path | None) -> Outcome:
    """Open the store, attach, drive, close everything on every path, then draw figures."""
    t0 = time.perf_counter()
    status = "failed"
    store: RunStore | None = None
    try:
        store = open_store()
        if exp.log_ops():
            for name, array in exp.arrays().items():
                store.attach_array(name, array)
        complete, done, summary = _drive(exp, store, first, step, initial_checkpoint=initial_checkpoint,
                                         progress=progress, stop_after=stop_after)
        status = "complete" if complete else "stopped"
    except BaseException as exc:
        status = f"failed: {type(exc).__name__}"
        raise
    finally:
        try:
            _close_arrays(exp)
        finally:
            if store is not None:
                store.close(status)
    path = store.path
    drawn: list[Path] = []
    if figures and complete:
        with open_run(path) as reader:
            drawn = list(type(exp).report(reader, out_dir or path.resolve().parent, path.stem))
    return Outcome(path, exp, complete, done, summary, drawn, time.perf_counter() - t0)


def start(cls: type[Experiment], cfg: Any, *, out: str | Path | None = None, arrays: dict[str, CrossbarArray] | None = None,
          overwrite: bool | None = None, progress: bool = True, stop_after: int | None = None,
          figures: bool = False, out_dir: Path | None = None) -> Outcome:
    """Run ``cfg`` (validated by ``cls.parse_config``) from the start into a new run file.

    Args:
        out: run file (default: the configuration's ``out``).
        arrays: ready arrays by name (e.g. bench arrays on simulated instruments) instead of those
            the configuration describes; the runner closes them at the end.
        overwrite: replace an existing run file (default: the configuration's ``overwrite``).
        stop_after: stop after this many stages (the run file then resumes).
        figures: draw :meth:`Experiment.report` at the end (into ``out_dir``, default beside the file).
    """
    try:
        exp = cls(cfg, arrays=arrays)  # data loaded, arrays open; nothing written yet
    except BaseException:
        if arrays:
            _close_arrays(None, arrays)
        raise
    path = Path(out) if out is not None else exp.out_path()
    ow = exp.overwrite() if overwrite is None else overwrite

    def open_store() -> RunStore:
        instruments = {name: json.dumps(a.identity()) for name, a in exp.arrays().items()}
        return RunStore.create(path, config=exp.config_dict(), seed=exp.seed(), backend=exp.backend(),
                               instruments=instruments, overwrite=ow, bench=provenance.bench_configs(exp.arrays()) or None)

    return _execute(exp, open_store, 0, 0, initial_checkpoint=True, progress=progress, stop_after=stop_after,
                    figures=figures, out_dir=out_dir)


def resume(path: str | Path, *, arrays: dict[str, CrossbarArray] | None = None, progress: bool = True,
           stop_after: int | None = None, figures: bool = False, out_dir: Path | None = None) -> Outcome:
    """Continue the run in ``path`` from its last checkpoint (its stored configuration and seed)."""
    path = Path(path)
    try:
        with open_run(path) as reader:
            status = reader.attrs.get("status")
            stored = reader.config
            ckpt = reader.load_checkpoint()
    except (OSError, KeyError) as exc:
        raise RunnerError(f"{path}: cannot read the run file to resume it: {exc}") from exc
    if status == "complete":  # refused before any data is loaded or instrument opened
        raise RunFinishedError(f"run file {str(path)!r} is complete (status {status!r}); there is nothing to resume")
    if ckpt is None:
        raise RunnerError(f"{path}: no checkpoint to resume from")
    saved, meta = ckpt
    if "runner" not in meta:
        raise RunnerError(f"{path}: its checkpoint was written before the experiment runner and cannot be resumed")
    cls, cfg = registry.parse_experiment(stored)
    r = meta["runner"]
    if r.get("experiment", cls.name) != cls.name:
        raise RunnerError(f"{path}: checkpoint of experiment {r['experiment']!r}, configuration of {cls.name!r}")
    try:
        exp = cls(cfg, arrays=arrays)
    except BaseException:
        if arrays:
            _close_arrays(None, arrays)
        raise
    try:
        exp.load_state(_decode(saved, r["names"]), meta["experiment"])
    except BaseException:
        _close_arrays(exp)
        raise
    return _execute(exp, lambda: RunStore.resume(path), int(r["next_stage"]), int(r["step"]),
                    initial_checkpoint=False, progress=progress, stop_after=stop_after, figures=figures,
                    out_dir=out_dir)


def run_file(path: str | Path, *, overrides: dict[str, Any] | None = None, **kwargs: Any) -> Outcome:
    """Validate the TOML experiment file ``path`` (with dotted ``overrides`` applied) and :func:`start` it."""
    data = registry.read_toml(path)
    try:
        cls = registry.get(registry.experiment_name(data))
        for dotted, value in (overrides or {}).items():
            set_dotted(data, dotted, value, cls)
        cls, cfg = registry.parse_experiment(data, Path(path).parent)
    except ConfigError as exc:
        raise type(exc)(f"{path}: {exc}") from exc
    return start(cls, cfg, **kwargs)


def set_dotted(data: dict[str, Any], dotted: str, value: Any, cls: type[Experiment] | None = None) -> None:
    """Set ``data["a"]["b"] = value`` for ``dotted = "a.b"`` (checked against ``cls.schema_paths()``)."""
    if cls is not None and dotted not in cls.schema_paths():
        raise ConfigError(f"unknown field {dotted} for experiment {cls.name!r}; known: {cls.schema_paths()}")
    *parents, leaf = dotted.split(".")
    node = data
    for p in parents:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{dotted}: {p} is not a table")
    node[leaf] = value

