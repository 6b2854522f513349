"""Sensitivity of the metaplastic headline to the device: read noise, relaxation, endurance.

    OMP_NUM_THREADS=1 python benchmarks/device_sensitivity.py --data-dir DATA_DIR

Every run is the README's headline configuration (``benchmarks/metaplastic.py``'s experiment
file: 784-2048-10, m* = 4, 5 + 5 epochs, tolerance ±15 %, programming every 10 batches, refresh
at ±30 %, per-task BatchNorm), built by that benchmark's own ``base_config``, with one condition
of the "hfo2" preset scaled through the experiment file's ``device.read_noise_x``,
``device.relaxation_x`` and ``device.endurance_x`` (validated, recorded in every run file, so the
same conditions run from a TOML file or through ``hil sweep`` too):

* ``base``: the preset as calibrated (Milo et al. spread, Esmanhotto et al. relaxation);
* ``read_noise xK``: the device read fluctuation (RTN + 1/f) times K, K in ``--factors``;
* ``relaxation xK``: every relaxation term times K;
* ``endurance N``: median endurance N SET+RESET cycles, N in ``--endurance`` (lowered until it
  binds: stuck cells appear and the accuracy falls).

For every condition, both rules (metaplastic and plain, same epochs) over ``--seeds`` seeds (by
default the benchmark's selection seeds 100-102). **Validation only**: the runs evaluate the
validation images held out of every task's training set (``tasks.test_at = "never"``); the test
sets are never evaluated. Printed: per condition, MNIST validation accuracy after the whole
sequence (retention), the last task's, the metaplastic advantage (metaplastic minus plain MNIST
retention, paired by seed), the worn-out cell fraction and the pulses per device, mean ± std over
seeds, and the wall time. Each run's result is kept beside its run file in ``--out-dir`` (as
``benchmarks/metaplastic.py`` does): an interrupted study continues where it stopped, and
``--only LABEL`` adds one condition at a time.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from drivers.sim.presets import get_preset  # noqa: E402
from hil.experiments import runner  # noqa: E402
from hil.experiments.metaplastic import MetaplasticExperiment  # noqa: E402

_spec = importlib.util.spec_from_file_location("benchmark_metaplastic", Path(__file__).with_name("metaplastic.py"))
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

TECHNOLOGY = "hfo2"

#: The headline's fixed keys (README; ``benchmarks/metaplastic.py`` selected width and m* on validation).
HEADLINE_SET = {"device.tolerance": 0.15, "device.refresh_tolerance": 0.3, "checkpoint_every_epoch": False}


def conditions(args: argparse.Namespace) -> list[tuple[str, dict[str, float]]]:
    """(label, experiment-file ``device.*`` stress keys) for every condition."""
    base_endurance = get_preset(TECHNOLOGY).physics.endurance_median
    out: list[tuple[str, dict[str, float]]] = [("base", {})]
    out += [(f"read_noise x{k:g}", {"read_noise_x": k}) for k in args.factors if k != 1]
    out += [(f"relaxation x{k:g}", {"relaxation_x": k}) for k in args.factors if k != 1]
    out += [(f"endurance {n:g}", {"endurance_x": n / base_endurance}) for n in args.endurance]
    return out


def base_config(args: argparse.Namespace) -> dict[str, Any]:
    """``benchmarks/metaplastic.py``'s experiment file with this study's arguments and ``--set`` keys."""
    ns = argparse.Namespace(sequence="mnist-fmnist", epochs=list(args.epochs), train_limit=args.train_limit,
                            test_limit=0, validation=args.validation, source=args.source, data_dir=args.data_dir,
                            hidden=args.hidden, m_star=args.m_star, lr=args.lr, batch_size=100,
                            technology=TECHNOLOGY, program_every=args.program_every)
    base = bench.base_config(ns)
    for key, value in {**HEADLINE_SET, **{k: v[0] for k, v in bench.parse_grid(args.set).items()}}.items():
        runner.set_dotted(base, key, value, MetaplasticExperiment)
    return base


def make_jobs(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One validated experiment file per (condition, rule, seed), test set never evaluated."""
    base = base_config(args)
    jobs = []
    for p, (label, stress) in enumerate(conditions(args)):
        slug = label.replace(" ", "-")
        for rule in args.rules:
            for seed in args.seeds:
                over = {"learning.rule": rule, "tasks.test_at": "never", "network.batchnorm": "per-task",
                        **{f"device.{k}": v for k, v in stress.items()}}
                config = bench.variant(base, f"sens-{slug}-{rule}-s{seed}", seed, args.out_dir, **over)
                jobs.append({"label": label, "rule": rule, "config": config})
    return jobs


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """One run (kept beside its run file, reused when rerun); its validation accuracies and wear."""
    r = bench.cached_job(job["config"])
    names = [k[4:] for k in r["summary"] if k.startswith("val.")]
    if any(k in r["summary"] for k in ("mnist", "fashion-mnist")):
        raise RuntimeError("the test set was evaluated; this study must not touch it")
    return {"label": job["label"], "rule": job["rule"], "seed": r["seed"], "first": r["summary"][f"val.{names[0]}"],
            "last": r["summary"][f"val.{names[-1]}"], "worn_fraction": r.get("worn_fraction", 0.0),
            "retired_fraction": r.get("retired_fraction", 0.0), "events_mean": r.get("events_mean", 0.0), "wall": r["wall"]}


