"""Simulated Keysight 33522B function / arbitrary waveform generator (the pulse subset), SCPI.

Supported (short or long forms, optional ``SOURn:`` prefix, channel suffix 1/2):
``*IDN? *RST *CLS *OPC? *TRG``, ``SYST:ERR?``, ``FUNC PULS|SIN|SQU|DC``, ``PULS:WIDT``,
``PULS:PER``, ``PULS:TRAN:LEAD``, ``PULS:TRAN:TRA``, ``VOLT:HIGH``, ``VOLT:LOW``,
``BURS:MODE TRIG|GAT``, ``BURS:NCYC``, ``BURS:STAT``, ``TRIG:SOUR IMM|EXT|TIM|BUS``,
``OUTP ON|OFF``, ``OUTP?``, ``OUTP:LOAD INF|<ohm>``, ``OUTP:POL NORM|INV``.

It enforces the 33500 Series Operating and Service Guide on its own ("Pulse Waveforms", p. 69:
pulse width 16 ns to 1,000,000 s and below period - 16 ns, edge time 8.4 ns to 1 us; levels
+-5 V into 50 ohm, doubled into a high-impedance load): a value out of range is refused with
-222 "Data out of range", VOLT:HIGH <= VOLT:LOW or a width that no longer fits the period
with -221 "Settings conflict", a wrong type with -104, ``*TRG`` when the trigger source is
not BUS with -211 "Trigger ignored"; the setting keeps its old value. (The real generator
may instead clip some values to the nearest legal one and report the same error; either way
the host sees an error.)

Physics: channel ``wired_channel`` drives the source line of the routed cell (through the
matrix's ground input), so a pulse reaches the cell as ``V_bitline - V_pulse``. In normal
polarity the output rests at VOLT:LOW and pulses to VOLT:HIGH; inverted (``OUTP:POL INV``)
the waveform flips about its offset, so it rests at VOLT:HIGH and pulses to VOLT:LOW.
A triggered burst of ``NCYC`` pulses goes into the :class:`~.bench_state.SimBench` only when
the function is PULS, burst is on in TRIG mode, the trigger source is BUS and the output is on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from drivers.sim.instruments.base import Faults, SimCommandError
from drivers.sim.instruments.b2900 import _on_off
from drivers.sim.instruments.bench_state import SimBench
from drivers.sim.instruments.scpi import ScpiInstrument, parse_number

MAX_FREQUENCY = 30e6
MIN_WIDTH = 16e-9
MIN_EDGE, MAX_EDGE = 8.4e-9, 1e-6
MAX_LEVEL_50OHM, MAX_VPP_50OHM = 5.0, 10.0
_RANGE = (-222, '"Data out of range"')
_CONFLICT = (-221, '"Settings conflict"')


@dataclass
class GeneratorChannel:
    """Settings of one output channel (values after ``*RST``)."""

    function: str = "SIN"
    width: float = 100e-6
    period: float = 1e-3
    lead: float = 10e-9
    trail: float = 10e-9
    high: float = 0.05
    low: float = -0.05
    burst_mode: str = "TRIG"
    ncycles: int = 1
    burst: bool = False
    trigger: str = "IMM"
    output: bool = False
    load: float = 50.0
    polarity: str = "NORM"

    def scale(self) -> float:
        return 2.0 if self.load == float("inf") else 1.0


def _choice(text: str, choices: dict[str, str]) -> str:
    t = text.strip().upper()
    for long, short in choices.items():
        if t in (long, short):
            return short
    raise SimCommandError(-224, '"Illegal parameter value"')


class SimWaveformGenerator(ScpiInstrument):
    """Simulated 33522B acting on a :class:`SimBench`.

    Args:
        bench: the shared simulated bench.
        wired_channel: output channel on the array's source line.
        line_state: returns (bit-line voltage V, gate voltage V or None) from the simulated SMU.
        faults: fault injection.
    """

    idn = "Agilent Technologies,33522B,SIM00004,5.00-1.19-2.00-58-00"

    def __init__(self, bench: SimBench, wired_channel: int, line_state: Callable[[], tuple[float, float | None]], faults: Faults | None = None) -> None:
        super().__init__(faults)
        self.bench = bench
        self.wired = wired_channel
        self.line_state = line_state
        self.pulses_fired = 0
        self.reset()

    def reset(self) -> None:
        self.ch = {1: GeneratorChannel(), 2: GeneratorChannel()}

    def _common(self, nodes: tuple[str, ...], query: bool, args: str) -> str | None:
        if nodes[0] == "*TRG" and not query:
            self._trigger()
            return None
        return super()._common(nodes, query, args)

    def _chan(self, channel: int | None) -> GeneratorChannel:
        n = 1 if channel is None else channel
        if n not in self.ch:
            raise SimCommandError(-114, '"Header suffix out of range"')
        return self.ch[n]

    # ------------------------------------------------------------------ dispatch
    def _command(self, nodes: tuple[str, ...], channel: int | None, query: bool, args: str) -> str | None:
        err = self._system_error(nodes) if query else None
        if err is not None:
            return err
        if nodes and nodes[0] == "SOUR":
            nodes = nodes[1:]
        c = self._chan(channel)
        if nodes == ("OUTP",):
            if query:
                return "1" if c.output else "0"
            c.output = _on_off(args)
            return None
        if query:
            raise SimCommandError(-113, '"Undefined header"')
        handler = {
            ("FUNC",): self._function, ("PULS", "WIDT"): self._width, ("PULS", "PER"): self._period,
            ("PULS", "TRAN", "LEAD"): self._lead, ("PULS", "TRAN", "TRA"): self._trail,
            ("VOLT", "HIGH"): self._high, ("VOLT", "LOW"): self._low,
            ("BURS", "MODE"): self._burst_mode, ("BURS", "NCYC"): self._ncycles, ("BURS", "STAT"): self._burst_state,
            ("TRIG", "SOUR"): self._trigger_source, ("OUTP", "LOAD"): self._load, ("OUTP", "POL"): self._polarity,
        }.get(nodes)
        if handler is None:
            raise SimCommandError(-113, '"Undefined header"')
        handler(c, args)
        return None

    # ------------------------------------------------------------------ settings
    def _function(self, c: GeneratorChannel, args: str) -> None:
        c.function = _choice(args, {"PULSE": "PULS", "SINUSOID": "SIN", "SQUARE": "SQU", "DC": "DC"})

    def _width(self, c: GeneratorChannel, args: str) -> None:
        w = parse_number(args)
        if not MIN_WIDTH <= w <= 1e6:
            raise SimCommandError(*_RANGE)
        if w > c.period - MIN_WIDTH:
            raise SimCommandError(*_CONFLICT)
        c.width = w

    def _period(self, c: GeneratorChannel, args: str) -> None:
        p = parse_number(args)
        if not 1.0 / MAX_FREQUENCY <= p <= 1e6:
            raise SimCommandError(*_RANGE)
        if c.width > p - MIN_WIDTH:
            raise SimCommandError(*_CONFLICT)
        c.period = p

    def _edge(self, args: str) -> float:
        e = parse_number(args)
        if not MIN_EDGE <= e <= MAX_EDGE:
            raise SimCommandError(*_RANGE)
        return e

    def _lead(self, c: GeneratorChannel, args: str) -> None:
        c.lead = self._edge(args)

    def _trail(self, c: GeneratorChannel, args: str) -> None:
        c.trail = self._edge(args)

    def _level(self, c: GeneratorChannel, args: str, high: float, low: float) -> None:
        v_max = MAX_LEVEL_50OHM * c.scale()
        if max(abs(high), abs(low)) > v_max:
            raise SimCommandError(*_RANGE)
        if high <= low or high - low > MAX_VPP_50OHM * c.scale():
            raise SimCommandError(*_CONFLICT)
        c.high, c.low = high, low

    def _high(self, c: GeneratorChannel, args: str) -> None:
        self._level(c, args, parse_number(args), c.low)

    def _low(self, c: GeneratorChannel, args: str) -> None:
        self._level(c, args, c.high, parse_number(args))

    def _burst_mode(self, c: GeneratorChannel, args: str) -> None:
        c.burst_mode = _choice(args, {"TRIGGERED": "TRIG", "GATED": "GAT"})

    def _ncycles(self, c: GeneratorChannel, args: str) -> None:
        n = parse_number(args)
        if n != int(n) or not 1 <= n <= 1e8:
            raise SimCommandError(*_RANGE)
        c.ncycles = int(n)

    def _burst_state(self, c: GeneratorChannel, args: str) -> None:
        c.burst = _on_off(args)

    def _trigger_source(self, c: GeneratorChannel, args: str) -> None:
        c.trigger = _choice(args, {"IMMEDIATE": "IMM", "EXTERNAL": "EXT", "TIMER": "TIM", "BUS": "BUS"})

    def _load(self, c: GeneratorChannel, args: str) -> None:
        t = args.strip().upper()
        if t in ("INF", "INFINITY"):
            c.load = float("inf")
            return
        z = parse_number(args)
        if not 1.0 <= z <= 1e4:
            raise SimCommandError(*_RANGE)
        c.load = z

    def _polarity(self, c: GeneratorChannel, args: str) -> None:
        c.polarity = _choice(args, {"NORMAL": "NORM", "INVERTED": "INV"})

    # ------------------------------------------------------------------ output
    def _trigger(self) -> None:
        armed = [(n, c) for n, c in self.ch.items() if c.trigger == "BUS"]
        if not armed:
            raise SimCommandError(-211, '"Trigger ignored"')
        for n, c in armed:
            if not (c.output and c.burst and c.burst_mode == "TRIG" and c.function == "PULS"):
                continue
            level = c.high if c.polarity == "NORM" else c.low
            for _ in range(c.ncycles):
                self.pulses_fired += 1
                if n == self.wired:
                    v_bitline, v_gate = self.line_state()
                    gates = None if v_gate is None else np.array([v_gate])
                    self.bench.pulse_points(np.array([v_bitline - level]), gates, c.width, np.inf)
            self.busy_time += c.ncycles * c.period
