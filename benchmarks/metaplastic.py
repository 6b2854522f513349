"""Benchmark: metaplastic QNN on a simulated HfO2 array, under the selection protocol.

    OMP_NUM_THREADS=1 python benchmarks/metaplastic.py --data-dir DATA_DIR \\
        --grid learning.m_star=2,3,4,5,6 --grid learning.lr=0.005,0.01

Protocol (every number it prints follows it):

1. **Selection.** Every point of the grid (``--grid KEY=V1,V2``: any dotted key of the experiment
   file, e.g. ``learning.m_star``, ``learning.lr``, ``device.program_every``,
   ``device.refresh_tolerance``, ``network.hidden``) runs over ``--selection-seeds`` seeds
   (>= 3) with the test set untouched (``tasks.test_at = "never"``). The score is the mean over
   tasks of the validation accuracy after the whole sequence (validation = ``--validation``
   images held out of every task's training set, seeded), averaged over the seeds. Selection
   runs are the metaplastic device run with per-task BatchNorm (the headline configuration).
2. **Frozen configuration.** The best point, unchanged, over ``--seeds`` further seeds (>= 5,
   disjoint from the selection seeds), for both BatchNorm protocols (per task: the task identity
   is given at test time, as Laborieux et al. 2021; shared: it is not) and three runs with
   identical epochs: the metaplastic device run, the plain-rule device run, and the software QNN
   (same network and rule, ideal quantised levels, no device). The test set is evaluated at the
   end of every task (MNIST before and after Fashion-MNIST training).
3. Mean ± standard deviation over the seeds, the wall time of every phase, programming sessions
   per device by kind (Fig. 5b: level changes, retries, drift refreshes; plain vs metaplastic),
   and the memory comparison beside the paper's 15x.

``--set KEY=VALUE`` fixes any dotted key for every run (reported as "not selected");
``--protocols`` restricts the frozen runs to one BatchNorm protocol. Runs go one after the other
in this process with ``--jobs 1``, else on a local process pool; run files go to ``--out-dir``
(``hil report`` draws them), each with its result beside it (``<run>.json``, with the
configuration it ran): rerunning the same command reuses finished runs, so an interrupted
benchmark continues, and ``--protocols shared`` afterwards adds the shared-BN rows without
rerunning the selection. ``--source bundled`` with a small ``--hidden`` and few ``--epochs``
checks the script in minutes; the numbers are then not the paper's setting.

The headline of the README was made with (validation selection of the width and m*, the rest
fixed; 5 + 5 epochs instead of the paper's 50 + 50):

    OMP_NUM_THREADS=1 python benchmarks/metaplastic.py --data-dir DATA_DIR --epochs 5 5 --program-every 10 \\
        --jobs 2 --grid network.hidden=[1024],[2048] --grid learning.m_star=2,3,4,5,6 \\
        --set device.tolerance=0.15 --set device.refresh_tolerance=0.3 --set checkpoint_every_epoch=false \\
        --curve-epochs 20 20
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from hil.experiments import registry, runner  # noqa: E402
from hil.experiments.metaplastic import MetaplasticExperiment, memory_lines  # noqa: E402

#: The runs of the frozen configuration: the headline, the plain-rule baseline, the software QNN.
KINDS = {"metaplastic device": {}, "plain device": {"learning.rule": "plain"},
         "software QNN": {"device.backend": "software"}}

#: The paper's numbers (D'Agostino et al., 2023): hardware-in-the-loop, MNIST then Fashion-MNIST.
PAPER = {"mnist": 97.0, "fashion-mnist": 86.0}


def base_config(args: argparse.Namespace) -> dict[str, Any]:
    """The experiment file every run starts from (the grid and the job override keys of it)."""
    tasks: dict[str, Any] = {"sequence": args.sequence, "epochs": list(args.epochs),
                             "train_limit": args.train_limit, "test_limit": args.test_limit,
                             "validation": args.validation}
    if args.sequence == "pmnist":
        tasks["n_tasks"] = len(args.epochs)
    return {
        "experiment": "metaplastic", "name": "bench", "seed": 0, "out": "x.h5", "overwrite": True,
        "checkpoint_every_epoch": True,
        "tasks": tasks,
        "dataset": {"source": args.source, "data_dir": str(args.data_dir) if args.data_dir else ""},
        "network": {"hidden": [args.hidden], "init_scale": 0.1, "batchnorm": "per-task"},
        "learning": {"rule": "metaplastic", "m_star": args.m_star, "unit": "interval", "lr": args.lr,
                     "lr_bn": args.lr, "batch_size": args.batch_size},
        "device": {"backend": "sim", "technology": args.technology, "mapping": "offset-reference", "tolerance": 0.05,
                   "max_pulses": 20, "program_every": args.program_every, "refresh_tolerance": 0.10, "log_ops": False},
    }


def variant(base: dict[str, Any], name: str, seed: int, out_dir: Path, **dotted: Any) -> dict[str, Any]:
    """A copy of ``base`` with ``dotted`` keys set (validated against the schema), named and seeded."""
    data = json.loads(json.dumps(base))
    for key, value in {"name": name, "seed": seed, "out": str(out_dir / f"{name}.h5"), **dotted}.items():
        runner.set_dotted(data, key, value, MetaplasticExperiment)
    registry.parse_experiment(data)  # every trial validated before any runs
    return data


def job(data: dict[str, Any]) -> dict[str, Any]:
    """One run in a worker process: its summary, test history and programming counters."""
    t0 = time.perf_counter()
    cls, cfg = registry.parse_experiment(data)
    out = runner.start(cls, cfg, progress=False)
    r = out.experiment.result()
    res: dict[str, Any] = {"name": cfg.name, "seed": cfg.seed, "summary": out.summary, "history": r.accuracy,
                           "programming": r.programming, "memory": r.memory, "bench_time": r.bench_time,
                           "wall": time.perf_counter() - t0}
    if r.sessions_per_device:
        res["sessions_mean"] = {k: float(v.mean()) for k, v in r.sessions_per_device.items()}
        res["sessions_max"] = {k: int(v.max()) for k, v in r.sessions_per_device.items()}
        res["events_mean"] = float(r.events_per_device.mean())
    device = getattr(out.experiment, "device", None)
    if device is not None and hasattr(device, "arrays"):  # worn out: stuck after reaching its endurance
        models = [a.model for a in device.arrays]
        worn = sum(int(np.count_nonzero((m.stuck != 0) & (m.n_set + m.n_reset >= m.endurance))) for m in models)
        cells = sum(m.stuck.size for m in models)
        res["worn_fraction"] = worn / cells
        res["retired_fraction"] = device.retired / cells  # device.retire_after
    return res


def job_bnn(args_dict: dict[str, Any]) -> dict[str, Any]:
    """The paper's BNN baseline 784-4096-4096-10 (Laborieux et al. 2021: metaplastic m = 1.3,
    per-task BN), software only, with the same epochs; test accuracy at the end of every task."""
    from hil.datasets import load_dataset, validation_split
    from hil.learning.bnn import BNNLearner

    args = argparse.Namespace(**args_dict)
    t0 = time.perf_counter()
    data = [load_dataset(n, args.data_dir or None, args.source) for n in ("mnist", "fashion-mnist")]
    rng = np.random.default_rng(args.seed)
    bnn = BNNLearner(n_tasks=2, rng=rng, m=1.3, lr=0.005)
    own: dict[str, float] = {}
    for task, (ds, epochs) in enumerate(zip(data, args.epochs)):
        bnn.start_task(task)
        x, y = ds.flat("train")
        v = args.validation
        x, y, _, _ = validation_split(x, y, seed=[args.seed, 11, task], **({"n": v} if isinstance(v, int) else {"fraction": v}))
        for _ in range(epochs):
            order = rng.permutation(len(x))
            for i in range(0, len(x), 100):
                bnn.step(x[order[i:i + 100]], y[order[i:i + 100]], task)
        own[ds.name] = bnn.accuracy(*ds.flat("test"), task)
    end = {ds.name: bnn.accuracy(*ds.flat("test"), k) for k, ds in enumerate(data)}
    return {"seed": args.seed, "own": own, "end": end, "wall": time.perf_counter() - t0}


def _kept(path: Path, key: dict[str, Any], run: Any) -> dict[str, Any]:
    """``run(key)``'s result, kept in ``path`` (JSON, with the ``key`` it ran): read back instead of
    running again while the key is the same, so an interrupted benchmark continues where it stopped."""
    if path.exists():
        kept = json.loads(path.read_text())
        if kept.get("config") == key:
            return kept["result"]
    res = run(key)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"config": key, "result": res}, default=str))
    tmp.replace(path)
    return res


def cached_job(data: dict[str, Any]) -> dict[str, Any]:
    """:func:`job`, with its result kept beside the run file (``<out>.json``, with the configuration it ran)."""
    return _kept(Path(data["out"]).with_suffix(".json"), data, job)


def cached_job_bnn(args_dict: dict[str, Any]) -> dict[str, Any]:
    """:func:`job_bnn`, its result kept in ``<out_dir>/bnn-s<seed>.json`` (with the arguments it used)."""
    key = {k: args_dict[k] for k in ("seed", "epochs", "validation", "source", "data_dir")}
    return _kept(Path(args_dict["out_dir"]) / f"bnn-s{key['seed']}.json", key, job_bnn)


class InlineExecutor(Executor):
    """``--jobs 1``: every run in this process, one after the other (no worker processes)."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:  # as a pool would: raised by result()
            future.set_exception(exc)
        return future


