"""The metaplastic sequential-task experiment: config validation, exact resume, forgetting vs retention."""

import numpy as np
import pytest

from hil.experiments.config import ConfigError, load_config, parse_config
from hil.experiments import runner
from hil.experiments.metaplastic import MetaplasticExperiment
from hil.store import open_run


def small(tmp_path, name, **over):
    cfg = {
        "name": name, "seed": 3, "out": str(tmp_path / f"{name}.h5"),
        "tasks": {"sequence": "mnist-fmnist", "epochs": [2, 1], "train_limit": 300, "test_limit": 200},
        "dataset": {"source": "bundled"},
        "network": {"hidden": [16]},
        "learning": {"m_star": 4.0, "batch_size": 50},
        "device": {"backend": "sim", "program_every": 2},
    }
    for section, values in over.items():
        if isinstance(values, dict):
            cfg[section] = {**cfg.get(section, {}), **values}
        else:
            cfg[section] = values
    return parse_config(cfg)


@pytest.mark.parametrize(
    "section, field, value, needle",
    [
        ("learning", "m_star", -1, "learning.m_star = -1"),
        ("learning", "unit", "bits", "learning.unit = 'bits'"),
        ("device", "tolerance", 0.9, "device.tolerance = 0.9"),
        ("device", "backend", "gpu", "device.backend = 'gpu'"),
        ("tasks", "epochs", [3], "tasks.epochs = [3]"),
        ("network", "hidden", [0], "network.hidden[0] = 0"),
        ("dataset", "source", "web", "dataset.source = 'web'"),
    ],
)
def test_bad_field_names_field_value_and_range(tmp_path, section, field, value, needle):
    with pytest.raises(ConfigError) as err:
        small(tmp_path, "x", **{section: {field: value}})
    assert needle in str(err.value) and "allowed" in str(err.value)


def test_unknown_field_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="unknown field learning.mstar"):
        small(tmp_path, "x", learning={"mstar": 3})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_missing_full_dataset_leaves_no_run_file(tmp_path, monkeypatch):
    monkeypatch.delenv("HIL_DATA_DIR", raising=False)
    cfg = small(tmp_path, "nodata", dataset={"source": "full", "data_dir": str(tmp_path / "empty")})
    with pytest.raises(FileNotFoundError, match="HIL_DATA_DIR"):
        runner.start(MetaplasticExperiment, cfg, progress=False)
    assert not (tmp_path / "nodata.h5").exists()


def test_examples_validate():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "examples"
    files = sorted(root.glob("metaplastic-*.toml")) + [root / "quickstart.toml"]
    assert len(files) >= 2
    for f in files:
        load_config(f)


def test_resumed_run_is_bit_identical(tmp_path):
    cfg = small(tmp_path, "full")
    whole = runner.start(MetaplasticExperiment, cfg, progress=False).experiment.result()
    cfg_i = small(tmp_path, "interrupted")
    # stages: the initial programming, then one per epoch: stop after the first epoch
    part = runner.start(MetaplasticExperiment, cfg_i, progress=False, stop_after=2).experiment.result()
    assert part.epochs_done == 1
    resumed = runner.resume(tmp_path / "interrupted.h5", progress=False).experiment.result()
    assert resumed.epochs_done == 3
    for a, b in zip(whole.w_h, resumed.w_h):
        np.testing.assert_array_equal(a, b)
    assert whole.accuracy == resumed.accuracy
    assert whole.programming == resumed.programming
    np.testing.assert_array_equal(whole.events_per_device, resumed.events_per_device)
    assert whole.bench_time == resumed.bench_time
    with open_run(tmp_path / "interrupted.h5") as r:
        acc = r.metric("acc.fashion-mnist")
        assert acc["epoch"].tolist() == [3]
        assert r.snapshot("programming_events.layer0")[0].shape == (784, 16)
        assert r.ops.size > 0  # every device operation logged


def test_forgetting_without_metaplasticity_retention_with_it(tmp_path):
    """Software QNN on the bundled subsets (784-128-10, batch 20, 4+2 epochs, 4000 images per task).

    Tolerances: the plain rule must lose most of MNIST (final < 50 %), the metaplastic one
    (m* = 10) must keep > 70 % and beat the plain rule by > 30 points; both learn FMNIST > 65 %.
    """
    finals = {}
    for rule in ("plain", "metaplastic"):
        cfg = small(
            tmp_path, rule,
            tasks={"epochs": [4, 2], "train_limit": 0, "test_limit": 1000},
            network={"hidden": [128]},
            learning={"rule": rule, "m_star": 10.0, "lr": 0.01, "lr_bn": 0.01, "batch_size": 20},
            device={"backend": "software"},
        )
        finals[rule] = runner.start(MetaplasticExperiment, cfg, progress=False).summary
    print(finals)
    assert finals["plain"]["mnist"] < 0.5
    assert finals["metaplastic"]["mnist"] > 0.7
    assert finals["metaplastic"]["mnist"] > finals["plain"]["mnist"] + 0.3
    assert min(finals["plain"]["fashion-mnist"], finals["metaplastic"]["fashion-mnist"]) > 0.65


def test_memory_accounting():
    from hil.experiments.metaplastic import memory_bits

    m = memory_bits((784, 1024, 10), 8)
    assert m["qnn_weights"] == 784 * 1024 + 1024 * 10
    assert m["bnn_weights"] == 784 * 4096 + 4096 * 4096 + 4096 * 10
    assert m["bnn_over_qnn_total"] == pytest.approx(33 * m["bnn_weights"] / (35 * m["qnn_weights"]))


def test_memory_accounting_with_optimiser_state_and_devices():
    from hil.experiments.metaplastic import memory_bits, memory_lines

    m = memory_bits((784, 1024, 10), 8, devices_per_weight=2)
    n_q, n_b = m["qnn_weights"], m["bnn_weights"]
    assert m["qnn_devices"] == 2 * n_q
    assert m["bnn_over_qnn_with_optimiser"] == pytest.approx((33 + 64) * n_b / ((35 + 64) * n_q))
    text = "\n".join(memory_lines(m))
    assert "15x" in text and "Adam" in text and f"{m['bnn_over_qnn_total']:.1f}x" in text


def test_technology_choices_come_from_the_presets(tmp_path):
    from drivers.sim.presets import PRESETS

    with pytest.raises(ConfigError) as err:
        small(tmp_path, "x", device={"technology": "gaas"})
    assert f"one of {sorted(PRESETS)}" in str(err.value)
    with pytest.raises(ConfigError, match=r"device.levels_uS = \[\] .* 'siox' has no default levels"):
        small(tmp_path, "x", device={"technology": "siox"})
    assert small(tmp_path, "x", device={"technology": "siox", "levels_uS": [30, 60, 90, 120]}).device.technology == "siox"
