"""Filter weights in a SiOx array: bit-sliced binary cells (or one multi-level cell per weight).

The SiOx system stores "each weight of the filters ... digitalized in 4 bits inside the RRAM
array" (Muñoz-Martín, Bianchi et al., Fig. 3c) and computes the convolution as MVMs on it
(Fig. 3d). A weight ``w = 2 u / (2**b - 1) - 1`` (unsigned code ``u``, see
:mod:`hil.learning.filters`) is stored as:

``offset`` (default): one binary cell per bit (LRS = 1, HRS = 0) in ``b`` columns per filter, bit
    ``k`` of filter ``f`` in column ``f * b + k``, plus two reference columns: all cells HRS
    (``I_0``) and all cells LRS (``I_1``). Column currents are shifted and added::

        Y_f = 2 / (2**b - 1) * sum_k 2**k (I_fk - I_0) - (I_1 - I_0)  ~=  v_read * dG * sum_i x_i w_if

    (``I_fk - I_0`` removes the HRS leakage; ``I_1 - I_0 = v_read dG sum x`` is the offset of the
    unsigned code, measured rather than assumed).
``differential``: a differential pair of bit slices, ``u`` in the plus slice and its bitwise
    complement ``2**b - 1 - u`` in the minus slice (columns ``2 (f b + k)`` and ``+1``); every bit
    position holds one LRS and one HRS cell, so the leakage cancels::

        Y_f = 1 / (2**b - 1) * sum_k 2**k (I+_fk - I-_fk)
``multilevel``: one cell per weight at ``G_lo + u (G_hi - G_lo) / (2**b - 1)`` (all levels by
    program-and-verify) plus a reference column at the middle level: ``Y_f = 2 (I_f - I_ref)``.

In every scheme ``Y`` is in amperes and ``Y / (v_read * dG)`` is the response in weight units,
with ``dG`` the *measured* mean LRS - HRS difference (read back after programming).

Programming (:meth:`BitSlicedFilters.program`): every cell is formed once; LRS cells are written
by program-and-verify (:func:`hil.program.program_cells`) to ``G_on``, the conductance the
calibration table gives for the programming compliance ``i_c``, with the table's first-guess gate;
HRS cells get one RESET to ``v_stop`` (the HRS spread of paper Fig. 2f is what remains).
``i_c`` and ``v_stop`` are the parameters of paper Fig. 6. Re-programming a subset of filters
touches only their cells.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from drivers.array import CrossbarArray
from hil.learning.filters import check_bits
from hil.program import program_cells

log = logging.getLogger(__name__)

SCHEMES = ("offset", "differential", "multilevel")


@dataclass
class BitSlicedFilters:
    """Layout, programming and MVM of an (n_in, n_filters) code matrix in a crossbar.

    Attributes:
        n_in: rows used (pixels of a filter, 400).
        n_filters: filters (64).
        bits: bits per weight (1..8).
        scheme: ``"offset"``, ``"differential"`` or ``"multilevel"``.
        i_c: programming compliance of the LRS cells, A (binary schemes).
        v_stop: RESET stop voltage of the HRS cells, V (< 0).
        tolerance: program-and-verify tolerance of the LRS / multi-level cells (relative).
        max_pulses: program-and-verify pulse cap per cell.
        defect_correction: after programming, read the array once and correct the currents of
            the cells that failed (stuck from fabrication or worn out, outside the verify window
            by more than a factor 2): the host subtracts ``v_read * x_i * (G_read - G_intended)``
            of those cells only, the defect map of the measured array (the way a tester's
            redundancy repair uses a bitmap). Healthy cells are never corrected.
    """

    n_in: int
    n_filters: int
    bits: int = 4
    scheme: str = "offset"
    i_c: float = 60e-6
    v_stop: float = -2.8
    tolerance: float = 0.05
    max_pulses: int = 60
    defect_correction: bool = True
    g_on: float = field(default=np.nan, init=False)
    d_g: float = field(default=np.nan, init=False)
    reports: list = field(default_factory=list, init=False)
    correction: np.ndarray | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        check_bits(self.bits)
        if self.scheme not in SCHEMES:
            raise ValueError(f"scheme = {self.scheme!r} is not allowed; allowed: one of {list(SCHEMES)}")
        if not self.v_stop < 0:
            raise ValueError(f"v_stop = {self.v_stop!r} is not allowed; allowed: a voltage < 0 V")

    # ------------------------------------------------------------------ layout
    @property
    def shape(self) -> tuple[int, int]:
        """Array shape (rows, cols) the layout needs."""
        b, f = self.bits, self.n_filters
        cols = {"offset": f * b + 2, "differential": 2 * f * b, "multilevel": f + 1}[self.scheme]
        return (self.n_in, cols)

    def _filter_columns(self, filters: np.ndarray) -> np.ndarray:
        b = self.bits
        f = np.asarray(filters, dtype=np.intp)
        if self.scheme == "offset":
            return (f[:, None] * b + np.arange(b)).reshape(-1)
        if self.scheme == "differential":
            return (2 * (f[:, None] * b + np.arange(b))[:, :, None] + np.arange(2)).reshape(-1)
        return f

    def bit_pattern(self, codes: np.ndarray) -> np.ndarray:
        """Binary (LRS = True) state of every cell, (rows, cols), for unsigned codes (n_in, n_filters)."""
        if self.scheme == "multilevel":
            raise ValueError("the multilevel scheme has no binary pattern")
        u = np.asarray(codes, dtype=np.int64)
        b = self.bits
        bitplanes = ((u[:, :, None] >> np.arange(b)) & 1).astype(bool)  # (n_in, F, b)
        if self.scheme == "offset":
            out = np.zeros(self.shape, bool)
            out[:, : self.n_filters * b] = bitplanes.reshape(self.n_in, -1)
            out[:, -1] = True  # the all-LRS reference column; the one before it stays HRS
            return out
        pair = np.stack([bitplanes, ~bitplanes], axis=-1)  # plus: u, minus: complement
        return pair.reshape(self.n_in, -1)

    def level_targets(self, array: CrossbarArray, codes: np.ndarray) -> np.ndarray:
        """Multi-level targets, S, (rows, cols): codes over the technology's window, reference in the middle."""
        lo, hi = array.technology.g_window
        top = (1 << self.bits) - 1
        t = np.empty(self.shape)
        t[:, : self.n_filters] = lo + np.asarray(codes, float) * (hi - lo) / top
        t[:, -1] = 0.5 * (lo + hi)
        return t

    # ------------------------------------------------------------------ programming
    def lrs_target(self, table) -> float:
        """``G_on``, S: the table's conductance at compliance ``i_c`` (log-log interpolation)."""
        i_c, g = np.asarray(table.i_c, float), np.asarray(table.g_target, float)
        if not i_c[0] <= self.i_c <= i_c[-1]:
            raise ValueError(f"i_c = {self.i_c!r} is not allowed; allowed: a compliance in "
                             f"[{i_c[0]:.3e}, {i_c[-1]:.3e}] A (the calibration table's range)")
        return float(np.exp(np.interp(np.log(self.i_c), np.log(i_c), np.log(g))))

    def program(self, array: CrossbarArray, codes: np.ndarray, table, filters: np.ndarray | None = None) -> dict:
        """Write ``codes`` (n_in, n_filters) into ``array``; only the cells of ``filters`` (default all).

        Reference columns are written when all filters are. Forming is applied to cells never
        programmed before (``array.programming_events() == 0``). Returns a summary dict
        (cells, yield, pulses, measured G_on / G_off).
        """
        if array.shape != self.shape:
            raise ValueError(f"the array is {array.shape}, the {self.scheme} layout needs {self.shape}")
        rows, cols = self.shape
        col_mask = np.zeros(cols, bool)
        if filters is None:
            col_mask[:] = True
        else:
            col_mask[self._filter_columns(filters)] = True
        cells = np.flatnonzero(np.broadcast_to(col_mask, self.shape))
        fresh = cells[array.programming_events().reshape(-1)[cells] == 0]
        if fresh.size:
            array.form(fresh)
        if self.scheme == "multilevel":
            targets = self.level_targets(array, codes).reshape(-1)[cells]
            on_cells, on_targets, off_cells = cells, targets, cells[:0]
        else:
            self.g_on = self.lrs_target(table)
            lrs = self.bit_pattern(codes).reshape(-1)[cells]
            on_cells, off_cells = cells[lrs], cells[~lrs]
            on_targets = np.full(on_cells.size, self.g_on)
        if off_cells.size:
            array.reset_pulse(off_cells, v_stop=self.v_stop)
        report = program_cells(array, on_cells, on_targets, tolerance=self.tolerance, max_pulses=self.max_pulses,
                               first_guess=table.first_guess_map(on_targets))
        self.reports.append(report.summary())
        g_off = array.read_cells(off_cells) if off_cells.size else np.zeros(0)
        self._measure_scale(array, report, g_off)
        if self.defect_correction:
            self._map_defects(array, codes, cells)
        summary = {"cells": int(cells.size), "lrs_cells": int(on_cells.size), "hrs_cells": int(off_cells.size),
                   "yield": report.yield_, "mean_pulses": report.mean_pulses,
                   "g_on_mean": float(np.mean(report.g_final)) if on_cells.size else np.nan,
                   "g_off_mean": float(np.mean(g_off)) if g_off.size else np.nan, "d_g": self.d_g}
        log.info("programmed filters: %s", summary)
        return summary

    def _measure_scale(self, array: CrossbarArray, report, g_off: np.ndarray) -> None:
        """``dG`` (S) from the reads of this programming run (kept from the first full run otherwise)."""
        if self.scheme == "multilevel":
            lo, hi = array.technology.g_window
            self.d_g = float(hi - lo) if not np.isfinite(self.d_g) else self.d_g
            return
        if report.n_cells and g_off.size:
            self._g_off_median = float(np.median(g_off))
            self.d_g = float(np.median(report.g_final) - self._g_off_median)

    def intended(self, array: CrossbarArray, codes: np.ndarray) -> np.ndarray:
        """Conductance every cell was meant to have, S, (rows, cols) (the median HRS read for HRS cells)."""
        if self.scheme == "multilevel":
            return self.level_targets(array, codes)
        g_off = getattr(self, "_g_off_median", 0.0)
        return np.where(self.bit_pattern(codes), self.g_on, g_off)

    def _map_defects(self, array: CrossbarArray, codes: np.ndarray, cells: np.ndarray) -> None:
        """Read the cells just programmed; keep ``G_read - G_intended`` of those off by more than 2x."""
        if self.correction is None:
            self.correction = np.zeros(self.shape)
        g = array.read_cells(cells)
        want = self.intended(array, codes).reshape(-1)[cells]
        floor = 0.5 * self.g_on if self.scheme != "multilevel" else 0.5 * array.technology.g_window[0]
        bad = (np.abs(g - want) > np.maximum(want, floor)) | (g < 0.5 * want)
        flat = self.correction.reshape(-1)
        flat[cells] = np.where(bad, g - want, 0.0)
        self.n_defects = int(np.count_nonzero(self.correction))

    # ------------------------------------------------------------------ compute
    def combine(self, currents: np.ndarray) -> np.ndarray:
        """Column currents (..., cols), A -> filter currents ``Y`` (..., n_filters), A."""
        i = np.asarray(currents, dtype=np.float64)
        b, f = self.bits, self.n_filters
        top = (1 << b) - 1
        shifts = (2.0 ** np.arange(b))
        if self.scheme == "offset":
            i0, i1 = i[..., -2:-1], i[..., -1:]
            sl = (i[..., : f * b] - i0).reshape(i.shape[:-1] + (f, b))
            return (2.0 / top) * (sl @ shifts) - (i1 - i0)
        if self.scheme == "differential":
            sl = i.reshape(i.shape[:-1] + (f, b, 2))
            return ((sl[..., 0] - sl[..., 1]) @ shifts) / top
        return 2.0 * (i[..., :f] - i[..., -1:])

    def responses(self, array: CrossbarArray, x: np.ndarray, chunk: int = 8192) -> np.ndarray:
        """``Y`` (A) for input vectors ``x`` (n, n_in) in [0, 1], through ``array.mvm`` (measured)."""
        x = np.asarray(x)
        out = np.empty((x.shape[0], self.n_filters))
        v_read = array.technology.v_read
        # combine() is linear, so the defects' correction is applied per filter, not per column:
        # combine(I - (x v) C) = combine(I) - (x v) combine(C), a 4x smaller product for 4 bits,
        # in the precision of x (single for the experiment's patches, like the MVM's own sums)
        fix = None
        if self.correction is not None and self.n_defects:
            fix = self.combine(self.correction).astype(np.result_type(x.dtype, np.float32), copy=False)
        for s in range(0, x.shape[0], chunk):
            out[s:s + chunk] = self.combine(array.mvm(x[s:s + chunk]))
            if fix is not None:
                out[s:s + chunk] -= (x[s:s + chunk] * v_read) @ fix
        return out

    def to_weight_units(self, y: np.ndarray, v_read: float) -> np.ndarray:
        """Responses in weight units: ``Y / (v_read dG)``."""
        return np.asarray(y) / (v_read * self.d_g)
