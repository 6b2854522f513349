"""Simulated B1525A SPGU: the part of the simulated B1500 that answers the SPGU commands.

The simulated mainframe (:class:`~drivers.sim.instruments.b1500.SimB1500`) hands every
``SIM SPM SPPER SPT SPV SPRM SER ODSW SPUPD SRP SPP SPST?`` command, and ``CN``/``CL`` of an
SPGU channel (slot x 100 + 1 or 2), to :class:`SimSpgu`. It enforces the documented ranges
(Agilent B1500A/B1505A Programming Guide, Edition 11, "SPGU Module" and the Command Reference
entries; see ``drivers/instruments/MANUALS.md``) on its own: a value out of range, a
command for a channel that is not connected, a setup changed while the output runs, or
``SRP`` without a valid pulse setup is refused with an error-buffer entry (code 120 incorrect
parameter, 150 not allowed in this state, as the mainframe simulation uses) and nothing
changes. A new ``SPT``/``SPV`` setup reaches the output only after ``SPUPD``.

Physics: the wired channel drives the source line of the routed cell through the matrix's
ground input, so the cell sees ``V_bitline - V_pulse`` (the bit-line SMU holds the bit line).
``SRP`` in count mode fires ``count`` pulses into the :class:`~.bench_state.SimBench`; the
gate comes from the mainframe's gate SMU. The SPGU has no current compliance: the access
transistor limits the current.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from drivers.sim.instruments.base import SimCommandError
from drivers.sim.instruments.bench_state import SimBench

MODEL = "B1525A"
MIN_PERIOD, MAX_PERIOD = 20e-9, 10.0
MIN_WIDTH = 10e-9
MIN_EDGE, MAX_EDGE = 8e-9, 0.4
MAX_VOLTS_OPEN, MAX_VOLTS_50OHM = 40.0, 20.0
MAX_COUNT = 1_000_000
_NUM = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_BAD = '"Incorrect numeric parameter"'
_STATE = '"Command not allowed in this state"'


def _num(text: str) -> float:
    if not _NUM.match(text.strip()):
        raise SimCommandError(120, _BAD)
    return float(text)


def _int(text: str) -> int:
    value = _num(text)
    if value != int(value):
        raise SimCommandError(120, _BAD)
    return int(value)


def _within(value: float, low: float, high: float) -> float:
    if not low <= value <= high:
        raise SimCommandError(120, _BAD)
    return value


@dataclass
class SpguChannel:
    """Setup of one SPGU channel (power-on values)."""

    connected: bool = False
    mode: int = 0  # SPM: 0 DC, 1 2-level pulse
    load: float = 50.0
    pending: dict[str, float] = field(default_factory=dict)  # set by SPT/SPV, applied by SPUPD
    delay: float = 0.0
    width: float = 0.0
    lead: float = 0.0
    trail: float = 0.0
    base: float = 0.0
    peak: float = 0.0


class SimSpgu:
    """An SPGU in ``slot`` of a simulated B1500.

    Args:
        bench: the shared simulated bench.
        slot: mainframe slot (channels ``100 slot + 1`` and ``+ 2``).
        wired_channel: the channel on the source line of the array (0: none).
        line_state: returns (bit-line voltage V, gate voltage V or None) from the mainframe's SMUs.
    """

    def __init__(self, bench: SimBench, slot: int, wired_channel: int, line_state: Callable[[], tuple[float, float | None]]) -> None:
        self.bench = bench
        self.slot = slot
        self.wired = wired_channel
        self.line_state = line_state
        self.busy_time = 0.0
        self.pulses_fired = 0
        self.reset()

    def reset(self) -> None:
        self.ch = {100 * self.slot + k: SpguChannel() for k in (1, 2)}
        self.operation = 0  # SIM: 0 PG
        self.period = 1e-6
        self.repeat = (0, 0.0)  # SPRM: (mode, condition)
        self.active = False

    # ------------------------------------------------------------------ dispatch
    def handles(self, name: str, args: list[str]) -> bool:
        """Whether this command belongs to the SPGU (the mainframe hook asks first)."""
        if name in ("SIM", "SPM", "SPPER", "SPT", "SPV", "SPRM", "SER", "ODSW", "SPUPD", "SRP", "SPP", "SPST?"):
            return True
        return name in ("CN", "CL") and bool(args) and all(_NUM.match(a) and abs(float(a)) >= 100 for a in args)

    def _channel(self, text: str) -> SpguChannel:
        number = _int(text)
        if number not in self.ch:
            raise SimCommandError(120, '"Incorrect numeric parameter; no SPGU channel"')
        return self.ch[number]

    def _idle(self) -> None:
        if self.active:
            raise SimCommandError(150, _STATE)

    def command(self, name: str, a: list[str]) -> str | None:
        if name == "SPST?":
            return "1" if self.active else "0"
        if name == "SPP":
            self.active = False
            return None
        if name in ("CN", "CL"):
            chans = [self._channel(x) for x in a]
            for c in chans:
                c.connected = name == "CN"
            if name == "CL":
                self.active = False
            return None
        self._idle()
        if name == "SIM":
            if len(a) != 1 or _int(a[0]) not in (0, 1):
                raise SimCommandError(120, _BAD)
            self.operation = _int(a[0])
            return None
        if name == "SPPER":
            if len(a) != 1:
                raise SimCommandError(120, _BAD)
            self.period = _within(_num(a[0]), MIN_PERIOD, MAX_PERIOD)
            return None
        if name == "SPRM":
            return self._repeat(a)
        if name == "SRP":
            return self._start()
        c = self._channel(a[0]) if a else None
        if c is None:
            raise SimCommandError(120, _BAD)
        if not c.connected:
            raise SimCommandError(150, '"SPGU channel not connected"')
        if name == "SPM":
            if len(a) != 2 or _int(a[1]) not in (0, 1, 2, 3):
                raise SimCommandError(120, _BAD)
            c.mode = _int(a[1])
        elif name == "SER":
            if len(a) != 2:
                raise SimCommandError(120, _BAD)
            c.load = _within(_num(a[1]), 0.1, 1e6)
        elif name == "ODSW":
            if len(a) < 2 or _int(a[1]) not in (0, 1):
                raise SimCommandError(120, _BAD)
        elif name == "SPT":
            self._timing(c, a)
        elif name == "SPV":
            self._levels(c, a)
        elif name == "SPUPD":
            for k, v in c.pending.items():
                setattr(c, k, v)
            c.pending.clear()
        return None

    def _repeat(self, a: list[str]) -> None:
        mode = _int(a[0]) if a else -1
        if mode == 0 and len(a) == 1:
            self.repeat = (0, 0.0)
        elif mode == 1 and len(a) == 2:
            self.repeat = (1, float(_within(_int(a[1]), 1, MAX_COUNT)))
        elif mode == 2 and len(a) == 2:
            self.repeat = (2, _within(_num(a[1]), 1e-6, 1e6))
        else:
            raise SimCommandError(120, _BAD)
        return None

    def _timing(self, c: SpguChannel, a: list[str]) -> None:
        if len(a) != 6 or _int(a[1]) not in (1, 2):
            raise SimCommandError(120, _BAD)
        delay, width, lead, trail = (_num(x) for x in a[2:])
        _within(width, MIN_WIDTH, self.period - MIN_WIDTH)
        _within(delay, 0.0, self.period - 2 * MIN_WIDTH)
        _within(lead, MIN_EDGE, MAX_EDGE)
        _within(trail, MIN_EDGE, MAX_EDGE)
        c.pending.update(delay=delay, width=width, lead=lead, trail=trail)

    def _levels(self, c: SpguChannel, a: list[str]) -> None:
        if len(a) != 4 or _int(a[1]) not in (1, 2):
            raise SimCommandError(120, _BAD)
        v_max = MAX_VOLTS_OPEN if c.load >= 1e3 else MAX_VOLTS_50OHM
        base, peak = (_within(_num(x), -v_max, v_max) for x in a[2:])
        c.pending.update(base=base, peak=peak)

    # ------------------------------------------------------------------ output
    def _start(self) -> None:
        mode, count = self.repeat
        pulsing = [(n, c) for n, c in self.ch.items() if c.connected and c.mode == 1]
        if self.operation != 0 or mode != 1 or not pulsing or any(c.width <= 0 for _, c in pulsing):
            raise SimCommandError(150, '"SPGU pulse output not set up (SIM 0, SPM 1, SPRM 1, SPT/SPV + SPUPD)"')
        for number, c in pulsing:
            for _ in range(int(count)):
                self._fire(number, c)
        self.busy_time += count * self.period
        self.active = False  # count mode: the output has finished by the next query
        return None

    def _fire(self, number: int, c: SpguChannel) -> None:
        self.pulses_fired += 1
        if number != self.wired:
            return
        v_bitline, v_gate = self.line_state()
        v_cell = v_bitline - c.peak  # the pulse is on the source line
        gates = None if v_gate is None else np.array([v_gate])
        self.bench.pulse_points(np.array([v_cell]), gates, c.width, np.inf)
