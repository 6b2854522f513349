"""benchmarks/device_sensitivity.py drives its conditions through the experiment file's stress
factors (device.read_noise_x / relaxation_x / endurance_x), never touches the test set, and a
lowered endurance really wears cells out."""

from __future__ import annotations

import argparse

import pytest

from script_loader import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("device_sensitivity")


def args(out_dir, **over) -> argparse.Namespace:
    base = dict(data_dir=None, source="bundled", out_dir=out_dir, seeds=[1], factors=[1.0, 5.0], endurance=[3.0],
                only=None, hidden=8, epochs=[1, 1], train_limit=300, validation=60, m_star=4.0, lr=0.01,
                program_every=1, set=["device.tolerance=0.05"], rules=["metaplastic", "plain"])
    base.update(over)
    return argparse.Namespace(**base)


def test_runs_are_the_headline_experiment_file(bench, tmp_path):
    """The study runs benchmarks/metaplastic.py's experiment file (one source of the configuration),
    with the headline's fixed keys unless --set overrides them."""
    a = args(tmp_path, set=[])
    cfg = bench.make_jobs(a)[0]["config"]
    ref = bench.bench.base_config(argparse.Namespace(
        sequence="mnist-fmnist", epochs=[1, 1], train_limit=300, test_limit=0, validation=60, source="bundled",
        data_dir=None, hidden=8, m_star=4.0, lr=0.01, batch_size=100, technology="hfo2", program_every=1))
    assert cfg["network"] == {**ref["network"], "batchnorm": "per-task"}
    assert cfg["learning"] == ref["learning"]
    assert cfg["device"]["tolerance"] == 0.15 and cfg["device"]["refresh_tolerance"] == 0.3
    assert cfg["checkpoint_every_epoch"] is False
    assert bench.make_jobs(args(tmp_path))[0]["config"]["device"]["tolerance"] == 0.05


def test_conditions_become_config_factors(bench, tmp_path):
    jobs = bench.make_jobs(args(tmp_path))
    by_label = {(j["label"], j["config"]["learning"]["rule"]): j["config"] for j in jobs}
    assert {lab for lab, _ in by_label} == {"base", "read_noise x5", "relaxation x5", "endurance 3"}
    assert by_label[("read_noise x5", "plain")]["device"]["read_noise_x"] == 5.0
    assert by_label[("relaxation x5", "metaplastic")]["device"]["relaxation_x"] == 5.0
    assert by_label[("endurance 3", "plain")]["device"]["endurance_x"] == pytest.approx(3.0 / 1e6)
    assert "read_noise_x" not in by_label[("base", "plain")]["device"]
    assert all(c["tasks"]["test_at"] == "never" for c in by_label.values())


def test_low_endurance_wears_cells_and_base_does_not(bench, tmp_path):
    jobs = {j["label"]: j for j in bench.make_jobs(args(tmp_path)) if j["config"]["learning"]["rule"] == "plain"}
    base = bench.run_one(jobs["base"])
    worn = bench.run_one(jobs["endurance 3"])
    assert base["worn_fraction"] == 0.0
    assert worn["worn_fraction"] > 0.01
    assert 0.0 <= worn["first"] <= 1.0 and 0.0 <= base["last"] <= 1.0
    again = bench.run_one(jobs["endurance 3"])  # kept beside the run file: not rerun
    assert again == worn
    assert (tmp_path / "sens-endurance-3-plain-s1.json").exists()


def test_retiring_dead_cells_is_counted_and_saves_pulses(bench, tmp_path):
    """``--set device.retire_after=2``: the worn-out cells are retired (counted per run) and the
    run spends fewer pulses per device than the same run that keeps pulsing them."""
    def plain_endurance(out_dir, *extra):
        out_dir.mkdir()
        a = args(out_dir, set=["device.tolerance=0.05", *extra], rules=["plain"])
        return bench.run_one(next(j for j in bench.make_jobs(a) if j["label"] == "endurance 3"))

    kept = plain_endurance(tmp_path / "kept")
    retired = plain_endurance(tmp_path / "retired", "device.retire_after=2")
    assert kept["retired_fraction"] == 0.0
    assert 0.0 < retired["retired_fraction"] <= 1.0
    assert retired["events_mean"] < kept["events_mean"]
    assert "retired" in "\n".join(bench.summarise([retired], ["endurance 3"]))
