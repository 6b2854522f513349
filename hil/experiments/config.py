"""Configuration of a metaplastic sequential-task run: TOML -> validated, typed objects.

Every field is checked before anything is touched; a bad field raises :class:`ConfigError`
naming the field, the value and the allowed range. See ``examples/metaplastic-*.toml``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from drivers.sim.presets import PRESETS
from hil.experiments.schema import ConfigError, RunFields, bad as _bad, build, check_choice as _choice, check_number as _num
from hil.experiments.schema import validate_run_fields
from hil.learning.metaplastic import META_UNITS
from hil.mapping import MAPPINGS

__all__ = ["ConfigError", "RunConfig", "parse_config", "load_config", "config_from_dict", "validate"]


SEQUENCES = ("mnist-fmnist", "pmnist")
BACKENDS = ("sim", "bench", "software")
SOURCES = ("auto", "full", "bundled")
RULES = ("metaplastic", "plain")
TEST_AT = ("task-end", "every-epoch", "end", "never")
BATCHNORM = ("per-task", "shared")


@dataclass(frozen=True)
class TasksConfig:
    sequence: str = "mnist-fmnist"
    n_tasks: int = 2  # pmnist only
    epochs: tuple[int, ...] = (10, 10)
    train_limit: int = 0  # 0: all training examples of each task
    test_limit: int = 0
    #: validation split held out of every task's training set: a fraction in (0, 1) or a count
    validation: float = 0.1
    #: when the test set is evaluated: after every task, every epoch, at the end only, or never
    test_at: str = "task-end"


@dataclass(frozen=True)
class DatasetConfig:
    source: str = "auto"
    data_dir: str = ""


@dataclass(frozen=True)
class NetworkConfig:
    hidden: tuple[int, ...] = (1024,)
    init_scale: float = 0.1
    #: "per-task": one BN set per task, chosen by the task identity at test time (Laborieux et
    #: al. 2021); "shared": one BN set for all tasks (no task identity at test time)
    batchnorm: str = "per-task"


@dataclass(frozen=True)
class LearningConfig:
    rule: str = "metaplastic"
    m_star: float = 4.0
    unit: str = "interval"
    lr: float = 0.01
    lr_bn: float = 0.01
    batch_size: int = 100


@dataclass(frozen=True)
class DeviceConfig:
    backend: str = "sim"
    technology: str = "hfo2"
    mapping: str = "offset-reference"
    levels_uS: tuple[float, ...] = ()  # empty: the technology's nominal levels
    tolerance: float = 0.05
    max_pulses: int = 20
    init_max_pulses: int = 100
    program_every: int = 1
    refresh_tolerance: float = 0.10
    #: retire (mark defective) a cell after this many programming sessions in a row without
    #: convergence (:class:`hil.experiments.device.ProgrammingPolicy`); 0 never retires
    retire_after: int = 0
    log_ops: bool = True
    bench: tuple[str, ...] = ()  # backend "bench": one bench TOML file per layer
    #: sensitivity studies (backend "sim" only): the simulated device's read fluctuation
    #: (RTN + 1/f), every relaxation term, and the median endurance, times these factors
    #: (:func:`drivers.sim.presets.stressed`); 1 = the preset as calibrated
    read_noise_x: float = 1.0
    relaxation_x: float = 1.0
    endurance_x: float = 1.0


@dataclass(frozen=True)
class RunConfig(RunFields):
    name: str = "metaplastic"
    out: str = "metaplastic.h5"
    checkpoint_every_epoch: bool = True
    tasks: TasksConfig = field(default_factory=TasksConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    learning: LearningConfig = field(default_factory=LearningConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)

    def to_dict(self) -> dict[str, Any]:
        return {"experiment": "metaplastic", **asdict(self)}

    @property
    def task_names(self) -> list[str]:
        if self.tasks.sequence == "mnist-fmnist":
            return ["mnist", "fashion-mnist"]
        return [f"pmnist-{k}" for k in range(self.tasks.n_tasks)]


def parse_config(data: dict[str, Any], base_dir: Path | None = None) -> RunConfig:
    """Validate a configuration mapping (as read from TOML) into a :class:`RunConfig`.

    Unknown keys at any level raise :class:`ConfigError` naming the dotted key. The
    ``experiment`` key, if present, must be ``"metaplastic"``. Output paths stay relative to the
    working directory, as on a command line (``base_dir`` is accepted for the registry's
    signature).
    """
    data = dict(data)
    if "experiment" in data:
        _choice("experiment", data.pop("experiment"), ["metaplastic"])
    require_essentials(data)
    cfg = build(RunConfig, data)
    validate(cfg)
    return cfg


#: Fields an experiment file must set explicitly: what the run learns, how long, on what.
#: Without them a file (an empty one, say) would silently start a long default run.
ESSENTIAL = ("tasks.epochs", "network.hidden", "device.backend")


def require_essentials(data: dict[str, Any]) -> None:
    """Raise :class:`ConfigError` naming the first :data:`ESSENTIAL` field ``data`` does not set."""
    for dotted in ESSENTIAL:
        table, key = dotted.split(".")
        section = data.get(table)
        if not isinstance(section, dict) or key not in section:
            raise ConfigError(f"{dotted} is missing; an experiment file must set {', '.join(ESSENTIAL)} "
                              f"(e.g. [{table}] {key} = ...; see `hil example quickstart`)")


def technology_window_uS(technology: str) -> tuple[float, float]:
    """The programmable conductance window of a technology preset, in uS."""
    from drivers.sim.presets import PRESETS

    lo, hi = PRESETS[technology].technology.g_window
    return lo * 1e6, hi * 1e6


def validate(cfg: RunConfig) -> None:
    """Raise :class:`ConfigError` for the first field outside its allowed range."""
    validate_run_fields(cfg)
    if not isinstance(cfg.checkpoint_every_epoch, bool):
        raise _bad("checkpoint_every_epoch", cfg.checkpoint_every_epoch, "true or false")
    t = cfg.tasks
    _choice("tasks.sequence", t.sequence, SEQUENCES)
    _num("tasks.n_tasks", t.n_tasks, 2, 20, integer=True)
    n_tasks = 2 if t.sequence == "mnist-fmnist" else t.n_tasks
    if not isinstance(t.epochs, tuple) or len(t.epochs) != n_tasks:
        raise _bad("tasks.epochs", list(t.epochs) if isinstance(t.epochs, tuple) else t.epochs,
                   f"a list of {n_tasks} epoch counts (one per task)")
    for k, e in enumerate(t.epochs):
        _num(f"tasks.epochs[{k}]", e, 1, 1000, integer=True)
    _num("tasks.train_limit", t.train_limit, 0, 60000, integer=True)
    _num("tasks.test_limit", t.test_limit, 0, 10000, integer=True)
    v = t.validation
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (
            0 < v <= 0.5 or (isinstance(v, int) and 1 <= v <= 30000)):
        raise _bad("tasks.validation", v, "a fraction in (0, 0.5] or an integer count in [1, 30000]")
    _choice("tasks.test_at", t.test_at, TEST_AT)
    _choice("dataset.source", cfg.dataset.source, SOURCES)
    if not isinstance(cfg.dataset.data_dir, str):
        raise _bad("dataset.data_dir", cfg.dataset.data_dir, "a directory path string (\"\" = $HIL_DATA_DIR)")
    n = cfg.network
    if not isinstance(n.hidden, tuple) or len(n.hidden) < 1:
        raise _bad("network.hidden", n.hidden, "a list of 1 or more hidden-layer widths")
    for k, h in enumerate(n.hidden):
        _num(f"network.hidden[{k}]", h, 1, 16384, integer=True)
    _num("network.init_scale", n.init_scale, 0, 10, lo_open=True)
    _choice("network.batchnorm", n.batchnorm, BATCHNORM)
    lcfg = cfg.learning
    _choice("learning.rule", lcfg.rule, RULES)
    _num("learning.m_star", lcfg.m_star, 0, 100)
    _choice("learning.unit", lcfg.unit, META_UNITS)
    _num("learning.lr", lcfg.lr, 0, 1, lo_open=True)
    _num("learning.lr_bn", lcfg.lr_bn, 0, 1, lo_open=True)
    _num("learning.batch_size", lcfg.batch_size, 1, 10000, integer=True)
    d = cfg.device
    _choice("device.backend", d.backend, BACKENDS)
    _choice("device.technology", d.technology, sorted(PRESETS))
    if not d.levels_uS and len(PRESETS[d.technology].technology.levels) < 2:
        raise _bad("device.levels_uS", [], f"the conductance levels in uS (technology {d.technology!r} has no default levels)")
    _choice("device.mapping", d.mapping, sorted(MAPPINGS))
    if not isinstance(d.levels_uS, tuple):
        raise _bad("device.levels_uS", d.levels_uS, "a list of ascending conductances in uS")
    g_lo, g_hi = technology_window_uS(d.technology)
    for k, g in enumerate(d.levels_uS):
        try:
            _num(f"device.levels_uS[{k}]", g, g_lo, g_hi)
        except ConfigError as exc:
            raise ConfigError(f"{exc} uS (the conductance window of device.technology = {d.technology!r})") from None
    if d.levels_uS and (len(d.levels_uS) < 2 or any(b <= a for a, b in zip(d.levels_uS, d.levels_uS[1:]))):
        raise _bad("device.levels_uS", list(d.levels_uS), "at least 2 strictly ascending values (uS)")
    if d.mapping == "differential-pair" and d.levels_uS and len(d.levels_uS) % 2:
        raise _bad("device.levels_uS", list(d.levels_uS), "an even number of levels for the differential pair")
    _num("device.tolerance", d.tolerance, 0.001, 0.5)
    _num("device.max_pulses", d.max_pulses, 1, 1000, integer=True)
    _num("device.init_max_pulses", d.init_max_pulses, 1, 1000, integer=True)
    _num("device.program_every", d.program_every, 1, 100000, integer=True)
    _num("device.refresh_tolerance", d.refresh_tolerance, 0.001, 10)
    _num("device.retire_after", d.retire_after, 0, 1000, integer=True)
    if not isinstance(d.log_ops, bool):
        raise _bad("device.log_ops", d.log_ops, "true or false")
    n_layers = len(n.hidden) + 1
    if d.backend == "bench" and (len(d.bench) != n_layers or not all(isinstance(b, str) and b for b in d.bench)):
        raise _bad("device.bench", list(d.bench), f"{n_layers} bench file paths, one per layer (backend = 'bench')")
    if d.backend != "bench" and d.bench:
        raise _bad("device.bench", list(d.bench), "empty unless device.backend = 'bench'")
    for name, lo, hi in STRESS_RANGES:
        value = getattr(d, name)
        _num(f"device.{name}", value, lo, hi, lo_open=name == "endurance_x")
        if d.backend != "sim" and value != 1:
            raise _bad(f"device.{name}", value, "1 unless device.backend = 'sim' (only a simulated device can be stressed)")


#: Allowed ranges of the device stress factors (``endurance_x`` excludes 0): read noise and
#: relaxation up to 100x the calibrated preset; endurance from 1e-9x (a 1e6-cycle median down to
#: a few cycles) to 1000x.
STRESS_RANGES = (("read_noise_x", 0.0, 100.0), ("relaxation_x", 0.0, 100.0), ("endurance_x", 1e-9, 1e3))


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a TOML metaplastic experiment file."""
    from hil.experiments.registry import read_toml

    return parse_config(read_toml(path), Path(path).parent)


def config_from_dict(stored: dict[str, Any]) -> RunConfig:
    """Rebuild a :class:`RunConfig` from the JSON stored in a run file (for resume)."""
    return parse_config(stored)
