"""``hil run EXPERIMENT.toml``: run an experiment (the metaplastic sequential-task run) with a
progress bar, into a run file; ``hil run --resume RUN.h5`` continues an interrupted one."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run an experiment from a TOML file (or --resume a run file)")
    p.add_argument("experiment", type=Path, nargs="?", metavar="EXPERIMENT.toml")
    p.add_argument("--resume", type=Path, metavar="RUN.h5", help="continue this run from its last checkpoint")
    p.add_argument("--out", type=Path, help="run file (overrides the file's `out`)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run file")
    p.add_argument("--data-dir", type=Path, help="dataset directory (overrides [dataset] data_dir)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-figures", action="store_true", help="do not draw the PNG figures at the end")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hil.experiments.config import load_config
    from hil.experiments.metaplastic import resume_experiment, run_experiment

    if (args.experiment is None) == (args.resume is None):
        raise ValueError("give either EXPERIMENT.toml or --resume RUN.h5")
    if args.resume is not None:
        path = args.resume
        result = resume_experiment(path, progress=not args.no_progress)
    else:
        cfg = load_config(args.experiment)
        if args.data_dir is not None:
            cfg = dataclasses.replace(cfg, dataset=dataclasses.replace(cfg.dataset, data_dir=str(args.data_dir)))
        if args.overwrite:
            cfg = dataclasses.replace(cfg, overwrite=True)
        path = Path(args.out or cfg.out)
        result = run_experiment(cfg, progress=not args.no_progress, out=path)
    print(f"run file: {path}")
    for h in result.accuracy:
        accs = "  ".join(f"{k} {100 * v:5.2f} %" for k, v in h.items() if k not in ("epoch", "task"))
        print(f"  epoch {h['epoch']:2d} (task {h['task']}): {accs}")
    if result.programming:
        p = result.programming
        print(f"  programming: {p['cells_programmed']} cell programmings, {p['pulses']} pulses, "
              f"{p['failures']} outside tolerance; estimated bench time {result.bench_time / 3600:.2f} h")
    m = result.memory
    print(f"  memory: BNN 784-4096-4096-10 / this QNN = {m['bnn_over_qnn_total']:.1f}x; wall time {result.wall_time:.0f} s")
    if not args.no_figures:
        from hil.experiments.metaplastic_figures import metaplastic_report
        from hil.store import open_run

        with open_run(path) as reader:
            for fig in metaplastic_report(reader, path.resolve().parent, path.stem):
                print(f"  figure: {fig}")
    return 0
