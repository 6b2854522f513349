"""Vectorised physics of a 1T1R memristor array.

The model keeps, per cell (flat arrays of length ``rows * cols``):

* the conductance at the last programming event ``g_prog`` (S) and its time ``t_prog`` (s);
* whether the cell is formed, and its own forming voltage (V);
* fixed device-to-device factors for the LRS and the HRS;
* a stuck-at state (0 healthy, +1 stuck in LRS, -1 stuck in HRS);
* SET / RESET / forming counts, and the number of cycles after which the cell wears out.

Operations act on flat index arrays, never on one cell at a time:

* **Forming**: the first SET needs ``v_pulse >= v_form`` (per cell); it forms the filament and
  sets the cell to the LRS of the compliance in force.
* **SET under compliance** ``I_C`` (from the gate voltage through the access transistor): the
  LRS conductance is log-normal about ``d2d * I_C / V0`` with a relative spread
  ``sigma_lrs_ref * (i_ref / I_C) ** sigma_lrs_exp`` that grows as ``I_C`` falls. A pulse moves
  the conductance a fraction ``1 - exp(-width/tau_set * exp((v_pulse - v_set_thr)/v_set_slope))``
  of the way to that LRS (partial SET, used by ISPP). A SET never lowers the conductance.
* **RESET to V_STOP**: the HRS resistance is log-normal about
  ``r_hrs0 * exp(|V_STOP| / hrs_v)``; a pulse moves ``ln G`` a fraction (same kinetics form,
  own constants) of the way to it (partial RESET). A RESET never raises the conductance.
* **Read** at ``v_read``, two separate noise sources:

  - the *instrument*: relative noise ``sigma_read * sqrt(1 ms / aperture)`` plus a current noise
    floor ``i_noise_floor * sqrt(1 ms / aperture)``; a longer aperture averages it away;
  - the *device* (random telegraph noise and 1/f fluctuations of the filament): relative noise
    ``read_dev_ref * (g_read_ref / G) ** read_dev_exp`` (larger relative noise at low
    conductance), independent of the aperture: its correlation times are longer than any
    aperture, so averaging one read longer does not remove it (a floor). Each read draws it
    afresh (reads are milliseconds to seconds apart, the fluctuation's time scale).
* **Relaxation** after each programming event, with ``L = ln(1 + (t - t_prog) / t_relax0)`` and
  two per-programming standard normals ``z``, ``z_abs``:
  ``G(t) = g_prog * exp(L * (drift + sigma_relax * z)) + L * sigma_relax_abs * z_abs``:
  a relative part (drift ``drift_relax`` for cells programmed at or above ``g_mid``,
  ``drift_relax_hrs`` below it, so the HRS can relax upward) and, for cells programmed at or
  above ``g_mid`` (the LRS levels), a conductance-independent part ``sigma_relax_abs`` (S per
  unit of ``L``); both spreads grow with log(time). The result is
  floored at ``g_pristine``.
* **Endurance**: a cell whose SET+RESET count reaches its own (log-normal) endurance sticks in
  the state it is in. A fraction of cells is stuck from fabrication.

All randomness comes from one seeded :class:`numpy.random.Generator`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from drivers.technology import Transistor

#: Precision of the simulated Kirchhoff sums of :meth:`ArrayPhysics.mvm` (see there).
MVM_DTYPE = np.float32


def _per_index(value: float | np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``value`` (V) as a float array of the shape of ``idx`` (a view when it has that shape already)."""
    v = np.asarray(value, dtype=float)
    return v if v.shape == idx.shape else np.broadcast_to(v, idx.shape)


#: Stuck-at codes.
HEALTHY, STUCK_LRS, STUCK_HRS = 0, 1, -1


