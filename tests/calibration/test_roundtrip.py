"""Round trip: characterise SimArrays with known parameters, fit, recover the parameters.

Tolerances (relative, |fitted - true| / |true|) for a 32x32 array (1024 cells), K = 4 cycles,
8 compliances, 6 stop voltages. Each is at least ~4x the bootstrap standard error measured at
this size over 8 seeds (benchmarks/calibration_roundtrip.py prints them), and no looser than
the issue's "10 % for means, 20 % for spreads" except where the sampling error demands it:

* means and laws (v0, hrs_v, v_form, sigma_read, g_pristine): SE <= 1.3 % -> 5-10 %;
* r_hrs0 is the HRS law extrapolated to |V_STOP| = 0, SE ~1.8 % -> 15 %;
* spread-law parameters (sigma_lrs_ref, sigma_lrs_exp, sigma_hrs): SE <= 0.8 % -> 10 %;
* device-to-device spreads, forming spread, relaxation spread: SE 2-3.5 % -> 20 %;
* drift_relax: a small mean slope (-0.002 per ln-unit) whose SE is sigma_relax/sqrt(N) =
  0.004/32 = 6 % of it -> 30 %;
* stuck-cell fractions: exact -- the fit must count every cell the simulator made stuck.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from calibration.fit import FITTED, NOT_FITTED, fit
from drivers.sim.physics import STUCK_HRS, STUCK_LRS
from drivers.sim.physics import DeviceParams
from drivers.sim.presets import HFO2_BENIGN_PHYSICS, SIOX_PHYSICS, get_preset
from drivers.sim_array import SimArray
from hil.experiments.characterise import characterise

SHAPE = (32, 32)

TOLERANCE = {
    "v0": 0.05, "hrs_v": 0.05, "v_form": 0.02, "sigma_read": 0.10, "g_pristine": 0.10,
    "r_hrs0": 0.15,
    "sigma_lrs_ref": 0.10, "sigma_lrs_exp": 0.10, "sigma_hrs": 0.10,
    "sigma_d2d": 0.20, "sigma_d2d_hrs": 0.20, "sigma_form": 0.20, "sigma_relax": 0.20,
    "drift_relax": 0.30,
}

#: Known parameters, deliberately different from the preset the fit starts from. Built on the
#: benign HfO2 physics: the fit models relative read noise and relative relaxation only (the
#: device read fluctuation and the conductance-independent relaxation of the "hfo2" preset are
#: in NOT_FITTED; so is the relaxation time origin t_relax0), so the truth, and the preset the fit
#: starts from, must lie in the fitter's model class for a round trip to hold.
TRUE_HFO2 = dataclasses.replace(
    HFO2_BENIGN_PHYSICS, v0=0.33, sigma_lrs_ref=0.11, sigma_lrs_exp=0.6, sigma_d2d=0.07,
    r_hrs0=2.5e3, hrs_v=0.5, sigma_hrs=0.45, sigma_d2d_hrs=0.32, v_form=3.2, sigma_form=0.2,
    g_pristine=2e-8, sigma_read=0.008, sigma_relax=0.004, drift_relax=-0.002,
    p_stuck_lrs=0.01, p_stuck_hrs=0.02,
)


def _roundtrip(true, tech_name, seed):
    array = SimArray(SHAPE, true, seed=seed, technology=get_preset(tech_name).technology)
    data = characterise(array)
    return array, data, fit(data, get_preset(tech_name).physics, n_boot=40, seed=seed)


def test_tolerances_cover_every_fitted_parameter():
    assert set(TOLERANCE) | {"p_stuck_lrs", "p_stuck_hrs"} == set(FITTED)
    assert not set(FITTED) & set(NOT_FITTED)
    # every physics parameter is either fitted or stated as not fitted
    assert set(FITTED) | set(NOT_FITTED) | {"name"} == {f.name for f in dataclasses.fields(DeviceParams)}


@pytest.mark.parametrize(("true", "tech", "seed"), [
    (TRUE_HFO2, "hfo2-benign", 1), (TRUE_HFO2, "hfo2-benign", 2), (TRUE_HFO2, "hfo2-benign", 3),
    (SIOX_PHYSICS, "siox", 4),
])
def test_parameters_recovered(true, tech, seed):
    array, data, result = _roundtrip(true, tech, seed)
    failures = []
    for name, tol in TOLERANCE.items():
        est, t = result.estimates[name], getattr(true, name)
        err = abs(est.value - t) / abs(t)
        if err > tol:
            failures.append(f"{name}: fitted {est.value:.4g} +- {est.stderr:.2g}, true {t:.4g}, error {100 * err:.1f}% > {100 * tol:.0f}%")
        # the standard error is a real, positive, sub-tolerance number
        assert 0 < est.stderr < tol * abs(t), name
    assert not failures, "\n".join(failures)
    # stuck cells: every one the simulator made is found, and nothing else
    stuck = array.model.stuck
    n = array.size
    assert result.estimates["p_stuck_lrs"].value * n == pytest.approx((stuck == STUCK_LRS).sum())
    assert result.estimates["p_stuck_hrs"].value * n == pytest.approx((stuck == STUCK_HRS).sum())


def test_fitted_params_run_in_the_simulator_and_keep_unfitted_fields():
    _, data, result = _roundtrip(TRUE_HFO2, "hfo2-benign", 5)
    p = result.params
    for name in NOT_FITTED:
        assert getattr(p, name) == getattr(HFO2_BENIGN_PHYSICS, name), name
    sim = SimArray((8, 8), p, seed=0)
    sim.form()
    sim.set_pulse(None, v_gate=1.2)
    g = sim.read()
    i_c = p.transistor.compliance(1.2)
    # the fitted model's LRS sits where the true device's does
    assert np.nanmedian(g) == pytest.approx(i_c / TRUE_HFO2.v0, rel=0.1)


def test_fit_is_not_the_base_model():
    """A fit that returned its base parameters would pass nothing: the truth differs by > tolerance."""
    for name, tol in TOLERANCE.items():
        assert abs(getattr(HFO2_BENIGN_PHYSICS, name) - getattr(TRUE_HFO2, name)) > tol * abs(getattr(TRUE_HFO2, name)), name
