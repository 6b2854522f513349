"""A simulated PYNQ-Z2 as a ``pynq.Device``: the real pynq ``Overlay``, ``DMA`` and ``MMIO`` run on it.

Importing this module imports :mod:`pynq` (it subclasses ``pynq.Device``); nothing in
``drivers`` imports it implicitly.

How it plugs into pynq (pynq 3.1.2, read from its source):

* ``capabilities = {"REGISTER_RW": True}``: ``pynq.MMIO`` then routes every access through
  :meth:`SimPynqDevice.read_registers` / :meth:`SimPynqDevice.write_registers`.
* :meth:`SimPynqDevice.get_bitfile_metadata` parses the ``.hwh`` beside the ``.bit`` with pynq's
  own ``RuntimeMetadataParser``, as ``pynq.pl_server.embedded_device.EmbeddedDevice`` does, so
  ``Overlay`` builds ``ip_dict`` and binds drivers (``DMA``, our ``DefaultIP`` subclass) by VLNV.
* :meth:`SimPynqDevice.download` "configures the PL" (resets the models) and calls pynq's
  ``post_download``; ``arch = "armv7l"`` makes ``pynq.Clocks`` program FCLK0 through the
  simulated SLCR registers.
* :meth:`SimPynqDevice.allocate` returns real ``pynq.buffer.PynqBuffer`` objects backed by a
  simulated DDR with a write-back cache model: the DMA engines see only what ``flush()`` wrote,
  and the host sees DMA writes only after ``invalidate()``.

Address map (as block_design.tcl assigns it): AXI DMA at 0x4040_0000, maxpool_thresh at
0x43C0_0000, SLCR at 0xF800_0000, DDR buffers from 0x1000_0000. An access to any other
address raises :class:`BusError` (on the board it would hang the AXI bus).
"""
from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np
from pynq.buffer import PynqBuffer
from pynq.pl_server.device import Device

from drivers.overlay.ip_model import FIFO_WORDS, MaxPoolThreshModel
from drivers.overlay.sim_hwh import DMA_BASE, DMA_PARAMETERS, DMA_RANGE, IP_BASE, IP_RANGE

log = logging.getLogger(__name__)

SLCR_BASE = 0xF800_0000
SLCR_RANGE = 0x1000
DDR_BASE = 0x1000_0000
DDR_SIZE = 0x1000_0000   # 256 MiB window for buffers


class BusError(RuntimeError):
    """An AXI access to an address no simulated slave decodes."""


class SimMemory:
    """DDR behind a write-back cache: host views and device-visible bytes are kept apart."""

    def __init__(self) -> None:
        self._next = DDR_BASE
        self.regions: dict[int, dict] = {}   # bo -> {phys, ddr, host}
        self._ids = itertools.count(1)

    def allocate(self, nbytes: int) -> tuple[int, int, np.ndarray]:
        """Reserve ``nbytes``; returns (bo, physical address, host byte array)."""
        nbytes = max(int(nbytes), 1)
        size = (nbytes + 63) // 64 * 64
        if self._next + size > DDR_BASE + DDR_SIZE:
            raise MemoryError(f"simulated DDR exhausted allocating {nbytes} bytes")
        phys = self._next
        self._next += size
        bo = next(self._ids)
        self.regions[bo] = {"phys": phys, "ddr": np.zeros(size, np.uint8),
                            "host": np.zeros(size, np.uint8)}
        return bo, phys, self.regions[bo]["host"]

    def free(self, bo: int) -> None:
        self.regions.pop(bo, None)

    def _find(self, phys: int, nbytes: int) -> tuple[np.ndarray, int]:
        for r in self.regions.values():
            if r["phys"] <= phys and phys + nbytes <= r["phys"] + r["ddr"].size:
                return r["ddr"], phys - r["phys"]
        raise BusError(f"DMA access to unallocated DDR {phys:#x}+{nbytes}")

    def dma_read(self, phys: int, nbytes: int) -> np.ndarray:
        ddr, off = self._find(phys, nbytes)
        return ddr[off: off + nbytes].copy()

    def dma_write(self, phys: int, data: np.ndarray) -> None:
        ddr, off = self._find(phys, data.size)
        ddr[off: off + data.size] = data

    def flush(self, bo: int, offset: int, nbytes: int) -> None:
        r = self.regions[bo]
        r["ddr"][offset: offset + nbytes] = r["host"][offset: offset + nbytes]

    def invalidate(self, bo: int, offset: int, nbytes: int) -> None:
        r = self.regions[bo]
        r["host"][offset: offset + nbytes] = r["ddr"][offset: offset + nbytes]


# AXI DMA (PG021) direct-register-mode offsets and bits
MM2S, S2MM = 0x00, 0x30
DMACR, DMASR, ADDR, ADDR_MSB, LENGTH = 0x00, 0x04, 0x18, 0x1C, 0x28
CR_RS, CR_RESET = 0x1, 0x4
SR_HALTED, SR_IDLE = 0x1, 0x2
SR_INT_ERR, SR_SLV_ERR, SR_DEC_ERR = 0x10, 0x20, 0x40
SR_IOC_IRQ, SR_ERR_IRQ = 0x1000, 0x4000


