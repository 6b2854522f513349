"""The ``hil`` command line: one module per subcommand, each exposing ``register(subparsers)``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from hil import __version__
from hil.cli import calibrate, check, datasets, export, info, program, read, repair, report, run, sim_server, sweep

#: Subcommand modules, in the order ``hil --help`` lists them.
COMMANDS = [info, program, read, report, calibrate, sim_server, run, sweep, datasets, check, repair, export]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hil",
        description="Hardware-in-the-loop experiments on 1T1R memristor arrays (bench or simulated).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hil`` console script. Returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("hil: interrupted; outputs left off, run file closed", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError) as exc:  # user-facing errors: no traceback
        if args.verbose >= 2:
            raise
        print(f"hil {args.command}: error: {exc}", file=sys.stderr)
        return 2
