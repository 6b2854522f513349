"""Numpy reference model of the max-pool / V_REF threshold IP: the one source of truth.

Every other implementation is checked bit-exactly against :func:`maxpool_threshold` and
:func:`pack_feature_maps`: the Verilog RTL (cocotb tests), the register-level model inside the
simulated ``pynq.Device`` and the pure-numpy overlay twin.

Fixed-point format
------------------
MVM values and V_REF share one format: signed two's-complement integers of
:data:`DATA_BITS` = 16 bits, read as **Q3.12** by default (:class:`FixedPoint`): a code ``c``
stands for ``c * 2**-12`` volts, so the range is [-8 V, +8 V - 244 µV] with a step (LSB) of
244.140625 µV. The MVM output of a crossbar column is the voltage at the output of its
transimpedance amplifier, ``V = I_column * R_f``; a current in amperes maps to a code through
``I * R_f / LSB``. The IP itself only compares integers, so any other scaling (another number
of fraction bits, another R_f) works as long as the MVM values and V_REF use the same one.

Data order
----------
Frames are pixel-major with the filter innermost: ``mvm[n, y, x, f]`` for frame ``n``, row
``y``, column ``x`` of the convolution output and filter ``f``. That is the order the array
produces them: each convolution step (one output pixel) yields the 64 filter results at once.

Pooling and threshold
---------------------
Non-overlapping (or gapped) max pooling: window ``(oy, ox)`` covers rows
``oy*stride_h .. oy*stride_h + pool_h - 1`` and columns ``ox*stride_w .. ox*stride_w + pool_w - 1``,
with ``out_h = (height - pool_h) // stride_h + 1`` (same for width). Only windows that fit in the
frame are used; trailing rows/columns that no window covers are ignored. Global pooling is
``pool = stride = (height, width)``. The feature-map bit of (oy, ox, f) is 1 when the window
maximum **strictly exceeds** ``vref[f]``.

Packing
-------
Bits of one frame are ordered (oy, ox, f) with f innermost and packed little-endian into
32-bit words: bit ``k`` of the frame lands in word ``k // 32``, bit ``k % 32``. Each frame is
padded with zero bits to a whole number of words.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Width of one MVM value / V_REF on the AXI-Stream and in the registers (bits).
DATA_BITS = 16
#: Smallest and largest code of the signed DATA_BITS format.
CODE_MIN = -(1 << (DATA_BITS - 1))
CODE_MAX = (1 << (DATA_BITS - 1)) - 1
#: Width of one output word of the packed feature map (bits).
WORD_BITS = 32

#: Limits of the synthesised core (Verilog parameters of ``maxpool_thresh_top``).
MAX_FILTERS = 64
#: Largest image width or height (the pixel counters are 10 bits wide).
MAX_DIM = 1023
#: Largest pool size / stride in either direction (8-bit registers).
MAX_POOL = 255
#: Depth of the running-maximum memory: out_w * num_filters must not exceed it.
ACC_DEPTH = 4096
#: Largest number of frames in one AXI-Stream packet (16-bit register).
MAX_FRAMES_PER_PACKET = 65535


class GeometryError(ValueError):
    """A frame geometry that the IP cannot process (raised before anything touches a device)."""


class FixedPointRangeError(ValueError):
    """A value outside the signed fixed-point range of the IP."""


@dataclass(frozen=True)
class FixedPoint:
    """Signed fixed-point format Q(int_bits).(frac_bits) with ``1 + int_bits + frac_bits == 16``.

    ``lsb_volts`` is the voltage of one code step (V). Currents map through the
    transimpedance ``r_f`` (Ω): ``code = I * r_f / lsb_volts``.
    """

    frac_bits: int = 12

    def __post_init__(self) -> None:
        if not 0 <= self.frac_bits <= DATA_BITS - 1:
            raise ValueError(f"frac_bits must be in [0, {DATA_BITS - 1}], got {self.frac_bits}")

    @property
    def lsb_volts(self) -> float:
        """Voltage of one code step (V)."""
        return 2.0 ** -self.frac_bits

    @property
    def v_min(self) -> float:
        """Most negative representable voltage (V)."""
        return CODE_MIN * self.lsb_volts

    @property
    def v_max(self) -> float:
        """Most positive representable voltage (V)."""
        return CODE_MAX * self.lsb_volts

    def to_codes(self, volts: np.ndarray | float) -> np.ndarray:
        """Round voltages (V, any shape) to int16 codes; raises if any is out of range."""
        v = np.asarray(volts, dtype=np.float64)
        if not np.all(np.isfinite(v)):
            raise FixedPointRangeError("voltages must be finite")
        codes = np.rint(v / self.lsb_volts)
        if codes.size and (codes.min() < CODE_MIN or codes.max() > CODE_MAX):
            raise FixedPointRangeError(
                f"voltage out of the Q{DATA_BITS - 1 - self.frac_bits}.{self.frac_bits} range "
                f"[{self.v_min} V, {self.v_max} V]: got [{v.min()} V, {v.max()} V]"
            )
        return codes.astype(np.int16)

    def currents_to_codes(self, amperes: np.ndarray | float, r_f: float) -> np.ndarray:
        """Codes of column currents (A, any shape) read through a transimpedance ``r_f`` (Ω)."""
        if not r_f > 0:
            raise ValueError(f"r_f must be positive (ohm), got {r_f}")
        return self.to_codes(np.asarray(amperes, dtype=np.float64) * r_f)

    def to_volts(self, codes: np.ndarray) -> np.ndarray:
        """Voltages (V) of int codes (any shape)."""
        return np.asarray(codes, dtype=np.float64) * self.lsb_volts


@dataclass(frozen=True)
class Geometry:
    """Frame geometry and pooling of the IP.

    height, width: convolution-output pixels per frame; num_filters: values per pixel;
    pool_h/pool_w: pooling window (pixels); stride_h/stride_w: window step (pixels),
    at least the window size (the IP pools non-overlapping windows). Stride defaults to the
    pool size.
    """

    height: int
    width: int
    num_filters: int = 64
    pool_h: int = 1
    pool_w: int = 1
    stride_h: int | None = None
    stride_w: int | None = None

    def __post_init__(self) -> None:
        if self.stride_h is None:
            object.__setattr__(self, "stride_h", self.pool_h)
        if self.stride_w is None:
            object.__setattr__(self, "stride_w", self.pool_w)
        self.validate()

    @classmethod
    def global_pool(cls, height: int, width: int, num_filters: int = 64) -> "Geometry":
        """Geometry with one window over the whole frame (one bit per filter)."""
        return cls(height, width, num_filters, pool_h=height, pool_w=width)

    def validate(self) -> None:
        """Raise :class:`GeometryError` naming the field if the IP registers cannot hold it."""
        for name in ("height", "width", "num_filters", "pool_h", "pool_w", "stride_h", "stride_w"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise GeometryError(f"{name} must be an int, got {value!r}")
            if value < 1:
                raise GeometryError(f"{name} must be >= 1, got {value}")
        if self.height > MAX_DIM or self.width > MAX_DIM:
            raise GeometryError(
                f"height/width must be <= {MAX_DIM}, got {self.height}x{self.width}"
            )
        if self.num_filters > MAX_FILTERS:
            raise GeometryError(f"num_filters must be <= {MAX_FILTERS}, got {self.num_filters}")
        for name in ("pool_h", "pool_w", "stride_h", "stride_w"):
            if getattr(self, name) > MAX_POOL:
                raise GeometryError(f"{name} must be <= {MAX_POOL}, got {getattr(self, name)}")
        if self.pool_h > self.height or self.pool_w > self.width:
            raise GeometryError(
                f"pool {self.pool_h}x{self.pool_w} larger than the frame {self.height}x{self.width}"
            )
        if self.stride_h < self.pool_h or self.stride_w < self.pool_w:
            raise GeometryError(
                f"stride {self.stride_h}x{self.stride_w} smaller than pool "
                f"{self.pool_h}x{self.pool_w}: overlapping windows are not supported by the IP"
            )
        if self.out_w * self.num_filters > ACC_DEPTH:
            raise GeometryError(
                f"out_w * num_filters = {self.out_w} * {self.num_filters} exceeds the IP's "
                f"running-maximum memory of {ACC_DEPTH} entries"
            )

    @property
    def out_h(self) -> int:
        """Feature-map rows."""
        return (self.height - self.pool_h) // self.stride_h + 1

    @property
    def out_w(self) -> int:
        """Feature-map columns."""
        return (self.width - self.pool_w) // self.stride_w + 1

    @property
    def values_per_frame(self) -> int:
        """Input values (stream beats) per frame: height * width * num_filters."""
        return self.height * self.width * self.num_filters

    @property
    def bits_per_frame(self) -> int:
        """Feature-map bits per frame: out_h * out_w * num_filters."""
        return self.out_h * self.out_w * self.num_filters

    @property
    def words_per_frame(self) -> int:
        """32-bit output words per frame (bits padded to a whole word)."""
        return -(-self.bits_per_frame // WORD_BITS)

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """Shape of one input frame: (height, width, num_filters)."""
        return (self.height, self.width, self.num_filters)

    @property
    def feature_shape(self) -> tuple[int, int, int]:
        """Shape of one unpacked feature map: (out_h, out_w, num_filters)."""
        return (self.out_h, self.out_w, self.num_filters)


def check_vref(vref: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Validate V_REF codes, shape (num_filters,), and return them as int16."""
    v = np.asarray(vref)
    if v.shape != (geometry.num_filters,):
        raise ValueError(f"vref must have shape ({geometry.num_filters},), got {v.shape}")
    if not np.issubdtype(v.dtype, np.integer):
        raise FixedPointRangeError(
            f"vref must be integer fixed-point codes (use FixedPoint.to_codes for volts), "
            f"got dtype {v.dtype}"
        )
    if v.size and (v.min() < CODE_MIN or v.max() > CODE_MAX):
        raise FixedPointRangeError(
            f"vref codes must be in [{CODE_MIN}, {CODE_MAX}], got [{v.min()}, {v.max()}]"
        )
    return v.astype(np.int16)