class AxiDmaModel:
    """Register-level AXI DMA in simple mode: MM2S feeds the IP, S2MM drains it into DDR.

    MM2S ends every transfer with TLAST (as the AXI DMA does). S2MM completes on the first
    TLAST and reports the bytes written in its LENGTH register; a packet longer than the buffer
    sets DMAIntErr and halts. The stream between MM2S and the IP goes through a 32-to-16-bit
    width converter: the low half-word of each 32-bit beat is the first value.
    """

    def __init__(self, memory: SimMemory, ip: MaxPoolThreshModel) -> None:
        self.mem, self.ip = memory, ip
        self.max_len = (1 << int(DMA_PARAMETERS["c_sg_length_width"])) - 1
        self.reset()

    def reset(self) -> None:
        self.regs = {MM2S: self._chan_regs(), S2MM: self._chan_regs()}
        self.mm2s_busy = False
        self.s2mm = None   # active receive: {"addr", "room", "written"}

    @staticmethod
    def _chan_regs() -> dict[int, int]:
        return {DMACR: 0x0001_0000, DMASR: SR_HALTED, ADDR: 0, ADDR_MSB: 0, LENGTH: 0}

    def read(self, offset: int) -> int:
        chan = S2MM if offset >= S2MM else MM2S
        return self.regs[chan].get(offset - chan, 0)

    def write(self, offset: int, value: int) -> None:
        chan = S2MM if offset >= S2MM else MM2S
        reg, r = offset - chan, self.regs[S2MM if offset >= S2MM else MM2S]
        if reg == DMACR:
            if value & CR_RESET:
                self.reset()
                return
            r[DMACR] = value & ~CR_RESET
            if value & CR_RS:
                r[DMASR] &= ~SR_HALTED
            else:
                r[DMASR] |= SR_HALTED
        elif reg == DMASR:
            r[DMASR] &= ~(value & (SR_IOC_IRQ | SR_ERR_IRQ))
        elif reg in (ADDR, ADDR_MSB):
            r[reg] = value
        elif reg == LENGTH:
            self._start(chan, value & self.max_len)

    def _error(self, chan: int, bit: int) -> None:
        r = self.regs[chan]
        r[DMASR] |= bit | SR_HALTED | SR_ERR_IRQ
        r[DMACR] &= ~CR_RS
        log.warning("simulated AXI DMA %s error %#x", "S2MM" if chan else "MM2S", bit)

    def _start(self, chan: int, nbytes: int) -> None:
        r = self.regs[chan]
        if r[DMASR] & SR_HALTED:
            return                                   # ignored while halted, as in PG021
        if nbytes == 0:
            self._error(chan, SR_INT_ERR)
            return
        r[LENGTH] = nbytes
        r[DMASR] &= ~SR_IDLE
        addr = (r[ADDR_MSB] << 32) | r[ADDR]
        if chan == MM2S:
            if nbytes % 2:
                self._error(chan, SR_INT_ERR)        # half a 16-bit beat cannot be streamed
                return
            try:
                data = self.mem.dma_read(addr, nbytes)
            except BusError:
                self._error(chan, SR_DEC_ERR)
                return
            self.ip.push(data.view("<i2"), tlast=True)
            self.mm2s_busy = True
        else:
            try:
                self.mem._find(addr, nbytes)
            except BusError:
                self._error(chan, SR_DEC_ERR)
                return
            self.s2mm = {"addr": addr, "room": nbytes // 4, "written": 0}

    def pump(self) -> None:
        """Move data until nothing changes: MM2S -> IP -> S2MM."""
        for _ in range(10_000):
            room = self.s2mm["room"] if self.s2mm else 0
            changed = self.ip.step(room_words=room)
            changed |= self._drain()
            if self.mm2s_busy and self.ip.input_pending == 0:
                self.mm2s_busy = False
                self._done(MM2S)
                changed = True
            if not changed:
                return

    def _drain(self) -> bool:
        s = self.s2mm
        if s is None or not self.ip.out_words:
            return False
        if s["room"] == 0:                           # the packet is longer than the buffer
            self.s2mm = None
            self._error(S2MM, SR_INT_ERR)
            return True
        words = self.ip.pop_words(s["room"])
        last_at = next((i for i, (_, t) in enumerate(words) if t), None)
        if last_at is not None:
            for w in reversed(words[last_at + 1:]):  # belongs to the next packet
                self.ip.out_words.appendleft(w)
            words = words[: last_at + 1]
        data = np.array([w for w, _ in words], dtype="<u4")
        self.mem.dma_write(s["addr"] + 4 * s["written"], data.view(np.uint8))
        s["written"] += data.size
        s["room"] -= data.size
        if last_at is not None:
            self.regs[S2MM][LENGTH] = 4 * s["written"]
            self.s2mm = None
            self._done(S2MM)
        return True

    def _done(self, chan: int) -> None:
        self.regs[chan][DMASR] |= SR_IDLE | SR_IOC_IRQ


class SimPynqDevice(Device):
    """A PYNQ-Z2 (Zynq 7020) with the maxpool_thresh overlay, simulated at register level."""

    arch = "armv7l"

    def __init__(self, tag: str = "sim_pynq_z2") -> None:
        super().__init__(tag)
        self.name = "Pynq-Z2"
        self.capabilities = {"REGISTER_RW": True}
        self.timestamp = ""
        self.bitfile_name = ""
        self.memory = SimMemory()
        self.ip = MaxPoolThreshModel()
        self.dma = AxiDmaModel(self.memory, self.ip)
        self.slcr = np.zeros(SLCR_RANGE // 4, dtype=np.uint32)
        self.slcr[0x108 // 4] = 20 << 12          # IO_PLL_CTRL: 50 MHz x 20 = 1000 MHz
        self.slcr[0x100 // 4] = 40 << 12          # ARM_PLL_CTRL
        self.slcr[0x104 // 4] = 32 << 12          # DDR_PLL_CTRL
        self.slcr[0x120 // 4] = (2 << 8) | (2 << 4)   # ARM_CLK_CTRL
        for i in range(4):                        # FPGAn_CLK_CTRL: IO PLL / 10 / 1 after boot
            self.slcr[(0x170 + 0x10 * i) // 4] = (1 << 20) | (10 << 8)
        self.register_log: list[tuple[str, int, int]] | None = None
        self.stall_ip = False                     # fault injection: the IP stops taking data

    # ------------------------------------------------------------------ bitstreams
    def get_bitfile_metadata(self, bitfile_name: str, partial: bool = False):
        from pynq.metadata.runtime_metadata_parser import RuntimeMetadataParser
        from pynqmetadata.frontends import Metadata

        hwh = Path(bitfile_name).with_suffix(".hwh")
        if not hwh.is_file():
            raise RuntimeError(f"Unable to find metadata for bitstream: no {hwh}")
        return RuntimeMetadataParser(Metadata(input=hwh))

    def download(self, bitstream, parser=None) -> None:
        """Configure the (simulated) PL: every core comes out of reset."""
        self.ip.reset()
        self.dma.reset()
        log.info("simulated PL configured from %s", bitstream.bitfile_name)
        self.post_download(bitstream, parser, self.name)

    def gen_cache(self, bitstream, parser=None) -> None:
        return None

    # ------------------------------------------------------------------ registers
    def _target(self, address: int):
        for base, size, model in ((IP_BASE, IP_RANGE, self.ip), (DMA_BASE, DMA_RANGE, self.dma)):
            if base <= address < base + size:
                return model, address - base
        if SLCR_BASE <= address < SLCR_BASE + SLCR_RANGE:
            return None, address - SLCR_BASE
        raise BusError(f"no AXI slave at {address:#010x} (the board would hang the bus)")

    def _read_word(self, address: int) -> int:
        model, off = self._target(address)
        if model is None:
            return int(self.slcr[off // 4])
        if model is self.dma:
            self._pump()
        value = model.read(off) & 0xFFFFFFFF
        if self.register_log is not None:
            self.register_log.append(("r", address, value))
        return value

    def _write_word(self, address: int, value: int) -> None:
        model, off = self._target(address)
        if self.register_log is not None:
            self.register_log.append(("w", address, value))
        if model is None:
            self.slcr[off // 4] = value
            return
        model.write(off, value)
        self._pump()

    def _pump(self) -> None:
        if not self.stall_ip:
            self.dma.pump()

    def read_registers(self, address: int, length: int) -> bytes:
        if address % 4 or length % 4:
            raise BusError(f"unaligned register read {address:#x}+{length}")
        words = [self._read_word(address + 4 * i) for i in range(length // 4)]
        return np.array(words, dtype="<u4").tobytes()

    def write_registers(self, address: int, data: bytes) -> None:
        if address % 4 or len(data) % 4:
            raise BusError(f"unaligned register write {address:#x}+{len(data)}")
        for i, w in enumerate(np.frombuffer(bytes(data), dtype="<u4")):
            self._write_word(address + 4 * i, int(w))

    # ------------------------------------------------------------------ buffers
    def allocate(self, shape, dtype, **kwargs) -> PynqBuffer:
        """A contiguous buffer in simulated DDR (cacheable: flush/invalidate matter)."""
        dt = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        bo, phys, host = self.memory.allocate(nbytes)
        buf = PynqBuffer(shape, dt, buffer=host, device_address=phys, bo=bo, device=self,
                         coherent=False)
        return buf

    def flush(self, bo, offset, vaddr, nbytes) -> None:
        self.memory.flush(bo, offset, nbytes)

    def invalidate(self, bo, offset, vaddr, nbytes) -> None:
        self.memory.invalidate(bo, offset, nbytes)

    def close(self) -> None:
        return None


__all__ = ["AxiDmaModel", "BusError", "FIFO_WORDS", "SimMemory", "SimPynqDevice"]
