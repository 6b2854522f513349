"""``hil program``: program-and-verify a target conductance map and log every pulse."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from calibration.table import LevelTable, default_table
from drivers.bench import BenchArray, load_bench
from drivers.errors import HilError
from hil.cli.common import add_backend_options, check_run_out, make_sim_array, parse_shape, progress_bar
from drivers.sim_array import SimArray
from hil.program import STRATEGIES, ProgramProgress, program_verify_chunked, validate_targets
from hil.store import RunFinishedError, RunStore, StoreError, check_writable, open_run

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("program", help="program-and-verify a target conductance map",
                       description="Program a target conductance map with program-and-verify, "
                                   "logging every pulse and read to an HDF5 run file.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--targets", type=Path, metavar="FILE.npy",
                     help="target conductance map in siemens, 2-D .npy (NaN = leave the cell alone)")
    src.add_argument("--levels", type=int, metavar="N",
                     help="generate a random map of N levels of the technology (needs --shape)")
    src.add_argument("--resume", type=Path, metavar="RUN.h5",
                     help="continue a killed 'hil program' run from its last checkpoint (same file)")
    p.add_argument("--chunk-cells", type=int, default=4096,
                   help="cells programmed between checkpoints (default 4096)")
    p.add_argument("--shape", type=parse_shape, metavar="ROWSxCOLS", help="array shape for --levels, e.g. 128x128")
    p.add_argument("--tolerance", type=float, default=0.05, help="relative tolerance (default 0.05 = +-5%%)")
    p.add_argument("--strategy", choices=sorted(STRATEGIES), default="igvva", help="default: igvva")
    p.add_argument("--max-pulses", type=int, default=200, help="per-cell pulse cap (default 200)")
    p.add_argument("--verify-band", type=float, default=0.5,
                   help="verify window as a fraction of the tolerance (default 0.5)")
    p.add_argument("--table", metavar="FILE.h5|default",
                   help="calibration level table for the IGVVA first guess ('default': the shipped table)")
    add_backend_options(p)
    p.add_argument("--bench", type=Path, metavar="FILE.toml",
                   help="run on the instruments of a bench file (e.g. bench-sim.toml from `hil example bench-sim`) instead of --sim")
    p.add_argument("--no-form", action="store_true", help="skip forming (cells already formed)")
    p.add_argument("--out", type=Path, default=Path("run.h5"), help="run file (default run.h5)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run file")
    p.set_defaults(func=run)


#: Largest target map ``--targets`` accepts: rows, cols <= 65535 and at most 4096 x 4096 cells.
MAX_TARGET_CELLS = 4096 * 4096


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and data offset of a ``.npy`` file, read from its header only (no payload)."""
    fmt = np.lib.format
    with open(path, "rb") as f:
        major, _ = fmt.read_magic(f)
        read = {1: fmt.read_array_header_1_0, 2: fmt.read_array_header_2_0}.get(major)
        if read is None:
            raise ValueError(f"unsupported .npy format version {major}")
        shape, _, dtype = read(f, max_header_size=10000)
        return shape, dtype, f.tell()


def load_targets(path: Path) -> np.ndarray:
    """Load a 2-D numeric target map (S) from a ``.npy`` file, with a clear error otherwise.

    The header is checked (2-D, numeric, at most :data:`MAX_TARGET_CELLS` cells, payload as long
    as the header says) before any payload is read, so a header claiming a huge array costs no
    memory. A map with no finite target (all NaN) is refused: there is nothing to program.
    """
    where = f"--targets {str(path)!r}"
    if not path.is_file():
        raise ValueError(f"{where}: no such file")
    try:
        shape, dtype, offset = _npy_header(path)
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise ValueError(f"{where} is not a valid .npy array file ({exc})") from None
    if len(shape) != 2:
        raise ValueError(f"{where} must hold a 2-D array (rows, cols), got shape {shape}")
    if dtype.hasobject or not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)):
        raise ValueError(f"{where} must hold numbers in siemens (real), got dtype {dtype}")
    rows, cols = shape
    if not (1 <= rows <= 65535 and 1 <= cols <= 65535 and rows * cols <= MAX_TARGET_CELLS):
        raise ValueError(f"{where}: shape {shape} outside the allowed range (1x1 up to {MAX_TARGET_CELLS} cells, "
                         f"e.g. 4096x4096)")
    need = offset + rows * cols * dtype.itemsize
    have = path.stat().st_size
    if have < need:
        raise ValueError(f"{where} is truncated: its header says {shape} {dtype} ({need} bytes), the file has {have}")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{where} is not a valid .npy array file ({exc})") from None
    arr = arr.astype(float)
    if not np.any(~np.isnan(arr)):
        raise ValueError(f"{where}: every target is NaN (NaN = leave the cell alone); nothing to program")
    return arr


