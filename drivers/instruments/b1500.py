"""Keysight B1500A semiconductor device analyser, FLEX command set (SMU modules).

What it does in the lab's words: find its modules (``UNT?``), connect/disconnect channels
(``CN``/``CL``), force a DC voltage or current under a compliance (``DV``/``DI``), take a spot
current or voltage (``TI``/``TV``) with a set integration time (``AAD``/``AIT``), run a staircase
voltage sweep (``WV`` + ``XE``), fire a pulsed spot measurement (``PT``/``PV`` + ``XE``), and read
its error buffer (``ERRX?``). Every command, its arguments and their ranges are in the command
table of ``drivers/instruments/MANUALS.md`` with the manual section they come from.

Output data (``FMT 1,0``, "Data Output Format" of the B1500 Programming Guide): ASCII items of a
3-character header (status, channel, data type) and a 12-character value ``sn.nnnnnEsnn``,
``snn.nnnnEsnn`` or ``snnn.nnnEsnn`` (E5260/E5270 Programming Guide Ed. 4, p. 1-27), e.g.
``NAI+000.005E-09`` (5 pA) or ``NAV+001.500E+00`` (1.5 V), separated by ``,``; the data of one
measurement end in CR/LF. Status ``N`` normal, ``C`` this channel reached its compliance, ``T``
another channel reached its compliance, ``V`` over range, ``X`` oscillation, ``F`` force
saturation, ``G``/``S`` search results. Channel ``A``..``J`` = slot 1..10. Type ``I``/``V``.
A status other than ``N`` on a read, and ``T``/``V``/``X``/``F`` anywhere, stop the run with the
outputs off.

Round trips. Every programming message ends in ``ERRX?``, so its reply carries the error check
at no extra round trip: a standalone pulse or read costs one round trip (its data line and the
``ERRX?`` line are read together), and :meth:`B1500.pulse_and_read` fires a pulse and verifies
the same cell in one compound message (one round trip: pulse data, read data, error line). With
a router that confirms each route, a program-and-verify iteration costs 2 round trips per cell.

Model-aware limits: the SMU module in each wired slot (from ``UNT?``) sets the voltage and
current range and the shortest pulse (:data:`SMU_MODELS`), checked together with the bench's
:class:`~drivers.limits.SafetyLimits` before any byte is sent. Not verified on a real B1500.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np

from drivers.errors import InstrumentError, ProtocolError
from drivers.instruments.base import Instrument
from drivers.limits import SafetyLimits, check_count, check_in, check_number
from drivers.timing import BenchTiming
from drivers.transport import Transport, format_number

log = logging.getLogger(__name__)
f = format_number


@dataclass(frozen=True)
class SmuModule:
    """Limits of one B1500 SMU module (B1500A User's Guide, module specifications).

    Attributes:
        kind: HPSMU / MPSMU / HRSMU / MCSMU.
        max_voltage: largest |output voltage|, V.
        max_current: largest |output current| (compliance) in DC, A.
        min_pulse_width: shortest ``PT`` width of the SMU pulse, s.
    """

    kind: str
    max_voltage: float
    max_current: float
    min_pulse_width: float


#: SMU module models (``UNT?`` names) the driver accepts as source/measure channels.
SMU_MODELS = {
    "B1510A": SmuModule("HPSMU", 200.0, 1.0, 5e-4),
    "B1511A": SmuModule("MPSMU", 100.0, 0.1, 5e-4),
    "B1511B": SmuModule("MPSMU", 100.0, 0.1, 5e-4),
    "B1517A": SmuModule("HRSMU", 100.0, 0.1, 5e-4),
    "B1514A": SmuModule("MCSMU", 30.0, 0.1, 1e-5),
}
#: ``PT`` pulse timing (FLEX ``PT``; stated in Keysight E5260/E5270 Programming Guide, Edition 4,
#: p. 4-90): hold 0..655.35 s, width 0.5 ms..2 s, period 5 ms..5 s with period >= width + 2 ms
#: for width <= 100 ms and >= width + 10 ms for width > 100 ms.
MAX_PULSE_WIDTH = 2.0
MIN_PERIOD, MAX_PERIOD, PERIOD_MARGIN = 5e-3, 5.0, 2e-3
#: Period margin for widths above ``LONG_PULSE`` (s).
LONG_PULSE, LONG_PERIOD_MARGIN = 0.1, 10e-3
MAX_HOLD = 655.35
#: ``AIT 0,3,<time>``: high-speed ADC integration time range, s.
MIN_AIT_TIME, MAX_AIT_TIME = 2e-6, 20e-3
#: ``WV`` steps and ``WT`` hold/delay ranges.
MAX_SWEEP_STEPS = 10001
MAX_WT_HOLD, MAX_WT_DELAY = 655.35, 65.535

#: The 12-character FMT 1 value: ``sn.nnnnnEsnn``, ``snn.nnnnEsnn`` or ``snnn.nnnEsnn`` (Keysight
#: E5260/E5270 Programming Guide, Edition 4, p. 1-27, Data Elements "D"; the FLEX ASCII format).
_VALUE = r"[+-](?:\d\.\d{5}|\d{2}\.\d{4}|\d{3}\.\d{3})E[+-]\d{2}"
_DATUM = re.compile(rf"([NCTVXFGS])([A-J])([IV])({_VALUE})")
_BAD_STATUS = {
    "T": "another channel reached its compliance",
    "V": "measurement over range",
    "X": "oscillation / output not settled",
    "F": "force saturation",
}
_ERR = re.compile(r'([+-]?\d+)(?:,"([^"]*)")?')


@dataclass(frozen=True)
class FlexDatum:
    """One value of FLEX output data: status, channel slot, type (``"I"``/``"V"``), value (A or V)."""

    status: str
    slot: int
    kind: str
    value: float


def parse_flex_data(text: str) -> list[FlexDatum]:
    """Parse ``FMT 1`` ASCII output data (``NAI+000.005E-09,...``); strict, or ProtocolError."""
    out = []
    for item in text.strip().split(","):
        m = _DATUM.fullmatch(item)
        if m is None:
            raise ProtocolError(f"B1500: malformed data item {item[:24]!r} (expected e.g. 'NAI+000.005E-09')")
        out.append(FlexDatum(m.group(1), "ABCDEFGHIJ".index(m.group(2)) + 1, m.group(3), float(m.group(4))))
    return out


def format_flex_value(value: float) -> str:
    """A value in the FMT 1 data form ``+ddd.dddE+dd`` (used by the simulated B1500)."""
    if value == 0:
        return "+000.000E+00"
    exp3 = int(np.floor(np.log10(abs(value)) / 3) * 3)
    mant = value / 10.0**exp3
    if round(abs(mant), 3) >= 1000:
        exp3 += 3
        mant /= 1000
    return f"{'+' if mant >= 0 else '-'}{abs(mant):07.3f}E{'+' if exp3 >= 0 else '-'}{abs(exp3):02d}"


def pulse_period(width: float) -> float:
    """Shortest legal ``PT`` period for ``width`` (s): max(5 ms, width + 2 ms), or width + 10 ms
    for widths above 100 ms (the period the instrument itself picks for ``period = 0``)."""
    return max(MIN_PERIOD, width + (LONG_PERIOD_MARGIN if width > LONG_PULSE else PERIOD_MARGIN))


class B1500(Instrument):
    """Driver of a B1500A with SMU modules.

    Args:
        transport: the mainframe's transport (FLEX data end in CR/LF).
        limits: the bench's safety limits, checked before any byte is sent.
        bitline_channel: slot of the SMU on the bit line.
        gate_channel: slot of the SMU on the gate, or ``None``.
        reset: send ``*RST`` and set up in the constructor.

    Constructor traffic::

        > *IDN?                      < <identity>
        > *RST
        > UNT?                       < B1517A,0;B1517A,0;...;0,0
        > FMT 1,0;AAD 1,0;CN 1,2;ERRX?   < 0,"No Error."
    """

    label = "B1500"

    def __init__(self, transport: Transport, limits: SafetyLimits, bitline_channel: int = 1, gate_channel: int | None = 2, reset: bool = True) -> None:
        bl = check_count("B1500", "bitline_channel", bitline_channel, 1, 10)
        gate = None if gate_channel is None else check_count("B1500", "gate_channel", gate_channel, 1, 10)
        if gate == bl:
            raise ValueError(f"slots must be distinct, got bit line {bl}, gate {gate}")
        super().__init__(transport)
        self.limits = limits
        self.bl = bl
        self.gate = gate
        self.identity = transport.query("*IDN?", idempotent=True).strip()
        if "B1500" not in self.identity:
            log.warning("instrument %r does not identify as a B1500", self.identity)
        if reset:
            transport.write("*RST")
        self.modules = self.query_modules()
        for slot in self.channels:
            if self.modules.get(slot) not in SMU_MODELS:
                raise InstrumentError(f"B1500: slot {slot} holds {self.modules.get(slot, 'nothing')!r}, not an SMU")
        if reset:
            self._checked(f"FMT 1,0;AAD {self.bl},0;CN {','.join(str(c) for c in self.channels)}")

    @property
    def channels(self) -> tuple[int, ...]:
        return tuple(sorted(c for c in (self.bl, self.gate) if c is not None))

    def module(self, slot: int) -> SmuModule:
        """Limits of the SMU module in ``slot``."""
        return SMU_MODELS[self.modules[slot]]

    # ------------------------------------------------------------------ discovery / errors
    def query_modules(self) -> dict[int, str]:
        """Installed modules by slot (``UNT?``), e.g. ``{1: "B1517A", 3: "B1511A"}``."""

        def parse(text: str) -> dict[int, str]:
            entries = text.strip().split(";")
            if len(entries) != 10 or not all(re.fullmatch(r"[A-Z0-9/]+,\d+", e) for e in entries):
                raise ProtocolError(f"B1500: malformed UNT? reply {text[:60]!r}")
            return {i + 1: e.split(",")[0] for i, e in enumerate(entries) if e.split(",")[0] != "0"}

        return self.transport.query_parsed("UNT?", parse, idempotent=True)

    @staticmethod
    def _parse_err(reply: str) -> tuple[int, str]:
        m = _ERR.fullmatch(reply.strip())
        if m is None:
            raise ProtocolError(f"B1500: unparsable ERRX? reply {reply!r}")
        return int(m.group(1)), m.group(2) or ""

    def _raise_errors(self, first: tuple[int, str]) -> None:
        """``first`` is a non-zero ``ERRX?`` entry: drain the rest, outputs off, raise."""
        errors = [f"{first[0]} {first[1]}".strip()]
        for _ in range(31):
            code, text = self._parse_err(self.transport.query("ERRX?"))
            if code == 0:
                break
            errors.append(f"{code} {text}".strip())
        self.switch_off_after_failure()
        raise InstrumentError("B1500 error buffer: " + "; ".join(errors))

    def check_errors(self) -> None:
        """Read ``ERRX?``; when it is not 0, drain it, switch the outputs off and raise."""
        entry = self._parse_err(self.transport.query("ERRX?"))
        if entry[0] != 0:
            self._raise_errors(entry)

    def _checked(self, message: str) -> None:
        """Send a configuration sequence with ``ERRX?`` at its end (one round trip)."""
        try:
            entry = self._parse_err(self.transport.query(f"{message};ERRX?"))
        except BaseException:
            self.switch_off_after_failure()
            raise
        if entry[0] != 0:
            self._raise_errors(entry)

    # ------------------------------------------------------------------ checks
    def _slot(self, command: str, slot: object) -> int:
        s = check_count(command, "slot", slot, 1, 10)
        if s not in self.channels:
            raise ValueError(f"{command}: slot {s} is not wired on this bench (wired: {self.channels})")
        return s

    def _dc(self, command: str, slot: int, volts: object, compliance: object) -> tuple[float, float]:
        v = check_number(command, "voltage", volts, "V")
        i = check_number(command, "compliance", compliance, "A")
        m = self.module(slot)
        check_in(command, "voltage", v, -m.max_voltage, m.max_voltage, "V")
        check_in(command, "compliance", i, 0.0, m.max_current, "A")
        if slot == self.gate:
            self.limits.check_gate(v)
        else:
            self.limits.check_read(v)
        self.limits.check_compliance(i)
        return v, i

    def _dv(self, slot: int, volts: float, compliance: float) -> str:
        v, i = self._dc("DV", slot, volts, compliance)
        return f"DV {slot},0,{f(v)},{f(i)}"

    def dv_command(self, slot: int, volts: float, compliance: float) -> str:
        """The validated ``DV`` message for ``slot`` (nothing sent): for a pulse source on the
        same mainframe to send with its own command (one round trip)."""
        return self._dv(self._slot("DV", slot), volts, compliance)

    def _gate_dv(self, gate: object) -> str:
        if self.gate is None:
            raise ValueError("no gate SMU is wired on this bench")
        return self._dv(self.gate, gate, self.limits.max_compliance)  # type: ignore[arg-type]

    def _ait(self, aperture: object) -> str:
        a = check_number("AIT", "aperture", aperture, "s")
        self.limits.check_range("aperture", a, BenchTiming.MIN_APERTURE, BenchTiming.MAX_APERTURE, "s")
        check_in("AIT", "aperture", a, MIN_AIT_TIME, MAX_AIT_TIME, "s")
        return f"AIT 0,3,{f(a)}"

    def _pulse_msg(self, peak: object, width: object, compliance: object, base: object = 0.0, hold: object = 0.0, period: object = None) -> str:
        p = check_number("PV", "peak", peak, "V")
        w = check_number("PT", "width", width, "s")
        c = check_number("PV", "compliance", compliance, "A")
        b = check_number("PV", "base", base, "V")
        h = check_number("PT", "hold", hold, "s")
        self.limits.check_pulse(p, w)
        self.limits.check_read(b)
        self.limits.check_compliance(c)
        m = self.module(self.bl)
        check_in("PT", "width", w, m.min_pulse_width, MAX_PULSE_WIDTH, "s")
        check_in("PT", "hold", h, 0.0, MAX_HOLD, "s")
        per = pulse_period(w) if period is None else check_number("PT", "period", period, "s")
        check_in("PT", "period", per, pulse_period(w) - 1e-9, MAX_PERIOD, "s")  # 1 ns: float rounding
        check_in("PV", "peak", p, -m.max_voltage, m.max_voltage, "V")
        check_in("PV", "compliance", c, 0.0, m.max_current, "A")
        return f"PT {f(h)},{f(w)},{f(per)};PV {self.bl},0,{f(b)},{f(p)},{f(c)};MM 3,{self.bl};XE"

    # ------------------------------------------------------------------ sourcing
    def enable(self, *slots: int) -> None:
        """Connect channels (``CN``); at least one slot (``CN`` alone would connect every channel)."""
        if not slots:
            raise ValueError("enable() needs at least one slot: 'CN' alone connects every module")
        checked = [self._slot("CN", s) for s in slots]
        self._checked(f"CN {','.join(str(s) for s in checked)}")

    def disable(self, *slots: int) -> None:
        """Disconnect channels (``CL``; no slots: all): output off, relay open."""
        checked = [check_count("CL", "slot", s, 1, 10) for s in slots]
        self._checked("CL" + (f" {','.join(str(s) for s in checked)}" if checked else ""))

    def force_voltage(self, slot: int, volts: float, compliance: float) -> None:
        """Force a DC voltage (V) under a current compliance (A): ``DV slot,0,V,Icomp``."""
        s = self._slot("DV", slot)
        self._checked(self._dv(s, volts, compliance))

    def force_current(self, slot: int, amps: float, v_compliance: float) -> None:
        """Force a DC current (A) under a voltage compliance (V): ``DI slot,0,I,Vcomp``."""
        s = self._slot("DI", slot)
        i = check_number("DI", "current", amps, "A")
        vc = check_number("DI", "v_compliance", v_compliance, "V")
        m = self.module(s)
        check_in("DI", "current", i, -m.max_current, m.max_current, "A")
        check_in("DI", "v_compliance", vc, -m.max_voltage, m.max_voltage, "V")
        self.limits.check_compliance(abs(i))
        self.limits.check_abs("v_compliance", vc, self.limits.max_v_read if s == self.bl else self.limits.max_v_gate, "V")
        self._checked(f"DI {s},0,{f(i)},{f(vc)}")

    # ------------------------------------------------------------------ measurements
    def _data(self, line: str, n: int, slot: int, kind: str, *, allow_trip: bool) -> np.ndarray:
        data = parse_flex_data(line)
        if len(data) != n or any(d.slot != slot or d.kind != kind for d in data):
            raise ProtocolError(f"B1500: expected {n} {kind} value(s) of slot {slot}, got {line[:60]!r}")
        bad = [d for d in data if d.status in _BAD_STATUS]
        if bad:
            self.switch_off_after_failure()
            raise InstrumentError(f"B1500 slot {slot}: {_BAD_STATUS[bad[0].status]} (status {bad[0].status})")
        if not allow_trip and any(d.status == "C" for d in data):
            from drivers.instruments.b2900 import ComplianceTrip

            self.switch_off_after_failure()
            raise ComplianceTrip(f"B1500 slot {slot} reached its compliance (status C); readings are clamped; outputs switched off")
        if any(d.status not in "NC" for d in data):
            raise ProtocolError(f"B1500 slot {slot}: unexpected data status in {line[:40]!r}")
        return np.array([d.value for d in data])

    def _exchange(self, message: str, parts: list[tuple[int, int, str, bool]], *, idempotent: bool = False) -> list[np.ndarray]:
        """Send ``message;ERRX?`` and read one data line per ``(n, slot, kind, allow_trip)`` of
        ``parts`` and the ``ERRX?`` line: one round trip. A non-zero error stops with outputs off."""

        def receive(first: str) -> tuple[list[str], tuple[int, str]]:
            lines, line = [], first
            for _ in parts:
                if _ERR.fullmatch(line.strip()):
                    break  # a refused command: no data, the error line came early
                lines.append(line)
                line = self.transport.read()
            return lines, self._parse_err(line)

        try:
            lines, err = self.transport.query_parsed(f"{message};ERRX?", receive, idempotent=idempotent)
        except BaseException:
            self.switch_off_after_failure()
            raise
        if err[0] != 0:
            self._raise_errors(err)
        if len(lines) != len(parts):
            self.switch_off_after_failure()
            raise ProtocolError(f"B1500: {len(parts)} data line(s) expected before ERRX?, got {len(lines)}")
        return [self._data(line, n, slot, kind, allow_trip=trip) for line, (n, slot, kind, trip) in zip(lines, parts)]

    def spot_current(self, slot: int) -> float:
        """High-speed spot current measurement (``TI slot``), A."""
        s = self._slot("TI", slot)
        return float(self._exchange(f"TI {s}", [(1, s, "I", False)], idempotent=True)[0][0])

    def spot_voltage(self, slot: int) -> float:
        """High-speed spot voltage measurement (``TV slot``), V."""
        s = self._slot("TV", slot)
        return float(self._exchange(f"TV {s}", [(1, s, "V", False)], idempotent=True)[0][0])

    def staircase_sweep(self, start: float, stop: float, steps: int, compliance: float, hold: float = 0.0, delay: float = 0.0) -> np.ndarray:
        """Linear staircase voltage sweep on the bit line (``WV`` + ``XE``); currents, A, shape (steps,).

        Sweeps stay within the read range: they measure, they do not program.
        """
        n = check_count("WV", "steps", steps, 1, MAX_SWEEP_STEPS)
        v0, _ = self._dc("WV", self.bl, start, compliance)
        v1, i = self._dc("WV", self.bl, stop, compliance)
        h = check_number("WT", "hold", hold, "s")
        d = check_number("WT", "delay", delay, "s")
        check_in("WT", "hold", h, 0.0, MAX_WT_HOLD, "s")
        check_in("WT", "delay", d, 0.0, MAX_WT_DELAY, "s")
        msg = f"MM 2,{self.bl};WT {f(h)},{f(d)};WV {self.bl},1,0,{f(v0)},{f(v1)},{n},{f(i)};XE"
        return self._exchange(msg, [(n, self.bl, "I", False)])[0]

    def pulsed_spot(self, peak: float, width: float, compliance: float, base: float = 0.0, hold: float = 0.0, period: float | None = None) -> float:
        """One pulse ``base`` -> ``peak`` (V) of ``width`` (s) on the bit line, measuring the
        current during it (``PT``/``PV``/``MM 3`` + ``XE``); returns A. Not retried (it programs).

        ``period`` defaults to the shortest legal one, max(5 ms, width + 2 ms). Reaching the
        compliance during the pulse (status ``C``) is allowed: the gate sets the cell's current.
        """
        msg = self._pulse_msg(peak, width, compliance, base, hold, period)
        return float(self._exchange(msg, [(1, self.bl, "I", True)])[0][0])

    # ------------------------------------------------------------------ BenchArray roles
    def pulse_one(self, peak: float, gate: float | None, width: float, compliance: float) -> None:
        """One pulse on the routed cell with the gate SMU at ``gate`` (V); one round trip."""
        msg = self._pulse_msg(peak, width, compliance)
        if gate is not None:
            msg = f"{self._gate_dv(gate)};{msg}"
        self._exchange(msg, [(1, self.bl, "I", True)])

    def check_pulse(self, peak: float, gate: float | None, width: float, compliance: float) -> None:
        """Validate a :meth:`pulse_one` without sending anything (SafetyLimitError as it would)."""
        self._pulse_msg(peak, width, compliance)
        if gate is not None:
            self._gate_dv(gate)

    def _read_msg(self, v_read: float, gate: float | None, aperture: float, compliance: float) -> str:
        parts = [] if gate is None else [self._gate_dv(gate)]
        parts += [self._ait(aperture), self._dv(self.bl, v_read, compliance), f"TI {self.bl}"]
        return ";".join(parts)

    def read_one(self, v_read: float, gate: float | None, aperture: float, compliance: float) -> float:
        """Current of the routed cell at ``v_read`` (V), A: ``[DV gate;]AIT;DV;TI;ERRX?``, one round trip."""
        msg = self._read_msg(v_read, gate, aperture, compliance)
        return float(self._exchange(msg, [(1, self.bl, "I", False)])[0][0])

    def pulse_and_read(
        self, peak: float, gate: float | None, width: float, compliance: float,
        v_read: float, gate_read: float | None, aperture: float, read_compliance: float,
    ) -> float:
        """Pulse the routed cell, then read it, in one compound message (one round trip).

        Returns:
            the read current at ``v_read`` after the pulse, A.
        """
        pulse = self._pulse_msg(peak, width, compliance)
        if gate is not None:
            pulse = f"{self._gate_dv(gate)};{pulse}"
        read = self._read_msg(v_read, gate_read, aperture, read_compliance)
        parts = [(1, self.bl, "I", True), (1, self.bl, "I", False)]
        return float(self._exchange(f"{pulse};{read}", parts)[1][0])

    # ------------------------------------------------------------------ safety
    def _safe_idle(self) -> None:
        """Zero and disconnect every channel (``DZ;CL``)."""
        self.transport.write("DZ;CL")

    def _outputs_off(self) -> bool:
        """``*LRN? 0`` (output switch status) answers ``CL`` when every channel is disconnected."""
        reply = self.transport.query("*LRN? 0", idempotent=True).strip()
        if not re.fullmatch(r"CL|CN[\d,]*", reply):
            raise ProtocolError(f"B1500: unexpected *LRN? 0 reply {reply[:40]!r}")
        return reply == "CL"
