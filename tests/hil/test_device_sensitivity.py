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


def args(**over) -> argparse.Namespace:
    base = dict(data_dir=None, source="bundled", seeds=[1], factors=[1.0, 5.0], endurance=[3.0], only=None,
                hidden=8, epochs=[1, 1], train_limit=300, val_fraction=0.2, m_star=4.0, lr=0.01, tolerance=0.05,
                program_every=1, refresh_tolerance=0.1, rules=["metaplastic", "plain"])
    base.update(over)
    return argparse.Namespace(**base)


def test_conditions_become_config_factors(bench):
    jobs = bench.make_jobs(args())
    by_label = {(j["label"], j["config"]["learning"]["rule"]): j["config"] for j in jobs}
    assert {lab for lab, _ in by_label} == {"base", "read_noise x5", "relaxation x5", "endurance 3"}
    assert by_label[("read_noise x5", "plain")]["device"]["read_noise_x"] == 5.0
    assert by_label[("relaxation x5", "metaplastic")]["device"]["relaxation_x"] == 5.0
    assert by_label[("endurance 3", "plain")]["device"]["endurance_x"] == pytest.approx(3.0 / 1e6)
    assert "read_noise_x" not in by_label[("base", "plain")]["device"]
    assert all(c["tasks"]["test_at"] == "never" for c in by_label.values())


def test_low_endurance_wears_cells_and_base_does_not(bench):
    jobs = {j["label"]: j for j in bench.make_jobs(args()) if j["config"]["learning"]["rule"] == "plain"}
    base = bench.run_one(jobs["base"])
    worn = bench.run_one(jobs["endurance 3"])
    assert base["worn_fraction"] == 0.0
    assert worn["worn_fraction"] > 0.01
    assert 0.0 <= worn["first"] <= 1.0 and 0.0 <= base["last"] <= 1.0
