"""Noisy MNIST (the validation split held out of a training set is :func:`hil.datasets.validation_split`).

Noisy MNIST as the SiOx paper uses it (Muñoz-Martín, Bianchi et al., Fig. 9b): "20 % of random
pixels in each MNIST pattern": in every image a fraction of the pixels, chosen at random, is
replaced by a uniformly random grey value (0..255). Seeded: same seed, same noise.
"""

from __future__ import annotations

import numpy as np

from hil.datasets.loaders import Dataset


def add_pixel_noise(images: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Copy of ``images`` (n, H, W) with ``fraction`` of each image's pixels set to random values.

    uint8 images get uniform values in 0..255, float images uniform values in [0, 1].
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"noise fraction = {fraction!r} is not allowed; allowed: a number in [0, 1]")
    x = np.array(images, copy=True)
    n, pixels = x.shape[0], int(np.prod(x.shape[1:]))
    k = int(round(fraction * pixels))
    if n == 0 or k == 0:
        return x
    flat = x.reshape(n, pixels)
    pos = np.argsort(rng.random((n, pixels)), axis=1)[:, :k]
    if x.dtype == np.uint8:
        vals = rng.integers(0, 256, size=(n, k), dtype=np.uint8)
    else:
        vals = rng.random((n, k)).astype(x.dtype)
    np.put_along_axis(flat, pos, vals, axis=1)
    return flat.reshape(x.shape)


def noisy(dataset: Dataset, fraction: float = 0.2, seed: int = 0) -> Dataset:
    """Noisy version of ``dataset``: every train and test image gets ``fraction`` random pixels."""
    rng_tr = np.random.default_rng([seed, 0])
    rng_te = np.random.default_rng([seed, 1])
    return Dataset(f"noisy-{dataset.name}", add_pixel_noise(dataset.x_train, fraction, rng_tr), dataset.y_train,
                   add_pixel_noise(dataset.x_test, fraction, rng_te), dataset.y_test, dataset.source)

