"""Run-store integrity (issue 9): every record names its array, exact resume truncation with a
marker, finished runs left alone, flushing without new batches, exact /ops encoding, schema versions."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from drivers.oplog import OP_DTYPE, OpKind, make_batch
from drivers.sim_array import SimArray
from hil import store as store_mod
from hil.cli import main
from hil.store import RunFinishedError, RunStore, StoreError, open_run

ROOT = Path(__file__).resolve().parents[2]


def test_every_record_names_its_array_and_each_clock_is_monotonic(tmp_path):
    path = tmp_path / "two.h5"
    a, b = SimArray((6, 5), "hfo2", seed=1), SimArray((3, 4), "siox", seed=2)
    with RunStore.create(path, config={}, seed=0, backend="sim") as store:
        store.attach_array("layer0", a)
        store.attach_array("layer1", b)
        for _ in range(3):  # interleaved operations, separate bench clocks
            a.form() if a.bench_time == 0 else a.set_pulse(None, v_gate=1.0)
            b.read()
            a.read()
    with open_run(path) as run:
        arrays = run.arrays
        assert [(x["name"], x["rows"], x["cols"], x["technology"]) for x in arrays] == [
            ("layer0", 6, 5, "hfo2"), ("layer1", 3, 4, "siox")]
        assert "SimArray" in json.loads(arrays[0]["instrument"])["array"]
        rec = run.ops
        assert rec.dtype == OP_DTYPE
        assert np.count_nonzero(rec["array"] == 0) == 6 * 30 and np.count_nonzero(rec["array"] == 1) == 3 * 12
        for aid, (rows, cols) in ((0, (6, 5)), (1, (3, 4))):
            mine = rec[rec["array"] == aid]
            assert np.all(np.diff(mine["time"]) > 0)
            assert mine["row"].max() < rows and mine["col"].max() < cols
        wall = run.batches()["wall"]
        assert np.all(np.abs(wall - time.time()) < 600) and np.all(np.diff(wall) >= 0)  # wall clock too


def test_encoding_expands_every_record_exactly(tmp_path, monkeypatch):
    monkeypatch.setattr(store_mod, "DICT_LIMIT", 40)  # force the plain fallback too
    rng = np.random.default_rng(3)
    path = tmp_path / "enc.h5"
    sent = []
    with RunStore.create(path, config={}, seed=0, backend="sim") as store:
        for k in range(30):
            n = int(rng.integers(1, 50))
            rows, cols = rng.integers(0, 300, n), rng.integers(0, 300, n)  # unsorted, any address
            kind = OpKind(int(rng.integers(0, 4)))
            vg = rng.choice([0.9, 1.0, 1.1], n) if k % 3 else float(rng.random())
            res = rng.random(n).astype(np.float32) if kind == OpKind.READ else np.nan
            if k % 4 == 0:
                batch = make_batch(kind, rows, cols, np.sort(rng.random(n)) + k, v_gate=vg, v_pulse=rng.random(n),
                                   result=res)
            else:
                batch = make_batch(kind, rows, cols, t_start=float(k), t_step=1e-3 * (k + 1), v_gate=vg,
                                   width=1e-6, compliance=rng.random(n), result=res)
            sent.append(batch.records)
            store.append_ops(batch)
            if k % 5 == 1:  # the same cells again (stored once), with compliance following the gate
                vgs = rng.choice([0.9, 1.0], n)
                again = make_batch(OpKind.SET, rows, cols, t_start=k + 0.5, t_step=1e-3, v_gate=vgs, compliance=vgs * 2)
                sent.append(again.records)
                store.append_ops(again)
            if k == 10:
                store.flush()
    want = np.concatenate(sent)
    with open_run(path) as run:
        got = run.ops
    for name in OP_DTYPE.names:
        assert got[name].tobytes() == want[name].tobytes(), name  # bit for bit, NaNs included
    with open_run(path) as run:
        b = run.batches()
        assert np.any(b["same"] & 1) and np.any(b["same"] & (1 << 4)) and np.any(b["raw"])  # every code path ran
    assert store_mod.DICT_LIMIT == 40


def _partial_run(path: Path) -> tuple[int, dict]:
    """Write a run, checkpoint, then write more and abandon it as a killed writer would."""
    a = SimArray((4, 4), "hfo2", seed=0)
    store = RunStore.create(path, config={"k": 1}, seed=0, backend="sim", flush_interval=0)
    store.attach_array("a", a)
    a.form()
    store.metric("acc", 1, 1, 0.5)
    store.snapshot("map", a.read(), a.bench_time)
    arrays, meta = a.get_state()
    store.checkpoint(arrays, meta)
    with open_run(path) as r:
        expect = {"ops": r.ops, "acc": r.metric("acc"), "map": r.snapshot_series("map")[0]}
    a.set_pulse(None, v_gate=1.0)  # after the checkpoint: all of this must go on resume
    a.read()
    store.metric("acc", 2, 2, 0.6)
    store.metric("late", 2, 2, 1.0)
    store.snapshot("map", a.read(), a.bench_time)
    store.snapshot("late_map", a.read(), a.bench_time)
    store.flush()
    store._stop.set()
    store._f.close()  # no status update: like a kill (flags cleared by the library on close)
    store._closed = True
    return len(expect["ops"]), expect


def test_resume_truncates_everything_after_the_checkpoint_and_marks_it(tmp_path):
    path = tmp_path / "r.h5"
    n_ops, expect = _partial_run(path)
    with open_run(path) as r:
        assert len(r.ops) > n_ops and "late" in r.metric_names()
    with RunStore.resume(path, flush_interval=0):
        pass
    with open_run(path) as r:
        assert r.ops.tobytes() == expect["ops"].tobytes()
        assert np.array_equal(r.metric("acc"), expect["acc"])
        assert r.metric_names() == ["acc"] and r.snapshot_names() == ["map"]
        assert np.array_equal(r.snapshot_series("map")[0], expect["map"])
        marks = r.resumes()
        assert len(marks) == 1 and marks["checkpoint"][0] == 0 and marks["records_dropped"][0] == 16 * 4
        assert marks["host"][0] and marks["time"][0]
        assert r.status == "complete"


def test_resume_of_a_finished_run_says_so_and_changes_nothing(tmp_path):
    path = tmp_path / "done.h5"
    with RunStore.create(path, config={}, seed=0, backend="sim") as store:
        store.metric("final.acc", 1, 1, 0.9)
        store.checkpoint({"w": np.ones(3)}, {"epoch": 1})
    before = path.read_bytes()
    with pytest.raises(RunFinishedError, match="complete"):
        RunStore.resume(path)
    assert path.read_bytes() == before


def test_records_reach_the_file_within_flush_interval_without_new_batches(tmp_path):
    path = tmp_path / "live.h5"
    store = RunStore.create(path, config={}, seed=0, backend="sim", flush_interval=0.2)
    try:
        a = SimArray((8, 8), "hfo2", seed=0)
        store.attach_array("a", a)
        a.form()  # one batch, then nothing more arrives
        time.sleep(1.0)
        code = f"from hil.store import open_run; print(open_run({str(path)!r}).n_ops)"
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert out.stdout.strip() == "64", out.stderr
    finally:
        store.close()


def test_hil_read_does_not_overwrite_the_run_it_reads(tmp_path, capsys):
    run = tmp_path / "p.h5"
    assert main(["program", "--levels", "4", "--shape", "4x4", "--out", str(run)]) == 0
    before = run.read_bytes()
    assert main(["read", "--run", str(run), "--out", str(run), "--overwrite"]) == 2
    assert "also an input" in capsys.readouterr().err
    assert run.read_bytes() == before


def test_newer_schema_is_refused_and_schema_1_still_reads(tmp_path):
    new = tmp_path / "new.h5"
    with RunStore.create(new, config={}, seed=0, backend="sim"):
        pass
    with h5py.File(new, "r+") as f:
        f.attrs["schema_version"] = "3.0"
    with pytest.raises(StoreError, match="newer than this package reads"):
        open_run(new)
    old = tmp_path / "old.h5"
    legacy = np.dtype([(n, OP_DTYPE[n]) for n in OP_DTYPE.names if n != "array"])
    rec = np.zeros(5, legacy)
    rec["time"], rec["row"], rec["kind"] = np.arange(5), np.arange(5), int(OpKind.READ)
    with h5py.File(old, "w") as f:
        f.attrs.update({"schema_version": "1.0", "config": "{}", "instruments": "{}", "status": "complete"})
        f.create_dataset("ops", data=rec)
        for g in ("snapshots", "metrics", "checkpoints", "calibration"):
            f.create_group(g)
    with open_run(old) as r:
        got = r.ops
        assert r.n_ops == 5 and np.array_equal(got["row"], np.arange(5)) and np.all(got["array"] == 0)


def test_pulses_per_device_counts_every_programming_record_of_its_array(tmp_path):
    """Against the expanded records and the arrays' own counters, with cells stored once and
    repeated ('same' batches after a read and after a pulse), two interleaved arrays and a pulse
    batch that reuses a READ's cells."""
    path = tmp_path / "p.h5"
    a, b = SimArray((5, 7), "hfo2", seed=1), SimArray((3, 4), "hfo2", seed=2)
    rng = np.random.default_rng(4)
    with RunStore.create(path, config={}, seed=0, backend="sim") as store:
        store.attach_array("a", a)
        store.attach_array("b", b)
        a.form()
        b.form()
        for _ in range(12):
            cells = np.flatnonzero(rng.random(a.size) < 0.5)
            a.read_cells(cells)
            a.set_pulse(cells, v_gate=1.0)  # the cells of the read: stored once
            a.set_pulse(cells, v_gate=1.1)  # and again
            b.reset_pulse(rng.random(b.shape) < 0.3)
            b.read()
    with open_run(path) as run:
        assert np.any(run.batches()["same"] & 1)
        rec = run.ops
        for name, arr, aid in (("a", a, 0), ("b", b, 1)):
            got = run.pulses_per_device(name)
            mine = rec[(rec["array"] == aid) & (rec["kind"] != int(OpKind.READ))]
            want = np.zeros(arr.shape, np.int64)
            np.add.at(want, (mine["row"], mine["col"]), 1)
            assert got.dtype == np.int64 and np.array_equal(got, want), name
            assert np.array_equal(got, arr.programming_events()), name
        with pytest.raises(ValueError, match="2 arrays"):
            run.pulses_per_device()
