"""Raw characterisation data of a 1T1R array, as the characterisation procedures measure it.

:class:`CharacterisationData` is the in-memory form that the fits (:mod:`calibration.fit`) and
the table builder (:mod:`calibration.table`) consume. The procedures that fill it run through a
:class:`~drivers.array.CrossbarArray` and live in :mod:`hil.experiments.characterise`, which
also stores the raw maps in the run file and reads them back.

Conventions (all SI):
    * ``N = rows * cols`` cells, flattened in row-major order; per-cell arrays have shape (N,).
    * Conductances in S (NaN = not measured, or excluded as a non-switching event), voltages in
      V, currents in A, times in s.
    * ``J`` compliance conditions, ``M`` V_STOP conditions, ``K`` cycles per condition,
      ``R`` repeated reads, ``T`` relaxation read times, ``L`` I-V compliances, ``P``/``Q``
      staircase steps, ``n_iv`` I-V cells.

:meth:`CharacterisationData.validate` checks that everything a fit needs is present, finite
where it must be, and big enough; it raises :class:`CalibrationDataError` naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drivers.technology import Transistor

#: Fewest usable cells per condition for a fit (below it a spread estimate is meaningless:
#: the relative standard error of a standard deviation from n samples is ~1/sqrt(2n)).
MIN_CELLS = 20


class CalibrationDataError(ValueError):
    """Characterisation data are missing, malformed or too thin to fit; the message says which."""


@dataclass
class CharacterisationData:
    """Everything the characterisation procedures measured on one array.

    Attributes:
        technology: technology name (``"hfo2"``, ``"siox"``, or a bench's own).
        shape: (rows, cols) of the array.
        v_read: read voltage, V.
        aperture: read aperture (integration time), s.
        transistor: access transistor used to convert gate voltage to compliance (taken as known
            from the PDK; the array reports conductance, not I_C).
        source: where the data came from (run file, backend identity).
        g_pristine: read before forming, S, (N,).
        form_steps: forming staircase amplitudes, V, (S,), ascending.
        form_v: per-cell staircase amplitude at which the cell was first seen formed, V, (N,);
            NaN if it never formed within the staircase.
        form_v_gate: gate voltage during forming, V.
        lrs_v_gate: gate voltages of the LRS-vs-I_C sweep, V, (J,), ascending.
        lrs_i_c: compliance currents of those gates, A, (J,).
        lrs_g: read after each SET, S, (J, K, N); NaN where the SET did not switch.
        lrs_g_reset: read after the RESET preceding each SET, S, (J, K, N).
        lrs_v_stop: V_STOP of those RESETs, V (< 0).
        hrs_v_stop: V_STOP conditions of the HRS sweep, V, (M,) (< 0, |V| ascending).
        hrs_g: read after each RESET, S, (M, K, N); NaN where the RESET did not switch.
        hrs_g_set: read after the SET preceding each RESET, S, (M, K, N).
        noise_g: repeated back-to-back reads of a programmed state, S, (R, N).
        relax_t: time since programming of each relaxation read, s, (T,).
        relax_g: relaxation reads, S, (T, N).
        relax_v_gate: gate of the SET before the relaxation reads, V.
        iv_v_gate: gates of the quasi-static I-V loops, V, (L,).
        iv_v_set: SET staircase amplitudes, V, (P,).
        iv_v_reset: RESET staircase amplitudes, V, (Q,) (< 0).
        iv_cells: flat indices of the I-V cells, (n_iv,).
        iv_g_set: reads after each SET step, S, (L, P, n_iv).
        iv_g_reset: reads after each RESET step, S, (L, Q, n_iv).
        preformed: cells already conductive before forming (stuck in LRS), (N,) bool.
        excluded: cells excluded from every fit (never formed, pre-formed, non-switching), (N,) bool.
        meta: anything else JSON-ready (plan, run file, seed ...).
    """

    technology: str
    shape: tuple[int, int]
    v_read: float
    aperture: float
    transistor: Transistor
    source: str
    g_pristine: np.ndarray
    form_steps: np.ndarray
    form_v: np.ndarray
    form_v_gate: float
    lrs_v_gate: np.ndarray
    lrs_i_c: np.ndarray
    lrs_g: np.ndarray
    lrs_g_reset: np.ndarray
    lrs_v_stop: float
    hrs_v_stop: np.ndarray
    hrs_g: np.ndarray
    hrs_g_set: np.ndarray
    noise_g: np.ndarray
    relax_t: np.ndarray
    relax_g: np.ndarray
    relax_v_gate: float
    iv_v_gate: np.ndarray = field(default_factory=lambda: np.zeros(0))
    iv_v_set: np.ndarray = field(default_factory=lambda: np.zeros(0))
    iv_v_reset: np.ndarray = field(default_factory=lambda: np.zeros(0))
    iv_cells: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    iv_g_set: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)))
    iv_g_reset: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)))
    preformed: np.ndarray | None = None
    excluded: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_cells(self) -> int:
        return int(self.shape[0] * self.shape[1])

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Check shapes, values and sizes; raise :class:`CalibrationDataError` naming the problem."""
        n = self.n_cells
        if n < MIN_CELLS:
            raise CalibrationDataError(
                f"array of {self.shape[0]}x{self.shape[1]} = {n} cells is too small to fit; "
                f"need at least {MIN_CELLS} cells"
            )
        _finite_positive("v_read", self.v_read)
        _finite_positive("aperture", self.aperture)
        _finite_positive("transistor.k", self.transistor.k)

        _check_shape("g_pristine", self.g_pristine, (n,))
        _check_shape("form_v", self.form_v, (n,))
        steps = _vector("form_steps", self.form_steps, min_len=2)
        _ascending("form_steps", steps)

        vg = _vector("lrs_v_gate", self.lrs_v_gate, min_len=3, what="compliance conditions (to fit the spread law)")
        _ascending("lrs_v_gate", vg)
        ic = _vector("lrs_i_c", self.lrs_i_c, min_len=3)
        if ic.shape != vg.shape:
            raise CalibrationDataError(f"lrs_i_c has {ic.size} entries, lrs_v_gate {vg.size}")
        if np.any(ic <= 0):
            raise CalibrationDataError(
                f"lrs_i_c must be > 0 A; gate {vg[np.argmin(ic)]:.3f} V gives {ic.min():.3e} A "
                "(gate below the transistor threshold?)"
            )
        j = vg.size
        lrs = _cube("lrs_g", self.lrs_g, j, n, min_cycles=2)
        _check_shape("lrs_g_reset", self.lrs_g_reset, lrs.shape)
        if not (np.isfinite(self.lrs_v_stop) and self.lrs_v_stop < 0):
            raise CalibrationDataError(f"lrs_v_stop must be a negative voltage, got {self.lrs_v_stop!r}")

        vs = _vector("hrs_v_stop", self.hrs_v_stop, min_len=2, what="V_STOP conditions (to fit the HRS law)")
        if np.any(vs >= 0):
            raise CalibrationDataError(f"hrs_v_stop must all be < 0 V, got {vs.tolist()}")
        _ascending("|hrs_v_stop|", np.abs(vs))
        hrs = _cube("hrs_g", self.hrs_g, vs.size, n, min_cycles=2)
        _check_shape("hrs_g_set", self.hrs_g_set, hrs.shape)

        noise = np.asarray(self.noise_g, dtype=float)
        if noise.ndim != 2 or noise.shape[1] != n or noise.shape[0] < 3:
            raise CalibrationDataError(f"noise_g must have shape (R >= 3, {n}), got {noise.shape}")
        t = _vector("relax_t", self.relax_t, min_len=3, what="relaxation read times")
        if np.any(t <= 0):
            raise CalibrationDataError(f"relax_t must be > 0 s after programming, got {t.min():.3g} s")
        _ascending("relax_t", t)
        _check_shape("relax_g", self.relax_g, (t.size, n))

        healthy = int(np.count_nonzero(~self.excluded_mask()))
        if healthy < MIN_CELLS:
            raise CalibrationDataError(
                f"only {healthy} of {n} cells are usable (the rest never formed, were pre-formed or did "
                f"not switch); need at least {MIN_CELLS}"
            )
        for name in ("g_pristine", "lrs_g_reset", "hrs_g_set", "noise_g", "relax_g"):
            arr = np.asarray(getattr(self, name), dtype=float)
            usable = arr[..., ~self.excluded_mask()] if arr.shape[-1] == n else arr
            if usable.size and not np.all(np.isfinite(usable)):
                bad = int(np.count_nonzero(~np.isfinite(usable)))
                raise CalibrationDataError(f"{name} has {bad} non-finite values in cells that are not excluded")
        for name, arr in (("lrs_g", lrs), ("hrs_g", hrs)):
            usable = arr[..., ~self.excluded_mask()]
            if np.any(np.isinf(usable)) or np.any(usable[np.isfinite(usable)] <= 0):
                raise CalibrationDataError(f"{name} has infinite or non-positive conductances")
            per_condition = np.isfinite(usable).all(axis=1).sum(axis=-1)
            if np.any(per_condition < MIN_CELLS):
                k = int(np.argmin(per_condition))
                raise CalibrationDataError(
                    f"{name} condition {k} has only {int(per_condition[k])} cells that switched in every "
                    f"cycle; need at least {MIN_CELLS}"
                )

    def preformed_mask(self) -> np.ndarray:
        """Cells seen conductive before forming, bool (N,)."""
        if self.preformed is None:
            return np.zeros(self.n_cells, dtype=bool)
        pre = np.asarray(self.preformed, dtype=bool)
        if pre.shape != (self.n_cells,):
            raise CalibrationDataError(f"preformed must have shape ({self.n_cells},), got {pre.shape}")
        return pre

    def excluded_mask(self) -> np.ndarray:
        """Cells excluded from every fit, bool (N,)."""
        if self.excluded is None:
            return np.zeros(self.n_cells, dtype=bool)
        ex = np.asarray(self.excluded, dtype=bool)
        if ex.shape != (self.n_cells,):
            raise CalibrationDataError(f"excluded must have shape ({self.n_cells},), got {ex.shape}")
        return ex


# ---------------------------------------------------------------------- helpers
def _finite_positive(name: str, value: float) -> None:
    if not (np.isfinite(value) and value > 0):
        raise CalibrationDataError(f"{name} must be a positive finite number, got {value!r}")


def _check_shape(name: str, arr: np.ndarray, shape: tuple[int, ...]) -> None:
    a = np.asarray(arr)
    if a.shape != tuple(shape):
        raise CalibrationDataError(f"{name} must have shape {tuple(shape)}, got {a.shape}")


def _vector(name: str, arr: np.ndarray, min_len: int, what: str = "entries") -> np.ndarray:
    a = np.asarray(arr, dtype=float)
    if a.ndim != 1:
        raise CalibrationDataError(f"{name} must be 1-D, got shape {a.shape}")
    if a.size < min_len:
        raise CalibrationDataError(f"{name} has {a.size} {what}; need at least {min_len}")
    if not np.all(np.isfinite(a)):
        raise CalibrationDataError(f"{name} contains NaN or infinite values: {a.tolist()}")
    return a


def _ascending(name: str, a: np.ndarray) -> None:
    if np.any(np.diff(a) <= 0):
        raise CalibrationDataError(f"{name} must be strictly ascending, got {np.round(a, 6).tolist()}")


def _cube(name: str, arr: np.ndarray, j: int, n: int, min_cycles: int) -> np.ndarray:
    a = np.asarray(arr, dtype=float)
    if a.ndim != 3 or a.shape[0] != j or a.shape[2] != n:
        raise CalibrationDataError(f"{name} must have shape ({j}, K, {n}), got {a.shape}")
    if a.shape[1] < min_cycles:
        raise CalibrationDataError(
            f"{name} has {a.shape[1]} cycle(s) per condition; need at least {min_cycles} to separate "
            "cycle-to-cycle from device-to-device spread"
        )
    return a
