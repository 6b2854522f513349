"""Datasets: MNIST and Fashion-MNIST from IDX files, with payload checksums.

Two sources:

* **full** — the standard IDX files (``<data_dir>/<name>/<file>.gz`` or uncompressed), from a
  directory given as an argument or in the ``HIL_DATA_DIR`` environment variable. Each file's
  uncompressed payload is checked against the published SHA-256 in :data:`FULL_SHA256`.
* **bundled** — small stratified subsets shipped inside the package (``hil/datasets/data``),
  so that the quickstart runs on a fresh machine without a download. Their licences and
  attribution are in ``hil/datasets/data/ATTRIBUTION.md``.

Also: permuted-MNIST tasks (a fixed pixel permutation per task), class splits, and seeded
validation splits held out of a training set (:func:`validation_split`).
"""

from hil.datasets.idx import ChecksumError, load_idx, parse_idx
from hil.datasets.loaders import (
    DATASETS,
    ENV_VAR,
    FULL_SHA256,
    Dataset,
    DatasetNotFoundError,
    bundled_dir,
    load_dataset,
    permuted,
    resolve_data_dir,
    class_split,
)
from hil.datasets.splits import validation_split

__all__ = [
    "ChecksumError",
    "DATASETS",
    "ENV_VAR",
    "FULL_SHA256",
    "Dataset",
    "DatasetNotFoundError",
    "bundled_dir",
    "class_split",
    "load_dataset",
    "load_idx",
    "parse_idx",
    "permuted",
    "resolve_data_dir",
    "validation_split",
]
