"""``hil calibrate``: characterise an array, fit the device model, write a level table and figures.

    hil calibrate --sim hfo2 --out table.h5 [--shape 32x32] [--seed N] [--run char.h5]
    hil calibrate --from-run char.h5 --out table.h5        (fit an existing characterisation run)
    hil calibrate --bench bench.toml --out table.h5        (needs drivers.bench)

The characterisation is logged to a run file (``--run``, default ``<out>_char.h5``); the table
is written atomically; PNG figures go beside the table (``<out>_iv.png``, ``_lrs.png``,
``_hrs.png``, ``_levels.png``, ``_noise.png``, and ``_spread.png``: when an array is measured,
its usable cells are finally program-and-verified to 50-200 uS with Milo et al.'s kind of IGVVA
settings and the read-back spread is drawn beside their published line, see
:mod:`hil.verify_spread`).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from pathlib import Path

import numpy as np

from calibration.fit import fit
from calibration.table import apply_levels, build_table
from drivers.sim.presets import get_preset
from drivers.sim_array import SimArray
from hil.cli.common import add_backend_options, check_run_out, parse_shape
from hil.experiments.characterise import (
    CharacterisationPlan,
    characterise,
    characterise_levels,
    load_characterisation,
)
from hil.store import RunStore, check_writable
from hil.verify_spread import MILO_LEVELS, MILO_LIKE, measure_spread

log = logging.getLogger(__name__)

FIGURES = ("iv", "lrs", "hrs", "levels", "noise", "spread")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="characterise, fit the device model, write a level table",
                       description="Characterise an array (forming, quasi-static I-V, LRS vs I_C, HRS vs "
                                   "V_STOP, read noise, relaxation, multi-level CDFs), fit the simulator's "
                                   "device model with uncertainties, and write an HDF5 level table and PNG "
                                   "figures.")
    add_backend_options(p)
    p.add_argument("--bench", type=Path, metavar="FILE.toml", help="characterise a bench array described by FILE")
    p.add_argument("--from-run", type=Path, metavar="CHAR.h5",
                   help="fit an existing characterisation run instead of measuring")
    p.add_argument("--shape", type=parse_shape, default=(32, 32), metavar="ROWSxCOLS",
                   help="simulated array shape (default 32x32)")
    p.add_argument("--out", type=Path, default=Path("table.h5"), help="level table to write (default table.h5)")
    p.add_argument("--run", type=Path, metavar="CHAR.h5", help="characterisation run file (default <out>_char.h5)")
    p.add_argument("--levels", type=int, help="number of levels (default: the technology's, else 16)")
    p.add_argument("--margin", type=float, default=0.5,
                   help="first-guess margin below the median gate, in units of the level spread (default 0.5)")
    p.add_argument("--cycles", type=int, default=4, help="SET/RESET cycles per condition (default 4)")
    p.add_argument("--relax-max", type=float, default=1e4, metavar="SECONDS",
                   help="last relaxation read after programming, s (default 1e4)")
    p.add_argument("--boot", type=int, default=200, help="bootstrap resamples for the uncertainties (default 200)")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=run)


def _open_bench(path: Path):
    from drivers.bench import open_bench

    return open_bench(path)


def _relax_times(t_max: float) -> tuple[float, ...]:
    if not (np.isfinite(t_max) and 10.0 <= t_max <= 1e6):
        raise ValueError(f"--relax-max {t_max} outside the allowed range [10, 1e6] s")
    decades = np.log10(t_max)
    return tuple(float(v) for v in np.unique(np.round(np.logspace(0, decades, int(2 * decades) + 1), 6)))


def run(args: argparse.Namespace) -> int:
    # ---- validate everything before touching an array or a file
    if args.levels is not None and not 2 <= args.levels <= 64:
        raise ValueError(f"--levels {args.levels} outside the allowed range [2, 64]")
    if not (np.isfinite(args.margin) and 0 <= args.margin <= 5):
        raise ValueError(f"--margin {args.margin} outside the allowed range [0, 5] (units of the level spread)")
    if not 2 <= args.cycles <= 100:
        raise ValueError(f"--cycles {args.cycles} outside the allowed range [2, 100]")
    if not 20 <= args.boot <= 10000:
        raise ValueError(f"--boot {args.boot} outside the allowed range [20, 10000]")
    rows, cols = args.shape
    if rows * cols < 64:
        raise ValueError(f"--shape {rows}x{cols} has {rows * cols} cells; calibration needs at least 64 (e.g. 8x8)")
    plan = CharacterisationPlan(cycles=args.cycles, relax_times=_relax_times(args.relax_max))
    out = check_run_out(Path(args.out), args.overwrite, reads=[args.from_run, args.bench])
    stem = out.with_suffix("")
    pngs = [] if args.no_figures else [stem.with_name(f"{stem.name}_{k}.png") for k in FIGURES]
    for png in pngs:
        check_writable(png, args.overwrite)

    truth = None
    levels_data = None
    spread = None
    if args.from_run is not None:
        data = load_characterisation(args.from_run)
        base = _base_params(data.technology)
        array = None
    else:
        run_path = args.run or stem.with_name(f"{stem.name}_char.h5")
        if run_path.resolve() == out.resolve():
            raise ValueError(f"--run {str(run_path)!r} and --out {str(out)!r} are the same file")
        check_run_out(run_path, args.overwrite, flag="--run", reads=[args.bench])
        if args.bench is not None:
            array = _open_bench(args.bench)
            backend = "bench"
        else:
            array = SimArray(args.shape, args.sim, seed=args.seed)
            truth = array.model.params
            backend = "sim"
        base = _base_params(array.technology.name)
        conditions = plan.resolve(array)

    n_levels = args.levels
    # the array's own context manager leaves it in its safe idle state (outputs off) on any exit
    with array if array is not None else contextlib.nullcontext():
        if array is not None:
            tech = array.technology
            config = {"command": "calibrate", "plan": conditions, "technology": tech.name,
                      "shape": list(array.shape), "seed": args.seed, "margin": args.margin}
            with RunStore.create(run_path, config=config, seed=args.seed, backend=backend,
                                 instruments=array.identity(), overwrite=args.overwrite) as store:
                from tqdm import tqdm

                bar = tqdm(total=plan.n_steps(conditions), desc="characterise", unit="step", dynamic_ncols=True,
                           mininterval=0.2)
                try:
                    def progress(done: int, total: int, stage: str) -> None:
                        bar.set_description(stage, refresh=False)
                        bar.update(done - bar.n)
                    data = characterise(array, plan, store=store, progress=progress, conditions=conditions)
                finally:
                    bar.close()
                result = fit(data, base, n_boot=args.boot, seed=args.seed)
                n_levels = n_levels or (len(tech.levels) or 16)
                table = build_table(data, result, tech.level_targets(n_levels), margin=args.margin,
                                    source=_source(run_path, array))
                usable = ~data.excluded_mask().reshape(array.shape)
                levels_data = characterise_levels(array, table.v_gate, table.lcs_v_stop, mask=usable, store=store)
                table = apply_levels(table, levels_data)
                low, high = tech.g_window
                compare = tuple(g for g in MILO_LEVELS if low <= g <= high)
                spread = measure_spread(array, compare, mask=usable) if len(compare) >= 2 else None
                for g, sig in zip(spread.g_target, spread.sigma) if spread is not None else ():
                    store.metric(f"spread_sigma_{g * 1e6:.0f}uS", 0, 0, float(sig))
                arrays, attrs = table.to_store()
                store.save_calibration(arrays, attrs)
                for name, est in result.estimates.items():
                    store.metric(f"fit_{name}", 0, 0, est.value)
                    store.metric(f"fit_{name}_stderr", 0, 0, est.stderr)
        else:
            result = fit(data, base, n_boot=args.boot, seed=args.seed)
            tech = get_preset(data.technology).technology if _is_preset(data.technology) else None
            if n_levels is None:
                n_levels = len(tech.levels) if tech is not None and tech.levels else 16
            if tech is None:
                raise ValueError(f"technology {data.technology!r} has no preset to take level targets from")
            table = build_table(data, result, tech.level_targets(n_levels), margin=args.margin,
                                source=f"fit of {data.source}; spread from the I_C sweep (no level run)")
    table.save(out)
    from calibration import figures  # matplotlib: imported only when drawing (a fast `hil` start)

    written = [] if args.no_figures else figures.all_figures(stem, data, result, levels_data,
                                                               table if levels_data is not None else None)
    if spread is not None and not args.no_figures:
        written.append(figures.verify_spread(
            stem.with_name(f"{stem.name}_spread.png"), spread.g_target, spread.sigma, spread.n_cells,
            f"{data.technology} {data.shape[0]}x{data.shape[1]}: IGVVA ±{100 * MILO_LIKE['tolerance']:.0f} %, "
            f"{MILO_LIKE['max_pulses']} pulses, read 1 s after"))
    _print_summary(result, truth, table, out, written, data)
    if spread is not None:
        _print_spread(spread)
    return 0


def _print_spread(spread) -> None:
    from calibration.published import milo_igvva_sigma

    print(f"spread after program-and-verify (IGVVA ±{100 * MILO_LIKE['tolerance']:.0f} %, verify "
          f"±{100 * MILO_LIKE['tolerance'] * MILO_LIKE['verify_band']:.0f} %, {MILO_LIKE['max_pulses']} pulses; "
          "read back 1 s later; sigma = IQR/1.349) vs Milo et al. IRPS 2021 Fig. 4:")
    print(f"  {'G target':>9s} {'cells':>6s} {'sigma':>8s} {'Milo':>8s} {'ratio':>6s} {'in ±tol':>8s}")
    for g, n, sig, y in zip(spread.g_target, spread.n_cells, spread.sigma, spread.yield_):
        line = float(milo_igvva_sigma(g))
        print(f"  {g * 1e6:7.0f}µS {int(n):6d} {sig * 1e6:6.2f}µS {line * 1e6:6.2f}µS {sig / line:6.2f} {100 * y:7.1f}%")


def _is_preset(name: str) -> bool:
    try:
        get_preset(name)
        return True
    except ValueError:
        return False


def _base_params(technology: str):
    """Base parameters for what is not fitted: the technology's preset (hfo2 for unknown ones)."""
    if _is_preset(technology):
        return get_preset(technology).physics
    log.warning("no preset for technology %r; unfitted parameters are taken from the hfo2 preset", technology)
    return get_preset("hfo2").physics


