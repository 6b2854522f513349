"""Fit characterisation data to the simulator's device-model parameters, with uncertainties.

The fitted model is a :class:`drivers.sim.physics.DeviceParams` -- the very type the simulator
runs -- so ``SimArray(shape, result.params)`` simulates the characterised technology.

What is fitted, from which measurement (model of :mod:`drivers.sim.physics`):

=====================  ==================================================================
parameter              estimator
=====================  ==================================================================
``v0``                 LRS mean ``<G> = I_C / V0`` (d2d factor is mean-preserving):
                       ``ln V0 = mean_j ln(I_C_j / <G>_j)`` over the compliance sweep.
``sigma_lrs_ref``,     cycle-to-cycle spread per I_C from K repeated SETs of the same
``sigma_lrs_exp``      cells: pooled within-cell variance of ln G minus the read-noise
                       variance; ``ln s_j = ln sigma_lrs_ref + exp * ln(i_ref / I_C_j)`` by
                       least squares (``i_ref`` is kept from the base parameters).
``sigma_d2d``          variance over cells of the cell's mean ln G offset (averaged over all
                       I_C and cycles) minus the cycle-to-cycle part that survives averaging.
``r_hrs0``, ``hrs_v``  least squares of mean ln R_HRS on |V_STOP|.
``sigma_hrs``          pooled within-cell variance of ln R over repeated RESETs.
``sigma_d2d_hrs``      as ``sigma_d2d``, on the HRS sweep.
``v_form``,            mean and standard deviation of the per-cell forming voltage seen on a
``sigma_form``         staircase of step D, corrected for the quantisation (mean - D/2,
                       variance - D^2/12, Sheppard).
``g_pristine``         median read before forming.
``p_stuck_lrs/hrs``    fractions of cells conductive before forming / never formed.
``sigma_read``         variance of consecutive-read differences of ln G (common drift
                       removed) / 2, scaled to the 1 ms reference aperture.
``sigma_relax``,       per-cell slope of ln G on ``L = ln(1 + t / t_relax0)``: mean slope is
``drift_relax``        the drift, variance of slopes minus read-noise variance is sigma^2.
=====================  ==================================================================

Not fitted (kept from the base parameters and listed in :attr:`FitResult.not_fitted`): the
access transistor (taken from the PDK: the array reports conductance, never I_C), the switching
kinetics (``v_set_thr`` ... ``sigma_kinetics``; the quasi-static I-V gives median switching
voltages, reported in :attr:`FitResult.derived`, not a kinetic fit), ``t_relax0`` (assumed),
``i_noise_floor``, endurance and stuck-cell conductances.

Uncertainties are bootstrap standard errors: the whole fit is repeated on ``n_boot`` resamples
of the cells (with replacement), which keeps the correlation between conditions measured on
the same cells.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from calibration.data import MIN_CELLS, CalibrationDataError, CharacterisationData
from drivers.sim.physics import DeviceParams

log = logging.getLogger(__name__)

#: Parameters this module estimates, in report order, with their units.
FITTED: dict[str, str] = {
    "v0": "V",
    "sigma_lrs_ref": "ln",
    "sigma_lrs_exp": "",
    "sigma_d2d": "ln",
    "r_hrs0": "ohm",
    "hrs_v": "V",
    "sigma_hrs": "ln",
    "sigma_d2d_hrs": "ln",
    "v_form": "V",
    "sigma_form": "V",
    "g_pristine": "S",
    "p_stuck_lrs": "",
    "p_stuck_hrs": "",
    "sigma_read": "rel",
    "sigma_relax": "ln",
    "drift_relax": "ln",
}

#: Parameters kept from the base model, and why.
NOT_FITTED: dict[str, str] = {
    "transistor": "taken from the PDK (I_C is not measured; the array reports conductance)",
    "i_ref": "reference current of the spread law, kept fixed",
    "v_set_thr": "switching kinetics not fitted (median V_SET reported from the I-V staircase)",
    "v_set_slope": "switching kinetics not fitted",
    "tau_set": "switching kinetics not fitted",
    "v_reset_thr": "switching kinetics not fitted (median V_RESET reported from the I-V staircase)",
    "v_reset_slope": "switching kinetics not fitted",
    "tau_reset": "switching kinetics not fitted",
    "sigma_kinetics": "switching kinetics not fitted",
    "i_noise_floor": "read-noise floor not separated from relative read noise",
    "t_relax0": "relaxation time origin assumed",
    "g_stuck_lrs": "too few stuck cells to fit",
    "endurance_median": "endurance not characterised",
    "sigma_endurance": "endurance not characterised",
    "g_mid": "endurance not characterised",
    "read_dev_ref": "device read fluctuation (RTN, 1/f) not separated from the instrument's read noise",
    "g_read_ref": "device read fluctuation not separated",
    "read_dev_exp": "device read fluctuation not separated",
    "read_dev_max": "device read fluctuation not separated",
    "sigma_relax_abs": "conductance-independent relaxation not separated from the relative one",
    "drift_relax_hrs": "HRS relaxation not characterised (relaxation is measured on LRS cells)",
}


@dataclass(frozen=True)
class Estimate:
    """A fitted value with its bootstrap standard error (same unit)."""

    value: float
    stderr: float
    unit: str = ""

    def rel_err(self) -> float:
        return abs(self.stderr / self.value) if self.value else float("inf")


@dataclass
class FitResult:
    """The fitted device model.

    Attributes:
        params: fitted :class:`DeviceParams` (fitted fields replaced in the base parameters).
        estimates: fitted parameter name -> :class:`Estimate`.
        not_fitted: parameter name -> reason it was kept from the base.
        derived: per-condition statistics (for tables and figures), JSON-ready lists.
        n_boot: bootstrap resamples behind the standard errors.
    """

    params: DeviceParams
    estimates: dict[str, Estimate]
    not_fitted: dict[str, str]
    derived: dict[str, Any] = field(default_factory=dict)
    n_boot: int = 0

    def summary_rows(self, truth: DeviceParams | None = None) -> list[dict[str, Any]]:
        """One row per fitted parameter: name, value, stderr, unit, and (if given) true value."""
        rows = []
        for name, est in self.estimates.items():
            row = {"name": name, "value": est.value, "stderr": est.stderr, "unit": est.unit}
            if truth is not None:
                t = float(getattr(truth, name))
                row["true"] = t
                row["rel_error"] = (est.value - t) / t if t else float("nan")
            rows.append(row)
        return rows

    def to_json(self) -> str:
        return json.dumps({
            "params": {k: v for k, v in dataclasses.asdict(self.params).items()},
            "estimates": {k: dataclasses.asdict(v) for k, v in self.estimates.items()},
            "not_fitted": self.not_fitted,
            "n_boot": self.n_boot,
        }, sort_keys=True, default=float)


# ---------------------------------------------------------------------- per-cell statistics
@dataclass
class _Cells:
    """Per-cell sufficient statistics, so that a bootstrap resample is a cheap sum over cells."""

    # LRS, each (J, n): sum of G, count, mean ln G, within-cell sum of squares of ln G
    lrs_sum: np.ndarray
    lrs_cnt: np.ndarray
    lrs_lnmean: np.ndarray
    lrs_ss: np.ndarray
    # HRS (M, n) of ln R
    hrs_cnt: np.ndarray
    hrs_lnmean: np.ndarray
    hrs_ss: np.ndarray
    # read noise: (R-1, n) consecutive differences of ln G
    noise_d: np.ndarray
    # relaxation: slope (n,) of ln G on L
    relax_slope: np.ndarray
    relax_sxx: float
    # forming (n,) and pristine reads (n,)
    form_v: np.ndarray
    g_pristine: np.ndarray


def _within(ln: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(count, mean, sum of squares about the mean) over axis 1 of (C, K, n), NaN-aware."""
    ok = np.isfinite(ln)
    cnt = ok.sum(axis=1)
    s = np.where(ok, ln, 0.0).sum(axis=1)
    mean = np.divide(s, cnt, out=np.full(cnt.shape, np.nan), where=cnt > 0)
    dev = np.where(ok, ln - mean[:, None, :], 0.0)
    return cnt, mean, (dev**2).sum(axis=1)


