"""``hil export RUN.h5 --to netcdf|parquet|csv``: the run's operations and metrics as files."""

from __future__ import annotations

import argparse
from pathlib import Path

from hil.cli.common import add_run_file_command
from hil.export import FORMATS, export_run


def register(sub: argparse._SubParsersAction) -> None:
    p = add_run_file_command(sub, "export", "export a run file's /ops and metrics to NetCDF, Parquet or CSV",
                             "Export a run file: netcdf writes one .nc file (xarray); parquet and csv write "
                             "<stem>.ops, <stem>.metrics and <stem>.arrays. Needs the extra memristor-hil[export].",
                             run)
    p.add_argument("--to", required=True, choices=FORMATS, help="output format")
    p.add_argument("--out", type=Path, help="output file (netcdf) or stem (parquet, csv); default beside RUN.h5")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")


def run(args: argparse.Namespace) -> int:
    for path in export_run(args.run_file, args.to, args.out, args.overwrite):
        print(f"  wrote {path}")
    return 0
