"""Keysight B2900-series source/measure unit (B2901A/B2902A/B2911A/B2912A), SCPI.

What it does in the lab's words: hold a DC voltage, measure a current under a compliance,
fire one pulse (base, peak, width), fire a *list* of pulses (one per cell, each with its own
amplitude, the gate channel stepping in step), and measure a list of cells in one triggered
acquisition fetched as one binary array with a status word per point. Every command, its
arguments and their ranges are in ``drivers/instruments/MANUALS.md`` with their manual source.

Trigger set-up of a list (B2900 Programming Guide, "Trigger system" / "Synchronizing channels";
SCPI Command Reference, :TRIGger subsystem): every channel in the list gets the same trigger
source (``:TRIG:SOUR TIM``), timer interval (``:TRIG:TIM``), count (``:TRIG:COUN``), transient
and acquisition delays (``:TRIG:TRAN:DEL``, ``:TRIG:ACQ:DEL``), and both start with one
``:INIT (@1,2)``: then they run point for point together. The bit-line channel emits a trigger
output pulse at each transient trigger event (``:TRIG:TRAN:TOUT ON``) on the digital I/O line
wired to the router (``:TRIG:TRAN:TOUT:SIGN EXT1`` by default): the router steps one cell per
point, at the start of the point, and the transient/acquisition delay lets it settle.

How a pulse+verify iteration over a batch of N cells costs one SMU round trip:
    1. :meth:`B2900.pulse_list` sends one message (pulsed list sweep, gate list in step,
       trigger set-up, ``:INIT``). No reply is awaited.
    2. :meth:`B2900.measure_list` sends one message (DC read sweep of N points) and one compound
       query ``:FETC:ARR? (@1);:SYST:ERR:COUN?``: N (current, status) pairs as one binary block
       (``:FORM REAL,64``, ``:FORM:ELEM:SENS CURR,STAT``) and the error count. Compliance is
       judged per point from each point's status word, not from ``:SENS:CURR:PROT:TRIP?`` (which
       reports the state at the moment it is asked). A non-empty error queue (its entries read
       with ``:SYST:ERR:ALL?``) or a point at compliance stops the run with the outputs off.

Model-aware limits (:data:`MODELS`, picked from ``*IDN?``): channels, voltage and current
ranges, pulse width (at least 50 us), aperture, list length; checked with the bench's
:class:`~drivers.limits.SafetyLimits` before any byte is sent. Not verified on hardware.
"""

from __future__ import annotations

import logging
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from drivers.errors import InstrumentError, ProtocolError, SafetyLimitError
from drivers.instruments.base import Instrument
from drivers.limits import SafetyLimits, check_count, check_in, check_number, check_numbers
from drivers.timing import BenchTiming
from drivers.transport import Transport, format_number

log = logging.getLogger(__name__)

f = format_number


@dataclass(frozen=True)
class B2900Model:
    """Limits of one B2900 model (B2900 User's Guide, specifications; SCPI Command Reference).

    Attributes:
        channels: number of SMU channels.
        max_voltage: largest |output voltage|, V.
        current_limits: ``((|V| up to, max |I|), ...)`` in DC: the largest compliance at a
            given output voltage, A.
        min_pulse_width, max_pulse_width: ``:SOUR:PULS:WIDT`` range, s.
        max_pulse_delay: ``:SOUR:PULS:DEL`` maximum, s.
        min_aperture, max_aperture: ``:SENS:CURR:APER`` range, s.
        max_list: ``:SOUR:LIST:VOLT`` points.
        max_count: ``:TRIG:COUN`` maximum.
        min_timer, max_timer: ``:TRIG:TIM`` range, s.
        max_delay: ``:TRIG:TRAN:DEL`` / ``:TRIG:ACQ:DEL`` maximum, s.
    """

    channels: int
    max_voltage: float = 210.0
    current_limits: tuple[tuple[float, float], ...] = ((6.0, 3.03), (21.0, 1.515), (210.0, 0.105))
    min_pulse_width: float = 50e-6
    max_pulse_width: float = 100_000.0
    max_pulse_delay: float = 99_999.9
    min_aperture: float = 8e-6
    max_aperture: float = 2.0
    max_list: int = 2500
    max_count: int = 100_000
    min_timer: float = 1e-5
    max_timer: float = 100_000.0
    max_delay: float = 100_000.0

    def max_current(self, volts: float) -> float:
        """Largest compliance the model allows at ``|volts|``, A."""
        for v_top, i_max in self.current_limits:
            if abs(volts) <= v_top:
                return i_max
        return 0.0


