"""Writes a stand-in ``.bit`` + ``.hwh`` pair describing the PYNQ-Z2 block design, for simulation.

On a board, Vivado writes the real ``maxpool_thresh.hwh`` (see
``firmware/boards/Pynq-Z2/maxpool_thresh/``). Here no Vivado runs, so this module writes a
hardware handoff with the same instances, VLNVs, addresses, DMA parameters and IP registers that
``block_design.tcl`` creates, in the XML layout of Vivado's hwh files. pynq's own metadata
parser reads it, so ``pynq.Overlay`` builds its ``ip_dict`` and binds drivers exactly as it would
on the board. It is not a copy of a Vivado output and has never been compared with one: that
check needs a Vivado run (firmware/README.md).
"""
from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import quoteattr

from drivers.overlay import regmap

#: Addresses assigned in block_design.tcl (M_AXI_GP0 window of the Zynq 7000).
DMA_BASE = 0x4040_0000
DMA_RANGE = 0x1_0000
IP_BASE = 0x43C0_0000
IP_RANGE = regmap.ADDR_RANGE
#: AXI DMA configuration of block_design.tcl: simple (no SG) mode, 26-bit length register.
DMA_PARAMETERS = {
    "c_include_sg": "0",
    "c_sg_length_width": "26",
    "c_sg_include_stscntrl_strm": "0",
    "c_micro_dma": "0",
    "c_include_mm2s": "1",
    "c_include_s2mm": "1",
    "c_include_mm2s_dre": "0",
    "c_include_s2mm_dre": "0",
    "c_m_axi_mm2s_data_width": "32",
    "c_m_axis_mm2s_tdata_width": "32",
    "c_m_axi_s2mm_data_width": "32",
    "c_s_axis_s2mm_tdata_width": "32",
    "c_mm2s_burst_size": "16",
    "c_s2mm_burst_size": "16",
    "c_addr_width": "32",
}
OVERLAY_NAME = "maxpool_thresh"


def _params(params: dict[str, str]) -> str:
    rows = "".join(f'        <PARAMETER NAME={quoteattr(k)} VALUE={quoteattr(v)}/>\n'
                   for k, v in params.items())
    return f"      <PARAMETERS>\n{rows}      </PARAMETERS>\n"


def _bus(name: str, kind: str, vlnv: str, busname: str, params: dict[str, str] | None = None) -> str:
    body = "".join(f'          <PARAMETER NAME={quoteattr(k)} VALUE={quoteattr(v)}/>\n'
                   for k, v in (params or {}).items())
    return (f'        <BUSINTERFACE BUSNAME={quoteattr(busname)} NAME={quoteattr(name)} '
            f'TYPE={quoteattr(kind)} VLNV={quoteattr(vlnv)}>\n{body}'
            f'        </BUSINTERFACE>\n')


AXIMM = "xilinx.com:interface:aximm:1.0"
AXIS = "xilinx.com:interface:axis:1.0"


def _ip_registers() -> str:
    rows = []
    for r in regmap.REGISTERS:
        rows.append(
            f'            <REGISTER NAME="{r.name}">\n'
            f'              <PROPERTY NAME="DESCRIPTION" VALUE={quoteattr(r.description)}/>\n'
            f'              <PROPERTY NAME="ADDRESS_OFFSET" VALUE="{r.offset:#x}"/>\n'
            f'              <PROPERTY NAME="SIZE" VALUE="32"/>\n'
            f'              <PROPERTY NAME="ACCESS" VALUE="{r.access}"/>\n'
            f'              <PROPERTY NAME="IS_ENABLED" VALUE="true"/>\n'
            f'              <PROPERTY NAME="RESET_VALUE" VALUE="0x0"/>\n'
            f'            </REGISTER>\n')
    return "".join(rows)


