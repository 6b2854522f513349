"""Benchmark of the SiOx continual-learning system (continual-stdp experiment).

Runs the experiment (simulated SiOx arrays, overlay twin) for every row below and ``--seeds``
seeds and prints, beside the paper's figures (Muñoz-Martín, Bianchi et al.: MNIST 99.3 %, noisy
MNIST 96 %, Fashion-MNIST 93 %; up to 50 % non-trained classes) and the issue's targets, the
validation accuracy (what the configuration was selected on), the test accuracy (evaluated once
per frozen configuration and seed), the accuracy on the non-trained classes, firings, synaptic
pulses (SET + RESET + SFA SET + SFA relaxation) and the energy of those pulses of the STDP block
(the read energy of the MVMs is in the run file, ``energy_mvm_J``), and the wall time, each as
mean ± std over the seeds.

    OMP_NUM_THREADS=1 python benchmarks/continual_stdp.py --data-dir DIR [--seeds 3] [--rows 0,4] [--quick] [--jobs 2]

``--data-dir`` holds ``mnist/`` and ``fashion-mnist/`` IDX files (the project never depends on a
fixed folder). ``--quick`` uses the bundled subsets (4000 training images, 1000 test images per
dataset). Run files go to ``--out`` (default ``benchmarks/out/continual_stdp``). Selection
protocol: the STDP block's settings (the defaults of :class:`hil.learning.stdp.STDPParams`) and
the filter epochs were chosen on the validation split the experiment holds out of the training
set; ``--rows`` runs a part of the table (CPU is scarce: one full-MNIST row is one pipeline per
seed; rows 14-16, earlier k = 5 variants, run only when named). Rows whose configurations are the
same (the 4-bit row is the first row) run once, and the k = 5 row is read from the re-training
row's pipeline (its results before re-training; its wall time is not its own). The
pipelines run ``--jobs`` at a time in worker processes (``--jobs 1``: in this process), and each
one's result is kept beside its run file (``.json``, with the configuration it ran), so an
interrupted benchmark continues where it stopped and a finished one prints its table again at
once.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from hil.experiments import registry, runner

_spec = importlib.util.spec_from_file_location("benchmark_metaplastic", Path(__file__).with_name("metaplastic.py"))
_meta = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_meta)

#: The pipeline of row 0. Its STDP block: the vote of 5 with sfa_gain 32; vth0 -8 and the RESET to
#: -0.9 V selected after it (validation split of seed 0, hardware maps of MNIST, noisy MNIST and
#: Fashion-MNIST, vote of 5, against vth0 -4 and -1.0 V): 96.60 against 96.30 %, 94.08 against
#: 93.43 % and 82.53 against 80.52 % (Fashion-MNIST's earlier single winner; 79.73 % with its vote
#: of 5). A lower threshold lets more images fire (Fashion-MNIST: 96 against 90 %), the weaker
#: depression keeps more of a neuron's earlier patterns.
BASE = {
    "experiment": "continual-stdp", "overwrite": True,
    "dataset": {"name": "mnist", "source": "full", "validation": 0.1},
    "filters": {"kind": "joint", "untrained": 0, "bits": 4, "pool": 9, "epochs": 4},
    "stdp": {"n_neurons": 200, "sfa": True, "sfa_gain": 32.0, "vth0": -8.0, "v_stop_ltd": -0.9, "readout": "vote",
             "voters": 5},
}

#: The STDP settings before the vote readout was selected (the single winner, sfa_gain 16, vth0 -4,
#: RESET to -1.0 V): kept for N = 10 (a vote of 5 among 10 neurons, one per class, is no vote) and for
#: the earlier k = 5 rows.
WINNER16 = {"stdp.sfa_gain": 16.0, "stdp.readout": "winner", "stdp.vth0": -4.0, "stdp.v_stop_ltd": -1.0}

#: k = 5 non-trained classes, selected on the validation split (seed 0, full MNIST; our choices, not
#: the paper's): a local 4x4 max pool (2x2 windows per filter, 256 bits) and every V_REF at the median
#: window maximum of the trained classes' images (``filters.vref = "median"``) give bits that carry
#: the untrained classes; the STDP block's thresholds are rescaled to the 256 input lines (the
#: bipolar potentials are 4x those of 64 lines) and the depression is made weaker; the readout is
#: the vote of BASE.
K5 = {"filters.untrained": 5, "filters.pool": 4, "filters.vref": "median",
      "stdp.vth0": -32.0, "stdp.sfa_gain": 64.0, "stdp.v_stop_ltd": -0.9}
#: The STDP block for the paper's CF + FF map, selected on the validation split (seed 0, full MNIST,
#: hardware map; our choices): that map's bits are noisier within a class (nearest class mean 73 %
#: against 97 % for the joint filters), so fewer images reach the thresholds of BASE (firing rate
#: 0.73) and a neuron's weights follow its last few patterns. A lower threshold, a weaker SFA, a
#: smaller step of both the potentiation (1.2 V SET) and the depression (RESET to -0.9 V), and a
#: vote of 10: 72.4 % against 67.7 % with BASE's STDP block (63.8 % with its earlier vth0 -4, -1.0 V).
PAPER = {"filters.kind": "paper", "stdp.vth0": -8.0, "stdp.sfa_gain": 16.0, "stdp.v_pulse_ltp": 1.2,
         "stdp.v_stop_ltd": -0.9, "stdp.voters": 10}
#: The paper figure and the issue's targets of the k = 5 rows.
K5_FIG, K5_TARGET = "Fig. 10 (k = 5)", "untr >= 85 %, all >= 90 %"

#: (label, overrides, paper figure, issue target)
ROWS = [
    ("MNIST, joint filters, N=200", {}, "99.3 %", ">= 97 %"),
    ("MNIST, joint filters, N=10", {"stdp.n_neurons": 10, **WINNER16}, "", ""),
    ("MNIST, paper CF + FF, N=200", PAPER, "99.3 %", ""),
    ("noisy MNIST, joint, noise-aware", {"dataset.noise": 0.2, "filters.noise_aware": 0.5}, "96 %", ">= 93 %"),
    ("Fashion-MNIST, joint", {"dataset.name": "fashion-mnist"}, "93 %", ">= 84 %"),
    ("MNIST k=5, 2x2 pool, median V_REF", K5, K5_FIG, K5_TARGET),
    ("k=5, 2x2 pool, median, no SFA", {**K5, "stdp.sfa": False}, "Fig. 11 (power)", ""),
    ("k=5, 2x2 pool, median, re-trained", {**K5, "retrain.enabled": True}, "Fig. 14", ""),
] + [(f"MNIST, {b} bit(s)", {"filters.bits": b}, "Fig. 5", "") for b in (1, 2, 3, 4, 6, 8)] + [
    ("k=5, 2x2 pool, trained V_REF, 64-line STDP", {"filters.untrained": 5, "filters.pool": 4, **WINNER16},
     K5_FIG, K5_TARGET),
    ("MNIST k=5, joint, global pool", {"filters.untrained": 5, **WINNER16}, K5_FIG, K5_TARGET),
    ("k=5, 2x2 pool, measured-median V_REF", {**K5, "filters.vref": "measured-median", "stdp.readout": "winner"},
     K5_FIG, K5_TARGET),
]
#: The rows the issue asks for (run by default); rows 14-16 are earlier k = 5 variants, run with ``--rows``.
DEFAULT_ROWS = list(range(14))



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
    wall = f"{m[6]:7.0f} ± {sd[6]:3.0f}" if np.isfinite(m[6]) else f"{'(shared run)':>13s}"
    return (f"{label:34s} {acc}  {m[3]:9.0f} {m[4]:10.0f} {m[5]:10.2f} {wall}  "
            f"{paper:16s} {target}")


def same_run(config: dict[str, Any]) -> str:
    """The configuration without its file names: equal for rows that run the same pipeline."""
    return json.dumps({k: v for k, v in config.items() if k not in ("name", "out")}, sort_keys=True)


def retrains(config: dict[str, Any]) -> bool:
    """Whether the pipeline of ``config`` ends with the re-training stage."""
    return bool(config.get("retrain", {}).get("enabled"))


def without_retrain(config: dict[str, Any]) -> str:
    """:func:`same_run` of the configuration with re-training off: a run with re-training holds,
    before its last stage, exactly the run without it (same stages, same seeds, same results)."""
    d = copy.deepcopy(config)
    d.get("retrain", {}).pop("enabled", None)
    if not d.get("retrain", True):
        del d["retrain"]
    return same_run(d)


def plan(picked: list[int], seeds: int, out: Path, data_dir: str, quick: bool) -> tuple[list[dict], dict[int, list[int]]]:
    """(the distinct pipelines to run, for every row the indices of its seeds' pipelines).

    Rows with the same configuration share one pipeline; a row without re-training whose
    configuration is another picked row's with re-training on is read from that row's pipeline
    (the results before re-training, which the summary keeps apart from the ``retrained_`` ones).
    """
    cfgs = {(r, seed): config(ROWS[r][1], seed, out / f"row{r}_seed{seed}.h5", data_dir, quick)
            for r in picked for seed in range(seeds)}
    for cfg in cfgs.values():
        registry.parse_experiment(cfg)  # every pipeline validated before any runs
    retrained = {without_retrain(c): c for c in cfgs.values() if retrains(c)}
    runs: list[dict] = []
    index: dict[str, int] = {}
    rows: dict[int, list[int]] = {r: [] for r in picked}
    for (r, _), cfg in cfgs.items():
        if not retrains(cfg):
            cfg = retrained.get(without_retrain(cfg), cfg)
        key = same_run(cfg)
        if key not in index:
            index[key] = len(runs)
            runs.append(cfg)
        rows[r].append(index[key])
    return runs, rows


def longest_first(runs: list[dict]) -> list[int]:
    """Indices of ``runs`` in the order to submit them: the longest pipelines first (re-training, then
    more bits per weight: more cells to program and read), so that no core idles at the end waiting
    for one long pipeline (largest-processing-time-first scheduling). Ties keep the plan's order."""
    def cost(i: int) -> tuple[int, int]:
        return int(retrains(runs[i])), int(runs[i].get("filters", {}).get("bits", 4))
    return sorted(range(len(runs)), key=cost, reverse=True)


def job(cfg: dict[str, Any]) -> dict[str, Any]:
    """One pipeline in a worker: its summary and wall time (s)."""
    t0 = time.perf_counter()
    cls, parsed = registry.parse_experiment(cfg)
    summary = runner.start(cls, parsed, progress=False).summary
    return {"summary": summary, "wall": time.perf_counter() - t0}


def kept_job(cfg: dict[str, Any]) -> dict[str, Any]:
    """:func:`job`, its result kept beside the run file (``<out>.json``, with the configuration it ran)."""
    return _meta._kept(Path(cfg["out"]).with_suffix(".json"), cfg, job)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default="")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="bundled subsets instead of the full datasets")
    ap.add_argument("--rows", default="", help="comma-separated row numbers to run (default: rows 0-13, the issue's table)")
    ap.add_argument("--jobs", type=int, default=2, help="pipelines at a time (1: in this process)")
    ap.add_argument("--out", default="benchmarks/out/continual_stdp")
    args = ap.parse_args()
    if args.jobs < 1 or args.seeds < 1:
        ap.error(f"--jobs and --seeds must be >= 1 (got {args.jobs}, {args.seeds})")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    picked = [int(r) for r in args.rows.split(",")] if args.rows else DEFAULT_ROWS
    runs, rows = plan(picked, args.seeds, out, args.data_dir, args.quick)
    print(f"data: {'bundled subsets' if args.quick else 'full datasets'}; seeds 0..{args.seeds - 1}; "
          f"{len(runs)} pipelines, {args.jobs} at a time on {os.cpu_count()} cores; accuracies in %, mean ± std over seeds")
    print(f"{'configuration':34s} {'val acc':>13s}  {'test acc':>13s}  {'non-trained':>13s}  {'firings':>9s} "
          f"{'pulses':>10s} {'pulse uJ':>10s} {'wall s':>13s}  {'paper':16s} target")
    t_all = time.perf_counter()
    with (_meta.InlineExecutor() if args.jobs == 1 else ProcessPoolExecutor(max_workers=args.jobs)) as pool:
        futures: list[Any] = [None] * len(runs)
        for i in longest_first(runs):
            futures[i] = pool.submit(kept_job, runs[i])
        for r in picked:
            label, _, paper, target = ROWS[r]
            done = [futures[i].result() for i in rows[r]]
            res = [measure(d["summary"], d["wall"]) for d in done]
            own = bool(ROWS[r][1].get("retrain.enabled"))
            if not own and any(retrains(runs[i]) for i in rows[r]):
                for x in res:  # read from a pipeline that also re-trained: its wall time is that row's
                    x[-1] = np.nan
            print(line(label, res, paper, target), flush=True)
            if own:
                after = [measure(d["summary"], d["wall"], "retrained_") for d in done]
                print(line("  ... after re-training", after, "Fig. 14", ""), flush=True)
    print(f"total wall time {time.perf_counter() - t_all:.0f} s ({len(runs)} pipelines, {args.jobs} at a time)")


if __name__ == "__main__":
    main()
