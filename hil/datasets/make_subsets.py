"""Build the bundled stratified subsets from the full files (maintainer tool, run once).

    python -m hil.datasets.make_subsets /path/to/datasets [--train-per-class N] [--test-per-class N]

Writes ``hil/datasets/data/<name>/<file>.gz`` (IDX, gzip level 9, fixed mtime so the bytes are
reproducible), ``SHA256SUMS.txt`` (SHA-256 of each uncompressed payload) and ``INDICES.txt``
(which examples of the original files were taken).
"""

from __future__ import annotations

import argparse
import gzip
import io
from pathlib import Path

import numpy as np

from hil.datasets.idx import encode_idx, sha256_hex
from hil.datasets.loaders import DATASETS, bundled_dir, load_dataset, stratified_indices


def write_subset(name: str, data_dir: Path, out: Path, train_per_class: int, test_per_class: int, seed: int = 0) -> None:
    """Write the stratified subset of ``name`` into ``out/<name>``."""
    ds = load_dataset(name, data_dir, source="full")
    itr = stratified_indices(ds.y_train, train_per_class, seed)
    ite = stratified_indices(ds.y_test, test_per_class, seed + 1)
    parts = [ds.x_train[itr], ds.y_train[itr], ds.x_test[ite], ds.y_test[ite]]
    target = out / name
    target.mkdir(parents=True, exist_ok=True)
    sums = []
    for stem, arr in zip(DATASETS[name], parts):
        payload = encode_idx(arr)
        buf = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
            gz.write(payload)
        (target / f"{stem}.gz").write_bytes(buf.getvalue())
        sums.append(f"{sha256_hex(payload)}  {stem}")
    (target / "SHA256SUMS.txt").write_text("\n".join(sums) + "\n")
    (target / "INDICES.txt").write_text(
        f"# stratified subset of {name}, seed {seed}: {train_per_class}/class train, {test_per_class}/class test\n"
        "# train indices into the original train-*-ubyte files:\n" + " ".join(map(str, itr)) + "\n"
        "# test indices into the original t10k-*-ubyte files:\n" + " ".join(map(str, ite)) + "\n"
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("--train-per-class", type=int, default=300)
    ap.add_argument("--test-per-class", type=int, default=100)
    args = ap.parse_args(argv)
    for name in DATASETS:
        write_subset(name, args.data_dir, bundled_dir(), args.train_per_class, args.test_per_class)


if __name__ == "__main__":
    main()
