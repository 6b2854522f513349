"""Learning rules against hand-computed cases (hil.learning)."""

import numpy as np
import pytest

from hil.learning.levels import level_coordinate, quantize
from hil.learning.metaplastic import Adam, bnn_meta_update, consolidation, meta_function, metaplastic_update
from hil.learning.qnn import QNN

# Unequally spaced levels straddling zero: intervals 0.8, 0.5, 0.7.
Q = np.array([-1.0, -0.2, 0.3, 1.0])
Q8 = np.array([-7, -5, -3, -1, 1, 3, 5, 7]) / 7


def test_quantize_nearest_level_with_midpoint_thresholds():
    # thresholds: -0.6, 0.05, 0.65 ; ties go up
    w = np.array([-2.0, -0.61, -0.6, 0.0, 0.05, 0.64, 0.7, 5.0])
    assert quantize(w, Q).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


def test_level_coordinate_counts_intervals():
    w = np.array([-1.4, -1.0, -0.2, 0.05, 0.3, 1.0, 2.0])
    expected = [-0.5, 0.0, 1.0, 1.5, 2.0, 3.0, 3.0 + 1.0 / 0.7]
    np.testing.assert_allclose(level_coordinate(w, Q), expected, rtol=0, atol=1e-12)


def test_consolidation_hand_computed_unequal_levels():
    # phi(0) = 1 + 0.2/0.5 = 1.4; 1.6 intervals from 0 to Q_3, 1.4 from 0 to Q_0
    w = np.array([0.0, 0.3, 1.0, -0.2, -1.0, 2.0])
    expected = [0.0, 0.6 / 1.6, 1.0, 0.4 / 1.4, 1.0, (1.6 + 1.0 / 0.7) / 1.6]
    np.testing.assert_allclose(consolidation(w, Q, "interval"), expected, atol=1e-12)
    # the weight-unit variant (unit="weight"): |w| / max|Q|
    np.testing.assert_allclose(consolidation(w, Q, "weight"), np.abs(w), atol=1e-12)


def test_meta_function_value():
    m = meta_function(np.array([0.3]), Q, 2.0)
    assert m[0] == pytest.approx(1 - np.tanh(2.0 * 0.375) ** 2, abs=1e-12)
    assert meta_function(np.array([0.0]), Q, 5.0)[0] == pytest.approx(1.0)


def test_metaplastic_update_only_scales_updates_toward_zero():
    w = np.array([0.3, 0.3, -1.0, -1.0])
    u = np.array([-0.01, 0.01, 0.02, -0.02])
    out = metaplastic_update(w, u, Q, 2.0)
    m03 = 1 - np.tanh(2.0 * 0.375) ** 2
    m1 = 1 - np.tanh(2.0) ** 2
    np.testing.assert_allclose(out, [-0.01 * m03, 0.01, 0.02 * m1, -0.02], atol=1e-15)
    # m* = 0 is the plain rule
    np.testing.assert_array_equal(metaplastic_update(w, u, Q, 0.0), u)


def test_equal_levels_interval_rule_equals_findings_rule():
    rng = np.random.default_rng(0)
    w = rng.normal(0, 1, 1000)
    general = np.abs(level_coordinate(w, Q8) - level_coordinate(np.zeros(1), Q8)) / 3.5
    np.testing.assert_allclose(consolidation(w, Q8, "interval"), general, atol=1e-12)
    np.testing.assert_allclose(consolidation(w, Q8, "interval"), consolidation(w, Q8, "weight"), atol=1e-12)


def test_bnn_rule_laborieux():
    w = np.array([0.5, -0.5, 0.5])
    u = np.array([-0.1, -0.1, 0.1])
    out = bnn_meta_update(w, u, 1.3)
    np.testing.assert_allclose(out, [-0.1 * (1 - np.tanh(0.65) ** 2), -0.1, 0.1], atol=1e-15)


def test_adam_first_step_is_lr_times_sign():
    adam = Adam(lr=0.01)
    g = np.array([2.0, -3.0, 1e-3])
    u = adam.updates({"w": g})["w"]
    np.testing.assert_allclose(u, -0.01 * np.sign(g), rtol=1e-4)
    adam.reset()
    assert adam.t == 0 and not adam.m


def test_levels_validation():
    with pytest.raises(ValueError, match="ascending"):
        quantize(np.zeros(3), np.array([0.0, -1.0]))
    with pytest.raises(ValueError, match="straddle zero"):
        consolidation(np.zeros(3), np.array([0.1, 0.5]))
    with pytest.raises(ValueError, match="unit"):
        consolidation(np.zeros(3), Q, "bits")


def test_qnn_gradients_match_finite_differences():
    rng = np.random.default_rng(3)
    net = QNN((6, 5, 3), 1, rng, 0.5)
    x = rng.random((8, 6)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    w = [wh.astype(np.float32) for wh in net.w_h]
    net.bn[0]["gamma0"][:] = rng.uniform(0.5, 1.5, 5).astype(np.float32)
    _, gw, gbn = net.loss_and_grads(x, y, w, 0)
    for layer in range(2):
        for (i, j) in [(0, 0), (2, 1), (4, 2)]:
            wp = [a.astype(np.float64) for a in w]
            wm = [a.astype(np.float64) for a in w]
            eps = 1e-3
            wp[layer][i, j] += eps
            wm[layer][i, j] -= eps
            lp, _, _ = net.loss_and_grads(x.astype(np.float64), y, wp, 0)
            lm, _, _ = net.loss_and_grads(x.astype(np.float64), y, wm, 0)
            assert gw[layer][i, j] == pytest.approx((lp - lm) / (2 * eps), rel=0.05, abs=1e-4)
    assert set(gbn) == {"gamma0", "beta0", "gamma1", "beta1"}


def test_bnn_baseline_learns_and_uses_binary_weights():
    from hil.datasets import load_dataset
    from hil.learning.bnn import BNNLearner

    ds = load_dataset("mnist", source="bundled")
    x, y = ds.flat("train")
    xt, yt = ds.flat("test")
    bnn = BNNLearner((784, 64, 64, 10), 1, np.random.default_rng(0), m=1.3, lr=0.005)
    bnn.start_task(0)
    rng = np.random.default_rng(1)
    for _ in range(2):
        order = rng.permutation(len(x))
        for i in range(0, len(x), 50):
            bnn.step(x[order[i:i + 50]], y[order[i:i + 50]], 0)
    assert all(set(np.unique(w)) <= {-1.0, 1.0} for w in bnn.binary_weights())
    assert bnn.accuracy(xt, yt, 0) > 0.75  # 2 epochs on 4000 images; chance is 0.10
    assert bnn.memory_bits() == 33 * (784 * 64 + 64 * 64 + 64 * 10)


def test_adam_restores_its_step_count_from_a_one_element_array_without_warning():
    """A checkpoint read back from HDF5 may hold the step count as shape (1,): restoring it must
    neither warn (numpy deprecates int() of such arrays) nor change the count."""
    import warnings

    adam = Adam(lr=0.01)
    for _ in range(3):
        adam.updates({"w": np.ones(4, np.float32)})
    state = {k: np.atleast_1d(v) for k, v in adam.state().items()}
    assert state["t"].shape == (1,)
    other = Adam(lr=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        other.load_state(state)
    assert other.t == 3 and isinstance(other.t, int)
    np.testing.assert_array_equal(other.updates({"w": np.ones(4, np.float32)})["w"],
                                  adam.updates({"w": np.ones(4, np.float32)})["w"])