@dataclass(frozen=True)
class DeviceParams:
    """Physical parameters of a 1T1R technology (SI units). See the module docstring."""

    name: str
    transistor: Transistor
    # SET / LRS
    v0: float  # V; LRS conductance ~ I_C / v0
    sigma_lrs_ref: float  # relative LRS spread at i_ref (cycle-to-cycle, one SET)
    i_ref: float  # A
    sigma_lrs_exp: float  # spread ~ (i_ref / I_C) ** exp
    v_set_thr: float  # V; SET amplitude at which the switching rate is 1/tau_set
    v_set_slope: float  # V per e-fold of the SET rate
    tau_set: float  # s
    # RESET / HRS
    r_hrs0: float  # ohm; HRS median extrapolated to |V_STOP| = 0
    hrs_v: float  # V per e-fold of HRS resistance with |V_STOP|
    sigma_hrs: float  # ln-units, log-normal HRS spread
    v_reset_thr: float  # V (magnitude)
    v_reset_slope: float  # V per e-fold
    tau_reset: float  # s
    sigma_kinetics: float  # ln-units, cycle-to-cycle spread of the switching rate
    # forming
    v_form: float  # V, median forming voltage
    sigma_form: float  # V, device-to-device spread of the forming voltage
    g_pristine: float  # S, conductance before forming
    # read
    sigma_read: float  # relative read noise at 1 ms aperture
    i_noise_floor: float  # A, additive current noise (one sigma)
    # relaxation
    sigma_relax: float  # ln-units per unit of ln(1 + t/t0)
    drift_relax: float  # mean ln drift per unit of ln(1 + t/t0)
    t_relax0: float  # s
    # variability and defects
    sigma_d2d: float  # ln-units, device-to-device LRS factor
    sigma_d2d_hrs: float  # ln-units, device-to-device HRS factor
    p_stuck_lrs: float  # fraction of cells stuck in LRS from fabrication
    p_stuck_hrs: float  # fraction stuck in HRS (never form)
    g_stuck_lrs: float  # S, conductance of a stuck-LRS cell
    endurance_median: float  # SET+RESET cycles
    sigma_endurance: float  # ln-units
    g_mid: float  # S; above this a worn-out cell sticks in LRS, below it in HRS
    # device read noise (RTN + 1/f), not averaged by the aperture; 0 = none
    read_dev_ref: float = 0.0  # relative one-sigma fluctuation at g_read_ref
    g_read_ref: float = 100e-6  # S
    read_dev_exp: float = 0.0  # relative noise ~ (g_read_ref / G) ** exp
    read_dev_max: float = 0.3  # cap of the relative fluctuation (deep HRS)
    # conductance-independent relaxation spread and HRS drift
    sigma_relax_abs: float = 0.0  # S per unit of ln(1 + t/t0)
    drift_relax_hrs: float | None = None  # ln drift below g_mid; None: same as drift_relax

    def read_dev_rel(self, g: np.ndarray) -> np.ndarray:
        """Relative (ln-unit) one-sigma device read fluctuation at ``g`` (S), capped at ``read_dev_max``."""
        if self.read_dev_ref == 0.0:
            return np.zeros(np.shape(g))
        gg = np.maximum(np.asarray(g, dtype=float), 1e-12)
        return np.minimum(self.read_dev_ref * (self.g_read_ref / gg) ** self.read_dev_exp, self.read_dev_max)

    def read_fluctuation(self, g: np.ndarray, z: np.ndarray) -> np.ndarray:
        """``g`` (S) times one log-normal draw of the device fluctuation (mean kept, never < 0)."""
        s = self.read_dev_rel(g)
        return g * np.exp(s * z - 0.5 * s * s)

    def lrs_spread(self, compliance: np.ndarray) -> np.ndarray:
        """Relative (ln-unit) cycle-to-cycle LRS spread at compliance ``compliance`` (A)."""
        ic = np.maximum(np.asarray(compliance, dtype=float), 1e-12)
        return np.minimum(self.sigma_lrs_ref * (self.i_ref / ic) ** self.sigma_lrs_exp, 2.0)

    def hrs_median(self, v_stop: np.ndarray) -> np.ndarray:
        """Median HRS resistance (ohm) after a full RESET to ``v_stop`` (V)."""
        return self.r_hrs0 * np.exp(np.abs(np.asarray(v_stop, dtype=float)) / self.hrs_v)

    def to_dict(self) -> dict:
        """JSON-ready parameters (for the run store's configuration)."""
        return asdict(self)


