"""Pieces shared by the subcommands: array construction, shapes, progress bars."""

from __future__ import annotations

import argparse
import contextlib
import re
from collections.abc import Iterator

from tqdm import tqdm

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
    bar = tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, mininterval=0.2)

    def update(done: int, _total: int) -> None:
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        bar.close()
