"""benchmarks/continual_stdp_diagnose.py: the readout bounds it prints see the classes, and only them."""

from __future__ import annotations

import numpy as np

from script_loader import load_benchmark


def _maps(n: int, seed: int, flip: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Binary maps (n, 64) of ten classes: each class a random 64-bit code with ``flip`` of its bits flipped."""
    rng = np.random.default_rng(seed)
    codes = np.random.default_rng(99).random((10, 64)) < 0.5
    y = rng.integers(0, 10, n)
    return codes[y] ^ (rng.random((n, 64)) < flip), y


def test_bounds_find_separable_classes_and_fall_to_chance_without_them():
    d = load_benchmark("continual_stdp_diagnose")
    ftr, ytr = _maps(2000, 0)
    fva, yva = _maps(500, 1)
    knn = d.knn_readout(ftr, ytr, fva, yva, ks=(1, 5))
    assert knn[1] > 0.99 and knn[5] > 0.99
    assert d.kmeans_readout(ftr, ytr, fva, yva, 20) > 0.99
    assert d.softmax_regression(ftr, ytr, fva, yva, epochs=5) > 0.99
    shuffled = np.random.default_rng(2).permutation(ytr)  # labels no longer tied to the maps
    assert max(d.knn_readout(ftr, shuffled, fva, yva, ks=(1, 5)).values()) < 0.2
    assert d.kmeans_readout(ftr, shuffled, fva, yva, 20) < 0.2


def test_knn_votes_the_nearest_maps_by_hamming_distance():
    d = load_benchmark("continual_stdp_diagnose")
    ftr = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0]], bool)
    ytr = np.array([3, 3, 7, 7, 5])
    fva = np.array([[1, 1, 0, 1], [0, 1, 1, 1]], bool)
    # nearest to [1,1,0,1]: [1,1,0,0] (1 bit), then [1,1,1,0] / [0,0,0,1] (2 bits, lower index first)
    assert d.knn_readout(ftr, ytr, fva, np.array([3, 7]), ks=(1, 3)) == {1: 1.0, 3: 1.0}
    assert d.knn_readout(ftr, ytr, fva, np.array([7, 3]), ks=(1,)) == {1: 0.0}
