"""Held-out validation splits of a training set (the protocol's selection data)."""

from __future__ import annotations

import numpy as np


def validation_split(
    x: np.ndarray, y: np.ndarray, fraction: float | None = None, n: int | None = None, seed: int | list[int] = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split a training set into (x_train, y_train, x_val, y_val), seeded and disjoint.

    Exactly one of ``fraction`` (in (0, 1)) or ``n`` (number of validation examples, at least 1
    and fewer than ``len(x)``) gives the size. The validation examples are a uniformly random
    subset drawn with ``numpy.random.default_rng(seed)``; both parts keep the original order
    (sorted indices), so the same seed gives the same bits.

    Args:
        x: examples, shape (n_examples, ...); y: labels, shape (n_examples,).

    Raises:
        ValueError: sizes that do not fit, or both / neither of ``fraction`` and ``n``.
    """
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} examples but y has {len(y)} labels")
    if (fraction is None) == (n is None):
        raise ValueError("give exactly one of fraction= or n= for the validation split")
    total = len(x)
    if fraction is not None:
        if not (isinstance(fraction, (int, float)) and 0 < fraction < 1):
            raise ValueError(f"validation fraction = {fraction!r} is not allowed; allowed: a number in (0, 1)")
        n = int(round(fraction * total))
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n < total:
        raise ValueError(f"validation size n = {n!r} is not allowed; allowed: an integer in [1, {total - 1}] "
                         f"(the training set has {total} examples)")
    pick = np.random.default_rng(seed).permutation(total)
    val = np.sort(pick[:n])
    train = np.sort(pick[n:])
    return x[train], y[train], x[val], y[val]
