"""A small SCPI parser for the simulated instruments: short/long forms, channel suffixes,
compound messages (``;``), channel lists ``(@1,2)`` and an error queue."""

from __future__ import annotations

import re
from collections import deque

from drivers.sim.instruments.base import SimCommandError, SimInstrument

_VOWELS = set("AEIOU")
#: Optional SCPI nodes that the simulated instruments ignore.
_OPTIONAL = {"LEV", "IMM", "AMPL"}
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def short_form(mnemonic: str) -> str:
    """SCPI short form of one mnemonic (``"VOLTage"``/``"VOLTAGE"`` -> ``"VOLT"``)."""
    m = mnemonic.upper()
    if len(m) <= 4:
        return m
    return m[:3] if m[3] in _VOWELS else m[:4]


def parse_header(header: str) -> tuple[tuple[str, ...], int | None, bool]:
    """Split ``:SOUR2:VOLT:TRIG`` into (("SOUR","VOLT","TRIG"), 2, is_query)."""
    query = header.endswith("?")
    header = header.rstrip("?").lstrip(":")
    channel = None
    nodes = []
    for part in header.split(":"):
        if not part:
            raise SimCommandError(-102, '"Syntax error"')
        m = re.fullmatch(r"([A-Za-z*]+?)(\d*)", part)
        if m is None:
            raise SimCommandError(-102, '"Syntax error"')
        word, suffix = m.group(1), m.group(2)
        if suffix:
            channel = int(suffix)
        s = word.upper() if word.startswith("*") else short_form(word)
        if s not in _OPTIONAL:
            nodes.append(s)
    return tuple(nodes), channel, query


def parse_number(text: str) -> float:
    """A SCPI numeric argument (``1.0E-3``); anything else is error -104 (data type error)."""
    t = text.strip()
    if not _NUMBER.match(t):
        raise SimCommandError(-104, '"Data type error"')
    return float(t)


def parse_channel_list(text: str) -> list[int]:
    """``(@1,2)`` or ``(@1:2)`` -> [1, 2]."""
    t = text.strip()
    m = re.fullmatch(r"\(@([\d,: ]+)\)", t)
    if m is None:
        raise SimCommandError(-104, '"Data type error"')
    out: list[int] = []
    for item in m.group(1).split(","):
        item = item.strip()
        if ":" in item:
            a, b = item.split(":")
            out.extend(range(int(a), int(b) + 1))
        elif item:
            out.append(int(item))
    return out


def split_commands(message: str) -> list[str]:
    """Split a compound message at ``;`` (outside quotes and parentheses)."""
    parts, depth, quote, cur = [], 0, False, []
    for ch in message:
        if ch == '"':
            quote = not quote
        elif not quote and ch == "(":
            depth += 1
        elif not quote and ch == ")":
            depth -= 1
        if ch == ";" and not quote and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


class ScpiInstrument(SimInstrument):
    """SCPI message handling: compound commands, error queue, ``*IDN?``/``*OPC?``/``:SYST:ERR?``.

    Subclasses implement ``_command(nodes, channel, query, args) -> str | bytes | None``.
    """

    idn = "SIM,INSTRUMENT,0,0"
    error_queue_size = 30

    def __init__(self, faults=None) -> None:  # type: ignore[no-untyped-def]
        super().__init__(faults)
        self.errors: deque[tuple[int, str]] = deque()

    def push_error(self, code: int, message: str) -> None:
        if len(self.errors) >= self.error_queue_size:
            self.errors[-1] = (-350, '"Queue overflow"')
        else:
            self.errors.append((code, message))

    def _handle_message(self, text: str) -> str | bytes | None:
        replies: list[bytes] = []
        for command in split_commands(text):
            self.counters.commands += 1
            header, _, args = command.partition(" ")
            try:
                nodes, channel, query = parse_header(header)
                if self.inject_command_error():
                    raise SimCommandError(-310, '"System error (injected)"')
                reply = self._common(nodes, query, args) if nodes and nodes[0].startswith("*") else None
                if reply is None and not (nodes and nodes[0].startswith("*")):
                    reply = self._command(nodes, channel, query, args.strip())
                if query and reply is None:
                    raise SimCommandError(-113, '"Undefined header"')
            except SimCommandError as exc:
                self.push_error(exc.code, exc.message)
                if query:
                    break  # a failed query produces no reply (the host times out and checks errors)
                continue
            if reply is not None:
                replies.append(reply if isinstance(reply, bytes) else reply.encode("latin-1"))
        if not replies:
            return None
        return b";".join(replies)

    def _common(self, nodes: tuple[str, ...], query: bool, args: str) -> str | None:
        cmd = nodes[0] + ("?" if query else "")
        if cmd == "*IDN?":
            return self.idn
        if cmd == "*OPC?":
            return "1"
        if cmd in ("*WAI", "*OPC"):
            return None
        if cmd == "*CLS":
            self.errors.clear()
            return None
        if cmd == "*RST":
            self.reset()
            return None
        raise SimCommandError(-113, '"Undefined header"')

    def _system_error(self, nodes: tuple[str, ...]) -> str | None:
        """``:SYST:ERR?``, ``:SYST:ERR:NEXT?``, ``:SYST:ERR:ALL?``, ``:SYST:ERR:COUN?``."""
        if nodes[:2] != ("SYST", "ERR"):
            return None
        tail = nodes[2:]
        if tail in ((), ("NEXT",)):
            code, msg = self.errors.popleft() if self.errors else (0, '"No error"')
            return f"{code:+d},{msg}"
        if tail == ("ALL",):
            items = list(self.errors) or [(0, '"No error"')]
            self.errors.clear()
            return ",".join(f"{c:+d},{m}" for c, m in items)
        if tail == ("COUN",):
            return f"{len(self.errors):+d}"
        return None

    def reset(self) -> None:
        """``*RST``: subclasses restore their power-on state."""

    def _command(self, nodes: tuple[str, ...], channel: int | None, query: bool, args: str) -> str | bytes | None:
        raise NotImplementedError
