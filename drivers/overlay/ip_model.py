"""Register-level model of the ``maxpool_thresh`` IP (pure numpy, no pynq).

It has the RTL's register bank (same offsets, widths, sticky write-1-to-clear errors, counters)
and its stream behaviour: configuration latched at every frame start, ``FRAMES`` frames per TLAST
packet, early / late TLAST handling and resynchronisation, invalid configuration dropped to
TLAST. The datapath is :func:`drivers.overlay.reference.maxpool_threshold`, the function the
RTL is checked against bit-exactly in tests/firmware.

Timing is not modelled: the model consumes whole frames at once (frame-granular backpressure:
it takes a new frame only while its output FIFO of :data:`FIFO_WORDS` words has room or the
downstream sink can absorb the frame). One known divergence from the RTL: when
``out_w * num_filters`` exceeds the running-max memory (ERR_CONFIG raised mid-frame in the RTL,
whose output is then undefined), the model still computes the reference result.
"""
from __future__ import annotations

import logging
from collections import deque

import numpy as np

from drivers.overlay import regmap
from drivers.overlay.reference import (ACC_DEPTH, DATA_BITS, MAX_FILTERS, WORD_BITS, Geometry,
                                       GeometryError, maxpool_threshold, pack_feature_maps)

log = logging.getLogger(__name__)

#: Depth of the RTL's output FIFO (words).
FIFO_WORDS = 8

_RW_MASKS = {
    regmap.WIDTH: 0x3FF, regmap.HEIGHT: 0x3FF, regmap.NUM_FILTERS: 0x7F,
    regmap.POOL_W: 0xFF, regmap.POOL_H: 0xFF, regmap.STRIDE_W: 0xFF, regmap.STRIDE_H: 0xFF,
    regmap.FRAMES: 0xFFFF,
}


