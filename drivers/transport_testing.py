"""Assert a driver's exact wire exchange (in the style of PyMeasure's ``expected_protocol``).

    with expected_protocol(B2900, [("*IDN?", "Keysight Technologies,B2902A,0,0"), ...], limits) as smu:
        smu.output(1, False)

:class:`ExpectedTransport` plays an ordered list of ``(command, reply)`` pairs: every message
the driver writes must equal the next command (without termination), and its reply (``None``
for a write) is then what the driver reads. An unexpected message fails at once with both
texts; leaving the block with exchanges unused fails too. ``(None, reply)`` queues a reply the
instrument sends without a new command (e.g. the answer to a retried query).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from drivers.errors import TransportTimeout
from drivers.transport import Transport

D = TypeVar("D")
Message = str | bytes | None


def _b(x: str | bytes) -> bytes:
    return x.encode("latin-1") if isinstance(x, str) else x


class ExpectedTransport(Transport):
    """A transport that checks every message against a script of expected exchanges.

    Args:
        exchanges: ``(command, reply)`` pairs; ``reply`` ``None`` means no reply, bytes are
            sent as they are (for binary blocks), str gets the read termination appended.
    """

    def __init__(self, exchanges: Sequence[tuple[Message, Message]], read_termination: str = "\n", write_termination: str = "\n") -> None:
        super().__init__(1.0, read_termination, write_termination, retries=2)
        self.script = list(exchanges)
        self.position = 0
        self._pending = bytearray()
        self._take_unsolicited()

    def _take_unsolicited(self) -> None:
        while self.position < len(self.script) and self.script[self.position][0] is None:
            self._queue(self.script[self.position][1])
            self.position += 1

    def _queue(self, reply: Message) -> None:
        if reply is None:
            return
        if isinstance(reply, str):
            self._pending.extend(reply.encode("latin-1") + self.read_termination.encode())
        else:
            self._pending.extend(reply)

    def _send(self, data: bytes) -> None:
        term = self.write_termination.encode()
        sent = data[: -len(term)] if term and data.endswith(term) else data
        if self.position >= len(self.script):
            raise AssertionError(f"unexpected extra message {sent!r} (all {len(self.script)} exchanges used)")
        command, reply = self.script[self.position]
        if _b(command) != sent:  # type: ignore[arg-type]
            raise AssertionError(f"exchange {self.position}: expected {_b(command)!r}, got {sent!r}")  # type: ignore[arg-type]
        self.position += 1
        self._queue(reply)
        self._take_unsolicited()

    def _recv_until(self, terminator: bytes) -> bytes:
        if terminator not in self._pending:
            self._pending.clear()
            raise TransportTimeout("expected-protocol: no reply scripted")
        cut = self._pending.index(terminator) + len(terminator)
        out = bytes(self._pending[:cut])
        del self._pending[:cut]
        return out

    def _recv_exact(self, n: int) -> bytes:
        if len(self._pending) < n:
            self._pending.clear()
            raise TransportTimeout("expected-protocol: fewer bytes scripted than read")
        out = bytes(self._pending[:n])
        del self._pending[:n]
        return out

    def _drain(self) -> None:
        self._pending.clear()

    def _close(self) -> None:
        pass

    def assert_done(self) -> None:
        """Every scripted exchange has happened and every reply was read."""
        if self.position != len(self.script):
            raise AssertionError(f"only {self.position} of {len(self.script)} exchanges happened; next: {self.script[self.position]!r}")
        if self._pending:
            raise AssertionError(f"unread reply bytes left: {bytes(self._pending)!r}")


@contextlib.contextmanager
def expected_protocol(
    factory: Callable[..., D], exchanges: Sequence[tuple[Message, Message]], *args: Any, read_termination: str = "\n", **kwargs: Any
) -> Iterator[D]:
    """Build ``factory(transport, *args, **kwargs)`` on an :class:`ExpectedTransport` and, on
    normal exit, assert that exactly the scripted exchanges happened (constructor included)."""
    transport = ExpectedTransport(exchanges, read_termination=read_termination)
    driver = factory(transport, *args, **kwargs)
    yield driver
    transport.assert_done()