def _cells(data: CharacterisationData, t_relax0: float) -> tuple[_Cells, np.ndarray]:
    """Sufficient statistics of the usable cells, and their flat indices."""
    use = ~data.excluded_mask()
    lrs = np.asarray(data.lrs_g, dtype=float)[..., use]
    hrs = np.asarray(data.hrs_g, dtype=float)[..., use]
    # A cell must have at least 2 usable SETs at every I_C and 2 RESETs at every V_STOP.
    lrs_cnt, lrs_lnmean, lrs_ss = _within(np.log(lrs))
    hrs_cnt, hrs_lnmean, hrs_ss = _within(-np.log(hrs))
    full = (lrs_cnt >= 2).all(axis=0) & (hrs_cnt >= 2).all(axis=0)
    idx = np.flatnonzero(use)[full]
    if idx.size < MIN_CELLS:
        raise CalibrationDataError(
            f"only {idx.size} cells switched at least twice under every condition; need {MIN_CELLS}"
        )
    lrs, hrs = lrs[..., full], hrs[..., full]
    lrs_sum = np.where(np.isfinite(lrs), lrs, 0.0).sum(axis=1)
    noise = np.log(np.asarray(data.noise_g, dtype=float)[:, idx])
    relax = np.log(np.asarray(data.relax_g, dtype=float)[:, idx])
    if not (np.all(np.isfinite(noise)) and np.all(np.isfinite(relax))):
        raise CalibrationDataError("noise_g / relax_g contain non-positive reads of usable cells")
    lvar = np.log1p(np.asarray(data.relax_t, dtype=float) / t_relax0)
    lc = lvar - lvar.mean()
    sxx = float((lc**2).sum())
    slope = (lc[:, None] * (relax - relax.mean(axis=0))).sum(axis=0) / sxx
    return _Cells(
        lrs_sum=lrs_sum, lrs_cnt=lrs_cnt[:, full], lrs_lnmean=lrs_lnmean[:, full], lrs_ss=lrs_ss[:, full],
        hrs_cnt=hrs_cnt[:, full], hrs_lnmean=hrs_lnmean[:, full], hrs_ss=hrs_ss[:, full],
        noise_d=np.diff(noise, axis=0), relax_slope=slope, relax_sxx=sxx,
        form_v=np.asarray(data.form_v, dtype=float)[idx],
        g_pristine=np.asarray(data.g_pristine, dtype=float)[idx],
    ), idx


