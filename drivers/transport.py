"""The one transport seam: drivers talk bytes through a :class:`Transport`, never pyvisa/pyserial.

Three implementations share one interface:

* :class:`VisaTransport` wraps a pyvisa resource (any backend: NI-VISA, Keysight, pyvisa-py
  ``@py``). A LAN instrument at ``TCPIP::host::port::SOCKET`` is a raw socket.
* :class:`SerialTransport` wraps a pyserial port (the array board).
* :class:`SimTransport` calls an in-process simulated instrument's ``handle(line)`` (see
  :mod:`drivers.sim.instruments`); it exercises the same framing code as the real ones.

All three provide

* a timeout (s) and read/write terminations;
* ``write``, ``read``, ``query``, ``read_bytes``, and IEEE 488.2 definite-length block reads
  (``#<n><len><data>``) with :meth:`Transport.query_block`;
* a traffic log (:class:`TrafficLog`) of every message with its direction and time;
* a retry on a transient failure (timeout, or a framing error of a block) **only** for queries
  flagged ``idempotent=True`` (a query that changes no instrument state, e.g. ``*IDN?`` or a
  fetch of an already-measured buffer). Before a retry the input is drained, so that a late
  reply of the first attempt cannot be read as the answer to a later question.

A timeout raises :class:`~drivers.errors.TransportTimeout`; a malformed block raises
:class:`~drivers.errors.ProtocolError`.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from drivers.errors import InstrumentError, ProtocolError, TransportTimeout

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Direction tags of the traffic log.
SENT, RECEIVED = ">", "<"


@dataclass(frozen=True)
class TrafficEntry:
    """One message on the wire: direction (``">"`` sent, ``"<"`` received), bytes, wall time (s)."""

    direction: str
    data: bytes
    time: float


@dataclass
class TrafficLog:
    """Record of a transport's traffic, plus counters of round trips.

    Attributes:
        entries: every message, in order (kept only while ``keep`` is true).
        keep: whether to keep entries (counters always run).
        writes: messages sent.
        queries: round trips (a message sent and a reply awaited).
        retries: queries repeated after a transient failure.
    """

    entries: list[TrafficEntry] = field(default_factory=list)
    keep: bool = True
    writes: int = 0
    queries: int = 0
    retries: int = 0

    def record(self, direction: str, data: bytes) -> None:
        if self.keep:
            self.entries.append(TrafficEntry(direction, bytes(data), time.monotonic()))
        log.debug("%s %r", direction, data[:200])

    def clear(self) -> None:
        self.entries.clear()
        self.writes = self.queries = self.retries = 0

    def __iter__(self) -> Iterator[TrafficEntry]:
        return iter(self.entries)

    def exchanges(self) -> list[tuple[str, bytes]]:
        """``(direction, data)`` pairs, for asserting an exact exchange in tests."""
        return [(e.direction, e.data) for e in self.entries]


def parse_block_header(head: bytes) -> int:
    """Length of an IEEE 488.2 definite-length block from its header ``#<n><len>``.

    Raises:
        ProtocolError: not a definite-length header.
    """
    if len(head) < 2 or head[:1] != b"#" or not head[1:2].isdigit() or head[1:2] == b"0":
        raise ProtocolError(f"expected an IEEE 488.2 definite-length block header, got {head[:12]!r}")
    n = int(head[1:2])
    digits = head[2 : 2 + n]
    if len(digits) != n or not digits.isdigit():
        raise ProtocolError(f"malformed block length in header {head[: 2 + n]!r}")
    return int(digits)


def make_block(payload: bytes) -> bytes:
    """Encode ``payload`` as an IEEE 488.2 definite-length block ``#<n><len><payload>``."""
    length = str(len(payload)).encode()
    if len(length) > 9:
        raise ValueError("block too long for a definite-length header")
    return b"#" + str(len(length)).encode() + length + payload


