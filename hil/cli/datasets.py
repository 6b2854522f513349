"""``hil datasets``: where the datasets are looked for, what is there, and whether it verifies."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("datasets", help="show the bundled subsets and the full-dataset directory")
    p.add_argument("--data-dir", type=Path, help="full-dataset directory (default $HIL_DATA_DIR)")
    p.add_argument("--verify", action="store_true", help="load every file and check its payload SHA-256")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hil.datasets import DATASETS, ENV_VAR, bundled_dir, load_dataset, resolve_data_dir

    print(f"bundled subsets: {bundled_dir()} (licences: {bundled_dir() / 'ATTRIBUTION.md'})")
    for name in DATASETS:
        ds = load_dataset(name, source="bundled", verify=True)
        print(f"  {name}: {len(ds.y_train)} train / {len(ds.y_test)} test images, checksums OK")
    directory = resolve_data_dir(args.data_dir)
    if directory is None:
        print(f"full datasets: no directory (set {ENV_VAR} or pass --data-dir); expected layout "
              f"<dir>/<name>/<file>.gz with <name> in {list(DATASETS)}")
        return 0
    print(f"full datasets: {directory}")
    status = 0
    for name, files in DATASETS.items():
        present = [f for f in files if (directory / name / f"{f}.gz").is_file() or (directory / name / f).is_file()]
        missing = sorted(set(files) - set(present))
        if missing:
            print(f"  {name}: missing {', '.join(missing)} -> put them in {directory / name}")
            status = 1
            continue
        if args.verify:
            ds = load_dataset(name, directory, source="full", verify=True)
            print(f"  {name}: {len(ds.y_train)} train / {len(ds.y_test)} test images, checksums OK")
        else:
            print(f"  {name}: all 4 files present (use --verify to check checksums)")
    return status
