"""Benchmark of the max-pool / V_REF overlay: RTL throughput and latency, driver frames per second.

Run from the repository root:
    python benchmarks/bench_overlay.py [--rtl-frames 16] [--frames 4000] [--batch 1024]

Prints
  * cycles per input value of the RTL (Icarus + cocotb, no backpressure; target 1.00 within 1 %),
  * latency in cycles from the last input value accepted to the output TLAST word,
  * frames per second of the driver on the numpy twin and on the simulated pynq.Device
    (real pynq Overlay/DMA/MMIO code, register-level DMA and IP models).
Geometry: the paper's case, 9x9 convolution outputs (20x20 filters on 28x28 images), 64
filters, 3x3 pooling (576 bits per frame). The simulated-device rate measures host-side
software cost only; it says nothing about the board's DMA speed (not measured here).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "firmware"))

from drivers.overlay.driver import MaxPoolOverlay, NumpyOverlay  # noqa: E402
from drivers.overlay.reference import Geometry, maxpool_threshold  # noqa: E402

GEOMETRY = Geometry(9, 9, 64, pool_h=3, pool_w=3)


def bench_rtl(frames: int) -> dict:
    from maxpool_rtl_runner import iverilog_available, run_testbench

    if not iverilog_available():
        raise SystemExit("iverilog not found: apt-get install iverilog")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "tput.json"
        t0 = time.perf_counter()
        ntests, nfailed = run_testbench(
            Path(tmp), testcases=["test_throughput_and_latency"],
            extra_env={"TB_TPUT_FRAMES": str(frames), "TB_RESULT_JSON": str(out),
                       "COCOTB_LOG_LEVEL": "WARNING",
                       "PYTHONWARNINGS": "ignore::DeprecationWarning"})
        wall = time.perf_counter() - t0
        if ntests != 1 or nfailed:
            raise SystemExit(f"RTL throughput test failed ({nfailed} of {ntests} failed)")
        result = json.loads(out.read_text())
    result["sim_wall_s"] = wall
    return result


def bench_driver(ov, frames: np.ndarray, vref: np.ndarray, repeats: int = 3) -> float:
    ov.configure(vref, GEOMETRY)
    out = ov.process(frames[:8])                     # warm-up, buffers
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = ov.process(frames)
        best = min(best, time.perf_counter() - t0)
    if not np.array_equal(out, maxpool_threshold(frames, vref, GEOMETRY)):
        raise SystemExit(f"{type(ov).__name__}: output differs from the reference")
    return frames.shape[0] / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rtl-frames", type=int, default=16, help="frames in the RTL run")
    ap.add_argument("--frames", type=int, default=4000, help="frames for the driver runs")
    ap.add_argument("--batch", type=int, default=1024, help="frames per DMA transfer")
    ap.add_argument("--skip-rtl", action="store_true")
    args = ap.parse_args()

    rows = []
    if not args.skip_rtl:
        r = bench_rtl(args.rtl_frames)
        rows.append(("RTL cycles per input value (no backpressure)", f"{r['cycles_per_value']:.4f}",
                     f"{r['values']} values in {r['cycles']} cycles, target 1.00 +/- 1 %"))
        rows.append(("RTL latency, last value in -> TLAST word out", f"{r['latency_cycles']} cycles",
                     f"{r['latency_cycles'] * 10} ns at 100 MHz"))
        rows.append(("RTL throughput at 100 MHz (from cycles/value)",
                     f"{100e6 / r['cycles_per_value'] / GEOMETRY.values_per_frame:,.0f} frames/s",
                     f"{GEOMETRY.values_per_frame} values per frame"))
        rows.append(("Icarus wall time for that run", f"{r['sim_wall_s']:.1f} s", ""))

    rng = np.random.default_rng(0)
    frames = rng.integers(-300, 300, size=(args.frames,) + GEOMETRY.frame_shape).astype(np.int16)
    vref = rng.integers(-50, 250, size=64).astype(np.int16)

    twin_fps = bench_driver(NumpyOverlay(max_batch_frames=args.batch), frames, vref)
    rows.append(("driver on the numpy twin", f"{twin_fps:,.0f} frames/s",
                 f"{args.frames} frames, batch {args.batch}"))

    from drivers.overlay.sim_hwh import write_overlay_files
    from drivers.sim.pynq_device import SimPynqDevice

    with tempfile.TemporaryDirectory() as tmp:
        bit = write_overlay_files(tmp)
        ov = MaxPoolOverlay(str(bit), device=SimPynqDevice(), max_batch_frames=args.batch)
        sim_fps = bench_driver(ov, frames, vref)
        ov.close()
    rows.append(("driver on the simulated pynq.Device", f"{sim_fps:,.0f} frames/s",
                 "real pynq Overlay/DMA/MMIO, register-level models"))

    width = max(len(r[0]) for r in rows)
    print(f"maxpool_thresh overlay benchmark, geometry {GEOMETRY.height}x{GEOMETRY.width}x"
          f"{GEOMETRY.num_filters}, pool {GEOMETRY.pool_h}x{GEOMETRY.pool_w}")
    for name, value, note in rows:
        print(f"  {name:<{width}}  {value:>18}   {note}")


if __name__ == "__main__":
    main()
