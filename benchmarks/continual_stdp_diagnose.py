"""Diagnostics of the continual-stdp readout, on the VALIDATION split only (never the test set).

    OMP_NUM_THREADS=1 python benchmarks/continual_stdp_diagnose.py features --data-dir DIR --out F.npz [--set filters.untrained=5]
    OMP_NUM_THREADS=1 python benchmarks/continual_stdp_diagnose.py bounds F.npz
    OMP_NUM_THREADS=1 python benchmarks/continual_stdp_diagnose.py stdp F.npz --limit 20000 '{"n_neurons": 200}' ...

``features`` runs the experiment's filters and features stages (hardware feature maps through the
filter array and the overlay twin) and saves them. ``bounds`` prints upper bounds of what a
readout of those binary maps can reach (nearest class mean, softmax regression, k-means
prototypes labelled on the training stream, a vote of the k nearest training maps): diagnostics,
not results of the system.
``stdp`` runs the STDP block (on a fresh simulated SiOx array) over the first ``--limit`` images of
a shuffled training stream for each JSON dict of :class:`hil.learning.stdp.STDPParams` fields and
prints the validation accuracy of the winner and of ``--voters`` vote readouts, the firing rate and
the neurons used.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def features(args: argparse.Namespace) -> None:
    from hil.experiments import registry
    from hil.experiments.runner import StageContext

    d = {"experiment": "continual-stdp", "name": "diagnose", "seed": args.seed, "out": "diagnose.h5",
         "dataset": {"name": "mnist", "source": "full", "data_dir": args.data_dir, "validation": 0.1},
         "filters": {"kind": "joint", "untrained": 0, "bits": 4, "pool": 9, "epochs": 4}, "stdp": {"n_neurons": 10}}
    for item in args.set:
        key, value = item.split("=", 1)
        table, name = key.split(".")
        try:
            d.setdefault(table, {})[name] = json.loads(value)
        except json.JSONDecodeError:  # a plain string: fashion-mnist, median, ...
            d.setdefault(table, {})[name] = value
    cls, cfg = registry.parse_experiment(d)
    exp = cls(cfg)
    ctx = StageContext(None, None, 0, "diagnose")
    t0 = time.perf_counter()
    exp.run_stage(0, ctx)
    t1 = time.perf_counter()
    exp.run_stage(1, ctx)
    print(f"filters stage {t1 - t0:.0f} s, features stage {time.perf_counter() - t1:.0f} s")
    np.savez_compressed(args.out, ftr=exp.features["train"], fva=exp.features["val"], ytr=exp.y_train, yva=exp.y_val,
                        trained=np.array(exp.trained))


def softmax_regression(ftr, ytr, fva, yva, epochs: int = 30, lr: float = 0.005, seed: int = 0) -> float:
    """Validation accuracy of a softmax regression on the bits (Adam, minibatch 256)."""
    rng = np.random.default_rng(seed)
    x, xv = ftr.astype(np.float32), fva.astype(np.float32)
    w, b = np.zeros((x.shape[1], 10), np.float32), np.zeros(10, np.float32)
    m = [np.zeros_like(w), np.zeros_like(b)]
    v = [np.zeros_like(w), np.zeros_like(b)]
    t = 0
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for s in range(0, len(x), 256):
            i = order[s:s + 256]
            z = x[i] @ w + b
            z -= z.max(1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(1, keepdims=True)
            p[np.arange(len(i)), ytr[i]] -= 1
            p /= len(i)
            t += 1
            for k, (param, g) in enumerate(((w, x[i].T @ p), (b, p.sum(0)))):
                m[k] = 0.9 * m[k] + 0.1 * g
                v[k] = 0.999 * v[k] + 0.001 * g * g
                param -= lr * (m[k] / (1 - 0.9**t)) / (np.sqrt(v[k] / (1 - 0.999**t)) + 1e-8)
    return float(np.mean((xv @ w + b).argmax(1) == yva))


def _sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (len(a), len(b)) of float32 rows; the Hamming distance for bits."""
    return (a**2).sum(1)[:, None] - 2 * a @ b.T + (b**2).sum(1)[None]


def kmeans_readout(ftr, ytr, fva, yva, k: int, seed: int = 0, iters: int = 30) -> float:
    """Validation accuracy of k prototypes (Lloyd's k-means on the training maps) labelled by majority."""
    rng = np.random.default_rng(seed)
    x = ftr.astype(np.float32)
    c = x[rng.choice(len(x), k, replace=False)].copy()
    for _ in range(iters):
        a = _sq_distances(x, c).argmin(1)
        for j in range(k):
            c[j] = x[a == j].mean(0) if np.any(a == j) else x[rng.integers(len(x))]
    hist = np.zeros((k, 10))
    np.add.at(hist, (a, ytr), 1)
    xv = fva.astype(np.float32)
    return float(np.mean(hist.argmax(1)[_sq_distances(xv, c).argmin(1)] == yva))


