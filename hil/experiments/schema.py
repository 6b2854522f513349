"""Validation helpers shared by the experiments' configuration schemas.

An experiment's configuration is a frozen dataclass tree (top-level fields plus one dataclass per
TOML table). These helpers turn a raw TOML mapping into that tree, reject unknown keys by name,
and check values, always raising :class:`ConfigError` with the dotted field, the value and the
allowed range, before anything is opened or written.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass, fields, is_dataclass
from typing import Any


class ConfigError(ValueError):
    """A configuration field is missing, unknown, or outside its allowed range."""


def bad(field_name: str, value: Any, allowed: str) -> ConfigError:
    """The error for ``field_name = value`` outside ``allowed``."""
    return ConfigError(f"{field_name} = {value!r} is not allowed; allowed: {allowed}")


def check_number(name: str, v: Any, lo: float, hi: float, integer: bool = False, lo_open: bool = False) -> None:
    """Raise unless ``v`` is a finite number (an integer if ``integer``) in ``[lo, hi]`` (``(lo, hi]``)."""
    ok_type = isinstance(v, int) and not isinstance(v, bool) if integer else isinstance(v, (int, float)) and not isinstance(v, bool)
    if not ok_type or not math.isfinite(v) or v > hi or v < lo or (lo_open and v == lo):
        kind = "an integer" if integer else "a number"
        left = "(" if lo_open else "["
        raise bad(name, v, f"{kind} in {left}{lo:g}, {hi:g}]")


def check_choice(name: str, v: Any, options: tuple[str, ...] | list[str]) -> None:
    """Raise unless ``v`` is one of ``options``."""
    if v not in options:
        raise bad(name, v, f"one of {list(options)}")


def check_bool(name: str, v: Any) -> None:
    if not isinstance(v, bool):
        raise bad(name, v, "true or false")


def _nested_types(cls: type) -> dict[str, type]:
    """Field name -> dataclass type, for the fields of ``cls`` that are themselves dataclasses."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls) if is_dataclass(hints.get(f.name))}


def build(cls: type, data: Any, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``: unknown keys are rejected by their dotted name,
    nested tables become their dataclasses, lists become tuples. Values are not range-checked
    here (each experiment's ``validate`` does that)."""
    if not isinstance(data, dict):
        raise bad(prefix or "<file>", data, "a table")
    known = {f.name for f in fields(cls)}
    nested = _nested_types(cls)
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if key not in known:
            where = f"[{prefix}]" if prefix else "the top level"
            raise ConfigError(f"unknown field {dotted}; known fields of {where}: {sorted(known)}")
        if key in nested:
            value = build(nested[key], value, dotted)
        elif isinstance(value, list):
            value = tuple(value)
        elif isinstance(value, dict):
            raise bad(dotted, value, "a value, not a table")
        kwargs[key] = value
    return cls(**kwargs)


def schema_paths(cls: type, prefix: str = "") -> list[str]:
    """Every dotted key of the dataclass schema ``cls`` (``"learning.m_star"``, ``"seed"``, ...)."""
    out: list[str] = []
    nested = _nested_types(cls)
    for f in fields(cls):
        dotted = f"{prefix}.{f.name}" if prefix else f.name
        if f.name in nested:
            out.extend(schema_paths(nested[f.name], dotted))
        else:
            out.append(dotted)
    return out


@dataclass(frozen=True)
class RunFields:
    """The run-level fields of every experiment file (the runner reads them by convention).

    An experiment's configuration dataclass derives from this one and may give ``name`` and
    ``out`` its own defaults by redeclaring them.
    """

    name: str = "run"
    seed: int = 0
    out: str = "run.h5"
    overwrite: bool = False


def validate_run_fields(cfg: RunFields) -> None:
    """Raise :class:`ConfigError` for a run-level field (:class:`RunFields`) outside its range."""
    if not isinstance(cfg.name, str) or not cfg.name:
        raise bad("name", cfg.name, "a non-empty string")
    check_number("seed", cfg.seed, 0, 2**63 - 1, integer=True)
    if not isinstance(cfg.out, str) or not cfg.out.endswith((".h5", ".hdf5")):
        raise bad("out", cfg.out, "a file name ending in .h5 or .hdf5")
    check_bool("overwrite", cfg.overwrite)