def summarise(results: list[dict[str, Any]], labels: list[str]) -> list[str]:
    lines = [f"{'condition':18s} {'rule':11s} {'MNIST (val, after all)':>22s} {'F-MNIST (val)':>14s} "
             f"{'worn cells':>10s} {'retired':>8s} {'pulses/dev':>10s}"]
    for label in labels:
        by_rule = {}
        for rule in sorted({r["rule"] for r in results}, key=["metaplastic", "plain"].index):
            rs = [r for r in results if r["label"] == label and r["rule"] == rule]
            if not rs:
                continue
            by_rule[rule] = rs
            lines.append(f"{label:18s} {rule:11s} {bench.ms([r['first'] for r in rs]):>22s} {bench.ms([r['last'] for r in rs]):>14s} "
                         f"{100 * np.mean([r['worn_fraction'] for r in rs]):9.2f}% "
                         f"{100 * np.mean([r['retired_fraction'] for r in rs]):7.2f}% {np.mean([r['events_mean'] for r in rs]):10.1f}")
        if set(by_rule) != {"metaplastic", "plain"}:
            continue
        adv = [m["first"] - p["first"] for m, p in zip(sorted(by_rule["metaplastic"], key=lambda r: r["seed"]),
                                                       sorted(by_rule["plain"], key=lambda r: r["seed"]))]
        lines.append(f"{label:18s} {'advantage':11s} {bench.ms(adv):>22s}   (metaplastic - plain, MNIST retention, paired by seed)")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--source", default="full", choices=["full", "bundled", "auto"])
    ap.add_argument("--out-dir", type=Path, default=Path("bench_sensitivity"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102])
    ap.add_argument("--factors", type=float, nargs="+", default=[1.0, 2.0, 5.0])
    ap.add_argument("--endurance", type=float, nargs="+", default=[30.0],
                    help="median endurance values (SET+RESET cycles) to try")
    ap.add_argument("--only", nargs="+", default=None, help="run only these condition labels")
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--epochs", type=int, nargs=2, default=[5, 5])
    ap.add_argument("--train-limit", type=int, default=0, help="training images per task before the split (0: all)")
    ap.add_argument("--validation", type=float, default=5000, help="validation images per task (count, or a fraction < 1)")
    ap.add_argument("--m-star", type=float, default=4.0)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--program-every", type=int, default=10)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="any other dotted key of the experiment file, for every run")
    ap.add_argument("--rules", nargs="+", default=["metaplastic", "plain"], choices=["metaplastic", "plain"])
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    if args.validation >= 1:
        args.validation = int(args.validation)
    args.out_dir.mkdir(parents=True, exist_ok=True)

    jobs = make_jobs(args)
    labels = [label for label, _ in conditions(args)]
    if args.only:
        unknown = set(args.only) - set(labels)
        if unknown:
            raise SystemExit(f"--only: unknown conditions {sorted(unknown)}; choose from {labels}")
        labels = [lab for lab in labels if lab in args.only]
        jobs = [j for j in jobs if j["label"] in labels]
    t0 = time.perf_counter()
    if args.jobs == 1:  # in this process, one run after the other
        results = [run_one(j) for j in jobs]
    else:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(run_one, jobs))
    wall = time.perf_counter() - t0
    cfg = jobs[0]["config"]
    print(f"device sensitivity, {TECHNOLOGY} preset; 784-{args.hidden}-10, epochs {args.epochs}, "
          f"train_limit {args.train_limit or 'all'}, validation {args.validation} per task "
          f"(test sets never evaluated); m* = {args.m_star}, tolerance ±{100 * cfg['device']['tolerance']:.0f} %, "
          f"program_every {args.program_every}, refresh ±{100 * cfg['device']['refresh_tolerance']:.0f} %; "
          f"seeds {args.seeds}")
    for line in summarise(results, labels):
        print(line)
    print(f"{len(jobs)} runs, {args.jobs} jobs at a time, wall time {wall:.0f} s "
          f"(per run {np.mean([r['wall'] for r in results]):.0f} s; results kept in {args.out_dir}/*.json are reused)")


if __name__ == "__main__":
    main()
