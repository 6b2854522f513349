"""The ``hil`` command line: one module per subcommand, each exposing ``register(subparsers)``.

Errors: every error of the package (bad file, bad field, instrument error, store error, ...)
is printed as one line ``hil COMMAND: error: MESSAGE`` and exits with code 2; anything else is a
bug and is printed as one line ``hil COMMAND: internal error: TYPE: MESSAGE`` with exit code 1.
The traceback appears only with ``-v`` (accepted before or after the subcommand).
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Sequence

from drivers.errors import HilError
from hil import __version__
from hil.cli import calibrate, check, datasets, example, export, info, program, read, repair, report, run, sim_server, sweep
from hil.provenance import DEFAULT_BLAS_THREADS, pinned_blas_threads

#: Subcommand modules, in the order ``hil --help`` lists them.
COMMANDS = [info, example, program, read, report, calibrate, sim_server, run, sweep, datasets, check, repair, export]

#: Exceptions that are the package's own way of saying "bad input / cannot do that": one line, exit 2.
#: (ValueError covers ConfigError, BenchConfigError, TargetError, UnicodeDecodeError, ...;
#: OSError covers StoreError, h5py's file errors, missing files; MemoryError a map too large.)
USER_ERRORS = (HilError, ValueError, OSError, RuntimeError, MemoryError)

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hil",
        description="Hardware-in-the-loop experiments on 1T1R memristor arrays (bench or simulated).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output and tracebacks on errors (-vv for debug); also after COMMAND")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in COMMANDS:
        module.register(sub)
    for subparser in sub.choices.values():
        # SUPPRESS: without -v after the command the value given before it is kept
        subparser.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                               help="more log output and tracebacks on errors (-vv for debug)")
    return parser


def _message(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
    return " ".join(text.split())  # one line


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hil`` console script. Returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    verbose = int(getattr(args, "verbose", 0) or 0)
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        with pinned_blas_threads(DEFAULT_BLAS_THREADS):  # the same bits whatever the environment's BLAS threads
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("hil: interrupted; outputs left off, run file closed", file=sys.stderr)
        return 130
    except USER_ERRORS as exc:
        if verbose:
            traceback.print_exc()
        print(f"hil {args.command}: error: {_message(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as exc:  # a bug: still one line unless -v
        if verbose:
            traceback.print_exc()
        print(f"hil {args.command}: internal error: {type(exc).__name__}: {_message(exc)} "
              f"(run with -v for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL_ERROR
