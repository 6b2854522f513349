"""Seeded statistics of the 1T1R physics model against its stated parameters."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from drivers.sim.physics import STUCK_HRS, STUCK_LRS, ArrayPhysics
from drivers.sim.presets import HFO2_BENIGN_PHYSICS, HFO2_PHYSICS, SIOX_PHYSICS, get_preset, stressed

SHAPE = (64, 64)


def formed_model(params=HFO2_PHYSICS, seed=1, shape=SHAPE):
    m = ArrayPhysics(params, shape, seed)
    idx = m.all_indices()
    m.form(idx, np.full(idx.size, 6.0), np.full(idx.size, 1.0), 10e-6)
    healthy = idx[m.stuck == 0]
    return m, healthy


def set_at_compliance(m, idx, v_gate):
    m.reset(idx, np.full(idx.size, -2.0), np.full(idx.size, 2.5), 1e-6)
    m.set(idx, np.full(idx.size, v_gate), np.full(idx.size, 2.2), 1e-6)
    return m.conductance(idx)


@pytest.mark.parametrize("params", [HFO2_PHYSICS, SIOX_PHYSICS], ids=["hfo2", "siox"])
def test_lrs_mean_follows_compliance_over_v0(params):
    """Mean LRS conductance = I_C / V0 within 2 % (SE of the mean is < 0.5 % at 4096 cells)."""
    m, idx = formed_model(params)
    for v_gate in (0.8, 1.0, 1.2, 1.4):
        i_c = params.transistor.compliance(v_gate)
        g = set_at_compliance(m, idx, v_gate)
        assert g.mean() == pytest.approx(i_c / params.v0, rel=0.02), v_gate


@pytest.mark.parametrize("params", [HFO2_PHYSICS, SIOX_PHYSICS], ids=["hfo2", "siox"])
def test_lrs_spread_grows_as_compliance_falls(params):
    """Relative sigma matches sqrt(s(I_C)^2 + sigma_d2d^2) within 10 % and falls with I_C."""
    m, idx = formed_model(params)
    spreads = []
    for v_gate in (0.8, 1.0, 1.2, 1.4):
        i_c = params.transistor.compliance(v_gate)
        g = set_at_compliance(m, idx, v_gate)
        measured = np.std(np.log(g))
        expected = np.hypot(params.lrs_spread(i_c), params.sigma_d2d)
        assert measured == pytest.approx(expected, rel=0.10), v_gate
        spreads.append(measured)
    assert all(a > b for a, b in zip(spreads, spreads[1:]))


@pytest.mark.parametrize("params", [HFO2_PHYSICS, SIOX_PHYSICS], ids=["hfo2", "siox"])
def test_hrs_grows_exponentially_with_v_stop(params):
    """ln(median R_HRS) vs |V_STOP| has slope 1/hrs_v (within 5 %); log-normal width as stated."""
    m, idx = formed_model(params)
    v_stops = np.array([1.6, 2.0, 2.4, 2.8])
    ln_median = []
    for v in v_stops:
        m.set(idx, np.full(idx.size, 1.4), np.full(idx.size, 2.2), 1e-6)
        m.reset(idx, np.full(idx.size, -v), np.full(idx.size, 2.5), 1e-6)
        r = 1.0 / m.conductance(idx)
        ln_median.append(np.median(np.log(r)))
        assert np.std(np.log(r)) == pytest.approx(np.hypot(params.sigma_hrs, params.sigma_d2d_hrs), rel=0.08)
    slope = np.polyfit(v_stops, ln_median, 1)[0]
    assert slope == pytest.approx(1.0 / params.hrs_v, rel=0.05)
    assert np.exp(ln_median[1]) == pytest.approx(params.hrs_median(2.0), rel=0.05)


def test_partial_reset_gives_intermediate_state_and_never_raises_conductance():
    m, idx = formed_model()
    m.set(idx, np.full(idx.size, 1.4), np.full(idx.size, 2.2), 1e-6)
    g_lrs = m.conductance(idx)
    m.reset(idx, np.full(idx.size, -0.9), np.full(idx.size, 2.5), 1e-6)  # weak, short pulse
    g_partial = m.conductance(idx)
    full_hrs = 1.0 / HFO2_PHYSICS.hrs_median(0.9)
    assert np.all(g_partial <= g_lrs)
    frac_between = np.mean((g_partial < 0.99 * g_lrs) & (g_partial > 1.01 * full_hrs))
    assert frac_between > 0.5


def test_set_never_lowers_conductance():
    m, idx = formed_model()
    m.set(idx, np.full(idx.size, 1.4), np.full(idx.size, 2.2), 1e-6)
    before = m.conductance(idx)
    m.set(idx, np.full(idx.size, 0.8), np.full(idx.size, 2.2), 1e-6)  # lower compliance
    assert np.all(m.conductance(idx) >= before)


def test_forming_needs_forming_voltage():
    m = ArrayPhysics(HFO2_PHYSICS, SHAPE, seed=3)
    idx = m.all_indices()
    g0 = m.conductance(idx)
    m.set(idx, np.full(idx.size, 1.2), np.full(idx.size, 2.0), 1e-6)  # SET amplitude < V_form
    healthy = m.stuck == 0
    assert np.array_equal(m.conductance(idx)[healthy], g0[healthy])
    m.form(idx, np.full(idx.size, 4.0), np.full(idx.size, 1.0), 10e-6)
    g = m.conductance(idx)
    assert np.all(m.formed[healthy])
    assert np.median(g[healthy]) == pytest.approx(HFO2_PHYSICS.transistor.compliance(1.0) / 0.4, rel=0.05)
    assert not np.any(m.formed[m.stuck == STUCK_HRS])


def test_read_noise_scales_with_aperture():
    # the instrument's noise alone (the benign preset has no device read fluctuation)
    m, idx = formed_model(HFO2_BENIGN_PHYSICS)
    m.set(idx, np.full(idx.size, 1.2), np.full(idx.size, 2.2), 1e-6)
    g = m.conductance(idx)
    for aperture in (1e-3, 4e-3):
        reads = np.stack([m.read(idx, 0.1, aperture) for _ in range(20)])
        rel = np.std(reads / g, axis=0).mean()
        expected = HFO2_BENIGN_PHYSICS.sigma_read * np.sqrt(1e-3 / aperture)
        assert rel == pytest.approx(expected, rel=0.1)


def test_relaxation_spread_grows_with_log_time():
    # the relative (ln-unit) relaxation alone: the benign preset has no absolute term
    m, idx = formed_model(HFO2_BENIGN_PHYSICS)
    m.set(idx, np.full(idx.size, 1.2), np.full(idx.size, 2.2), 1e-6)
    g0 = m.conductance(idx)
    p = HFO2_BENIGN_PHYSICS
    for seconds in (10.0, 1e4):
        m.advance(seconds - (m.t - m.t_prog[idx].max()))
        lnt = np.log1p((m.t - m.t_prog[idx].max()) / p.t_relax0)
        ratio = np.log(m.conductance(idx) / g0)
        assert np.std(ratio) == pytest.approx(p.sigma_relax * lnt, rel=0.1)
        assert np.mean(ratio) == pytest.approx(p.drift_relax * lnt, abs=3 * p.sigma_relax * lnt / np.sqrt(idx.size))


def test_endurance_failures_follow_the_lognormal_distribution():
    """Fraction of worn-out cells after N cycles = P(lognormal endurance <= 2N) within 3 points."""
    from math import erf, log, sqrt

    params = dataclasses.replace(HFO2_PHYSICS, endurance_median=100.0, sigma_endurance=0.5,
                                 p_stuck_lrs=0.0, p_stuck_hrs=0.0)
    m, idx = formed_model(params, shape=(40, 50))
    for cycles in range(1, 121):
        m.set(idx, np.full(idx.size, 1.2), np.full(idx.size, 2.2), 1e-6)
        m.reset(idx, np.full(idx.size, -2.0), np.full(idx.size, 2.5), 1e-6)
        if cycles in (30, 50, 80, 120):
            events = 2 * cycles
            expected = 0.5 * (1 + erf(log(events / 100.0) / (0.5 * sqrt(2))))
            assert np.mean(m.stuck != 0) == pytest.approx(expected, abs=0.03), cycles
    worn = m.stuck != 0
    assert set(np.unique(m.stuck[worn])) <= {STUCK_LRS, STUCK_HRS}
    # a stuck cell no longer switches
    g = m.conductance(idx[worn])
    m.set(idx[worn], np.full(worn.sum(), 1.4), np.full(worn.sum(), 2.2), 1e-6)
    assert np.allclose(m.conductance(idx[worn]), g)


def test_event_counts_and_fabrication_defects():
    m, idx = formed_model(shape=(100, 100))
    p = HFO2_PHYSICS
    assert np.mean(m.stuck == STUCK_LRS) == pytest.approx(p.p_stuck_lrs, abs=0.001)
    assert np.mean(m.stuck == STUCK_HRS) == pytest.approx(p.p_stuck_hrs, abs=0.0015)
    m.set(idx[:10], np.full(10, 1.0), np.full(10, 2.0), 1e-6)
    m.reset(idx[:4], np.full(4, -2.0), np.full(4, 2.5), 1e-6)
    events = m.programming_events().reshape(-1)
    assert events[idx[0]] == 3 and events[idx[5]] == 2 and events[idx[20]] == 1


def test_same_seed_same_device_different_seed_different_device():
    a, b, c = (ArrayPhysics(HFO2_PHYSICS, (8, 8), s) for s in (5, 5, 6))
    assert np.array_equal(a.d2d, b.d2d) and not np.array_equal(a.d2d, c.d2d)


def test_state_round_trip_continues_identically():
    m, idx = formed_model(shape=(16, 16))
    arrays, meta = m.get_state(include_fixed=True)
    twin = ArrayPhysics(HFO2_PHYSICS, (16, 16), seed=99)  # other device draws: restored from the state
    twin.set_state(arrays, meta)
    same_seed = ArrayPhysics(HFO2_PHYSICS, (16, 16), seed=1)  # same draws: mutable state suffices
    same_seed.set_state(*m.get_state())
    for model in (m, twin, same_seed):
        model.advance(5.0)
        model.set(idx, np.full(idx.size, 1.1), np.full(idx.size, 2.2), 1e-6)
    reads = [model.read(idx, 0.1) for model in (m, twin, same_seed)]
    assert np.array_equal(reads[0], reads[1]) and np.array_equal(reads[0], reads[2])


def test_presets_by_name():
    assert get_preset("hfo2").physics is HFO2_PHYSICS
    with pytest.raises(ValueError, match="unknown technology"):
        get_preset("tio2")


# ---------------------------------------------------------------- the harsh "hfo2" preset
def _programmed_at(params, g_values, seed=2, shape=(40, 40)):
    """A model whose healthy cells sit exactly at ``g_values`` (S), cycled over the cells, just
    programmed (relaxation clock at zero)."""
    m, idx = formed_model(params, seed=seed, shape=shape)
    g = np.asarray(g_values)[np.arange(idx.size) % len(g_values)]
    m.g_prog[idx] = g
    m.t_prog[idx] = m.t
    return m, idx, g


def test_device_read_noise_is_a_floor_larger_at_low_conductance():
    p = HFO2_PHYSICS
    m, idx, g = _programmed_at(p, [50e-6, 200e-6])
    rel = {}
    for aperture in (1e-3, 20e-3):
        reads = np.stack([m.read(idx, 0.1, aperture) for _ in range(40)])
        for level in (50e-6, 200e-6):
            rel[aperture, level] = np.std(reads[:, g == level] / level, axis=0).mean()
    for level in (50e-6, 200e-6):
        dev = float(p.read_dev_rel(level))
        inst = p.sigma_read
        # total = device (aperture-independent) + instrument (averages as sqrt(aperture))
        assert rel[1e-3, level] == pytest.approx(np.hypot(dev, inst), rel=0.1)
        assert rel[20e-3, level] == pytest.approx(np.hypot(dev, inst * np.sqrt(1e-3 / 20e-3)), rel=0.1)
        # a 20x longer aperture leaves at least the device floor
        assert rel[20e-3, level] >= 0.9 * dev
    # relative noise grows as G falls, as (g_read_ref / G) ** read_dev_exp
    assert rel[20e-3, 50e-6] / rel[20e-3, 200e-6] == pytest.approx(4 ** p.read_dev_exp, rel=0.15)
    # never a negative reading, even in the HRS
    m2, idx2, _ = _programmed_at(p, [2e-6])
    assert np.all(np.stack([m2.read(idx2, 0.1) for _ in range(20)]) > 0)


def test_device_read_noise_reaches_mvm():
    p = HFO2_PHYSICS
    m, idx, g = _programmed_at(p, [50e-6], shape=(32, 4))
    x = np.zeros(32)
    x[0] = 1.0  # one row: the column current is that one cell's
    i = np.stack([m.mvm(x, 0.1, 20e-3) for _ in range(400)])
    assert np.std(i[:, 0]) / (0.1 * 50e-6) == pytest.approx(float(p.read_dev_rel(50e-6)), rel=0.15)



def test_mvm_single_precision_sums_are_exact_to_well_below_the_read_noise():
    """The float32 Kirchhoff sums: without noise, equal to the float64 product to 1e-6."""
    p = dataclasses.replace(HFO2_PHYSICS, sigma_read=0.0, i_noise_floor=0.0, read_dev_ref=0.0)
    m, idx, g = _programmed_at(p, [5e-6, 50e-6, 200e-6], shape=(400, 30))
    x = np.random.default_rng(3).random((64, 400))
    i = m.mvm(x, 0.1)
    assert i.dtype == np.float64
    np.testing.assert_allclose(i, (x * 0.1) @ m.conductance().reshape(400, 30), rtol=1e-6)


def test_lrs_relaxation_spread_is_conductance_independent_and_hrs_relaxes_up():
    p = HFO2_PHYSICS
    levels = [50e-6, 200e-6]
    m, idx, g = _programmed_at(p, levels, shape=(60, 60))
    day = 86400.0
    m.advance(day)
    lnt = np.log1p(day / p.t_relax0)
    dg = m.conductance(idx) - g
    for level in levels:
        sel = g == level
        expected = np.hypot(p.sigma_relax_abs, level * p.sigma_relax) * lnt
        assert np.std(dg[sel]) == pytest.approx(expected, rel=0.1)
    # conductance-independent: the same absolute spread at 50 and 200 uS within 25 %
    s50, s200 = np.std(dg[g == 50e-6]), np.std(dg[g == 200e-6])
    assert s200 / s50 == pytest.approx(1.0, abs=0.25)
    # after a day, levels 25 uS apart overlap (Esmanhotto et al.): 2 sigma each side > 12.5 uS
    assert 2 * s50 > 12.5e-6 / 2
    # the LRS drifts down, the HRS (below g_mid) up
    mh, idxh, gh = _programmed_at(p, [3e-6], shape=(30, 30))
    mh.advance(day)
    assert np.median(mh.conductance(idxh) / gh) > 1.05
    assert np.median(dg[g == 200e-6]) < 0


def test_stressed_multiplies_the_device_terms_only():
    p = HFO2_PHYSICS
    s = stressed(p, read_noise_x=2.0, relaxation_x=5.0, endurance_x=0.01)
    assert s.read_dev_ref == 2 * p.read_dev_ref and s.sigma_read == p.sigma_read
    assert s.sigma_relax_abs == 5 * p.sigma_relax_abs and s.sigma_relax == 5 * p.sigma_relax
    assert s.drift_relax == 5 * p.drift_relax and s.drift_relax_hrs == 5 * p.drift_relax_hrs
    assert s.endurance_median == pytest.approx(0.01 * p.endurance_median) and s.name == p.name
    assert stressed(p) == p
    # the scaling reaches the measured noise
    m1, idx1, _ = _programmed_at(p, [50e-6])
    m2, idx2, _ = _programmed_at(stressed(p, read_noise_x=2.0), [50e-6])
    r1 = np.std(np.stack([m1.read(idx1, 0.1, 20e-3) for _ in range(30)]), axis=0).mean()
    r2 = np.std(np.stack([m2.read(idx2, 0.1, 20e-3) for _ in range(30)]), axis=0).mean()
    assert r2 / r1 == pytest.approx(2.0, rel=0.15)
    for bad in ({"read_noise_x": -1.0}, {"relaxation_x": float("nan")}, {"endurance_x": 0.0}):
        with pytest.raises(ValueError, match="outside the allowed range"):
            stressed(p, **bad)


def test_state_saved_before_absolute_relaxation_existed_restores():
    m, idx = formed_model(shape=(8, 8))
    arrays, meta = m.get_state()
    del arrays["z_relax_abs"]
    twin = ArrayPhysics(HFO2_PHYSICS, (8, 8), seed=1)
    twin.set_state(arrays, meta)
    assert np.all(twin.z_relax_abs == 0)


def test_unequal_level_preset():
    p = get_preset("hfo2-icc")
    assert p.physics.read_dev_ref == HFO2_PHYSICS.read_dev_ref
    widths = np.diff(p.technology.levels)
    assert np.all(np.diff(widths) > 0)  # intervals widen with G (geometric I_CC steps)


@pytest.mark.parametrize("params", [HFO2_PHYSICS, SIOX_PHYSICS], ids=["hfo2", "siox"])
def test_single_precision_relaxation_is_the_double_precision_one_to_1e6(params):
    """The conductance the MVM sums (float32 relaxation) after an hour and after a year equals the
    float64 conductance to 1e-6 relative: HRS and LRS, drift, spread and (HfO2) the absolute LRS part."""
    m, idx, g = _programmed_at(params, [3e-6, 20e-6, 50e-6, 200e-6], shape=(40, 40))
    for seconds in (3600.0, 3.2e7):
        m.advance(seconds)
        g64 = m.conductance(idx)
        g32 = m.conductance(idx, dtype=np.float32)
        assert g32.dtype == np.float32 and not np.allclose(g64, g, rtol=1e-3)  # it did relax
        np.testing.assert_allclose(g32, g64, rtol=1e-6)


def test_the_mvm_sums_the_relaxed_conductances():
    """After a day of relaxation the noiseless MVM is the float64 product with the relaxed map."""
    p = dataclasses.replace(SIOX_PHYSICS, sigma_read=0.0, i_noise_floor=0.0, read_dev_ref=0.0)
    m, idx, g = _programmed_at(p, [5e-6, 50e-6, 100e-6], shape=(200, 30))
    fresh = m.conductance().reshape(200, 30)
    m.advance(86400.0)
    x = np.random.default_rng(4).random((16, 200))
    relaxed = m.conductance().reshape(200, 30)
    np.testing.assert_allclose(m.mvm(x, 0.1), (x * 0.1) @ relaxed, rtol=1e-6)
    assert not np.allclose(m.mvm(x, 0.1), (x * 0.1) @ fresh, rtol=1e-3)
