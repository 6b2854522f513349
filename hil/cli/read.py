"""``hil read``: measure a conductance map into a run file and a PNG heat map."""

from __future__ import annotations

import argparse
from pathlib import Path

from drivers.sim_array import SimArray
from hil.cli.common import add_backend_options, check_run_out, make_sim_array, parse_shape
from hil.figures import heat_map
from hil.store import RunStore, StoreError, check_writable, open_run


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("read", help="read a conductance map to HDF5 and a PNG heat map",
                       description="Read every cell of an array. With --run, continue the simulated "
                                   "array left by 'hil program' (optionally after --after seconds of "
                                   "relaxation); otherwise read a fresh simulated array of --shape.")
    p.add_argument("--run", type=Path, metavar="RUN.h5", help="continue the simulated array saved in this run file")
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
    array.set_state(state, meta)
    return array


def run(args: argparse.Namespace) -> int:
    if args.after < 0:
        raise ValueError(f"--after {args.after} must be >= 0 s")
    png = args.png or args.out.with_suffix(".png")
    check_run_out(args.out, args.overwrite, reads=[args.run])
    if png.suffix.lower() != ".png":
        raise ValueError(f"--png {str(png)!r}: the heat map file must end in .png")
    if args.run is not None and png.exists() and png.samefile(args.run):
        raise ValueError(f"--png {str(png)!r} is the file this command reads; write to another file")
    check_writable(png, args.overwrite)
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
            array.add_listener(store.append_ops)
            if args.form and args.run is None:
                array.form()
            array.wait(args.after)
            g = array.read()
            store.snapshot("read", g, array.bench_time)
    heat_map(png, g, f"{array.technology.name} {array.shape[0]}x{array.shape[1]}, t = {array.bench_time:.0f} s")
    print(f"read {g.size} cells: median {1e6 * float(__import__('numpy').nanmedian(g)):.2f} µS -> {args.out}, {png}")
    return 0
