"""The record of every device operation, as arrays emit it.

A :class:`~drivers.array.CrossbarArray` turns each whole-array or masked operation into one
:class:`OpBatch` (one row per addressed cell) and hands it to its listeners; the run store
appends it to ``/ops``. The record layout is :data:`OP_DTYPE`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np


class OpKind(IntEnum):
    """Kinds of device operation stored in the ``kind`` column of ``/ops``."""

    FORM = 0
    SET = 1
    RESET = 2
    READ = 3


#: One row of ``/ops``. Units: time s (bench clock), voltages V, width s, compliance A,
#: result S (measured conductance for READ; NaN for pulses, whose effect is seen by the next read).
OP_DTYPE = np.dtype(
    [
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


@dataclass
class OpBatch:
    """One operation applied to a set of cells.

    Attributes:
        records: structured array of :data:`OP_DTYPE`, shape (n_cells,), in bench-time order.
    """

    records: np.ndarray

    @property
    def kind(self) -> OpKind:
        return OpKind(int(self.records["kind"][0])) if len(self.records) else OpKind.READ

    def __len__(self) -> int:
        return len(self.records)


def make_batch(
    kind: OpKind,
    rows: np.ndarray,
    cols: np.ndarray,
    times: np.ndarray,
    *,
    v_gate: float | np.ndarray = np.nan,
    v_pulse: float | np.ndarray = np.nan,
    width: float | np.ndarray = np.nan,
    compliance: float | np.ndarray = np.nan,
    result: float | np.ndarray = np.nan,
) -> OpBatch:
    """Build an :class:`OpBatch`; scalar fields broadcast over the cells.

    Args:
        kind: operation kind.
        rows, cols: cell addresses, shape (n,).
        times: bench time of each cell's operation, s, shape (n,).
        v_gate, v_pulse, width, compliance, result: per-cell values or scalars (see :data:`OP_DTYPE`).
    """
    n = len(rows)
    rec = np.empty(n, dtype=OP_DTYPE)
    rec["time"] = times
    rec["kind"] = int(kind)
    rec["row"] = rows
    rec["col"] = cols
    rec["v_gate"] = v_gate
    rec["v_pulse"] = v_pulse
    rec["width"] = width
    rec["compliance"] = compliance
    rec["result"] = result
    return OpBatch(rec)