def run_all(pool: Executor, configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return list(pool.map(cached_job, configs))


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, _, values = item.partition("=")
        if not values:
            raise SystemExit(f"--grid {item!r}: expected KEY=V1,V2,...")
        parsed = []
        for v in values.split(","):
            try:
                parsed.append(json.loads(v))
            except json.JSONDecodeError:
                parsed.append(v)
        grid[key] = parsed
    return grid


def ms(values: list[float]) -> str:
    a = 100 * np.asarray(values, float)
    return f"{a.mean():6.2f} ± {a.std(ddof=1) if a.size > 1 else 0.0:4.2f}"


def task_end_accuracy(history: list[dict[str, Any]], task_names: list[str]) -> dict[str, float]:
    """Test accuracy of every task right after its own training (e.g. MNIST before Fashion-MNIST)."""
    out = {}
    for h in history:
        name = task_names[h["task"]]
        if name in h:
            out[name] = h[name]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=None, help="directory with mnist/ and fashion-mnist/ (default: $HIL_DATA_DIR)")
    ap.add_argument("--source", default="full", choices=["full", "bundled", "auto"])
    ap.add_argument("--out-dir", type=Path, default=Path("bench_metaplastic"))
    ap.add_argument("--sequence", default="mnist-fmnist", choices=["mnist-fmnist", "pmnist"])
    ap.add_argument("--epochs", type=int, nargs="+", default=[10, 10], help="epochs per task, the same for every run")
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--m-star", type=float, default=4.0, help="m* when not in the grid")
    ap.add_argument("--lr", type=float, default=0.01, help="Adam learning rate when not in the grid")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--program-every", type=int, default=1)
    ap.add_argument("--technology", default="hfo2")
    ap.add_argument("--validation", type=float, default=5000, help="validation images per task (count, or a fraction < 1)")
    ap.add_argument("--train-limit", type=int, default=0)
    ap.add_argument("--test-limit", type=int, default=0)
    ap.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                    help="selection grid over a dotted key of the experiment file (repeatable)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="fix a dotted key of the experiment file for every run (repeatable), e.g. "
                         "device.tolerance=0.1; recorded as 'not selected'")
    ap.add_argument("--protocols", nargs="+", default=["per-task", "shared"], choices=["per-task", "shared"],
                    help="BatchNorm protocols of the frozen configuration (selection always uses per-task)")
    ap.add_argument("--kinds", nargs="+", default=["metaplastic", "plain", "software"],
                    choices=["metaplastic", "plain", "software"],
                    help="runs of the frozen configuration (default all three; the headline needs all three)")
    ap.add_argument("--selection-seeds", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--curve-epochs", type=int, nargs="+", default=None,
                    help="also run the frozen configuration for one seed with these epochs per task (e.g. 20 20) and "
                         "print validation accuracy against epochs (the paper trains 50 per task)")
    ap.add_argument("--bnn-seeds", type=int, default=0,
                    help="also train the paper's BNN baseline 784-4096-4096-10 (software, per-task BN, same epochs) "
                         "over this many seeds (mnist-fmnist only; about 2 min per epoch per core)")
    args = ap.parse_args()
    if args.validation >= 1:
        args.validation = int(args.validation)
    if args.sequence == "mnist-fmnist" and len(args.epochs) != 2:
        raise SystemExit("--epochs: two values (MNIST, Fashion-MNIST) for --sequence mnist-fmnist")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    base = base_config(args)
    fixed_set = {k: v[0] for k, v in parse_grid(args.set).items()}
    for key, value in fixed_set.items():
        runner.set_dotted(base, key, value, MetaplasticExperiment)
    grid = parse_grid(args.grid)
    points = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())] or [{}]
    sel_seeds = list(range(100, 100 + args.selection_seeds))
    seeds = list(range(args.seeds))
    t_all = time.perf_counter()

    # ---------------------------------------------------------------- 1. selection (validation only)
    sel_configs = [variant(base, f"sel{p}-s{s}", s, args.out_dir, **point, **{"tasks.test_at": "never"})
                   for p, point in enumerate(points) for s in sel_seeds]
    # ---------------------------------------------------------------- 2. frozen configuration
    kinds = {kind: over for kind, over in KINDS.items() if kind.split()[0] in args.kinds}
    t0 = time.perf_counter()
    with (InlineExecutor() if args.jobs == 1 else ProcessPoolExecutor(max_workers=args.jobs)) as pool:
        sel = run_all(pool, sel_configs)
        t_sel = time.perf_counter() - t0
        sel_by_point = [[r for r in sel if r["name"].startswith(f"sel{p}-")] for p in range(len(points))]
        scores = []
        for point, runs in zip(points, sel_by_point):
            per_seed = [np.mean([v for k, v in r["summary"].items() if k.startswith("val.")]) for r in runs]
            scores.append((float(np.mean(per_seed)), float(np.std(per_seed, ddof=1) if len(per_seed) > 1 else 0.0), point))
        best = max(scores, key=lambda s: s[0])[2]
        frozen = [variant(base, f"{kind.split()[0]}-{kind.split()[1][:3]}-{bn}-s{s}", s, args.out_dir,
                          **best, **over, **{"network.batchnorm": bn, "tasks.test_at": "task-end"})
                  for kind, over in kinds.items() for bn in args.protocols for s in seeds]
        t1 = time.perf_counter()
        bnn_jobs = [pool.submit(cached_job_bnn, {**{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                                          "seed": s}) for s in seeds[:args.bnn_seeds]] if args.sequence == "mnist-fmnist" else []
        curve_job = None
        if args.curve_epochs:
            if len(args.curve_epochs) != len(args.epochs):
                raise SystemExit("--curve-epochs: one value per task, as --epochs")
            curve_job = pool.submit(cached_job, variant(base, "curve-s0", 0, args.out_dir, **best, **{
                "tasks.epochs": list(args.curve_epochs), "tasks.test_at": "never"}))
        final = run_all(pool, frozen)
        bnn = [f.result() for f in bnn_jobs]
        curve = curve_job.result() if curve_job is not None else None
        t_frozen = time.perf_counter() - t1
    wall = time.perf_counter() - t_all
    (args.out_dir / "summary.json").write_text(json.dumps(
        {"args": {k: str(v) for k, v in vars(args).items()}, "selection": sel, "scores": scores, "best": best,
         "frozen": final, "bnn": bnn, "curve": curve, "wall": wall}, indent=1, default=str))

    # ---------------------------------------------------------------- report
    names = [h for h in ("mnist", "fashion-mnist")] if args.sequence == "mnist-fmnist" else \
        [f"pmnist-{k}" for k in range(len(args.epochs))]
    ep = "+".join(str(e) for e in args.epochs)
    layers = "-".join(str(h) for h in best.get("network.hidden", base["network"]["hidden"]))
    print(f"\n== Metaplastic QNN 784-{layers}-10, {args.technology} SimArray (offset reference), "
          f"{args.sequence} {ep} epochs, batch {args.batch_size}, data {args.source}"
          f"{f', train_limit {args.train_limit}' if args.train_limit else ''} ==")
    vdesc = f"{args.validation} images" if isinstance(args.validation, int) else f"{100 * args.validation:g} %"
    print(f"Protocol: selection on validation ({vdesc} held out of every task's training set, "
          f"seeded) over {len(sel_seeds)} seeds {sel_seeds}; the test set touched only by the frozen configuration, "
          f"{len(seeds)} seeds {seeds}; mean ± std (sample std).")
    print(f"\n1. Selection (metaplastic device run, per-task BN; score = mean validation accuracy over the tasks "
          f"after the sequence), {t_sel / 60:.1f} min:")
    print(f"   {'point':50s} {'score':>14s}   " + "   ".join(f"{'val ' + n:>17s}" for n in names))
    for p in sorted(range(len(points)), key=lambda p: -scores[p][0]):
        mean, std, point = scores[p]
        runs = sel_by_point[p]
        mark = "  <- selected" if point == best else ""
        per_task = "   ".join(f"{ms([r['summary'][f'val.{n}'] for r in runs]):>17s}" for n in names)
        print(f"   {json.dumps(point) if point else '(no grid)':50s} {100 * mean:6.2f} ± {100 * std:4.2f} %   {per_task}{mark}")
    fixed = {k: v for k, v in {"network.hidden": args.hidden, "tasks.epochs": args.epochs,
                                "device.program_every": args.program_every, **fixed_set}.items() if k not in best}
    print(f"   not selected (fixed by the command line): {json.dumps(fixed)}")
    print(f"\n2. Frozen configuration {json.dumps(best)}: test accuracy (%) over {len(seeds)} seeds, "
          f"identical epochs ({ep}) for every run, {t_frozen / 60:.1f} min")
    head = "   ".join(f"{n + ' own':>17s}" for n in names[:-1]) + "   " + "   ".join(f"{n + ' end':>17s}" for n in names)
    print(f"   {'run':20s} {'BatchNorm':9s}   {head}   wall/run")  # noqa: E501
    for kind in kinds:
        for bn in args.protocols:
            tag = f"{kind.split()[0]}-{kind.split()[1][:3]}-{bn}-"
            runs = [r for r in final if r["name"].startswith(tag)]
            own = [task_end_accuracy(r["history"], names) for r in runs]
            cols = [ms([o[n] for o in own]) for n in names[:-1]] + [ms([r["summary"][n] for r in runs]) for n in names]
            print(f"   {kind:20s} {bn:9s}   " + "   ".join(f"{c:>17s}" for c in cols)
                  + f"   {np.mean([r['wall'] for r in runs]):6.0f} s")
    if bnn:
        print(f"   {'BNN 784-4096-4096-10':20s} {'per-task':9s}   " + "   ".join(
            f"{c:>17s}" for c in [ms([b['own'][n] for b in bnn]) for n in names[:-1]] + [ms([b['end'][n] for b in bnn]) for n in names])
              + f"   {np.mean([b['wall'] for b in bnn]):6.0f} s   (software, m = 1.3, Laborieux et al. 2021)")
    print(f"   ('<task> own': right after training that task, e.g. MNIST before Fashion-MNIST; '<task> end': after "
          f"the whole sequence. Per-task BN gives the network the task identity at test time (Laborieux et al. "
          f"2021); shared BN does not.)")
    if args.sequence == "mnist-fmnist":
        print(f"   paper (hardware-in-the-loop, per-task BN, {PAPER['mnist']:.0f} / {PAPER['fashion-mnist']:.0f} %, "
              f"50 epochs per task); targets on the recalibrated device: MNIST >= 96 %, Fashion-MNIST >= 85 %")
    if curve is not None:
        print(f"\n   Validation accuracy (%) against epochs, frozen configuration, seed 0, metaplastic device run, "
              f"per-task BN, {'+'.join(map(str, args.curve_epochs))} epochs (test set not touched):")
        for h in curve["history"]:
            print(f"     epoch {h['epoch']:3d} (task {h['task']})  " + "  ".join(
                f"{k[4:]} {100 * v:5.2f}" for k, v in h.items() if k.startswith("val.")))
    print(f"\n3. Programming sessions per device after the initial programming (Fig. 5b), {args.protocols[0]} BN, "
          f"mean over seeds:")
    for kind in ("metaplastic device", "plain device"):
        runs = [r for r in final if r["name"].startswith(f"{kind.split()[0]}-dev-{args.protocols[0]}-")]
        if not runs:
            continue
        mean = {k: np.mean([r["sessions_mean"][k] for r in runs]) for k in runs[0]["sessions_mean"]}
        mx = {k: max(r["sessions_max"][k] for r in runs) for k in runs[0]["sessions_max"]}
        print(f"   {kind:20s} " + "  ".join(f"{k} {mean[k]:.2f} (max {mx[k]})" for k in mean)
              + f";  pulses/device {np.mean([r['events_mean'] for r in runs]):.1f}; est. bench time "
              f"{np.mean([r['bench_time'] for r in runs]) / 3600:.2f} h")
    print("\n4. " + "\n".join(memory_lines(final[0]["memory"])))
    print(f"\nFigures: hil report {args.out_dir / 'metaplastic-dev-per-task-s0.h5'} --with "
          f"{args.out_dir / 'plain-dev-per-task-s0.h5'}")
    run_wall = sum(r["wall"] for r in sel + final)
    print(f"Wall time: {wall / 60:.1f} min on {os.cpu_count()} cores, {args.jobs} jobs at a time "
          f"({len(sel_configs)} selection runs, {len(frozen)} frozen-configuration runs); the runs themselves "
          f"{run_wall / 60:.1f} min summed (results kept in {args.out_dir}/*.json are reused, with their own wall time)")


if __name__ == "__main__":
    main()