class MaxPoolThreshModel:
    """The IP as the bus sees it: 32-bit registers plus an input and an output stream."""

    def __init__(self) -> None:
        self.reset()

    # ------------------------------------------------------------------ registers
    def reset(self) -> None:
        """Power-on reset (aresetn)."""
        self.regs = {off: 1 for off in _RW_MASKS}
        self.enable = False
        self.vref = np.zeros(MAX_FILTERS, dtype=np.int16)
        self.err = 0
        self.frame_count = 0
        self.error_count = 0
        self._soft_reset()

    def _soft_reset(self) -> None:
        self.in_values: deque[tuple[np.ndarray, bool]] = deque()  # (values, tlast at end)
        self.out_words: deque[tuple[int, bool]] = deque()          # (word, tlast)
        self.in_packet = False
        self.discarding = False
        self.frame_idx = 0
        self.l_frames = 1
        self.partial: list[np.ndarray] = []   # values of the frame in progress
        self.partial_n = 0
        self.l_geom: Geometry | None = None
        self.l_vref = np.zeros(MAX_FILTERS, dtype=np.int16)

    def read(self, offset: int) -> int:
        """32-bit register read."""
        if offset in _RW_MASKS:
            return self.regs[offset]
        if regmap.VREF_BASE <= offset < regmap.VREF_BASE + 4 * MAX_FILTERS:
            return int(self.vref[(offset - regmap.VREF_BASE) // 4]) & 0xFFFFFFFF
        return {
            regmap.CTRL: int(self.enable),
            regmap.STATUS: self.err | (regmap.STATUS_BUSY if self.in_packet else 0)
            | (regmap.STATUS_DISCARDING if self.discarding else 0),
            regmap.FRAME_COUNT: self.frame_count & 0xFFFFFFFF,
            regmap.ERROR_COUNT: self.error_count & 0xFFFFFFFF,
            regmap.VERSION: regmap.VERSION_VALUE,
            regmap.CAPS: ((ACC_DEPTH // 16) << 16) | (DATA_BITS << 8) | MAX_FILTERS,
        }.get(offset, 0)

    def write(self, offset: int, value: int) -> None:
        """32-bit register write (all byte strobes)."""
        value &= 0xFFFFFFFF
        if offset in _RW_MASKS:
            self.regs[offset] = value & _RW_MASKS[offset]
        elif regmap.VREF_BASE <= offset < regmap.VREF_BASE + 4 * MAX_FILTERS:
            self.vref[(offset - regmap.VREF_BASE) // 4] = np.int16(
                np.uint16(value & 0xFFFF).view(np.int16))
        elif offset == regmap.CTRL:
            self.enable = bool(value & regmap.CTRL_ENABLE)
            if value & regmap.CTRL_SOFT_RESET:
                self._soft_reset()
        elif offset == regmap.STATUS:
            self.err &= ~(value & regmap.STATUS_ERR_MASK)

    def _flag(self, bit: int) -> None:
        self.err |= bit
        self.error_count += 1

    # ------------------------------------------------------------------ configuration
    def _reg_geometry(self) -> Geometry | None:
        r = self.regs
        try:
            return Geometry(r[regmap.HEIGHT], r[regmap.WIDTH], r[regmap.NUM_FILTERS],
                            pool_h=r[regmap.POOL_H], pool_w=r[regmap.POOL_W],
                            stride_h=r[regmap.STRIDE_H], stride_w=r[regmap.STRIDE_W])
        except GeometryError:
            return None

    def _cfg_ok(self) -> bool:
        """The RTL's check at frame start (the ACC_DEPTH limit is not part of it)."""
        r = self.regs
        return (r[regmap.WIDTH] != 0 and r[regmap.HEIGHT] != 0 and
                1 <= r[regmap.NUM_FILTERS] <= MAX_FILTERS and r[regmap.POOL_W] != 0 and
                r[regmap.POOL_H] != 0 and r[regmap.STRIDE_W] >= r[regmap.POOL_W] and
                r[regmap.STRIDE_H] >= r[regmap.POOL_H] and r[regmap.POOL_W] <= r[regmap.WIDTH]
                and r[regmap.POOL_H] <= r[regmap.HEIGHT] and r[regmap.FRAMES] != 0)

    # ------------------------------------------------------------------ streams
    def push(self, values: np.ndarray, tlast: bool) -> None:
        """Queue input beats (int16, one value each); ``tlast`` marks the last one."""
        v = np.asarray(values, dtype=np.int16).reshape(-1)
        if v.size:
            self.in_values.append((v, tlast))

    @property
    def input_pending(self) -> int:
        """Input beats queued but not yet consumed."""
        return sum(v.size for v, _ in self.in_values)

    def pop_words(self, max_words: int) -> list[tuple[int, bool]]:
        """Take up to ``max_words`` output words (word, tlast) from the output FIFO."""
        out = []
        while self.out_words and len(out) < max_words:
            out.append(self.out_words.popleft())
        return out

    def _emit(self, words: np.ndarray, last: bool) -> None:
        n = len(words)
        for i, w in enumerate(words):
            self.out_words.append((int(w), last and i == n - 1))

    def _take(self, n: int) -> tuple[np.ndarray, bool]:
        """Remove up to n beats from the input, stopping after a TLAST beat.
        Returns (values, tlast_on_last_value)."""
        parts, got, tlast = [], 0, False
        while self.in_values and got < n:
            v, t = self.in_values[0]
            k = min(n - got, v.size)
            parts.append(v[:k])
            got += k
            if k == v.size:
                self.in_values.popleft()
                tlast = t
                if t:
                    break
            else:
                self.in_values[0] = (v[k:], t)
        return (np.concatenate(parts) if parts else np.zeros(0, np.int16)), tlast

    def _tlast_within(self, n: int) -> int | None:
        """Index (0-based, among the next n beats) of the first TLAST, if any."""
        seen = 0
        for v, t in self.in_values:
            if seen + v.size > n:
                return None
            seen += v.size
            if t:
                return seen - 1
        return None

    def step(self, room_words: int) -> bool:
        """Consume input as far as possible; ``room_words`` is what the sink can take now
        besides the FIFO. Returns True if anything changed."""
        changed = False
        while self.enable and self.in_values:
            if self.discarding:
                _, tlast = self._take(1 << 62)
                self.discarding = not tlast
                changed = True
                continue
            if self.partial_n == 0 and not self._start_frame():
                changed = True
                continue
            g, vpf = self.l_geom, self.l_geom.values_per_frame
            need = vpf - self.partial_n
            t = self._tlast_within(need)
            if t is None and self.input_pending < need:
                vals, _ = self._take(need)          # a partial frame: wait for more
                self.partial.append(vals)
                self.partial_n += vals.size
                return True
            room = FIFO_WORDS - len(self.out_words) + room_words
            if room <= 0 and len(self.out_words) >= FIFO_WORDS:
                return changed
            if t is not None and (t < need - 1 or self.frame_idx != self.l_frames - 1):
                vals, _ = self._take(t + 1)
                self._early_tlast(np.concatenate(self.partial + [vals]))
                changed = True
                continue
            # complete frames: batch as many as the packet, the input and the sink allow
            nframes = 1
            if self.partial_n == 0:
                left = self.l_frames - self.frame_idx
                fit = max(1, room // g.words_per_frame)
                avail = self.input_pending // vpf
                nframes = max(1, min(left, fit, avail))
                t_all = self._tlast_within(nframes * vpf)
                if t_all is not None and t_all != nframes * vpf - 1:
                    nframes = max(1, t_all // vpf)
                elif t_all is not None and self.frame_idx + nframes != self.l_frames:
                    nframes = max(1, nframes - 1)   # TLAST ends a frame early: next round
            vals, tlast = self._take(need + (nframes - 1) * vpf)
            frames = np.concatenate(self.partial + [vals]).reshape((nframes,) + g.frame_shape)
            self._complete_frames(frames, tlast)
            changed = True
        return changed

    def _start_frame(self) -> bool:
        """Latch the configuration at a frame start; False if the beat was dropped."""
        if not self._cfg_ok():
            self._flag(regmap.STATUS_ERR_CONFIG)
            log.debug("maxpool_thresh model: invalid configuration, dropping packet")
            if self.in_packet:
                self._emit(np.zeros(1, np.uint32), last=True)
            self.in_packet = False
            self.frame_idx = 0
            _, tlast = self._take(1)
            self.discarding = not tlast
            return False
        geom = self._reg_geometry()
        if geom is None:  # passes the RTL check but exceeds ACC_DEPTH: RTL output undefined
            self._flag(regmap.STATUS_ERR_CONFIG)
            r = self.regs
            geom = Geometry.__new__(Geometry)
            for name, off in (("height", regmap.HEIGHT), ("width", regmap.WIDTH),
                              ("num_filters", regmap.NUM_FILTERS), ("pool_h", regmap.POOL_H),
                              ("pool_w", regmap.POOL_W), ("stride_h", regmap.STRIDE_H),
                              ("stride_w", regmap.STRIDE_W)):
                object.__setattr__(geom, name, r[off])
        self.l_geom = geom
        self.l_vref = self.vref[: geom.num_filters].copy()
        if not self.in_packet:
            self.l_frames = self.regs[regmap.FRAMES]
            self.in_packet = True
            self.frame_idx = 0
        self.partial, self.partial_n = [], 0
        return True

    def _complete_frames(self, frames: np.ndarray, tlast: bool) -> None:
        g = self.l_geom
        words = pack_feature_maps(maxpool_threshold(frames, self.l_vref, g))
        n = frames.shape[0]
        self.frame_count += n
        pkt_end = self.frame_idx + n == self.l_frames
        self._emit(words.reshape(-1), last=pkt_end)
        self.partial, self.partial_n = [], 0
        if pkt_end:
            self.in_packet = False
            self.frame_idx = 0
            if not tlast:
                self._flag(regmap.STATUS_ERR_LATE_TLAST)
                self.discarding = True
        else:
            self.frame_idx += n

    def _early_tlast(self, values: np.ndarray) -> None:
        """TLAST on beat ``len(values)-1`` of the frame, not the packet's last beat."""
        g = self.l_geom
        cut = values.size - 1
        frame = np.zeros(g.values_per_frame, dtype=np.int16)
        frame[: values.size] = values
        bits = maxpool_threshold(frame.reshape((1,) + g.frame_shape), self.l_vref, g)
        # stream index of the last value of every window, in output bit order (oy, ox, f)
        oy = np.arange(g.out_h)[:, None, None]
        ox = np.arange(g.out_w)[None, :, None]
        f = np.arange(g.num_filters)[None, None, :]
        last_idx = ((oy * g.stride_h + g.pool_h - 1) * g.width
                    + ox * g.stride_w + g.pool_w - 1) * g.num_filters + f
        k = int(np.count_nonzero(last_idx.reshape(-1) <= cut))
        frame_last_bit = int(last_idx.reshape(-1)[-1])
        words = (pack_feature_maps(bits.reshape(1, -1)[:, :k]).reshape(-1) if k
                 else np.zeros(0, np.uint32))
        if cut > frame_last_bit:
            # all of the frame's words already went out; the core closes with a zero word
            self._emit(words, last=False)
            self._emit(np.zeros(1, np.uint32), last=True)
        elif k % WORD_BITS == 0 and not np.any(last_idx.reshape(-1) == cut):
            self._emit(words, last=False)
            self._emit(np.zeros(1, np.uint32), last=True)
        else:
            self._emit(words, last=True)
        self._flag(regmap.STATUS_ERR_EARLY_TLAST)
        self.in_packet = False
        self.frame_idx = 0
        self.partial, self.partial_n = [], 0
