"""Pieces shared by the subcommands: array construction, shapes, progress bars."""

from __future__ import annotations

import argparse
import contextlib
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from drivers.array import CrossbarArray
from drivers.sim.presets import PRESETS
from drivers.sim_array import SimArray


def parse_shape(text: str) -> tuple[int, int]:
    """``"128x128"`` -> (128, 128); raises ValueError naming the allowed form."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX,]\s*(\d+)\s*", text or "")
    if not m:
        raise ValueError(f"--shape {text!r} is not of the form ROWSxCOLS (e.g. 128x128)")
    rows, cols = int(m.group(1)), int(m.group(2))
    if not (1 <= rows <= 65535 and 1 <= cols <= 65535):
        raise ValueError(f"--shape {text!r} outside the allowed range 1x1 .. 65535x65535")
    return rows, cols


#: File name endings a run file may have.
RUN_SUFFIXES = (".h5", ".hdf5")


def check_run_out(path: Path, overwrite: bool = False, *, flag: str = "--out",
                  reads: Iterable[Path | None] = ()) -> Path:
    """Refuse an output run file that is not ``.h5``/``.hdf5``, that is one of the files the
    command ``reads``, or that cannot be created (:func:`hil.store.check_writable`)."""
    from hil.store import check_writable

    path = Path(path)
    if path.is_dir():
        return check_writable(path, overwrite)  # raises: "is a directory"
    if path.suffix.lower() not in RUN_SUFFIXES:
        raise ValueError(f"{flag} {str(path)!r}: a run file must end in .h5 or .hdf5")
    for source in reads:
        if source is not None and Path(source).exists() and path.exists() and Path(source).samefile(path):
            raise ValueError(f"{flag} {str(path)!r} is the file this command reads; write to another file")
    return check_writable(path, overwrite)


def add_run_file_command(sub: argparse._SubParsersAction, name: str, help: str, description: str,
                         func: callable) -> argparse.ArgumentParser:
    """A subcommand that works on one run file: ``hil NAME RUN.h5 ...`` calling ``func(args)``."""
    p = sub.add_parser(name, help=help, description=description)
    p.add_argument("run_file", type=Path, metavar="RUN.h5")
    p.set_defaults(func=func)
    return p


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    """``--sim TECH`` (default hfo2) and ``--seed``."""
    parser.add_argument("--sim", choices=sorted(PRESETS), default="hfo2",
                        help="simulated technology (default: hfo2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated devices (default: 0)")


def make_sim_array(args: argparse.Namespace, shape: tuple[int, int]) -> CrossbarArray:
    return SimArray(shape, args.sim, seed=args.seed)


@contextlib.contextmanager
def progress_bar(total: int, desc: str, unit: str = "cell") -> Iterator[callable]:
    """A tqdm bar driven by ``update(done, total)`` callbacks (as program_verify gives)."""
    from tqdm import tqdm  # only when a bar is shown (the import costs ~50 ms of every command)

    bar = tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, mininterval=0.2)

    def update(done: int, _total: int) -> None:
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        bar.close()
