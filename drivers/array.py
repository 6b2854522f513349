"""The 1T1R array as the host sees it: whole-array and masked operations.

:class:`CrossbarArray` is the seam between algorithms (``hil``) and hardware
(:class:`~drivers.sim_array.SimArray` for the physics model, ``BenchArray`` for instruments).
It validates every request against the bench's :class:`~drivers.limits.SafetyLimits` before
the implementation is called, keeps the bench-time estimate, and emits an
:class:`~drivers.oplog.OpBatch` for every operation to its listeners (the run store).

Conventions:
    * An array has ``shape = (rows, cols)``: rows are word lines (gates), columns bit lines.
    * A *mask* is a boolean array of that shape (``None`` means every cell), or a strictly
      increasing 1-D integer array of flat cell indices (``row * cols + col``). Index arrays
      keep sparse operations on large arrays O(cells addressed) instead of O(array size).
    * Per-cell parameters (``v_gate``, ``v_pulse``, ...) are scalars, arrays of the array's
      shape, or — with an index array — vectors with one value per addressed cell.
    * Conductances are in siemens, voltages in volts, widths and times in seconds.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from types import TracebackType

import numpy as np

from drivers.limits import SafetyLimits
from drivers.oplog import OpBatch, OpKind, make_batch
from drivers.technology import Technology
from drivers.timing import BenchTiming

log = logging.getLogger(__name__)

Listener = Callable[[OpBatch], None]


class CrossbarArray(ABC):
    """A 1T1R array with whole-array / masked operations and bench-time accounting.

    Subclasses implement the ``_form``, ``_set``, ``_reset``, ``_read`` hooks, which receive
    flat cell indices (shape (n,)) and per-cell parameter vectors (shape (n,)) that have
    already passed the safety limits.
    """

    def __init__(
        self,
        shape: tuple[int, int],
        technology: Technology,
        limits: SafetyLimits | None = None,
        timing: BenchTiming | None = None,
    ) -> None:
        rows, cols = (int(shape[0]), int(shape[1]))
        if rows < 1 or cols < 1 or rows > 65535 or cols > 65535:
            raise ValueError(f"array shape must be between 1x1 and 65535x65535, got {shape!r}")
        self.shape: tuple[int, int] = (rows, cols)
        self.technology = technology
        self.limits = limits or SafetyLimits()
        self.timing = timing or BenchTiming()
        self.bench_time: float = 0.0
        self._listeners: list[Listener] = []
        self._closed = False
        self._events: np.ndarray | None = None  # programming pulses per cell, counted by the host

    # ------------------------------------------------------------------ plumbing
    @property
    def size(self) -> int:
        """Number of cells."""
        return self.shape[0] * self.shape[1]

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(batch)`` after every operation (e.g. the run store's ``append_ops``)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    def _indices(self, mask: np.ndarray | None) -> np.ndarray:
        """Flat indices of the cells in ``mask`` (all cells when ``None``)."""
        if mask is None:
            return np.arange(self.size)
        mask = np.asarray(mask)
        if mask.dtype == bool and mask.shape == self.shape:
            return np.flatnonzero(mask)
        if mask.ndim == 1 and mask.dtype.kind in "iu":
            if mask.size and (mask[0] < 0 or mask[-1] >= self.size or (mask[1:] <= mask[:-1]).any()):
                raise ValueError(f"cell indices must be strictly increasing within [0, {self.size - 1}]")
            return mask.astype(np.intp, copy=False)
        raise ValueError(
            f"mask must be a boolean array of shape {self.shape} or increasing flat cell indices, "
            f"got {mask.dtype} {mask.shape}"
        )

    def _per_cell(self, name: str, value: float | np.ndarray, idx: np.ndarray) -> np.ndarray:
        """A parameter's value at each addressed cell (scalar, full-shape map or per-cell vector)."""
        arr = np.asarray(value, dtype=float)
        if arr.ndim == 0:
            return np.full(idx.shape, float(arr))
        if arr.shape == self.shape:
            return arr.reshape(-1)[idx]
        if arr.ndim == 1 and arr.shape == idx.shape:
            return arr
        raise ValueError(
            f"{name} must be a scalar, an array of shape {self.shape} or one value per addressed cell "
            f"({idx.size}), got shape {arr.shape}"
        )

    def _account(self, kind: OpKind, idx: np.ndarray, cost_each: float, **fields: float | np.ndarray) -> None:
        """Advance the bench clock over ``idx`` cells and emit the op records."""
        n = idx.size
        if n == 0:
            return
        if kind != OpKind.READ:
            if self._events is None:
                self._events = np.zeros(self.size, dtype=np.int64)
            self._events[idx] += 1
        per_cell = self.timing.route_settle + cost_each
        t_start = self.bench_time
        self.bench_time += per_cell * n
        self._after_time_advance()
        if self._listeners:
            batch = make_batch(kind, None, None, cells=idx, n_cols=self.shape[1], t_start=t_start, t_step=per_cell,
                               **fields)
            for listener in self._listeners:
                listener(batch)

    def programming_events(self) -> np.ndarray:
        """Forming, SET and RESET pulses applied to each cell so far, shape (rows, cols)."""
        if self._events is None:
            return np.zeros(self.shape, dtype=np.int64)
        return self._events.reshape(self.shape).copy()

    def _after_time_advance(self) -> None:
        """Hook for subclasses whose state depends on the clock (the simulator's relaxation)."""

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} is closed")

    # ------------------------------------------------------------------ operations
    def form(
        self,
        mask: np.ndarray | None = None,
        v_pulse: float | None = None,
        v_gate: float | None = None,
        width: float | None = None,
    ) -> None:
        """Apply one forming pulse to the cells in ``mask``.

        Args:
            mask: boolean (rows, cols) or ``None`` for all cells.
            v_pulse: forming amplitude, V (default: the technology's ``v_form``).
            v_gate: gate voltage, V, setting the forming compliance (default ``v_gate_form``).
            width: pulse width, s (default ``width_form``).
        """
        tech = self.technology
        self._positive_pulse(
            OpKind.FORM, mask,
            tech.v_gate_form if v_gate is None else v_gate,
            tech.v_form if v_pulse is None else v_pulse,
            tech.width_form if width is None else width,
        )

    def set_pulse(
        self,
        mask: np.ndarray | None,
        v_gate: float | np.ndarray,
        v_pulse: float | np.ndarray | None = None,
        width: float | None = None,
    ) -> None:
        """Apply one SET pulse under a gate-set compliance.

        Args:
            mask: boolean (rows, cols) or ``None`` for all cells.
            v_gate: gate voltage(s), V; sets the compliance I_C through the access transistor.
            v_pulse: SET amplitude(s) on the bit line, V (> 0; default the technology's ``v_set``).
            width: pulse width, s (default ``width_set``).
        """
        tech = self.technology
        self._positive_pulse(
            OpKind.SET, mask, v_gate,
            tech.v_set if v_pulse is None else v_pulse,
            tech.width_set if width is None else width,
        )

    def _positive_pulse(
        self, kind: OpKind, mask: np.ndarray | None, v_gate: float | np.ndarray,
        v_pulse: float | np.ndarray, width: float,
    ) -> None:
        """Validate, apply and account one forming or SET pulse (positive polarity, gate compliance)."""
        self._check_open()
        idx = self._indices(mask)
        vg, vp = self._per_cell("v_gate", v_gate, idx), self._per_cell("v_pulse", v_pulse, idx)
        self.limits.check_pulse(vp, width)
        self.limits.check_gate(vg)
        if np.any(vp < 0):
            raise ValueError(f"{kind.name} v_pulse must be >= 0 V (use reset_pulse for negative polarity)")
        compliance = self.technology.transistor.compliance(vg)
        self.limits.check_compliance(np.maximum(compliance, 1e-12))
        if idx.size == 0:
            return
        if kind == OpKind.FORM:
            self._form(idx, vp, vg, float(width))
        else:
            self._set(idx, vg, vp, float(width))
        self._account(kind, idx, self.timing.pulse_time(width), v_gate=_logged(v_gate, vg),
                      v_pulse=_logged(v_pulse, vp), width=width, compliance=_logged(v_gate, compliance))

    def reset_pulse(
        self,
        mask: np.ndarray | None,
        v_stop: float | np.ndarray | None = None,
        width: float | None = None,
        v_gate: float | None = None,
    ) -> None:
        """Apply one RESET pulse of amplitude ``v_stop`` (negative polarity).

        Args:
            mask: boolean (rows, cols) or ``None`` for all cells.
            v_stop: RESET stop voltage(s), V (< 0; default the technology's ``v_stop``).
            width: pulse width, s (default ``width_reset``).
            v_gate: gate voltage, V (default ``v_gate_reset``: transistor fully on).
        """
        self._check_open()
        tech = self.technology
        v_stop = tech.v_stop if v_stop is None else v_stop
        width = tech.width_reset if width is None else width
        v_gate = tech.v_gate_reset if v_gate is None else v_gate
        idx = self._indices(mask)
        vs, vg = self._per_cell("v_stop", v_stop, idx), self._per_cell("v_gate", v_gate, idx)
        self.limits.check_pulse(vs, width)
        self.limits.check_gate(vg)
        if np.any(vs > 0):
            raise ValueError("RESET v_stop must be <= 0 V")
        if idx.size == 0:
            return
        self._reset(idx, vs, vg, float(width))
        self._account(
            OpKind.RESET, idx, self.timing.pulse_time(width),
            v_gate=_logged(v_gate, vg), v_pulse=_logged(v_stop, vs), width=width, compliance=np.nan,
        )

    def read(self, mask: np.ndarray | None = None, v_read: float | None = None) -> np.ndarray:
        """Measure conductances at ``v_read``.

        Args:
            mask: boolean (rows, cols) or ``None`` for all cells.
            v_read: read voltage, V (default the technology's ``v_read``).

        Returns:
            Measured conductance, S, shape (rows, cols); NaN for cells not in ``mask``.
        """
        idx = self._indices(mask)
        out = np.full(self.size, np.nan)
        out[idx] = self.read_cells(idx, v_read)
        return out.reshape(self.shape)

    def read_cells(self, cells: np.ndarray, v_read: float | None = None) -> np.ndarray:
        """Measure the cells at flat indices ``cells`` (strictly increasing).

        Returns:
            Measured conductance, S, shape (len(cells),).
        """
        self._check_open()
        v_read = self.technology.v_read if v_read is None else v_read
        self.limits.check_read(v_read)
        idx = self._indices(np.asarray(cells))
        if idx.size == 0:
            return np.empty(0)
        g = self._read(idx, float(v_read))
        self._account(OpKind.READ, idx, self.timing.read_time, v_pulse=v_read, result=g)
        return g

    def mvm(self, x: np.ndarray, v_read: float | None = None) -> np.ndarray:
        """Vector-matrix product with the *measured* conductances.

        Args:
            x: input amplitudes on the rows, dimensionless in [-1, 1], shape (rows,) or
                (batch, rows); they scale the read voltage ``v_read``.
            v_read: full-scale read voltage, V.

        Returns:
            Column currents, A, shape (cols,) or (batch, cols): ``I = (x * v_read) @ G``.

        The default measures the array (one read per cell) and computes on the host; a
        subclass whose hardware sums currents on a line overrides this.
        """
        v_read = self.technology.v_read if v_read is None else v_read
        x = np.asarray(x, dtype=float)
        if x.shape[-1] != self.shape[0]:
            raise ValueError(f"x must have {self.shape[0]} entries on its last axis, got shape {x.shape}")
        self.limits.check_read(float(np.max(np.abs(x))) * v_read if x.size else 0.0)
        g = self.read(None, v_read)
        return (x * v_read) @ g

    def wait(self, seconds: float) -> None:
        """Let ``seconds`` of bench time pass (devices relax meanwhile)."""
        if seconds < 0:
            raise ValueError(f"wait time must be >= 0 s, got {seconds!r}")
        self.bench_time += float(seconds)
        self._after_time_advance()

    def close(self) -> None:
        """Leave the hardware in its safe idle state (outputs off). Idempotent."""
        if not self._closed:
            self._closed = True
            self._close()

    def _close(self) -> None:
        """Subclass hook: turn outputs off, release instruments."""

    def __enter__(self) -> CrossbarArray:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def _form(self, idx: np.ndarray, v_pulse: np.ndarray, v_gate: np.ndarray, width: float) -> None: ...

    @abstractmethod
    def _set(self, idx: np.ndarray, v_gate: np.ndarray, v_pulse: np.ndarray, width: float) -> None: ...

    @abstractmethod
    def _reset(self, idx: np.ndarray, v_stop: np.ndarray, v_gate: np.ndarray, width: float) -> None: ...

    @abstractmethod
    def _read(self, idx: np.ndarray, v_read: float) -> np.ndarray: ...

    def identity(self) -> dict[str, str]:
        """Instrument identities for the run store (``{"backend": ..., ...}``)."""
        return {"backend": type(self).__name__}


def _logged(given: float | np.ndarray, per_cell: np.ndarray) -> float | np.ndarray:
    """The value to log for a parameter given as ``given``: one float for the whole batch when it
    was one number (the run store then keeps one value instead of one per cell), else ``per_cell``."""
    return float(per_cell[0]) if np.ndim(given) == 0 else per_cell