class Transport(ABC):
    """Message transport to one instrument.

    Args:
        timeout: seconds to wait for a complete reply.
        read_termination: end of an incoming message.
        write_termination: appended to every outgoing message.
        retries: how many times an idempotent query is repeated after a transient failure.
        encoding: text encoding of commands and replies.
    """

    def __init__(
        self,
        timeout: float = 5.0,
        read_termination: str = "\n",
        write_termination: str = "\n",
        retries: int = 2,
        encoding: str = "ascii",
    ) -> None:
        if not (timeout > 0):
            raise ValueError(f"timeout must be > 0 s, got {timeout!r}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries!r}")
        self.timeout = float(timeout)
        self.read_termination = read_termination
        self.write_termination = write_termination
        self.retries = int(retries)
        self.encoding = encoding
        self.traffic = TrafficLog()
        self._dirty = False  # a reply may be pending after a failure
        self._closed = False

    # ------------------------------------------------------------------ raw I/O
    @abstractmethod
    def _send(self, data: bytes) -> None:
        """Send raw bytes."""

    @abstractmethod
    def _recv_until(self, terminator: bytes) -> bytes:
        """Receive up to and including ``terminator``; raise TransportTimeout after ``timeout``."""

    @abstractmethod
    def _recv_exact(self, n: int) -> bytes:
        """Receive exactly ``n`` bytes; raise TransportTimeout after ``timeout``."""

    @abstractmethod
    def _drain(self) -> None:
        """Discard any input that is pending or arrives shortly (device clear where possible)."""

    @abstractmethod
    def _close(self) -> None: ...

    # ------------------------------------------------------------------ public API
    def write(self, command: str) -> None:
        """Send one message (the write termination is appended)."""
        self._check_open()
        data = (command + self.write_termination).encode(self.encoding)
        self.traffic.writes += 1
        self.traffic.record(SENT, data)
        self._send(data)

    def read(self) -> str:
        """Read one message, without its termination."""
        self._check_open()
        term = self.read_termination.encode(self.encoding)
        data = self._recv_until(term)
        self.traffic.record(RECEIVED, data)
        try:
            text = data.decode(self.encoding)
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"reply is not {self.encoding} text: {data[:40]!r}") from exc
        return text[: -len(self.read_termination)] if self.read_termination else text

    def read_bytes(self, n: int) -> bytes:
        """Read exactly ``n`` bytes."""
        self._check_open()
        data = self._recv_exact(n)
        self.traffic.record(RECEIVED, data)
        return data

    def read_block(self) -> tuple[bytes, str]:
        """Read an IEEE 488.2 definite-length block and the rest of its message.

        Returns:
            ``(payload, tail)``: the block's bytes, and whatever follows the block up to the
            termination (``""`` for a lone block; ``";..."`` for a compound reply).
        """
        head = self.read_bytes(2)
        if head[:1] != b"#" or not head[1:2].isdigit() or head[1:2] == b"0":
            raise ProtocolError(f"expected an IEEE 488.2 definite-length block header, got {head!r}")
        digits = self.read_bytes(int(head[1:2]))
        length = parse_block_header(head + digits)
        payload = self.read_bytes(length)
        tail = self.read()
        return payload, tail

    def query(self, command: str, *, idempotent: bool = False) -> str:
        """Send ``command`` and return the reply text.

        Args:
            command: the query.
            idempotent: the query changes no state, so a transient failure may be retried.
        """
        return self._with_retry(command, idempotent, self.read)

    def query_block(self, command: str, *, idempotent: bool = False) -> tuple[bytes, str]:
        """Send ``command`` and read a definite-length block reply (see :meth:`read_block`)."""
        return self._with_retry(command, idempotent, self.read_block)

    def query_parsed(self, command: str, parse: Callable[[str], T], *, idempotent: bool = False) -> T:
        """Query and parse the reply with ``parse``; a ProtocolError from ``parse`` is retried
        like a transient failure when the query is idempotent."""
        return self._with_retry(command, idempotent, lambda: parse(self.read()))

    def query_block_parsed(self, command: str, parse: Callable[[bytes, str], T], *, idempotent: bool = False) -> T:
        """Query a block reply and parse ``(payload, tail)`` with ``parse`` (retried as above)."""
        return self._with_retry(command, idempotent, lambda: parse(*self.read_block()))

    def _with_retry(self, command: str, idempotent: bool, receive: Callable[[], T]) -> T:
        attempts = 1 + (self.retries if idempotent else 0)
        for attempt in range(attempts):
            if self._dirty:
                self._drain()
                self._dirty = False
            self.traffic.queries += 1
            self.write(command)
            try:
                return receive()
            except (TransportTimeout, ProtocolError) as exc:
                self._dirty = True
                if attempt + 1 >= attempts:
                    raise
                self.traffic.retries += 1
                log.warning("retrying idempotent query %r after %s: %s", command, type(exc).__name__, exc)
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Release the port/resource. Idempotent."""
        if not self._closed:
            self._closed = True
            self._close()

    def _check_open(self) -> None:
        if self._closed:
            raise InstrumentError(f"{type(self).__name__} is closed")

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------- VISA
class VisaTransport(Transport):
    """Transport over a pyvisa resource (any VISA backend).

    Args:
        resource_name: VISA resource string, e.g. ``"GPIB0::23::INSTR"`` or
            ``"TCPIP::127.0.0.1::5025::SOCKET"``.
        backend: pyvisa backend (``""`` for the default VISA library, ``"@py"`` for pyvisa-py).
        timeout, read_termination, write_termination, retries: see :class:`Transport`.
        resource_manager: an existing ``pyvisa.ResourceManager`` to share (optional).
    """

    def __init__(
        self,
        resource_name: str,
        backend: str = "",
        timeout: float = 5.0,
        read_termination: str = "\n",
        write_termination: str = "\n",
        retries: int = 2,
        resource_manager: Any | None = None,
    ) -> None:
        super().__init__(timeout, read_termination, write_termination, retries)
        import pyvisa  # imported here: the seam is the only place that knows pyvisa

        self._pyvisa = pyvisa
        self._own_rm = resource_manager is None
        self._rm = resource_manager if resource_manager is not None else pyvisa.ResourceManager(backend)
        if self._own_rm:  # pyvisa hands out one manager per VISA library: count its users
            _RM_USERS[id(self._rm)] = _RM_USERS.get(id(self._rm), 0) + 1
        try:
            self._res = self._rm.open_resource(
                resource_name,
                read_termination=read_termination,
                write_termination="",
                timeout=int(round(self.timeout * 1000)),
            )
        except Exception as exc:
            self._release_rm()
            raise InstrumentError(f"cannot open VISA resource {resource_name!r}: {exc}") from exc
        self.resource_name = resource_name
        if "SOCKET" in resource_name.upper():
            self._set_nodelay()

    def _set_nodelay(self) -> None:
        """Disable Nagle's algorithm on a raw-socket resource.

        A write followed by a query would otherwise wait ~40 ms for the delayed ACK of the
        write. NI-VISA does this by default; pyvisa-py (0.8) does not expose the attribute for
        SOCKET sessions, so we reach its session's socket (best effort, pyvisa-py only).
        """
        import socket

        sessions = getattr(self._res.visalib, "sessions", None)
        sess = sessions.get(self._res.session) if isinstance(sessions, dict) else None
        sock = getattr(sess, "interface", None)
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        else:
            log.debug("%s: TCP_NODELAY left to the VISA library", self.resource_name)

    def _send(self, data: bytes) -> None:
        try:
            self._res.write_raw(data)
        except self._pyvisa.errors.VisaIOError as exc:
            raise InstrumentError(f"{self.resource_name}: write failed: {exc}") from exc

    def _recv_until(self, terminator: bytes) -> bytes:
        try:
            data = bytes(self._res.read_raw())
        except self._pyvisa.errors.VisaIOError as exc:
            if exc.error_code == self._pyvisa.constants.StatusCode.error_timeout:
                raise TransportTimeout(f"{self.resource_name}: no reply within {self.timeout} s") from exc
            raise InstrumentError(f"{self.resource_name}: read failed: {exc}") from exc
        if not data.endswith(terminator):
            # pyvisa-py returns a partial message when the peer goes quiet: treat as a timeout.
            raise TransportTimeout(f"{self.resource_name}: incomplete reply {data[:40]!r} within {self.timeout} s")
        return data

    def _recv_exact(self, n: int) -> bytes:
        try:
            data = bytes(self._res.read_bytes(n, break_on_termchar=False))
        except self._pyvisa.errors.VisaIOError as exc:
            if exc.error_code == self._pyvisa.constants.StatusCode.error_timeout:
                raise TransportTimeout(f"{self.resource_name}: {n} bytes not received within {self.timeout} s") from exc
            raise InstrumentError(f"{self.resource_name}: read failed: {exc}") from exc
        if len(data) != n:
            raise TransportTimeout(f"{self.resource_name}: got {len(data)} of {n} bytes within {self.timeout} s")
        return data

    def _drain(self) -> None:
        try:
            self._res.clear()  # device clear (GPIB/USBTMC/VXI-11/HiSLIP); pyvisa-py SOCKET drains
        except Exception as exc:  # some backends/interfaces do not implement clear
            log.debug("%s: clear() not available (%s); draining by reads", self.resource_name, exc)
            old = self._res.timeout
            self._res.timeout = 100
            try:
                for _ in range(1000):
                    self._res.read_raw()
            except Exception:
                pass
            finally:
                self._res.timeout = old

    def _close(self) -> None:
        try:
            self._res.close()
        finally:
            self._release_rm()

    def _release_rm(self) -> None:
        """Close the resource manager when its last transport goes (closing it earlier would
        close every other instrument's session of the same VISA library)."""
        if not self._own_rm:
            return
        left = _RM_USERS.get(id(self._rm), 1) - 1
        if left > 0:
            _RM_USERS[id(self._rm)] = left
            return
        _RM_USERS.pop(id(self._rm), None)
        self._rm.close()


#: Open transports per pyvisa ResourceManager (by id) that this module created.
_RM_USERS: dict[int, int] = {}


# ---------------------------------------------------------------------------------- serial
class SerialTransport(Transport):
    """Transport over a pyserial port.

    Args:
        port: device path or pyserial URL (``"/dev/ttyUSB0"``, ``"/dev/pts/5"``, ``"loop://"``).
        baudrate: line rate, baud.
        timeout, read_termination, write_termination, retries: see :class:`Transport`.
    """

    def __init__(
        self,
        port: str,
        baudrate: int = 115200,
        timeout: float = 2.0,
        read_termination: str = "\n",
        write_termination: str = "\n",
        retries: int = 2,
    ) -> None:
        super().__init__(timeout, read_termination, write_termination, retries)
        import serial  # imported here: the seam is the only place that knows pyserial

        self._serial_mod = serial
        try:
            if "://" in port:  # pyserial URL handlers (loop://, socket://, rfc2217://)
                self._port = serial.serial_for_url(port, baudrate=baudrate, timeout=self.timeout, write_timeout=self.timeout)
            else:
                self._port = serial.Serial(port, baudrate=baudrate, timeout=self.timeout, write_timeout=self.timeout)
        except (serial.SerialException, ValueError) as exc:
            raise InstrumentError(f"cannot open serial port {port!r}: {exc}") from exc
        self.port = port

    def _send(self, data: bytes) -> None:
        try:
            self._port.write(data)
            self._port.flush()
        except self._serial_mod.SerialException as exc:
            raise InstrumentError(f"{self.port}: write failed: {exc}") from exc

    def _recv_until(self, terminator: bytes) -> bytes:
        data = bytes(self._port.read_until(terminator))
        if not data.endswith(terminator):
            raise TransportTimeout(f"{self.port}: no complete reply within {self.timeout} s (got {data[:40]!r})")
        return data

    def _recv_exact(self, n: int) -> bytes:
        data = bytes(self._port.read(n))
        if len(data) != n:
            raise TransportTimeout(f"{self.port}: got {len(data)} of {n} bytes within {self.timeout} s")
        return data

    def _drain(self) -> None:
        old = self._port.timeout
        self._port.timeout = 0.05
        try:
            for _ in range(10000):
                if not self._port.read(4096):
                    break
        finally:
            self._port.timeout = old
        self._port.reset_input_buffer()

    def _close(self) -> None:
        self._port.close()


# ---------------------------------------------------------------------------------- in-process sim
class SimTransport(Transport):
    """In-process transport to a simulated instrument (anything with ``handle(bytes) -> bytes``).

    The instrument receives each terminated message and returns its reply bytes (possibly
    empty, possibly garbled or dropped by fault injection). Replies queue up as they would in
    the instrument's output buffer; a read with nothing queued raises TransportTimeout at once
    (no waiting: the simulator is synchronous).
    """

    def __init__(
        self,
        instrument: Any,
        timeout: float = 1.0,
        read_termination: str = "\n",
        write_termination: str = "\n",
        retries: int = 2,
    ) -> None:
        super().__init__(timeout, read_termination, write_termination, retries)
        self.instrument = instrument
        self._inbox = bytearray()
        self._outbox = bytearray()

    def _send(self, data: bytes) -> None:
        self._inbox.extend(data)
        term = self.write_termination.encode(self.encoding) or b"\n"
        while term in self._inbox:
            cut = self._inbox.index(term) + len(term)
            message = bytes(self._inbox[:cut])
            del self._inbox[:cut]
            self._outbox.extend(self.instrument.handle(message))

    def _recv_until(self, terminator: bytes) -> bytes:
        if terminator not in self._outbox:
            partial = bytes(self._outbox)
            self._outbox.clear()
            raise TransportTimeout(f"{type(self.instrument).__name__}: no complete reply (got {partial[:40]!r})")
        cut = self._outbox.index(terminator) + len(terminator)
        data = bytes(self._outbox[:cut])
        del self._outbox[:cut]
        return data

    def _recv_exact(self, n: int) -> bytes:
        if len(self._outbox) < n:
            self._outbox.clear()
            raise TransportTimeout(f"{type(self.instrument).__name__}: fewer than {n} bytes pending")
        data = bytes(self._outbox[:n])
        del self._outbox[:n]
        return data

    def _drain(self) -> None:
        self._outbox.clear()

    def _close(self) -> None:
        close = getattr(self.instrument, "close_connection", None)
        if close is not None:
            close()


def format_number(value: float) -> str:
    """A number as it goes on the wire: ``%.6e`` (never ``%f``, which loses small values)."""
    return "%.6e" % float(value)
