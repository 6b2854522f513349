"""One trial of a sweep: an ordinary ``hil run`` (or ``hil program``) in its own subprocess.

The sweep's folder is its state, there is no database:

* ``DIR/NAME.h5`` exists only when the trial completed: the run is written to a temporary
  ``DIR/.NAME.<attempt>.part.h5`` and renamed on success (two copies of a trial racing, as when
  Dask recomputes a task after losing a worker, both write the same bits; the last rename wins);
* ``DIR/NAME.failed.json`` holds the error of the last failed attempt (removed on success);
* ``DIR/trials/NAME.toml`` is the expanded experiment file, so the trial reruns alone with
  ``hil run DIR/trials/NAME.toml``.

:func:`run_trial` is a plain top-level function of picklable arguments, so the same code runs in
a local thread pool and on a Dask worker.
"""

from __future__ import annotations

import ctypes
import glob
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

#: Environment of every trial: one BLAS / OpenMP thread (one trial per core).
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

#: Variables a Dask nanny sets for its worker's own memory management (``distributed.nanny.
#: pre-spawn-environ``), not for the trial it starts: ``MALLOC_TRIM_THRESHOLD_=65536`` makes glibc
#: return every freed numpy temporary to the kernel and measured 2.1x slower metaplastic runs
#: (9.9 s against 20.9 s for the same 3 + 3 epoch run). A trial runs with the default allocator.
WORKER_ONLY_ENV = ("MALLOC_TRIM_THRESHOLD_",)

FAILED_SUFFIX = ".failed.json"


@dataclass(frozen=True)
class TrialJob:
    """What a worker needs to run one trial (paths absolute).

    Attributes:
        name: the trial's name (file stem of its run file).
        argv: the ``hil`` arguments, without ``--out`` (added by :func:`run_trial`).
        out_dir: the sweep's folder.
        cwd: working directory of the subprocess.
        pythonpath: prepended to ``PYTHONPATH`` of the subprocess (the package's location).
    """

    name: str
    argv: tuple[str, ...]
    out_dir: str
    cwd: str
    pythonpath: str = ""


@dataclass(frozen=True)
class TrialOutcome:
    name: str
    ok: bool
    wall_time: float  # s
    error: str = ""
    returncode: int = 0


def run_path(out_dir: str | Path, name: str) -> Path:
    return Path(out_dir) / f"{name}.h5"


def failed_path(out_dir: str | Path, name: str) -> Path:
    return Path(out_dir) / f"{name}{FAILED_SUFFIX}"


def trial_state(out_dir: str | Path, name: str) -> str:
    """``"done"``, ``"running"`` (a temporary run file is being written), ``"failed"`` or
    ``"missing"``, from the folder alone."""
    if run_path(out_dir, name).is_file():
        return "done"
    if any(Path(out_dir).glob(f".{glob.escape(name)}.*.part.h5")):
        return "running"
    if failed_path(out_dir, name).is_file():
        return "failed"
    return "missing"


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the trial gets SIGKILL when the worker that started it dies (no orphan trials)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def child_env(pythonpath: str = "") -> dict[str, str]:
    """The environment of a trial subprocess: this one's, single-threaded BLAS, without the
    executor's own allocator settings (:data:`WORKER_ONLY_ENV`), ``pythonpath`` first."""
    env = {k: v for k, v in os.environ.items() if k not in WORKER_ONLY_ENV}
    env.update(SINGLE_THREAD_ENV)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, env.get("PYTHONPATH", "")) if p)
    return env


def run_trial(job: TrialJob) -> TrialOutcome:
    """Run one trial in a subprocess; rename its run file into place or record its failure.

    Never raises for a failing trial: its error goes to ``NAME.failed.json`` and the outcome.
    """
    out_dir = Path(job.out_dir)
    final = run_path(out_dir, job.name)
    part = out_dir / f".{job.name}.{uuid.uuid4().hex[:12]}.part.h5"
    cmd = [sys.executable, "-m", "hil", *job.argv, "--out", str(part)]
    t0 = time.perf_counter()
    preexec = _die_with_parent if sys.platform.startswith("linux") else None
    try:
        proc = subprocess.run(cmd, cwd=job.cwd, env=child_env(job.pythonpath), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=preexec)
    except OSError as exc:
        return _fail(job, part, t0, f"could not start the trial: {exc}", -1, cmd)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        if proc.returncode < 0:
            reason = f"killed by signal {signal.Signals(-proc.returncode).name}"
        else:
            reason = f"exit status {proc.returncode}"
        tail = (proc.stderr or "").strip().splitlines()[-20:]
        return _fail(job, part, t0, f"{reason}: " + ("\n".join(tail) or "no error output"), proc.returncode, cmd)
    if not part.is_file():
        return _fail(job, part, t0, "the trial exited 0 without writing its run file", 0, cmd)
    os.replace(part, final)
    failed_path(out_dir, job.name).unlink(missing_ok=True)
    return TrialOutcome(job.name, True, wall)


def _fail(job: TrialJob, part: Path, t0: float, error: str, returncode: int, cmd: list[str]) -> TrialOutcome:
    part.unlink(missing_ok=True)
    wall = time.perf_counter() - t0
    record = {"name": job.name, "error": error, "returncode": returncode, "wall_time_s": wall,
              "command": cmd[:-2], "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    target = failed_path(job.out_dir, job.name)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, target)
    return TrialOutcome(job.name, False, wall, error, returncode)


def clean_partials(out_dir: str | Path) -> int:
    """Remove temporary run files left by killed trials (none of them can be running)."""
    n = 0
    for p in Path(out_dir).glob(".*.part.h5"):
        p.unlink(missing_ok=True)
        n += 1
    return n
