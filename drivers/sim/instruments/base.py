"""What every simulated instrument shares: message handling, counters, timing, fault injection.

A simulated instrument receives one terminated message at a time (``handle(bytes) -> bytes``)
and returns the bytes it would put on the wire (possibly nothing). The same object serves
in-process (:class:`~drivers.transport.SimTransport`) and over TCP or a pseudo-terminal
(:mod:`drivers.sim.server`).

Fault injection (:class:`Faults`) acts on replies and commands, with its own seeded generator
(the physics' random stream is never touched, so a run with faults that completes sees the
same devices as one without):

* ``p_timeout``: a reply is dropped (the host times out);
* ``p_garble``: a reply is corrupted. For SCPI/FLEX instruments on LAN/GPIB/USB the link
  layer has its own integrity checks, so corruption shows up as *framing* errors: the reply
  is truncated or stray bytes are inserted. For the serial array board, bits are flipped
  (its CRC-16 catches them);
* ``p_error``: a command fails with an instrument error-queue entry and is not executed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

#: Bytes inserted by SCPI-side garbling: none of them can appear in a valid ASCII reply field.
_STRAY = b"\x00\x7f~^|\xff\x1b"


@dataclass
class Faults:
    """Fault-injection probabilities (per reply / per command) and their seed."""

    p_timeout: float = 0.0
    p_garble: float = 0.0
    p_error: float = 0.0
    seed: int = 12345

    def __post_init__(self) -> None:
        for name in ("p_timeout", "p_garble", "p_error"):
            value = getattr(self, name)
            if not (0.0 <= value <= 1.0):
                raise ValueError(f"Faults.{name} must be in [0, 1], got {value!r}")
        self.rng = np.random.default_rng(self.seed)

    @property
    def active(self) -> bool:
        return self.p_timeout > 0 or self.p_garble > 0 or self.p_error > 0


@dataclass
class Counters:
    """Traffic seen by a simulated instrument.

    Attributes:
        messages: terminated messages received.
        commands: individual commands executed (a message may hold several, ``;``-separated).
        replies: replies sent (each one a host round trip).
        timeouts, garbles, errors: faults injected.
    """

    messages: int = 0
    commands: int = 0
    replies: int = 0
    timeouts: int = 0
    garbles: int = 0
    errors: int = 0


class SimInstrument:
    """Base class: counters, busy time and fault injection around ``_handle_message``.

    Subclasses implement ``_handle_message(text) -> str | bytes | None`` (the reply without
    termination, or ``None`` for no reply) and may raise :class:`SimCommandError` to queue an
    error.
    """

    termination = b"\n"
    garble_mode = "framing"  # or "bits"

    def __init__(self, faults: Faults | None = None) -> None:
        self.faults = faults or Faults()
        self.counters = Counters()
        self.busy_time = 0.0  # s of instrument time consumed (timing model)

    def handle(self, message: bytes) -> bytes:
        """Process one terminated message; return the bytes to send back."""
        self.counters.messages += 1
        text = message.decode("latin-1").rstrip("\r\n")
        reply = self._handle_message(text)
        if reply is None:
            return b""
        data = (reply if isinstance(reply, bytes) else reply.encode("latin-1")) + self.termination
        self.counters.replies += 1
        return self._inject_reply_fault(data)

    def inject_command_error(self) -> bool:
        """Whether this command should fail with an injected instrument error."""
        if self.faults.p_error and self.faults.rng.random() < self.faults.p_error:
            self.counters.errors += 1
            return True
        return False

    def _inject_reply_fault(self, data: bytes) -> bytes:
        f = self.faults
        if not f.active:
            return data
        if f.p_timeout and f.rng.random() < f.p_timeout:
            self.counters.timeouts += 1
            log.info("%s: fault: dropping reply %r", type(self).__name__, data[:40])
            return b""
        if f.p_garble and f.rng.random() < f.p_garble:
            self.counters.garbles += 1
            return self._garble(data)
        return data

    def _garble(self, data: bytes) -> bytes:
        rng = self.faults.rng
        if self.garble_mode == "bits":
            buf = bytearray(data)
            body = max(len(buf) - 1, 1)  # keep the terminator: the line arrives, corrupted
            for _ in range(int(rng.integers(1, 3))):
                pos = int(rng.integers(0, body))
                buf[pos] ^= 1 << int(rng.integers(0, 7))
                if buf[pos] == self.termination[0]:
                    buf[pos] ^= 0x20
            return bytes(buf)
        if rng.random() < 0.5 and len(data) > 1:
            cut = int(rng.integers(0, len(data) - 1))
            return data[:cut]  # truncated: the terminator never arrives
        pos = int(rng.integers(0, len(data)))  # before the terminator at the latest
        stray = bytes(rng.choice(list(_STRAY), size=int(rng.integers(1, 4))).astype(np.uint8))
        return data[:pos] + stray + data[pos:]

    def _handle_message(self, text: str) -> str | bytes | None:  # pragma: no cover - abstract
        raise NotImplementedError


class SimCommandError(Exception):
    """A simulated instrument rejects a command; carries the error-queue code and message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code},{message}")
        self.code = code
        self.message = message
