"""A transport for fuzz tests: records every message and answers queries from a function."""

from __future__ import annotations

import re
from collections.abc import Callable

from drivers.transport_testing import ExpectedTransport

NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|nan|inf", re.IGNORECASE)


class RecordingTransport(ExpectedTransport):
    """Accepts any message; ``answer(message)`` gives the reply (``None``: no reply)."""

    def __init__(self, answer: Callable[[str], str | None], read_termination: str = "\n") -> None:
        super().__init__([], read_termination=read_termination)
        self.answer = answer
        self.sent: list[str] = []

    def _send(self, data: bytes) -> None:
        text = data.decode("latin-1").rstrip("\r\n")
        self.sent.append(text)
        self._queue(self.answer(text))


def numbers(message: str) -> list[float]:
    """Every number in a message (a NaN or an inf in the text is returned as such)."""
    return [float(x) for x in NUMBER.findall(message)]
