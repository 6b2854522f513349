"""The metaplastic experiment's protocol: validation split, when the test set is touched, both
BatchNorm protocols, a forward pass that really uses the array, and Fig. 5b by kind of session."""

from __future__ import annotations

import numpy as np
import pytest

from hil.datasets import validation_split
from hil.experiments import registry, runner
from hil.experiments.config import ConfigError
from hil.experiments.metaplastic import MetaplasticExperiment, load_tasks
from hil.learning.qnn import QNN
from hil.store import open_run


def config(tmp_path, name, **over):
    data = {
        "experiment": "metaplastic", "name": name, "seed": 2, "out": str(tmp_path / f"{name}.h5"),
        "tasks": {"sequence": "mnist-fmnist", "epochs": [2, 1], "train_limit": 400, "test_limit": 200},
        "dataset": {"source": "bundled"},
        "network": {"hidden": [16]},
        "learning": {"m_star": 3.0, "batch_size": 50},
        "device": {"backend": "sim", "program_every": 2},
    }
    for section, values in over.items():
        if isinstance(values, dict):
            data[section] = {**data.get(section, {}), **values}
        else:
            data[section] = values
    return registry.parse_experiment(data)[1]


def test_validation_split_is_seeded_disjoint_and_sized():
    x = np.arange(1000)[:, None] * np.ones((1, 3))
    y = np.arange(1000) % 10
    xt, yt, xv, yv = validation_split(x, y, fraction=0.1, seed=4)
    assert len(xv) == 100 and len(xt) == 900
    assert not set(xt[:, 0]) & set(xv[:, 0]) and set(xt[:, 0]) | set(xv[:, 0]) == set(range(1000))
    np.testing.assert_array_equal(yv, xv[:, 0].astype(int) % 10)  # labels stay with their images
    again = validation_split(x, y, fraction=0.1, seed=4)
    np.testing.assert_array_equal(again[2], xv)
    assert not np.array_equal(validation_split(x, y, fraction=0.1, seed=5)[2], xv)
    assert len(validation_split(x, y, n=37, seed=0)[2]) == 37
    for kwargs, needle in (({"fraction": 1.2}, "fraction = 1.2"), ({"n": 1000}, r"n = 1000 .* \[1, 999\]"),
                           ({}, "exactly one"), ({"fraction": 0.1, "n": 5}, "exactly one")):
        with pytest.raises(ValueError, match=needle):
            validation_split(x, y, seed=0, **kwargs)


def test_tasks_hold_the_validation_split_out_of_the_training_set(tmp_path):
    cfg = config(tmp_path, "split", tasks={"validation": 50})
    for task in load_tasks(cfg):
        assert len(task.x_val) == 50 and len(task.x_train) == 350
        train = {row.tobytes() for row in task.x_train}
        assert not any(row.tobytes() in train for row in task.x_val)
    cfg = config(tmp_path, "frac", tasks={"validation": 0.25})
    assert len(load_tasks(cfg)[0].x_val) == 100
    with pytest.raises(ConfigError, match=r"tasks.validation = 0.9 is not allowed; allowed: a fraction in \(0, 0.5\]"):
        config(tmp_path, "bad", tasks={"validation": 0.9})
    with pytest.raises(ConfigError, match="network.batchnorm = 'task'"):
        config(tmp_path, "bad", network={"batchnorm": "task"})
    with pytest.raises(ConfigError, match="tasks.test_at = 'always'"):
        config(tmp_path, "bad", tasks={"test_at": "always"})


@pytest.mark.parametrize("test_at, expected", [("never", {}), ("end", {"mnist": [3], "fashion-mnist": [3]}),
                                               ("task-end", {"mnist": [2, 3], "fashion-mnist": [3]}),
                                               ("every-epoch", {"mnist": [1, 2, 3], "fashion-mnist": [3]})])
