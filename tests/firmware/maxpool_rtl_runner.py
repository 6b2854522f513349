"""Builds the maxpool_thresh RTL with Icarus and runs the cocotb testbench (cocotb_tools.runner).

Shared by tests/firmware/test_maxpool_thresh_rtl.py and benchmarks/bench_overlay.py.
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RTL_DIR = REPO / "firmware" / "ip" / "maxpool_thresh" / "rtl"
SOURCES = [RTL_DIR / "maxpool_thresh.v", RTL_DIR / "maxpool_thresh_regs.v",
           RTL_DIR / "maxpool_thresh_core.v"]
TOPLEVEL = "maxpool_thresh"


def iverilog_available() -> bool:
    """True when Icarus Verilog (iverilog and vvp) is on PATH."""
    return shutil.which("iverilog") is not None and shutil.which("vvp") is not None


def run_testbench(build_dir: Path, testcases: list[str] | None = None,
                  extra_env: dict[str, str] | None = None) -> tuple[int, int]:
    """Build (if needed) and run the named cocotb tests (all if None); returns
    (number of tests run, number failed)."""
    from cocotb_tools.runner import get_runner

    runner = get_runner("icarus")
    runner.build(sources=SOURCES, hdl_toplevel=TOPLEVEL, build_dir=build_dir,
                 timescale=("1ns", "1ps"), always=False)
    env = {"PYTHONPATH": os.pathsep.join([str(REPO), str(Path(__file__).parent)]
                                         + sys.path)}
    env.update(extra_env or {})
    results = build_dir / f"results_{os.getpid()}.xml"
    test_filter = None if testcases is None else r"\.(" + "|".join(testcases) + ")$"
    runner.test(hdl_toplevel=TOPLEVEL, test_module="tb_maxpool_thresh", test_filter=test_filter,
                build_dir=build_dir, test_dir=build_dir, extra_env=env,
                results_xml=str(results))
    return count_results(results)


def count_results(results_xml: Path) -> tuple[int, int]:
    """(tests run, tests failed) from a cocotb results file; filtered-out (skipped) tests are
    not counted as run."""
    import xml.etree.ElementTree as ET

    ran = failed = 0
    for case in ET.parse(results_xml).getroot().iter("testcase"):
        if case.find("skipped") is not None:
            continue
        ran += 1
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
    return ran, failed
