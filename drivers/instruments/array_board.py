"""The array board: a serial word-line/bit-line/source-line decoder with a gate DAC.

Protocol: ``firmware/array_board/PROTOCOL.md`` (line-based ASCII, CRC-16 on every line in
both directions, replies echo the command). The driver checks the reply's CRC and echo; a
corrupted exchange raises :class:`~drivers.errors.ProtocolError` and is retried when the
command is idempotent (every command but ``TRIG`` sets absolute state).
"""

from __future__ import annotations

import binascii
import logging
import re
from collections.abc import Sequence

import numpy as np

from drivers.errors import InstrumentError, ProtocolError
from drivers.instruments.base import Instrument
from drivers.limits import SafetyLimits, check_count, check_numbers
from drivers.transport import Transport

log = logging.getLogger(__name__)

#: Entries per ``LOAD`` line and list capacity of the firmware.
MAX_LOAD_ENTRIES = 1000
MAX_LIST = 4096
DAC_FULL_SCALE_CODE = 65535


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF), as the firmware computes it."""
    return binascii.crc_hqx(data, 0xFFFF)


def frame(body: str) -> str:
    """A protocol line without its terminator: ``body*XXXX``."""
    return f"{body}*{crc16(body.encode('ascii')):04X}"


class BoardError(InstrumentError):
    """The board refused a command (``ERR <code> ...``)."""

    def __init__(self, code: int, text: str, command: str) -> None:
        super().__init__(f"array board refused {command!r}: ERR {code} {text}")
        self.code = code


class ArrayBoard(Instrument):
    """Driver of the array board.

    Args:
        transport: the board's (serial) transport.
        limits: the bench's safety limits (the gate voltage is checked before it is sent).
        dac_vref: gate-DAC full-scale voltage, V (code 65535).
        external_gate: ``True`` when an SMU channel drives the gate rail (``GSRC EXT``),
            ``False`` for the board's DAC.
        reset: send ``RST`` and the gate source in the constructor.

    Constructor traffic::

        > IDN?*XXXX          < OK IDN <maker>,<model>,<serial>,<fw>,<rows>x<cols>*XXXX
        > RST*XXXX           < OK RST*XXXX
        > GSRC EXT*XXXX      < OK GSRC EXT*XXXX        (or DAC)
    """

    label = "array board"
    close_raises = False

    def __init__(self, transport: Transport, limits: SafetyLimits, dac_vref: float = 5.0, external_gate: bool = True, reset: bool = True) -> None:
        if not dac_vref > 0:
            raise ValueError(f"dac_vref must be > 0 V, got {dac_vref!r}")
        super().__init__(transport)
        self.limits = limits
        self.dac_vref = float(dac_vref)
        self.external_gate = external_gate
        fields = self._command("IDN?", "IDN", idempotent=True)
        m = re.fullmatch(r"(.+),(\d+)x(\d+)", fields)
        if m is None:
            raise ProtocolError(f"array board: unexpected identity {fields!r}")
        self.identity = m.group(1)
        self.shape = (int(m.group(2)), int(m.group(3)))
        self._loaded: tuple[bytes, int] | None = None
        if reset:
            self._command("RST", "RST", idempotent=True)
            src = "EXT" if external_gate else "DAC"
            self._command(f"GSRC {src}", f"GSRC {src}", idempotent=True)

    # ------------------------------------------------------------------ exchange
    def _command(self, body: str, echo: str, *, idempotent: bool) -> str:
        """Send ``body``; return the reply fields after ``OK <echo>``."""

        def parse(line: str) -> str:
            m = re.fullmatch(r"(.*)\*([0-9A-F]{4})", line.rstrip("\r"))
            if m is None or int(m.group(2), 16) != crc16(m.group(1).encode("latin-1")):
                raise ProtocolError(f"array board: reply failed its CRC check: {line[:60]!r}")
            reply = m.group(1)
            if reply.startswith("ERR "):
                code, _, text = reply[4:].partition(" ")
                if code == "1":  # our line arrived corrupted: transient
                    raise ProtocolError(f"array board: command {body[:40]!r} arrived corrupted (ERR 1)")
                raise BoardError(int(code) if code.isdigit() else -1, text, body[:60])
            if reply != f"OK {echo}" and not reply.startswith(f"OK {echo} "):
                raise ProtocolError(f"array board: reply {reply[:60]!r} does not echo {echo!r}")
            return reply[len(f"OK {echo}") :].strip()

        try:
            return self.transport.query_parsed(frame(body), parse, idempotent=idempotent)
        except ProtocolError:
            self._loaded = None
            raise

    # ------------------------------------------------------------------ addressing
    def _check_cell(self, row: int, col: int) -> tuple[int, int]:
        r = check_count("SEL", "row", row, 0, self.shape[0] - 1)
        c = check_count("SEL", "col", col, 0, self.shape[1] - 1)
        return r, c

    def select(self, row: int, col: int) -> None:
        """Connect cell (row, col): word line ``row``, bit line ``col``, source line ``row``."""
        row, col = self._check_cell(row, col)
        self._loaded = None
        self._command(f"SEL {row} {col}", f"SEL {row} {col}", idempotent=True)

    def release(self) -> None:
        """Release every line (cells isolated), DAC to 0 V, list disarmed."""
        self._loaded = None
        self._command("OFF", "OFF", idempotent=True)

    def gate_code(self, volts: float | np.ndarray) -> np.ndarray:
        """DAC code(s) for gate voltage(s) ``volts`` (V), after the safety check."""
        v = check_numbers("DAC", "gate voltage", volts, "V").reshape(np.shape(volts))
        self.limits.check_gate(v)
        if np.any(v > self.dac_vref):
            raise ValueError(f"gate voltage above the DAC full scale {self.dac_vref} V")
        return np.rint(v / self.dac_vref * DAC_FULL_SCALE_CODE).astype(np.int64)

    def set_gate(self, volts: float) -> float:
        """Set the gate DAC to ``volts`` (V); returns the voltage the DAC code gives."""
        code = int(self.gate_code(volts))
        self._command(f"DAC {code}", f"DAC {code}", idempotent=True)
        return code / DAC_FULL_SCALE_CODE * self.dac_vref

    def load_cells(self, rows: Sequence[int] | np.ndarray, cols: Sequence[int] | np.ndarray, gates: Sequence[float] | np.ndarray | None = None) -> int:
        """Load and arm a cell list: the board steps one entry per SMU trigger point.

        Args:
            rows, cols: cell addresses, in sweep order.
            gates: gate voltage per cell, V (used when the DAC drives the gate), or ``None``.

        Returns:
            Round trips spent (0 when the same list is already armed at entry 0).
        """
        rows, cols = _cell_indices(rows), _cell_indices(cols)
        n = rows.size
        if cols.size != n or not 1 <= n <= MAX_LIST:
            raise ValueError(f"need 1..{MAX_LIST} cells with one column per row, got {n} rows and {cols.size} cols")
        if np.any(rows < 0) or np.any(rows >= self.shape[0]) or np.any(cols < 0) or np.any(cols >= self.shape[1]):
            raise ValueError(f"cell list leaves the board's {self.shape[0]}x{self.shape[1]} array")
        entries = self._entries(rows, cols, gates)
        key = (entries.tobytes(), n)
        if self._loaded == key:
            return 0  # armed and (the previous sweeps consumed whole laps) back at entry 0
        self._loaded = None
        trips = 0
        for offset in range(0, n, MAX_LOAD_ENTRIES):
            chunk = entries[offset : offset + MAX_LOAD_ENTRIES]
            hexes = "".join(f"{r:04X}{c:04X}{g:04X}" for r, c, g in chunk)
            fields = self._command(f"LOAD {offset} {n} {hexes}", "LOAD", idempotent=True)
            expect = f"{offset} {len(chunk)} {n} {crc16(hexes.encode('ascii')):04X}"
            if fields != expect:
                raise ProtocolError(f"array board: LOAD acknowledged {fields!r}, expected {expect!r}")
            trips += 1
        if n > MAX_LOAD_ENTRIES:
            # Each LOAD re-arms at entry 0, so the list is complete and armed after the last one.
            pass
        self._loaded = key
        return trips

    def _entries(self, rows: np.ndarray, cols: np.ndarray, gates: Sequence[float] | np.ndarray | None) -> np.ndarray:
        n = rows.size
        codes = np.zeros(n, dtype=np.int64) if gates is None else self.gate_code(np.broadcast_to(np.asarray(gates), (n,)))
        return np.stack([rows, cols, codes], axis=1)

    def is_loaded(self, rows: Sequence[int] | np.ndarray, cols: Sequence[int] | np.ndarray, gates: Sequence[float] | np.ndarray | None = None) -> bool:
        """Whether exactly this cell list is armed at entry 0 (a :meth:`load_cells` would send nothing)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        cols = np.asarray(cols, dtype=np.int64).reshape(-1)
        if self._loaded is None or rows.size != cols.size:
            return False
        return self._loaded == (self._entries(rows, cols, gates).tobytes(), rows.size)

    def forget_list(self) -> None:
        """Forget the cached list (e.g. after a sweep that did not consume whole laps)."""
        self._loaded = None

    def trigger(self, n: int = 1) -> int:
        """Software trigger: advance the armed list by ``n``; returns the new pointer. Not idempotent."""
        n = check_count("TRIG", "n", n, 1, MAX_LIST)
        self._loaded = None
        fields = self._command(f"TRIG {n}", "TRIG", idempotent=False)
        if not fields.isdigit():
            raise ProtocolError(f"array board: bad TRIG reply {fields!r}")
        return int(fields)

    def status(self) -> dict[str, object]:
        """Decoded ``STAT?``: lines (None when released), DAC code, gate source, list state."""
        fields = self._command("STAT?", "STAT", idempotent=True).split()
        if len(fields) != 8:
            raise ProtocolError(f"array board: bad STAT reply {fields!r}")
        line = lambda s: None if s == "-" else int(s)  # noqa: E731
        return {
            "word_line": line(fields[0]),
            "bit_line": line(fields[1]),
            "source_line": line(fields[2]),
            "dac_code": int(fields[3]),
            "gate_source": fields[4],
            "armed": int(fields[5]),
            "pointer": int(fields[6]),
            "triggers": int(fields[7]),
        }

    # ------------------------------------------------------------------ lifetime
    def _safe_idle(self) -> None:
        """Release every line and zero the DAC."""
        self.release()

    def _outputs_off(self) -> bool:
        """``STAT?``: every line released, the gate DAC at code 0 and no list armed."""
        st = self.status()
        return st["word_line"] is None and st["bit_line"] is None and st["source_line"] is None and st["dac_code"] == 0 and st["armed"] == 0


def _cell_indices(values: Sequence[int] | np.ndarray) -> np.ndarray:
    """Row or column indices as int64; floats, bools and other types are refused."""
    arr = np.asarray(values)
    if arr.size and (arr.dtype == bool or arr.dtype.kind not in "iu"):
        raise ValueError(f"LOAD: cell indices must be integers, got dtype {arr.dtype}")
    return arr.astype(np.int64).reshape(-1)
