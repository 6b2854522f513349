"""Keysight B1500A semiconductor device analyser, FLEX command set (SMU modules).

What it does in the lab's words: find its modules (``UNT?``), connect/disconnect channels
(``CN``/``CL``), force a DC voltage or current under a compliance (``DV``/``DI``), take a spot
current or voltage (``TI``/``TV``), run a staircase voltage sweep (``WV`` + ``XE``), fire a
pulsed spot measurement (``PT``/``PV`` + ``XE``), and read its error buffer (``ERRX?``).

Data come back in the ASCII format with header (``FMT 1``): each value is
``<status><channel><type><12-digit value>``, e.g. ``NAI+1.23456E-06`` (status N normal,
C compliance reached on this channel, T on another channel, V overflow, X oscillation,
F force saturation; channel A..J = slot 1..10; type I current, V voltage), separated by
``,`` and ended by CR/LF.

A pulse+verify iteration costs 4 round trips *per cell* on the B1500: the pulsed spot
measurement (its data must be read) and the spot read ``TI``, each followed by ``ERRX?`` so
that a refused ``DV``/``PV`` cannot pass silently (plus the router's own). Its SMU
pulses are at least 500 us wide (the fast pulses of a 1T1R SET need its SPGU/WGFMU modules,
which this driver does not cover). Not verified against a real B1500.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np

from drivers.errors import InstrumentError, ProtocolError
from drivers.instruments.base import Instrument
from drivers.limits import SafetyLimits
from drivers.timing import BenchTiming
from drivers.transport import Transport, format_number

log = logging.getLogger(__name__)
f = format_number

#: SMU module models (UNT? names) the driver accepts as source/measure channels.
SMU_MODELS = {"B1510A": "HPSMU", "B1511A": "MPSMU", "B1511B": "MPSMU", "B1514A": "MCSMU", "B1517A": "HRSMU"}
#: Pulse width range of the SMU pulsed spot measurement, s.
MIN_PULSE_WIDTH, MAX_PULSE_WIDTH = 5e-4, 2.0
_DATUM = re.compile(r"([NCTVXFGSWE])([A-Ja-jZV])([IV])([+-]\d\.\d{5}E[+-]\d{2})")
_BAD_STATUS = {"V": "measurement over range", "X": "oscillation / output not settled", "F": "force saturation"}


@dataclass(frozen=True)
class FlexDatum:
    """One value of FLEX output data: status, channel slot, type (``"I"``/``"V"``), value (A or V)."""

    status: str
    slot: int
    kind: str
    value: float


def parse_flex_data(text: str) -> list[FlexDatum]:
    """Parse ``FMT 1`` ASCII output data (``NAI+1.23456E-06,...``); strict, or ProtocolError."""
    items = text.strip().split(",")
    out = []
    for item in items:
        m = _DATUM.fullmatch(item)
        if m is None:
            raise ProtocolError(f"B1500: malformed data item {item[:24]!r}")
        letter = m.group(2)
        slot = "ABCDEFGHIJ".index(letter.upper()) + 1 if letter.upper() in "ABCDEFGHIJ" else 0
        out.append(FlexDatum(m.group(1), slot, m.group(3), float(m.group(4))))
    return out


class B1500(Instrument):
    """Driver of a B1500A with SMU modules.

    Args:
        transport: the mainframe's transport (read termination CR/LF).
        limits: the bench's safety limits, checked before any byte is sent.
        bitline_channel: slot of the SMU on the bit line.
        gate_channel: slot of the SMU on the gate, or ``None``.
        reset: send ``*RST`` and set up in the constructor.

    Constructor traffic::

        > *IDN?            < <identity>
        > *RST
        > UNT?             < B1517A,0;B1517A,0;...;0,0
        > FMT 1,0;CN 1,2
        > ERRX?            < 0,"No Error."
    """

    label = "B1500"

    def __init__(self, transport: Transport, limits: SafetyLimits, bitline_channel: int = 1, gate_channel: int | None = 2, reset: bool = True) -> None:
        if not 1 <= bitline_channel <= 10 or (gate_channel is not None and not 1 <= gate_channel <= 10) or gate_channel == bitline_channel:
            raise ValueError(f"slots must be 1..10 and distinct, got bit line {bitline_channel}, gate {gate_channel}")
        super().__init__(transport)
        self.limits = limits
        self.bl = bitline_channel
        self.gate = gate_channel
        self.identity = transport.query("*IDN?", idempotent=True).strip()
        if reset:
            transport.write("*RST")
        self.modules = self.query_modules()
        for slot in self.channels:
            if self.modules.get(slot) not in SMU_MODELS:
                raise InstrumentError(f"B1500: slot {slot} holds {self.modules.get(slot, 'nothing')!r}, not an SMU")
        if reset:
            transport.write(f"FMT 1,0;CN {','.join(str(c) for c in self.channels)}")
            self.check_errors()

    @property
    def channels(self) -> tuple[int, ...]:
        return tuple(sorted(c for c in (self.bl, self.gate) if c is not None))

    # ------------------------------------------------------------------ discovery / errors
    def query_modules(self) -> dict[int, str]:
        """Installed modules by slot (``UNT?``), e.g. ``{1: "B1517A", 3: "B1511A"}``."""

        def parse(text: str) -> dict[int, str]:
            entries = text.strip().split(";")
            if len(entries) != 10 or not all(re.fullmatch(r"[A-Z0-9/]+,\d+", e) for e in entries):
                raise ProtocolError(f"B1500: malformed UNT? reply {text[:60]!r}")
            return {i + 1: e.split(",")[0] for i, e in enumerate(entries) if e.split(",")[0] != "0"}

        return self.transport.query_parsed("UNT?", parse, idempotent=True)

    def check_errors(self) -> None:
        """Read ``ERRX?`` until it reports 0; raise InstrumentError listing what it held."""
        errors = []
        for _ in range(32):
            reply = self.transport.query("ERRX?").strip()
            m = re.fullmatch(r'([+-]?\d+),"([^"]*)"', reply)
            if m is None:
                raise ProtocolError(f"B1500: unparsable ERRX? reply {reply!r}")
            if int(m.group(1)) == 0:
                break
            errors.append(f"{m.group(1)} {m.group(2)}")
        if errors:
            raise InstrumentError("B1500 error buffer: " + "; ".join(errors))

    # ------------------------------------------------------------------ checks
    def _check_slot(self, slot: int) -> None:
        if slot not in self.channels:
            raise ValueError(f"slot {slot} is not wired on this bench (wired: {self.channels})")

    def _check_dc(self, slot: int, volts: float) -> None:
        self._check_slot(slot)
        if slot == self.gate:
            self.limits.check_gate(volts)
        else:
            self.limits.check_read(volts)

    # ------------------------------------------------------------------ sourcing
    def enable(self, *slots: int) -> None:
        """Connect channels (``CN``)."""
        for s in slots:
            self._check_slot(s)
        self.transport.write(f"CN {','.join(str(s) for s in slots)}")

    def disable(self, *slots: int) -> None:
        """Disconnect channels (``CL``; no slots: all): output off, relay open."""
        self.transport.write("CL" + (f" {','.join(str(s) for s in slots)}" if slots else ""))

    def force_voltage(self, slot: int, volts: float, compliance: float) -> None:
        """Force a DC voltage (V) under a current compliance (A): ``DV slot,0,V,Icomp``."""
        self._check_dc(slot, volts)
        self.limits.check_compliance(compliance)
        self._guarded(f"DV {slot},0,{f(volts)},{f(compliance)}")

    def force_current(self, slot: int, amps: float, v_compliance: float) -> None:
        """Force a DC current (A) under a voltage compliance (V): ``DI slot,0,I,Vcomp``."""
        self._check_slot(slot)
        self.limits.check_compliance(abs(amps))
        self.limits.check_abs("v_compliance", v_compliance, self.limits.max_v_read if slot == self.bl else self.limits.max_v_gate, "V")
        self._guarded(f"DI {slot},0,{f(amps)},{f(v_compliance)}")

    # ------------------------------------------------------------------ measurements
    def _measure(self, command: str, n: int, slot: int, kind: str, allow_trip: bool = False) -> np.ndarray:
        def parse(text: str) -> list[FlexDatum]:
            data = parse_flex_data(text)
            if len(data) != n or any(d.slot != slot or d.kind != kind for d in data):
                raise ProtocolError(f"B1500: expected {n} {kind} value(s) of slot {slot}, got {text[:60]!r}")
            return data

        try:
            data = self.transport.query_parsed(command, parse, idempotent=command.startswith("T"))
        except BaseException:
            self.switch_off_after_failure()
            raise
        bad = [d for d in data if d.status in _BAD_STATUS]
        if bad:
            self.switch_off_after_failure()
            raise InstrumentError(f"B1500 slot {slot}: {_BAD_STATUS[bad[0].status]} (status {bad[0].status})")
        if not allow_trip and any(d.status == "C" for d in data):
            from drivers.instruments.b2900 import ComplianceTrip

            raise ComplianceTrip(f"B1500 slot {slot} reached its compliance; readings are clamped")
        return np.array([d.value for d in data])

    def spot_current(self, slot: int) -> float:
        """High-speed spot current measurement (``TI slot``), A. Idempotent re-read is safe."""
        self._check_slot(slot)
        return float(self._measure(f"TI {slot}", 1, slot, "I")[0])

    def spot_voltage(self, slot: int) -> float:
        """High-speed spot voltage measurement (``TV slot``), V."""
        self._check_slot(slot)
        return float(self._measure(f"TV {slot}", 1, slot, "V")[0])

    def staircase_sweep(self, start: float, stop: float, steps: int, compliance: float, hold: float = 0.0, delay: float = 0.0) -> np.ndarray:
        """Linear staircase voltage sweep on the bit line (``WV`` + ``XE``); currents, A.

        Sweeps stay within the read range: they measure, they do not program.
        """
        if not 1 <= steps <= 10001:
            raise ValueError(f"steps must be 1..10001, got {steps}")
        self.limits.check_read(start)
        self.limits.check_read(stop)
        self.limits.check_compliance(compliance)
        self.limits.check_range("hold", hold, 0.0, 655.35, "s")
        self.limits.check_range("delay", delay, 0.0, 65.535, "s")
        self._guarded(f"MM 2,{self.bl};WT {f(hold)},{f(delay)};WV {self.bl},1,0,{f(start)},{f(stop)},{steps},{f(compliance)}")
        return self._measure("XE", steps, self.bl, "I")

    def pulsed_spot(self, peak: float, width: float, compliance: float, base: float = 0.0, hold: float = 0.0, period: float | None = None) -> float:
        """One pulse ``base`` -> ``peak`` (V) of ``width`` (s) on the bit line, measuring the
        current during it (``PT``/``PV``/``MM 3`` + ``XE``); returns A. Not retried (it programs)."""
        self.limits.check_pulse(peak, width)
        self.limits.check_read(base)
        self.limits.check_compliance(compliance)
        if not MIN_PULSE_WIDTH <= width <= MAX_PULSE_WIDTH:
            raise ValueError(f"width={width:.3e} s outside the B1500 SMU pulse range [{MIN_PULSE_WIDTH:g}, {MAX_PULSE_WIDTH:g}] s")
        period = 2 * width if period is None else period
        self._guarded(f"PT {f(hold)},{f(width)},{f(period)};PV {self.bl},0,{f(base)},{f(peak)},{f(compliance)};MM 3,{self.bl}")
        return float(self._measure("XE", 1, self.bl, "I", allow_trip=True)[0])

    # ------------------------------------------------------------------ BenchArray roles
    def pulse_one(self, peak: float, gate: float | None, width: float, compliance: float) -> None:
        """One pulse on the routed cell with the gate SMU at ``gate`` (V)."""
        if gate is not None:
            self.force_voltage(self.gate, gate, self.limits.max_compliance)  # type: ignore[arg-type]
        self.pulsed_spot(peak, width, compliance)
        self.check_errors()  # a refused DV/PV must not pass silently

    def read_one(self, v_read: float, gate: float | None, aperture: float, compliance: float) -> float:
        """Current of the routed cell at ``v_read`` (V), A (``DV`` then ``TI``)."""
        self.limits.check_range("aperture", aperture, BenchTiming.MIN_APERTURE, BenchTiming.MAX_APERTURE, "s")
        if gate is not None:
            self.force_voltage(self.gate, gate, self.limits.max_compliance)  # type: ignore[arg-type]
        self.force_voltage(self.bl, v_read, compliance)
        current = self.spot_current(self.bl)
        self.check_errors()  # a refused DV would leave TI measuring at the wrong voltage
        return current

    # ------------------------------------------------------------------ safety
    def _safe_idle(self) -> None:
        """Zero and disconnect every channel (``DZ;CL``)."""
        self.transport.write("DZ;CL")
