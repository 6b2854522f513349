"""Runs the cocotb testbench of the maxpool_thresh RTL on Icarus Verilog from pytest."""
from __future__ import annotations

import pytest

pytest.importorskip("cocotb", reason="cocotb not installed (pip install -e '.[test]')")
pytest.importorskip("cocotbext.axi", reason="cocotbext-axi not installed")

from maxpool_rtl_runner import iverilog_available, run_testbench  # noqa: E402

pytestmark = pytest.mark.skipif(not iverilog_available(),
                                reason="Icarus Verilog (iverilog/vvp) not on PATH; apt-get install iverilog")

TESTCASES = [
    "test_registers",
    "test_random_frames_with_backpressure",
    "test_reconfigure_between_frames",
    "test_early_tlast_resync",
    "test_late_tlast_resync",
    "test_bad_config_dropped",
    "test_throughput_and_latency",
]


def test_rtl_matches_reference(tmp_path_factory: pytest.TempPathFactory) -> None:
    """All cocotb tests run in one simulator process and every one must pass."""
    build = tmp_path_factory.mktemp("maxpool_thresh_sim")
    ntests, nfailed = run_testbench(build, testcases=TESTCASES, extra_env={"TB_SEED": "20240601"})
    assert ntests == len(TESTCASES), f"expected {len(TESTCASES)} cocotb tests, ran {ntests}"
    assert nfailed == 0, f"{nfailed} of {ntests} cocotb tests failed (see the log above)"
