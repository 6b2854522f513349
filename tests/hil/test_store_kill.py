"""Kill ``hil run`` and ``hil program`` at random moments (also before the first stage or chunk
ends), resume until done, and compare the whole file with an uninterrupted run's."""

from __future__ import annotations

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
    assert ca.pop("n_resumes") == 0 and cb.pop("n_resumes") >= 1
    assert sorted(ca) == sorted(cb)
    for key in ca:
        assert ca[key].shape == cb[key].shape, key
        assert ca[key].tobytes() == cb[key].tobytes(), key  # bit for bit


def run_killed(first: list[str], resume: list[str], out: Path, rng: random.Random, kills: int) -> int:
    """Run ``first``, SIGKILL it after a random delay, then ``resume`` (killed too) until one finishes."""
    cmd, done, killed = first, False, 0
    for attempt in range(kills + 1):
        proc = subprocess.Popen([sys.executable, "-m", "hil", *cmd], cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        if attempt < kills:
            # a random moment: from the start (before any checkpoint) on the first try, else a
            # random time after the file has its first records (start-up time varies with load)
            if attempt:
                t_end = time.monotonic() + 120
                while proc.poll() is None and time.monotonic() < t_end and not out.exists():
                    time.sleep(0.05)
            try:
                proc.wait(timeout=rng.uniform(0.2, 3.0))
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                killed += 1
        err = proc.communicate(timeout=600)[1]
        if proc.returncode == 0:
            done = True
            break
        if proc.returncode == -signal.SIGKILL:
            cmd = resume if out.exists() else first
            continue
        if "before its first checkpoint" in err or "no checkpoint" in err:
            cmd = first  # killed before anything was done: start again
            continue
        raise AssertionError(f"{cmd}: exit {proc.returncode}: {err[-1500:]}")
    if not done:
        proc = subprocess.run([sys.executable, "-m", "hil", *cmd], cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-1500:]
    return killed


def test_killed_program_runs_resume_to_the_uninterrupted_file(tmp_path):
    base = ["program", "--levels", "8", "--shape", "24x24", "--chunk-cells", "64", "--seed", "3", "--overwrite"]
    whole = tmp_path / "whole.h5"
    subprocess.run([sys.executable, "-m", "hil", *base, "--out", str(whole)], cwd=ROOT, check=True,
                   capture_output=True, timeout=600)
    out = tmp_path / "killed.h5"
    killed = run_killed([*base, "--out", str(out)], ["program", "--resume", str(out)], out, random.Random(1), kills=4)
    assert killed >= 1
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
    subprocess.run([sys.executable, "-m", "hil", "run", str(toml), "--out", str(whole), "--no-progress", "--no-figures"],
                   cwd=ROOT, check=True, capture_output=True, timeout=600)
    out = tmp_path / "killed.h5"
    killed = run_killed(["run", str(toml), "--out", str(out), "--no-progress", "--no-figures"],
                        ["run", "--resume", str(out), "--no-progress", "--no-figures"], out, random.Random(2), kills=4)
    assert killed >= 1
    assert_same_record(whole, out)
