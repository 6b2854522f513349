"""Wall time of the same 8 sweep trials with 1 and 2 workers, local pool and Dask LocalCluster.

    PYTHONPATH=. python benchmarks/sweep.py                 # trials of ~34 s each on an idle core
    PYTHONPATH=. python benchmarks/sweep.py --size medium   # ~11 s trials
    PYTHONPATH=. python benchmarks/sweep.py --size short    # ~1 s trials (overhead dominated)

Each trial is a metaplastic run (software backend, bundled subsets) with its own seed. Printed per
executor and worker count: the sweep's wall time, the speed-up over 1 worker, the mean run time
inside the trials (the run files' start/end times) and the overhead per trial:
(wall time x workers - sum of in-run times) / trials, i.e. process start, imports, scheduling.
Targets: speed-up >= 1.8 with 2 workers on 2 cores for trials >= 30 s; overhead < 1 s per trial.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from hil.sweep import engine
from hil.sweep.executors import DaskExecutor, LocalExecutor
from hil.sweep.spec import load_sweep
from hil.sweep.summary import run_metrics
from hil.sweep.trial import run_path

SIZES = {  # (epochs per task, training images per task, hidden width)
    "short": ([1, 1], 500, 32),     # ~1 s of run per trial: the overhead dominates
    "medium": ([4, 4], 0, 256),     # ~11 s of run per trial on an idle core (one BLAS thread)
    "long": ([12, 12], 0, 256),     # ~34 s of run per trial on an idle core (one BLAS thread)
}

EXPERIMENT = """experiment = "metaplastic"
name = "bench"
seed = 0
out = "bench.h5"
[tasks]
sequence = "mnist-fmnist"
epochs = {epochs}
train_limit = {train_limit}
[dataset]
source = "bundled"
[network]
hidden = [{hidden}]
[learning]
m_star = 3.0
batch_size = 20
[device]
backend = "software"
"""

SWEEP = """[base]
file = "bench.toml"
[sweep]
seeds = [0, 1, 2, 3, 4, 5, 6, 7]
"""


def one(workdir: Path, executor_name: str, workers: int) -> tuple[float, list[float]]:
    out = workdir / f"{executor_name}-{workers}"
    plan = load_sweep(workdir / "sweep.toml", out)
    if executor_name == "local":
        executor = LocalExecutor(workers)
    else:
        executor = DaskExecutor(workers=workers)
    t0 = time.perf_counter()
    try:
        report = engine.run_sweep(plan, executor, progress=False)
    finally:
        executor.close()
    wall = time.perf_counter() - t0
    if report.failed:
        raise SystemExit(f"trials failed: {report.failed}")
    inner = [run_metrics(run_path(out, t.name))["run_wall_time_s"] for t in plan.trials]
    return wall, inner


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="long")
    ap.add_argument("--executors", nargs="+", choices=["local", "dask"], default=["local", "dask"])
    ap.add_argument("--keep", action="store_true", help="keep the run files (printed path)")
    args = ap.parse_args()
    epochs, train_limit, hidden = SIZES[args.size]
    workdir = Path(tempfile.mkdtemp(prefix="hil-sweep-bench-"))
    (workdir / "bench.toml").write_text(EXPERIMENT.format(epochs=epochs, train_limit=train_limit, hidden=hidden))
    (workdir / "sweep.toml").write_text(SWEEP)
    print(f"8 trials, size {args.size} (epochs {epochs}, train_limit {train_limit}, hidden {hidden})")
    print(f"{'executor':9s} {'workers':>7s} {'wall s':>8s} {'speed-up':>8s} {'run s/trial':>11s} {'overhead s/trial':>16s}")
    try:
        for name in args.executors:
            base = None
            for workers in (1, 2):
                wall, inner = one(workdir, name, workers)
                base = base or wall
                overhead = (wall * workers - sum(inner)) / len(inner)
                print(f"{name:9s} {workers:7d} {wall:8.1f} {base / wall:8.2f} {sum(inner) / len(inner):11.1f} {overhead:16.2f}",
                      flush=True)
    finally:
        if args.keep:
            print(f"run files in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
