"""Pulse savings of program-and-verify (IGVVA) seeded from a calibrated level table.

Calibrates one simulated chip (``--cal-seed``, 32x32), then programs *another* chip of the same
technology (``--seed``) to a random map of the technology's levels twice from the same state:
from the default start (bottom of the gate range) and from the table's per-cell first guess.
Also reports the shipped default table. Prints mean / median / max pulses per cell, yield and
the estimated bench time.

    python benchmarks/calibration_savings.py [--tech hfo2] [--shape 128x128] [--levels 8] [--seed 1]
"""

from __future__ import annotations

import argparse

import numpy as np

from calibration.fit import fit
from calibration.table import apply_levels, build_table, default_table
from drivers.sim.presets import get_preset
from drivers.sim_array import SimArray
from hil.cli.common import parse_shape
from hil.cli.program import generate_targets
from hil.experiments.characterise import characterise, characterise_levels
from hil.program import program_verify


def calibrated_table(tech: str, levels: int, seed: int, margin: float):
    array = SimArray((32, 32), tech, seed=seed)
    data = characterise(array)
    result = fit(data, get_preset(tech).physics, n_boot=50)
    table = build_table(data, result, array.technology.level_targets(levels), margin=margin)
    lv = characterise_levels(array, table.v_gate, table.lcs_v_stop, mask=~data.excluded_mask().reshape(array.shape))
    return apply_levels(table, lv)


def program(tech: str, shape, levels: int, seed: int, table=None):
    array = SimArray(shape, tech, seed=seed)
    array.form()
    targets = generate_targets(array.technology, levels, shape, seed)
    return program_verify(array, targets, first_guess=None if table is None else table.first_guess_map(targets))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tech", choices=["hfo2", "siox"], default="hfo2")
    ap.add_argument("--shape", type=parse_shape, default=(128, 128))
    ap.add_argument("--levels", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1, help="chip that is programmed")
    ap.add_argument("--cal-seed", type=int, default=100, help="chip that is characterised")
    ap.add_argument("--margin", type=float, default=0.5)
    args = ap.parse_args()
    rows = [("uncalibrated (v_gate_min start)", program(args.tech, args.shape, args.levels, args.seed))]
    table = calibrated_table(args.tech, args.levels, args.cal_seed, args.margin)
    rows.append((f"calibrated table (chip {args.cal_seed}, margin {args.margin:g})",
                 program(args.tech, args.shape, args.levels, args.seed, table)))
    rows.append(("shipped default table", program(args.tech, args.shape, args.levels, args.seed, default_table(args.tech))))
    print(f"{args.tech} {args.shape[0]}x{args.shape[1]}, {args.levels} levels, IGVVA +-5 %, programmed chip seed {args.seed}")
    print(f"  {'first guess':42s} {'mean':>6s} {'median':>6s} {'max':>4s} {'yield':>7s} {'bench time':>10s}")
    base = rows[0][1].mean_pulses
    for name, r in rows:
        p = r.pulses[r.programmed]
        print(f"  {name:42s} {r.mean_pulses:6.2f} {np.median(p):6.0f} {p.max():4d} {100 * r.yield_:6.2f}% "
              f"{r.bench_time:9.0f}s   x{base / r.mean_pulses:.1f} fewer pulses")


if __name__ == "__main__":
    main()