#: Models by the ``*IDN?`` model field. Trigger interval 20 us (B2901A/B2902A) or 10 us
#: (B2911A/B2912A) to 100000 s: B2900A Series Data Sheet, p. 17, "Arm/trigger interval".
MODELS = {
    "B2901A": B2900Model(1, min_timer=20e-6),
    "B2902A": B2900Model(2, min_timer=20e-6),
    "B2911A": B2900Model(1),
    "B2912A": B2900Model(2),
}
#: Largest list the driver sends in one sweep (points).
MAX_LIST_POINTS = 2500
#: Status word of each point (``:FORM:ELEM:SENS STAT``), Agilent B2900 SCPI Command Reference,
#: Edition 2, p. 1-14, Table 1-2 "Bit Definitions of Status Data": bits 1 and 2 hold the
#: compliance condition (0 none; 1, 2, 3: in compliance, i.e. decimal 2, 4 or 6); bit 3 (8) is
#: the over-voltage, bit 4 (16) the over-current and bit 5 (32) the high-temperature condition.
STATUS_COMPLIANCE_MASK = 0b110
#: A status word of a point at compliance (compliance field = 1).
STATUS_CURRENT_COMPLIANCE = 1 << 1
#: Over-voltage, over-current and high-temperature conditions (Table 1-2 bits 3, 4, 5).
STATUS_FAULT_MASK = (1 << 3) | (1 << 4) | (1 << 5)
#: Time added to each list point after the pulse / the integration, s (output settling).
POINT_TAIL = 100e-6
#: Digital I/O lines a trigger output can use.
TRIGGER_LINES = tuple(f"EXT{k}" for k in range(1, 15)) + ("LAN", "INT1", "INT2")

_TAIL = re.compile(r";([+-]?\d+)")
_ERR_ITEM = re.compile(r'([+-]?\d+),("[^"]*")')


class ComplianceTrip(InstrumentError):
    """The SMU reached its current compliance while measuring (the reading is clamped)."""


