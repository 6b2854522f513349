"""Simulated Keysight B1500A speaking the FLEX command set (a subset), acting on a SimBench.

Supported: ``*IDN? *RST *OPC? *LRN? 0``, ``UNT?``, ``CN [ch,...]``, ``CL [ch,...]``, ``DZ``,
``FMT 1[,0]``, ``AV``, ``AAD <ch>,<type>``, ``AIT <type>,<mode>[,<N>]``, ``BC``, ``MM <mode>,<ch>``,
``CMM <ch>,<mode>``, ``DV <ch>,<range>,<V>[,<Icomp>]``, ``TI <ch>[,<range>]``,
``TV <ch>[,<range>]``, ``WT <hold>,<delay>``, ``WV <ch>,<mode>,<range>,<start>,<stop>,<steps>[,<Icomp>]``,
``PT <hold>,<width>[,<period>]``, ``PV <ch>,<range>,<base>,<pulse>[,<Icomp>]``, ``XE``, ``ERRX?``.

It enforces the manual, not the driver's assumptions (see ``drivers/instruments/MANUALS.md``):
``PT`` width within the module's pulse range (0.5 ms..2 s for HR/MP/HPSMU), period 5 ms..5 s and
at least width + 2 ms (width + 10 ms above 100 ms; period 0 = automatic), hold 0..655.35 s;
``DV``/``PV`` within the module's voltage and current ranges; ``AIT 0,3,<t>`` with
2 us <= t <= 20 ms (B1500A/B1505A Programming Guide Ed. 11, p. 4-39). A refused command queues
its error code for ``ERRX?`` and is not executed.

Output data: ``FMT 1`` ASCII, a three-character header (status, channel, data type) and a
12-character value ``+ddd.dddE+dd`` (one of the three documented 12-character forms), e.g.
``NAI+000.005E-09``; points separated by ``,``. Each
measurement's data and each query's response is its own CR/LF-terminated line of the output
buffer, in execution order. Status ``N`` normal, ``C`` this channel reached its compliance.

Mode 1 (spot) after ``XE`` measures the channels of ``MM``; mode 2 (staircase sweep) sweeps
the ``WV`` channel and measures it at each step; mode 3 (pulsed spot) fires the ``PV`` pulse
and measures during it. ``TI`` integrates for the ``AIT`` time.
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
#: Module -> (max |V| V, max |I| A, min pulse width s), from the B1500A User's Guide specifications.
MODULE_LIMITS = {"B1517A": (100.0, 0.1, 5e-4), "B1511A": (100.0, 0.1, 5e-4)}
CHANNEL_LETTERS = "ABCDEFGHIJ"
MAX_PULSE_WIDTH = 2.0
MIN_PERIOD, MAX_PERIOD, PERIOD_MARGIN, MAX_HOLD = 5e-3, 5.0, 2e-3, 655.35
#: Widths above 100 ms need period >= width + 10 ms; period 0 (or omitted) means automatic
#: (Keysight E5260/E5270 Programming Guide, Edition 4, p. 4-90, PT; same FLEX command).
LONG_PULSE, LONG_PERIOD_MARGIN = 0.1, 10e-3
MIN_AIT, MAX_AIT = 2e-6, 20e-3
#: Error codes queued for ERRX? (B1500 Programming Guide, "Error Codes").
E_UNDEFINED, E_PARAMETER, E_NOT_ALLOWED, E_CHANNEL = 100, 120, 150, 200


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
        self.errors: deque[tuple[int, str]] = deque()
        self.spgu = None  # a SimSpgu (drivers.sim.instruments.spgu) answers the SPGU commands
        self.reset()

    def reset(self) -> None:
        self.ch = {slot: FlexChannel() for slot in MODULES}
        self.mode: tuple[int, list[int]] = (1, [])
        self.sweep: tuple[int, float, float, int, float] | None = None
        self.pulse_timing = (0.0, 1e-3, 1e-2)
        self.fmt = 1
        self.aperture = self.bench.timing.aperture if self.bench is not None else 1e-3
        if self.spgu is not None:
            self.spgu.reset()

    def _handle_message(self, text: str) -> str | None:
        replies: list[str] = []
        for command in [c.strip() for c in text.split(";") if c.strip()]:
            self.counters.commands += 1
            m = re.fullmatch(r"(\*?[A-Z]+\??)\s*(.*)", command.upper())
            try:
                if m is None:
                    raise SimCommandError(E_UNDEFINED, '"Undefined GPIB command"')
                name, rest = m.group(1), m.group(2)
                if name != "ERRX?" and self.inject_command_error():  # the error report itself works
                    raise SimCommandError(E_NOT_ALLOWED, '"Command parameter not allowed (injected)"')
                args = [a.strip() for a in rest.split(",")] if rest else []
                reply = self._command(name, args)
            except SimCommandError as exc:
                self.errors.append((exc.code, exc.message))
                continue  # a refused command is not executed; ERRX? reports it
            if reply is not None:
                replies.append(reply)
        # Each measurement's data / query response is its own CR/LF-terminated line.
        return "\r\n".join(replies) if replies else None

    def _slot(self, text: str) -> int:
        slot = int(_num(text))
        if slot not in self.ch:
            raise SimCommandError(E_PARAMETER, '"Incorrect numeric parameter; no module in that slot"')
        return slot

    def _limits(self, slot: int) -> tuple[float, float, float]:
        return MODULE_LIMITS[MODULES[slot]]

    def _volts_amps(self, slot: int, volts: str, amps: str | None) -> tuple[float, float | None]:
        vmax, imax, _ = self._limits(slot)
        v = _num(volts)
        i = None if amps is None else _num(amps)
        if abs(v) > vmax or (i is not None and not 0 < abs(i) <= imax):
            raise SimCommandError(E_PARAMETER, '"Incorrect numeric parameter; outside the module range"')
        return v, i

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
        if name == "*LRN?":
            if a != ["0"]:
                raise SimCommandError(E_PARAMETER, '"Incorrect numeric parameter"')
            on = [str(s) for s, c in self.ch.items() if c.enabled]
            return f"CN{','.join(on)}" if on else "CL"
        if name == "UNT?":
            modules = {**MODULES, **({self.spgu.slot: "B1525A"} if self.spgu is not None else {})}
            return ";".join(f"{modules[s]},0" if s in modules else "0,0" for s in range(1, 11))
        if name == "ERRX?":
            code, msg = self.errors.popleft() if self.errors else (0, '"No Error."')
            return f"{code},{msg}"
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
            if not a or a[0] not in ("1", "2", "5") or (len(a) > 1 and a[1] not in ("0", "1")):
                raise SimCommandError(E_PARAMETER, '"Incorrect numeric parameter"')
            self.fmt = int(a[0])
            return None
        if name == "AAD":
            if len(a) != 2 or a[1] not in ("0", "1"):
                raise SimCommandError(E_PARAMETER, '"Incorrect numeric parameter"')
            self._slot(a[0])
            return None
        if name == "AIT":
            if len(a) != 3 or a[0] != "0" or a[1] != "3":
                raise SimCommandError(E_NOT_ALLOWED, '"AIT: only the high-speed ADC time mode (0,3,<t>) is simulated"')
            t = _num(a[2])
            if not MIN_AIT <= t <= MAX_AIT:
                raise SimCommandError(E_PARAMETER, '"Incorrect numeric parameter; AIT time"')
            self.aperture = t
            return None
        if name in ("AV", "BC", "CMM", "TSC"):
            return None
        if name == "MM":
            if len(a) < 2:
                raise SimCommandError(E_PARAMETER, '"Incorrect numeric parameter"')
            mode = int(_num(a[0]))
            if mode not in (1, 2, 3):
                raise SimCommandError(E_PARAMETER, '"Incorrect numeric parameter; simulated modes 1-3"')
            self.mode = (mode, [self._slot(x) for x in a[1:]])
            return None
        if name == "DV":
            if len(a) < 3:
                raise SimCommandError(E_PARAMETER, '"Incorrect numeric parameter"')
            slot = self._slot(a[0])
            c = self.ch[slot]
            if not c.enabled:
                raise SimCommandError(E_CHANNEL, '"Channel not enabled"')
            v, i = self._volts_amps(slot, a[2], a[3] if len(a) > 3 else None)
            c.voltage = v
            if i is not None:
                c.compliance = abs(i)
            return None
        if name == "DI":
            raise SimCommandError(E_NOT_ALLOWED, '"Current forcing is not simulated"')
        if name in ("TI", "TV"):
            slot = self._slot(a[0]) if a else self.bl
            return self._spot(slot, name[1])
        if name == "WT":
            if len(a) < 2 or not (0 <= _num(a[0]) <= 655.35 and 0 <= _num(a[1]) <= 65.535):
                raise SimCommandError(E_PARAMETER, '"Incorrect numeric parameter"')
            return None
        if name == "WV":
            if len(a) < 6:
                raise SimCommandError(E_PARAMETER, '"Incorrect numeric parameter"')
            slot = self._slot(a[0])
            steps = _num(a[5])
            if steps != int(steps) or not 1 <= steps <= 10001:
                raise SimCommandError(E_PARAMETER, '"Incorrect numeric parameter"')
            v0, comp = self._volts_amps(slot, a[3], a[6] if len(a) > 6 else None)
            v1, _ = self._volts_amps(slot, a[4], None)
            self.sweep = (slot, v0, v1, int(steps), self.ch[slot].compliance if comp is None else abs(comp))
            return None
        if name == "PT":
            if len(a) < 2:
                raise SimCommandError(E_PARAMETER, '"Incorrect numeric parameter"')
            hold, width = _num(a[0]), _num(a[1])
            margin = LONG_PERIOD_MARGIN if width > LONG_PULSE else PERIOD_MARGIN
            period = _num(a[2]) if len(a) > 2 else 0.0
            if period == 0:
                period = max(MIN_PERIOD, width + margin)
            min_width = min(lim[2] for lim in MODULE_LIMITS.values())
            if not min_width <= width <= MAX_PULSE_WIDTH:
                raise SimCommandError(E_PARAMETER, '"Incorrect numeric parameter; pulse width"')
            if not (MIN_PERIOD <= period <= MAX_PERIOD and period >= width + margin - 1e-9):
                raise SimCommandError(E_PARAMETER, '"Incorrect numeric parameter; pulse period"')
            if not 0 <= hold <= MAX_HOLD:
                raise SimCommandError(E_PARAMETER, '"Incorrect numeric parameter; hold time"')
            self.pulse_timing = (hold, width, period)
            return None
        if name == "PV":
            if len(a) < 4:
                raise SimCommandError(E_PARAMETER, '"Incorrect numeric parameter"')
            slot = self._slot(a[0])
            base, _ = self._volts_amps(slot, a[2], None)
            peak, comp = self._volts_amps(slot, a[3], a[4] if len(a) > 4 else None)
            if self.pulse_timing[1] < self._limits(slot)[2]:
                raise SimCommandError(E_PARAMETER, '"Incorrect numeric parameter; pulse width below the module minimum"')
            c = self.ch[slot]
            c.pulse_base, c.pulse_peak = base, peak
            if comp is not None:
                c.pulse_compliance = abs(comp)
            return None
        if name == "XE":
            return self._execute()
        raise SimCommandError(E_UNDEFINED, '"Undefined GPIB command"')

    # ------------------------------------------------------------------ measurements
    def _gate(self, n: int) -> np.ndarray | None:
        if self.gate is None:
            return None
        g = self.ch[self.gate]
        return np.full(n, g.voltage if g.enabled else 0.0)

    def _data(self, slot: int, kind: str, values: np.ndarray, tripped: np.ndarray | bool) -> str:
        letter = CHANNEL_LETTERS[slot - 1]
        trips = np.broadcast_to(np.asarray(tripped), values.shape)
        return ",".join(f"{'C' if t else 'N'}{letter}{kind}{flex_value(v)}" for v, t in zip(values, trips))

    def _spot(self, slot: int, kind: str) -> str:
        c = self.ch[slot]
        if not c.enabled:
            raise SimCommandError(E_CHANNEL, '"Channel not enabled"')
        if kind == "V":
            return self._data(slot, "V", np.array([c.voltage]), False)
        if slot != self.bl:
            return self._data(slot, "I", np.array([0.0]), False)
        current, tripped = self.bench.measure_points(np.array([c.voltage]), self._gate(1), self.aperture, c.compliance)
        self.busy_time += self.aperture
        return self._data(slot, "I", current, tripped)

    def _execute(self) -> str:
        mode, slots = self.mode
        if mode == 1:
            return ",".join(self._spot(s, "I") for s in slots)
        if mode == 2:
            if self.sweep is None:
                raise SimCommandError(E_NOT_ALLOWED, '"Sweep source not set"')
            slot, start, stop, steps, comp = self.sweep
            if slot != self.bl or not self.ch[slot].enabled:
                raise SimCommandError(E_CHANNEL, '"Channel not enabled"')
            v = np.linspace(start, stop, steps)
            current, tripped = self.bench.measure_points(v, self._gate(steps), self.aperture, comp)
            self.busy_time += steps * self.aperture
            return self._data(slot, "I", current, tripped)
        slot = slots[0]
        c = self.ch[slot]
        if slot != self.bl or not c.enabled:
            raise SimCommandError(E_CHANNEL, '"Channel not enabled"')
        _, width, period = self.pulse_timing
        current, tripped = self.bench.pulse_points(np.array([c.pulse_peak]), self._gate(1), width, c.pulse_compliance)
        self.busy_time += period
        return self._data(slot, "I", current, tripped)


def flex_value(value: float) -> str:
    """``value`` in the 12-character FMT 1 form ``+ddd.dddE+dd`` (engineering exponent)."""
    v = float(value)
    if v == 0.0:
        return "+000.000E+00"
    exp = 3 * int(np.floor(np.log10(abs(v)) / 3))
    mant = round(abs(v) / 10.0**exp, 3)
    if mant >= 1000.0:
        exp, mant = exp + 3, round(mant / 1000.0, 3)
    return f"{'-' if v < 0 else '+'}{mant:07.3f}E{'-' if exp < 0 else '+'}{abs(exp):02d}"
