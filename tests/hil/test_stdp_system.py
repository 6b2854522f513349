"""The SiOx continual-learning system: filters in the array, overlay, STDP with SFA (seeded, small)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from calibration.table import default_table
from drivers.overlay.driver import NumpyOverlay
from drivers.overlay.reference import Geometry
from drivers.sim.presets import get_preset
from drivers.oplog import OpKind
from drivers.sim_array import SimArray
from hil.bitslice import BitSlicedFilters
from hil.datasets.cifar10 import RECORD, load_cifar10, to_filter_input
from hil.datasets.idx import ChecksumError
from hil.datasets.noisy import add_pixel_noise
from hil.learning import filters as flt
from hil.learning.stdp import STDPBlock, STDPParams, vote


def clean_siox() -> SimArray:
    return get_preset("siox").physics


def defect_free(shape, seed=1) -> SimArray:
    phys = dataclasses.replace(get_preset("siox").physics, p_stuck_lrs=0.0, p_stuck_hrs=0.0)
    return SimArray(shape, phys, seed=seed, technology=get_preset("siox").technology)


# ---------------------------------------------------------------------------- filters in the array
@pytest.mark.parametrize("scheme", ["offset", "differential"])
def test_bitsliced_round_trip_within_read_noise(scheme: str) -> None:
    rng = np.random.default_rng(0)
    bs = BitSlicedFilters(100, 8, bits=4, scheme=scheme)
    arr = defect_free(bs.shape)
    codes = flt.weight_codes(rng.uniform(-1, 1, (100, 8)), 4)
    bs.program(arr, codes, default_table("siox"))
    x = (rng.random((300, 100)) < 0.3).astype(float)
    got = bs.to_weight_units(bs.responses(arr, x), arr.technology.v_read)
    want = x @ flt.code_weights(codes, 4)
    # error budget: programming tolerance 5 % of G_on (+ read noise 1 %) over ~30 active cells
    err = got - want
    assert np.std(err) < 0.1 * np.std(want)
    # and not the ideal weights: repeated MVMs differ (read noise per evaluation)
    again = bs.to_weight_units(bs.responses(arr, x), arr.technology.v_read)
    assert not np.array_equal(got, again)
    # a wrong bit order would break it
    wrong = x @ flt.code_weights(15 - codes, 4)
    assert np.std(got - wrong) > 0.5 * np.std(want)



class _NoiselessArray:
    """Column currents exactly ``(x v_read) @ G``: what the defect correction acts on, without noise."""

    def __init__(self, g: np.ndarray) -> None:
        self.g, self.shape, self.technology = g, g.shape, get_preset("siox").technology

    def mvm(self, x: np.ndarray) -> np.ndarray:
        return (x * self.technology.v_read) @ self.g


@pytest.mark.parametrize("scheme", ["offset", "differential", "multilevel"])
def test_defect_correction_subtracts_each_defects_current_from_its_column(scheme: str) -> None:
    """responses() = combine(I - (x v) C) for the mapped correction C, whatever the scheme."""
    rng = np.random.default_rng(1)
    bs = BitSlicedFilters(50, 6, bits=4, scheme=scheme)
    g = rng.uniform(1e-6, 50e-6, bs.shape)
    bs.correction = np.where(rng.random(bs.shape) < 0.1, rng.normal(0, 20e-6, bs.shape), 0.0)
    bs.n_defects = int(np.count_nonzero(bs.correction))
    x = rng.random((40, 50))
    arr = _NoiselessArray(g)
    want = bs.combine(arr.mvm(x) - (x * arr.technology.v_read) @ bs.correction)
    np.testing.assert_allclose(bs.responses(arr, x), want, rtol=1e-9, atol=1e-18)
    bs.n_defects = 0  # without mapped defects nothing is subtracted
    np.testing.assert_allclose(bs.responses(arr, x), bs.combine(arr.mvm(x)), rtol=1e-12)


def test_changing_conductances_changes_the_feature_map() -> None:
    rng = np.random.default_rng(1)
    bs = BitSlicedFilters(400, 4, bits=4, scheme="offset", defect_correction=False)
    arr = defect_free(bs.shape)
    codes = flt.weight_codes(rng.uniform(-1, 1, (400, 4)), 4)
    bs.program(arr, codes, default_table("siox"))
    images = rng.integers(0, 256, (20, 28, 28)).astype(np.uint8)
    p = flt.patches(images, np.float64).reshape(-1, 400)
    ov = NumpyOverlay()
    g = Geometry(9, 9, 4, pool_h=9, pool_w=9)

    def fmap() -> np.ndarray:
        y = bs.to_weight_units(bs.responses(arr, p), arr.technology.v_read).reshape(20, 9, 9, 4)
        vref = np.median(y.max(axis=(1, 2)), axis=0)
        return ov_process(ov, g, y, vref)

    before = fmap()
    arr.reset_pulse(np.flatnonzero(bs.bit_pattern(codes)[:, 4 * 3:4 * 4].any(axis=1)) * bs.shape[1] + 15, v_stop=-3.0)
    after = fmap()
    assert not np.array_equal(before[..., 3], after[..., 3])


def ov_process(ov, g, y, vref) -> np.ndarray:
    ov.configure(np.rint(vref * 100).astype(np.int16), g)
    return ov.process(np.rint(y * 100).astype(np.int16))


def test_overlay_twin_and_sim_device_identical() -> None:
    pytest.importorskip("pynq")
    from drivers.overlay.driver import MaxPoolOverlay
    from drivers.overlay.sim_hwh import write_overlay_files
    from drivers.sim.pynq_device import SimPynqDevice
    import tempfile

    rng = np.random.default_rng(2)
    frames = rng.integers(-2000, 2000, (7, 9, 9, 64)).astype(np.int16)
    vref = rng.integers(0, 1500, 64).astype(np.int16)
    g = Geometry(9, 9, 64, pool_h=3, pool_w=3)
    twin = NumpyOverlay()
    twin.configure(vref, g)
    with tempfile.TemporaryDirectory() as d:
        dev = MaxPoolOverlay(str(write_overlay_files(d)), device=SimPynqDevice())
        dev.configure(vref, g)
        np.testing.assert_array_equal(twin.process(frames), dev.process(frames))
        dev.close()


def test_quantise_levels_and_bits_range() -> None:
    w = np.linspace(-1, 1, 2001)
    for b in (1, 4, 8):
        q = flt.quantise(w, b)
        assert np.unique(q).size == 2**b
    with pytest.raises(ValueError, match="bits"):
        flt.quantise(w, 9)


@pytest.mark.parametrize("pool", [9, 4, 3])
def test_weight_gradient_of_window_maxima_is_the_dense_backpropagation(pool: int) -> None:
    """The gathered gradient equals backpropagation through every response (zero away from each
    window's argmax) and the change of the maxima under a small weight step."""
    rng = np.random.default_rng(7)
    p = rng.random((6, flt.POSITIONS**2, 400), dtype=np.float32)
    w = rng.standard_normal((400, 5)).astype(np.float32)
    win = flt.pool_windows(pool)
    m, argpos = flt.pooled(p @ w, win)
    d_m = rng.standard_normal(m.shape).astype(np.float32)
    d_r = np.zeros((6, flt.POSITIONS**2, 5), np.float32)
    for n, k, f in np.ndindex(*m.shape):
        d_r[n, argpos[n, k, f], f] += d_m[n, k, f]
    dense = p.reshape(-1, 400).T @ d_r.reshape(-1, 5)
    grad = flt._weight_grad(p, argpos, d_m)
    np.testing.assert_allclose(grad, dense, rtol=1e-5, atol=1e-5 * np.abs(dense).max())
    step = 1e-5 * rng.standard_normal(w.shape)  # small enough that no window changes its argmax
    p64 = p.astype(np.float64)
    m0, _ = flt.pooled(p64 @ w, win)
    m2, arg2 = flt.pooled(p64 @ (w + step), win)
    assert np.array_equal(arg2, argpos)
    linear = np.sum(d_m * (m2 - m0)), np.sum(grad * step)
    assert linear[0] == pytest.approx(linear[1], rel=1e-2)


def test_joint_filters_train_on_trained_classes_only() -> None:
    rng = np.random.default_rng(3)
    # two synthetic classes: a bar at the top vs at the bottom; class 2 must never be seen
    x = np.zeros((120, 28, 28), np.uint8)
    y = np.repeat([0, 1, 2], 40)
    x[y == 0, 2:6, :] = 255
    x[y == 1, 22:26, :] = 255
    x[y == 2] = 255
    bank = flt.train_joint_filters(x, y, (0, 1), n_filters=4, epochs=20, seed=0, lr=0.05)
    f = bank.feature_maps(x)
    # the feature maps separate the two trained classes
    assert not np.array_equal(f[y == 0].mean(0) > 0.5, f[y == 1].mean(0) > 0.5)
    assert np.unique(bank.weights).size <= 16


def test_max_entropy_vref_balances_bits_and_never_sees_untrained_classes() -> None:
    from hil.datasets import load_dataset

    ds = load_dataset("mnist", None, "bundled")
    x, y = ds.x_train[:1500], ds.y_train[:1500].astype(np.int64)
    trained = (0, 1, 2, 3, 4)
    bank = flt.max_entropy_vref(flt.train_joint_filters(x, y, trained, epochs=1, pool=4, seed=0), x, y, seed=0)
    # each filter's bit is on for half of the trained classes' (image, window) pairs
    seen = np.isin(y, trained)
    on = bank.feature_maps(x[seen]).reshape(seen.sum(), -1, flt.N_FILTERS).mean(axis=(0, 1))
    np.testing.assert_allclose(on, 0.5, atol=0.02)
    # images of the untrained classes are never looked at: changing them leaves V_REF as it was
    x2 = x.copy()
    x2[~seen] = 255
    np.testing.assert_array_equal(flt.max_entropy_vref(bank, x2, y, seed=0).vref, bank.vref)
    # the bits of the classes the filters never saw still tell those classes apart (chance: 20 %)
    xu, yu = x[~seen], y[~seen]
    fu = bank.feature_maps(xu).astype(np.float32)
    half = np.arange(len(yu)) % 2 == 0
    means = np.stack([fu[half & (yu == c)].mean(0) for c in range(5, 10)])
    pred = 5 + ((fu[~half, None, :] - means[None]) ** 2).sum(-1).argmin(1)
    assert np.mean(pred == yu[~half]) > 0.6


# ---------------------------------------------------------------------------- STDP with SFA
def block(n_in=8, n=4, **kw) -> STDPBlock:
    p = STDPParams(n_neurons=n, **kw)
    b = STDPBlock(SimArray((n_in + 2, n), "siox", seed=5), n_in, p, seed=0)
    b.initialise()
    return b


@pytest.mark.parametrize("drive", ["bipolar", "unipolar"])
def test_firing_raises_threshold_through_sfa_device(drive: str) -> None:
    b = block(vth0=0.05, sfa_gain=10.0, p_noise=0.0, v_pulse_sfa=1.6, drive=drive)
    bits = np.array([1, 1, 1, 1, 1, 1, 1, 0], bool)
    sfa_cells = 9 * 4 + np.arange(4)
    g0 = b.array.conductance().reshape(-1)[sfa_cells]
    w = b.present(bits)
    assert w >= 0
    g1 = b.array.conductance().reshape(-1)[sfa_cells]
    others = np.arange(4) != w
    assert g1[w] > 1.2 * g0[w] and np.allclose(g1[others], g0[others], rtol=0.01)  # relaxation only
    assert b.vth[w] > 0.05 and np.all(b.vth[np.arange(4) != w] == 0.05)
    off = block(vth0=0.05, sfa_gain=10.0, p_noise=0.0, sfa=False, drive=drive)
    off.present(bits)
    assert off.present(bits) >= 0 and np.all(off.vth == 0.05)


def test_sfa_relaxes_by_partial_reset_of_its_device() -> None:
    """The adaptation decays: every sfa_decay_every presentations each SFA device gets one partial
    RESET (a logged device pulse) and the threshold follows it down, never below vth0."""
    kw = dict(vth0=0.05, sfa_gain=10.0, p_noise=0.0, v_pulse_sfa=1.6, v_stop_sfa_decay=-1.3)
    b = block(sfa_decay_every=4, **kw)
    ops = []
    b.array.add_listener(ops.append)
    bits = np.array([1, 1, 1, 1, 1, 1, 1, 0], bool)
    w = b.present(bits)
    vth_up = b.vth[w]
    assert vth_up > 0.05
    sfa_cells = 9 * 4 + np.arange(4)
    g_up = b.array.conductance().reshape(-1)[sfa_cells]
    b.p = dataclasses.replace(b.p, vth0=1e3)  # nothing can fire now: only the relaxation acts
    b.vth = b.vth + (1e3 - 0.05)
    for _ in range(7):  # presentations 2..8: relaxations at 4 and 8
        assert b.present(bits) == -1
    g_down = b.array.conductance().reshape(-1)[sfa_cells]
    assert g_down[w] < 0.9 * g_up[w]
    assert b.counts["sfa_decay_pulses"] == 2 * 4
    assert b.vth[w] - 1e3 < vth_up - 0.05 and np.all(b.vth >= 1e3)
    sfa_resets = [o for o in ops if o.kind == OpKind.RESET and np.all(o.rows == 9)]
    assert len(sfa_resets) == 2 and all(o.cols.size == 4 for o in sfa_resets)  # logged device pulses
    never = block(sfa_decay_every=0, **kw)
    never.present(bits)
    for _ in range(7):
        never.present(np.zeros(8, bool))
    assert never.counts["sfa_decay_pulses"] == 0


@pytest.mark.parametrize("drive", ["bipolar", "unipolar"])
def test_drive_selects_nearest_prototype_or_largest_dot_product(drive: str) -> None:
    """Bipolar drive: the winner is the neuron nearest in L1 to the pattern (no dot-product bias);
    unipolar: the largest x . G. Computed by the array's MVM, checked against the true conductances."""
    n_in, n = 16, 6
    b = block(n_in=n_in, n=n, sfa=False, p_noise=0.0, drive=drive)
    rng = np.random.default_rng(4)
    gates = rng.uniform(0.8, 1.2, n_in * n)
    b.array.reset_pulse(np.arange(n_in * n), v_stop=-2.0)
    b.array.set_pulse(np.arange(n_in * n), v_gate=gates, v_pulse=2.2)
    b.fired[:] = 1
    x = rng.random((400, n_in)) < rng.uniform(0.2, 0.8, (400, 1))
    g = b.array.conductance()[:n_in]
    if drive == "bipolar":
        want = np.argmin(np.abs(x[:, :, None] - g[None] / g.max()).sum(1), axis=1)  # L1-nearest weights
    else:
        want = np.argmax(x.astype(float) @ g, axis=1)
    got = b.winners(x)
    assert np.mean(got == want) > 0.9  # read noise flips near-ties only
    other = np.argmax(x.astype(float) @ g, axis=1) if drive == "bipolar" else np.argmax((2.0 * x - 1.0) @ g, axis=1)
    assert np.mean(got == other) < 0.8  # and the two drives really differ


def test_noise_depresses_background_not_pattern() -> None:
    b = block(vth0=-4.0, p_noise=1.0, sfa=False, v_stop_ltd=-1.4)
    n = 4
    # potentiate everything first, so depression is visible
    b.array.set_pulse(np.arange(8 * n), v_gate=1.2, v_pulse=2.2)
    g0 = b.array.conductance()[:8]
    bits = np.array([1, 1, 1, 1, 0, 0, 0, 0], bool)
    w = b.present(bits)
    g1 = b.array.conductance()[:8]
    assert np.all(g1[4:, w] < 0.8 * g0[4:, w])          # background of the winner depressed
    assert np.all(g1[:4, w] >= 0.99 * g0[:4, w])         # pattern never depressed (relaxation < 1 %)
    others = np.arange(n) != w
    np.testing.assert_allclose(g1[:, others], g0[:, others], rtol=0.01)


@pytest.mark.parametrize("drive, vth0", [("bipolar", -4.0), ("unipolar", 0.05)])
def test_new_class_takes_its_own_neuron(drive: str, vth0: float) -> None:
    b = block(n_in=16, n=4, vth0=vth0, sfa_gain=1.0, p_noise=1.0, v_pulse_ltp=1.4, v_stop_ltd=-1.2, drive=drive)
    a = np.zeros(16, bool)
    a[:6] = True
    c = np.zeros(16, bool)
    c[10:16] = True
    wins_a = [b.present(a) for _ in range(15)]
    wa = max(set(wins_a) - {-1}, key=wins_a.count)
    wins_c = [b.present(c) for _ in range(15)]
    wc = max(set(wins_c) - {-1}, key=wins_c.count)
    assert wa != wc
    assert b.winners(np.stack([a, c]))[0] == wa


def test_vote_counts_the_m_most_excited_labelled_neurons() -> None:
    """k-WTA readout: the majority of the m largest margins wins over the single winner; unlabelled and
    silent (-inf) neurons never vote; a tie goes to the class of the most excited neuron."""
    labels = np.array([0, 1, 1, 2, -1, 0])
    margins = np.array([
        [5.0, 4.0, 3.0, 1.0, 9.0, 0.0],        # winner class 0 (the -1 neuron is skipped); 1 has 2 of the top 3
        [5.0, 4.0, 3.0, 1.0, 9.0, 0.0],        # m = 1: the most excited labelled neuron
        [-np.inf, 2.0, -np.inf, 3.0, 9.0, -np.inf],  # only 2 voters, tie 1-1: the more excited (class 2)
        [-np.inf] * 6,                          # nobody votes
    ])
    assert vote(margins[[0]], labels, 3).tolist() == [1]
    assert vote(margins[[1]], labels, 1).tolist() == [0]
    assert vote(margins[[2]], labels, 3).tolist() == [2]
    assert vote(margins[[3]], labels, 3).tolist() == [-1]
    rng = np.random.default_rng(0)
    many = rng.standard_normal((50, 6))
    winner = np.where(labels >= 0, many, -np.inf).argmax(1)
    assert np.array_equal(vote(many, labels, 1), labels[winner])


def test_block_vote_reads_the_array() -> None:
    """The block's vote comes from the measured potentials: with the synapses of two neurons swapped in
    the array, their votes swap."""
    n_in, n = 16, 4
    b = block(n_in=n_in, n=n, sfa=False, p_noise=0.0)
    pattern = np.zeros(n_in, bool)
    pattern[:8] = True
    b.array.reset_pulse(np.arange(n_in * n), v_stop=-2.0)
    b.array.set_pulse(np.flatnonzero(pattern) * n + 0, v_gate=1.2, v_pulse=2.2)   # neuron 0 stores the pattern
    b.array.set_pulse(np.flatnonzero(~pattern) * n + 1, v_gate=1.2, v_pulse=2.2)  # neuron 1 its complement
    b.fired[:] = 1
    labels = np.array([3, 7, -1, -1])
    assert b.vote(pattern[None], labels, 2).tolist() == [3]
    assert b.vote(~pattern[None], labels, 2).tolist() == [7]


# ---------------------------------------------------------------------------- datasets
def test_pixel_noise_seeded_fraction() -> None:
    x = np.zeros((5, 28, 28), np.uint8)
    n1 = add_pixel_noise(x, 0.2, np.random.default_rng(0))
    n2 = add_pixel_noise(x, 0.2, np.random.default_rng(0))
    np.testing.assert_array_equal(n1, n2)
    changed = (n1 != 0).reshape(5, -1).sum(1)
    assert np.all(changed <= 157) and np.all(changed > 140)  # 157 pixels drawn, a few land on 0


def test_cifar10_binary_loader(tmp_path) -> None:
    import hashlib

    rng = np.random.default_rng(0)
    files = {}
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        rec = rng.integers(0, 256, (3, RECORD)).astype(np.uint8)
        rec[:, 0] = rng.integers(0, 10, 3)
        (tmp_path / name).write_bytes(rec.tobytes())
        files[name] = rec
    sums = {n: hashlib.sha256(r.tobytes()).hexdigest() for n, r in files.items()}
    ds = load_cifar10(tmp_path, sums)
    assert ds.x_train.shape == (15, 32, 32, 3) and ds.x_test.shape == (3, 32, 32, 3)
    r = files["data_batch_1.bin"][0]
    assert ds.y_train[0] == r[0] and ds.x_train[0, 0, 1, 2] == r[1 + 2048 + 1]  # blue plane, row 0, col 1
    assert to_filter_input(ds.x_train).shape == (15, 28, 28)
    bad = dict(sums, **{"test_batch.bin": "0" * 64})
    with pytest.raises(ChecksumError):
        load_cifar10(tmp_path, bad)
    (tmp_path / "test_batch.bin").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="records"):
        load_cifar10(tmp_path)
