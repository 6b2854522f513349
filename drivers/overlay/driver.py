"""Host driver of the max-pool / V_REF overlay: a ``pynq.DefaultIP`` subclass and an Overlay wrapper.

pynq is imported only when :func:`ip_driver_class` or :class:`MaxPoolOverlay` is first used, so
``import drivers`` works on machines without pynq. :class:`NumpyOverlay` is the pure-numpy twin
with the same interface, for runs without a board.

What has been verified here: everything through pynq 3.1.2's real ``Overlay``/``DMA``/``MMIO``
code on :class:`drivers.sim.pynq_device.SimPynqDevice`. What has not: a run on a PYNQ-Z2
(no board, no Vivado here; see firmware/README.md).
"""
from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from drivers.overlay import regmap
from drivers.overlay.reference import (MAX_FRAMES_PER_PACKET, Geometry, check_frames, check_vref,
                                       maxpool_threshold, unpack_feature_maps)

log = logging.getLogger(__name__)

#: Largest DMA transfer of the block design (c_sg_length_width = 26): 2**26 - 1 bytes.
DMA_MAX_BYTES = (1 << 26) - 1


class OverlayError(RuntimeError):
    """The overlay reported an error (sticky IP error bits, DMA error, short transfer)."""


class OverlayTimeoutError(OverlayError):
    """A DMA transfer did not finish within the timeout."""


class NotConfiguredError(RuntimeError):
    """``process`` was called before ``configure``."""


_IP_CLASS: Any = None


def ip_driver_class() -> type:
    """The ``pynq.DefaultIP`` subclass bound to :data:`regmap.VLNV` (created on first call;
    creating it registers it with pynq's driver table)."""
    global _IP_CLASS
    if _IP_CLASS is not None:
        return _IP_CLASS
    from pynq import DefaultIP

    class MaxPoolThreshIP(DefaultIP):
        """Register access to one maxpool_thresh core (offsets in :mod:`drivers.overlay.regmap`)."""

        bindto = [regmap.VLNV]

        def __init__(self, description: dict) -> None:
            super().__init__(description=description)

        def read_reg(self, offset: int) -> int:
            return int(self.mmio.read(offset))

        def write_reg(self, offset: int, value: int) -> None:
            self.mmio.write(offset, int(value) & 0xFFFFFFFF)

        @property
        def status(self) -> int:
            """STATUS register: busy/discarding and the sticky error bits."""
            return self.read_reg(regmap.STATUS)

        def clear_errors(self) -> None:
            self.write_reg(regmap.STATUS, regmap.STATUS_ERR_MASK)

        def soft_reset(self) -> None:
            """Drop any packet in flight; keeps the configuration registers."""
            self.write_reg(regmap.CTRL, regmap.CTRL_SOFT_RESET | regmap.CTRL_ENABLE)

        def check_identity(self) -> None:
            version = self.read_reg(regmap.VERSION)
            if version != regmap.VERSION_VALUE:
                raise OverlayError(f"maxpool_thresh VERSION is {version:#x}, expected "
                                   f"{regmap.VERSION_VALUE:#x}: wrong bitstream?")

        def program(self, geometry: Geometry, vref: np.ndarray, frames_per_packet: int) -> None:
            """Write geometry, V_REF codes (shape (num_filters,)) and FRAMES, then enable."""
            g = geometry
            for off, val in ((regmap.WIDTH, g.width), (regmap.HEIGHT, g.height),
                             (regmap.NUM_FILTERS, g.num_filters), (regmap.POOL_W, g.pool_w),
                             (regmap.POOL_H, g.pool_h), (regmap.STRIDE_W, g.stride_w),
                             (regmap.STRIDE_H, g.stride_h), (regmap.FRAMES, frames_per_packet)):
                self.write_reg(off, val)
            for f, v in enumerate(np.asarray(vref, dtype=np.int64)):
                self.write_reg(regmap.vref_offset(f), int(v))
            self.write_reg(regmap.CTRL, regmap.CTRL_ENABLE)

        def set_frames(self, frames_per_packet: int) -> None:
            self.write_reg(regmap.FRAMES, frames_per_packet)

    _IP_CLASS = MaxPoolThreshIP
    return _IP_CLASS


