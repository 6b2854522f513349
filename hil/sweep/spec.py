"""The sweep file: TOML -> a validated list of trials, before any trial starts.

A sweep file names a base (an experiment file, or a ``hil program`` invocation), the parameters
to vary by their dotted path, as a grid, a list of points, or both, and the seeds::

    [base]
    file = "quickstart.toml"        # an experiment file (relative to the sweep file) ...
    # command = "program"           # ... or a `hil program` run, its options as a table:
    # [base.args]
    # levels = 4
    # shape = "8x8"

    [sweep]
    out = "sweep-out"               # output folder (relative to the working directory)
    seeds = [0, 1, 2]               # sets `seed` of every configuration
    executor = "local"              # or "dask"
    workers = 2                     # default: the number of cores

    [sweep.set]                     # fixed overrides of every trial
    "tasks.epochs" = [1, 1]

    [sweep.grid]                    # the product of these lists ...
    "learning.m_star" = [0.0, 2.0]

    [[sweep.points]]                # ... plus these points (each one configuration)
    "learning.rule" = "plain"

Every trial is validated by the experiment's own schema (:func:`validate_trial`) with the error
naming the trial, the dotted path, the value and the allowed range.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drivers import tomlfile
from hil.experiments.schema import ConfigError

EXECUTORS = ("local", "dask")
JOBQUEUE_SYSTEMS = ("slurm", "pbs", "sge")
_SWEEP_KEYS = {"out", "seeds", "executor", "workers", "scheduler", "retries", "set", "grid", "points", "dask"}
_DASK_KEYS = {"scheduler", "jobs", *JOBQUEUE_SYSTEMS}


@dataclass(frozen=True)
class Trial:
    """One run of a sweep.

    Attributes:
        name: file stem of its run file, made from its parameters (unique in the sweep).
        params: the swept values by dotted path (seed included), in sweep order.
        kind: ``"experiment"`` (a ``hil run`` of an expanded experiment file) or ``"program"``.
        config: the expanded experiment file (a TOML mapping) or the ``hil program`` options.
    """

    name: str
    params: dict[str, Any]
    kind: str
    config: dict[str, Any]

    def config_key(self) -> str:
        """The configuration without its seed (trials differing only by seed share it)."""
        return json.dumps({k: v for k, v in self.params.items() if k != "seed"}, sort_keys=True)


@dataclass(frozen=True)
class DaskSettings:
    """``[sweep.dask]``: a scheduler address, or a dask-jobqueue system with its settings."""

    scheduler: str | None = None
    system: str | None = None  # "slurm", "pbs" or "sge"
    cluster: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the cluster class
    jobs: int = 1  # cluster.scale(jobs=...)


@dataclass(frozen=True)
class SweepPlan:
    """A validated sweep: where it writes, how it runs, and its trials (in order)."""

    source: Path
    out_dir: Path
    trials: list[Trial]
    swept: list[str]  # swept dotted paths (grid and points), seed last if seeds are given
    executor: str = "local"
    workers: int | None = None
    retries: int = 2
    dask: DaskSettings = field(default_factory=DaskSettings)
    base: dict[str, Any] = field(default_factory=dict)  # the [base] table as given

    def to_json(self) -> dict[str, Any]:
        """What ``DIR/sweep.json`` holds (the sweep's definition; the run files are its state)."""
        return {"source": str(self.source), "swept": self.swept, "base": self.base,
                "trials": [{"name": t.name, "kind": t.kind, "params": t.params} for t in self.trials]}


# ---------------------------------------------------------------------------- parsing
def _bad(path: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"{path} = {value!r} is not allowed; allowed: {allowed}")


def load_sweep(path: str | Path, out_dir: str | Path | None = None) -> SweepPlan:
    """Read, expand and validate the sweep file ``path`` (every trial; nothing is written)."""
    path = Path(path)
    data = tomlfile.read_toml(path, "sweep file", ConfigError)
    try:
        return parse_sweep(data, path, out_dir)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def parse_sweep(data: dict[str, Any], source: Path, out_dir: str | Path | None = None) -> SweepPlan:
    """Expand and validate a sweep mapping (as read from ``source``)."""
    for key in data:
        if key not in ("base", "sweep"):
            raise ConfigError(f"unknown table [{key}]; a sweep file has [base] and [sweep]")
    base = data.get("base")
    sw = data.get("sweep", {})
    if not isinstance(base, dict):
        raise _bad("base", base, "a table naming `file = \"EXPERIMENT.toml\"` or `command = \"program\"`")
    if not isinstance(sw, dict):
        raise _bad("sweep", sw, "a table")
    for key in sw:
        if key not in _SWEEP_KEYS:
            raise ConfigError(f"unknown field sweep.{key}; known: {sorted(_SWEEP_KEYS)}")
    kind, base_config, base_dir, known_paths = _load_base(base, source.parent)

    out = out_dir if out_dir is not None else sw.get("out", source.stem)
    if not isinstance(out, (str, os.PathLike)) or not str(out):
        raise _bad("sweep.out", out, "an output folder path")
    executor = sw.get("executor", "local")
    if executor not in EXECUTORS:
        raise _bad("sweep.executor", executor, f"one of {list(EXECUTORS)}")
    workers = sw.get("workers")
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= 4096):
        raise _bad("sweep.workers", workers, "an integer in [1, 4096]")
    retries = sw.get("retries", 2)
    if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 100:
        raise _bad("sweep.retries", retries, "an integer in [0, 100]")
    dask = _dask_settings(sw.get("dask", {}), sw.get("scheduler"))

    fixed = _table("sweep.set", sw.get("set", {}))
    grid = _table("sweep.grid", sw.get("grid", {}))
    points = sw.get("points", [])
    if not isinstance(points, list) or not all(isinstance(p, dict) for p in points):
        raise _bad("sweep.points", points, "an array of tables ([[sweep.points]])")
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise _bad(f"sweep.grid.{name}", values, "a non-empty list of values")
    seeds = sw.get("seeds")
    if seeds is not None:
        if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
            raise _bad("sweep.seeds", seeds, "a non-empty list of integer seeds")
        if "seed" in grid or any("seed" in p for p in points):
            raise ConfigError("seed is given both in sweep.seeds and in sweep.grid/points; give it once")
        if len(set(seeds)) != len(seeds):
            raise _bad("sweep.seeds", seeds, "distinct seeds")

    for where, table in [("sweep.set", fixed), ("sweep.grid", grid)] + [(f"sweep.points[{k}]", p) for k, p in enumerate(points)]:
        for dotted in table:
            if dotted not in known_paths:
                raise ConfigError(f"{where}: unknown path {dotted!r} for this base; known: {sorted(known_paths)}")
    configs = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())] if grid else []
    configs += [dict(p) for p in points]
    if not configs:
        configs = [{}]
    swept = list(dict.fromkeys([*grid, *(k for p in points for k in p)]))
    if seeds is not None:
        configs = [{**c, "seed": s} for c in configs for s in seeds]
        swept.append("seed")

    trials = []
    for params in configs:
        config = _expand(base_config, {**fixed, **params})
        name = trial_name(params)
        try:
            validate_trial(kind, config, base_dir)
        except ConfigError as exc:
            raise ConfigError(f"trial {name} ({_describe(params)}): {exc}") from exc
        trials.append(Trial(name, params, kind, config))
    _deduplicate_names(trials)
    return SweepPlan(source=source, out_dir=Path(out), trials=trials, swept=swept, executor=executor,
                     workers=workers, retries=retries, dask=dask, base=base)


