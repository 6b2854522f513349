"""The continual-stdp experiment through the runner: bad files, exact resume (small, seeded)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hil.experiments import registry, runner
from hil.experiments.schema import ConfigError
from hil.store import open_run

SMALL = {
    "experiment": "continual-stdp", "name": "t", "seed": 3, "overwrite": True,
    "dataset": {"name": "mnist", "source": "bundled", "train_limit": 300, "test_limit": 60, "validation": 0.2},
    "filters": {"untrained": 2, "epochs": 1, "bits": 4},
    "stdp": {"n_neurons": 10},
}


def cfg_for(tmp_path: Path, name: str, **over) -> tuple[type, object]:
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in SMALL.items()}
    data["out"] = str(tmp_path / name)
    for dotted, value in over.items():
        table, key = dotted.split(".")
        data.setdefault(table, {})[key] = value
    return registry.parse_experiment(data, tmp_path)


@pytest.mark.parametrize("dotted, value, words", [
    ("filters.bits", 9, ["filters.bits", "9", "[1, 8]"]),
    ("filters.untrained", 10, ["filters.untrained", "10", "[0, 9]"]),
    ("overlay.backend", "fpga", ["overlay.backend", "fpga", "twin"]),
    ("filters.i_c", 1e-3, ["filters.i_c", "0.001"]),
    ("stdp.n_neurons", 0, ["stdp.n_neurons", "0", "[1, 1000]"]),
    ("filters.vref", "mean", ["filters.vref", "mean", "median"]),
    ("stdp.readout", "spikes", ["stdp.readout", "spikes", "vote"]),
    ("stdp.voters", 11, ["stdp.voters", "11", "[1, 10]"]),
])
def test_bad_fields_named_and_no_run_file(tmp_path: Path, dotted: str, value, words: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        cfg_for(tmp_path, "bad.h5", **{dotted: value})
    for w in words:
        assert w in str(err.value)
    assert not (tmp_path / "bad.h5").exists()


def test_vref_median_refused_for_the_paper_bank(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        cfg_for(tmp_path, "bad.h5", **{"filters.kind": "paper", "filters.vref": "median"})
    assert "filters.vref" in str(err.value) and "median" in str(err.value) and "trained" in str(err.value)
    assert not (tmp_path / "bad.h5").exists()


def test_unknown_field_and_board_without_bitstream(tmp_path: Path) -> None:
    data = dict(SMALL, out=str(tmp_path / "x.h5"), stdp={"n_neurons": 10, "gain": 1})
    with pytest.raises(ConfigError, match="stdp.gain"):
        registry.parse_experiment(data, tmp_path)
    with pytest.raises(ConfigError, match="overlay.bitstream"):
        cfg_for(tmp_path, "x.h5", **{"overlay.backend": "board"})
    assert not (tmp_path / "x.h5").exists()


def test_resume_is_bit_identical(tmp_path: Path) -> None:
    cls, cfg = cfg_for(tmp_path, "full.h5")
    full = runner.start(cls, cfg, progress=False)
    assert full.complete
    _, cfg2 = cfg_for(tmp_path, "part.h5")
    part = runner.start(cls, cfg2, progress=False, stop_after=2)
    assert not part.complete
    done = runner.resume(tmp_path / "part.h5", progress=False)
    assert done.complete
    a, b = full.summary, done.summary
    for k in a:
        if k != "wall_time_s":
            assert a[k] == b[k] or (np.isnan(a[k]) and np.isnan(b[k])), k
    with open_run(tmp_path / "full.h5") as r1, open_run(tmp_path / "part.h5") as r2:
        o1, o2 = r1.ops, r2.ops
        assert len(o1) == len(o2) and len(o1) > 1000
        for name in ("kind", "row", "col", "v_gate", "v_pulse", "result"):
            np.testing.assert_array_equal(o1[name], o2[name])
        assert "stdp.spike_rate" in r1.metric_names() and "appearance_rate" in r1.metric_names()


def test_retrain_finds_neglected_filters_and_reprograms_only_their_cells(tmp_path: Path) -> None:
    """Figs. 12-14: dead filters are found over the stream, re-trained from the neurons' clusters
    (not from the dataset labels), only their cells are re-programmed, and they appear again."""
    from hil.experiments.runner import StageContext
    from hil.learning.stdp import predict

    cls, cfg = cfg_for(tmp_path, "rt.h5", **{"retrain.enabled": True, "retrain.epochs": 2})
    exp = cls(cfg)
    ctx = StageContext(None, None, 0, "t")
    exp.run_stage(0, ctx)
    dead = np.arange(8)
    exp.bank.vref[dead] = 1e6  # V_REF above any response: these bits never appear
    exp.configure_overlay()
    for i in (1, 2, 3):
        exp.run_stage(i, ctx)
    neglected = exp.neglected_filters()
    assert set(dead) <= set(neglected.tolist())
    assert np.all(exp.appearance_rate("train")[dead] == 0)
    filters = exp.arrays()["filters"]
    events = filters.programming_events().copy()
    train_maps, winners = exp.features["train"], exp.block.winners
    frozen = winners(train_maps)  # one read-noise draw of the winners, used by the stage too
    exp.block.winners = lambda bits, chunk=2048: frozen.copy() if bits is train_maps else winners(bits, chunk)
    clusters = predict(frozen, exp.neuron_labels)
    seen = {}
    train_bank = exp._train_bank

    def spy(x, y, classes, n, epochs, seed):
        seen.update(y=y, n=n)
        return train_bank(x, y, classes, n, epochs, seed)

    exp._train_bank = spy
    exp.run_stage(4, ctx)
    np.testing.assert_array_equal(seen["y"], clusters[clusters >= 0])  # the neurons' clusters are the targets
    assert np.mean(clusters == exp.y_train) < 0.95  # (and they are not the dataset's labels)
    assert seen["n"] == neglected.size
    touched = np.flatnonzero((filters.programming_events() != events).any(axis=0))
    own = exp.layout._filter_columns(neglected)
    assert set(touched.tolist()) <= set(own.tolist())          # no other filter's cell was pulsed
    assert set(exp.layout._filter_columns(dead).tolist()) <= set(touched.tolist())
    assert np.mean(exp.appearance_rate("train")[dead] > 0) >= 0.5  # most re-trained filters appear again
    assert np.all(exp.bank.kinds[neglected] == "retrained")
    for k in ("val_accuracy", "retrained_val_accuracy", "retrained_test_accuracy"):
        assert 0.0 <= exp.results[k] <= 1.0


def _programmed(tmp_path: Path, **over):
    from hil.experiments.runner import StageContext

    cls, cfg = cfg_for(tmp_path, "fm.h5", **over)
    exp = cls(cfg)
    exp.run_stage(0, StageContext(None, None, 0, "t"))
    return exp


def test_experiment_feature_map_comes_from_the_array_conductances(tmp_path: Path) -> None:
    """The experiment's own path (filters array MVM -> overlay): RESETting the LRS cells of one
    filter changes that filter's bits, and no other filter's."""
    exp = _programmed(tmp_path)
    images = exp.x_val[:40]
    before = exp.feature_maps(images)
    arr = exp.arrays()["filters"]
    f = int(np.argmax(before.mean(axis=0) * (before.mean(axis=0) < 1)))  # a filter that is on for some images
    cols = exp.layout._filter_columns(np.array([f]))
    cells = (np.arange(arr.shape[0])[:, None] * arr.shape[1] + cols[None, :]).reshape(-1)
    arr.reset_pulse(np.sort(cells), v_stop=-3.0)
    after = exp.feature_maps(images)
    others = np.arange(before.shape[1]) != f
    flipped_f = np.mean(before[:, f] != after[:, f])
    flipped_others = np.mean(before[:, others] != after[:, others])  # read noise flips near-threshold bits
    assert flipped_f > 0.2 and flipped_f > 3 * flipped_others


def test_vref_median_reaches_the_overlay_and_the_array_biases_its_bits_up(tmp_path: Path) -> None:
    """filters.vref = "median" puts V_REF at the median window maximum of the trained classes'
    images of the *software* responses (weight units), so the software bits are balanced; it is
    written through the driver, so the hardware bits (array MVM -> overlay, local pool) move with
    it. Through the array those bits are on more often than in software (measured here 0.53
    against 0.50, and 0.39 against 0.37 with the trained V_REF; 0.59 and 0.44 with the filters of
    commit b1a2684, whose training summed the same gradient in another order): the maximum over a
    window of noisy, non-ideal responses is biased upward. The median rule does not balance the
    hardware bits; it shifts them."""
    rates = {}
    for rule in ("trained", "median"):
        exp = _programmed(tmp_path, **{"filters.pool": 4, "filters.vref": rule})
        images = exp.x_train[np.isin(exp.y_train, exp.trained)][:150]
        rates[rule] = (exp.feature_maps(images).mean(), exp.bank.feature_maps(images).mean())
    (hw_t, sw_t), (hw_m, sw_m) = rates["trained"], rates["median"]
    assert abs(sw_m - 0.5) < 0.02  # software: balanced by construction
    assert hw_m - hw_t > 0.1  # the median V_REF reaches the overlay (fails if the driver kept the trained one)
    # the array's upward bias of the window maxima (paired images: a rate's error is ~0.003)
    assert hw_m > sw_m + 0.01 and hw_t > sw_t + 0.01


def test_vref_measured_median_balances_the_bits_through_the_array(tmp_path: Path) -> None:
    """filters.vref = "measured-median": V_REF from the programmed array's measured window maxima
    balances the hardware bits of the trained classes' images (held-out ones: the calibration
    draws at most VREF_IMAGES of them); the software median does not (see the test above)."""
    rates = {}
    for rule in ("median", "measured-median"):
        exp = _programmed(tmp_path, **{"filters.pool": 4, "filters.vref": rule})
        images = exp.x_val[np.isin(exp.y_val, exp.trained)]
        rates[rule] = exp.feature_maps(images).mean()
    assert abs(rates["measured-median"] - 0.5) < 0.05
    assert abs(rates["median"] - 0.5) > 2 * abs(rates["measured-median"] - 0.5)


def test_experiment_overlay_backends_identical(tmp_path: Path) -> None:
    pytest.importorskip("pynq")
    exp = _programmed(tmp_path, **{"filters.pool": 3})
    images = exp.x_val[:12]
    p_state = exp.arrays()["filters"].get_state()
    twin = exp.feature_maps(images)
    from drivers.overlay.driver import MaxPoolOverlay
    from drivers.overlay.sim_hwh import write_overlay_files
    from drivers.sim.pynq_device import SimPynqDevice

    exp.arrays()["filters"].set_state(*p_state)  # same array state, same read-noise draws
    exp.overlay = MaxPoolOverlay(str(write_overlay_files(tmp_path)), device=SimPynqDevice())
    exp.configure_overlay()
    dev = exp.feature_maps(images)
    exp.overlay.close()
    assert twin.shape == (12, 9 * 64) and twin.any() and not twin.all()
    np.testing.assert_array_equal(twin, dev)


def test_cli_bad_experiment_file_names_field_and_writes_nothing(tmp_path: Path, capsys) -> None:
    from hil.cli import main

    path = tmp_path / "bad.toml"
    path.write_text('experiment = "continual-stdp"\nout = "%s"\n[stdp]\nn_neurons = 5000\n' % (tmp_path / "r.h5"))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "stdp.n_neurons" in err and "5000" in err and "[1, 1000]" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]


def test_sweep_figures_5_6_9_10_from_sweep_rows(tmp_path: Path) -> None:
    """Figs. 5, 6e-f, 9 and 10 are drawn from the rows of a sweep (mean over seeds); a sweep that
    does not vary a figure's parameter does not claim that figure."""
    from hil.experiments.continual_stdp_figures import draw_sweep
    from hil.sweep.summary import ConfigRow, SweepSummary

    def rows(grid: dict[str, list], metric_of) -> SweepSummary:
        import itertools

        keys = list(grid)
        out = []
        for combo in itertools.product(*grid.values()):
            p = dict(zip(keys, combo))
            out.append(ConfigRow(p, seeds=[0, 1], values={m: [v, v] for m, v in metric_of(p).items()}))
        return SweepSummary(tmp_path, keys, out, {"done": len(out)}, {})

    acc = lambda p: {"test_accuracy": 0.9, "val_accuracy": 0.91, "test_accuracy_untrained": 0.8,  # noqa: E731
                     "filters_cf_val_accuracy": 0.7 + 1e3 * p.get("filters.i_c", 0), "filters_ff_val_accuracy": 0.6}
    names = lambda paths: sorted(p.name for p in paths)  # noqa: E731
    assert names(draw_sweep(rows({"filters.bits": [1, 4, 8]}, acc), tmp_path)) == ["continual_fig5_bits.png"]
    got = names(draw_sweep(rows({"filters.i_c": [15e-6, 60e-6], "filters.v_stop": [-1.0, -2.8]}, acc), tmp_path))
    assert got == ["continual_fig6_filters_cf_val_accuracy.png", "continual_fig6_filters_ff_val_accuracy.png"]
    got = names(draw_sweep(rows({"filters.i_c": [15e-6, 60e-6], "dataset.name": ["mnist", "fashion-mnist"]}, acc), tmp_path))
    assert got == ["continual_fig9_ic.png"]
    assert names(draw_sweep(rows({"filters.untrained": [1, 5]}, acc), tmp_path)) == ["continual_fig10_untrained.png"]
    assert draw_sweep(rows({"stdp.n_neurons": [10, 200]}, acc), tmp_path) == []
    for p in tmp_path.glob("*.png"):
        assert p.stat().st_size > 1000


def test_vote_readout_is_what_the_evaluation_reports(tmp_path: Path, mocker) -> None:
    """stdp.readout = "vote" scores validation and test by the block's k-WTA vote with stdp.voters
    neurons; the default scores the single winner (no vote)."""
    from hil.experiments.runner import StageContext
    from hil.learning.stdp import STDPBlock

    spy = mocker.spy(STDPBlock, "vote")
    for readout, calls in (("winner", 0), ("vote", 2)):
        cls, cfg = cfg_for(tmp_path, f"{readout}.h5", **{"stdp.readout": readout, "stdp.voters": 3})
        exp = cls(cfg)
        for i in range(4):  # filters, features, stdp, evaluate
            exp.run_stage(i, StageContext(None, None, 0, "t"))
        assert spy.call_count == calls
        if calls:
            assert [c.args[3] for c in spy.call_args_list] == [3, 3]
            assert exp.results["test_accuracy"] == pytest.approx(
                np.mean(spy.spy_return == exp.y_test))  # the last call scored the test set
