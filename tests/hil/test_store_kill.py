"""Kill ``hil run`` and ``hil program`` at random moments (also before the first stage or chunk
ends), resume until done, and compare the whole file with an uninterrupted run's."""

from __future__ import annotations

import contextlib
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from hil.store import open_run

ROOT = Path(__file__).resolve().parents[2]
#: metrics that measure this process, not the run
HOST_METRICS = {"wall_time_s"}


def contents(path: Path) -> dict[str, np.ndarray]:
    with open_run(path) as r:
        out = {f"ops/{k}": v for k, v in r.ops_columns().items()}
        out["arrays"] = np.array([json.dumps({k: a[k] for k in ("id", "name", "rows", "cols", "technology")})
                                  for a in r.arrays])
        out.update({f"metric/{n}": r.metric(n) for n in r.metric_names() if n not in HOST_METRICS})
        out.update({f"snapshot/{n}": r.snapshot_series(n)[0] for n in r.snapshot_names()})
        arrays, meta = r.load_checkpoint()
        out.update({f"ckpt/{k}": v for k, v in arrays.items()})
        meta.pop("wall_time", None)
        out["ckpt/meta"] = np.array(json.dumps(meta, sort_keys=True))
        out["status"] = np.array(r.status)
        out["n_resumes"] = np.array(len(r.resumes()))
    return out


def assert_same_record(a: Path, b: Path) -> None:
    ca, cb = contents(a), contents(b)
    assert ca.pop("n_resumes") == 0
    cb.pop("n_resumes")
    assert sorted(ca) == sorted(cb)
    for key in ca:
        assert ca[key].shape == cb[key].shape, key
        assert ca[key].tobytes() == cb[key].tobytes(), key  # bit for bit


def committed_records(path: Path) -> int:
    """Operation records on disk in a (killed or finished) run file."""
    with open_run(path) as r:
        return r.n_ops


def wait_for_checkpoint(proc: subprocess.Popen, out: Path, limit: float) -> bool:
    """Poll ``out`` until it holds a checkpoint (a resumable state) while ``proc`` runs."""
    t_end = time.monotonic() + limit
    while time.monotonic() < t_end and proc.poll() is None:
        if out.exists():
            try:
                with open_run(out) as r:
                    if r.load_checkpoint() is not None:
                        return True
            except Exception:  # noqa: BLE001 - the file is still being laid out
                pass
        time.sleep(0.02)
    return False


def run_killed(first: list[str], resume: list[str], out: Path, rng: random.Random, kills: int,
               span: float) -> list[int]:
    """Run ``first``, SIGKILL it, then ``resume`` (killed too) until one finishes.

    The first kill falls right after the run wrote its first checkpoint (so a resume is certain to
    have work to do); later ones at random fractions of ``span`` (the wall time of an uninterrupted
    run, s): before the first checkpoint, inside a stage or a checkpoint, ... Returns the records
    on disk after each kill that left a resumable file."""
    cmd, done, shorter = first, False, []
    for attempt in range(kills + 1):
        proc = subprocess.Popen([sys.executable, "-m", "hil", *cmd], cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        if attempt < kills:
            if attempt == 0:
                assert wait_for_checkpoint(proc, out, 10 * span + 60), "the run never wrote a checkpoint"
                time.sleep(rng.uniform(0.0, 0.05) * span)
            else:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=rng.uniform(0.1, 0.9) * span)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        err = proc.communicate(timeout=600)[1]
        if proc.returncode == 0:
            done = True
            break
        if proc.returncode == -signal.SIGKILL:
            if out.exists():
                with contextlib.suppress(Exception):  # killed while laying out the file: no run yet
                    shorter.append(committed_records(out))
            cmd = resume if out.exists() else first
            continue
        if "is complete" in err:  # the kill came after the run had finished its file
            done = True
            break
        if "before its first checkpoint" in err or "no checkpoint" in err:
            cmd = first  # killed before anything was done: start again
            continue
        raise AssertionError(f"{cmd}: exit {proc.returncode}: {err[-1500:]}")
    if not done:
        proc = subprocess.run([sys.executable, "-m", "hil", *cmd], cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-1500:]
    return shorter


def assert_resumed(out: Path, shorter: list[int]) -> None:
    """The file was really continued: a resume marker, and a killed state shorter than the end."""
    with open_run(out) as r:
        marks, final = r.resumes(), r.n_ops
    assert len(marks) >= 1, "no /resumes marker: the run was never resumed"
    assert np.all(marks["checkpoint"] >= 0) and all(marks["host"]) and all(marks["time"])
    assert shorter and min(shorter) < final, (shorter, final)


def test_killed_program_runs_resume_to_the_uninterrupted_file(tmp_path):
    base = ["program", "--levels", "8", "--shape", "32x32", "--chunk-cells", "64", "--seed", "3", "--overwrite"]
    whole = tmp_path / "whole.h5"
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "hil", *base, "--out", str(whole)], cwd=ROOT, check=True,
                   capture_output=True, timeout=600)
    span = time.monotonic() - t0
    out = tmp_path / "killed.h5"
    shorter = run_killed([*base, "--out", str(out)], ["program", "--resume", str(out)], out, random.Random(1), kills=4,
                         span=span)
    assert_resumed(out, shorter)
    assert_same_record(whole, out)


def test_killed_experiment_runs_resume_to_the_uninterrupted_file(tmp_path):
    toml = tmp_path / "tiny.toml"
    toml.write_text(
        'experiment = "metaplastic"\nname = "tiny"\nseed = 5\noverwrite = true\n'
        '[tasks]\nsequence = "mnist-fmnist"\nepochs = [2, 1]\ntrain_limit = 200\ntest_limit = 100\n'
        '[dataset]\nsource = "bundled"\n[network]\nhidden = [12]\n'
        '[learning]\nm_star = 3.0\nbatch_size = 50\n[device]\nbackend = "sim"\nprogram_every = 2\n'
    )
    whole = tmp_path / "whole.h5"
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "hil", "run", str(toml), "--out", str(whole), "--no-progress", "--no-figures"],
                   cwd=ROOT, check=True, capture_output=True, timeout=600)
    span = time.monotonic() - t0
    out = tmp_path / "killed.h5"
    shorter = run_killed(["run", str(toml), "--out", str(out), "--no-progress", "--no-figures"],
                         ["run", "--resume", str(out), "--no-progress", "--no-figures"], out, random.Random(2), kills=4,
                         span=span)
    assert_resumed(out, shorter)
    assert_same_record(whole, out)
