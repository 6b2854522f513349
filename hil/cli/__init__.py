"""The ``hil`` command line: one module per subcommand, each exposing ``register(subparsers)``.

Errors: every error of the package (bad file, bad field, instrument error, store error, ...)
is printed as one line ``hil COMMAND: error: MESSAGE`` and exits with code 2; anything else is a
bug and is printed as one line ``hil COMMAND: internal error: TYPE: MESSAGE`` with exit code 1.
The traceback appears only with ``-v`` (accepted before or after the subcommand).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback
from collections.abc import Sequence
from types import ModuleType

from drivers.errors import HilError
from hil import __version__
from hil.provenance import DEFAULT_BLAS_THREADS, pinned_blas_threads

#: Subcommand name -> its module in ``hil.cli``, in the order ``hil --help`` lists them. A module is
#: imported only when its command runs (or for ``hil --help``): ``hil run`` does not pay for the
#: imports of ``hil calibrate`` (0.2 s measured with ``python -X importtime``), which
#: matters for sweeps that start one process per trial.
COMMANDS = {
    "info": "info", "example": "example", "program": "program", "read": "read", "report": "report",
    "calibrate": "calibrate", "sim-server": "sim_server", "run": "run", "sweep": "sweep",
    "datasets": "datasets", "check": "check", "repair": "repair", "export": "export",
}

#: Exceptions that are the package's own way of saying "bad input / cannot do that": one line, exit 2.
#: (ValueError covers ConfigError, BenchConfigError, TargetError, UnicodeDecodeError, ...;
#: OSError covers StoreError, h5py's file errors, missing files; MemoryError a map too large.)
USER_ERRORS = (HilError, ValueError, OSError, RuntimeError, MemoryError)

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1


def command_module(name: str) -> ModuleType:
    """The module of subcommand ``name`` (a key of :data:`COMMANDS`)."""
    return importlib.import_module(f"hil.cli.{COMMANDS[name]}")


def _chosen_command(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (the first word not an option), if it is a known one."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``hil`` parser with every subcommand, or with subcommand ``only`` alone (its module is
    then the only one imported)."""
    parser = argparse.ArgumentParser(
        prog="hil",
        description="Hardware-in-the-loop experiments on 1T1R memristor arrays (bench or simulated).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output and tracebacks on errors (-vv for debug); also after COMMAND")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in [only] if only else COMMANDS:
        command_module(name).register(sub)
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
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(only=_chosen_command(argv))
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