def _linfit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares (intercept, slope) of y on x."""
    xc = x - x.mean()
    slope = float((xc * (y - y.mean())).sum() / (xc**2).sum())
    return float(y.mean() - slope * x.mean()), slope


def _estimate(c: _Cells, sel: np.ndarray, i_c: np.ndarray, v_stop: np.ndarray, i_ref: float,
              aperture: float, form_step: float) -> dict[str, float]:
    """All LRS/HRS/noise/relaxation/forming point estimates on the cells ``sel`` (indices into c)."""
    out: dict[str, float] = {}
    # read noise (ln units at this aperture): consecutive-read differences, common drift removed
    d = c.noise_d[:, sel]
    d = d - d.mean(axis=1, keepdims=True)
    var_meas = float((d**2).sum() / (2.0 * (d.shape[1] - 1) * d.shape[0]))
    out["sigma_read"] = np.sqrt(var_meas) * np.sqrt(aperture / 1e-3)

    # LRS mean law
    g_mean = c.lrs_sum[:, sel].sum(axis=1) / c.lrs_cnt[:, sel].sum(axis=1)
    out["v0"] = float(np.exp(np.mean(np.log(i_c / g_mean))))
    # LRS cycle-to-cycle spread per I_C
    w = c.lrs_ss[:, sel].sum(axis=1) / (c.lrs_cnt[:, sel] - 1).sum(axis=1)
    s2 = w - var_meas
    if np.any(s2 <= 0):
        raise CalibrationDataError(
            "cycle-to-cycle LRS variance does not exceed the read-noise variance at "
            f"I_C = {i_c[s2 <= 0].tolist()} A; cannot fit the spread law"
        )
    a, b = _linfit(np.log(i_ref / i_c), 0.5 * np.log(s2))
    out["sigma_lrs_ref"], out["sigma_lrs_exp"] = float(np.exp(a)), b
    # device-to-device LRS factor
    lm = c.lrs_lnmean[:, sel]
    e = (lm - lm.mean(axis=1, keepdims=True)).mean(axis=0)
    inv_n = (1.0 / c.lrs_cnt[:, sel]).mean(axis=1)
    d2d = e.var(ddof=1) - float((w * inv_n).sum()) / lm.shape[0] ** 2
    out["sigma_d2d"] = float(np.sqrt(max(d2d, 0.0)))

    # HRS law
    hm = c.hrs_lnmean[:, sel]
    mu = hm.mean(axis=1)
    a, b = _linfit(np.abs(v_stop), mu)
    out["r_hrs0"], out["hrs_v"] = float(np.exp(a)), 1.0 / b if b > 0 else float("nan")
    wh = c.hrs_ss[:, sel].sum(axis=1) / (c.hrs_cnt[:, sel] - 1).sum(axis=1)
    out["sigma_hrs"] = float(np.sqrt(max(float(wh.mean()) - var_meas, 0.0)))
    eh = (hm - mu[:, None]).mean(axis=0)
    inv_nh = (1.0 / c.hrs_cnt[:, sel]).mean(axis=1)
    d2dh = eh.var(ddof=1) - float((wh * inv_nh).sum()) / hm.shape[0] ** 2
    out["sigma_d2d_hrs"] = float(np.sqrt(max(d2dh, 0.0)))

    # forming staircase (quantised upwards to the grid)
    fv = c.form_v[sel]
    fv = fv[np.isfinite(fv)]
    out["v_form"] = float(fv.mean() - form_step / 2)
    out["sigma_form"] = float(np.sqrt(max(fv.var(ddof=1) - form_step**2 / 12, 0.0)))
    out["g_pristine"] = float(np.median(c.g_pristine[sel]))

    # relaxation
    sl = c.relax_slope[sel]
    out["drift_relax"] = float(sl.mean())
    out["sigma_relax"] = float(np.sqrt(max(sl.var(ddof=1) - var_meas / c.relax_sxx, 0.0)))
    return out


# ---------------------------------------------------------------------- public
def fit(data: CharacterisationData, base: DeviceParams, *, n_boot: int = 200, seed: int = 0) -> FitResult:
    """Fit characterisation data to device-model parameters.

    Args:
        data: validated (or validatable) characterisation data.
        base: parameters kept for everything not fitted (normally the technology's preset or a
            previous fit); ``base.i_ref`` is the reference current of the spread law and
            ``base.t_relax0`` the relaxation time origin.
        n_boot: bootstrap resamples of the cells for the standard errors (>= 20).
        seed: seed of the bootstrap resampling.

    Returns:
        A :class:`FitResult` whose ``params`` run in the simulator.

    Raises:
        CalibrationDataError: the data are incomplete, malformed or too thin to fit.
    """
    data.validate()
    if n_boot < 20:
        raise ValueError(f"n_boot={n_boot} too small for a standard error; use >= 20")
    i_c = np.asarray(data.lrs_i_c, dtype=float)
    v_stop = np.asarray(data.hrs_v_stop, dtype=float)
    steps = np.asarray(data.form_steps, dtype=float)
    form_step = float(np.median(np.diff(steps)))
    cells, idx = _cells(data, base.t_relax0)
    n = idx.size
    n_formed = int(np.isfinite(cells.form_v).sum())
    if n_formed < MIN_CELLS:
        raise CalibrationDataError(f"only {n_formed} usable cells have a forming voltage; need {MIN_CELLS}")

    args = (i_c, v_stop, base.i_ref, data.aperture, form_step)
    point = _estimate(cells, np.arange(n), *args)
    rng = np.random.default_rng(seed)
    boot = [_estimate(cells, rng.integers(0, n, n), *args) for _ in range(n_boot)]

    # stuck-cell fractions over the whole array (binomial standard errors)
    n_all = data.n_cells
    pre = data.preformed_mask()
    never = ~pre & ~np.isfinite(np.asarray(data.form_v, dtype=float))
    for name, count in (("p_stuck_lrs", int(pre.sum())), ("p_stuck_hrs", int(never.sum()))):
        p = count / n_all
        point[name] = p
        point[f"_se_{name}"] = float(np.sqrt(max(p, 1.0 / n_all) * (1 - p) / n_all))

    estimates: dict[str, Estimate] = {}
    for name, unit in FITTED.items():
        value = float(point[name])
        if not np.isfinite(value) or (value <= 0 and name not in ("drift_relax", "p_stuck_lrs", "p_stuck_hrs")):
            raise CalibrationDataError(f"fit of {name} gave {value!r}; the {name} data do not follow the model")
        if name.startswith("p_stuck"):
            se = float(point[f"_se_{name}"])
        else:
            se = float(np.std([b[name] for b in boot], ddof=1))
        estimates[name] = Estimate(value, se, unit)

    fitted = {k: e.value for k, e in estimates.items()}
    params = dataclasses.replace(base, transistor=data.transistor, **fitted)
    derived = condition_stats(data)
    derived["cells_used"] = int(n)
    derived["cells_excluded"] = int(data.excluded_mask().sum())
    log.info("fit of %s: %s", data.technology, {k: f"{e.value:.4g}+-{e.stderr:.2g}" for k, e in estimates.items()})
    return FitResult(params=params, estimates=estimates, not_fitted=dict(NOT_FITTED), derived=derived, n_boot=n_boot)


def condition_stats(data: CharacterisationData) -> dict[str, Any]:
    """Per-condition statistics of the raw data (figures, tables), JSON-ready.

    Keys: ``lrs_i_c`` (A), ``lrs_mean_g``/``lrs_median_g`` (S), ``lrs_mu_r``/``lrs_sigma_r``
    (ohm; mean and standard deviation of the LRS resistance, Fig. 2d-e), ``lrs_sigma_ln``
    (ln-unit spread of all samples, cycle-to-cycle and device-to-device combined), ``lrs_n``
    (cells that switched at that I_C);
    the same for HRS per V_STOP; median SET/RESET switching voltages of the I-V loops.
    """
    use = ~data.excluded_mask()
    lrs_cube = np.asarray(data.lrs_g, dtype=float)[..., use]
    hrs_cube = np.asarray(data.hrs_g, dtype=float)[..., use]
    lrs = lrs_cube.reshape(len(data.lrs_i_c), -1)
    hrs = hrs_cube.reshape(len(data.hrs_v_stop), -1)
    out: dict[str, Any] = {"lrs_i_c": np.asarray(data.lrs_i_c, float).tolist(),
                           "lrs_v_gate": np.asarray(data.lrs_v_gate, float).tolist(),
                           "hrs_v_stop": np.asarray(data.hrs_v_stop, float).tolist()}
    out["lrs_mean_g"] = np.nanmean(lrs, axis=1).tolist()
    out["lrs_median_g"] = np.nanmedian(lrs, axis=1).tolist()
    out["lrs_mu_r"] = np.nanmean(1 / lrs, axis=1).tolist()
    out["lrs_sigma_r"] = np.nanstd(1 / lrs, axis=1, ddof=1).tolist()
    out["lrs_sigma_ln"] = np.nanstd(np.log(lrs), axis=1, ddof=1).tolist()
    out["lrs_n"] = np.isfinite(lrs_cube).any(axis=1).sum(axis=-1).tolist()  # cells that switched
    out["hrs_median_r"] = np.exp(np.nanmedian(-np.log(hrs), axis=1)).tolist()
    out["hrs_sigma_ln"] = np.nanstd(np.log(hrs), axis=1, ddof=1).tolist()
    out["hrs_n"] = np.isfinite(hrs_cube).any(axis=1).sum(axis=-1).tolist()
    out.update(switching_voltages(data))
    return out


def switching_voltages(data: CharacterisationData) -> dict[str, list[float]]:
    """Median SET and RESET voltages of the quasi-static I-V loops, per I-V gate.

    A cell's switching voltage is the first staircase step whose read crosses the geometric
    mean of the cell's reads before and at the end of the branch. Cells whose branch changes
    the conductance by less than 2x are skipped.
    """
    res: dict[str, list[float]] = {"iv_v_gate": [], "iv_v_set_median": [], "iv_v_reset_median": []}
    g_set = np.asarray(data.iv_g_set, dtype=float)
    g_reset = np.asarray(data.iv_g_reset, dtype=float)
    if g_set.size == 0 or g_reset.size == 0:
        return res
    for l, vg in enumerate(np.asarray(data.iv_v_gate, dtype=float)):
        res["iv_v_gate"].append(float(vg))
        res["iv_v_set_median"].append(_crossing(g_set[l], np.asarray(data.iv_v_set, float), rising=True))
        res["iv_v_reset_median"].append(_crossing(g_reset[l], np.asarray(data.iv_v_reset, float), rising=False))
    return res


def _crossing(g: np.ndarray, v: np.ndarray, rising: bool) -> float:
    """Median over cells of the first step where the read crosses mid-way (log) between ends."""
    lg = np.log(np.maximum(g, 1e-15))  # (P, n)
    start, end = lg[0], lg[-1]
    swing = (end - start) if rising else (start - end)
    ok = swing > np.log(2.0)
    if not ok.any():
        return float("nan")
    mid = 0.5 * (start + end)
    crossed = (lg >= mid) if rising else (lg <= mid)
    first = np.argmax(crossed, axis=0)
    return float(np.median(v[first[ok]]))
