"""Quantisation onto a set of (possibly unequally spaced) weight levels Q_0 < ... < Q_{L-1}.

Levels are dimensionless weights (for the memristor mapping, see :mod:`hil.mapping`, a level is
a target conductance mapped to a weight). All functions are vectorised over arrays of any shape.
"""

from __future__ import annotations

import numpy as np


def check_levels(levels: np.ndarray) -> np.ndarray:
    """``levels`` as a float array, shape (L,), L >= 2, strictly ascending; else ``ValueError``."""
    q = np.asarray(levels, dtype=np.float64)
    if q.ndim != 1 or q.size < 2:
        raise ValueError(f"levels must be a 1-D sequence of at least 2 values, got shape {q.shape}")
    if not np.all(np.isfinite(q)) or np.any(np.diff(q) <= 0):
        raise ValueError(f"levels must be finite and strictly ascending, got {q.tolist()}")
    return q


def intervals(levels: np.ndarray) -> np.ndarray:
    """Interval widths ``I_i = Q_{i+1} - Q_i``, shape (L-1,)."""
    return np.diff(check_levels(levels))


def _count_at_or_above(w: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Per element, how many ``thresholds`` are <= ``w`` (int8/int16; one vectorised pass per threshold)."""
    w = np.asarray(w)
    dtype = w.dtype if w.dtype.kind == "f" else np.dtype(np.float64)
    out = np.zeros(w.shape, dtype=np.int8 if thresholds.size < 127 else np.int16)
    for thr in thresholds.astype(dtype):
        np.add(out, w >= thr, out=out, casting="unsafe")
    return out


def quantize(w: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Index of the nearest level for every weight (ties go up), int8 array of ``w``'s shape.

    The decision thresholds are the interval midpoints ``(Q_i + Q_{i+1}) / 2``; weights beyond
    the outermost levels saturate at index 0 or L-1.
    """
    q = check_levels(levels)
    return _count_at_or_above(w, 0.5 * (q[1:] + q[:-1]))


def level_coordinate(w: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Position of ``w`` counted in intervals: ``phi(Q_i) = i``, linear inside each interval.

    ``phi(w) = i + (w - Q_i) / I_i`` for ``Q_i <= w <= Q_{i+1}``; beyond the outermost levels it
    continues with the width of the outermost interval. Same shape as ``w``, float.
    """
    q = check_levels(levels)
    w = np.asarray(w)
    dtype = w.dtype if w.dtype.kind == "f" else np.dtype(np.float64)
    i = _count_at_or_above(w, q[1:-1])  # interval index 0..L-2
    base = (np.arange(q.size - 1) - q[:-1] / np.diff(q)).astype(dtype)  # phi = base[i] + w / I_i
    inv_width = (1.0 / np.diff(q)).astype(dtype)
    return np.take(base, i) + w * np.take(inv_width, i)