def _table(where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(where, value, "a table of dotted paths")
    return value


def _dask_settings(d: Any, scheduler: Any) -> DaskSettings:
    if not isinstance(d, dict):
        raise _bad("sweep.dask", d, "a table")
    for key in d:
        if key not in _DASK_KEYS:
            raise ConfigError(f"unknown field sweep.dask.{key}; known: {sorted(_DASK_KEYS)}")
    scheduler = d.get("scheduler", scheduler)
    if scheduler is not None and (not isinstance(scheduler, str) or "://" not in scheduler):
        raise _bad("sweep.dask.scheduler", scheduler, "an address such as \"tcp://HOST:8786\"")
    systems = [s for s in JOBQUEUE_SYSTEMS if s in d]
    if len(systems) > 1:
        raise ConfigError(f"sweep.dask: give one of {list(JOBQUEUE_SYSTEMS)}, not {systems}")
    if systems and scheduler is not None:
        raise ConfigError(f"sweep.dask: a scheduler address and [sweep.dask.{systems[0]}] exclude each other")
    jobs = d.get("jobs", 1)
    if not isinstance(jobs, int) or isinstance(jobs, bool) or not 1 <= jobs <= 10000:
        raise _bad("sweep.dask.jobs", jobs, "an integer in [1, 10000] (batch jobs to submit)")
    cluster = d.get(systems[0], {}) if systems else {}
    if not isinstance(cluster, dict):
        raise _bad(f"sweep.dask.{systems[0]}", cluster, "a table of dask-jobqueue cluster settings")
    return DaskSettings(scheduler, systems[0] if systems else None, dict(cluster), jobs)


# ---------------------------------------------------------------------------- bases
def _load_base(base: dict[str, Any], sweep_dir: Path) -> tuple[str, dict[str, Any], Path, set[str]]:
    """(kind, base configuration, its directory, the dotted paths a trial may set)."""
    from hil.experiments import registry

    if ("file" in base) == ("command" in base):
        raise _bad("base", base, "exactly one of `file = \"EXPERIMENT.toml\"` and `command = \"program\"`")
    if "file" in base:
        for key in base:
            if key != "file":
                raise ConfigError(f"unknown field base.{key} beside base.file")
        if not isinstance(base["file"], str):
            raise _bad("base.file", base["file"], "the path of an experiment TOML file")
        file = (sweep_dir / base["file"]).resolve()
        if not file.is_file():
            raise _bad("base.file", base["file"], f"an existing experiment file (looked for {file})")
        data = registry.read_toml(file)
        cls = registry.get(registry.experiment_name(data))
        data.setdefault("experiment", cls.name)
        return "experiment", data, file.parent, set(cls.schema_paths())
    if base["command"] != "program":
        raise _bad("base.command", base["command"], "\"program\"")
    for key in base:
        if key not in ("command", "args"):
            raise ConfigError(f"unknown field base.{key}; known: ['args', 'command']")
    args = base.get("args", {})
    if not isinstance(args, dict):
        raise _bad("base.args", args, "a table of `hil program` options (e.g. levels = 4, shape = \"8x8\")")
    return "program", dict(args), sweep_dir.resolve(), set(program_options())


def _expand(base: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``base`` with every dotted path of ``params`` set."""
    config = json.loads(json.dumps(base))
    for dotted, value in params.items():
        *parents, leaf = dotted.split(".")
        node = config
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return config


# ---------------------------------------------------------------------------- validation
def validate_trial(kind: str, config: dict[str, Any], base_dir: Path) -> None:
    """Validate one expanded trial by the base's own rules (raises ConfigError).

    Experiments go through :func:`hil.experiments.registry.parse_experiment`; program trials
    through the ``hil program`` argument parser and its range checks.
    """
    if kind == "experiment":
        from hil.experiments import registry

        registry.parse_experiment(config, base_dir)
    else:
        from hil.cli.program import check_args

        try:
            check_args(parse_program_args(config, base_dir))
        except ConfigError:
            raise
        except ValueError as exc:  # the command's own range checks
            raise ConfigError(str(exc)) from exc


def _program_parser() -> argparse.ArgumentParser:
    from hil.cli import program

    top = argparse.ArgumentParser(prog="hil")
    sub = top.add_subparsers()
    program.register(sub)
    parser = sub.choices["program"]

    def error(message: str) -> None:
        raise ConfigError(f"hil program: {message}")

    parser.error = error  # argparse would exit; a sweep refuses the trial instead
    return parser


def program_options() -> list[str]:
    """The option names (``levels``, ``max_pulses``, ...) a program base accepts as paths."""
    return [a.dest for a in _program_parser()._actions if a.option_strings and a.dest != "help"]


def program_argv(args: dict[str, Any], base_dir: Path) -> list[str]:
    """``hil program`` options for the table ``args`` (paths made absolute against ``base_dir``)."""
    parser = _program_parser()
    actions = {a.dest: a for a in parser._actions if a.option_strings and a.dest != "help"}
    argv: list[str] = []
    for key, value in args.items():
        if key not in actions:
            raise ConfigError(f"unknown field {key} of a program base; known: {sorted(actions)}")
        if key == "out":
            raise ConfigError("out: a sweep names each trial's run file itself; remove `out`")
        action = actions[key]
        flag = action.option_strings[-1]
        if action.nargs == 0:  # a flag
            if not isinstance(value, bool):
                raise _bad(key, value, "true or false")
            if value:
                argv.append(flag)
            continue
        if isinstance(value, (bool, list, dict)):
            raise _bad(key, value, f"a single value for {flag}")
        if key in ("targets", "bench", "table") and value != "default":
            value = str((base_dir / str(value)).resolve())
        argv += [flag, str(value)]
    return argv


def parse_program_args(args: dict[str, Any], base_dir: Path) -> argparse.Namespace:
    return _program_parser().parse_args([*program_argv(args, base_dir), "--out", "trial.h5"])


# ---------------------------------------------------------------------------- names
def _value_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "x".join(_value_text(v) for v in value)
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", str(value)).strip("-") or "empty"


def trial_name(params: dict[str, Any]) -> str:
    """File stem of a trial: ``m_star=2__seed=0`` (the last part of each dotted path)."""
    if not params:
        return "base"
    return "__".join(f"{k.rsplit('.', 1)[-1]}={_value_text(v)}" for k, v in params.items())


def _describe(params: dict[str, Any]) -> str:
    return ", ".join(f"{k} = {v!r}" for k, v in params.items()) or "the base as it is"


def _deduplicate_names(trials: list[Trial]) -> None:
    """Trials with the same name (same leaf names and values) get a hash of their parameters."""
    seen: dict[str, int] = {}
    for t in trials:
        seen[t.name] = seen.get(t.name, 0) + 1
    keys = set()
    for k, t in enumerate(trials):
        key = json.dumps(t.params, sort_keys=True)
        if key in keys:
            raise ConfigError(f"the configuration {_describe(t.params)} appears twice in the sweep")
        keys.add(key)
        if seen[t.name] > 1:
            digest = hashlib.sha1(key.encode()).hexdigest()[:8]
            object.__setattr__(t, "name", f"{t.name}__{digest}")