def test_test_set_is_evaluated_only_when_the_config_says(tmp_path, test_at, expected):
    cfg = config(tmp_path, test_at, tasks={"test_at": test_at}, device={"backend": "software"})
    out = runner.start(MetaplasticExperiment, cfg, progress=False)
    with open_run(out.path) as r:
        test = {n[4:]: r.metric(n)["epoch"].tolist() for n in r.metric_names() if n.startswith("acc.")}
        val = {n[4:]: r.metric(n)["epoch"].tolist() for n in r.metric_names() if n.startswith("val.")}
    assert test == expected
    assert val == {"mnist": [1, 2, 3], "fashion-mnist": [3]}
    assert set(out.summary) == {"val.mnist", "val.fashion-mnist"} | ({"mnist", "fashion-mnist"} if "mnist" in expected and 3 in expected["mnist"] else set())


def test_shared_batchnorm_has_one_set_that_every_task_trains():
    rng = np.random.default_rng(0)
    x = rng.random((64, 20)).astype(np.float32)
    for protocol, n_sets in (("per-task", 3), ("shared", 1)):
        net = QNN((20, 8, 4), 3, np.random.default_rng(1), 0.3, batchnorm=protocol)
        assert len(net.bn) == n_sets
        w = [wh.copy() for wh in net.w_h]
        net.start_task(0)
        net.forward(x, w, 0, train=True)
        mean0 = net.bn_of(0)["mean0"].copy()
        net.start_task(1)
        net.forward(x * 3, w, 1, train=True)
        changed = not np.array_equal(net.bn_of(0)["mean0"], mean0)
        assert changed == (protocol == "shared")  # task 1's training moves the BN that tests task 0
        assert (net.bn_of(0) is net.bn_of(2)) == (protocol == "shared")
    with pytest.raises(ValueError, match="batchnorm='x'"):
        QNN((20, 8, 4), 3, rng, 0.3, batchnorm="x")


def test_shared_batchnorm_run_resumes_and_differs_from_per_task(tmp_path):
    per_task = runner.start(MetaplasticExperiment, config(tmp_path, "pt", device={"backend": "software"}), progress=False)
    shared_cfg = config(tmp_path, "sh", network={"batchnorm": "shared"}, device={"backend": "software"})
    shared = runner.start(MetaplasticExperiment, shared_cfg, progress=False)
    assert shared.summary != per_task.summary
    part = runner.start(MetaplasticExperiment, shared_cfg, out=tmp_path / "sh2.h5", progress=False, stop_after=1)
    assert runner.resume(part.path, progress=False).summary == shared.summary


def test_perturbing_the_array_changes_loss_and_accuracy(tmp_path, monkeypatch):
    """The forward pass must use the conductances measured on the array: RESET half the cells of
    layer 0 behind the host's back before the first epoch (no refresh: refresh_tolerance 10); the
    epoch-end read brings them into the network. An implementation that computed with the ideal
    quantised weights would give identical losses and accuracies."""
    def run(name, perturb):
        original = MetaplasticExperiment.run_stage

        def stage(self, i, ctx):
            if perturb and i == 1:
                array = self.device.arrays[0]
                mask = np.random.default_rng(0).random(array.shape) < 0.5
                array.reset_pulse(mask)
            return original(self, i, ctx)

        monkeypatch.setattr(MetaplasticExperiment, "run_stage", stage)
        cfg = config(tmp_path, name, tasks={"test_at": "every-epoch"}, device={"refresh_tolerance": 10.0})
        out = runner.start(MetaplasticExperiment, cfg, progress=False)
        monkeypatch.setattr(MetaplasticExperiment, "run_stage", original)
        with open_run(out.path) as r:
            return {n: r.metric(n)["value"] for n in ("loss", "val.mnist", "acc.mnist")}

    clean, perturbed = run("clean", False), run("perturbed", True)
    assert clean["loss"][1] != perturbed["loss"][1]  # epoch 2 trains on the perturbed measured weights
    assert perturbed["val.mnist"][0] < clean["val.mnist"][0] - 0.1
    assert perturbed["acc.mnist"][0] < clean["acc.mnist"][0] - 0.1


