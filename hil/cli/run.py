"""``hil run EXPERIMENT.toml``: run the experiment the file names (its ``experiment`` key) with a
progress bar, into a run file; ``hil run --resume RUN.h5`` continues an interrupted one.

Both go through :mod:`hil.experiments.runner`: validation before anything is written, a
checkpoint at the start and after every stage, arrays closed (outputs off) on every exit, and
the experiment's figures at the end.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hil.cli.common import check_run_out
from hil.provenance import DEFAULT_BLAS_THREADS, pinned_blas_threads


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run an experiment from a TOML file (or --resume a run file)")
    p.add_argument("experiment", type=Path, nargs="?", metavar="EXPERIMENT.toml")
    p.add_argument("--resume", type=Path, metavar="RUN.h5", help="continue this run from its last checkpoint")
    p.add_argument("--out", type=Path, help="run file (overrides the file's `out`)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run file")
    p.add_argument("--data-dir", type=Path, help="dataset directory (overrides [dataset] data_dir)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-figures", action="store_true", help="do not draw the PNG figures at the end")
    p.add_argument("--blas-threads", type=int, default=None, metavar="N",
                   help=f"BLAS threads of the run (default {DEFAULT_BLAS_THREADS}; --resume: the run's own); matrix products differ in "
                        "their last bits between thread counts, so the same seed gives the same bits only at "
                        "the same N, whatever OMP_NUM_THREADS/OPENBLAS_NUM_THREADS say; recorded in the file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if (args.experiment is None) == (args.resume is None):
        raise ValueError("give either EXPERIMENT.toml or --resume RUN.h5")
    if args.out is not None:
        check_run_out(args.out, True)  # the .h5 name; existence is the runner's to judge (overwrite)
    threads = args.blas_threads
    if threads is None:
        threads = recorded_blas_threads(args.resume) if args.resume is not None else DEFAULT_BLAS_THREADS
    with pinned_blas_threads(threads):
        return _run(args)


def recorded_blas_threads(path: Path) -> int:
    """The BLAS thread count a run file was written with (for an exact resume); the default
    for files that do not record it."""
    import json

    from hil.store import open_run

    with open_run(path) as reader:
        stored = json.loads(reader.attrs.get("provenance") or "{}").get("blas_threads")
    return stored if isinstance(stored, int) and not isinstance(stored, bool) else DEFAULT_BLAS_THREADS


def _run(args: argparse.Namespace) -> int:
    from hil.experiments import runner

    common = {"progress": not args.no_progress, "figures": not args.no_figures}
    if args.resume is not None:
        if args.out or args.overwrite or args.data_dir:
            raise ValueError("--out, --overwrite and --data-dir apply to a new run, not to --resume")
        outcome = runner.resume(args.resume, **common)
    else:
        overrides = {"dataset.data_dir": str(args.data_dir)} if args.data_dir is not None else {}
        outcome = runner.run_file(args.experiment, overrides=overrides, out=args.out,
                                  overwrite=True if args.overwrite else None, **common)
    print(f"run file: {outcome.path} ({'complete' if outcome.complete else 'stopped'}, "
          f"{outcome.stages_done} stages)")
    for line in outcome.experiment.describe():
        print(line)
    print(f"  wall time {outcome.wall_time:.0f} s")
    for fig in outcome.figures:
        print(f"  figure: {fig}")
    return 0
