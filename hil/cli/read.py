"""``hil read``: measure a conductance map into a run file and a PNG heat map."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from drivers.bench import BenchArray, load_bench
from drivers.errors import HilError
from drivers.sim_array import SimArray
from hil.cli.common import add_backend_options, check_run_out, make_sim_array, parse_shape
from hil.store import RunStore, StoreError, check_not_reading, check_writable, open_run


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("read", help="read a conductance map to HDF5 and a PNG heat map",
                       description="Read every cell of an array. With --run, continue the simulated "
                                   "array left by 'hil program' (optionally after --after seconds of "
                                   "relaxation); otherwise read a fresh simulated array of --shape.")
    p.add_argument("--run", type=Path, metavar="RUN.h5", help="continue the simulated array saved in this run file")
    p.add_argument("--bench", type=Path, metavar="BENCH.toml",
                   help="read the array on the instruments of a bench file (real, or served by 'hil sim-server')")
    p.add_argument("--cells", type=parse_cells, metavar="R0:R1,C0:C1",
                   help="with --bench: read only rows R0..R1-1 and columns C0..C1-1 (default: every cell); others are NaN")
    p.add_argument("--after", type=float, default=0.0, metavar="SECONDS",
                   help="let the devices relax this long before reading (default 0 s)")
    p.add_argument("--shape", type=parse_shape, metavar="ROWSxCOLS", help="array shape (without --run)")
    add_backend_options(p)
    p.add_argument("--form", action="store_true", help="form the fresh array before reading")
    p.add_argument("--out", type=Path, default=Path("read.h5"), help="run file to write (default read.h5)")
    p.add_argument("--png", type=Path, help="heat map file (default: --out with .png)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=run)


def _array_from_run(path: Path) -> SimArray:
    with open_run(path) as reader:
        ckpt = reader.load_checkpoint()
    if ckpt is None or ckpt[1].get("kind") != "sim_array":
        raise StoreError(f"{str(path)!r} holds no simulated-array state (was it written by 'hil program --sim'?)")
    state, meta = ckpt
    array = SimArray(tuple(meta["shape"]), meta["technology"], seed=meta.get("seed"))
    array.set_state({k: v for k, v in state.items() if not k.startswith("progress.")}, meta)
    return array


def parse_cells(text: str) -> tuple[slice, slice]:
    """``"R0:R1,C0:C1"`` -> (row slice, column slice); half-open, like numpy."""
    try:
        rows, cols = text.split(",")
        r0, r1 = (int(x) for x in rows.split(":"))
        c0, c1 = (int(x) for x in cols.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--cells {text!r} must look like R0:R1,C0:C1 (e.g. 0:4,0:8)") from None
    if not (0 <= r0 < r1 and 0 <= c0 < c1):
        raise argparse.ArgumentTypeError(f"--cells {text!r}: need 0 <= R0 < R1 and 0 <= C0 < C1")
    return slice(r0, r1), slice(c0, c1)


def _read_bench(args: argparse.Namespace, png: Path) -> int:
    """``--bench``: read the conductance map of the bench's array into a run file and a PNG."""
    if args.run is not None or args.shape is not None or args.form or args.after:
        raise ValueError("--bench reads the array as it is: it does not take --run, --shape, --form or --after")
    bench = load_bench(args.bench)
    mask = None
    if args.cells is not None:
        rows, cols = args.cells
        if rows.stop > bench.shape[0] or cols.stop > bench.shape[1]:
            raise ValueError(f"--cells rows {rows.start}:{rows.stop}, columns {cols.start}:{cols.stop} exceed the bench's array {bench.shape}")
        mask = np.zeros(bench.shape, bool)
        mask[rows, cols] = True
    try:
        with BenchArray.from_config(bench) as array:
            config = {"command": "read", "bench_file": str(args.bench), "bench": bench.as_dict(),
                      "cells": None if mask is None else [[rows.start, rows.stop], [cols.start, cols.stop]],
                      "shape": list(array.shape), "technology": array.technology.name}
            with RunStore.create(args.out, config=config, seed=None, backend="bench",
                                 instruments=array.identity(), overwrite=args.overwrite) as store:
                store.attach_array("array", array)
                g = array.read(mask)
                store.snapshot("read", g, array.bench_time)
    except HilError as exc:  # instrument/protocol errors: a clear message, outputs already off
        raise RuntimeError(f"{type(exc).__name__}: {exc}") from exc
    from hil.figures import heat_map  # matplotlib only when drawing

    heat_map(png, g, f"{bench.name}: {int(np.count_nonzero(np.isfinite(g)))} cells")
    print(f"read {int(np.count_nonzero(np.isfinite(g)))} cells on {bench.name}: median {1e6 * float(np.nanmedian(g)):.2f} µS -> {args.out}, {png}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.after < 0:
        raise ValueError(f"--after {args.after} must be >= 0 s")
    png = args.png or args.out.with_suffix(".png")
    check_not_reading(args.out, args.run)
    check_not_reading(png, args.run)
    check_run_out(args.out, args.overwrite, reads=[args.run])
    if png.suffix.lower() != ".png":
        raise ValueError(f"--png {str(png)!r}: the heat map file must end in .png")
    check_writable(png, args.overwrite)
    if args.bench is not None:
        return _read_bench(args, png)
    if args.cells is not None:
        raise ValueError("--cells needs --bench")
    if args.run is not None:
        array = _array_from_run(args.run)
    else:
        if args.shape is None:
            raise ValueError("give --run RUN.h5 or --shape ROWSxCOLS")
        array = make_sim_array(args, args.shape)
    with array:
        config = {"command": "read", "from_run": str(args.run) if args.run else None, "after_s": args.after,
                  "shape": list(array.shape), "technology": array.technology.name}
        seed = getattr(array, "seed", args.seed)
        with RunStore.create(args.out, config=config, seed=seed, backend=array.identity()["backend"],
                             instruments=array.identity(), overwrite=args.overwrite) as store:
            store.attach_array("array", array)
            if args.form and args.run is None:
                array.form()
            array.wait(args.after)
            g = array.read()
            store.snapshot("read", g, array.bench_time)
    from hil.figures import heat_map  # matplotlib only when drawing

    heat_map(png, g, f"{array.technology.name} {array.shape[0]}x{array.shape[1]}, t = {array.bench_time:.0f} s")
    print(f"read {g.size} cells: median {1e6 * float(np.nanmedian(g)):.2f} µS -> {args.out}, {png}")
    return 0
