"""What the pulse-source drivers share: argument checks that run before any byte is sent.

A pulse source (the B1500's B1525A SPGU, a 33500B-class generator) fires one pulse of a given
amplitude (V) and width (s) on the routed cell. Every argument is checked here for its type
(a real number, not ``bool``, not a string; an integer where a count or channel is meant) and
range, and each refusal names the command, the value and the allowed range. Nothing reaches
the transport before all checks have passed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Integral, Real

from drivers.errors import InstrumentError, SafetyLimitError


def real(name: str, value: object) -> float:
    """``value`` as a finite float; ``TypeError`` for bool/str/None, ``SafetyLimitError`` for NaN/inf."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    out = float(value)
    if not math.isfinite(out):
        raise SafetyLimitError(f"{name} must be finite, got {value!r}")
    return out


def integer(name: str, value: object, low: int, high: int) -> int:
    """``value`` as an int in ``[low, high]``; bool, float and str are refused."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    out = int(value)
    if not low <= out <= high:
        raise ValueError(f"{name} = {out} outside the allowed range [{low}, {high}]")
    return out


def in_range(command: str, name: str, value: float, low: float, high: float, unit: str) -> None:
    """Refuse ``value`` outside ``[low, high]`` with an error naming the command and the range."""
    if not low <= value <= high:
        raise SafetyLimitError(
            f"{command}: {name} = {value:.6g} {unit} outside the instrument's allowed range [{low:.6g}, {high:.6g}] {unit}"
        )


def drain_error_queue(ask: Callable[[], str], parse: Callable[[str], tuple[int, str]], on_error: Callable[[], None], label: str) -> None:
    """Read an error queue with ``ask()`` until it reports code 0 (at most 32 entries); if it
    held any, call ``on_error()`` (outputs off) and raise InstrumentError listing them."""
    errors = []
    for _ in range(32):
        code, message = parse(ask())
        if code == 0:
            break
        errors.append(f"{code} {message}")
    if errors:
        on_error()
        raise InstrumentError(f"{label}: " + "; ".join(errors))
