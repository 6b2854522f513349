"""``hil check RUN.h5``: verify a run file and print a short verdict (exit 1 on a problem)."""

from __future__ import annotations

import argparse
from hil.cli.common import add_run_file_command
from hil.runcheck import check_run, problems


def register(sub: argparse._SubParsersAction) -> None:
    add_run_file_command(sub, "check", "verify a run file (schema, clocks, counters, checkpoints, status)",
                         "Verify a run file: schema version, status, the /ops extent against its datasets, "
                         "monotonic bench clocks per array, metric and snapshot tables, and that the latest "
                         "checkpoint loads. Exit 0 if sound, 1 if not.", run)


def run(args: argparse.Namespace) -> int:
    findings = check_run(args.run_file)
    for x in findings:
        print(f"  {'ok  ' if x.ok else 'FAIL'} {x.text}")
    bad = problems(findings)
    if bad:
        print(f"{args.run_file}: {len(bad)} problem(s): {bad[0].text}")
        return 1
    print(f"{args.run_file}: OK")
    return 0