def hwh_text() -> str:
    """The XML text of the stand-in hardware handoff."""
    vendor, library, name, version = regmap.VLNV.split(":")
    ps = (
        '    <MODULE CONFIGURABLE="TRUE" COREREVISION="6" FULLNAME="/processing_system7_0" '
        'HWVERSION="5.5" INSTANCE="processing_system7_0" IPTYPE="PERIPHERAL" IS_ENABLE="1" '
        'IS_PL="FALSE" MODTYPE="processing_system7" VLNV="xilinx.com:ip:processing_system7:5.5">\n'
        + _params({
            "PCW_FPGA0_PERIPHERAL_FREQMHZ": "100", "PCW_FPGA_FCLK0_ENABLE": "1",
            "PCW_FCLK0_PERIPHERAL_DIVISOR0": "5", "PCW_FCLK0_PERIPHERAL_DIVISOR1": "2",
            "PCW_FPGA_FCLK1_ENABLE": "0", "PCW_FPGA_FCLK2_ENABLE": "0",
            "PCW_FPGA_FCLK3_ENABLE": "0",
            **{f"PCW_FCLK{i}_PERIPHERAL_DIVISOR{j}": "1" for i in (1, 2, 3) for j in (0, 1)},
            "PCW_USE_S_AXI_HP0": "1", "PCW_USE_M_AXI_GP0": "1",
            "PCW_S_AXI_HP0_DATA_WIDTH": "64",
        })
        + "      <BUSINTERFACES>\n"
        + _bus("M_AXI_GP0", "MASTER", AXIMM, "processing_system7_0_M_AXI_GP0")
        + _bus("S_AXI_HP0", "SLAVE", AXIMM, "axi_smc_M00_AXI")
        + "      </BUSINTERFACES>\n"
        "      <MEMORYMAP>\n"
        f'        <MEMRANGE ADDRESSBLOCK="Reg" BASENAME="C_BASEADDR" BASEVALUE="{DMA_BASE:#010X}" '
        f'HIGHNAME="C_HIGHADDR" HIGHVALUE="{DMA_BASE + DMA_RANGE - 1:#010X}" INSTANCE="axi_dma_0" '
        'IS_DATA="TRUE" IS_INSTRUCTION="TRUE" MASTERBUSINTERFACE="M_AXI_GP0" MEMTYPE="REGISTER" '
        'SLAVEBUSINTERFACE="S_AXI_LITE"/>\n'
        f'        <MEMRANGE ADDRESSBLOCK="Reg" BASENAME="C_S_AXI_CTRL_BASEADDR" '
        f'BASEVALUE="{IP_BASE:#010X}" HIGHNAME="C_S_AXI_CTRL_HIGHADDR" '
        f'HIGHVALUE="{IP_BASE + IP_RANGE - 1:#010X}" INSTANCE="maxpool_thresh_0" IS_DATA="TRUE" '
        'IS_INSTRUCTION="TRUE" MASTERBUSINTERFACE="M_AXI_GP0" MEMTYPE="REGISTER" '
        'SLAVEBUSINTERFACE="s_axi_ctrl"/>\n'
        "      </MEMORYMAP>\n"
        "    </MODULE>\n"
    ).replace("0X", "0x")
    dma = (
        '    <MODULE COREREVISION="21" FULLNAME="/axi_dma_0" HWVERSION="7.1" INSTANCE="axi_dma_0" '
        'IPTYPE="PERIPHERAL" IS_ENABLE="1" MODCLASS="PERIPHERAL" MODTYPE="axi_dma" '
        'VLNV="xilinx.com:ip:axi_dma:7.1">\n'
        '      <ADDRESSBLOCKS>\n'
        f'        <ADDRESSBLOCK ACCESS="read-write" INTERFACE="S_AXI_LITE" NAME="Reg" '
        f'RANGE="{DMA_RANGE}" USAGE="register"/>\n'
        '      </ADDRESSBLOCKS>\n'
        + _params(dict(DMA_PARAMETERS, C_BASEADDR=f"{DMA_BASE:#010x}",
                       C_HIGHADDR=f"{DMA_BASE + DMA_RANGE - 1:#010x}"))
        + "      <BUSINTERFACES>\n"
        + _bus("S_AXI_LITE", "SLAVE", AXIMM, "ps7_0_axi_periph_M00_AXI")
        + _bus("M_AXI_MM2S", "MASTER", AXIMM, "axi_dma_0_M_AXI_MM2S")
        + _bus("M_AXI_S2MM", "MASTER", AXIMM, "axi_dma_0_M_AXI_S2MM")
        + _bus("M_AXIS_MM2S", "MASTER", AXIS, "axi_dma_0_M_AXIS_MM2S",
               {"TDATA_NUM_BYTES": "4", "HAS_TLAST": "1"})
        + _bus("S_AXIS_S2MM", "SLAVE", AXIS, "maxpool_thresh_0_M_AXIS",
               {"TDATA_NUM_BYTES": "4", "HAS_TLAST": "1"})
        + "      </BUSINTERFACES>\n"
        "      <MEMORYMAP>\n"
        '        <MEMRANGE ADDRESSBLOCK="HP0_DDR_LOWOCM" BASENAME="C_BASEADDR" BASEVALUE="0x00000000" '
        'HIGHNAME="C_HIGHADDR" HIGHVALUE="0x1FFFFFFF" INSTANCE="processing_system7_0" '
        'IS_DATA="TRUE" IS_INSTRUCTION="TRUE" MASTERBUSINTERFACE="M_AXI_MM2S" MEMTYPE="MEMORY" '
        'SLAVEBUSINTERFACE="S_AXI_HP0"/>\n'
        '        <MEMRANGE ADDRESSBLOCK="HP0_DDR_LOWOCM" BASENAME="C_BASEADDR" BASEVALUE="0x00000000" '
        'HIGHNAME="C_HIGHADDR" HIGHVALUE="0x1FFFFFFF" INSTANCE="processing_system7_0" '
        'IS_DATA="TRUE" IS_INSTRUCTION="TRUE" MASTERBUSINTERFACE="M_AXI_S2MM" MEMTYPE="MEMORY" '
        'SLAVEBUSINTERFACE="S_AXI_HP0"/>\n'
        "      </MEMORYMAP>\n"
        "    </MODULE>\n"
    )
    conv = (
        '    <MODULE COREREVISION="19" FULLNAME="/axis_dwidth_converter_0" HWVERSION="1.1" '
        'INSTANCE="axis_dwidth_converter_0" IPTYPE="BUS" IS_ENABLE="1" MODCLASS="BUS" '
        'MODTYPE="axis_dwidth_converter" VLNV="xilinx.com:ip:axis_dwidth_converter:1.1">\n'
        + _params({"S_TDATA_NUM_BYTES": "4", "M_TDATA_NUM_BYTES": "2", "HAS_TLAST": "1"})
        + "      <BUSINTERFACES>\n"
        + _bus("S_AXIS", "SLAVE", AXIS, "axi_dma_0_M_AXIS_MM2S",
               {"TDATA_NUM_BYTES": "4", "HAS_TLAST": "1"})
        + _bus("M_AXIS", "MASTER", AXIS, "axis_dwidth_converter_0_M_AXIS",
               {"TDATA_NUM_BYTES": "2", "HAS_TLAST": "1"})
        + "      </BUSINTERFACES>\n"
        "    </MODULE>\n"
    )
    ip = (
        f'    <MODULE COREREVISION="1" FULLNAME="/maxpool_thresh_0" HWVERSION="{version}" '
        f'INSTANCE="maxpool_thresh_0" IPTYPE="PERIPHERAL" IS_ENABLE="1" MODCLASS="PERIPHERAL" '
        f'MODTYPE="{name}" VLNV="{regmap.VLNV}">\n'
        '      <ADDRESSBLOCKS>\n'
        f'        <ADDRESSBLOCK ACCESS="read-write" INTERFACE="s_axi_ctrl" NAME="Reg" '
        f'RANGE="{IP_RANGE}" USAGE="register">\n'
        '          <REGISTERS>\n'
        + _ip_registers()
        + '          </REGISTERS>\n'
        '        </ADDRESSBLOCK>\n'
        '      </ADDRESSBLOCKS>\n'
        + _params({"DATA_W": "16", "MAX_FILTERS": "64", "ACC_DEPTH": "4096",
                   "C_S_AXI_CTRL_BASEADDR": f"{IP_BASE:#010x}",
                   "C_S_AXI_CTRL_HIGHADDR": f"{IP_BASE + IP_RANGE - 1:#010x}"})
        + "      <BUSINTERFACES>\n"
        + _bus("s_axi_ctrl", "SLAVE", AXIMM, "ps7_0_axi_periph_M01_AXI",
               {"PROTOCOL": "AXI4LITE"})
        + _bus("s_axis", "SLAVE", AXIS, "axis_dwidth_converter_0_M_AXIS",
               {"TDATA_NUM_BYTES": "2", "HAS_TLAST": "1"})
        + _bus("m_axis", "MASTER", AXIS, "maxpool_thresh_0_M_AXIS",
               {"TDATA_NUM_BYTES": "4", "HAS_TLAST": "1"})
        + "      </BUSINTERFACES>\n"
        "    </MODULE>\n"
    )
    del vendor, library
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="no" ?>\n'
        '<EDKSYSTEM EDWVERSION="1.2" TIMESTAMP="simulated" VIVADOVERSION="2022.1">\n'
        '  <SYSTEMINFO ARCH="zynq" DEVICE="7z020" NAME="maxpool_thresh" PACKAGE="clg400" '
        'SPEEDGRADE="-1"/>\n'
        "  <EXTERNALPORTS/>\n"
        "  <EXTERNALINTERFACES/>\n"
        "  <MODULES>\n" + dma + conv + ip + ps + "  </MODULES>\n</EDKSYSTEM>\n"
    )


def write_overlay_files(directory: str | Path) -> Path:
    """Write ``maxpool_thresh.bit`` (a placeholder, not a bitstream) and ``maxpool_thresh.hwh``
    into ``directory``; returns the path of the ``.bit`` to pass to ``pynq.Overlay``."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    bit = d / f"{OVERLAY_NAME}.bit"
    bit.write_bytes(b"SIMULATED-BITSTREAM: no FPGA configuration data; see firmware/README.md\n")
    (d / f"{OVERLAY_NAME}.hwh").write_text(hwh_text())
    return bit
