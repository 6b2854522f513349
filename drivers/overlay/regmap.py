"""AXI-Lite register map of ``maxpool_thresh`` (byte offsets), shared by driver, sim and tests.

The Verilog (``firmware/ip/maxpool_thresh/rtl/maxpool_thresh_regs.v``) and the IP-packaging
script (``firmware/ip/maxpool_thresh/scripts/package_ip.tcl``) declare the same offsets; a test
checks the packaging script against :data:`REGISTERS`.
"""
from __future__ import annotations

from typing import NamedTuple

#: Vendor:library:name:version the IP is packaged under; the pynq driver binds to it.
VLNV = "memristor-hil.org:hil:maxpool_thresh:1.0"
#: Size of the AXI-Lite address window (bytes).
ADDR_RANGE = 0x1000

CTRL = 0x00          # bit0 ENABLE, bit1 SOFT_RESET (self-clearing)
STATUS = 0x04        # bit0 BUSY, bit1 DISCARDING; sticky error bits below, write 1 to clear
WIDTH = 0x08         # image width (pixels), 10 bits
HEIGHT = 0x0C        # image height (pixels), 10 bits
NUM_FILTERS = 0x10   # values per pixel, 7 bits, 1..64
POOL_W = 0x14        # pooling window width (pixels), 8 bits
POOL_H = 0x18        # pooling window height (pixels), 8 bits
STRIDE_W = 0x1C      # window step in x (pixels), 8 bits, >= POOL_W
STRIDE_H = 0x20      # window step in y (pixels), 8 bits, >= POOL_H
FRAMES = 0x24        # frames per AXI-Stream packet (TLAST), 16 bits
FRAME_COUNT = 0x28   # RO: frames completed since reset (32-bit, wraps)
ERROR_COUNT = 0x2C   # RO: malformed or rejected packets since reset
VERSION = 0x30       # RO: 0x00010000 = 1.0
CAPS = 0x34          # RO: [7:0] max filters, [15:8] data bits, [31:16] acc depth / 16
VREF_BASE = 0x100    # VREF[f] at VREF_BASE + 4*f, signed 16 bits (sign-extended on read)

CTRL_ENABLE = 1 << 0
CTRL_SOFT_RESET = 1 << 1

STATUS_BUSY = 1 << 0
STATUS_DISCARDING = 1 << 1
STATUS_ERR_EARLY_TLAST = 1 << 8   # TLAST before the last value of the packet
STATUS_ERR_LATE_TLAST = 1 << 9    # no TLAST on the last value; input dropped until TLAST
STATUS_ERR_CONFIG = 1 << 10       # latched configuration invalid; packet dropped
STATUS_ERR_MASK = STATUS_ERR_EARLY_TLAST | STATUS_ERR_LATE_TLAST | STATUS_ERR_CONFIG

VERSION_VALUE = 0x00010000


class Register(NamedTuple):
    """One register as declared in the IP package (and so in the .hwh)."""

    name: str
    offset: int
    access: str  # "read-write" | "read-only"
    description: str


def vref_offset(filter_index: int) -> int:
    """Byte offset of VREF[filter_index]."""
    return VREF_BASE + 4 * filter_index


REGISTERS: tuple[Register, ...] = (
    Register("CTRL", CTRL, "read-write", "bit0 enable, bit1 soft reset (self-clearing)"),
    Register("STATUS", STATUS, "read-write",
             "bit0 busy, bit1 discarding, bit8 early TLAST, bit9 late TLAST, bit10 config error;"
             " error bits sticky, write 1 to clear"),
    Register("WIDTH", WIDTH, "read-write", "image width in pixels"),
    Register("HEIGHT", HEIGHT, "read-write", "image height in pixels"),
    Register("NUM_FILTERS", NUM_FILTERS, "read-write", "filters (values per pixel)"),
    Register("POOL_W", POOL_W, "read-write", "pooling window width"),
    Register("POOL_H", POOL_H, "read-write", "pooling window height"),
    Register("STRIDE_W", STRIDE_W, "read-write", "pooling stride in x"),
    Register("STRIDE_H", STRIDE_H, "read-write", "pooling stride in y"),
    Register("FRAMES", FRAMES, "read-write", "frames per AXI-Stream packet"),
    Register("FRAME_COUNT", FRAME_COUNT, "read-only", "frames completed"),
    Register("ERROR_COUNT", ERROR_COUNT, "read-only", "malformed packets"),
    Register("VERSION", VERSION, "read-only", "core version"),
    Register("CAPS", CAPS, "read-only", "max filters, data bits, acc depth/16"),
) + tuple(
    Register(f"VREF_{f}", vref_offset(f), "read-write", f"V_REF of filter {f}, signed Q-format")
    for f in range(64)
)
