"""Mapping signed weights onto memristor conductances, and measured conductances back.

A weight level ``Q_i`` (dimensionless, signed) is stored as one or two target conductances
(siemens); the forward pass maps the conductances *measured* on the array back to weights.
Two mappings, both linear:

**Offset reference** (:class:`OffsetReferenceMapping`, one device per weight, the default)::

    W = (G - G_ref) / G_unit

Device level ``G_i`` (a multi-level state, e.g. a compliance-set HCS) stores weight
``Q_i = (G_i - G_ref) / G_unit``. ``G_ref`` is the conductance of a reference: a column of
devices programmed to ``G_ref`` whose current ``v_read * sum_i x_i G_ref`` is subtracted from every
bit-line current (equivalently, the host subtracts it digitally, since it knows ``x``). With the
HfO2 preset's 8 levels (25..200 uS) and ``G_ref`` at the middle of the window (112.5 uS),
``G_unit = 87.5 uS`` gives ``Q = +-{1, 3, 5, 7} / 7``. Unequally spaced device levels give
unequally spaced weight levels: that is the case the metaplastic rule of
:mod:`hil.learning.metaplastic` is written for.

**Differential pair** (:class:`DifferentialPairMapping`, two devices per weight)::

    W = (G+ - G-) / G_unit

A positive level ``Q_k`` is ``(G+, G-) = (G_pos[k], G_low)``, a negative one the mirror image.
The pair of weight ``(r, c)`` sits in columns ``2c`` (G+) and ``2c + 1`` (G-) of the array.
From the HfO2 levels: ``G_low = 25 uS`` and ``G_pos = 50, 100, 150, 200 uS`` give again
``Q = +-{1, 3, 5, 7} / 7`` with ``G_unit = 175 uS``. Twice the devices; robust to a common-mode
drift.

Defective cells (stuck LRS, never formed) read far outside the level window. The measured
weight is clamped to the level range widened by half the outer interval on each side:
``[Q_0 - I_0 / 2, Q_{L-1} + I_{L-2} / 2]`` — a failed cell then acts as a saturated weight, as a
bit-line current limiter or ADC range would make it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _levels(g_levels: np.ndarray) -> np.ndarray:
    g = np.asarray(g_levels, dtype=np.float64)
    if g.ndim != 1 or g.size < 2 or np.any(np.diff(g) <= 0) or np.any(g <= 0):
        raise ValueError(f"conductance levels must be >= 2 positive, strictly ascending values (S), got {g!r}")
    return g


@dataclass(frozen=True)
class OffsetReferenceMapping:
    """One device per weight: ``W = (G - G_ref) / G_unit``.

    Attributes:
        g_levels: target conductance of each level, S, shape (L,), ascending.
        g_ref: reference conductance, S.
        g_unit: conductance per unit weight, S.
    """

    g_levels: np.ndarray
    g_ref: float
    g_unit: float

    cells_per_weight = 1
    name = "offset-reference"

    @classmethod
    def from_levels(cls, g_levels: np.ndarray) -> OffsetReferenceMapping:
        """``G_ref`` at the middle of the level window, ``G_unit`` its half-width: weights in [-1, 1]."""
        g = _levels(g_levels)
        return cls(g, float(0.5 * (g[0] + g[-1])), float(0.5 * (g[-1] - g[0])))

    @property
    def weight_levels(self) -> np.ndarray:
        """Weight levels Q, shape (L,)."""
        return (np.asarray(self.g_levels) - self.g_ref) / self.g_unit

    def array_shape(self, n_in: int, n_out: int) -> tuple[int, int]:
        """Array shape (rows, cols) holding an (n_in, n_out) weight matrix."""
        return (n_in, n_out)

    def targets(self, level_idx: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Target conductances, S, array shape, for level indices ``level_idx`` (n_in, n_out).

        ``out``: optional float64 buffer of the array shape to write into (no allocation).
        """
        return np.take(np.asarray(self.g_levels), level_idx, out=out)

    def cell_mask(self, weight_mask: np.ndarray) -> np.ndarray:
        """Cells (array shape) that store the weights in ``weight_mask`` (n_in, n_out)."""
        return np.asarray(weight_mask, dtype=bool)

    def weight_range(self) -> tuple[float, float]:
        q = self.weight_levels
        return float(q[0] - 0.5 * (q[1] - q[0])), float(q[-1] + 0.5 * (q[-1] - q[-2]))

    def to_weight(self, g: np.ndarray, dtype: type = np.float32) -> np.ndarray:
        """Weights (n_in, n_out) from measured conductances ``g`` (S, array shape), clamped.

        Element-wise, so it also maps any subset of cells (e.g. ``g[cells]``) to the same values.
        """
        lo, hi = self.weight_range()
        w = (np.asarray(g) - self.g_ref) * (1.0 / self.g_unit)
        return np.clip(w, lo, hi).astype(dtype, copy=False)


