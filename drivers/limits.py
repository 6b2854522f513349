"""Safety limits of a 1T1R bench, validated before anything is sent.

Every public programming operation of a :class:`~drivers.array.CrossbarArray` (and every
instrument driver) checks its arguments against a :class:`SafetyLimits` first; a violation
raises :class:`~drivers.errors.SafetyLimitError` naming the value and the allowed range, and
nothing reaches the device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from drivers.errors import SafetyLimitError


@dataclass(frozen=True)
class SafetyLimits:
    """Absolute limits for one bench (all SI units).

    Attributes:
        max_v_pulse: largest |voltage| of a SET/RESET/forming pulse on the bit/source line, V.
        max_v_gate: largest gate (word-line) voltage, V.
        max_v_read: largest |read voltage|, V (reads must not disturb the cell).
        max_compliance: largest current compliance, A.
        max_width: longest pulse width, s.
        min_width: shortest pulse width the pulse source can make, s.
    """

    max_v_pulse: float = 5.0
    max_v_gate: float = 3.3
    max_v_read: float = 0.3
    max_compliance: float = 1e-3
    max_width: float = 1e-3
    min_width: float = 1e-8

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"SafetyLimits.{f.name} must be a positive finite number, got {value!r}")
        if self.min_width > self.max_width:
            raise ValueError(
                f"SafetyLimits.min_width={self.min_width:.3e} s exceeds max_width={self.max_width:.3e} s"
            )

    def check_abs(self, name: str, value: float | np.ndarray, limit: float, unit: str) -> None:
        """Raise :class:`SafetyLimitError` unless every ``|value| <= limit`` and is finite."""
        worst = peak(value)  # 0 for an empty array
        if not math.isfinite(worst):
            raise SafetyLimitError(f"{name} must be finite, got {value!r}")
        if worst > limit:
            raise SafetyLimitError(f"{name}={worst:.6g} {unit} outside the allowed range [-{limit:.6g}, {limit:.6g}] {unit}")

    def check_range(self, name: str, value: float | np.ndarray, low: float, high: float, unit: str) -> None:
        """Raise :class:`SafetyLimitError` unless ``low <= value <= high`` element-wise."""
        _check_range("", name, value, low, high, unit, "the allowed range")

    def check_pulse(self, v_pulse: float | np.ndarray, width: float | np.ndarray) -> None:
        """Check a pulse amplitude (V) and width (s)."""
        self.check_abs("v_pulse", v_pulse, self.max_v_pulse, "V")
        self.check_range("width", width, self.min_width, self.max_width, "s")

    def check_gate(self, v_gate: float | np.ndarray) -> None:
        """Check a gate voltage (V); gates are driven with 0 <= V_G <= max_v_gate."""
        self.check_range("v_gate", v_gate, 0.0, self.max_v_gate, "V")

    def check_read(self, v_read: float) -> None:
        """Check a read voltage (V)."""
        self.check_abs("v_read", v_read, self.max_v_read, "V")

    def check_compliance(self, compliance: float | np.ndarray) -> None:
        """Check a current compliance (A); it must be positive."""
        self.check_range("compliance", compliance, 1e-12, self.max_compliance, "A")


# ---------------------------------------------------------------------------------- argument types
def check_number(command: str, name: str, value: object, unit: str = "") -> float:
    """``value`` as a finite float, or :class:`SafetyLimitError` naming ``command`` and ``name``.

    Booleans, strings, ``None``, NaN and infinities are refused: a bool is an int to Python
    but never a voltage or a time to an instrument.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise SafetyLimitError(f"{command}: {name} must be a number ({unit or 'SI units'}), got {value!r} ({type(value).__name__})")
    v = float(value)
    if not np.isfinite(v):
        raise SafetyLimitError(f"{command}: {name} must be finite, got {value!r}")
    return v


def check_count(command: str, name: str, value: object, low: int, high: int) -> int:
    """``value`` as an int in ``[low, high]``; non-integers (``2.5``, ``True``, ``"3"``) are refused."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise SafetyLimitError(f"{command}: {name} must be an integer in [{low}, {high}], got {value!r} ({type(value).__name__})")
    n = int(value)
    if not low <= n <= high:
        raise SafetyLimitError(f"{command}: {name}={n} outside the allowed range [{low}, {high}]")
    return n


def check_numbers(command: str, name: str, values: object, unit: str = "") -> np.ndarray:
    """A 1-D float array of finite numbers (no bools, strings or objects), or SafetyLimitError."""
    arr = np.asarray(values)
    if arr.dtype == bool or arr.dtype.kind not in "iuf":
        raise SafetyLimitError(f"{command}: {name} must be numbers ({unit or 'SI units'}), got dtype {arr.dtype}")
    arr = arr.astype(float).reshape(-1)
    if not np.all(np.isfinite(arr)):
        raise SafetyLimitError(f"{command}: {name} must be finite")
    return arr


def check_in(command: str, name: str, value: float | np.ndarray, low: float, high: float, unit: str) -> None:
    """Instrument (model) limit: ``low <= value <= high`` element-wise, else SafetyLimitError
    naming the command, the value and the allowed range."""
    _check_range(f"{command}: ", name, value, low, high, unit, "the instrument's range")


def _check_range(prefix: str, name: str, value: float | np.ndarray, low: float, high: float, unit: str,
                 scope: str) -> None:
    """SafetyLimitError ``"<prefix><name>=<worst> <unit> outside <scope> [low, high]"`` unless every
    element of ``value`` is finite and within ``[low, high]``."""
    lo_hi = _extremes(value)
    if lo_hi is None:
        return
    lo, hi = lo_hi
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise SafetyLimitError(f"{prefix}{name} must be finite, got {value!r}")
    if lo < low or hi > high:
        bad = lo if lo < low else hi
        raise SafetyLimitError(f"{prefix}{name}={bad:.6g} {unit} outside {scope} [{low:.6g}, {high:.6g}] {unit}")


def _extremes(value: float | np.ndarray) -> tuple[float, float] | None:
    """(min, max) of ``value`` as floats, None when it is empty. One pass each: numpy's min and max
    propagate a NaN and an infinity shows in one of them, so the pair is finite iff all values are."""
    if isinstance(value, (float, int)):
        v = float(value)
        return v, v
    arr = np.asarray(value, dtype=float)
    if arr.size == 0:
        return None
    return float(arr.min()), float(arr.max())


def peak(value: float | np.ndarray) -> float:
    """Largest ``|value|`` (0 for an empty array; NaN if any value is NaN, inf if any is infinite),
    from one min and one max pass, without an array of absolute values."""
    lo_hi = _extremes(value)
    if lo_hi is None:
        return 0.0
    lo, hi = lo_hi
    return math.nan if math.isnan(lo) or math.isnan(hi) else max(-lo, hi)
