"""CIFAR-10 from the official binary version (``data_batch_1..5.bin``, ``test_batch.bin``).

Format (Krizhevsky, "Learning multiple layers of features from tiny images", 2009, and the
dataset page https://www.cs.toronto.edu/~kriz/cifar.html, "Binary version"): each file is a
sequence of 10000 records of 3073 bytes: one label byte (0..9), then 1024 red, 1024 green and
1024 blue bytes of a 32x32 image, row-major. Never pickles: the Python version of the dataset
is not read.

Checksums: pass ``sha256`` (file name -> hex digest) to check each file before it is parsed
(the published archive gives an MD5 of the tarball only, so the digests of the files are the
user's own, e.g. from ``sha256sum``); a mismatch raises :class:`ChecksumError`.

:func:`to_filter_input` is the colour-to-filter front end: the 28x28 grey input the 20x20
filters take (luminance Y = 0.299 R + 0.587 G + 0.114 B, ITU-R BT.601, centre-cropped from
32x32 to 28x28).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from hil.datasets.idx import ChecksumError
from hil.datasets.loaders import Dataset, DatasetNotFoundError

RECORD = 1 + 3 * 32 * 32
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILE = "test_batch.bin"


def parse_batch(data: bytes, name: str = "<bytes>") -> tuple[np.ndarray, np.ndarray]:
    """Records -> (images uint8 (n, 32, 32, 3), labels uint8 (n,))."""
    if len(data) == 0 or len(data) % RECORD:
        raise ValueError(f"{name}: {len(data)} bytes is not a whole number of {RECORD}-byte CIFAR-10 records")
    rec = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD)
    labels = rec[:, 0].copy()
    if labels.max() > 9:
        raise ValueError(f"{name}: label {int(labels.max())} outside 0..9: not a CIFAR-10 binary file")
    images = rec[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()
    return images, labels


def _read(path: Path, sha256: dict[str, str] | None) -> tuple[np.ndarray, np.ndarray]:
    data = path.read_bytes()
    if sha256 and path.name in sha256:
        got = hashlib.sha256(data).hexdigest()
        if got != sha256[path.name].lower():
            raise ChecksumError(f"{path}: SHA-256 {got} does not match the expected {sha256[path.name]}")
    return parse_batch(data, str(path))


def load_cifar10(directory: str | Path, sha256: dict[str, str] | None = None,
                 train_files: tuple[str, ...] = TRAIN_FILES) -> Dataset:
    """Load CIFAR-10 from ``directory`` (the ``cifar-10-batches-bin`` folder), colour images (n, 32, 32, 3)."""
    d = Path(directory)
    missing = [f for f in (*train_files, TEST_FILE) if not (d / f).is_file()]
    if missing:
        raise DatasetNotFoundError(f"cifar-10: files not found in {d}: missing {', '.join(missing)} "
                                   "(the binary version, cifar-10-binary.tar.gz, extracted)")
    parts = [_read(d / f, sha256) for f in train_files]
    x_te, y_te = _read(d / TEST_FILE, sha256)
    return Dataset("cifar-10", np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                   x_te, y_te, f"full:{d}")


def to_filter_input(images: np.ndarray) -> np.ndarray:
    """Colour images (n, 32, 32, 3) uint8 -> grey (n, 28, 28) uint8 for the 20x20 filters."""
    x = np.asarray(images, dtype=np.float32)
    if x.ndim != 4 or x.shape[1:] != (32, 32, 3):
        raise ValueError(f"images must have shape (n, 32, 32, 3), got {x.shape}")
    y = x @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(np.rint(y[:, 2:30, 2:30]), 0, 255).astype(np.uint8)
