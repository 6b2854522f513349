"""Benchmark of the SiOx continual-learning system (continual-stdp experiment) on the full datasets.

Runs the experiment (simulated SiOx arrays, overlay twin) for every configuration below and
``--seeds`` seeds, and prints mean ± std test accuracy with wall time beside the paper's figures
(Muñoz-Martín, Bianchi et al.: MNIST 99.3 %, noisy MNIST 96 %, Fashion-MNIST 93 %; up to 50 %
non-trained classes). Selection protocol: every knob of the configurations was chosen on the
validation split the experiment holds out of the training set (``val_*`` metrics); the test
set is evaluated once per configuration and seed.

    OMP_NUM_THREADS=1 python benchmarks/continual_stdp.py --data-dir /path/to/datasets [--seeds 3] [--quick]

``--data-dir`` holds ``mnist/`` and ``fashion-mnist/`` IDX files (the project never depends on a
fixed folder). ``--quick`` uses the bundled subsets (a smoke run of the table, not a result).
Run files go to ``--out`` (default ``benchmarks/out/continual_stdp``).
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

#: (label, overrides, paper figure text)
ROWS = [
    ("MNIST, joint filters", {}, "99.3 % (CF + FF)"),
    ("MNIST, paper CF + FF", {"filters.kind": "paper"}, "99.3 %"),
    ("noisy MNIST, joint, noise-aware", {"dataset.noise": 0.2, "filters.noise_aware": 0.5}, "96 %"),
    ("Fashion-MNIST, joint", {"dataset.name": "fashion-mnist"}, "93 %"),
    ("MNIST k=5, joint", {"filters.untrained": 5}, "Fig. 10 (k = 5)"),
    ("MNIST k=5, joint, no SFA", {"filters.untrained": 5, "stdp.sfa": False}, "Fig. 11 (power)"),
    ("MNIST k=5, joint, re-trained", {"filters.untrained": 5, "retrain.enabled": True}, "Fig. 14"),
] + [(f"MNIST, {b} bit(s)", {"filters.bits": b}, "Fig. 5") for b in (1, 2, 3, 4, 6, 8)]


def config(overrides: dict, seed: int, out: Path, data_dir: str, quick: bool) -> dict:
    d = copy.deepcopy(BASE)
    d["seed"], d["name"], d["out"] = seed, out.stem, str(out)
    d["dataset"]["data_dir"] = data_dir
    if quick:
        d["dataset"]["source"] = "bundled"
        d["filters"]["epochs"] = 2
        d["stdp"]["n_neurons"] = 100
    for dotted, value in overrides.items():
        table, key = dotted.split(".")
        d.setdefault(table, {})[key] = value
    return d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default="")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rows", default="", help="comma-separated row numbers to run (default all)")
    ap.add_argument("--out", default="benchmarks/out/continual_stdp")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pick = [int(r) for r in args.rows.split(",")] if args.rows else range(len(ROWS))
    print(f"{'configuration':38s} {'test acc %':>14s} {'non-trained %':>14s} {'firings':>9s} "
          f"{'pulses':>10s} {'energy uJ':>10s} {'wall s':>8s}  paper")
    t_all = time.perf_counter()
    for r in pick:
        label, over, paper = ROWS[r]
        res = []
        for seed in range(args.seeds):
            cls, cfg = registry.parse_experiment(config(over, seed, out / f"row{r}_seed{seed}.h5", args.data_dir, args.quick))
            t0 = time.perf_counter()
            o = runner.start(cls, cfg, progress=False)
            s = o.summary
            key = "retrained_test_accuracy" if "retrained_test_accuracy" in s else "test_accuracy"
            unt = "retrained_test_accuracy_untrained" if key.startswith("retrained") else "test_accuracy_untrained"
            res.append((s[key] * 100, s.get(unt, np.nan) * 100, s["stdp_firings"],
                        s["stdp_set_pulses"] + s["stdp_reset_pulses"] + s["stdp_sfa_pulses"], s["energy_J"] * 1e6,
                        time.perf_counter() - t0))
        a = np.asarray(res)
        m, sd = a.mean(0), a.std(0)
        print(f"{label:38s} {m[0]:6.2f} ± {sd[0]:4.2f} {m[1]:6.2f} ± {sd[1]:4.2f} {m[2]:9.0f} {m[3]:10.0f} "
              f"{m[4]:10.2f} {m[5]:8.1f}  {paper}", flush=True)
    print(f"total wall time {time.perf_counter() - t_all:.0f} s, seeds {args.seeds}")


if __name__ == "__main__":
    main()