class ArrayPhysics:
    """State and dynamics of a (rows, cols) 1T1R array. Vectorised over flat indices.

    Args:
        params: the technology's :class:`DeviceParams`.
        shape: (rows, cols).
        seed: seed of the model's random generator (device variability and noise).
    """

    def __init__(self, params: DeviceParams, shape: tuple[int, int], seed: int | None = 0) -> None:
        self.params = params
        self.shape = (int(shape[0]), int(shape[1]))
        n = self.shape[0] * self.shape[1]
        self.rng = np.random.default_rng(seed)
        rng, p = self.rng, params
        self.t = 0.0
        self.d2d = np.exp(p.sigma_d2d * rng.standard_normal(n) - 0.5 * p.sigma_d2d**2)
        self.d2d_hrs = np.exp(p.sigma_d2d_hrs * rng.standard_normal(n))
        self.v_form_cell = p.v_form + p.sigma_form * rng.standard_normal(n)
        self.endurance = p.endurance_median * np.exp(p.sigma_endurance * rng.standard_normal(n))
        u = rng.random(n)
        self.stuck = np.zeros(n, dtype=np.int8)
        self.stuck[u < p.p_stuck_lrs] = STUCK_LRS
        self.stuck[(u >= p.p_stuck_lrs) & (u < p.p_stuck_lrs + p.p_stuck_hrs)] = STUCK_HRS
        self.v_form_cell[self.stuck == STUCK_HRS] = np.inf
        self.formed = self.stuck == STUCK_LRS
        self.g_prog = np.where(self.stuck == STUCK_LRS, p.g_stuck_lrs, p.g_pristine * self.d2d_hrs)
        self.t_prog = np.zeros(n)
        self.z_relax = np.zeros(n)
        self.z_relax_abs = np.zeros(n)
        self.n_set = np.zeros(n, dtype=np.int64)
        self.n_reset = np.zeros(n, dtype=np.int64)
        self.n_form = np.zeros(n, dtype=np.int64)

    # ------------------------------------------------------------------ state
    #: Per-cell state that programming changes.
    _STATE_ARRAYS = ("stuck", "formed", "g_prog", "t_prog", "z_relax", "z_relax_abs", "n_set", "n_reset", "n_form")
    #: Per-cell draws fixed at construction (regenerated by the same seed).
    _FIXED_ARRAYS = ("d2d", "d2d_hrs", "v_form_cell", "endurance")

    def get_state(self, include_fixed: bool = False) -> tuple[dict[str, np.ndarray], dict]:
        """Everything needed to continue this array exactly: (arrays, JSON-ready meta).

        Args:
            include_fixed: also save the fixed device-to-device draws. Without them, the state
                can only be restored into a model built with the same parameters and seed.
        """
        names = self._STATE_ARRAYS + (self._FIXED_ARRAYS if include_fixed else ())
        arrays = {name: getattr(self, name).copy() for name in names}
        meta = {"t": self.t, "shape": list(self.shape), "params": self.params.name,
                "rng": self.rng.bit_generator.state}
        return arrays, meta

    def set_state(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        """Restore a state from :meth:`get_state` (same technology and shape)."""
        if tuple(meta["shape"]) != self.shape or meta["params"] != self.params.name:
            raise ValueError(
                f"state is for a {meta['params']} array of shape {tuple(meta['shape'])}, "
                f"this is {self.params.name} {self.shape}"
            )
        optional = ("z_relax_abs",)  # absent from states saved before it existed: zeros
        for name in self._STATE_ARRAYS + tuple(k for k in self._FIXED_ARRAYS if k in arrays):
            if name in optional and name not in arrays:
                getattr(self, name)[:] = 0.0
                continue
            current = getattr(self, name)
            setattr(self, name, np.asarray(arrays[name], dtype=current.dtype).reshape(current.shape).copy())
        self.t = float(meta["t"])
        self.rng.bit_generator.state = meta["rng"]

    @property
    def n_cells(self) -> int:
        return self.shape[0] * self.shape[1]

    def all_indices(self) -> np.ndarray:
        return np.arange(self.n_cells)

    def advance(self, seconds: float) -> None:
        """Advance the model clock by ``seconds`` (s)."""
        if seconds < 0:
            raise ValueError("time cannot run backwards")
        self.t += seconds

    def conductance(self, idx: np.ndarray | None = None, dtype: type = np.float64) -> np.ndarray:
        """True conductance (S) at the model clock, including relaxation; shape of ``idx``.

        ``dtype``: precision of the relaxation arithmetic and of the result. ``np.float32`` (used by
        :meth:`mvm`, whose sums are single precision anyway) is within a few 1e-7 of the double
        precision result and computes ``ln(1 + t / t0)`` and the exponential with SIMD; the elapsed
        time itself is always taken in double precision.
        """
        idx = slice(None) if idx is None else idx  # every cell: views, not a gathered copy
        p, dt = self.params, np.dtype(dtype)
        elapsed = np.maximum(self.t - self.t_prog[idx], 0.0)
        if dt == np.float64:
            lnt = np.log1p(elapsed / p.t_relax0)
        else:  # log(1 + u) in single precision: its absolute error, ~6e-8, is far below any drift
            lnt = np.log((elapsed / p.t_relax0).astype(dt) + dt.type(1.0))
        g_prog = self.g_prog[idx]
        # the LRS levels, decided in double precision (only the HfO2-like presets need them)
        high = g_prog >= p.g_mid if p.drift_relax_hrs is not None or p.sigma_relax_abs else None
        g0 = g_prog.astype(dt, copy=False)
        if p.drift_relax_hrs is None:
            drift = p.drift_relax
        else:
            drift = np.where(high, p.drift_relax, p.drift_relax_hrs)
        g = g0 * np.exp(lnt * (drift + p.sigma_relax * self.z_relax[idx]).astype(dt, copy=False))
        if p.sigma_relax_abs:  # the LRS levels only (the conductance-independent spread is theirs)
            g_abs = g + lnt * (p.sigma_relax_abs * self.z_relax_abs[idx]).astype(dt, copy=False)
            g = np.where(high, np.maximum(g_abs, dt.type(p.g_pristine)), g)
        return g

    def programming_events(self) -> np.ndarray:
        """SET + RESET + forming events per cell, shape (rows, cols)."""
        return (self.n_set + self.n_reset + self.n_form).reshape(self.shape)

    def _commit(self, idx: np.ndarray, g_old: np.ndarray, g_new: np.ndarray) -> None:
        """Store new conductances where they changed and restart their relaxation."""
        changed = g_new != g_old
        cells = idx[changed]
        self.g_prog[cells] = g_new[changed]
        self.t_prog[cells] = self.t
        self.z_relax[cells] = self.rng.standard_normal(cells.size)
        if self.params.sigma_relax_abs:
            self.z_relax_abs[cells] = self.rng.standard_normal(cells.size)

    def _wear(self, idx: np.ndarray) -> None:
        """Cells that reached their endurance stick in the state they are in."""
        worn = (self.n_set[idx] + self.n_reset[idx] >= self.endurance[idx]) & (self.stuck[idx] == HEALTHY)
        if np.any(worn):
            cells = idx[worn]
            high = self.conductance(cells) >= self.params.g_mid
            self.stuck[cells] = np.where(high, STUCK_LRS, STUCK_HRS)

    def _switch_fraction(self, v: np.ndarray, width: float, thr: float, slope: float, tau: float) -> np.ndarray:
        """Fraction of the way to the target state that one pulse travels (0..1)."""
        p = self.params
        rate = (width / tau) * np.exp((np.abs(v) - thr) / slope)
        rate = rate * np.exp(p.sigma_kinetics * self.rng.standard_normal(np.shape(v)))
        return -np.expm1(-rate)

    def _lrs_sample(self, idx: np.ndarray, compliance: np.ndarray) -> np.ndarray:
        """One draw of the compliance-limited LRS conductance (S) for each cell in ``idx``."""
        p = self.params
        s = p.lrs_spread(compliance)
        z = self.rng.standard_normal(idx.size)
        return self.d2d[idx] * compliance / p.v0 * np.exp(s * z - 0.5 * s**2)

    # ------------------------------------------------------------------ operations
    def form(self, idx: np.ndarray, v_pulse: np.ndarray, v_gate: np.ndarray, width: float) -> None:
        """Forming pulse: cells with ``v_pulse >= v_form`` form into the LRS of the compliance."""
        self.n_form[idx] += 1
        self._set_or_form(idx, v_gate, v_pulse, width)

    def set(self, idx: np.ndarray, v_gate: np.ndarray, v_pulse: np.ndarray, width: float) -> None:
        """SET pulse of ``v_pulse`` (V), ``width`` (s) under the compliance of ``v_gate`` (V)."""
        self.n_set[idx] += 1
        self._set_or_form(idx, v_gate, v_pulse, width)
        self._wear(idx)

    def _set_or_form(self, idx: np.ndarray, v_gate: np.ndarray, v_pulse: np.ndarray, width: float) -> None:
        p = self.params
        v_gate, v_pulse = _per_index(v_gate, idx), _per_index(v_pulse, idx)
        g_old = self.conductance(idx)
        healthy = self.stuck[idx] == HEALTHY
        newly_formed = healthy & ~self.formed[idx] & (v_pulse >= self.v_form_cell[idx])
        self.formed[idx[newly_formed]] = True
        can_switch = healthy & self.formed[idx]
        compliance = p.transistor.compliance(v_gate)
        g_lrs = self._lrs_sample(idx, compliance)
        frac = self._switch_fraction(v_pulse, width, p.v_set_thr, p.v_set_slope, p.tau_set)
        frac = np.where(newly_formed, 1.0, frac)
        grow = can_switch & (g_lrs > g_old) & (compliance > 0)
        g_new = np.where(grow, g_old + frac * (g_lrs - g_old), g_old)
        self._commit(idx, g_old, g_new)

    def reset(self, idx: np.ndarray, v_stop: np.ndarray, v_gate: np.ndarray, width: float) -> None:
        """RESET pulse to ``v_stop`` (V, negative) of ``width`` (s).

        ``v_gate`` is accepted for symmetry; the transistor is assumed fully on during RESET.
        """
        p = self.params
        v_stop = _per_index(v_stop, idx)
        self.n_reset[idx] += 1
        g_old = self.conductance(idx)
        can_switch = (self.stuck[idx] == HEALTHY) & self.formed[idx]
        r_hrs = p.hrs_median(v_stop) * self.d2d_hrs[idx] * np.exp(p.sigma_hrs * self.rng.standard_normal(idx.size))
        ln_target = -np.log(r_hrs)
        frac = self._switch_fraction(v_stop, width, p.v_reset_thr, p.v_reset_slope, p.tau_reset)
        ln_old = np.log(g_old)
        shrink = can_switch & (ln_target < ln_old)
        g_new = np.where(shrink, np.exp(ln_old + frac * (ln_target - ln_old)), g_old)
        self._commit(idx, g_old, g_new)
        self._wear(idx)

    def read(self, idx: np.ndarray, v_read: float, aperture: float = 1e-3) -> np.ndarray:
        """Measured conductance (S) of cells ``idx`` at ``v_read`` (V) with ``aperture`` (s)."""
        p = self.params
        g = self.conductance(idx)
        rel = p.sigma_read * np.sqrt(1e-3 / aperture)
        noise_g = p.i_noise_floor * np.sqrt(1e-3 / aperture) / abs(v_read)
        out = g * (1.0 + rel * self.rng.standard_normal(idx.size)) + noise_g * self.rng.standard_normal(idx.size)
        if p.read_dev_ref:
            out = out + (p.read_fluctuation(g, self.rng.standard_normal(idx.size)) - g)
        return out

    def mvm(self, x: np.ndarray, v_read: float, aperture: float = 1e-3) -> np.ndarray:
        """Column currents (A) for row amplitudes ``x`` (shape (..., rows)) scaled by ``v_read`` (V).

        Kirchhoff summation on the columns with the true conductances plus, per call, one draw of
        the device read fluctuation of every cell (the same draw for all input vectors of the
        call: the fluctuation is slow against one MVM), plus instrument noise on each column
        current.

        The sums are taken in single precision (``MVM_DTYPE``): its resolution, 2**-24 of the
        largest column current, is far below the instrument noise (``sigma_read``, 0.5-1 % of the
        current) it is added to, and it halves the time of the sums and of the noise draw. The
        relaxed conductances it sums are computed in the same precision (:meth:`conductance`,
        within a few 1e-7 of double precision; a third of the time on a 66 x 200 array). The
        currents are returned in double precision.
        """
        p = self.params
        g = self.conductance(dtype=MVM_DTYPE).reshape(self.shape)
        if p.read_dev_ref:
            g = p.read_fluctuation(g, self.rng.standard_normal(g.shape))
        v = (np.asarray(x, dtype=MVM_DTYPE) * MVM_DTYPE(v_read))
        g = g.astype(MVM_DTYPE)
        current = v @ g
        rel = p.sigma_read * np.sqrt(1e-3 / aperture)
        scale = np.sqrt(np.square(v, out=v) @ np.square(g)) * MVM_DTYPE(rel) + MVM_DTYPE(p.i_noise_floor)
        current += scale * self.rng.standard_normal(current.shape, dtype=MVM_DTYPE)
        return current.astype(np.float64)
