"""Simulated array board: the protocol of ``firmware/array_board/PROTOCOL.md``, acting as the
router of a :class:`~.bench_state.SimBench`.

It mirrors the firmware's command handling (``firmware/array_board/board.c``); the driver is
tested against both. Fault injection: ``p_garble`` flips bits of replies (the CRC-16 catches
them), ``p_timeout`` drops replies, ``p_error`` makes a command arrive corrupted (the board
answers ``ERR 1 CRC`` and does nothing, as the firmware does).
"""

from __future__ import annotations

import binascii
import re

import numpy as np

from drivers.sim.instruments.base import Faults, SimInstrument
from drivers.sim.instruments.bench_state import SimBench

MAX_LINE = 12300
MAX_LIST = 4096
MAX_LOAD_ENTRIES = 1000
DAC_MAX_CODE = 65535
FW_VERSION = "1.0.0"


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF)."""
    return binascii.crc_hqx(data, 0xFFFF)


def frame(body: str) -> str:
    """``body*XXXX`` (without the line terminator)."""
    return f"{body}*{crc16(body.encode('ascii')):04X}"


class SimArrayBoard(SimInstrument):
    """Simulated array board.

    Args:
        bench: the simulated bench whose router this board is (``None``: protocol only).
        shape: (rows, cols) it addresses (default: the bench's).
        dac_vref: gate-DAC full scale, V (code 65535).
        faults: fault injection.
    """

    garble_mode = "bits"

    def __init__(self, bench: SimBench | None = None, shape: tuple[int, int] | None = None, dac_vref: float = 5.0, faults: Faults | None = None) -> None:
        super().__init__(faults)
        self.bench = bench
        self.shape = shape or (bench.shape if bench is not None else (128, 128))
        self.dac_vref = dac_vref
        self.list = np.zeros((MAX_LIST, 3), dtype=np.int64)
        self.gate_external = False
        self.triggers = 0
        self._release_all()
        if bench is not None:
            bench.attach_router(self)

    def _release_all(self) -> None:
        self.wl = self.bl = self.sl = -1
        self.dac = 0
        self.armed = 0
        self.pointer = 0

    def _apply_entry(self) -> None:
        r, c, g = self.list[self.pointer]
        self.wl, self.bl, self.sl = int(r), int(c), int(r)
        if not self.gate_external:
            self.dac = int(g)

    # ------------------------------------------------------------------ router interface
    def _entries_at(self, n: int, edges: bool) -> np.ndarray:
        """List entry reached by each of ``n`` points: with a trigger edge at the start of each
        point the list advances first; without edges it stays where it is."""
        step = 1 + np.arange(n) if edges else np.zeros(n, dtype=np.int64)
        return (self.pointer + step) % self.armed

    def point_gates(self, n: int, edges: bool = False) -> np.ndarray | None:
        if self.gate_external:
            return None
        if self.armed:
            k = self._entries_at(n, edges)
            codes = self.list[k, 2]
        else:
            codes = np.full(n, self.dac)
        return codes / 65535.0 * self.dac_vref

    def _flat(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Flat index in the array under test (wired to the board's first lines); -1 off it."""
        arows, acols = self.bench.shape if self.bench is not None else self.shape
        inside = (rows >= 0) & (rows < arows) & (cols >= 0) & (cols < acols)
        return np.where(inside, rows * acols + cols, -1)

    def point_cells(self, n: int, edges: bool = False) -> np.ndarray:
        if self.armed:
            k = self._entries_at(n, edges)
            cells = self._flat(self.list[k, 0], self.list[k, 1])
            if edges:
                self.pointer = int((self.pointer + n) % self.armed)
                self.triggers += n
                self._apply_entry()
            return cells
        self.triggers += n if edges else 0
        if self.wl >= 0 and self.bl >= 0 and self.sl == self.wl:
            return self._flat(np.full(n, self.wl), np.full(n, self.bl))
        return np.full(n, -1)

    # ------------------------------------------------------------------ protocol
    def _handle_message(self, text: str) -> str:
        self.counters.commands += 1
        if len(text) > MAX_LINE:
            return frame("ERR 4 LINE")
        if self.inject_command_error():
            return frame("ERR 1 CRC")
        m = re.fullmatch(r"(.*)\*([0-9A-F]{4})", text)
        if m is None or int(m.group(2), 16) != crc16(m.group(1).encode("latin-1")):
            return frame("ERR 1 CRC")
        body = m.group(1)
        if any(ch == "*" or not (0x20 <= ord(ch) <= 0x7E) for ch in body):
            return frame("ERR 3 CHAR")
        return frame(self._dispatch(body.split()))

    def _dispatch(self, t: list[str]) -> str:
        rows, cols = self.shape
        if not t:
            return "ERR 2 EMPTY"
        word, args = t[0], t[1:]
        if word == "IDN?":
            return f"OK IDN HIL-LAB,AB-1T1R-SIM,0001,{FW_VERSION},{rows}x{cols}"
        if word == "RST":
            self.gate_external = False
            self._release_all()
            return "OK RST"
        if word == "OFF":
            self._release_all()
            return "OK OFF"
        if word == "SEL":
            if len(args) != 2 or not _uint_below(args[0], rows) or not _uint_below(args[1], cols):
                return "ERR 3 SEL"
            self.armed = 0
            self.wl = self.sl = int(args[0])
            self.bl = int(args[1])
            return f"OK SEL {int(args[0])} {int(args[1])}"
        if word in ("WL", "BL", "SL"):
            limit = cols if word == "BL" else rows
            if len(args) != 1 or not (args[0] == "OFF" or _uint_below(args[0], limit)):
                return f"ERR 3 {word}"
            value = -1 if args[0] == "OFF" else int(args[0])
            setattr(self, word.lower(), value)
            self.armed = 0
            return f"OK {word} {'OFF' if value < 0 else value}"
        if word == "DAC":
            if len(args) != 1 or not _uint_below(args[0], DAC_MAX_CODE + 1):
                return "ERR 3 DAC"
            self.dac = int(args[0])
            return f"OK DAC {self.dac}"
        if word == "GSRC":
            if len(args) != 1 or args[0] not in ("DAC", "EXT"):
                return "ERR 3 GSRC"
            self.gate_external = args[0] == "EXT"
            return f"OK GSRC {args[0]}"
        if word == "LOAD":
            return self._load(args)
        if word == "TRIG":
            if len(args) > 1 or (args and not _uint_below(args[0], 1000001)):
                return "ERR 3 TRIG"
            if not self.armed:
                return "ERR 7 TRIG"
            k = int(args[0]) if args else 1
            self.pointer = (self.pointer + k) % self.armed
            self.triggers += k
            self._apply_entry()
            return f"OK TRIG {self.pointer}"
        if word == "STAT?":
            d = lambda v: "-" if v < 0 else str(v)  # noqa: E731
            gsrc = "EXT" if self.gate_external else "DAC"
            return f"OK STAT {d(self.wl)} {d(self.bl)} {d(self.sl)} {self.dac} {gsrc} {self.armed} {self.pointer} {self.triggers}"
        return "ERR 2 UNKNOWN"

    def _load(self, args: list[str]) -> str:
        rows, cols = self.shape
        if len(args) != 3 or not _uint_below(args[0], MAX_LIST) or not _uint_below(args[1], MAX_LIST + 1) or int(args[1]) == 0:
            return "ERR 3 LOAD"
        offset, total, hexes = int(args[0]), int(args[1]), args[2]
        if len(hexes) % 12:
            return "ERR 6 LOAD"
        count = len(hexes) // 12
        if count > MAX_LOAD_ENTRIES or offset + count > total:
            return "ERR 5 LOAD"
        if not re.fullmatch(r"[0-9A-F]*", hexes):
            return "ERR 6 LOAD"
        entries = np.array([[int(hexes[i + k : i + k + 4], 16) for k in (0, 4, 8)] for i in range(0, len(hexes), 12)], dtype=np.int64)
        if np.any(entries[:, 0] >= rows) or np.any(entries[:, 1] >= cols):
            return "ERR 3 LOAD"
        self.list[offset : offset + count] = entries
        self.armed, self.pointer = total, 0
        self._apply_entry()
        return f"OK LOAD {offset} {count} {total} {crc16(hexes.encode('ascii')):04X}"


def _uint_below(text: str, limit: int) -> bool:
    return text.isdigit() and len(text) <= 9 and int(text) < limit
