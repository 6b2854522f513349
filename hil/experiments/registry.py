"""The experiments ``hil run`` knows, by the ``experiment = "..."`` key of their TOML file.

Built-in experiments are listed by module path and imported on first use, so an experiment's
dependencies load only when it runs. Further experiments register with :func:`register`.

* :func:`parse_experiment` — a raw TOML mapping -> ``(ExperimentClass, validated config)``; used
  by ``hil run`` and by ``hil sweep`` to validate every trial before any run starts.
* :func:`load_experiment` — the same from a TOML file.
* :func:`get` / :func:`known` — look-up by name.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drivers import tomlfile
from hil.experiments.schema import ConfigError

if TYPE_CHECKING:
    from hil.experiments.runner import Experiment

log = logging.getLogger(__name__)

#: name -> "module:Class" of the built-in experiments (imported lazily).
BUILTIN: dict[str, str] = {
    "metaplastic": "hil.experiments.metaplastic:MetaplasticExperiment",
    "continual-stdp": "hil.experiments.continual_stdp:ContinualSTDPExperiment",
}

#: Top-level tables that mark a file written before the ``experiment`` key existed as metaplastic.
_LEGACY_METAPLASTIC_TABLES = {"tasks", "learning", "network", "device"}

_registered: dict[str, type[Experiment]] = {}


class UnknownExperimentError(ConfigError):
    """The ``experiment`` key names no known experiment (or one that is not installed)."""


def register(cls: type[Experiment]) -> type[Experiment]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__qualname__} needs a class attribute `name` (its experiment key)")
    other = _registered.get(name)
    if other is not None and other is not cls and other.__qualname__ != cls.__qualname__:
        raise ValueError(f"experiment {name!r} is already registered by {other.__module__}.{other.__qualname__}")
    _registered[name] = cls
    return cls


def known() -> list[str]:
    """Names of every experiment, built-in or registered."""
    return sorted(set(BUILTIN) | set(_registered))


def get(name: Any) -> type[Experiment]:
    """The experiment class registered as ``name``.

    Raises:
        UnknownExperimentError: ``name`` is not a known experiment, or its module is missing.
    """
    if name in _registered:
        return _registered[name]
    if not isinstance(name, str) or name not in BUILTIN:
        raise UnknownExperimentError(f"experiment = {name!r} is not allowed; allowed: one of {known()}")
    module_name, cls_name = BUILTIN[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise UnknownExperimentError(f"experiment = {name!r} is not available in this installation "
                                     f"(module {module_name} missing); available: "
                                     f"{[n for n in known() if n != name]}") from exc
    cls = getattr(module, cls_name)
    _registered.setdefault(name, cls)
    return cls


def experiment_name(data: dict[str, Any]) -> str:
    """The experiment a raw configuration mapping asks for.

    A file without the ``experiment`` key but with the metaplastic tables (``[tasks]``,
    ``[learning]``, ...) was written before the key existed: it is taken as ``"metaplastic"``
    with a deprecation warning in the log.
    """
    if "experiment" in data:
        return data["experiment"]
    if _LEGACY_METAPLASTIC_TABLES & set(data):
        log.warning("the configuration has no `experiment` key; taking it as experiment = \"metaplastic\" "
                    "(deprecated: add `experiment = \"metaplastic\"` at the top of the file)")
        return "metaplastic"
    raise UnknownExperimentError(f"the configuration has no `experiment` key; add one of {known()} "
                                 "(e.g. experiment = \"metaplastic\")")


def parse_experiment(data: dict[str, Any], base_dir: Path | None = None) -> tuple[type[Experiment], Any]:
    """Validate a raw configuration mapping (every dotted key, every value).

    Returns:
        ``(ExperimentClass, cfg)`` with ``cfg`` the class's validated, typed configuration.

    Raises:
        ConfigError: unknown experiment, unknown key or value outside its range (the message
            names the field, the value and the allowed range).
    """
    if not isinstance(data, dict):
        raise ConfigError(f"an experiment configuration must be a table, got {type(data).__name__}")
    cls = get(experiment_name(data))
    body = {k: v for k, v in data.items() if k != "experiment"}
    return cls, cls.parse_config(body, base_dir)


def read_toml(path: str | Path) -> dict[str, Any]:
    """The raw mapping of a TOML experiment file (ConfigError when missing or not TOML)."""
    return tomlfile.read_toml(path, "experiment file", ConfigError)


def load_experiment(path: str | Path) -> tuple[type[Experiment], Any]:
    """Read and validate a TOML experiment file: ``(ExperimentClass, cfg)``."""
    path = Path(path)
    try:
        return parse_experiment(read_toml(path), path.parent)
    except ConfigError as exc:
        if str(path) in str(exc):
            raise
        raise type(exc)(f"{path}: {exc}") from exc
