"""``hil repair RUN.h5``: make a run file left by a killed writer open in any HDF5 reader."""

from __future__ import annotations

import argparse
from hil.cli.common import add_run_file_command
from hil.runcheck import repair_run


def register(sub: argparse._SubParsersAction) -> None:
    add_run_file_command(sub, "repair", "clear a killed writer's flags so h5py/h5dump open the file",
                         "Clear the open-for-write flags a killed writer left (like h5clear -s) and drop rows "
                         "beyond the committed /ops extent. Refuses, changing nothing, while the writer is alive, "
                         "while another process has the file open, or if anything else does not verify "
                         "(see 'hil check').", run)


def run(args: argparse.Namespace) -> int:
    for line in repair_run(args.run_file):
        print(f"  {line}")
    print(f"{args.run_file}: repaired")
    return 0
