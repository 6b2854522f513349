"""cocotb testbench of maxpool_thresh (run by test_maxpool_thresh_rtl.py through cocotb_tools.runner).

Bus models from cocotbext-axi drive the AXI-Lite and AXI-Stream ports; the scoreboard is
:func:`drivers.overlay.reference.reference_words`, the same function the simulated IP and the
numpy twin use. Randomness is seeded from ``TB_SEED``.
"""
from __future__ import annotations

import itertools
import json
import logging
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout
from cocotbext.axi import (AxiLiteBus, AxiLiteMaster, AxiStreamBus, AxiStreamFrame,
                           AxiStreamSink, AxiStreamSource)

from drivers.overlay import regmap
from drivers.overlay.ip_model import MaxPoolThreshModel
from drivers.overlay.reference import CODE_MAX, CODE_MIN, Geometry, reference_words

SEED = int(os.environ.get("TB_SEED", "1234"))
CLK_NS = 10  # 100 MHz


class Harness:
    """Clock, reset, bus models and a cycle-accurate monitor of both streams."""

    def __init__(self, dut) -> None:
        self.dut = dut
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi_ctrl"), dut.aclk,
                                  dut.aresetn, reset_active_level=False)
        self.src = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.aclk,
                                   dut.aresetn, reset_active_level=False)
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.aclk,
                                  dut.aresetn, reset_active_level=False)
        for model in (self.axil.write_if, self.axil.read_if, self.src, self.sink):
            model.log.setLevel(logging.WARNING)
        self.cycle = 0
        self.in_beats: list[int] = []      # cycle of every accepted input beat
        self.out_last: list[int] = []      # cycle of every output beat with TLAST
        self.out_beats: list[int] = []

    async def start(self) -> None:
        cocotb.start_soon(Clock(self.dut.aclk, CLK_NS, unit="ns").start())
        self.dut.aresetn.value = 0
        await ClockCycles(self.dut.aclk, 5)
        self.dut.aresetn.value = 1
        await ClockCycles(self.dut.aclk, 2)
        cocotb.start_soon(self._monitor())

    async def _monitor(self) -> None:
        dut = self.dut
        while True:
            await RisingEdge(dut.aclk)
            self.cycle += 1
            if int(dut.s_axis_tvalid.value) and int(dut.s_axis_tready.value):
                self.in_beats.append(self.cycle)
            if int(dut.m_axis_tvalid.value) and int(dut.m_axis_tready.value):
                self.out_beats.append(self.cycle)
                if int(dut.m_axis_tlast.value):
                    self.out_last.append(self.cycle)

    async def write(self, offset: int, value: int) -> None:
        await self.axil.write_dword(offset, value & 0xFFFFFFFF)

    async def read(self, offset: int) -> int:
        return await self.axil.read_dword(offset)

    async def configure(self, g: Geometry, vref: np.ndarray, frames: int) -> None:
        for off, val in ((regmap.WIDTH, g.width), (regmap.HEIGHT, g.height),
                         (regmap.NUM_FILTERS, g.num_filters), (regmap.POOL_W, g.pool_w),
                         (regmap.POOL_H, g.pool_h), (regmap.STRIDE_W, g.stride_w),
                         (regmap.STRIDE_H, g.stride_h), (regmap.FRAMES, frames)):
            await self.write(off, val)
        await self.write_vref(vref)
        await self.write(regmap.CTRL, regmap.CTRL_ENABLE)

    async def write_vref(self, vref: np.ndarray) -> None:
        for f, v in enumerate(vref):
            await self.write(regmap.vref_offset(f), int(v))

    async def send(self, values: np.ndarray) -> None:
        await self.src.send(AxiStreamFrame(np.asarray(values, "<i2").tobytes()))

    async def recv_words(self, timeout_us: float = 2000) -> np.ndarray:
        frame = await with_timeout(self.sink.recv(), timeout_us, "us")
        return np.frombuffer(bytes(frame.tdata), dtype="<u4").copy()


