"""Program-and-verify strategies: convergence, reported failures, pulse caps, bad targets."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.sim.physics import STUCK_HRS, STUCK_LRS
from drivers.sim_array import SimArray
from hil.program import ISPP, TargetError, program_verify


def level_map(array, shape, seed=0, n_levels=8):
    levels = np.asarray(array.technology.levels)[:n_levels]
    return levels[np.random.default_rng(seed).integers(0, len(levels), shape)]


def formed(shape=(24, 24), seed=1, tech="hfo2"):
    a = SimArray(shape, tech, seed=seed)
    a.form()
    return a


@pytest.mark.parametrize("strategy", ["igvva", "ispp"])
def test_strategies_converge_on_healthy_cells(strategy):
    # benign physics: the strategies' convergence at +-5 %; on the harsh "hfo2" preset the
    # device read fluctuation makes +-5 % unreachable at the low levels (test_harsh_... below)
    a = formed(tech="hfo2-benign")
    targets = level_map(a, a.shape)
    r = program_verify(a, targets, tolerance=0.05, strategy=strategy)
    healthy = (a.model.stuck == 0).reshape(a.shape)
    assert r.converged[healthy].mean() == 1.0
    assert r.success[healthy].mean() >= 0.98
    ok = r.success
    assert np.all(np.abs(r.g_final[ok] / targets[ok] - 1) <= 0.05)
    assert r.bench_time > 0 and r.mean_pulses > 1


def test_siox_converges_too():
    """SiOx reads noisier (1 %) and relaxes faster than HfO2: all healthy cells verify, and
    >= 93 % stay within +-5 % on the final read (measured 95 % at 64x64, seed 1)."""
    a = formed(tech="siox")
    targets = a.technology.level_targets(16)[np.random.default_rng(0).integers(0, 16, a.shape)]
    r = program_verify(a, targets, tolerance=0.05)
    healthy = (a.model.stuck == 0).reshape(a.shape)
    assert r.converged[healthy].mean() == 1.0
    assert r.success[healthy].mean() >= 0.93


def test_stuck_cells_are_reported_as_failures_at_the_cap():
    a = formed(shape=(8, 8))
    stuck = np.zeros(64, bool)
    stuck[[3, 17, 40]] = True
    a.model.stuck[[3, 17]] = STUCK_HRS
    a.model.stuck[40] = STUCK_LRS
    a.model.g_prog[[3, 17]] = 1e-8
    a.model.g_prog[40] = 600e-6
    r = program_verify(a, np.full((8, 8), 100e-6), max_pulses=30)
    stuck = stuck.reshape(8, 8)
    assert not r.success[stuck].any() and not r.converged[stuck].any()
    assert np.all(r.pulses[stuck] == 30)
    assert r.yield_ == pytest.approx((64 - 3 - (~r.success[~stuck]).sum()) / 64)


def test_pulse_cap_is_respected():
    a = formed(shape=(16, 16))
    r = program_verify(a, np.full((16, 16), 200e-6), max_pulses=5)
    assert r.max_pulses <= 5
    assert not r.success[r.pulses >= 5].all()  # the top level needs far more than 5 pulses from v_gate_min
    assert r.yield_ < 0.5


def test_cells_already_in_window_take_no_pulses_and_mask_limits_work():
    a = formed(shape=(8, 8), tech="hfo2-benign")  # a read noise well inside the 8 % window
    targets = np.full((8, 8), 100e-6)
    program_verify(a, targets)
    mask = np.zeros((8, 8), bool)
    mask[:2] = True
    r = program_verify(a, targets, mask=mask, tolerance=0.08)
    assert r.n_cells == 16
    assert np.isnan(r.g_final[~mask]).all() and (r.pulses[~mask] == 0).all()
    assert (r.pulses[mask] == 0).mean() > 0.9


def test_first_guess_saves_pulses():
    a1, a2 = formed(seed=3), formed(seed=3)
    targets = np.full(a1.shape, 150e-6)
    cold = program_verify(a1, targets)
    v_guess = a2.technology.transistor.gate_for(150e-6 * 0.4) - 0.05
    warm = program_verify(a2, targets, first_guess=v_guess)
    assert warm.mean_pulses < 0.5 * cold.mean_pulses
    assert warm.yield_ >= cold.yield_ - 0.01


def test_ispp_parameters_are_used():
    a = formed(shape=(8, 8))
    r = program_verify(a, np.full((8, 8), 60e-6), strategy=ISPP(v_pulse_step=0.02))
    assert r.strategy == "ispp" and r.params["v_pulse_step"] == 0.02


@pytest.mark.parametrize(
    ("targets", "kwargs", "message"),
    [
        (np.full((8, 8), 900e-6), {}, r"9\.0+e-04 S outside the hfo2 technology's reachable window \[2\.0+e-05, 2\.60*e-04\] S"),
        (np.full((8, 8), 1e-6), {}, "reachable window"),
        (np.full((4, 4), 100e-6), {}, "shape"),
        (np.full((8, 8), np.inf), {}, "infinite"),
        (np.full((8, 8), 100e-6), {"tolerance": 0.0}, r"tolerance=0\.0 outside the allowed range \(0, 1\)"),
        (np.full((8, 8), 100e-6), {"tolerance": -0.1}, "tolerance"),
        (np.full((8, 8), 100e-6), {"max_pulses": 0}, "max_pulses"),
        (np.full((8, 8), 100e-6), {"strategy": "bogus"}, "unknown strategy"),
    ],
)
def test_bad_requests_raise_before_any_operation(targets, kwargs, message):
    a = formed(shape=(8, 8))
    seen = []
    a.add_listener(seen.append)
    t0 = a.bench_time
    with pytest.raises((TargetError, ValueError), match=message):
        program_verify(a, targets, **kwargs)
    assert seen == [] and a.bench_time == t0


def test_harsh_preset_holds_10_percent_at_high_levels_and_fails_at_25_uS():
    """On the "hfo2" preset (Milo et al.'s spread), +-10 % holds at 150 uS but +-5 % fails at
    25 uS, where the device read fluctuation alone is ~16 % per read (benchmarks/program_verify.py
    prints the per-level yields)."""
    targets = np.where(np.arange(32 * 32).reshape(32, 32) % 2 == 0, 25e-6, 150e-6)
    for tol, level, check in ((0.10, 150e-6, lambda y: y >= 0.98), (0.05, 25e-6, lambda y: y < 0.3)):
        a = formed(shape=(32, 32))
        r = program_verify(a, targets, tolerance=tol)
        cells = (a.model.stuck == 0).reshape(a.shape) & (targets == level)
        assert check(r.success[cells].mean()), (tol, level, r.success[cells].mean())
