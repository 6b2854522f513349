"""Run store: round trip, live (SWMR) reading, and recovery after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from drivers.oplog import OP_DTYPE, OpKind, make_batch
from drivers.sim_array import SimArray
from hil.h5recover import clear_consistency_flags, consistency_flags, lookup3
from hil.store import RunStore, StoreError, check_writable, open_run

ROOT = Path(__file__).resolve().parents[2]


def ops(n, start=0):
    idx = np.arange(start, start + n)
    return make_batch(OpKind.READ, idx % 7, idx % 5, idx * 1e-3, v_pulse=0.1, result=idx * 1e-6)


def test_round_trip(tmp_path):
    path = tmp_path / "run.h5"
    with RunStore.create(path, config={"a": 1, "nested": {"b": [1, 2]}}, seed=42, backend="sim",
                         instruments={"smu": "SIM"}) as store:
        store.append_ops(ops(10))
        store.append_ops(ops(5, 10))
        g = np.random.default_rng(0).random((4, 6))
        store.snapshot("final", g, 12.5)
        store.snapshot("final", 2 * g, 13.5)
        store.metric("yield", 0, 0, 0.99)
        store.metric("yield", 1, 0, 0.995)
        store.checkpoint({"w": np.arange(6.0)}, {"epoch": 3})
        store.save_calibration({"levels": np.arange(3.0)}, {"source": "test"})
    with open_run(path) as run:
        assert run.config == {"a": 1, "nested": {"b": [1, 2]}}
        attrs = run.attrs
        assert attrs["seed"] == 42 and attrs["backend"] == "sim" and attrs["status"] == "complete"
        assert attrs["schema_version"] == "2.0" and "start_time" in attrs and "package_version" in attrs
        assert run.instruments == {"smu": "SIM"}
        rec = run.ops
        assert rec.dtype == OP_DTYPE and len(rec) == 15
        assert np.allclose(rec["result"], np.arange(15) * 1e-6)
        g1, t1 = run.snapshot("final")
        g0, t0 = run.snapshot("final", 0)
        assert np.array_equal(g0, g) and np.array_equal(g1, 2 * g) and (t0, t1) == (12.5, 13.5)
        m = run.metric("yield")
        assert m["value"].tolist() == [0.99, 0.995] and m["step"].tolist() == [0, 1]
        arrays, meta = run.load_checkpoint()
        assert np.array_equal(arrays["w"], np.arange(6.0)) and meta == {"epoch": 3}
        assert np.array_equal(run.calibration()["levels"], np.arange(3.0))


def test_every_array_operation_is_logged(tmp_path):
    path = tmp_path / "run.h5"
    a = SimArray((4, 4), "hfo2", seed=0)
    with RunStore.create(path, config={}, seed=0, backend="sim") as store:
        store.attach_array("a", a)
        a.form()
        mask = np.eye(4, dtype=bool)
        a.set_pulse(mask, v_gate=1.2)
        a.reset_pulse(mask)
        a.read()
    rec = open_run(path).ops
    assert [int((rec["kind"] == k).sum()) for k in OpKind] == [16, 4, 4, 16]
    sets = rec[rec["kind"] == OpKind.SET]
    assert np.allclose(sets["v_gate"], 1.2) and np.allclose(sets["compliance"], a.technology.transistor.compliance(1.2))
    assert np.all(np.diff(rec["time"]) > 0)


def test_checkpoint_slots_alternate_and_last_complete_wins(tmp_path):
    path = tmp_path / "run.h5"
    with RunStore.create(path, config={}, seed=0, backend="sim") as store:
        for epoch in range(3):
            store.checkpoint({"w": np.full(3, float(epoch)), "big": np.arange(5000.0) + epoch}, {"epoch": epoch})
        with open_run(path) as run:  # while the run goes on, both slots are kept
            assert sorted(run._f["checkpoints"]) == ["index", "slot0", "slot1"]
    arrays, meta = open_run(path).load_checkpoint()
    assert meta["epoch"] == 2 and np.all(arrays["w"] == 2) and np.array_equal(arrays["big"], np.arange(5000.0) + 2)
    with h5py.File(path) as f:  # closed: only the slot needed is kept, the big array compressed
        assert sorted(f["checkpoints"]) == ["index", "slot0"]
        assert f["checkpoints/slot0"].nbytes < 5000 * 8 / 4  # compressed


def test_reader_sees_data_while_the_writer_runs(tmp_path):
    path = tmp_path / "live.h5"
    store = RunStore.create(path, config={}, seed=0, backend="sim", flush_interval=0.0)
    try:
        store.append_ops(ops(100))
        store.flush()
        code = f"from hil.store import open_run; print(len(open_run({str(path)!r}).ops))"
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert out.stdout.strip() == "100", out.stderr
    finally:
        store.close()


WRITER = textwrap.dedent(
    """
    import sys, time, numpy as np
    from drivers.sim_array import SimArray
    from hil.store import RunStore
    store = RunStore.create(sys.argv[1], config={"k": 1}, seed=7, backend="sim", flush_interval=0.0)
    a = SimArray((16, 16), "hfo2", seed=7)
    store.attach_array("a", a)
    a.form()
    n = 0
    while True:
        a.set_pulse(None, v_gate=1.0)
        a.read()
        store.snapshot("map", a.conductance(), a.bench_time)
        n += 2 * 256
        store.checkpoint({"n": np.array(n)}, {"n": 256 + n})
        print(256 + n, flush=True)
        a.read()  # after the checkpoint: dropped by a resume
        n += 256
        time.sleep(0.01)
    """
)


def test_reopen_after_sigkill_mid_run(tmp_path):
    path = tmp_path / "killed.h5"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    flushed = []
    try:
        deadline = time.monotonic() + 60
        while len(flushed) < 5 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            flushed.append(int(line))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert len(flushed) >= 5, proc.stderr.read()
    assert consistency_flags(path) != 0  # the dead writer left its open-for-write mark
    with open_run(path) as run:  # the package reopens it as it is
        rec = run.ops
        assert len(rec) >= flushed[-1]
        assert run.config == {"k": 1} and run.attrs["status"] == "running"
        assert len(run._f["snapshots/map/g"]) >= len(flushed)
    # and can go on writing into it
    with open_run(path) as run:
        n_ckpt = int(run.load_checkpoint()[1]["n"])
    assert n_ckpt >= flushed[-1]
    with RunStore.resume(path) as store:
        store.append_ops(ops(3))
    with open_run(path) as run:
        assert len(run.ops) == n_ckpt + 3
        assert len(run.resumes()) == 1
        assert run.attrs["status"] == "complete"


def test_lookup3_matches_hdf5_superblock_checksum(tmp_path):
    path = tmp_path / "x.h5"
    with h5py.File(path, "w", libver="latest") as f:
        f["a"] = 1
    raw = path.read_bytes()[:48]
    assert raw[8] in (2, 3)
    assert lookup3(raw[:44]) == int.from_bytes(raw[44:48], "little")
    assert lookup3(b"") == 0xDEADBEEF and lookup3(b"Four score and seven years ago") == 0x17770551
    assert clear_consistency_flags(path) is False  # clean file: untouched


def test_corrupt_superblock_is_not_touched(tmp_path):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w", libver="latest") as f:
        f["a"] = 1
    data = bytearray(path.read_bytes())
    data[11] = 1
    path.write_bytes(bytes(data))  # flag set but checksum now stale
    with pytest.raises(ValueError, match="checksum"):
        clear_consistency_flags(path)
    assert path.read_bytes() == bytes(data)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing" / "run.h5", "does not exist"),
        (lambda d: d, "is a directory"),
        (lambda d: ((d / "exists.h5").write_bytes(b"x"), d / "exists.h5")[1], "exists"),
    ],
)
def test_unwritable_paths_are_refused_without_creating_anything(tmp_path, make, message):
    target = make(tmp_path)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(StoreError, match=message):
        RunStore.create(target, config={}, seed=0, backend="sim")
    assert sorted(os.listdir(tmp_path)) == before


def test_read_only_directory_is_refused(tmp_path, mocker):
    # root ignores permission bits, so the permission answer itself is mocked
    mocker.patch("hil.store.os.access", return_value=False)
    with pytest.raises(StoreError, match="is not writable"):
        check_writable(tmp_path / "run.h5")
    assert os.listdir(tmp_path) == []


def test_config_must_be_json(tmp_path):
    path = tmp_path / "run.h5"
    with pytest.raises(TypeError):
        RunStore.create(path, config={"f": object()}, seed=0, backend="sim")
    assert not path.exists()
    with RunStore.create(path, config={"arr": np.arange(3), "p": Path("x")}, seed=None, backend="sim"):
        pass
    assert json.loads(h5py.File(path)["/"].attrs["config"]) == {"arr": [0, 1, 2], "p": "x"}


def test_records_are_encoded_and_compressed_off_the_callers_thread(tmp_path, mocker):
    """The experiment's thread only copies; the flush thread encodes, shuffles and deflates, and
    the chunks it writes directly are what HDF5's own shuffle + deflate filters read back."""
    import threading

    from hil import store as store_mod

    threads = []
    for cls, name in ((store_mod.RunStore, "_encode"), (store_mod._ChunkAppender, "_filtered")):
        real = getattr(cls, name)

        def spy(self, *a, _real=real, **k):
            threads.append(threading.current_thread().name)
            return _real(self, *a, **k)

        mocker.patch.object(cls, name, spy)
    path = tmp_path / "bg.h5"
    n = store_mod.FLUSH_RECORDS + 1000
    with RunStore.create(path, config={}, seed=0, backend="sim", flush_interval=0.2) as store:
        store.append_ops(ops(n))
        deadline = time.monotonic() + 20
        while not threads and time.monotonic() < deadline:
            time.sleep(0.01)
        assert threads and all(t.startswith("runstore-flush") for t in threads)
    with h5py.File(path, "r") as f:  # plain h5py: the filter pipeline decodes the direct chunks
        ds = f["ops/result"]
        assert ds.compression == "gzip" and ds.shuffle
        assert np.array_equal(ds[:n], (np.arange(n) * 1e-6).astype("<f4"))
    with open_run(path) as r:
        assert r.n_ops == n and np.array_equal(r.ops["row"], np.arange(n) % 7)
