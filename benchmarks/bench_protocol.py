"""Protocol cost of program-and-verify on the simulated bench, counted in the simulated
instruments, and the bench time estimated for a 128x128 array at 8 levels, for every bench
combination (SMU x router).

    python benchmarks/bench_protocol.py            # full run (128x128 through the protocol too)
    python benchmarks/bench_protocol.py --quick    # skip the 128x128 protocol run

Estimated bench time for 128x128 = the timing model's time of a SimArray run with the
combination's pulse widths (B2900: 50 us, its minimum; B1500 SMU: 1 ms) + the round trips it
would cost (measured per cell-iteration on 8x8) x an assumed latency per round trip
(``--latency``, default 2 ms: LAN/GPIB turnaround, an assumption, not a measurement).

A *round trip* is one reply the host waits for (a query), summed over the SMU and the router;
writes are pipelined and cost none. An *iteration* is one pulse+verify pass of
``hil.program.program_verify`` over the active cells (plus its RESET-and-retry pass, if any).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from drivers.bench import BenchArray, load_bench
from drivers.sim.server import build_sim_bench
from drivers.sim_array import SimArray
from hil.program import program_verify

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "bench-sim.toml"


def targets_for(technology, shape, levels=8, seed=3):
    return technology.level_targets(levels)[np.random.default_rng(seed).integers(0, levels, shape)]


def protocol_run(smu: str, router: str, shape: tuple[int, int], max_pulses: int = 200) -> dict:
    over = {"bench": {"shape": list(shape)}, "smu": {"model": smu}, "router": {"model": router, "resource": "sim"}}
    if smu == "b1500":  # SMU pulses of the B1500 are >= 500 us
        over["bench"]["operating"] = {"width_set": 1e-3, "width_reset": 1e-3, "width_form": 1e-3}
        over["limits"] = {"max_width": 2e-3}
    cfg = load_bench(EXAMPLE, over)
    sims = build_sim_bench(cfg)
    with BenchArray.from_config(cfg, sims.transports()) as bench:
        bench.form()
        r0 = sims.smu.counters.replies + sims.router.counters.replies
        t0 = time.perf_counter()
        rep = program_verify(bench, targets_for(bench.technology, shape), max_pulses=max_pulses)
        wall = time.perf_counter() - t0
        trips = sims.smu.counters.replies + sims.router.counters.replies - r0
        # The steady state: a pulse+verify over an unchanged active set of all cells.
        mask = np.ones(shape, bool)
        bench.read(mask)
        s0 = sims.smu.counters.replies + sims.router.counters.replies
        bench.set_pulse(mask, v_gate=bench.technology.v_gate_min)
        bench.read(mask)
        steady = sims.smu.counters.replies + sims.router.counters.replies - s0
        mask[0, 0] = False
        s0 = sims.smu.counters.replies + sims.router.counters.replies
        bench.set_pulse(mask, v_gate=bench.technology.v_gate_min)
        bench.read(mask)
        changed = sims.smu.counters.replies + sims.router.counters.replies - s0
    return {
        "iterations": rep.iterations, "cell_iterations": rep.cell_iterations, "trips": trips,
        "steady": steady, "changed": changed, "yield": rep.yield_, "bench_time": rep.bench_time, "wall": wall,
        "messages": sims.smu.counters.messages + sims.router.counters.messages,
    }


COMBINATIONS = [("b2900", "array_board"), ("b2900", "switch_matrix"), ("b1500", "array_board"), ("b1500", "switch_matrix")]


def sim_estimate(smu: str, shape: tuple[int, int]) -> dict:
    """SimArray program-and-verify with the combination's technology (pulse widths)."""
    over = {"bench": {"operating": {"width_set": 1e-3, "width_reset": 1e-3, "width_form": 1e-3}}} if smu == "b1500" else None
    tech = load_bench(EXAMPLE, over).technology
    sim = SimArray(shape, "hfo2", seed=0, technology=tech)
    t0 = time.perf_counter()
    sim.form()
    rep = program_verify(sim, targets_for(tech, shape))
    return {"report": rep, "wall": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="skip the 128x128 run through the protocol")
    ap.add_argument("--latency", type=float, default=2e-3, help="assumed time per round trip, s (default 2 ms)")
    args = ap.parse_args()

    print("Round trips of program-and-verify, counted in the simulated instruments (8x8 HfO2, 8 levels)")
    print(f"{'SMU + router':<26}{'iter.':>6}{'RT total':>10}{'RT/iter':>9}{'RT/cell-iter':>14}{'1 iter, same cells':>20}{'1 iter, new list':>18}")
    rows = {}
    for smu, router in COMBINATIONS:
        r = protocol_run(smu, router, (8, 8))
        rows[smu, router] = r
        print(f"{smu + ' + ' + router:<26}{r['iterations']:>6}{r['trips']:>10}{r['trips'] / r['iterations']:>9.2f}"
              f"{r['trips'] / r['cell_iterations']:>14.2f}{r['steady']:>20}{r['changed']:>18}")
    print("  'RT/iter' includes RESET-and-retry passes; '1 iter' is one set_pulse+read over all 64 cells.")
    print("  B2900 + board: a pulse+verify iteration costs <= 2 round trips (board LOAD when the cell list")
    print("  changes + one compound SMU fetch with the error count). The B1500 fires each cell's pulse and")
    print("  its verify read in one compound message ending in ERRX? (1 round trip) after the router's select")
    print("  (1) = 2 per cell; a B2900 behind the switch matrix does the same (write-only pulse ending in *WAI,")
    print("  then the read and its fetch with the error count: 1 round trip, + the select).")
    print()

    shape = (128, 128)
    print(f"Estimated bench time, 128x128 HfO2, 8 levels, IGVVA, +-5 % (latency {args.latency * 1e3:g} ms per round trip, assumed)")
    print(f"{'SMU + router':<26}{'timing model':>14}{'round trips':>14}{'RT time':>10}{'total':>10}{'yield':>8}")
    estimates = {smu: sim_estimate(smu, shape) for smu in ("b2900", "b1500")}
    for smu, router in COMBINATIONS:
        rep = estimates[smu]["report"]
        r = rows[smu, router]
        trips = r["trips"] / r["cell_iterations"] * rep.cell_iterations
        total = rep.bench_time + trips * args.latency
        print(f"{smu + ' + ' + router:<26}{rep.bench_time / 3600:>12.2f} h{trips:>14.3g}{trips * args.latency / 3600:>8.2f} h"
              f"{total / 3600:>8.2f} h{100 * rep.yield_:>7.1f}%")
    print("  'timing model' is the bench time of the operations (route settle, pulse, read) from BenchTiming;")
    print("  round trips are scaled from the 8x8 protocol run per cell-iteration.")
    print()

    rep = estimates["b2900"]["report"]
    print(f"  SimArray (B2900 widths): bench time {rep.bench_time:9.1f} s (forming excluded), mean pulses "
          f"{rep.mean_pulses:.1f}, {rep.iterations} iterations, wall {estimates['b2900']['wall']:.1f} s")
    if not args.quick:
        r = protocol_run("b2900", "array_board", shape)
        print(f"  BenchArray B2900 + board:   bench time {r['bench_time']:9.1f} s (same model through the protocol), "
              f"yield {100 * r['yield']:.2f} %, {r['trips']} round trips in {r['iterations']} iterations "
              f"({r['trips'] / r['iterations']:.1f} per iteration at batch 1000 = "
              f"{r['trips'] / r['cell_iterations'] * 1000:.2f} per 1000 cell-iterations), wall {r['wall']:.1f} s")


