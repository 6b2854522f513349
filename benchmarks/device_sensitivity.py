"""Sensitivity of the metaplastic experiment to the device: read noise, relaxation, endurance.

    OMP_NUM_THREADS=1 python benchmarks/device_sensitivity.py --data-dir DATA_DIR

Conditions (each on the harsh "hfo2" preset, scaled with :func:`drivers.sim.presets.stressed`):

* ``base``: the preset as calibrated (Milo et al. spread, Esmanhotto et al. relaxation);
* ``read_noise xK``: the device read fluctuation (RTN + 1/f) times K, K in ``--factors``;
* ``relaxation xK``: every relaxation term times K;
* ``endurance N``: median endurance N SET+RESET cycles, N in ``--endurance`` (lowered until it
  binds: stuck cells appear and the accuracy falls).

For every condition, both rules (metaplastic and plain, same epochs) over ``--seeds`` seeds.
**Validation only**: each task's training set is split (seeded, ``tasks.validation``) into a
training part and a held-out validation part (``--val-fraction``); the runs evaluate the
validation part only (``tasks.test_at = "never"``): the test sets are never evaluated. Printed:
per condition, MNIST accuracy after the whole sequence (retention), the last task's accuracy,
the metaplastic advantage (metaplastic minus plain MNIST retention), stuck-cell fraction,
mean ± std over seeds, and the wall time.

The factors are the experiment file's ``device.read_noise_x``, ``device.relaxation_x`` and
``device.endurance_x`` (validated, recorded in every run file), so the same conditions run from a
TOML file or through ``hil sweep`` too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from drivers.sim.presets import get_preset  # noqa: E402
from hil.experiments.config import parse_config  # noqa: E402
from hil.experiments.metaplastic import MetaplasticExperiment  # noqa: E402
from hil.experiments.runner import start  # noqa: E402

TECHNOLOGY = "hfo2"


def conditions(args: argparse.Namespace) -> list[tuple[str, dict]]:
    """(label, stressed() keyword arguments) for every condition."""
    base_endurance = get_preset(TECHNOLOGY).physics.endurance_median
    out = [("base", {})]
    out += [(f"read_noise x{k:g}", {"read_noise_x": k}) for k in args.factors if k != 1]
    out += [(f"relaxation x{k:g}", {"relaxation_x": k}) for k in args.factors if k != 1]
    out += [(f"endurance {n:g}", {"endurance_x": n / base_endurance}) for n in args.endurance]
    return out


def run_one(job: dict) -> dict:
    """One (condition, rule, seed) run; returns its validation accuracies and device counters.

    The stress factors are the experiment file's ``device.read_noise_x`` / ``relaxation_x`` /
    ``endurance_x`` (recorded in the run file's configuration)."""
    t0 = time.perf_counter()
    cfg = parse_config(job["config"])
    with tempfile.TemporaryDirectory() as tmp:
        outcome = start(MetaplasticExperiment, cfg, out=Path(tmp) / "run.h5", progress=False)
    exp = outcome.experiment
    r = exp.result()
    models = [a.model for a in exp.device.arrays]
    n_cells = sum(m.stuck.size for m in models)
    worn = sum(int(np.count_nonzero((m.stuck != 0) & (m.n_set + m.n_reset >= m.endurance))) for m in models)
    names = cfg.task_names
    if r.final:
        raise RuntimeError(f"the test set was evaluated ({sorted(r.final)}); this study must not touch it")
    return {"label": job["label"], "rule": cfg.learning.rule, "seed": cfg.seed,
            "first": r.final_val[names[0]], "last": r.final_val[names[-1]],
            "worn_fraction": worn / n_cells, "events_mean": float(r.events_per_device.mean()),
            "events_max": int(r.events_per_device.max()), "wall": time.perf_counter() - t0}


def make_jobs(args: argparse.Namespace) -> list[dict]:
    jobs = []
    for label, stress in conditions(args):
        for rule in args.rules:
            for seed in args.seeds:
                config = {
                    "name": f"sens-{label}-{rule}-{seed}", "seed": seed, "out": "unused.h5", "overwrite": True,
                    "checkpoint_every_epoch": False,
                    "tasks": {"sequence": "mnist-fmnist", "epochs": list(args.epochs), "train_limit": args.train_limit,
                              "validation": args.val_fraction, "test_at": "never"},
                    "dataset": {"source": args.source, "data_dir": str(args.data_dir or "")},
                    "network": {"hidden": [args.hidden], "init_scale": 0.1},
                    "learning": {"rule": rule, "m_star": args.m_star, "unit": "interval", "lr": args.lr,
                                 "lr_bn": args.lr},
                    "device": {"backend": "sim", "technology": TECHNOLOGY, "mapping": "offset-reference",
                               "tolerance": args.tolerance, "max_pulses": 20, "program_every": args.program_every,
                               "refresh_tolerance": args.refresh_tolerance, "log_ops": False, **{f"{k}": v for k, v in stress.items()}},
                }
                jobs.append({"label": label, "stress": stress, "config": config})
    return jobs


def _ms(values: list[float]) -> str:
    v = 100 * np.asarray(values, dtype=float)
    return f"{v.mean():5.2f} ± {v.std(ddof=1) if v.size > 1 else 0.0:4.2f}"


def summarise(results: list[dict], labels: list[str]) -> list[str]:
    lines = [f"{'condition':18s} {'rule':11s} {'MNIST (val, after all)':>22s} {'F-MNIST (val)':>14s} "
             f"{'worn cells':>10s} {'events/dev':>10s}"]
    for label in labels:
        by_rule = {}
        for rule in sorted({r["rule"] for r in results}, key=["metaplastic", "plain"].index):
            rs = [r for r in results if r["label"] == label and r["rule"] == rule]
            by_rule[rule] = rs
            lines.append(f"{label:18s} {rule:11s} {_ms([r['first'] for r in rs]):>22s} {_ms([r['last'] for r in rs]):>14s} "
                         f"{100 * np.mean([r['worn_fraction'] for r in rs]):9.2f}% {np.mean([r['events_mean'] for r in rs]):10.1f}")
        if set(by_rule) != {"metaplastic", "plain"}:
            continue
        adv = [m["first"] - p["first"] for m, p in zip(sorted(by_rule["metaplastic"], key=lambda r: r["seed"]),
                                                       sorted(by_rule["plain"], key=lambda r: r["seed"]))]
        lines.append(f"{label:18s} {'advantage':11s} {_ms(adv):>22s}   (metaplastic - plain, MNIST retention, paired by seed)")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--source", default="auto", help="dataset source: auto, full or bundled")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--factors", type=float, nargs="+", default=[1.0, 2.0, 5.0])
    ap.add_argument("--endurance", type=float, nargs="+", default=[1e3, 100.0, 30.0, 10.0],
                    help="median endurance values (SET+RESET cycles) to try")
    ap.add_argument("--only", nargs="+", default=None, help="run only these condition labels")
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--epochs", type=int, nargs=2, default=[5, 5])
    ap.add_argument("--train-limit", type=int, default=0, help="training images per task before the split (0: all)")
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--m-star", type=float, default=4.0)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--tolerance", type=float, default=0.05)
    ap.add_argument("--program-every", type=int, default=1)
    ap.add_argument("--refresh-tolerance", type=float, default=0.10)
    ap.add_argument("--rules", nargs="+", default=["metaplastic", "plain"], choices=["metaplastic", "plain"])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="write the per-run results as JSON")
    args = ap.parse_args()

    jobs = make_jobs(args)
    labels = [label for label, _ in conditions(args)]
    if args.only:
        unknown = set(args.only) - set(labels)
        if unknown:
            raise SystemExit(f"--only: unknown conditions {sorted(unknown)}; choose from {labels}")
        labels = [l for l in labels if l in args.only]
        jobs = [j for j in jobs if j["label"] in labels]
    t0 = time.perf_counter()
    if args.workers == 1:  # in this process, one run after the other
        results = [run_one(j) for j in jobs]
    else:
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            results = list(pool.map(run_one, jobs))
    wall = time.perf_counter() - t0
    print(f"device sensitivity, {TECHNOLOGY} preset; 784-{args.hidden}-10, epochs {args.epochs}, "
          f"train_limit {args.train_limit or 'all'}, validation {100 * args.val_fraction:.0f} % of each training set "
          f"(test sets never evaluated); m* = {args.m_star}, tolerance ±{100 * args.tolerance:.0f} %, "
          f"program_every {args.program_every}, refresh ±{100 * args.refresh_tolerance:.0f} %; seeds {args.seeds}")
    for line in summarise(results, labels):
        print(line)
    print(f"{len(jobs)} runs, {args.workers} workers, wall time {wall:.0f} s "
          f"(per run {np.mean([r['wall'] for r in results]):.0f} s)")
    if args.out:
        args.out.write_text(json.dumps({"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                                        "results": results, "wall": wall}, indent=1))


if __name__ == "__main__":
    main()