def knn_readout(ftr, ytr, fva, yva, ks: tuple[int, ...] = (1, 5, 20), chunk: int = 500) -> dict[int, float]:
    """Validation accuracy of a k-nearest-neighbour vote (Hamming distance) over every training map.

    A reference for readouts that compare a map with stored labelled patterns: this one stores
    every training map, where the STDP block keeps one learned pattern per neuron. Ties in
    distance go to the lower training index, a tied vote to the lower class.
    """
    x = ftr.astype(np.float32)
    hits = dict.fromkeys(ks, 0)
    kmax = max(ks)
    for s in range(0, len(fva), chunk):
        v = fva[s:s + chunk].astype(np.float32)
        near = np.argsort(_sq_distances(v, x), axis=1, kind="stable")[:, :kmax]
        for k in ks:
            counts = np.zeros((len(v), 10), np.int64)
            np.add.at(counts, (np.repeat(np.arange(len(v)), k), ytr[near[:, :k]].ravel()), 1)
            hits[k] += int(np.sum(counts.argmax(1) == yva[s:s + chunk]))
    return {k: hits[k] / len(fva) for k in ks}


def bounds(args: argparse.Namespace) -> None:
    z = np.load(args.npz)
    ftr, fva, ytr, yva = z["ftr"], z["fva"], z["ytr"], z["yva"]
    means = np.stack([ftr[ytr == c].mean(0) for c in range(10)])
    ncm = float(np.mean(((fva[:, None].astype(np.float32) - means[None]) ** 2).sum(-1).argmin(1) == yva))
    print(f"{ftr.shape[1]} bits, {ftr.mean():.3f} on; validation accuracy (upper bounds, not results):")
    print(f"  nearest class mean {100 * ncm:.2f} %")
    print(f"  softmax regression {100 * softmax_regression(ftr, ytr, fva, yva):.2f} %")
    for k in (10, 50, 100, 200):
        print(f"  k-means, {k} prototypes {100 * kmeans_readout(ftr, ytr, fva, yva, k):.2f} %")
    for k, acc in knn_readout(ftr, ytr, fva, yva).items():
        print(f"  {k} nearest training maps {100 * acc:.2f} %")


def stdp(args: argparse.Namespace) -> None:
    from drivers.sim_array import SimArray
    from hil.learning.stdp import STDPBlock, STDPParams, assign_labels, predict

    z = np.load(args.npz)
    ftr, fva, ytr, yva = z["ftr"], z["fva"], z["ytr"], z["yva"]
    untrained = ~np.isin(yva, z["trained"])
    for text in args.params:
        p = STDPParams(**json.loads(text))
        block = STDPBlock(SimArray((ftr.shape[1] + 2, p.n_neurons), "siox", seed=args.seed * 1000 + 2), ftr.shape[1], p,
                          seed=args.seed)
        block.initialise()
        order = np.random.default_rng([args.seed, 3]).permutation(len(ytr))[: args.limit or None]
        t0 = time.perf_counter()
        fired = sum(block.present(ftr[i]) >= 0 for i in order)
        wall = time.perf_counter() - t0
        labels = assign_labels(block.winners(ftr), ytr, p.n_neurons)
        scores = []
        for name, pred in (("winner", predict(block.winners(fva), labels)),
                           *((f"vote of {m}", block.vote(fva, labels, m)) for m in args.voters)):
            ok = pred == yva
            unt = f" / {100 * ok[untrained].mean():.2f}" if untrained.any() else ""
            scores.append(f"{name} {100 * ok.mean():.2f}{unt}")
        print(f"{text}: {len(order)} images, validation % (all{' / non-trained' if untrained.any() else ''}): "
              f"{', '.join(scores)}; firing rate {fired / len(order):.3f}, neurons used "
              f"{int(np.sum(block.fired > 0))}, {wall:.0f} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("features")
    f.add_argument("--data-dir", required=True)
    f.add_argument("--out", required=True)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--set", action="append", default=[], metavar="TABLE.KEY=VALUE")
    f.set_defaults(func=features)
    b = sub.add_parser("bounds")
    b.add_argument("npz")
    b.set_defaults(func=bounds)
    s = sub.add_parser("stdp")
    s.add_argument("npz")
    s.add_argument("params", nargs="+")
    s.add_argument("--limit", type=int, default=0)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--voters", type=lambda t: [int(v) for v in t.split(",")], default=[3, 5, 10],
                   help="comma-separated numbers of neurons of the k-WTA vote readouts to print")
    s.set_defaults(func=stdp)
    args = ap.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
