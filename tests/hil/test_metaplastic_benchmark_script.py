"""benchmarks/metaplastic.py: the per-run result cache (an interrupted benchmark continues, a
changed configuration runs again) and the inline executor of --jobs 1."""

from __future__ import annotations

import json

import pytest

from script_loader import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("metaplastic")


def tiny(bench, tmp_path, **dotted):
    import argparse

    args = argparse.Namespace(sequence="mnist-fmnist", epochs=[1, 1], train_limit=200, test_limit=100, validation=40,
                              source="bundled", data_dir=None, hidden=8, m_star=4.0, lr=0.01, batch_size=50,
                              technology="hfo2", program_every=1)
    return bench.variant(bench.base_config(args), "t", 3, tmp_path, **{"tasks.test_at": "never", **dotted})


def test_cached_job_reuses_a_finished_run_and_reruns_a_changed_one(bench, tmp_path, monkeypatch):
    data = tiny(bench, tmp_path)
    first = bench.cached_job(data)
    kept = json.loads((tmp_path / "t.json").read_text())
    assert kept["config"] == data and kept["result"]["summary"] == first["summary"]

    def boom(_):
        raise AssertionError("ran again")

    real = bench.job
    monkeypatch.setattr(bench, "job", boom)
    assert bench.cached_job(data)["summary"] == first["summary"]  # same configuration: read back
    changed = tiny(bench, tmp_path, **{"learning.m_star": 8.0})
    with pytest.raises(AssertionError, match="ran again"):
        bench.cached_job(changed)  # another configuration under the same name: not reused
    monkeypatch.setattr(bench, "job", real)
    assert bench.cached_job(changed)["summary"] != first["summary"]


def test_inline_executor_runs_in_order_and_propagates_errors(bench):
    with bench.InlineExecutor() as ex:
        assert list(ex.map(lambda v: v * 2, [1, 2, 3])) == [2, 4, 6]
        failed = ex.submit(lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            failed.result()


def test_bnn_baseline_result_is_kept_per_seed(bench, tmp_path, monkeypatch):
    calls = []

    def fake(key):
        calls.append(key)
        return {"seed": key["seed"], "own": {}, "end": {"mnist": 0.5}, "wall": 1.0}

    monkeypatch.setattr(bench, "job_bnn", fake)
    args = {"seed": 0, "epochs": [1, 1], "validation": 40, "source": "bundled", "data_dir": None,
            "out_dir": str(tmp_path), "hidden": 8}
    first = bench.cached_job_bnn(args)
    assert bench.cached_job_bnn({**args, "hidden": 16}) == first  # keys the BNN ignores: reused
    assert len(calls) == 1 and (tmp_path / "bnn-s0.json").exists()
    bench.cached_job_bnn({**args, "epochs": [2, 2]})  # a changed run: trained again
    bench.cached_job_bnn({**args, "seed": 1})
    assert len(calls) == 3
