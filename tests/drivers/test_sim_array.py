"""SimArray: limits before physics, bench-time accounting, op records."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.errors import SafetyLimitError
from drivers.limits import SafetyLimits
from drivers.oplog import OpKind
from drivers.sim_array import SimArray
from drivers.timing import BenchTiming


@pytest.fixture
def array():
    a = SimArray((8, 8), "hfo2", seed=2)
    batches = []
    a.add_listener(batches.append)
    a.batches = batches
    return a


@pytest.mark.parametrize(
    "call",
    [
        lambda a: a.set_pulse(None, v_gate=1.0, v_pulse=6.0),
        lambda a: a.set_pulse(None, v_gate=3.5),
        lambda a: a.set_pulse(None, v_gate=1.0, width=5e-3),
        lambda a: a.set_pulse(None, v_gate=np.full((8, 8), np.nan)),
        # one bad value among good ones (the check takes min and max; NaN and infinities must show)
        lambda a: a.set_pulse(np.arange(5), v_gate=np.array([1.0, 1.0, np.nan, 1.0, 1.0])),
        lambda a: a.set_pulse(np.arange(5), v_gate=1.0, v_pulse=np.array([1.0, np.inf, 1.0, 1.0, 1.0])),
        lambda a: a.reset_pulse(np.arange(3), v_stop=np.array([-1.0, -1.0, -np.inf])),
        lambda a: a.set_pulse(None, v_gate=1.0, width=float("nan")),
        lambda a: a.reset_pulse(None, v_stop=-5.5),
        lambda a: a.form(None, v_pulse=5.1),
        lambda a: a.read(None, v_read=0.5),
        lambda a: a.mvm(np.ones(8), v_read=0.4),
        lambda a: a.mvm(np.array([0.0, 0.5, np.nan, 0, 0, 0, 0, 0], np.float32)),
        lambda a: a.mvm(np.full((3, 8), -1.0) * np.array([[1], [1], [np.inf]])),
    ],
)
def test_limit_violations_change_nothing(array, call):
    before = array.model.get_state()[0]
    with pytest.raises(SafetyLimitError):
        call(array)
    after = array.model.get_state()[0]
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert array.bench_time == 0.0 and array.batches == []


def test_a_parameter_given_as_one_number_is_logged_as_one_number(array):
    """The batch keeps one value for a scalar gate / amplitude (the run store then stores one per
    batch), and the per-cell values when they were given per cell."""
    array.set_pulse(np.arange(4), v_gate=1.0, v_pulse=1.5)
    array.set_pulse(np.arange(4), v_gate=np.array([1.0, 1.1, 1.2, 1.3]), v_pulse=1.5)
    array.reset_pulse(np.arange(4), v_stop=-1.2)
    one, per_cell, reset = array.batches
    assert isinstance(one.fields["v_gate"], float) and isinstance(one.fields["compliance"], float)
    assert one.fields["v_gate"] == 1.0 and one.fields["v_pulse"] == 1.5
    assert one.fields["compliance"] == pytest.approx(float(array.technology.transistor.compliance(1.0)))
    np.testing.assert_array_equal(per_cell.fields["v_gate"], [1.0, 1.1, 1.2, 1.3])
    assert np.shape(per_cell.fields["compliance"]) == (4,) and isinstance(per_cell.fields["v_pulse"], float)
    assert isinstance(reset.fields["v_pulse"], float) and reset.fields["v_pulse"] == -1.2


def test_limit_error_names_value_and_range(array):
    with pytest.raises(SafetyLimitError, match=r"v_pulse=6 V outside the allowed range \[-5, 5\] V"):
        array.set_pulse(None, v_gate=1.0, v_pulse=6.0)


def test_custom_limits_apply():
    a = SimArray((4, 4), "hfo2", limits=SafetyLimits(max_v_gate=1.2))
    with pytest.raises(SafetyLimitError):
        a.set_pulse(None, v_gate=1.3)


def test_bench_time_and_records(array):
    t = array.timing
    mask = np.zeros((8, 8), bool)
    mask[2, 3] = mask[5, 1] = True
    array.form(mask)
    array.set_pulse(mask, v_gate=1.0)
    g = array.read(mask)
    per_pulse_form = t.route_settle + t.pulse_time(array.technology.width_form)
    per_pulse_set = t.route_settle + t.pulse_time(array.technology.width_set)
    per_read = t.route_settle + t.read_time
    assert array.bench_time == pytest.approx(2 * (per_pulse_form + per_pulse_set + per_read))
    kinds = [b.kind for b in array.batches]
    assert kinds == [OpKind.FORM, OpKind.SET, OpKind.READ]
    rec = array.batches[-1].records
    assert list(zip(rec["row"], rec["col"])) == [(2, 3), (5, 1)]
    assert np.allclose(rec["result"], g[mask].astype(np.float32))
    assert np.all(np.diff(np.concatenate([b.records["time"] for b in array.batches])) > 0)
    assert np.isnan(g[~mask]).all()


def test_read_cost_spans_1_to_20_ms():
    assert BenchTiming(aperture=BenchTiming.MIN_APERTURE).read_time == pytest.approx(1e-3)
    assert BenchTiming(aperture=BenchTiming.MAX_APERTURE).read_time == pytest.approx(20e-3)
    with pytest.raises(ValueError, match="aperture"):
        BenchTiming(aperture=50e-3)


def test_devices_relax_while_the_bench_waits():
    a = SimArray((32, 32), "hfo2-benign", seed=4)  # purely relative relaxation: the bound below
    a.form()
    g0 = a.conductance()
    a.wait(3600.0)
    assert a.model.t == pytest.approx(a.bench_time)
    spread = np.std(np.log(a.conductance() / g0))
    assert 0.5 * a.model.params.sigma_relax * np.log(3600) < spread < 2 * a.model.params.sigma_relax * np.log(3700)


def test_mvm_uses_conductances():
    a = SimArray((16, 4), "hfo2", seed=5)
    a.form()
    x = np.linspace(0.1, 1, 16)
    i = a.mvm(x)
    expected = (x * a.technology.v_read) @ a.conductance()
    assert np.allclose(i, expected, rtol=0.02, atol=1e-8)
    assert a.mvm_count == 1


def test_closed_array_refuses_work(array):
    array.close()
    with pytest.raises(RuntimeError, match="closed"):
        array.read()


def test_bad_mask_rejected(array):
    with pytest.raises(ValueError, match="mask must be a boolean array"):
        array.read(np.ones((4, 4), bool))


def test_index_addressing_matches_mask_addressing():
    a, b = SimArray((8, 8), "hfo2", seed=9), SimArray((8, 8), "hfo2", seed=9)
    a.form()
    b.form()
    cells = np.array([3, 10, 42])
    mask = np.zeros((8, 8), bool)
    mask.flat[cells] = True
    a.set_pulse(cells, v_gate=np.array([0.9, 1.0, 1.1]))
    gates = np.zeros((8, 8))
    gates.flat[cells] = [0.9, 1.0, 1.1]
    b.set_pulse(mask, v_gate=gates)
    assert np.array_equal(a.read_cells(cells), b.read(mask)[mask])
    assert a.bench_time == b.bench_time
    with pytest.raises(ValueError, match="strictly increasing"):
        a.read_cells(np.array([5, 3]))
    with pytest.raises(ValueError, match="one value per addressed cell"):
        a.set_pulse(cells, v_gate=np.array([1.0, 1.0]))


def test_state_needs_the_same_seed_unless_saved_with_fixed_draws():
    a = SimArray((4, 4), "hfo2", seed=3)
    a.form()
    state, meta = a.get_state()
    assert "d2d" not in state and meta["seed"] == 3
    with pytest.raises(ValueError, match="seed 3"):
        SimArray((4, 4), "hfo2", seed=4).set_state(state, meta)
    b = SimArray((4, 4), "hfo2", seed=3)
    b.set_state(state, meta)
    assert np.array_equal(b.conductance(), a.conductance()) and b.bench_time == a.bench_time
    unseeded = SimArray((4, 4), "hfo2", seed=None)
    assert "d2d" in unseeded.get_state()[0]
