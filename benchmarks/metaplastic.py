"""Benchmark: metaplastic QNN, MNIST then Fashion-MNIST, on a simulated 8-level HfO2 array.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/metaplastic.py --data-dir ../shared/datasets

Three jobs on the full datasets, two at a time (the machine has 2 cores):

* A — headline: metaplastic rule, hardware-in-the-loop on SimArray (HfO2 preset, variability on),
  784-H-10 (H = --hidden), program-and-verify of the changed cells every --program-every steps.
* B — the same with the plain (non-metaplastic) rule: the MNIST collapse.
* C — m* sweep over --sweep (default 1..5): software QNN (ideal levels, no device model),
  784-(--sweep-hidden)-10, --sweep-epochs; reduced size to fit the time budget (stated in the output).

Prints the accuracies of both tasks, the sweep, programming operations per device (paper Fig. 5b),
memory vs the BNN baseline, and the wall time. Run files go to --out-dir (``hil report`` draws them).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from hil.experiments.config import RunConfig, parse_config  # noqa: E402
from hil.experiments import runner  # noqa: E402
from hil.experiments.metaplastic import MetaplasticExperiment, RunResult  # noqa: E402


def run_experiment(cfg: RunConfig, progress: bool = False) -> RunResult:
    return runner.start(MetaplasticExperiment, cfg, progress=progress).experiment.result()


def device_config(args: argparse.Namespace, rule: str, name: str, epochs: list[int]) -> RunConfig:
    return parse_config({
        "name": name, "seed": args.seed, "out": str(args.out_dir / f"{name}.h5"), "overwrite": True,
        "checkpoint_every_epoch": True,
        "tasks": {"sequence": "mnist-fmnist", "epochs": list(epochs)},
        "dataset": {"source": "full", "data_dir": str(args.data_dir)},
        "network": {"hidden": [args.hidden], "init_scale": 0.1},
        "learning": {"rule": rule, "m_star": args.m_star, "unit": "interval", "lr": args.lr, "lr_bn": args.lr},
        "device": {"backend": "sim", "technology": "hfo2", "mapping": "offset-reference", "tolerance": 0.05,
                   "max_pulses": 20, "program_every": args.program_every, "refresh_tolerance": 0.10,
                   "log_ops": False},
    })


def job_device(cfg: RunConfig) -> dict:
    t = time.perf_counter()
    r = run_experiment(cfg, progress=False)
    ev = r.events_per_device
    rp = r.reprogrammed_per_device
    return {"name": cfg.name, "accuracy": r.accuracy, "final": r.final, "programming": r.programming,
            "events_hist": np.bincount(ev).tolist(), "reprog_hist": np.bincount(rp).tolist(),
            "events_mean": float(ev.mean()), "events_max": int(ev.max()), "reprog_mean": float(rp.mean()),
            "reprog_max": int(rp.max()), "memory": r.memory, "bench_time": r.bench_time,
            "wall": time.perf_counter() - t}


#: Unequally spaced device levels (uS) for the meta-function comparison (geometric-like I_CC steps).
UNEQUAL_LEVELS_US = [25.0, 32.0, 42.0, 56.0, 75.0, 100.0, 140.0, 200.0]


def software_config(args: argparse.Namespace, name: str, m: float, unit: str, levels_us: list[float]) -> RunConfig:
    return parse_config({
        "name": name, "seed": args.seed, "out": str(Path(args.out_dir) / f"{name}.h5"),
        "overwrite": True, "checkpoint_every_epoch": False,
        "tasks": {"sequence": "mnist-fmnist", "epochs": list(args.sweep_epochs)},
        "dataset": {"source": "full", "data_dir": str(args.data_dir)},
        "network": {"hidden": [args.sweep_hidden], "init_scale": 0.1},
        "learning": {"rule": "metaplastic", "m_star": float(m), "unit": unit, "lr": args.lr, "lr_bn": args.lr},
        "device": {"backend": "software", "levels_uS": levels_us},
    })


def job_sweep(args_dict: dict) -> dict:
    args = argparse.Namespace(**args_dict)
    out, compare = {}, {}
    t = time.perf_counter()
    for m in args.sweep:
        out[f"{m:g}"] = run_experiment(software_config(args, f"sweep-m{m:g}", m, "interval", []), progress=False).final
    if args.compare_units:
        for unit in ("interval", "weight"):
            cfg = software_config(args, f"unequal-{unit}", args.compare_m_star, unit, UNEQUAL_LEVELS_US)
            compare[unit] = run_experiment(cfg, progress=False).final
    return {"sweep": out, "compare": compare, "wall": time.perf_counter() - t}


def job_bnn(args_dict: dict) -> dict:
    """Software BNN baseline 784-4096-4096-10 (Laborieux et al. 2021), metaplastic m = 1.3, BN per task."""
    from hil.datasets import load_dataset
    from hil.learning.bnn import BNNLearner

    args = argparse.Namespace(**args_dict)
    t = time.perf_counter()
    data = [load_dataset(n, args.data_dir, "full") for n in ("mnist", "fashion-mnist")]
    rng = np.random.default_rng(args.seed)
    bnn = BNNLearner(n_tasks=2, rng=rng, m=1.3, lr=0.005)
    hist = []
    for task, ds in enumerate(data):
        bnn.start_task(task)
        x, y = ds.flat("train")
        for _ in range(args.bnn_epochs):
            order = rng.permutation(len(x))
            for i in range(0, len(x), 100):
                bnn.step(x[order[i:i + 100]], y[order[i:i + 100]], task)
            hist.append({data[k].name: bnn.accuracy(*data[k].flat("test"), k) for k in range(task + 1)})
    return {"accuracy": hist, "memory_bits": bnn.memory_bits(), "wall": time.perf_counter() - t}


def fig5b_table(hist: list[int]) -> str:
    h = np.asarray(hist, float)
    n = h.sum()
    edges = [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 10**9]
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        frac = h[lo:hi].sum() / n
        if frac > 0:
            rows.append(f"    {lo:>5d}-{min(hi - 1, len(h) - 1):<6d} {100 * frac:6.2f} %")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets")
    ap.add_argument("--out-dir", type=Path, default=Path("bench_metaplastic"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--epochs", type=int, nargs=2, default=[5, 5])
    ap.add_argument("--plain-epochs", type=int, nargs=2, default=[5, 2])
    ap.add_argument("--m-star", type=float, default=5.0)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--program-every", type=int, default=1)
    ap.add_argument("--sweep", type=float, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--sweep-hidden", type=int, default=1024)
    ap.add_argument("--sweep-epochs", type=int, nargs=2, default=[3, 3])
    ap.add_argument("--compare-units", type=int, default=1, help="1: compare the meta-function units on unequal levels")
    ap.add_argument("--compare-m-star", type=float, default=4.0)
    ap.add_argument("--bnn-epochs", type=int, default=0,
                    help="also train the software BNN baseline 784-4096-4096-10 for this many epochs per task "
                         "(off by default: ~2 min per epoch per core, outside the 30-min budget)")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cfg_a = device_config(args, "metaplastic", "meta", args.epochs)
    cfg_b = device_config(args, "plain", "plain", args.plain_epochs)
    sweep_args = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        fa = pool.submit(job_device, cfg_a)
        fb = pool.submit(job_device, cfg_b)
        fc = pool.submit(job_sweep, sweep_args)
        fd = pool.submit(job_bnn, sweep_args) if args.bnn_epochs > 0 else None
        a, b, c = fa.result(), fb.result(), fc.result()
        d = fd.result() if fd is not None else None
    wall = time.perf_counter() - t0
    (args.out_dir / "summary.json").write_text(json.dumps({"meta": a, "plain": b, "sweep": c, "wall": wall}, indent=1))

    print(f"\n== Metaplastic QNN 784-{args.hidden}-10, 8 HfO2 levels (offset reference), MNIST {args.epochs[0]} ep -> "
          f"Fashion-MNIST {args.epochs[1]} ep (plain baseline {args.plain_epochs[0]} + {args.plain_epochs[1]}), "
          f"batch 100, Adam lr {args.lr} reset per task, BatchNorm per task (Laborieux protocol) ==")
    print(f"device: SimArray hfo2 (variability, read noise, relaxation, stuck cells on); program-and-verify IGVVA "
          f"tol 5 %, <= 20 pulses, changed cells programmed every {args.program_every} steps; full re-read every epoch")
    print("\nPaper Fig. 2: test accuracy after each epoch (%)")
    for res in (a, b):
        print(f"  {res['name']}:")
        for h in res["accuracy"]:
            accs = "  ".join(f"{k}={100 * v:5.2f}" for k, v in h.items() if k not in ("epoch", "task"))
            print(f"    epoch {h['epoch']:2d} (task {h['task']})  {accs}")
    fa_, fb_ = a["final"], b["final"]
    print(f"\nAfter the sequence, metaplastic m*={args.m_star:g}: MNIST {100 * fa_['mnist']:.2f} %  "
          f"Fashion-MNIST {100 * fa_['fashion-mnist']:.2f} %   (targets >= 96 / >= 85; paper 97 / 86)")
    mn_before = max(h["mnist"] for h in b["accuracy"] if h["task"] == 0)
    print(f"Non-metaplastic (plain): MNIST {100 * mn_before:.2f} % -> {100 * fb_['mnist']:.2f} % (collapse), "
          f"Fashion-MNIST {100 * fb_['fashion-mnist']:.2f} %")
    print(f"\nm* sweep (software QNN 784-{args.sweep_hidden}-10, ideal levels, {args.sweep_epochs[0]}+{args.sweep_epochs[1]} "
          f"epochs; reduced size for the time budget):")
    for m, f in c["sweep"].items():
        print(f"  m* = {m:>4s}: MNIST {100 * f['mnist']:5.2f} %  Fashion-MNIST {100 * f['fashion-mnist']:5.2f} %")
    print("  meta-function: paper's interval-based M (reconstructed, hil.learning.metaplastic, unit='interval'); with "
          "the HfO2 levels (equally spaced, symmetric about G_ref) it coincides exactly with FINDINGS' "
          "1 - tanh^2(m |W_H| / Q_max) (unit='weight').")
    if c["compare"]:
        print(f"  on unequally spaced levels {UNEQUAL_LEVELS_US} uS (same network/epochs, m* = {args.compare_m_star:g}):")
        for unit, f in c["compare"].items():
            label = "paper, interval units" if unit == "interval" else "FINDINGS, |W_H|/Q_max"
            print(f"    {label:24s}: MNIST {100 * f['mnist']:5.2f} %  Fashion-MNIST {100 * f['fashion-mnist']:5.2f} %")
    print("\nPaper Fig. 5b: devices vs programming operations (metaplastic run, all layers)")
    print(f"  program-and-verify sessions per device after initial programming: mean {a['reprog_mean']:.2f}, max {a['reprog_max']}")
    print(fig5b_table(a["reprog_hist"]))
    print(f"  programming pulses per device (forming + SET + RESET, incl. initial programming): mean {a['events_mean']:.1f}, max {a['events_max']}")
    print(fig5b_table(a["events_hist"]))
    print(f"  counters: {a['programming']}; estimated bench time of the device operations {a['bench_time'] / 3600:.1f} h")
    if d is not None:
        print(f"\nSoftware BNN baseline 784-4096-4096-10 (Laborieux et al. 2021, m = 1.3, BN per task), "
              f"{args.bnn_epochs} epochs per task, {d['wall'] / 60:.1f} min:")
        for k, h in enumerate(d["accuracy"]):
            print(f"    epoch {k + 1:2d}  " + "  ".join(f"{n}={100 * v:5.2f}" for n, v in h.items()))
    mem = a["memory"]
    print(f"\nMemory: QNN {mem['qnn_weights']} weights: {mem['qnn_digital_bits'] / 8e6:.1f} MB W_H (float32) + "
          f"{mem['qnn_analog_bits'] / 8e6:.2f} MB-equivalent in devices (3 bit each); BNN 784-4096-4096-10 "
          f"{mem['bnn_weights']} weights x (32 + 1) bit = {mem['bnn_bits'] / 8e6:.1f} MB -> BNN / QNN = "
          f"{mem['bnn_over_qnn_total']:.1f}x (paper: 15x)")
    from contextlib import ExitStack

    from hil.experiments.metaplastic_figures import fig2_accuracy, fig2_sweep, fig5b_programming
    from hil.store import open_run

    with ExitStack() as stack:
        ra = stack.enter_context(open_run(args.out_dir / "meta.h5"))
        rb = stack.enter_context(open_run(args.out_dir / "plain.h5"))
        sweep = [stack.enter_context(open_run(args.out_dir / f"sweep-m{m:g}.h5")) for m in args.sweep]
        figs = [fig2_accuracy(args.out_dir / "fig2_accuracy.png", [ra, rb]),
                fig2_sweep(args.out_dir / "fig2_mstar_sweep.png", sweep),
                fig5b_programming(args.out_dir / "fig5b_programming.png", ra)]
    print("\nFigures: " + ", ".join(str(f) for f in figs))
    print(f"\nWall time: {wall / 60:.1f} min on {os.cpu_count()} cores (jobs: meta {a['wall'] / 60:.1f} min, "
          f"plain {b['wall'] / 60:.1f} min, sweep {c['wall'] / 60:.1f} min; {args.jobs} at a time)")


if __name__ == "__main__":
    main()
