"""The record of every device operation, as arrays emit it.

A :class:`~drivers.array.CrossbarArray` turns each whole-array or masked operation into one
:class:`OpBatch` (one row per addressed cell) and hands it to its listeners; the run store
appends it to ``/ops``. The expanded record layout is :data:`OP_DTYPE`; a batch keeps its
operation-wide values (kind, timing, scalar voltages) once, so the store can write them once
per batch instead of once per cell (see ``hil/SCHEMA.md``).
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class OpKind(IntEnum):
    """Kinds of device operation stored in the ``kind`` column of ``/ops``."""

    FORM = 0
    SET = 1
    RESET = 2
    READ = 3


#: One expanded row of ``/ops``. Units: time s (bench clock of the array), voltages V, width s,
#: compliance A, result S (measured conductance for READ; NaN for pulses, whose effect is seen
#: by the next read). ``array`` is the id of the array in the run's ``/arrays`` table.
OP_DTYPE = np.dtype(
    [
        ("array", "<u2"),
        ("time", "<f8"),
        ("kind", "u1"),
        ("row", "<u2"),
        ("col", "<u2"),
        ("v_gate", "<f4"),
        ("v_pulse", "<f4"),
        ("width", "<f4"),
        ("compliance", "<f4"),
        ("result", "<f4"),
    ]
)

#: The per-cell value fields of a batch (scalar for the whole batch, or one value per cell).
VALUE_FIELDS = ("v_gate", "v_pulse", "width", "compliance", "result")


def batch_times(t_start: float, t_step: float, n: int) -> np.ndarray:
    """Bench time of each cell of a batch: ``t_start + t_step * k`` for k = 1..n, s, shape (n,).

    The one formula by which arrays time their cells and the store expands batches (bit-exact).
    """
    return t_start + t_step * np.arange(1, n + 1)


class OpBatch:
    """One operation applied to a set of cells.

    Attributes:
        kind: the operation.
        rows, cols: cell addresses, shape (n,).
        cells, n_cols: the same addresses as flat indices ``row * n_cols + col`` (strictly
            increasing), when the array gave them so (``rows`` and ``cols`` are then derived on
            first use); else None.
        fields: per-field value (float for the whole batch or an array of shape (n,)); keys from
            :data:`VALUE_FIELDS`.
        t_start, t_step: the cells' bench times are ``t_start + t_step * k``, k = 1..n (s), when
            known; otherwise ``times`` holds them.
        array: id of the array in the run's array table (set by the store).
    """

    __slots__ = ("kind", "_rows", "_cols", "cells", "n_cols", "fields", "t_start", "t_step", "_times", "array",
                 "_records")

    def __init__(self, kind: OpKind, rows: np.ndarray | None = None, cols: np.ndarray | None = None, *,
                 cells: np.ndarray | None = None, n_cols: int | None = None, times: np.ndarray | None = None,
                 t_start: float | None = None, t_step: float | None = None,
                 fields: dict[str, float | np.ndarray] | None = None, array: int = 0) -> None:
        if times is None and (t_start is None or t_step is None):
            raise ValueError("an OpBatch needs its times or t_start and t_step")
        if (rows is None or cols is None) and (cells is None or n_cols is None):
            raise ValueError("an OpBatch needs its rows and cols, or its flat cells and n_cols")
        self.kind = OpKind(kind)
        self._rows = None if rows is None else np.asarray(rows)
        self._cols = None if cols is None else np.asarray(cols)
        self.cells = None if cells is None else np.asarray(cells)
        self.n_cols = None if n_cols is None else int(n_cols)
        self.fields = dict(fields or {})
        self.t_start, self.t_step = t_start, t_step
        self._times = None if times is None else np.asarray(times, dtype=np.float64)
        self.array = int(array)
        self._records: np.ndarray | None = None

    @property
    def rows(self) -> np.ndarray:
        """Row of each addressed cell, shape (n,)."""
        if self._rows is None:
            self._rows, self._cols = np.divmod(self.cells, self.n_cols)
        return self._rows

    @property
    def cols(self) -> np.ndarray:
        """Column of each addressed cell, shape (n,)."""
        if self._cols is None:
            self._rows, self._cols = np.divmod(self.cells, self.n_cols)
        return self._cols

    @classmethod
    def from_records(cls, rec: np.ndarray) -> OpBatch:
        """A batch from expanded records (any dtype with the :data:`OP_DTYPE` field names)."""
        rec = np.asarray(rec)
        kind = OpKind(int(rec["kind"][0])) if len(rec) else OpKind.READ
        names = rec.dtype.names or ()
        fields = {f: rec[f] for f in VALUE_FIELDS if f in names}
        b = cls(kind, rec["row"], rec["col"], times=rec["time"], fields=fields,
                array=int(rec["array"][0]) if "array" in names and len(rec) else 0)
        if len(rec) and "kind" in names and np.any(rec["kind"] != rec["kind"][0]):
            b._records = np.zeros(len(rec), OP_DTYPE)
            for f in names:
                if f in OP_DTYPE.names:
                    b._records[f] = rec[f]
        return b

    @property
    def times(self) -> np.ndarray:
        """Bench time of each cell's operation, s, shape (n,)."""
        if self._times is None:
            self._times = batch_times(self.t_start, self.t_step, len(self))
        return self._times

    @property
    def records(self) -> np.ndarray:
        """The batch as expanded :data:`OP_DTYPE` records, shape (n,), in bench-time order."""
        if self._records is None:
            rec = np.empty(len(self), dtype=OP_DTYPE)
            rec["array"] = self.array
            rec["time"] = self.times
            rec["kind"] = int(self.kind)
            rec["row"] = self.rows
            rec["col"] = self.cols
            for f in VALUE_FIELDS:
                rec[f] = self.fields.get(f, np.nan)
            self._records = rec
        return self._records

    def __len__(self) -> int:
        return len(self.cells) if self._rows is None else len(self._rows)