def generate_targets(technology, levels: int, shape: tuple[int, int], seed: int) -> np.ndarray:
    """A random map of ``levels`` equiprobable technology levels (S), seeded."""
    if levels < 2 or levels > 256:
        raise ValueError(f"--levels {levels} outside the allowed range [2, 256]")
    values = technology.level_targets(levels)
    rng = np.random.default_rng([seed, 0x7A46])
    return values[rng.integers(0, levels, size=shape)]


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except HilError as exc:  # instrument/protocol errors: a clear message, outputs already off
        raise RuntimeError(f"{type(exc).__name__}: {exc}") from exc


def check_args(args: argparse.Namespace):
    """Validate the options of a ``hil program`` run (nothing opened, nothing written).

    Returns:
        ``(bench, targets, shape, table)``: the bench configuration (or None), the loaded target
        map (S, or None for ``--levels``), the array shape and the level table (or None).
    """
    if (args.targets is None) == (args.levels is None):
        raise ValueError("give exactly one of --targets FILE.npy or --levels N")
    bench = load_bench(args.bench) if args.bench is not None else None
    if not (np.isfinite(args.tolerance) and 0 < args.tolerance < 1):
        raise ValueError(f"--tolerance {args.tolerance} outside the allowed range (0, 1) (0.05 = +-5%)")
    if args.max_pulses < 1:
        raise ValueError(f"--max-pulses {args.max_pulses} must be >= 1")
    if not 0 < args.verify_band <= 1:
        raise ValueError(f"--verify-band {args.verify_band} outside the allowed range (0, 1]")
    if args.targets is not None:
        targets = load_targets(args.targets)
        shape = targets.shape
    else:
        if args.levels is not None and not 2 <= args.levels <= 256:
            raise ValueError(f"--levels {args.levels} outside the allowed range [2, 256]")
        if args.shape is None and bench is None:
            raise ValueError("--levels needs --shape ROWSxCOLS")
        shape = args.shape or bench.shape
    if bench is not None and tuple(shape) != bench.shape:
        raise ValueError(f"target shape {tuple(shape)} differs from the bench's array {bench.shape} ({args.bench})")
    table = None
    if args.table is not None:
        if args.strategy != "igvva":
            raise ValueError(f"--table gives gate voltages (IGVVA first guesses); it needs --strategy igvva, not {args.strategy}")
        tech_name = bench.technology.name if bench is not None else args.sim
        table = default_table(tech_name) if args.table == "default" else LevelTable.load(args.table)
        if table.technology != tech_name:
            raise ValueError(f"--table {args.table!r} is for technology {table.technology!r}, the array is {tech_name!r}")
    return bench, (targets if args.targets is not None else None), shape, table


def _run(args: argparse.Namespace) -> int:
    given = [name for name, v in (("--targets", args.targets), ("--levels", args.levels),
                                  ("--resume", getattr(args, "resume", None))) if v is not None]
    if len(given) != 1:
        raise ValueError("give exactly one of --targets FILE.npy, --levels N or --resume RUN.h5"
                         + (f" (got {', '.join(given)})" if given else ""))
    if args.resume is not None:
        return _resume(args)
    bench, targets, shape, table = check_args(args)
    check_run_out(args.out, args.overwrite, reads=[args.targets, args.bench])
    if args.chunk_cells < 1:
        raise ValueError(f"--chunk-cells {args.chunk_cells} must be >= 1")

    array = BenchArray.from_config(bench) if bench is not None else make_sim_array(args, shape)
    with array:
        if args.targets is None:
            targets = generate_targets(array.technology, args.levels, shape, args.seed)
        targets = validate_targets(array, targets, args.tolerance)
        config = {
            "command": "program", "technology": array.technology.name, "shape": list(shape),
            "tolerance": args.tolerance, "strategy": args.strategy, "max_pulses": args.max_pulses,
            "verify_band": args.verify_band, "levels": args.levels,
            "targets_file": str(args.targets) if args.targets else None, "form": not args.no_form,
            "bench_file": str(args.bench) if args.bench else None,
            "bench": bench.as_dict() if bench is not None else None,
            "table": args.table, "chunk_cells": args.chunk_cells,
        }
        with RunStore.create(args.out, config=config, seed=args.seed, backend=array.identity()["backend"],
                             instruments=array.identity(), overwrite=args.overwrite, bench=bench) as store:
            store.attach_array("array", array)
            store.snapshot("targets", targets, array.bench_time)
            if table is not None:
                store.save_calibration(*table.to_store())
            if not args.no_form:
                array.form()
            report = _program(store, array, targets, config, table, None)
    _print_summary(report, config, args.out)
    return 0


