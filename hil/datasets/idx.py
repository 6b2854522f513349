"""IDX files (the MNIST / Fashion-MNIST container format), gzip-compressed or plain.

The IDX format (LeCun et al., http://yann.lecun.com/exdb/mnist/): a 4-byte magic number
``0x00 0x00 <dtype code> <ndim>``, then ``ndim`` big-endian uint32 dimensions, then the
payload in row-major order (big-endian for multi-byte types).

Checksums are taken over the *uncompressed* file content, never over the ``.gz`` container:
the same data is distributed by different mirrors with different gzip headers (name, time stamp).
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np

#: IDX type codes -> numpy dtypes (big-endian where it matters).
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class ChecksumError(ValueError):
    """The uncompressed payload of an IDX file does not have the expected SHA-256."""


def read_payload(path: str | Path) -> bytes:
    """The uncompressed bytes of ``path`` (gunzipped when the name ends in ``.gz``)."""
    path = Path(path)
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as fh:
            return fh.read()
    return path.read_bytes()


def sha256_hex(payload: bytes) -> str:
    """Hex SHA-256 of ``payload``."""
    return hashlib.sha256(payload).hexdigest()


def parse_idx(payload: bytes) -> np.ndarray:
    """Decode an IDX payload into an array of its stated dtype and shape."""
    if len(payload) < 4 or payload[0] != 0 or payload[1] != 0:
        raise ValueError("not an IDX payload: bad magic number")
    code, ndim = payload[2], payload[3]
    if code not in IDX_DTYPES:
        raise ValueError(f"not an IDX payload: unknown type code 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(payload) < header:
        raise ValueError("truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(payload, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    count = int(np.prod(dims)) if dims else 1
    if len(payload) != header + count * dtype.itemsize:
        raise ValueError(
            f"IDX payload size {len(payload)} B does not match its header {dims} x {dtype.itemsize} B + {header} B"
        )
    data = np.frombuffer(payload, dtype=dtype, count=count, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="), copy=True)


def encode_idx(data: np.ndarray) -> bytes:
    """Encode ``data`` (uint8 / int8 / int16 / int32 / float32 / float64) as an IDX payload."""
    data = np.asarray(data)
    for code, dtype in IDX_DTYPES.items():
        if data.dtype.kind == dtype.kind and data.dtype.itemsize == dtype.itemsize:
            header = bytes([0, 0, code, data.ndim]) + np.asarray(data.shape, dtype=">u4").tobytes()
            return header + np.ascontiguousarray(data, dtype=dtype).tobytes()
    raise ValueError(f"dtype {data.dtype} has no IDX type code")


def load_idx(path: str | Path, sha256: str | None = None) -> np.ndarray:
    """Load an IDX file, verifying the SHA-256 of its uncompressed payload first.

    Args:
        path: ``.gz`` or plain IDX file.
        sha256: expected hex SHA-256 of the uncompressed payload; ``None`` skips the check.

    Raises:
        ChecksumError: the payload's SHA-256 differs from ``sha256``.
    """
    payload = read_payload(path)
    if sha256 is not None:
        got = sha256_hex(payload)
        if got != sha256.lower():
            raise ChecksumError(
                f"{path}: SHA-256 of the uncompressed payload is {got}, expected {sha256.lower()} "
                "(corrupt or different file)"
            )
    return parse_idx(payload)