def _source(run_path: Path, array) -> str:
    ident = array.identity()
    text = f"fit of characterisation run {Path(run_path).name} ({ident.get('array', ident.get('backend'))})"
    if isinstance(array, SimArray):
        text += f"; simulated preset whose magnitudes come from: {array.technology.reference}"
    return text


def _print_summary(result, truth, table, out: Path, pngs: list[Path], data) -> None:
    print(f"calibrated {data.technology} {data.shape[0]}x{data.shape[1]}: "
          f"{result.derived['cells_used']} cells used, {result.derived['cells_excluded']} excluded; "
          f"uncertainties: bootstrap standard errors ({result.n_boot} resamples)")
    head = f"  {'parameter':15s} {'fitted':>12s} {'± s.e.':>10s}"
    if truth is not None:
        head += f" {'true (sim)':>12s} {'error':>8s} {'error/s.e.':>10s}"
    print(head)
    for row in result.summary_rows(truth):
        line = f"  {row['name']:15s} {row['value']:12.4g} {row['stderr']:10.2g}"
        if truth is not None:
            z = (row["value"] - row["true"]) / row["stderr"] if row["stderr"] > 0 else float("nan")
            line += f" {row['true']:12.4g} {100 * row['rel_error']:+7.1f}% {z:+10.1f}"
        print(line)
    print(f"  not fitted (kept from the {result.params.name} preset): {', '.join(result.not_fitted)}")
    sw = result.derived
    if sw.get("iv_v_gate"):
        print("  switching voltages (I-V staircase, median): " + ", ".join(
            f"V_G {g:.2f} V: SET {s:.2f} V RESET {r:.2f} V"
            for g, s, r in zip(sw["iv_v_gate"], sw["iv_v_set_median"], sw["iv_v_reset_median"])))
    print(f"level table ({table.n_levels} levels, V_STOP {table.lcs_v_stop:.2f} V) -> {out}")
    print(f"  {'level':>5s} {'G target':>10s} {'I_C':>9s} {'V_G':>7s} {'V_G first':>9s} {'median':>10s} {'sigma':>6s} {'cells':>6s}")
    for l in range(table.n_levels):
        print(f"  {l:5d} {table.g_target[l] * 1e6:8.1f}µS {table.i_c[l] * 1e6:7.1f}µA {table.v_gate[l]:6.3f}V "
              f"{table.v_gate_first[l]:8.3f}V {table.g_median[l] * 1e6:8.1f}µS {table.sigma[l]:6.3f} {int(table.n_cells[l]):6d}")
    if pngs:
        print("figures: " + ", ".join(str(p) for p in pngs))