FAST_PULSE_BENCHES = (
    ("bench-b1500-spgu-matrix.toml", None),
    ("bench-b2900-33500b-matrix.toml", None),
    ("bench-b2900-33500b-matrix.toml", {"router": {"model": "array_board", "resource": "sim"}}),  # board as router
)


def _replies(sims) -> int:
    return sims.smu.counters.replies + sims.router.counters.replies + (sims.pulser.counters.replies if sims.pulser else 0)


def fast_pulse_rows() -> None:
    """Rows for the fast-pulse benches (100 ns pulses from an SPGU or a 33522B, the SMU on the bit
    line and gate, a switch matrix): round trips counted in the simulated instruments on 8x8,
    and the bench time of 128x128 at 8 levels from the same timing model (SimArray with the
    bench file's technology, limits and timing; the protocol run gives the same clock, see
    tests/drivers/test_pulse_bench_e2e.py)."""
    print("Fast-pulse benches (100 ns SET/RESET pulses; 8x8 HfO2, 8 levels, IGVVA, +-5 %)")
    print(f"{'bench file':<34}{'iter.':>6}{'RT total':>10}{'RT/iter':>9}{'RT/cell-iter':>14}{'1 iter, 64 cells':>18}"
          f"{'128x128 bench time':>20}")
    for name, over in FAST_PULSE_BENCHES:
        cfg = load_bench(EXAMPLE.parent / name, over)
        name = name if over is None else name.replace("matrix", "board")
        sims = build_sim_bench(cfg)
        with BenchArray.from_config(cfg, sims.transports()) as bench:
            bench.form()
            r0 = _replies(sims)
            rep = program_verify(bench, targets_for(bench.technology, cfg.shape))
            trips = _replies(sims) - r0
            mask = np.ones(cfg.shape, bool)
            s0 = _replies(sims)
            bench.set_pulse(mask, v_gate=bench.technology.v_gate_min)
            bench.read(mask)
            steady = _replies(sims) - s0
        shape = (128, 128)
        sim = SimArray(shape, cfg.sim.physics, seed=0, technology=cfg.technology, limits=cfg.limits, timing=cfg.timing)
        sim.form()
        big = program_verify(sim, targets_for(cfg.technology, shape))
        print(f"{name:<34}{rep.iterations:>6}{trips:>10}{trips / rep.iterations:>9.2f}{trips / rep.cell_iterations:>14.2f}"
              f"{steady:>18}{big.bench_time / 3600:>17.2f} h")
    print("  Per cell with the matrix: route before the pulse (1), the pulse (1: the SMU holds ride in the")
    print("  SPGU's SRP;SPST?, or *TRG;*OPC? after a write-only SMU hold; +1 when width or amplitude changes),")
    print("  route before the read (1), the SMU read (1); the error queues once per batch. With the board the")
    print("  reads are one list (LOAD + fetch) and a pulse costs SEL + the pulse = 2. Bench time: route_settle")
    print("  + the pulse source's pulse_overhead (drivers/timing.py, an estimate) + 100 ns per pulse.")
    print()


if __name__ == "__main__":
    main()
    fast_pulse_rows()
