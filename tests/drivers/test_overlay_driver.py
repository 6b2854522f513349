"""The overlay driver through pynq's real Overlay/DMA/MMIO on the simulated pynq.Device."""
from __future__ import annotations

import numpy as np
import pytest

pynq = pytest.importorskip("pynq", reason="pynq not installed (pip install -e '.[test]')")

from drivers.overlay import regmap  # noqa: E402
from drivers.overlay.driver import (MaxPoolOverlay, NotConfiguredError, NumpyOverlay,  # noqa: E402
                                    OverlayError, OverlayTimeoutError, ip_driver_class)
from drivers.overlay.ip_model import MaxPoolThreshModel  # noqa: E402
from drivers.overlay.reference import (FixedPointRangeError, Geometry, GeometryError,  # noqa: E402
                                       maxpool_threshold, reference_words)
from drivers.overlay.sim_hwh import DMA_BASE, IP_BASE, write_overlay_files  # noqa: E402
from drivers.sim.pynq_device import BusError, SimPynqDevice  # noqa: E402


@pytest.fixture(scope="module")
def bitfile(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(write_overlay_files(tmp_path_factory.mktemp("overlay")))


@pytest.fixture
def board(bitfile: str) -> tuple[MaxPoolOverlay, SimPynqDevice]:
    dev = SimPynqDevice()
    return MaxPoolOverlay(bitfile, device=dev, timeout_s=0.2), dev


def random_case(rng, g: Geometry, n: int):
    """Random frames and a per-filter V_REF that about half of the window maxima exceed."""
    frames = rng.integers(-300, 300, size=(n,) + g.frame_shape).astype(np.int16)
    q = 1 - 0.5 / (g.pool_h * g.pool_w)
    vref = np.quantile(frames.reshape(-1, g.num_filters), q, axis=0).astype(np.int16)
    return frames, vref


def test_real_pynq_classes_bound(board) -> None:
    ov, dev = board
    assert type(ov.overlay) is pynq.Overlay
    assert isinstance(ov.ip, ip_driver_class()) and isinstance(ov.ip, pynq.DefaultIP)
    assert type(ov.dma) is pynq.lib.dma.DMA
    assert isinstance(ov.ip.mmio, pynq.MMIO) and ov.ip.mmio.base_addr == IP_BASE
    assert ov.overlay.ip_dict["axi_dma_0"]["phys_addr"] == DMA_BASE
    assert ov.dma.buffer_max_size == (1 << 26) - 1
    assert ov.ip.register_map.VREF_5.address == regmap.vref_offset(5)   # from the .hwh
    assert pynq.Clocks.fclk0_mhz == pytest.approx(100.0)                  # FCLK0 programmed


@pytest.mark.parametrize("g, n", [
    (Geometry(9, 9, 64, pool_h=3, pool_w=3), 37),
    (Geometry(4, 7, 1, pool_h=2, pool_w=3), 5),
    (Geometry(6, 7, 5, pool_h=2, pool_w=3, stride_h=3, stride_w=3), 9),
    (Geometry.global_pool(9, 9, 64), 20),
], ids=str)
def test_process_matches_reference(board, g: Geometry, n: int) -> None:
    ov, dev = board
    rng = np.random.default_rng(11)
    frames, vref = random_case(rng, g, n)
    ov.max_batch_frames = 8                      # several DMA transfers, one short batch
    ov.configure(vref, g)
    dev.register_log = []
    out = ov.process(frames)
    expected = maxpool_threshold(frames, vref, g)
    assert out.dtype == bool and out.shape == (n,) + g.feature_shape
    assert np.array_equal(out, expected)
    assert 0 < expected.mean() < 1
    length_writes = [v for op, a, v in dev.register_log if op == "w" and a == DMA_BASE + 0x28]
    assert len(length_writes) == -(-n // 8)      # one MM2S transfer per batch
    assert dev.ip.frame_count == n
    twin = NumpyOverlay()
    twin.configure(vref, g)
    assert np.array_equal(twin.process(frames), out)


def test_reconfigure_between_calls(board) -> None:
    ov, _ = board
    rng = np.random.default_rng(5)
    g1, g2 = Geometry(4, 4, 8, pool_h=2, pool_w=2), Geometry.global_pool(3, 5, 64)
    for g in (g1, g2, g1):
        frames, vref = random_case(rng, g, 4)
        ov.configure(vref, g)
        assert np.array_equal(ov.process(frames), maxpool_threshold(frames, vref, g))


def test_cache_maintenance_is_required(bitfile: str) -> None:
    """The simulated DDR sees host data only after flush: stale data gives wrong maps."""
    dev = SimPynqDevice()
    buf = dev.allocate((4,), "<u4")
    buf[:] = [1, 2, 3, 4]
    assert dev.memory.dma_read(buf.physical_address, 16).view("<u4").tolist() == [0, 0, 0, 0]
    buf.flush()
    assert dev.memory.dma_read(buf.physical_address, 16).view("<u4").tolist() == [1, 2, 3, 4]


def test_bad_input_rejected_before_device(board) -> None:
    ov, dev = board
    g = Geometry(4, 4, 8, pool_h=2, pool_w=2)
    with pytest.raises(NotConfiguredError):
        ov.process(np.zeros((1,) + g.frame_shape, np.int16))
    dev.register_log = []
    with pytest.raises(FixedPointRangeError):
        ov.configure(np.full(8, 40000), g)
    with pytest.raises(ValueError, match="shape"):
        ov.configure(np.zeros(7, np.int16), g)
    with pytest.raises(GeometryError):
        Geometry(4, 4, 8, pool_h=3, pool_w=3, stride_h=2, stride_w=2)
    assert dev.register_log == []
    ov.configure(np.zeros(8, np.int16), g)
    dev.register_log = []
    with pytest.raises(ValueError, match=r"\(N, 4, 4, 8\)"):
        ov.process(np.zeros((2, 4, 4, 7), np.int16))
    with pytest.raises(FixedPointRangeError):
        ov.process(np.full((1, 4, 4, 8), 1e6))
    assert dev.register_log == []


def test_dma_timeout_recovers(board) -> None:
    ov, dev = board
    rng = np.random.default_rng(2)
    g = Geometry(4, 4, 8, pool_h=2, pool_w=2)
    frames, vref = random_case(rng, g, 3)
    ov.configure(vref, g)
    dev.stall_ip = True
    with pytest.raises(OverlayTimeoutError, match="did not finish within 0.2 s"):
        ov.process(frames)
    dev.stall_ip = False
    assert np.array_equal(ov.process(frames), maxpool_threshold(frames, vref, g))


def test_ip_error_bits_raise(board) -> None:
    ov, dev = board
    g = Geometry(2, 2, 4)
    rng = np.random.default_rng(4)
    frames, vref = random_case(rng, g, 2)
    ov.configure(vref, g)
    ov.ip.write_reg(regmap.FRAMES, 3)     # the core now expects 3 frames: TLAST comes early
    ov._frames_reg = 2                    # ... while the driver believes it set 2
    with pytest.raises(OverlayError, match="STATUS=0x100"):
        ov.process(frames)
    assert ov.ip.status & regmap.STATUS_ERR_MASK == 0     # cleared for the next call
    assert np.array_equal(ov.process(frames), maxpool_threshold(frames, vref, g))


def test_unmapped_address_is_a_bus_error() -> None:
    dev = SimPynqDevice()
    with pytest.raises(BusError, match="0x50000000"):
        pynq.MMIO(0x5000_0000, 4, device=dev).read(0)


def test_model_stream_protocol() -> None:
    """The register-level IP model's malformed-packet handling, as the RTL tests define it."""
    m = MaxPoolThreshModel()
    g = Geometry(4, 4, 3, pool_h=2, pool_w=2)
    rng = np.random.default_rng(9)
    frames, vref = random_case(rng, g, 2)
    for off, val in ((regmap.WIDTH, 4), (regmap.HEIGHT, 4), (regmap.NUM_FILTERS, 3),
                     (regmap.POOL_W, 2), (regmap.POOL_H, 2), (regmap.STRIDE_W, 2),
                     (regmap.STRIDE_H, 2), (regmap.FRAMES, 2), (regmap.CTRL, 1)):
        m.write(off, val)
    for f, v in enumerate(vref):
        m.write(regmap.vref_offset(f), int(v))
    # early TLAST: frame 0 complete, 10 values of frame 1
    m.push(frames.reshape(-1)[: g.values_per_frame + 10], tlast=True)
    m.step(room_words=100)
    words = m.pop_words(100)
    assert [w for w, _ in words[:-1]] == reference_words(frames[:1], vref, g)[0].tolist()
    assert [t for _, t in words] == [False] * (len(words) - 1) + [True]
    assert len(words) == g.words_per_frame + 1
    assert m.read(regmap.STATUS) == regmap.STATUS_ERR_EARLY_TLAST
    # late TLAST: output complete, then input dropped up to TLAST
    m.write(regmap.STATUS, regmap.STATUS_ERR_MASK)
    m.push(np.concatenate([frames.reshape(-1), np.arange(13, dtype=np.int16)]), tlast=True)
    m.step(room_words=100)
    words = m.pop_words(100)
    assert [w for w, _ in words] == reference_words(frames, vref, g).reshape(-1).tolist()
    assert m.read(regmap.STATUS) == regmap.STATUS_ERR_LATE_TLAST
    assert m.read(regmap.ERROR_COUNT) == 2 and m.read(regmap.FRAME_COUNT) == 3