@dataclass(frozen=True)
class DifferentialPairMapping:
    """Two devices per weight: ``W = (G+ - G-) / G_unit``, pair in columns (2c, 2c+1).

    Attributes:
        g_low: conductance of the idle device of a pair, S.
        g_pos: conductances of the active device for the positive levels, S, shape (K,), ascending.
        g_unit: conductance per unit weight, S.
    """

    g_low: float
    g_pos: np.ndarray
    g_unit: float

    cells_per_weight = 2
    name = "differential-pair"

    @classmethod
    def from_levels(cls, g_levels: np.ndarray) -> DifferentialPairMapping:
        """``G_low`` = the lowest level, ``G_pos`` = every second level above it (2K weight levels
        from 2K device levels), ``G_unit`` = the largest difference: weights in [-1, 1]."""
        g = _levels(g_levels)
        g_pos = g[1::2]
        return cls(float(g[0]), g_pos, float(g_pos[-1] - g[0]))

    @property
    def weight_levels(self) -> np.ndarray:
        """Weight levels Q, shape (2K,): the mirrored negative levels, then the positive ones."""
        pos = (np.asarray(self.g_pos) - self.g_low) / self.g_unit
        return np.concatenate([-pos[::-1], pos])

    def array_shape(self, n_in: int, n_out: int) -> tuple[int, int]:
        return (n_in, 2 * n_out)

    def _pair_tables(self) -> tuple[np.ndarray, np.ndarray]:
        k = len(self.g_pos)
        g_pos = np.asarray(self.g_pos)
        plus = np.concatenate([np.full(k, self.g_low), g_pos])
        minus = np.concatenate([g_pos[::-1], np.full(k, self.g_low)])
        return plus, minus

    def targets(self, level_idx: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Target conductances, S, shape (n_in, 2 n_out), for level indices (n_in, n_out).

        ``out``: optional float64 buffer of that shape to write into.
        """
        plus, minus = self._pair_tables()
        if out is None:
            out = np.empty((level_idx.shape[0], 2 * level_idx.shape[1]))
        out[:, 0::2] = np.take(plus, level_idx)
        out[:, 1::2] = np.take(minus, level_idx)
        return out

    def cell_mask(self, weight_mask: np.ndarray) -> np.ndarray:
        """Both cells of every pair in ``weight_mask`` (n_in, n_out) -> (n_in, 2 n_out)."""
        return np.repeat(np.asarray(weight_mask, dtype=bool), 2, axis=1)

    def weight_range(self) -> tuple[float, float]:
        q = self.weight_levels
        return float(q[0] - 0.5 * (q[1] - q[0])), float(q[-1] + 0.5 * (q[-1] - q[-2]))

    def to_weight(self, g: np.ndarray, dtype: type = np.float32) -> np.ndarray:
        """Weights (n_in, n_out) from measured conductances ``g`` (S, (n_in, 2 n_out)), clamped."""
        g = np.asarray(g)
        lo, hi = self.weight_range()
        w = (g[:, 0::2] - g[:, 1::2]) * (1.0 / self.g_unit)
        return np.clip(w, lo, hi).astype(dtype, copy=False)


MAPPINGS = {"offset-reference": OffsetReferenceMapping, "differential-pair": DifferentialPairMapping}


def make_mapping(name: str, g_levels: np.ndarray) -> OffsetReferenceMapping | DifferentialPairMapping:
    """The mapping called ``name`` built from device levels ``g_levels`` (S)."""
    if name not in MAPPINGS:
        raise ValueError(f"mapping={name!r} is not one of {sorted(MAPPINGS)}")
    return MAPPINGS[name].from_levels(g_levels)