def test_fig5b_splits_sessions_by_kind_for_plain_and_metaplastic(tmp_path):
    from hil.experiments.metaplastic_figures import metaplastic_report

    meta = runner.start(MetaplasticExperiment, config(tmp_path, "meta"), progress=False)
    plain = runner.start(MetaplasticExperiment, config(tmp_path, "plain", learning={"rule": "plain"}), progress=False)
    p = meta.experiment.result().programming
    assert p["sessions_level"] > 0 and p["sessions_level"] + p["sessions_retry"] + p["sessions_refresh"] == int(
        meta.experiment.result().reprogrammed_per_device.sum())
    with open_run(meta.path) as r:
        assert r.metric("programming.sessions.level")["value"][-1] == p["sessions_level"]
        assert r.snapshot("sessions.retry.layer1")[0].shape == (16, 10)
    with open_run(meta.path) as a, open_run(plain.path) as b:
        paths = metaplastic_report(a, tmp_path, "cmp", [b])
    assert (tmp_path / "cmp_fig5b_programming.png") in paths and all(p.stat().st_size > 10_000 for p in paths)


def test_device_stress_factors_build_stressed_arrays_and_are_recorded(tmp_path):
    from drivers.sim.presets import get_preset

    base = get_preset("hfo2").physics
    plain = MetaplasticExperiment(config(tmp_path, "base"))
    assert all(a.model.params == base for a in plain.device.arrays)  # factors 1: the preset as calibrated
    cfg = config(tmp_path, "stress", device={"read_noise_x": 5.0, "relaxation_x": 2.0, "endurance_x": 1e-3},
                 tasks={"epochs": [1, 1], "test_at": "never"})
    exp = MetaplasticExperiment(cfg)
    for a in exp.device.arrays:
        p = a.model.params
        assert p.read_dev_ref == pytest.approx(5 * base.read_dev_ref)
        assert p.sigma_relax_abs == pytest.approx(2 * base.sigma_relax_abs)
        assert p.drift_relax_hrs == pytest.approx(2 * base.drift_relax_hrs)
        assert p.endurance_median == pytest.approx(1e-3 * base.endurance_median)
        assert p.sigma_lrs_ref == base.sigma_lrs_ref  # the rest untouched
    out = runner.start(MetaplasticExperiment, cfg, progress=False)
    with open_run(out.path) as r:
        d = r.config["device"]
        assert (d["read_noise_x"], d["relaxation_x"], d["endurance_x"]) == (5.0, 2.0, 1e-3)


@pytest.mark.parametrize("over, needle", [
    ({"read_noise_x": -1.0}, r"device.read_noise_x = -1.0 is not allowed; allowed: a number in \[0, 100\]"),
    ({"relaxation_x": 101}, r"device.relaxation_x = 101 .* \[0, 100\]"),
    ({"endurance_x": 0.0}, r"device.endurance_x = 0.0 .* \(1e-09, 1000\]"),
    ({"endurance_x": "low"}, r"device.endurance_x = 'low'"),
    ({"backend": "software", "read_noise_x": 2.0}, r"device.read_noise_x = 2.0 .* device.backend = 'sim'"),
])
def test_device_stress_factors_are_validated(tmp_path, over, needle):
    with pytest.raises(ConfigError, match=needle):
        config(tmp_path, "bad", device=over)


def test_worn_out_cells_are_retired_when_asked_and_cost_fewer_pulses(tmp_path):
    """Endurance lowered until cells wear out during training: with ``device.retire_after`` the
    run retires them (metric ``programming.retired``) and spends fewer programming pulses than
    the same run that keeps pulsing them; without it nothing is retired or recorded."""
    def run(name, **device):
        cfg = config(tmp_path, name, device={"endurance_x": 3e-5, "program_every": 1, **device},
                     tasks={"epochs": [2, 1], "test_at": "never"})
        out = runner.start(MetaplasticExperiment, cfg, progress=False)
        with open_run(out.path) as r:
            names = r.metric_names()
            pulses = r.metric("programming.pulses")["value"][-1]
            retired = r.metric("programming.retired")["value"][-1] if "programming.retired" in names else None
            return pulses, retired, r.config["device"]["retire_after"]

    kept_pulsing, none, off = run("keep")
    pulses, retired, on = run("retire", retire_after=2)
    assert none is None and off == 0 and on == 2
    assert retired > 0
    assert pulses < kept_pulsing
