"""Run-store faults (issue 9): write errors and a full disk, corrupt or truncated files, live
writers and readers holding the file, and files the HDF5 ecosystem (h5py, h5dump) opens."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from drivers.sim_array import SimArray
from hil.cli import main
from hil.h5recover import consistency_flags
from hil.runcheck import check_run, problems
from hil.store import RunStore, StoreError, WriterAliveError, _ChunkAppender, open_run

ROOT = Path(__file__).resolve().parents[2]

WRITER = textwrap.dedent(
    """
    import sys, time, numpy as np
    from drivers.sim_array import SimArray
    from hil.store import RunStore
    store = RunStore.create(sys.argv[1], config={"k": 1}, seed=7, backend="sim", flush_interval=0.05)
    a = SimArray((16, 16), "hfo2", seed=7)
    store.attach_array("a", a)
    a.form()
    store.checkpoint({"x": np.arange(3)}, {"n": 1})
    i = 0
    while True:
        a.set_pulse(None, v_gate=1.0)
        a.read()
        i += 1
        if i == 3:
            print("ready", flush=True)
        time.sleep(0.01)
    """
)


def start_writer(path: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    time.sleep(0.3)
    return proc


def killed_file(tmp_path: Path, name: str = "killed.h5") -> Path:
    path = tmp_path / name
    proc = start_writer(path)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert consistency_flags(path) != 0
    return path


# ---------------------------------------------------------------------- write errors
def test_an_injected_write_error_stops_the_run_clearly_and_keeps_what_was_flushed(tmp_path, mocker):
    path = tmp_path / "err.h5"
    a = SimArray((8, 8), "hfo2", seed=0)
    store = RunStore.create(path, config={}, seed=0, backend="sim", flush_interval=0)
    store.attach_array("a", a)
    a.form()
    real = _ChunkAppender.append  # every /ops write goes through it

    def failing(self, data):
        if self.ds.name == "/ops/batch":
            raise OSError(28, "No space left on device")
        return real(self, data)

    mocker.patch.object(_ChunkAppender, "append", failing)
    with pytest.raises(StoreError) as info:
        a.read()
    assert str(path) in str(info.value) and "No space left on device" in str(info.value)
    with pytest.raises(StoreError, match="nothing more is written"):
        store.metric("x", 0, 0, 1.0)
    mocker.stopall()
    store.close("complete")
    with open_run(path) as r:
        assert r.n_ops == 64 and r.status.startswith("failed: write error")
        assert np.all(r.ops["kind"] == 0)  # the FORM batch, nothing half-written after it
    assert not problems([x for x in check_run(path) if "status" not in x.text])


DISK_FULL = textwrap.dedent(
    """
    import sys, numpy as np
    from drivers.sim_array import SimArray
    from hil.store import RunStore, StoreError
    a = SimArray((128, 128), "hfo2", seed=0)
    store = RunStore.create(sys.argv[1], config={}, seed=0, backend="sim", flush_interval=0)
    store.attach_array("a", a)
    try:
        a.form()
        for i in range(10000):
            a.set_pulse(None, v_gate=np.random.default_rng(i).uniform(0.9, 1.2, a.shape))
            a.read()
    except StoreError as exc:
        print("ERROR", exc, flush=True)
    finally:
        store.close("complete")
    """
)


def _tmpfs(tmp_path: Path) -> Path | None:
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return None
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True)
    return mnt if done.returncode == 0 else None


def test_disk_full_never_segfaults_and_leaves_no_unmarked_garbage(tmp_path):
    mnt = _tmpfs(tmp_path)
    if mnt is None:
        pytest.skip("needs root to mount a 2 MB tmpfs (the injected-error test covers the logic)")
    try:
        path = mnt / "full.h5"
        out = subprocess.run([sys.executable, "-c", DISK_FULL, str(path)], cwd=ROOT, capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0, (out.returncode, out.stderr[-2000:])  # 139 = segfault
        assert "ERROR" in out.stdout and str(path) in out.stdout and "No space left" in out.stdout, out.stdout
        with open_run(path) as r:
            n = r.n_ops
            assert r.status.startswith("failed") or r.status == "running"
            rec = r.ops
        assert n >= 128 * 128 and n % (128 * 128) == 0  # whole batches only
        assert np.all(rec["time"] > 0) and np.all(np.diff(rec["time"]) > 0)  # no all-zero records
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


# ---------------------------------------------------------------------- corrupt input
def _damaged(tmp_path: Path) -> dict[str, Path]:
    clean = tmp_path / "clean.h5"
    with RunStore.create(clean, config={}, seed=0, backend="sim") as store:
        a = SimArray((32, 32), "hfo2", seed=0)
        store.attach_array("a", a)
        a.form()
        a.read()
    killed = killed_file(tmp_path)
    out = {}
    for src, tag in ((clean, "clean"), (killed, "killed")):
        data = src.read_bytes()
        for how, cut in (("half", data[: len(data) // 2]), ("head", data[:300])):
            p = tmp_path / f"{tag}-{how}.h5"
            p.write_bytes(cut)
            out[p.stem] = p
        flipped = bytearray(data)
        for k in range(2048, len(flipped), 997):
            flipped[k] ^= 0x5A
        p = tmp_path / f"{tag}-flipped.h5"
        p.write_bytes(bytes(flipped))
        out[p.stem] = p
    (tmp_path / "empty.h5").write_bytes(b"")
    (tmp_path / "foreign.h5").write_bytes(b"not hdf5 at all" * 100)
    out["empty"], out["foreign"] = tmp_path / "empty.h5", tmp_path / "foreign.h5"
    return out


def test_corrupt_or_truncated_files_fail_fast_with_a_clear_message(tmp_path):
    code = textwrap.dedent(
        """
        import sys
        from hil.store import open_run, StoreError
        try:
            with open_run(sys.argv[1], timeout=20) as r:
                r.ops
            print("OPENED")
        except (StoreError, OSError, KeyError, ValueError) as exc:
            print("ERROR", type(exc).__name__, exc)
        """
    )
    for name, path in _damaged(tmp_path).items():
        before = path.read_bytes()
        t0 = time.monotonic()
        out = subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, capture_output=True, text=True,
                             timeout=120)
        assert time.monotonic() - t0 < 90, name
        assert out.returncode == 0 and "Traceback" not in out.stderr, (name, out.stderr[-1500:])
        assert out.stdout.startswith(("ERROR", "OPENED")), (name, out.stdout)
        if out.stdout.startswith("ERROR"):
            assert str(path) in out.stdout, (name, out.stdout)
        assert path.read_bytes() == before, name
    for name in ("empty", "foreign", "clean-half", "clean-head"):
        path = tmp_path / f"{name}.h5"
        with pytest.raises(StoreError, match=str(path)):
            open_run(path)


def test_clean_files_open_without_swmr(tmp_path, mocker):
    path = tmp_path / "c.h5"
    with RunStore.create(path, config={}, seed=0, backend="sim"):
        pass
    spy = mocker.spy(h5py, "File")
    with open_run(path):
        pass
    assert spy.call_args.kwargs.get("swmr") is False


# ---------------------------------------------------------------------- writers and readers
def test_resume_refuses_a_live_writer_and_changes_nothing(tmp_path, capsys):
    path = tmp_path / "live.h5"
    proc = start_writer(path)
    try:
        flags = consistency_flags(path)
        with pytest.raises(WriterAliveError, match=f"process {proc.pid}"):
            RunStore.resume(path)
        assert consistency_flags(path) == flags
        assert main(["repair", str(path)]) == 2
        assert f"process {proc.pid}" in capsys.readouterr().err
        assert consistency_flags(path) == flags
        assert proc.poll() is None  # the writer is unharmed
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)


def test_resume_refuses_cleanly_while_a_reader_holds_the_file(tmp_path):
    path = tmp_path / "stopped.h5"
    with RunStore.create(path, config={}, seed=0, backend="sim") as store:
        store.checkpoint({"x": np.arange(3)}, {"n": 1})
    with h5py.File(path, "r+") as f:
        f.attrs["status"] = "stopped"
    hold = subprocess.Popen([sys.executable, "-c", "import sys, time, h5py; f = h5py.File(sys.argv[1], 'r'); "
                             "print('open', flush=True); time.sleep(60)", str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert hold.stdout.readline().strip() == "open"
        before = path.read_bytes()
        with pytest.raises(WriterAliveError, match="open in another process"):
            RunStore.resume(path)
        assert path.read_bytes() == before
    finally:
        hold.kill()
        hold.wait(timeout=30)
    with RunStore.resume(path):
        pass


# ---------------------------------------------------------------------- the HDF5 ecosystem
def test_clean_file_opens_in_plain_h5py_and_h5dump(tmp_path):
    path = tmp_path / "clean.h5"
    with RunStore.create(path, config={}, seed=0, backend="sim") as store:
        a = SimArray((4, 4), "hfo2", seed=0)
        store.attach_array("a", a)
        a.form()
        store.checkpoint({"x": np.arange(2000.0)}, {"n": 1})
    with h5py.File(path) as f:
        assert f["ops/cell"].shape == (16,) and f["ops/batch"].shape == (1,)
    assert path.read_bytes()[8] == 3  # superblock version 3: the v110 file format
    if shutil.which("h5dump") is None:
        pytest.skip("h5dump not on PATH (apt-get install hdf5-tools)")
    out = subprocess.run(["h5dump", "-H", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert 'DATASET "cell"' in out.stdout and 'DATASET "batch"' in out.stdout


def test_killed_file_opens_everywhere_after_hil_repair(tmp_path, capsys):
    path = killed_file(tmp_path)
    with pytest.raises(OSError):
        h5py.File(path, "r")  # what the ecosystem sees before the repair
    assert main(["repair", str(path)]) == 0
    assert "cleared the open-for-write flags" in capsys.readouterr().out
    assert consistency_flags(path) == 0
    with h5py.File(path, "r") as f:
        assert f.attrs["status"] == "interrupted"
    assert main(["check", str(path)]) == 0
    if shutil.which("h5dump") is None:
        pytest.skip("h5dump not on PATH (apt-get install hdf5-tools)")
    out = subprocess.run(["h5dump", "-H", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    with RunStore.resume(path):  # and it still resumes
        pass


def test_hil_check_finds_a_clock_that_runs_backwards(tmp_path, capsys):
    from drivers.oplog import OpKind, make_batch

    path = tmp_path / "bad.h5"
    with RunStore.create(path, config={}, seed=0, backend="sim") as store:
        store.append_ops(make_batch(OpKind.READ, np.arange(3), np.arange(3), np.array([1.0, 2.0, 3.0])))
        store.append_ops(make_batch(OpKind.READ, np.arange(3), np.arange(3), np.array([0.5, 0.6, 0.7])))
    assert main(["check", str(path)]) == 1
    assert "backwards 1 times" in capsys.readouterr().out
    good = tmp_path / "good.h5"
    with RunStore.create(good, config={}, seed=0, backend="sim") as store:
        store.append_ops(make_batch(OpKind.READ, np.arange(3), np.arange(3), np.array([1.0, 2.0, 3.0])))
    assert main(["check", str(good)]) == 0