def make_batch(
    kind: OpKind,
    rows: np.ndarray | None,
    cols: np.ndarray | None,
    times: np.ndarray | None = None,
    *,
    cells: np.ndarray | None = None,
    n_cols: int | None = None,
    t_start: float | None = None,
    t_step: float | None = None,
    v_gate: float | np.ndarray = np.nan,
    v_pulse: float | np.ndarray = np.nan,
    width: float | np.ndarray = np.nan,
    compliance: float | np.ndarray = np.nan,
    result: float | np.ndarray = np.nan,
) -> OpBatch:
    """Build an :class:`OpBatch`; scalar fields apply to every cell.

    Args:
        kind: operation kind.
        rows, cols: cell addresses, shape (n,) — or None and give ``cells`` (strictly increasing
            flat indices ``row * n_cols + col``) and ``n_cols``.
        times: bench time of each cell's operation, s, shape (n,) — or give ``t_start`` and
            ``t_step`` (s) for ``times = t_start + t_step * k``, k = 1..n (:func:`batch_times`).
        v_gate, v_pulse, width, compliance, result: per-cell values or scalars (see :data:`OP_DTYPE`).
    """
    fields = {"v_gate": v_gate, "v_pulse": v_pulse, "width": width, "compliance": compliance, "result": result}
    shape = np.shape(rows if cells is None else cells)
    for k, v in fields.items():
        if isinstance(v, float):
            continue
        if np.ndim(v) == 0:
            fields[k] = float(v)
        elif np.shape(v) != shape:
            raise ValueError(f"{k} must be a scalar or one value per cell ({shape[0]}), got shape {np.shape(v)}")
    return OpBatch(kind, rows, cols, cells=cells, n_cols=n_cols, times=times, t_start=t_start, t_step=t_step,
                   fields=fields)