def random_case(rng: np.random.Generator, g: Geometry, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Random frames (N, H, W, F) over the full code range plus V_REF near the data."""
    frames = rng.integers(CODE_MIN, CODE_MAX + 1, size=(n,) + g.frame_shape, dtype=np.int64)
    # Mix in narrow-range frames so that V_REF sits inside the distribution of window maxima.
    frames[::2] = rng.integers(-300, 300, size=frames[::2].shape)
    vref = rng.integers(-200, 400, size=g.num_filters)
    if g.num_filters >= 6:          # the extremes: never / always exceeded
        vref[:2] = [CODE_MAX, CODE_MIN]
    return frames.astype(np.int16), vref.astype(np.int16)


def model_words(g: Geometry, vref: np.ndarray, frames: int, values: np.ndarray,
                pool_w_override: int | None = None) -> list[int]:
    """Output of the register-level IP model (the simulated pynq.Device's) for one packet."""
    m = MaxPoolThreshModel()
    for off, val in ((regmap.WIDTH, g.width), (regmap.HEIGHT, g.height),
                     (regmap.NUM_FILTERS, g.num_filters), (regmap.POOL_W, g.pool_w),
                     (regmap.POOL_H, g.pool_h), (regmap.STRIDE_W, g.stride_w),
                     (regmap.STRIDE_H, g.stride_h), (regmap.FRAMES, frames),
                     (regmap.CTRL, regmap.CTRL_ENABLE)):
        m.write(off, val)
    for f, v in enumerate(vref):
        m.write(regmap.vref_offset(f), int(v))
    m.push(values, tlast=True)
    m.step(room_words=1 << 20)
    return [w for w, _ in m.pop_words(1 << 20)]


def random_pauses(rng: random.Random, p: float):
    while True:
        yield rng.random() < p


GEOMETRIES = [
    Geometry(4, 5, 3, pool_h=2, pool_w=2),                  # trailing column ignored
    Geometry(9, 9, 8, pool_h=3, pool_w=3),                  # the paper's 3x3 pooling on 9x9
    Geometry(6, 7, 5, pool_h=2, pool_w=3, stride_h=3, stride_w=3),  # gaps between windows
    Geometry.global_pool(5, 4, 7),                          # one bit per filter
    Geometry(3, 4, 2, pool_h=1, pool_w=1),                  # no pooling
    Geometry(4, 7, 1, pool_h=2, pool_w=3),                  # F = 1: back-to-back same address
    Geometry(4, 4, 64, pool_h=2, pool_w=2),                 # all 64 filters
]


@cocotb.test()
async def test_registers(dut):
    """Read-only identity registers, V_REF sign extension, W1C status."""
    h = Harness(dut)
    await h.start()
    assert await h.read(regmap.VERSION) == regmap.VERSION_VALUE
    caps = await h.read(regmap.CAPS)
    assert caps & 0xFF == 64 and (caps >> 8) & 0xFF == 16 and (caps >> 16) == 4096 // 16
    await h.write(regmap.vref_offset(63), -5)
    assert await h.read(regmap.vref_offset(63)) == (-5) & 0xFFFFFFFF
    await h.write(regmap.vref_offset(0), 0x7FFF)
    assert await h.read(regmap.vref_offset(0)) == 0x7FFF
    await h.write(regmap.WIDTH, 28)
    assert await h.read(regmap.WIDTH) == 28
    assert await h.read(regmap.STATUS) == 0


@cocotb.test()
async def test_random_frames_with_backpressure(dut):
    """Random frames, V_REF, geometries; random idle gaps and backpressure; bit-exact."""
    h = Harness(dut)
    await h.start()
    rng = np.random.default_rng(SEED)
    prng = random.Random(SEED)
    for i, g in enumerate(GEOMETRIES):
        n = 3 if g.values_per_frame < 600 else 2
        frames, vref = random_case(rng, g, n)
        await h.configure(g, vref, n)
        h.src.set_pause_generator(random_pauses(prng, [0.0, 0.3, 0.6][i % 3]))
        h.sink.set_pause_generator(random_pauses(prng, [0.5, 0.0, 0.8][i % 3]))
        await h.send(frames)
        words = await h.recv_words()
        expected = reference_words(frames, vref, g).reshape(-1)
        assert np.array_equal(words, expected), f"geometry {g}: {words} != {expected}"
        assert (await h.read(regmap.STATUS)) & regmap.STATUS_ERR_MASK == 0
    h.src.set_pause_generator(None)
    h.sink.set_pause_generator(None)
    total = sum(3 if g.values_per_frame < 600 else 2 for g in GEOMETRIES)
    assert await h.read(regmap.FRAME_COUNT) == total
    assert await h.read(regmap.ERROR_COUNT) == 0


@cocotb.test()
async def test_reconfigure_between_frames(dut):
    """Registers written while a frame streams take effect at the next frame start."""
    h = Harness(dut)
    await h.start()
    rng = np.random.default_rng(SEED + 1)
    g = Geometry(6, 6, 4, pool_h=2, pool_w=2)
    frames, vref_a = random_case(rng, g, 2)
    vref_b = rng.integers(-300, 300, size=g.num_filters).astype(np.int16)
    await h.configure(g, vref_a, 2)
    h.src.pause = True
    send = cocotb.start_soon(h.send(frames))
    h.src.pause = False
    while len(h.in_beats) < g.values_per_frame // 2:     # middle of frame 0
        await RisingEdge(dut.aclk)
    h.src.pause = True
    await h.write_vref(vref_b)
    h.src.pause = False
    await send
    words = (await h.recv_words()).reshape(2, -1)
    assert np.array_equal(words[0], reference_words(frames[:1], vref_a, g)[0])
    assert np.array_equal(words[1], reference_words(frames[1:], vref_b, g)[0])

    # New geometry and frame count between packets, back to back.
    g2 = Geometry.global_pool(3, 3, 4)
    frames2, _ = random_case(rng, g2, 3)
    await h.configure(g2, vref_b, 3)
    await h.send(frames2)
    assert np.array_equal(await h.recv_words(), reference_words(frames2, vref_b, g2).reshape(-1))
    assert (await h.read(regmap.STATUS)) & regmap.STATUS_ERR_MASK == 0


@cocotb.test()
async def test_early_tlast_resync(dut):
    """TLAST before the packet's last value: flagged, output packet closed, core resyncs."""
    h = Harness(dut)
    await h.start()
    rng = np.random.default_rng(SEED + 2)
    g = Geometry(4, 4, 3, pool_h=2, pool_w=2)
    frames, vref = random_case(rng, g, 2)
    await h.configure(g, vref, 2)
    cut = g.values_per_frame + 10                      # frame 0 complete, frame 1 partial
    await h.send(frames.reshape(-1)[:cut])
    words = await h.recv_words()
    expected0 = reference_words(frames[:1], vref, g)[0]
    assert np.array_equal(words[: g.words_per_frame], expected0)
    assert len(words) == g.words_per_frame + 1         # the closing (partial) word
    assert words.tolist() == model_words(g, vref, 2, frames.reshape(-1)[:cut])
    status = await h.read(regmap.STATUS)
    assert status & regmap.STATUS_ERR_EARLY_TLAST
    assert not status & regmap.STATUS_BUSY
    assert await h.read(regmap.ERROR_COUNT) == 1
    await h.write(regmap.STATUS, regmap.STATUS_ERR_EARLY_TLAST)  # write 1 to clear
    assert (await h.read(regmap.STATUS)) & regmap.STATUS_ERR_MASK == 0
    await h.send(frames)
    assert np.array_equal(await h.recv_words(), reference_words(frames, vref, g).reshape(-1))
    assert (await h.read(regmap.STATUS)) & regmap.STATUS_ERR_MASK == 0
    # every kind of cut point (before any window closes, on window ends, at a frame end, in the
    # trailing values no window uses) agrees with the simulated device's IP model
    g3 = Geometry(5, 5, 2, pool_h=2, pool_w=2)          # row 4 and column 4 unused
    frames3, vref3 = random_case(rng, g3, 3)
    await h.configure(g3, vref3, 3)
    vpf = g3.values_per_frame
    for cut in (1, 7, 12, 32, vpf - 3, vpf, vpf + 19, 2 * vpf):
        await h.send(frames3.reshape(-1)[:cut])
        words = await h.recv_words()
        assert words.tolist() == model_words(g3, vref3, 3, frames3.reshape(-1)[:cut]), cut
    await h.write(regmap.STATUS, regmap.STATUS_ERR_MASK)


@cocotb.test()
async def test_late_tlast_resync(dut):
    """No TLAST on the last value: output complete, flagged, extra input dropped to TLAST."""
    h = Harness(dut)
    await h.start()
    rng = np.random.default_rng(SEED + 3)
    g = Geometry(3, 5, 2, pool_h=1, pool_w=2)
    frames, vref = random_case(rng, g, 2)
    await h.configure(g, vref, 2)
    junk = rng.integers(-1000, 1000, size=13).astype(np.int16)
    await h.send(np.concatenate([frames.reshape(-1), junk]))
    assert np.array_equal(await h.recv_words(), reference_words(frames, vref, g).reshape(-1))
    await ClockCycles(dut.aclk, 30)
    status = await h.read(regmap.STATUS)
    assert status & regmap.STATUS_ERR_LATE_TLAST and not status & regmap.STATUS_DISCARDING
    await h.send(frames[::-1].copy())
    assert np.array_equal(await h.recv_words(),
                          reference_words(frames[::-1], vref, g).reshape(-1))
    assert h.sink.empty()


@cocotb.test()
async def test_bad_config_dropped(dut):
    """A configuration the core cannot run is flagged and the packet dropped to TLAST."""
    h = Harness(dut)
    await h.start()
    rng = np.random.default_rng(SEED + 4)
    g = Geometry(4, 4, 2, pool_h=2, pool_w=2)
    frames, vref = random_case(rng, g, 1)
    await h.configure(g, vref, 1)
    await h.write(regmap.POOL_W, 5)                    # wider than the frame
    await h.send(frames)
    await ClockCycles(dut.aclk, 100)
    assert h.sink.empty()
    status = await h.read(regmap.STATUS)
    assert status & regmap.STATUS_ERR_CONFIG and not status & regmap.STATUS_DISCARDING
    await h.write(regmap.POOL_W, 2)
    await h.write(regmap.STATUS, regmap.STATUS_ERR_MASK)
    await h.send(frames)
    assert np.array_equal(await h.recv_words(), reference_words(frames, vref, g).reshape(-1))


@cocotb.test()
async def test_throughput_and_latency(dut):
    """Without backpressure the core takes one value per clock; records cycles and latency."""
    h = Harness(dut)
    await h.start()
    rng = np.random.default_rng(SEED + 5)
    g = Geometry(int(os.environ.get("TB_TPUT_H", "9")), int(os.environ.get("TB_TPUT_W", "9")),
                 64, pool_h=3, pool_w=3)
    n = int(os.environ.get("TB_TPUT_FRAMES", "4"))
    frames, vref = random_case(rng, g, n)
    await h.configure(g, vref, n)
    h.in_beats.clear()
    h.out_last.clear()
    await h.send(frames)
    words = await h.recv_words()
    assert np.array_equal(words, reference_words(frames, vref, g).reshape(-1))
    nvals = frames.size
    assert len(h.in_beats) == nvals
    span = h.in_beats[-1] - h.in_beats[0] + 1
    cycles_per_value = span / nvals
    latency = h.out_last[-1] - h.in_beats[-1]
    result = {"values": nvals, "cycles": span, "cycles_per_value": cycles_per_value,
              "latency_cycles": latency, "geometry": [g.height, g.width, g.num_filters, 3],
              "frames": n}
    dut._log.info("throughput %s", result)
    out = os.environ.get("TB_RESULT_JSON")
    if out:
        with open(out, "w") as fh:
            json.dump(result, fh)
    assert abs(cycles_per_value - 1.0) <= 0.01, cycles_per_value
    assert latency <= 8, latency