def check_frames(frames: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Validate MVM frames, shape (N, height, width, num_filters) or one frame without N.

    Returns an int16 array of shape (N, height, width, num_filters).
    """
    x = np.asarray(frames)
    if x.shape == geometry.frame_shape:
        x = x[np.newaxis]
    if x.ndim != 4 or x.shape[1:] != geometry.frame_shape:
        raise ValueError(
            f"frames must have shape (N, {geometry.height}, {geometry.width}, "
            f"{geometry.num_filters}), got {x.shape}"
        )
    if not np.issubdtype(x.dtype, np.integer):
        raise FixedPointRangeError(f"frames must be integer fixed-point codes, got {x.dtype}")
    if x.size and (x.min() < CODE_MIN or x.max() > CODE_MAX):
        raise FixedPointRangeError(
            f"MVM codes must be in [{CODE_MIN}, {CODE_MAX}], got [{x.min()}, {x.max()}]"
        )
    return x.astype(np.int16)


def maxpool_threshold(frames: np.ndarray, vref: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Max-pool every filter's MVM map and compare with that filter's V_REF.

    frames: int codes, shape (N, height, width, num_filters) (or one frame without N).
    vref: int codes, shape (num_filters,), same fixed-point format as ``frames``.
    Returns bool feature maps, shape (N, out_h, out_w, num_filters): True where the window
    maximum strictly exceeds V_REF.
    """
    x = check_frames(frames, geometry)
    v = check_vref(vref, geometry)
    g = geometry
    rows = g.out_h * g.stride_h
    cols = g.out_w * g.stride_w
    # Pad (with the minimum code) so that every window's stride period is complete, then take
    # only the first pool_h x pool_w positions of each period.
    padded = np.full((x.shape[0], rows, cols, g.num_filters), CODE_MIN, dtype=np.int16)
    h = min(rows, g.height)
    w = min(cols, g.width)
    padded[:, :h, :w, :] = x[:, :h, :w, :]
    periods = padded.reshape(x.shape[0], g.out_h, g.stride_h, g.out_w, g.stride_w, g.num_filters)
    windows = periods[:, :, : g.pool_h, :, : g.pool_w, :]
    pooled = windows.max(axis=(2, 4))
    return pooled > v[np.newaxis, np.newaxis, np.newaxis, :]


def pack_feature_maps(bits: np.ndarray) -> np.ndarray:
    """Pack bool feature maps, shape (N, out_h, out_w, num_filters), into uint32 words.

    Returns shape (N, words_per_frame): bit k of a frame (order oy, ox, f) is bit k % 32 of
    word k // 32; each frame is zero-padded to whole words.
    """
    b = np.asarray(bits, dtype=bool)
    n = b.shape[0]
    flat = b.reshape(n, -1)
    nwords = -(-flat.shape[1] // WORD_BITS)
    padded = np.zeros((n, nwords * WORD_BITS), dtype=np.uint8)
    padded[:, : flat.shape[1]] = flat
    by = np.packbits(padded, axis=1, bitorder="little")
    return by.view("<u4").reshape(n, nwords).astype(np.uint32)


def unpack_feature_maps(words: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Inverse of :func:`pack_feature_maps`: uint32 words (N, words_per_frame) -> bool
    feature maps (N, out_h, out_w, num_filters)."""
    w = np.ascontiguousarray(np.asarray(words, dtype="<u4"))
    if w.ndim != 2 or w.shape[1] != geometry.words_per_frame:
        raise ValueError(f"words must have shape (N, {geometry.words_per_frame}), got {w.shape}")
    by = w.view(np.uint8).reshape(w.shape[0], -1)
    bits = np.unpackbits(by, axis=1, bitorder="little")[:, : geometry.bits_per_frame]
    return bits.astype(bool).reshape((w.shape[0],) + geometry.feature_shape)


def reference_words(frames: np.ndarray, vref: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Packed output words the IP must produce for ``frames``: shape (N, words_per_frame)."""
    return pack_feature_maps(maxpool_threshold(frames, vref, geometry))