def _checkpoint(store: RunStore, array, st: ProgramProgress) -> None:
    """Progress plus (for a simulated array) its devices' state: everything a resume needs."""
    arrays, meta = st.state()
    arrays = {f"progress.{k}": v for k, v in arrays.items()}
    meta = {"progress": meta, "kind": "bench_array", "technology": array.technology.name}
    if hasattr(array, "get_state"):
        state, sim_meta = array.get_state()
        arrays.update(state)
        meta.update(kind="sim_array", **sim_meta)
    store.checkpoint(arrays, meta)


def _program(store: RunStore, array, targets: np.ndarray, config: dict, table, st: ProgramProgress | None):
    """Program (from ``st``, or from the start), checkpointing before the first chunk and after each."""
    if st is None:
        st = ProgramProgress.start(targets)
        st.t0_bench = array.bench_time
        _checkpoint(store, array, st)
    with progress_bar(st.cells.size, "program-verify") as update:
        report = program_verify_chunked(
            array, targets, chunk_cells=int(config.get("chunk_cells", 4096)), progress_state=st,
            on_chunk=lambda s: _checkpoint(store, array, s),
            tolerance=config["tolerance"], strategy=config["strategy"], max_pulses=config["max_pulses"],
            verify_band=config["verify_band"], progress=update,
            first_guess=None if table is None else table.first_guess_map(targets),
        )
    store.snapshot("verify", report.g_verify, array.bench_time)
    store.snapshot("final", report.g_final, array.bench_time)
    for key, value in report.summary().items():
        if isinstance(value, (int, float)):
            store.metric(key, 0, 0, value)
    _checkpoint(store, array, ProgramProgress.from_state(*st.state()))
    return report


def _resume(args: argparse.Namespace) -> int:
    """Continue a killed ``hil program`` run from its last checkpoint, into the same file."""
    path = args.resume
    with open_run(path) as reader:
        config, status, seed = reader.config, reader.status, int(reader.attrs.get("seed", 0))
        ckpt = reader.load_checkpoint()
        targets = reader.snapshot("targets", 0)[0] if "targets" in reader.snapshot_names() else None
    if config.get("command") != "program":
        raise StoreError(f"{str(path)!r} is not a 'hil program' run (command {config.get('command')!r})")
    if status == "complete":
        raise RunFinishedError(f"run file {str(path)!r} is complete (status {status!r}); there is nothing to resume")
    if ckpt is None or targets is None:
        raise StoreError(f"{str(path)!r} was killed before its first checkpoint; start it again")
    saved, meta = ckpt
    st = ProgramProgress.from_state({k[len("progress."):]: v for k, v in saved.items() if k.startswith("progress.")},
                                    meta["progress"])
    if config.get("bench_file"):
        array = BenchArray.from_config(load_bench(Path(config["bench_file"])))
        log.warning("%s: bench array: the devices keep the state they have now", path)
    else:
        array = SimArray(tuple(config["shape"]), config["technology"], seed=seed)
        array.set_state({k: v for k, v in saved.items() if not k.startswith("progress.")}, meta)
    table = None
    if config.get("table"):
        table = default_table(config["technology"]) if config["table"] == "default" else LevelTable.load(config["table"])
    with array:
        with RunStore.resume(path) as store:
            store.attach_array("array", array)
            report = _program(store, array, targets, config, table, st)
    _print_summary(report, config, path)
    return 0


def _print_summary(report, config: dict, out: Path) -> None:
    s = report.summary()
    print(
        f"programmed {s['cells']} cells ({config['strategy']}, +-{100 * config['tolerance']:g}%): "
        f"yield {100 * s['yield']:.2f}%, pulses mean {s['mean_pulses']:.1f} max {s['max_pulses']}, "
        f"bench time {s['bench_time_s']:.1f} s, wall {s['wall_time_s']:.2f} s -> {out}"
    )
