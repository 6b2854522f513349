"""Simulated Keysight B1500A speaking the FLEX command set (a subset), acting on a SimBench.

Supported: ``*IDN? *RST *OPC?``, ``UNT?``, ``CN [ch,...]``, ``CL [ch,...]``, ``DZ``,
``FMT 1[,0]``, ``AV``, ``BC``, ``MM <mode>,<ch>``, ``CMM <ch>,<mode>``,
``DV <ch>,<range>,<V>[,<Icomp>]``, ``DI <ch>,<range>,<I>[,<Vcomp>]``, ``TI <ch>[,<range>]``,
``TV <ch>[,<range>]``, ``WT <hold>,<delay>``, ``WV <ch>,<mode>,<range>,<start>,<stop>,<steps>[,<Icomp>]``,
``PT <hold>,<width>[,<period>]``, ``PV <ch>,<range>,<base>,<pulse>[,<Icomp>]``, ``XE``, ``ERRX?``.

Output data: ``FMT 1`` ASCII, 12-digit values with a three-character header (status,
channel, data type), e.g. ``NAI+1.23456E-06``; points separated by ``,``; messages end in
CR/LF. Status ``N`` normal, ``C`` this channel reached its compliance.

Mode 1 (spot) after ``XE`` measures the channels of ``MM``; mode 2 (staircase sweep) sweeps
the ``WV`` channel and measures it at each step; mode 3 (pulsed spot) fires the ``PV`` pulse
and measures during it.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass

import numpy as np

from drivers.sim.instruments.base import Faults, SimCommandError, SimInstrument
from drivers.sim.instruments.bench_state import SimBench

#: Slot -> module model of the simulated mainframe.
MODULES = {1: "B1517A", 2: "B1517A", 3: "B1511A", 4: "B1511A"}
CHANNEL_LETTERS = "ABCDEFGHIJ"
MIN_PULSE_WIDTH, MAX_PULSE_WIDTH = 5e-4, 2.0


@dataclass
class FlexChannel:
    enabled: bool = False
    voltage: float = 0.0
    compliance: float = 1e-4
    pulse_base: float = 0.0
    pulse_peak: float = 0.0
    pulse_compliance: float = 1e-4


_NUM = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def _num(text: str) -> float:
    if not _NUM.match(text.strip()):
        raise SimCommandError(120, '"Incorrect numeric parameter"')
    return float(text)


class SimB1500(SimInstrument):
    """Simulated B1500A mainframe with SMUs in slots 1-4.

    Args:
        bench: the shared simulated bench.
        bitline_channel: slot wired to the bit line.
        gate_channel: slot wired to the gate, or ``None``.
        faults: fault injection.
    """

    termination = b"\r\n"
    idn = "Agilent Technologies,B1500A,SIM00003,A.06.01.2019.0101"

    def __init__(self, bench: SimBench, bitline_channel: int = 1, gate_channel: int | None = 2, faults: Faults | None = None) -> None:
        super().__init__(faults)
        self.bench = bench
        self.bl = bitline_channel
        self.gate = gate_channel
        self.errors: deque[int] = deque()
        self.spgu = None  # a SimSpgu (drivers.sim.instruments.spgu) answers the SPGU commands
        self.reset()

    def reset(self) -> None:
        self.ch = {slot: FlexChannel() for slot in MODULES}
        self.mode: tuple[int, list[int]] = (1, [])
        self.sweep: tuple[int, float, float, int, float] | None = None
        self.pulse_timing = (0.0, 1e-3, 1e-2)
        self.fmt = 1
        if self.spgu is not None:
            self.spgu.reset()

    def _handle_message(self, text: str) -> str | None:
        replies: list[str] = []
        for command in [c.strip() for c in text.split(";") if c.strip()]:
            self.counters.commands += 1
            m = re.fullmatch(r"(\*?[A-Z]+\??)\s*(.*)", command.upper())
            try:
                if m is None:
                    raise SimCommandError(100, '"Undefined GPIB command"')
                if self.inject_command_error():
                    raise SimCommandError(150, '"Command parameter not allowed (injected)"')
                name, rest = m.group(1), m.group(2)
                args = [a.strip() for a in rest.split(",")] if rest else []
                reply = self._command(name, args)
            except SimCommandError as exc:
                self.errors.append(exc.code)
                if command.rstrip().endswith("?") or (m and m.group(1) in ("XE", "TI", "TV")):
                    break
                continue
            if reply is not None:
                replies.append(reply)
        return ";".join(replies) if replies else None

    def _slot(self, text: str) -> int:
        slot = int(_num(text))
        if slot not in self.ch:
            raise SimCommandError(120, '"Incorrect numeric parameter; no module in that slot"')
        return slot

    def _command(self, name: str, a: list[str]) -> str | None:
        if self.spgu is not None and self.spgu.handles(name, a):
            return self.spgu.command(name, a)
        if name == "*IDN?":
            return self.idn
        if name == "*RST":
            self.reset()
            return None
        if name == "*OPC?":
            return "1"
        if name == "UNT?":
            modules = {**MODULES, **({self.spgu.slot: "B1525A"} if self.spgu is not None else {})}
            return ";".join(f"{modules[s]},0" if s in modules else "0,0" for s in range(1, 11))
        if name == "ERRX?":
            code = self.errors.popleft() if self.errors else 0
            return f'{code},"{"No Error." if code == 0 else "Error"}"'
        if name in ("CN", "CL"):
            slots = [self._slot(x) for x in a] if a else list(self.ch)
            if not a and name == "CL" and self.spgu is not None:
                self.spgu.command("CL", [str(n) for n in self.spgu.ch])
            for s in slots:
                self.ch[s].enabled = name == "CN"
                if name == "CL":
                    self.ch[s].voltage = 0.0
            return None
        if name == "DZ":
            for c in self.ch.values():
                c.voltage = 0.0
            return None
        if name == "FMT":
            if not a or a[0] not in ("1", "2", "5"):
                raise SimCommandError(120, '"Incorrect numeric parameter"')
            self.fmt = int(a[0])
            return None
        if name in ("AV", "BC", "CMM", "AIT", "AAD", "TSC"):
            return None
        if name == "MM":
            if len(a) < 2:
                raise SimCommandError(120, '"Incorrect numeric parameter"')
            mode = int(_num(a[0]))
            if mode not in (1, 2, 3):
                raise SimCommandError(120, '"Incorrect numeric parameter; simulated modes 1-3"')
            self.mode = (mode, [self._slot(x) for x in a[1:]])
            return None
        if name == "DV":
            if len(a) < 3:
                raise SimCommandError(120, '"Incorrect numeric parameter"')
            c = self.ch[self._slot(a[0])]
            if not c.enabled:
                raise SimCommandError(200, '"Channel not enabled"')
            c.voltage = _num(a[2])
            if len(a) > 3:
                c.compliance = abs(_num(a[3]))
            return None
        if name == "DI":
            raise SimCommandError(150, '"Current forcing is not simulated"')
        if name in ("TI", "TV"):
            slot = self._slot(a[0]) if a else self.bl
            return self._spot(slot, name[1])
        if name == "WT":
            return None
        if name == "WV":
            if len(a) < 6:
                raise SimCommandError(120, '"Incorrect numeric parameter"')
            slot = self._slot(a[0])
            steps = int(_num(a[5]))
            if not 1 <= steps <= 10001:
                raise SimCommandError(120, '"Incorrect numeric parameter"')
            comp = abs(_num(a[6])) if len(a) > 6 else self.ch[slot].compliance
            self.sweep = (slot, _num(a[3]), _num(a[4]), steps, comp)
            return None
        if name == "PT":
            if len(a) < 2:
                raise SimCommandError(120, '"Incorrect numeric parameter"')
            width = _num(a[1])
            if not MIN_PULSE_WIDTH <= width <= MAX_PULSE_WIDTH:
                raise SimCommandError(120, '"Incorrect numeric parameter; pulse width"')
            self.pulse_timing = (_num(a[0]), width, _num(a[2]) if len(a) > 2 else 2 * width)
            return None
        if name == "PV":
            if len(a) < 4:
                raise SimCommandError(120, '"Incorrect numeric parameter"')
            c = self.ch[self._slot(a[0])]
            c.pulse_base, c.pulse_peak = _num(a[2]), _num(a[3])
            if len(a) > 4:
                c.pulse_compliance = abs(_num(a[4]))
            return None
        if name == "XE":
            return self._execute()
        raise SimCommandError(100, '"Undefined GPIB command"')

    # ------------------------------------------------------------------ measurements
    def _gate(self, n: int) -> np.ndarray | None:
        if self.gate is None:
            return None
        g = self.ch[self.gate]
        return np.full(n, g.voltage if g.enabled else 0.0)

    def _data(self, slot: int, kind: str, values: np.ndarray, tripped: np.ndarray | bool) -> str:
        letter = CHANNEL_LETTERS[slot - 1]
        trips = np.broadcast_to(np.asarray(tripped), values.shape)
        return ",".join(f"{'C' if t else 'N'}{letter}{kind}{v:+.5E}" for v, t in zip(values, trips))

    def _spot(self, slot: int, kind: str) -> str:
        c = self.ch[slot]
        if not c.enabled:
            raise SimCommandError(200, '"Channel not enabled"')
        if kind == "V":
            return self._data(slot, "V", np.array([c.voltage]), False)
        if slot != self.bl:
            return self._data(slot, "I", np.array([0.0]), False)
        current, tripped = self.bench.measure_points(np.array([c.voltage]), self._gate(1), self.bench.timing.aperture, c.compliance)
        self.busy_time += self.bench.timing.aperture
        return self._data(slot, "I", current, tripped)

    def _execute(self) -> str:
        mode, slots = self.mode
        if mode == 1:
            return ",".join(self._spot(s, "I") for s in slots)
        if mode == 2:
            if self.sweep is None:
                raise SimCommandError(150, '"Sweep source not set"')
            slot, start, stop, steps, comp = self.sweep
            if slot != self.bl or not self.ch[slot].enabled:
                raise SimCommandError(200, '"Channel not enabled"')
            v = np.linspace(start, stop, steps)
            current, tripped = self.bench.measure_points(v, self._gate(steps), self.bench.timing.aperture, comp)
            self.busy_time += steps * self.bench.timing.aperture
            return self._data(slot, "I", current, tripped)
        slot = slots[0]
        c = self.ch[slot]
        if slot != self.bl or not c.enabled:
            raise SimCommandError(200, '"Channel not enabled"')
        _, width, period = self.pulse_timing
        current, tripped = self.bench.pulse_points(np.array([c.pulse_peak]), self._gate(1), width, c.pulse_compliance)
        self.busy_time += period
        return self._data(slot, "I", current, tripped)
