"""Switch matrix (Keysight B2200A / E5250A class) used as the cell router, SCPI route commands.

Channels are written ``cIIOO``: card (0 = auto configuration mode), two-digit input port,
two-digit output port, e.g. ``(@10105)``. The bench wires three inputs: the SMU's bit-line
channel, its gate channel and ground; and three banks of outputs: bit lines, word lines and
source lines (see :class:`MatrixWiring`).

To connect cell (row, col) the driver opens every relay of the card and closes bit line
``col`` to the bit-line input, word line ``row`` to the gate input and source line ``row`` to
ground; it then asks ``:ROUT:CLOS? (@...)`` for exactly those three channels and requires
``1,1,1``. That query reads state only (idempotent, retried on a transient failure) and proves
the route before the SMU fires. A matrix has no way to step through a cell list on an SMU
trigger that this project could verify, so each cell costs one round trip.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from drivers.errors import InstrumentError, ProtocolError
from drivers.instruments.base import Instrument
from drivers.limits import check_count
from drivers.transport import Transport

log = logging.getLogger(__name__)

MAX_OUTPUT_PORT = 48
MAX_INPUT_PORT = 14


@dataclass(frozen=True)
class MatrixWiring:
    """Which matrix ports the bench uses.

    Attributes:
        card: card number in the channel code (0 = auto configuration mode).
        bitline_port, gate_port, ground_port: input ports wired to the SMU bit-line channel,
            the SMU gate channel and ground.
        bitline_first, wordline_first, sourceline_first: output port of bit line 0, word line
            0 and source line 0 (lines are on consecutive ports).
    """

    card: int = 0
    bitline_port: int = 1
    gate_port: int = 2
    ground_port: int = 3
    bitline_first: int = 1
    wordline_first: int = 9
    sourceline_first: int = 17

    def channel(self, input_port: int, output_port: int) -> str:
        if not (1 <= input_port <= MAX_INPUT_PORT and 1 <= output_port <= MAX_OUTPUT_PORT):
            raise ValueError(f"matrix channel input {input_port} output {output_port} outside 1..{MAX_INPUT_PORT} x 1..{MAX_OUTPUT_PORT}")
        return f"{self.card}{input_port:02d}{output_port:02d}"

    def cell_channels(self, row: int, col: int) -> list[str]:
        """Channel codes that connect cell (row, col): bit line, word line, source line."""
        return [
            self.channel(self.bitline_port, self.bitline_first + col),
            self.channel(self.gate_port, self.wordline_first + row),
            self.channel(self.ground_port, self.sourceline_first + row),
        ]


class SwitchMatrix(Instrument):
    """Driver of a B2200A/E5250A-class switch matrix acting as a cell router.

    Args:
        transport: the matrix's transport.
        wiring: port assignment.
        shape: (rows, cols) of the array behind the matrix (checked against the wiring).
        reset: send ``*RST``/``*CLS`` and open every relay in the constructor.

    Constructor traffic::

        > *IDN?                  < <identity>
        > *RST;*CLS;:ROUT:OPEN:CARD ALL
        > :SYST:ERR?             < +0,"No error"
    """

    label = "switch matrix"
    close_raises = False

    def __init__(self, transport: Transport, wiring: MatrixWiring, shape: tuple[int, int], reset: bool = True) -> None:
        super().__init__(transport)
        self.wiring = wiring
        self.shape = (int(shape[0]), int(shape[1]))
        rows, cols = self.shape
        # Validate the whole wiring before talking to the instrument.
        wiring.cell_channels(rows - 1, cols - 1)
        banks = [
            set(range(wiring.bitline_first, wiring.bitline_first + cols)),
            set(range(wiring.wordline_first, wiring.wordline_first + rows)),
            set(range(wiring.sourceline_first, wiring.sourceline_first + rows)),
        ]
        if banks[0] & banks[1] or banks[0] & banks[2] or banks[1] & banks[2]:
            raise ValueError("switch-matrix wiring: bit-line, word-line and source-line output banks overlap")
        self.identity = transport.query("*IDN?", idempotent=True).strip()
        self.selected: tuple[int, int] | None = None
        if reset:
            card = "ALL" if wiring.card == 0 else str(wiring.card)
            transport.write(f"*RST;*CLS;:ROUT:OPEN:CARD {card}")
            self.check_errors()

    def check_errors(self) -> None:
        """Drain the error queue (``:SYST:ERR?`` until ``0``); raise InstrumentError if any."""
        errors = []
        for _ in range(32):
            reply = self.transport.query(":SYST:ERR?").strip()
            m = re.fullmatch(r'([+-]?\d+),(".*")', reply)
            if m is None:
                raise ProtocolError(f"switch matrix: unparsable error reply {reply!r}")
            if int(m.group(1)) == 0:
                break
            errors.append(f"{m.group(1)} {m.group(2)}")
        if errors:
            raise InstrumentError("switch matrix error queue: " + "; ".join(errors))

    def select(self, row: int, col: int) -> None:
        """Connect cell (row, col) alone, and verify the three relays are closed."""
        row = check_count(":ROUT:CLOS", "row", row, 0, self.shape[0] - 1)
        col = check_count(":ROUT:CLOS", "col", col, 0, self.shape[1] - 1)
        chans = ",".join(self.wiring.cell_channels(row, col))
        card = "ALL" if self.wiring.card == 0 else str(self.wiring.card)
        self.selected = None
        self.transport.write(f":ROUT:OPEN:CARD {card};:ROUT:CLOS (@{chans})")
        state = self.transport.query_parsed(f":ROUT:CLOS? (@{chans})", _parse_states, idempotent=True)
        if state != [1, 1, 1]:
            self.check_errors()
            raise InstrumentError(f"switch matrix: route to cell ({row}, {col}) not closed (states {state})")
        self.selected = (row, col)

    def release(self) -> None:
        """Open every relay of the card (cells isolated)."""
        card = "ALL" if self.wiring.card == 0 else str(self.wiring.card)
        self.selected = None
        self.transport.write(f":ROUT:OPEN:CARD {card}")

    def _safe_idle(self) -> None:
        self.release()


def _parse_states(text: str) -> list[int]:
    t = text.strip()
    if not re.fullmatch(r"[01](,[01])*", t):
        raise ProtocolError(f"switch matrix: bad relay-state reply {text[:40]!r}")
    return [int(x) for x in t.split(",")]