class _OverlayBase:
    """Validation and batching shared by the board driver and the numpy twin."""

    def __init__(self, max_batch_frames: int = 4096) -> None:
        if not 1 <= max_batch_frames <= MAX_FRAMES_PER_PACKET:
            raise ValueError(f"max_batch_frames must be in [1, {MAX_FRAMES_PER_PACKET}]")
        self.max_batch_frames = int(max_batch_frames)
        self.geometry: Geometry | None = None
        self.vref: np.ndarray | None = None

    def configure(self, vref: np.ndarray, geometry: Geometry) -> None:
        """Set V_REF codes, shape (num_filters,), and the frame geometry.

        V_REF is in the same signed 16-bit fixed-point codes as the MVM values (see
        :class:`drivers.overlay.reference.FixedPoint` to convert volts). Raises
        ``GeometryError``/``FixedPointRangeError``/``ValueError`` before touching the device.
        """
        if not isinstance(geometry, Geometry):
            raise TypeError(f"geometry must be a Geometry, got {type(geometry).__name__}")
        geometry.validate()
        v = check_vref(vref, geometry)
        self._apply(v, geometry)
        self.geometry, self.vref = geometry, v

    def batch_frames(self) -> int:
        """Frames per DMA transfer: bounded by max_batch_frames and the DMA length register."""
        g = self._need_config()
        by_in = DMA_MAX_BYTES // (2 * g.values_per_frame)
        by_out = DMA_MAX_BYTES // (4 * g.words_per_frame)
        return max(1, min(self.max_batch_frames, by_in, by_out))

    def process(self, frames: np.ndarray) -> np.ndarray:
        """Feature maps of MVM frames.

        frames: int codes, shape (N, height, width, num_filters) (or one frame without N).
        Returns bool, shape (N, out_h, out_w, num_filters).
        """
        g = self._need_config()
        x = check_frames(frames, g)
        out = np.empty((x.shape[0],) + g.feature_shape, dtype=bool)
        step = self.batch_frames()
        for start in range(0, x.shape[0], step):
            chunk = x[start: start + step]
            out[start: start + chunk.shape[0]] = self._run(chunk)
        return out

    def _need_config(self) -> Geometry:
        if self.geometry is None:
            raise NotConfiguredError("call configure(vref, geometry) before process()")
        return self.geometry

    def _apply(self, vref: np.ndarray, geometry: Geometry) -> None:
        raise NotImplementedError

    def _run(self, frames: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class NumpyOverlay(_OverlayBase):
    """Pure-numpy twin of :class:`MaxPoolOverlay` (same interface, no board, no pynq)."""

    def _apply(self, vref: np.ndarray, geometry: Geometry) -> None:
        return None

    def _run(self, frames: np.ndarray) -> np.ndarray:
        return maxpool_threshold(frames, self.vref, self.geometry)


class MaxPoolOverlay(_OverlayBase):
    """The maxpool_thresh overlay on a PYNQ board (or on a simulated ``pynq.Device``).

    bitfile: path of ``maxpool_thresh.bit`` (its ``.hwh`` beside it). device: a
    ``pynq.Device`` (default: pynq's active device). timeout_s: limit of each DMA wait (s);
    pynq's own ``wait()`` never times out, so the driver polls with this deadline and then
    resets the DMA and the core. max_batch_frames: frames per DMA transfer (one TLAST packet).
    """

    def __init__(self, bitfile: str, device: Any = None, download: bool = True,
                 timeout_s: float = 2.0, max_batch_frames: int = 4096,
                 ip_name: str = "maxpool_thresh_0", dma_name: str = "axi_dma_0") -> None:
        super().__init__(max_batch_frames)
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive (s), got {timeout_s}")
        ip_driver_class()
        import pynq

        self.timeout_s = float(timeout_s)
        self.overlay = pynq.Overlay(bitfile, download=download, device=device)
        self.device = self.overlay.device
        self.ip = getattr(self.overlay, ip_name)
        self.dma = getattr(self.overlay, dma_name)
        if not isinstance(self.ip, ip_driver_class()):
            raise OverlayError(f"{ip_name} is bound to {type(self.ip).__name__}, not the "
                               f"maxpool_thresh driver: VLNV mismatch in the .hwh?")
        self.ip.check_identity()
        self._buffers: dict[tuple[str, int], Any] = {}
        self._frames_reg = 0

    # ---------------------------------------------------------------- configuration
    def _apply(self, vref: np.ndarray, geometry: Geometry) -> None:
        self._frames_reg = 1
        self.ip.program(geometry, vref, self._frames_reg)
        self.ip.clear_errors()

    # ---------------------------------------------------------------- transfers
    def _buffer(self, kind: str, n: int, dtype: str) -> Any:
        key = (kind, n)
        if key not in self._buffers:
            import pynq

            for old in [k for k in self._buffers if k[0] == kind]:
                self._buffers.pop(old).freebuffer()
            self._buffers[key] = pynq.allocate(shape=(n,), dtype=dtype, target=self.device)
        return self._buffers[key]

    def _wait(self, channel: Any, what: str) -> None:
        deadline = time.monotonic() + self.timeout_s
        while not channel.idle:
            if channel.error:
                break
            if time.monotonic() > deadline:
                self._recover()
                raise OverlayTimeoutError(
                    f"DMA {what} did not finish within {self.timeout_s} s "
                    f"(IP status {self.ip.status:#x}); DMA and core were reset")
            time.sleep(0)
        try:
            channel.wait()   # idle or error now: returns at once, raises on DMA errors
        except RuntimeError as exc:
            self._recover()
            raise OverlayError(f"DMA {what} failed: {exc}") from exc

    def _recover(self) -> None:
        """Reset the DMA (both channels) and the core's stream state, then restart the DMA."""
        self.dma.mmio.write(0x00, 0x4)
        self.dma.mmio.write(0x30, 0x4)
        self.ip.soft_reset()
        self.ip.clear_errors()
        if self.dma.sendchannel is not None:
            self.dma.sendchannel.start()
        if self.dma.recvchannel is not None:
            self.dma.recvchannel.start()

    def _run(self, frames: np.ndarray) -> np.ndarray:
        g = self.geometry
        n = frames.shape[0]
        if self._frames_reg != n:
            self.ip.set_frames(n)
            self._frames_reg = n
        src = self._buffer("in", n * g.values_per_frame, "<i2")
        dst = self._buffer("out", n * g.words_per_frame, "<u4")
        src[:] = frames.reshape(-1)
        dst[:] = 0
        dst.flush()
        self.dma.recvchannel.transfer(dst)
        self.dma.sendchannel.transfer(src)
        self._wait(self.dma.sendchannel, "MM2S (frames to the core)")
        self._wait(self.dma.recvchannel, "S2MM (feature maps from the core)")
        got = self.dma.recvchannel.transferred
        status = self.ip.status
        if status & regmap.STATUS_ERR_MASK:
            self.ip.clear_errors()
            self._frames_reg = 0             # rewrite FRAMES on the next call
            raise OverlayError(f"maxpool_thresh reported errors, STATUS={status:#x}")
        if got != dst.nbytes:
            self._frames_reg = 0
            raise OverlayError(f"S2MM received {got} bytes, expected {dst.nbytes}")
        words = np.array(dst, dtype=np.uint32).reshape(n, g.words_per_frame)
        return unpack_feature_maps(words, g)

    def close(self) -> None:
        """Free the DMA buffers."""
        for buf in self._buffers.values():
            buf.freebuffer()
        self._buffers.clear()