class B2900(Instrument):
    """Driver of a one- or two-channel B2900 SMU.

    Args:
        transport: the instrument's transport.
        limits: the bench's safety limits, checked before any byte is sent.
        bitline_channel: channel wired to the bit line (pulses and reads).
        gate_channel: channel wired to the word-line gate, or ``None`` when a router's DAC
            drives the gate.
        reset: send ``*RST``/``*CLS`` and the data-format setup in the constructor.
        settle: router settling time allowed at the start of each list point, s.
        trigger_line: digital I/O line of the trigger output wired to the router.

    Constructor traffic (``reset=True``)::

        > *IDN?                      < <identity>
        > *RST;*CLS
        > :FORM:DATA REAL,64;:FORM:BORD SWAP;:FORM:ELEM:SENS CURR,STAT;:SOUR1:FUNC:MODE VOLT;
          :SENS1:FUNC "CURR";...;:SYST:ERR:ALL?            < +0,"No error"
    """

    label = "B2900"

    def __init__(
        self,
        transport: Transport,
        limits: SafetyLimits,
        bitline_channel: int = 1,
        gate_channel: int | None = 2,
        reset: bool = True,
        settle: float = 0.5e-3,
        trigger_line: str = "EXT1",
    ) -> None:
        bl = check_count("B2900", "bitline_channel", bitline_channel, 1, 2)
        gate = None if gate_channel is None else check_count("B2900", "gate_channel", gate_channel, 1, 2)
        if gate == bl:
            raise ValueError(f"channels must be distinct, got bit line {bl}, gate {gate}")
        self.settle = check_number("B2900", "settle", settle, "s")
        if not 0 <= self.settle <= 1.0:
            raise ValueError(f"settle must be 0..1 s, got {settle!r}")
        if trigger_line not in TRIGGER_LINES:
            raise ValueError(f"trigger_line must be one of {list(TRIGGER_LINES)}, got {trigger_line!r}")
        super().__init__(transport)
        self.limits = limits
        self.bl = bl
        self.gate = gate
        self.trigger_line = trigger_line
        self.identity = transport.query("*IDN?", idempotent=True).strip()
        fields = [x.strip() for x in self.identity.split(",")]
        model = fields[1] if len(fields) > 1 else ""
        if model not in MODELS:
            raise InstrumentError(f"B2900: unknown model {model!r} in *IDN? reply {self.identity!r}; known: {sorted(MODELS)}")
        self.model = MODELS[model]
        if max(self.channels) > self.model.channels:
            raise InstrumentError(f"B2900: {model} has {self.model.channels} channel(s); channel {max(self.channels)} requested")
        if reset:
            transport.write("*RST;*CLS")
            setup = ";".join(f':SOUR{c}:FUNC:MODE VOLT;:SENS{c}:FUNC "CURR"' for c in self.channels)
            self._checked(f":FORM:DATA REAL,64;:FORM:BORD SWAP;:FORM:ELEM:SENS CURR,STAT;{setup}")

    @property
    def channels(self) -> tuple[int, ...]:
        return tuple(sorted(c for c in (self.bl, self.gate) if c is not None))

    # ------------------------------------------------------------------ checks
    def _check_channel(self, command: str, channel: object) -> int:
        c = check_count(command, "channel", channel, 1, 2)
        if c not in self.channels:
            raise ValueError(f"{command}: channel {c} is not wired on this bench (wired: {self.channels})")
        return c

    def _level(self, command: str, channel: int, volts: object) -> np.ndarray:
        """DC/list levels: the gate channel within the gate range, the bit line within the read range."""
        v = check_numbers(command, "voltage", volts, "V")
        check_in(command, "voltage", v, -self.model.max_voltage, self.model.max_voltage, "V")
        if channel == self.gate:
            self.limits.check_gate(v)
        else:
            self.limits.check_abs("v_read", v, self.limits.max_v_read, "V")
        return v

    def _compliance(self, command: str, amps: object, volts: np.ndarray) -> float:
        i = check_number(command, "compliance", amps, "A")
        self.limits.check_compliance(i)
        worst = float(np.max(np.abs(volts))) if np.size(volts) else 0.0
        check_in(command, "compliance", i, 0.0, self.model.max_current(worst), "A")
        return i

    def _aperture(self, aperture: object) -> float:
        a = check_number(":SENS:CURR:APER", "aperture", aperture, "s")
        self.limits.check_range("aperture", a, BenchTiming.MIN_APERTURE, BenchTiming.MAX_APERTURE, "s")
        check_in(":SENS:CURR:APER", "aperture", a, self.model.min_aperture, self.model.max_aperture, "s")
        return a

    def _points(self, command: str, n: object) -> int:
        return check_count(command, "points", n, 1, min(self.model.max_list, MAX_LIST_POINTS))

    # ------------------------------------------------------------------ errors
    def _parse_errors(self, reply: str) -> list[tuple[int, str]]:
        items = _ERR_ITEM.findall(reply)
        if not items or "".join(f"{c},{m}," for c, m in items).rstrip(",") != reply.strip():
            raise ProtocolError(f"B2900: unparsable error queue reply {reply!r}")
        return [(int(c), m) for c, m in items if int(c) != 0]

    def _raise_if(self, errors: list[tuple[int, str]]) -> None:
        if errors:
            self.switch_off_after_failure()
            raise InstrumentError("B2900 error queue: " + "; ".join(f"{c} {m}" for c, m in errors) + "; outputs switched off")

    def check_errors(self) -> None:
        """Read the whole error queue (``:SYST:ERR:ALL?``); when not empty: outputs off, raise."""
        self._raise_if(self._parse_errors(self.transport.query(":SYST:ERR:ALL?")))

    def _checked(self, message: str) -> None:
        """A configuration sequence with ``:SYST:ERR:ALL?`` at its end: one round trip."""
        try:
            reply = self.transport.query(f"{message};:SYST:ERR:ALL?")
        except BaseException:
            self.switch_off_after_failure()
            raise
        self._raise_if(self._parse_errors(reply))

    def error_count(self) -> int:
        """Entries in the error queue (``:SYST:ERR:COUN?``; reading it changes nothing)."""
        return self.transport.query_parsed(":SYST:ERR:COUN?", _parse_int, idempotent=True)

    # ------------------------------------------------------------------ DC
    def set_compliance(self, channel: int, amps: float) -> None:
        """Current compliance of ``channel``, A."""
        c = self._check_channel(":SENS:CURR:PROT", channel)
        i = self._compliance(":SENS:CURR:PROT", amps, np.zeros(1))
        self._checked(f":SENS{c}:CURR:PROT {f(i)}")

    def source_voltage(self, channel: int, volts: float) -> None:
        """Hold a DC voltage on ``channel`` (V) and switch its output on."""
        c = self._check_channel(":SOUR:VOLT", channel)
        v = float(self._level(":SOUR:VOLT", c, volts)[0]) if np.ndim(volts) == 0 else None
        if v is None:
            raise SafetyLimitError(f":SOUR:VOLT: one voltage expected, got {volts!r}")
        self._checked(f":SOUR{c}:FUNC:SHAP DC;:SOUR{c}:VOLT:MODE FIX;:SOUR{c}:VOLT {f(v)};:OUTP{c} ON")

    def hold_voltages(self, levels: dict[int, float], confirm: bool = False) -> None:
        """Hold DC voltages (V) on several channels in one message, outputs on.

        Without ``confirm`` it is a write (no round trip: the caller reads the error queue once
        per batch, see :meth:`check_errors`). With ``confirm`` the message ends in
        ``*OPC?;:SYST:ERR:COUN?`` (one round trip): when the call returns the instrument has
        executed it, so another instrument (a pulse generator on its own link) may act on the
        cell at these levels.
        """
        parts = []
        for channel, volts in levels.items():
            c = self._check_channel(":SOUR:VOLT", channel)
            v = float(self._level(":SOUR:VOLT", c, [volts])[0])
            parts.append(f":SOUR{c}:FUNC:SHAP DC;:SOUR{c}:VOLT:MODE FIX;:SOUR{c}:VOLT {f(v)};:OUTP{c} ON")
        if confirm:
            self.wait_idle(";".join(parts))
        else:
            self._guarded(";".join(parts))

    def output(self, channel: int, on: bool) -> None:
        """Switch the output of ``channel`` on or off."""
        c = self._check_channel(":OUTP", channel)
        if not isinstance(on, (bool, np.bool_)):
            raise SafetyLimitError(f":OUTP: on must be True or False, got {on!r}")
        self._checked(f":OUTP{c} {'ON' if on else 'OFF'}")

    def spot_current(self, v_read: float, aperture: float, compliance: float) -> float:
        """Apply ``v_read`` (V) on the bit line and measure one current, A (a one-point list).

        Raises:
            ComplianceTrip: the reading hit the compliance (outputs switched off first).
        """
        return float(self.measure_list(1, v_read, aperture, compliance)[0])

    # ------------------------------------------------------------------ pulses
    def pulse(self, peak: float, width: float, compliance: float, base: float = 0.0) -> None:
        """Fire one voltage pulse on the bit line: ``base`` -> ``peak`` (V) for ``width`` (s)."""
        self.pulse_list([peak], width, compliance, base=base)

    def _trigger(self, chans: list[int], n: int, period: float, tran_delay: float, acq_delay: float) -> str:
        """Same trigger source, timer, count and delays on every channel; trigger output on the
        bit line only (one edge per point for the router)."""
        m = self.model
        check_in(":TRIG:TIM", "period", period, m.min_timer, m.max_timer, "s")
        check_in(":TRIG:TRAN:DEL", "delay", tran_delay, 0.0, m.max_delay, "s")
        check_in(":TRIG:ACQ:DEL", "delay", acq_delay, 0.0, m.max_delay, "s")
        check_count(":TRIG:COUN", "count", n, 1, m.max_count)
        parts = []
        for ch in sorted(chans):
            out = f":TRIG{ch}:TRAN:TOUT ON;:TRIG{ch}:TRAN:TOUT:SIGN {self.trigger_line}" if ch == self.bl else f":TRIG{ch}:TRAN:TOUT OFF"
            parts.append(
                f":TRIG{ch}:SOUR TIM;:TRIG{ch}:TIM {f(period)};:TRIG{ch}:COUN {n};"
                f":TRIG{ch}:TRAN:DEL {f(tran_delay)};:TRIG{ch}:ACQ:DEL {f(acq_delay)};{out}"
            )
        return ";".join(parts)

    def pulse_list(
        self,
        peaks: Sequence[float] | np.ndarray,
        width: float,
        compliance: float,
        gates: Sequence[float] | np.ndarray | None = None,
        base: float = 0.0,
    ) -> None:
        """Fire one pulse per list point on the bit line (one message, no reply awaited).

        Args:
            peaks: pulse peak per point, V.
            width: pulse width, s (the model's range: at least 50 us).
            compliance: bit-line current compliance, A.
            gates: gate voltage per point on the gate channel, V (``None``: gate not stepped).
            base: pulse base level, V.

        The message ends in ``*WAI``: the instrument finishes the sweep before it takes the next
        command. Errors from the sweep surface in the error count of the next fetch or
        :meth:`wait_idle`, which stop the run with the outputs off.
        """
        self._guarded(self._pulse_list_msg(peaks, width, compliance, gates, base))

    def _pulse_list_msg(self, peaks: object, width: object, compliance: object, gates: object, base: object) -> str:
        """The message of :meth:`pulse_list`, every argument checked (nothing is sent)."""
        cmd = ":SOUR:LIST:VOLT"
        p = check_numbers(cmd, "peaks", peaks, "V")
        n = self._points(cmd, p.size)
        w = check_number(":SOUR:PULS:WIDT", "width", width, "s")
        self.limits.check_pulse(p, w)
        check_in(":SOUR:PULS:WIDT", "width", w, self.model.min_pulse_width, self.model.max_pulse_width, "s")
        check_in(cmd, "peaks", p, -self.model.max_voltage, self.model.max_voltage, "V")
        b = float(self._level(":SOUR:VOLT", self.bl, base)[0]) if np.ndim(base) == 0 else None
        if b is None:
            raise SafetyLimitError(f":SOUR:VOLT: one base voltage expected, got {base!r}")
        i = self._compliance(":SENS:CURR:PROT", compliance, p)
        c = self.bl
        parts = [
            f":SOUR{c}:FUNC:SHAP PULS;:SOUR{c}:VOLT {f(b)};:SOUR{c}:PULS:DEL {f(0.0)};:SOUR{c}:PULS:WIDT {f(w)}",
            f":SENS{c}:CURR:PROT {f(i)};:SOUR{c}:VOLT:MODE LIST;:SOUR{c}:LIST:VOLT {_join(p)}",
        ]
        chans = [c]
        if gates is not None:
            parts.append(self._gate_list(gates, n))
            chans.append(self.gate)  # type: ignore[arg-type]
        parts.append(self._trigger(chans, n, self.settle + w + POINT_TAIL, self.settle, self.settle))
        parts.append(self._run(chans))
        return ";".join(parts)

    def check_pulse(self, peak: float, gate: float | None, width: float, compliance: float) -> None:
        """Validate a :meth:`pulse_one` without sending anything (SafetyLimitError as it would)."""
        self._pulse_list_msg([peak], width, compliance, None if gate is None else [gate], 0.0)

    def pulse_and_read(
        self, peak: float, gate: float | None, width: float, compliance: float,
        v_read: float, gate_read: float | None, aperture: float, read_compliance: float,
    ) -> float:
        """Pulse the routed cell, then read it: the write-only pulse message (ending in ``*WAI``)
        and the read with its fetch, one round trip. Returns the read current, A."""
        self.pulse_one(peak, gate, width, compliance)
        return self.read_one(v_read, gate_read, aperture, read_compliance)

    def _gate_list(self, gates: Sequence[float] | np.ndarray, n: int) -> str:
        if self.gate is None:
            raise ValueError("no gate channel is wired to this SMU")
        g_v = self._level(":SOUR:LIST:VOLT", self.gate, gates)
        if g_v.size != n:
            raise ValueError(f"need one gate voltage per point ({n}), got {g_v.size}")
        g = self.gate
        return f":SOUR{g}:FUNC:SHAP DC;:SOUR{g}:VOLT:MODE LIST;:SOUR{g}:LIST:VOLT {_join(g_v)}"

    def _run(self, chans: list[int]) -> str:
        outs = ";".join(f":OUTP{ch} ON" for ch in sorted(chans))
        return f"{outs};:INIT (@{','.join(str(ch) for ch in sorted(chans))});*WAI"

    def pulse_one(self, peak: float, gate: float | None, width: float, compliance: float) -> None:
        """One pulse on the routed cell, with the gate channel at ``gate`` (V) when given."""
        self.pulse_list([peak], width, compliance, None if gate is None else [gate])

    def read_one(self, v_read: float, gate: float | None, aperture: float, compliance: float) -> float:
        """Current of the routed cell at ``v_read`` (V), A."""
        return float(self.measure_list(1, v_read, aperture, compliance, gate)[0])

    def wait_idle(self, before: str = "") -> None:
        """Block until every pending operation (e.g. a write-only pulse sweep, or the commands
        ``before``, sent in the same message) has finished and check the error queue
        (``*OPC?;:SYST:ERR:COUN?``, one round trip). Call it before re-routing after
        :meth:`pulse_list`."""

        def parse(text: str) -> int:
            m = re.fullmatch(r"1;([+-]?\d+)", text.strip())
            if m is None:
                raise ProtocolError(f"B2900: bad *OPC?;:SYST:ERR:COUN? reply {text[:40]!r}")
            return int(m.group(1))

        try:
            errors = self.transport.query_parsed(f"{before};*OPC?;:SYST:ERR:COUN?" if before else "*OPC?;:SYST:ERR:COUN?",
                                                 parse, idempotent=not before)
        except BaseException:
            self.switch_off_after_failure()
            raise
        self._raise_counted(errors)

    # ------------------------------------------------------------------ list measurement
    def measure_list(
        self,
        n: int,
        v_read: float,
        aperture: float,
        compliance: float,
        gate: float | None = None,
        *,
        allow_trip: bool = False,
    ) -> np.ndarray:
        """Measure ``n`` points at ``v_read`` (V), the router stepping one cell per point.

        Args:
            n: number of points.
            v_read: bit-line read voltage, V.
            aperture: integration time per point, s.
            compliance: current compliance, A.
            gate: gate voltage held during the reads, V (``None``: the gate is not on this SMU).
            allow_trip: return clamped readings instead of raising :class:`ComplianceTrip`.

        Returns:
            Current per point, A, shape (n,).
        """
        n = self._points(":TRIG:COUN", n)
        v = float(self._level(":SOUR:VOLT:TRIG", self.bl, v_read)[0]) if np.ndim(v_read) == 0 else None
        if v is None:
            raise SafetyLimitError(f":SOUR:VOLT:TRIG: one read voltage expected, got {v_read!r}")
        a = self._aperture(aperture)
        i = self._compliance(":SENS:CURR:PROT", compliance, np.array([v]))
        if not isinstance(allow_trip, (bool, np.bool_)):
            raise SafetyLimitError(f"allow_trip must be True or False, got {allow_trip!r}")
        c = self.bl
        parts = [
            f":SOUR{c}:FUNC:SHAP DC;:SOUR{c}:VOLT:MODE FIX;:SOUR{c}:VOLT:TRIG {f(v)};"
            f":SENS{c}:CURR:APER {f(a)};:SENS{c}:CURR:PROT {f(i)}"
        ]
        chans = [c]
        if gate is not None:
            if self.gate is None:
                raise ValueError("no gate channel is wired to this SMU")
            g_v = self._level(":SOUR:VOLT:TRIG", self.gate, gate)
            if g_v.size != 1:
                raise SafetyLimitError(f":SOUR:VOLT:TRIG: one gate voltage expected, got {gate!r}")
            g = self.gate
            parts.append(f":SOUR{g}:FUNC:SHAP DC;:SOUR{g}:VOLT:MODE FIX;:SOUR{g}:VOLT:TRIG {f(g_v[0])}")
            chans.append(g)
        parts.append(self._trigger(chans, n, self.settle + a + POINT_TAIL, 0.0, self.settle))
        parts.append(self._run(chans))
        self._guarded(";".join(parts))
        values, status = self._fetch(n)
        words = status.astype(np.int64)
        fault = (words & STATUS_FAULT_MASK) != 0
        if np.any(fault):
            self.switch_off_after_failure()
            k = int(np.argmax(fault))
            raise InstrumentError(
                f"B2900: over-voltage/over-current/high-temperature condition in the status word "
                f"(point {k}, status {int(words[k])}); outputs switched off"
            )
        hit = (words & STATUS_COMPLIANCE_MASK) != 0
        if np.any(hit) and not allow_trip:
            self.switch_off_after_failure()
            raise ComplianceTrip(
                f"B2900: {int(hit.sum())} of {n} point(s) reached the current compliance "
                f"(first: point {int(np.argmax(hit))}); readings are clamped; outputs switched off"
            )
        return values

    def fetch_currents(self, n: int) -> np.ndarray:
        """Fetch the last acquisition's ``n`` currents of the bit-line channel, A (idempotent)."""
        return self._fetch(self._points(":FETC:ARR?", n))[0]

    def _fetch(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``(currents A, status words)`` of the last ``n`` points; error count checked."""
        c = self.bl

        def parse(payload: bytes, tail: str) -> tuple[np.ndarray, np.ndarray, int]:
            if len(payload) != 16 * n:
                raise ProtocolError(f"B2900: expected {n} (current, status) float64 pairs ({16 * n} bytes), got {len(payload)} bytes")
            m = _TAIL.fullmatch(tail)
            if m is None:
                raise ProtocolError(f"B2900: malformed reply after the data block: {tail[:40]!r}")
            pairs = np.array(struct.unpack(f"<{2 * n}d", payload)).reshape(n, 2)
            if not np.all(np.isfinite(pairs)) or np.any(pairs[:, 1] != np.rint(pairs[:, 1])) or np.any(pairs[:, 1] < 0):
                raise ProtocolError("B2900: non-finite current or malformed status word in the data block")
            return pairs[:, 0].copy(), pairs[:, 1].copy(), int(m.group(1))

        try:
            values, status, errors = self.transport.query_block_parsed(f":FETC:ARR? (@{c});:SYST:ERR:COUN?", parse, idempotent=True)
        except BaseException:
            self.switch_off_after_failure()
            raise
        self._raise_counted(errors)
        return values, status

    def _raise_counted(self, errors: int) -> None:
        """Stop (outputs off) on a non-zero ``:SYST:ERR:COUN?``: the queue's messages, or the count
        itself when the queue reads empty."""
        if errors:
            self.check_errors()
            self._raise_if([(0, f'"{errors} error(s) counted but the queue read empty"')])

    # ------------------------------------------------------------------ safety
    def _emergency_off(self) -> None:
        self.transport.write(";".join(f":OUTP{c} OFF" for c in range(1, self.model.channels + 1)))

    def _safe_idle(self) -> None:
        """Every channel to 0 V and output off."""
        self.transport.write(";".join(f":SOUR{c}:VOLT {f(0.0)};:OUTP{c} OFF" for c in range(1, self.model.channels + 1)))

    def _outputs_off(self) -> bool:
        """``:OUTP1?;:OUTP2?`` answers ``0;0`` when every output is off."""
        chans = range(1, self.model.channels + 1)
        reply = self.transport.query(";".join(f":OUTP{c}?" for c in chans), idempotent=True).strip()
        states = reply.split(";")
        if len(states) != len(chans) or any(s not in ("0", "1") for s in states):
            raise ProtocolError(f"B2900: unexpected :OUTP? reply {reply[:40]!r}")
        return all(s == "0" for s in states)


def _join(values: np.ndarray) -> str:
    return ",".join(f(v) for v in values)


def _parse_int(text: str) -> int:
    t = text.strip()
    if not re.fullmatch(r"[+-]?\d+", t):
        raise ProtocolError(f"expected an integer, got {text[:40]!r}")
    return int(t)
