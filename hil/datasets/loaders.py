"""Loaders for MNIST / Fashion-MNIST (full files or the bundled subsets)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hil.datasets.idx import load_idx

log = logging.getLogger(__name__)

#: Environment variable naming the directory that holds ``mnist/`` and ``fashion-mnist/``.
ENV_VAR = "HIL_DATA_DIR"

#: Dataset names -> file names (without ``.gz``) of (train images, train labels, test images, test labels).
DATASETS: dict[str, tuple[str, str, str, str]] = {
    "mnist": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    "fashion-mnist": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

#: SHA-256 of the *uncompressed* payload of the full, standard files.
FULL_SHA256: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}

_SOURCES = ("auto", "full", "bundled")


class DatasetNotFoundError(FileNotFoundError):
    """The dataset files are not where they were looked for; the message says where to put them."""


@dataclass(frozen=True)
class Dataset:
    """One dataset split into train and test.

    Attributes:
        name: ``"mnist"``, ``"fashion-mnist"`` (or a derived name such as ``"pmnist-1"``).
        x_train: uint8 images, shape (n_train, 28, 28).
        y_train: uint8 labels 0..9, shape (n_train,).
        x_test: uint8 images, shape (n_test, 28, 28).
        y_test: uint8 labels, shape (n_test,).
        source: ``"full"`` or ``"bundled"``, and the directory read.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str

    def flat(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Images of ``split`` (``"train"``/``"test"``) as float32 in [0, 1], shape (n, 784), and labels."""
        x, y = (self.x_train, self.y_train) if split == "train" else (self.x_test, self.y_test)
        return x.reshape(len(x), -1).astype(np.float32) / np.float32(255.0), y.astype(np.int64)


def bundled_dir() -> Path:
    """Directory of the bundled subsets inside the package."""
    return Path(__file__).resolve().parent / "data"


def resolve_data_dir(data_dir: str | Path | None = None) -> Path | None:
    """The full-dataset directory: ``data_dir`` if given, else ``$HIL_DATA_DIR``, else ``None``."""
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    env = os.environ.get(ENV_VAR, "")
    return Path(env).expanduser() if env else None


def _find(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    return None


def _read_sums(path: Path) -> dict[str, str]:
    sums: dict[str, str] = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            sums[Path(parts[1]).name] = parts[0]
    return sums


def _missing_message(name: str, directory: Path | None, missing: list[str]) -> str:
    where = (
        f"in {directory / name}" if directory is not None
        else f"(no data directory given: pass data_dir / the [dataset] data_dir field, or set {ENV_VAR})"
    )
    return (
        f"{name}: dataset files not found {where}: missing {', '.join(missing)}. "
        f"Put the standard IDX files (gzip-compressed .gz or plain) as <data_dir>/{name}/<file>, "
        f"with <file> one of {', '.join(DATASETS[name])}, and point {ENV_VAR} (or data_dir) at <data_dir>. "
        "Or use source = \"bundled\" for the small subsets that ship with the package."
    )


def _load_full(name: str, directory: Path | None, verify: bool) -> Dataset:
    files: list[Path] = []
    missing: list[str] = []
    for stem in DATASETS[name]:
        found = _find(directory / name, stem) if directory is not None else None
        if found is None:
            missing.append(stem)
        else:
            files.append(found)
    if missing:
        raise DatasetNotFoundError(_missing_message(name, directory, missing))
    arrays = [
        load_idx(path, FULL_SHA256[name][stem] if verify else None)
        for path, stem in zip(files, DATASETS[name])
    ]
    log.info("loaded %s (full) from %s", name, directory / name)
    return Dataset(name, arrays[0], arrays[1], arrays[2], arrays[3], f"full:{directory / name}")


def _load_bundled(name: str, verify: bool) -> Dataset:
    directory = bundled_dir() / name
    sums_path = directory / "SHA256SUMS.txt"
    if not sums_path.is_file():
        raise DatasetNotFoundError(f"{name}: bundled subset missing from the package ({directory})")
    sums = _read_sums(sums_path)
    arrays = []
    for stem in DATASETS[name]:
        path = _find(directory, stem)
        if path is None:
            raise DatasetNotFoundError(f"{name}: bundled subset file {stem} missing from {directory}")
        arrays.append(load_idx(path, sums.get(stem) if verify else None))
    return Dataset(name, arrays[0], arrays[1], arrays[2], arrays[3], f"bundled:{directory}")


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    source: str = "auto",
    verify: bool = True,
) -> Dataset:
    """Load MNIST or Fashion-MNIST.

    Args:
        name: ``"mnist"`` or ``"fashion-mnist"``.
        data_dir: directory holding ``<name>/<file>[.gz]``; default ``$HIL_DATA_DIR``.
        source: ``"full"`` (the standard files from ``data_dir``), ``"bundled"`` (the subsets in
            the package), or ``"auto"`` (full when a data directory is known, else bundled).
        verify: check the SHA-256 of every uncompressed payload.

    Raises:
        ValueError: unknown ``name`` or ``source``.
        DatasetNotFoundError: the full files are not in the directory; says where to put them.
        ChecksumError: a payload does not match its checksum.
    """
    if name not in DATASETS:
        raise ValueError(f"dataset={name!r} is not one of {sorted(DATASETS)}")
    if source not in _SOURCES:
        raise ValueError(f"source={source!r} is not one of {list(_SOURCES)}")
    directory = resolve_data_dir(data_dir)
    if source == "bundled" or (source == "auto" and directory is None):
        return _load_bundled(name, verify)
    return _load_full(name, directory, verify)


def permuted(dataset: Dataset, seed: int, task: int) -> Dataset:
    """Permuted-MNIST task: the same pixel permutation applied to every image.

    Task 0 is the identity; task ``k > 0`` uses ``np.random.default_rng([seed, k]).permutation(784)``.
    """
    n_pixels = dataset.x_train[0].size
    perm = np.arange(n_pixels) if task == 0 else np.random.default_rng([seed, task]).permutation(n_pixels)
    shape = dataset.x_train.shape[1:]

    def apply(x: np.ndarray) -> np.ndarray:
        return x.reshape(len(x), -1)[:, perm].reshape((len(x),) + shape)

    return Dataset(
        f"p{dataset.name}-{task}", apply(dataset.x_train), dataset.y_train,
        apply(dataset.x_test), dataset.y_test, dataset.source,
    )


def class_split(dataset: Dataset, classes: list[int] | tuple[int, ...]) -> Dataset:
    """The subset of ``dataset`` whose labels are in ``classes`` (for class-incremental tasks)."""
    keep_tr = np.isin(dataset.y_train, classes)
    keep_te = np.isin(dataset.y_test, classes)
    return Dataset(
        f"{dataset.name}[{','.join(map(str, classes))}]", dataset.x_train[keep_tr], dataset.y_train[keep_tr],
        dataset.x_test[keep_te], dataset.y_test[keep_te], dataset.source,
    )


def stratified_indices(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Sorted indices of ``per_class`` examples of every class, drawn without replacement (seeded)."""
    rng = np.random.default_rng(seed)
    picks = [rng.choice(np.flatnonzero(labels == c), size=per_class, replace=False) for c in np.unique(labels)]
    return np.sort(np.concatenate(picks))
