"""benchmarks/continual_stdp.py: identical rows run once, results are kept and read back as run."""
from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np

from hil.experiments import registry

from script_loader import load_benchmark


def test_rows_with_the_same_configuration_share_one_pipeline(tmp_path):
    b = load_benchmark("continual_stdp")
    four_bits = next(i for i, row in enumerate(b.ROWS) if row[1] == {"filters.bits": 4})
    ten = next(i for i, row in enumerate(b.ROWS) if row[1].get("stdp.n_neurons") == 10)
    runs, rows = b.plan([0, ten, four_bits], 2, tmp_path, "", True)
    assert rows[four_bits] == rows[0]  # the 4-bit row is the first row: not run again
    assert set(rows[ten]).isdisjoint(rows[0])
    assert len(runs) == 4 and len({b.same_run(c) for c in runs}) == 4
    assert [runs[i]["seed"] for i in rows[0]] == [0, 1]


def test_a_kept_result_is_read_back_and_measured_like_a_fresh_one(tmp_path):
    b = load_benchmark("continual_stdp")
    cfg = b.config({"stdp.n_neurons": 10, "filters.epochs": 1}, 3, tmp_path / "r.h5", "", True)
    cfg["dataset"].update(train_limit=200, test_limit=40, validation=0.2)
    fresh = b.kept_job(cfg)
    kept = json.loads((tmp_path / "r.json").read_text())
    assert kept["config"] == cfg
    calls = []
    b.job = lambda c: calls.append(c)  # a kept result must not run the pipeline again
    again = b.kept_job(cfg)
    assert not calls
    np.testing.assert_array_equal(b.measure(again["summary"], again["wall"]), b.measure(fresh["summary"], fresh["wall"]))
    assert np.isfinite(b.measure(fresh["summary"], fresh["wall"])[:2]).all()
    cfg["seed"] = 4  # another configuration runs
    b.kept_job(cfg)
    assert calls


def test_the_row_without_re_training_is_read_from_the_re_training_rows_pipeline(tmp_path):
    b = load_benchmark("continual_stdp")
    k5 = next(i for i, row in enumerate(b.ROWS) if row[1] == b.K5)
    retrain = next(i for i, row in enumerate(b.ROWS) if row[1] == {**b.K5, "retrain.enabled": True})
    no_sfa = next(i for i, row in enumerate(b.ROWS) if row[1] == {**b.K5, "stdp.sfa": False})
    runs, rows = b.plan([k5, retrain, no_sfa], 2, tmp_path, "", True)
    assert rows[k5] == rows[retrain] and len(runs) == 4
    assert all(runs[i]["retrain"]["enabled"] for i in rows[k5])
    assert set(rows[no_sfa]).isdisjoint(rows[k5])  # another STDP setting is another pipeline
    alone, rows = b.plan([k5], 2, tmp_path, "", True)  # without the re-training row: its own pipeline
    assert len(alone) == 2 and not any(c.get("retrain", {}).get("enabled") for c in alone)


def test_the_longest_pipelines_are_submitted_first(tmp_path):
    """Re-training, then more bits per weight first; equal pipelines keep the table's order."""
    b = load_benchmark("continual_stdp")
    runs, _ = b.plan(b.DEFAULT_ROWS, 2, tmp_path, "", True)
    order = b.longest_first(runs)
    assert sorted(order) == list(range(len(runs)))
    first = runs[order[0]]
    assert first["retrain"]["enabled"]
    bits = [runs[i].get("filters", {}).get("bits", 4) for i in order if not b.retrains(runs[i])]
    assert bits == sorted(bits, reverse=True) and bits[0] == 8 and bits[-1] == 1
    fours = [i for i in order if not b.retrains(runs[i]) and runs[i]["filters"]["bits"] == 4]
    assert fours == sorted(fours)


def test_the_mnist_example_is_row_0(tmp_path):
    """examples/continual-stdp-mnist.toml runs the configuration of the benchmark's row 0 (README)."""
    b = load_benchmark("continual_stdp")
    root = Path(__file__).resolve().parents[2]
    example = tomllib.loads((root / "examples" / "continual-stdp-mnist.toml").read_text())
    row0 = b.config(b.ROWS[0][1], 0, tmp_path / "row0.h5", "", False)
    _, a = registry.parse_experiment(example)
    _, c = registry.parse_experiment(row0)
    assert (a.filters, a.stdp, a.overlay, a.seed) == (c.filters, c.stdp, c.overlay, c.seed)
    assert (a.dataset.name, a.dataset.source, a.dataset.validation) == (c.dataset.name, c.dataset.source,
                                                                        c.dataset.validation)
