"""Static checks of the Vivado scripts (Vivado itself is not available here, see firmware/README.md).

They keep the block design, the stand-in .hwh used by the simulated device and the driver's
assumptions in step: addresses, DMA configuration, IP VLNV, build layout.
"""
from __future__ import annotations

import re
from pathlib import Path

from drivers.overlay import regmap
from drivers.overlay.driver import DMA_MAX_BYTES
from drivers.overlay.sim_hwh import DMA_BASE, DMA_PARAMETERS, IP_BASE

BOARD = Path(__file__).resolve().parents[2] / "firmware" / "boards" / "Pynq-Z2" / "maxpool_thresh"


def test_board_layout_and_makefile_calls_vivado_batch() -> None:
    make = (BOARD / "makefile").read_text()
    assert {p.name for p in BOARD.iterdir()} >= {"makefile", "maxpool_thresh.tcl",
                                                  "build_bitstream.tcl"}
    calls = re.findall(r"\$\(VIVADO\) -mode batch .*-source (\S+)", make)
    assert calls == ["$(ip_dir)/scripts/package_ip.tcl", "$(overlay_name).tcl",
                     "build_bitstream.tcl"]
    assert re.search(r"^VIVADO\s*\?=\s*vivado$", make, re.M)
    # recipes must be indented with tabs for make
    assert all(line.startswith("\t") for line in make.splitlines() if "$(VIVADO)" in line)


def test_block_design_matches_simulated_hwh() -> None:
    bd = (BOARD / "maxpool_thresh.tcl").read_text()
    assert f"-vlnv {regmap.VLNV} maxpool_thresh_0" in bd
    assert re.search(rf"place_segment \*axi_dma_0\*\s+{DMA_BASE:#010x}", bd, re.I)
    assert re.search(rf"place_segment \*maxpool_thresh_0\*\s+{IP_BASE:#010x}", bd, re.I)
    dma = dict(re.findall(r"CONFIG\.(c_\w+) \{(\w+)\}", bd))
    for key, value in dma.items():
        assert DMA_PARAMETERS[key] == value, key
    assert dma["c_include_sg"] == "0"
    assert (1 << int(dma["c_sg_length_width"])) - 1 == DMA_MAX_BYTES
    assert "PCW_FPGA0_PERIPHERAL_FREQMHZ {100}" in bd
    assert "M_TDATA_NUM_BYTES {2}" in bd and "S_TDATA_NUM_BYTES {4}" in bd


def test_bitstream_script_collects_bit_and_hwh() -> None:
    tcl = (BOARD / "build_bitstream.tcl").read_text()
    assert "launch_runs impl_1 -to_step write_bitstream" in tcl
    assert "hw_handoff" in tcl and "$overlay_name.hwh" in tcl and "$overlay_name.bit" in tcl
