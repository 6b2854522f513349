"""Benchmark of the SiOx continual-learning system (continual-stdp experiment).

Runs the experiment (simulated SiOx arrays, overlay twin) for every row below and ``--seeds``
seeds and prints, beside the paper's figures (Muñoz-Martín, Bianchi et al.: MNIST 99.3 %, noisy
MNIST 96 %, Fashion-MNIST 93 %; up to 50 % non-trained classes) and the issue's targets, the
validation accuracy (what the configuration was selected on), the test accuracy (evaluated once
per frozen configuration and seed), the accuracy on the non-trained classes, firings, synaptic
pulses (SET + RESET + SFA SET + SFA relaxation) and the energy of those pulses of the STDP block
(the read energy of the MVMs is in the run file, ``energy_mvm_J``), and the wall time, each as
mean ± std over the seeds.

    OMP_NUM_THREADS=1 python benchmarks/continual_stdp.py --data-dir DIR [--seeds 3] [--rows 0,4] [--quick]

``--data-dir`` holds ``mnist/`` and ``fashion-mnist/`` IDX files (the project never depends on a
fixed folder). ``--quick`` uses the bundled subsets (4000 training images, 1000 test images per
dataset). Run files go to ``--out`` (default ``benchmarks/out/continual_stdp``). Selection
protocol: the STDP block's settings (the defaults of :class:`hil.learning.stdp.STDPParams`) and
the filter epochs were chosen on the validation split the experiment holds out of the training
set; ``--rows`` runs a part of the table (CPU is scarce: one full-MNIST row is one pipeline per
seed).
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np

from hil.experiments import registry, runner

BASE = {
    "experiment": "continual-stdp", "overwrite": True,
    "dataset": {"name": "mnist", "source": "full", "validation": 0.1},
    "filters": {"kind": "joint", "untrained": 0, "bits": 4, "pool": 9, "epochs": 4},
    "stdp": {"n_neurons": 200, "sfa": True},
}

#: (label, overrides, paper figure, issue target)
ROWS = [
    ("MNIST, joint filters, N=200", {}, "99.3 %", ">= 97 %"),
    ("MNIST, joint filters, N=10", {"stdp.n_neurons": 10}, "", ""),
    ("MNIST, paper CF + FF, N=200", {"filters.kind": "paper"}, "99.3 %", ""),
    ("noisy MNIST, joint, noise-aware", {"dataset.noise": 0.2, "filters.noise_aware": 0.5}, "96 %", ">= 93 %"),
    ("Fashion-MNIST, joint", {"dataset.name": "fashion-mnist"}, "93 %", ">= 84 %"),
    ("MNIST k=5, joint", {"filters.untrained": 5}, "Fig. 10 (k = 5)", "untr >= 85 %, all >= 90 %"),
    ("MNIST k=5, joint, no SFA", {"filters.untrained": 5, "stdp.sfa": False}, "Fig. 11 (power)", ""),
    ("MNIST k=5, joint, re-trained", {"filters.untrained": 5, "retrain.enabled": True}, "Fig. 14", ""),
] + [(f"MNIST, {b} bit(s)", {"filters.bits": b}, "Fig. 5", "") for b in (1, 2, 3, 4, 6, 8)]



def config(overrides: dict, seed: int, out: Path, data_dir: str, quick: bool) -> dict:
    d = copy.deepcopy(BASE)
    d["seed"], d["name"], d["out"] = seed, out.stem, str(out)
    d["dataset"]["data_dir"] = data_dir
    if quick:
        d["dataset"]["source"] = "bundled"
    for dotted, value in overrides.items():
        table, key = dotted.split(".")
        d.setdefault(table, {})[key] = value
    return d


def measure(summary: dict[str, float], wall: float, prefix: str = "") -> list[float]:
    """One seed's row: accuracies in %, counts, energy in uJ, wall time in s."""
    pulses = summary["stdp_set_pulses"] + summary["stdp_reset_pulses"] + summary["stdp_sfa_pulses"] + \
        summary.get("stdp_sfa_decay_pulses", 0.0)
    return [100 * summary[f"{prefix}val_accuracy"], 100 * summary[f"{prefix}test_accuracy"],
            100 * summary.get(f"{prefix}test_accuracy_untrained", np.nan), summary["stdp_firings"], pulses,
            sum(summary.get(f"energy_{k}_J", np.nan) for k in ("set", "reset", "sfa")) * 1e6, wall]


def line(label: str, rows: list[list[float]], paper: str, target: str) -> str:
    a = np.asarray(rows, dtype=float)
    m, sd = a.mean(0), a.std(0)
    acc = "  ".join(f"{m[i]:6.2f} ± {sd[i]:4.2f}" if np.isfinite(m[i]) else f"{'-':>13s}" for i in range(3))
    return (f"{label:34s} {acc}  {m[3]:9.0f} {m[4]:10.0f} {m[5]:10.2f} {m[6]:7.0f} ± {sd[6]:3.0f}  "
            f"{paper:16s} {target}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default="")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="bundled subsets instead of the full datasets")
    ap.add_argument("--rows", default="", help="comma-separated row numbers to run (default all)")
    ap.add_argument("--out", default="benchmarks/out/continual_stdp")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pick = [int(r) for r in args.rows.split(",")] if args.rows else range(len(ROWS))
    print(f"data: {'bundled subsets' if args.quick else 'full datasets'}; seeds 0..{args.seeds - 1}; "
          "accuracies in %, mean ± std over seeds")
    print(f"{'configuration':34s} {'val acc':>13s}  {'test acc':>13s}  {'non-trained':>13s}  {'firings':>9s} "
          f"{'pulses':>10s} {'pulse uJ':>10s} {'wall s':>13s}  {'paper':16s} target")
    t_all = time.perf_counter()
    for r in pick:
        label, over, paper, target = ROWS[r]
        res, after = [], []
        for seed in range(args.seeds):
            cls, cfg = registry.parse_experiment(config(over, seed, out / f"row{r}_seed{seed}.h5", args.data_dir,
                                                        args.quick))
            t0 = time.perf_counter()
            s = runner.start(cls, cfg, progress=False).summary
            wall = time.perf_counter() - t0
            res.append(measure(s, wall))
            if "retrained_test_accuracy" in s:
                after.append(measure(s, wall, "retrained_"))
        print(line(label, res, paper, target), flush=True)
        if after:
            print(line("  ... after re-training", after, "Fig. 14", ""), flush=True)
    print(f"total wall time {time.perf_counter() - t_all:.0f} s")


if __name__ == "__main__":
    main()
