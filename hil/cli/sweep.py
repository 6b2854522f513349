"""``hil sweep SWEEP.toml``: run a parameter / Monte-Carlo sweep into a folder of run files;
``hil sweep --status DIR`` summarises one (one row per configuration, mean ± std over seeds)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run a sweep of experiment or program runs (local pool or Dask)",
                       description="Expand a sweep file into trials (one `hil run` or `hil program` run "
                                   "each), validate all of them, and run the unfinished ones.")
    p.add_argument("sweep", type=Path, nargs="?", metavar="SWEEP.toml")
    p.add_argument("--status", type=Path, metavar="DIR", help="summarise the sweep folder DIR and exit")
    p.add_argument("--out", type=Path, metavar="DIR", help="output folder (overrides [sweep] out)")
    p.add_argument("--workers", type=int, help="worker processes (default: [sweep] workers, else the cores)")
    p.add_argument("--executor", choices=["local", "dask"], help="overrides [sweep] executor")
    p.add_argument("--scheduler", metavar="tcp://HOST:8786", help="submit to this running Dask scheduler")
    p.add_argument("--dry-run", action="store_true", help="validate and list the trials, run nothing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hil.sweep.summary import format_table, summarise

    if args.status is not None:
        if args.sweep is not None:
            raise ValueError("give either SWEEP.toml or --status DIR")
        print(format_table(summarise(args.status)))
        return 0
    if args.sweep is None:
        raise ValueError("give SWEEP.toml (or --status DIR)")
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers {args.workers} must be >= 1")
    from hil.sweep import engine
    from hil.sweep.executors import DaskExecutor, LocalExecutor
    from hil.sweep.spec import load_sweep
    from hil.sweep.trial import trial_state

    plan = load_sweep(args.sweep, args.out)  # every trial validated before anything is written
    if args.dry_run:
        for t in plan.trials:
            print(f"{trial_state(plan.out_dir, t.name):8s} {t.name}")
        print(f"{len(plan.trials)} trials into {plan.out_dir}")
        return 0
    workers = args.workers or plan.workers
    kind = "dask" if args.scheduler else (args.executor or plan.executor)
    if kind == "dask":
        executor = DaskExecutor(plan.dask, workers=workers, scheduler=args.scheduler, retries=plan.retries)
        print(f"Dask dashboard: {executor.dashboard()}")
    else:
        executor = LocalExecutor(workers)
    try:
        report = engine.run_sweep(plan, executor, progress=not args.no_progress)
    finally:
        executor.close()
    print(f"{len(report.ran)} trials run, {len(report.skipped)} already complete, {len(report.failed)} failed "
          f"({report.wall_time:.0f} s) -> {plan.out_dir}")
    for name, err in report.failed.items():
        last = err.strip().splitlines()[-1] if err.strip() else ""
        print(f"  failed {name}: {last}  (details: {name}.failed.json; rerun `hil sweep` to retry)")
    print(format_table(summarise(plan.out_dir)))
    return 1 if report.failed else 0
