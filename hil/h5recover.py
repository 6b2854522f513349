"""Reopen an HDF5 run file whose writer died (SIGKILL, power loss) — h5clear -s, in Python.

HDF5 marks a file open for (SWMR) write in the superblock's *file consistency flags*. A
writer that is killed never clears them, and the library then refuses to open the file for
writing ("file is already open for write ... may use h5clear"). SWMR readers are not affected.
:func:`clear_consistency_flags` does what ``h5clear -s --increment`` does for superblock
versions 2 and 3: zero the flags byte, move the stored end-of-file address to the real end of
the file, and rewrite the superblock's Jenkins lookup3 checksum. Data flushed before
the writer died is untouched.
"""

from __future__ import annotations

import os
import struct

_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_M32 = 0xFFFFFFFF


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M32


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle`` (the checksum HDF5 uses for its metadata)."""
    length = len(data)
    a = b = c = (0xDEADBEEF + length + initval) & _M32
    i = 0
    while length > 12:
        a = (a + int.from_bytes(data[i : i + 4], "little")) & _M32
        b = (b + int.from_bytes(data[i + 4 : i + 8], "little")) & _M32
        c = (c + int.from_bytes(data[i + 8 : i + 12], "little")) & _M32
        a = (a - c) & _M32; a ^= _rot(c, 4); c = (c + b) & _M32  # noqa: E702
        b = (b - a) & _M32; b ^= _rot(a, 6); a = (a + c) & _M32  # noqa: E702
        c = (c - b) & _M32; c ^= _rot(b, 8); b = (b + a) & _M32  # noqa: E702
        a = (a - c) & _M32; a ^= _rot(c, 16); c = (c + b) & _M32  # noqa: E702
        b = (b - a) & _M32; b ^= _rot(a, 19); a = (a + c) & _M32  # noqa: E702
        c = (c - b) & _M32; c ^= _rot(b, 4); b = (b + a) & _M32  # noqa: E702
        length -= 12
        i += 12
    if length == 0:
        return c
    tail = data[i:] + bytes(12 - length)
    a = (a + int.from_bytes(tail[0:4], "little")) & _M32
    b = (b + int.from_bytes(tail[4:8], "little")) & _M32
    c = (c + int.from_bytes(tail[8:12], "little")) & _M32
    c ^= b; c = (c - _rot(b, 14)) & _M32  # noqa: E702
    a ^= c; a = (a - _rot(c, 11)) & _M32  # noqa: E702
    b ^= a; b = (b - _rot(a, 25)) & _M32  # noqa: E702
    c ^= b; c = (c - _rot(b, 16)) & _M32  # noqa: E702
    a ^= c; a = (a - _rot(c, 4)) & _M32  # noqa: E702
    b ^= a; b = (b - _rot(a, 14)) & _M32  # noqa: E702
    c ^= b; c = (c - _rot(b, 24)) & _M32  # noqa: E702
    return c


def consistency_flags(path: str | os.PathLike) -> int:
    """The superblock's file consistency flags (0 when the file was closed cleanly)."""
    with open(path, "rb") as fh:
        head = fh.read(12)
    if head[:8] != _SIGNATURE:
        raise ValueError(f"{path}: not an HDF5 file (or it has a user block)")
    if head[8] < 2:
        return 0  # superblock v0/v1 have no consistency flags in this position
    return head[11]


def clear_consistency_flags(path: str | os.PathLike) -> bool:
    """Clear the 'open for write' flags of a file whose writer died. Returns True if changed.

    Raises:
        ValueError: not an HDF5 file, or a superblock whose checksum does not verify (the
            file is then not touched).
    """
    with open(path, "r+b") as fh:
        head = fh.read(12)
        if head[:8] != _SIGNATURE:
            raise ValueError(f"{path}: not an HDF5 file (or it has a user block)")
        version, size_offsets = head[8], head[9]
        if version < 2:
            return False
        if version > 3:
            raise ValueError(f"{path}: superblock version {version} is not supported")
        body_len = 12 + 4 * size_offsets
        fh.seek(0)
        block = bytearray(fh.read(body_len + 4))
        (stored,) = struct.unpack("<I", block[body_len:])
        if lookup3(bytes(block[:body_len])) != stored:
            raise ValueError(f"{path}: superblock checksum does not verify; not touching the file")
        if block[11] == 0:
            return False
        block[11] = 0
        # Like ``h5clear -s --increment``: the stored end-of-file address may predate the last
        # allocations of the dead writer; move it to the real end of the file so that new
        # space is allocated after everything already written.
        eof_at = 12 + 2 * size_offsets
        stored_eof = int.from_bytes(block[eof_at : eof_at + size_offsets], "little")
        real_eof = os.fstat(fh.fileno()).st_size
        block[eof_at : eof_at + size_offsets] = max(stored_eof, real_eof).to_bytes(size_offsets, "little")
        block[body_len:] = struct.pack("<I", lookup3(bytes(block[:body_len])))
        fh.seek(0)
        fh.write(block)
        fh.flush()
        os.fsync(fh.fileno())
    return True


def superblock_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be a sound HDF5 file, judged from its superblock alone; None if it may be.

    Checks (cheap, before HDF5 touches the file): the signature at offset 0, the superblock
    checksum (versions 2 and 3), and — for a file closed cleanly — that the file is not shorter
    than the end-of-file address its superblock records (a truncated copy). Files with a user
    block or an old superblock are left to HDF5.
    """
    size = os.path.getsize(path)
    if size == 0:
        return "the file is empty (0 bytes)"
    with open(path, "rb") as fh:
        head = fh.read(12)
        if head[:8] != _SIGNATURE:
            return "not an HDF5 file (no HDF5 signature at its start)"
        if len(head) < 12:
            return f"truncated: only {size} bytes"
        version, size_offsets = head[8], head[9]
        if version not in (2, 3):
            return None
        if size_offsets not in (2, 4, 8, 16, 32):
            return f"corrupt superblock (offset size {size_offsets})"
        body_len = 12 + 4 * size_offsets
        fh.seek(0)
        block = fh.read(body_len + 4)
    if len(block) < body_len + 4:
        return f"truncated: only {size} bytes"
    (stored,) = struct.unpack("<I", block[body_len:])
    if lookup3(block[:body_len]) != stored:
        return "corrupt: the superblock checksum does not verify"
    eof_at = 12 + 2 * size_offsets
    eof = int.from_bytes(block[eof_at : eof_at + size_offsets], "little")
    if block[11] == 0 and eof > size:
        return f"truncated: the file has {size} bytes, its superblock says {eof}"
    return None
