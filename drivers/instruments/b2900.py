"""Keysight B2900-series source/measure unit (B2901A/B2902A/B2911A/B2912A), SCPI.

What it does in the lab's words: hold a DC voltage, measure a current under a compliance,
fire one pulse (base, peak, width), fire a *list* of pulses (one per cell, each with its own
amplitude, the gate channel stepping in step), and measure a list of cells in one triggered
acquisition fetched as one binary array.

How a pulse+verify iteration over a batch of N cells costs one SMU round trip:
    1. :meth:`B2900.pulse_list` sends one message: pulsed list sweep on the bit-line channel
       (one list point per cell), the gate channel's list in step, ``:INIT``, ``*WAI``.
       No reply is awaited.
    2. :meth:`B2900.measure_list` sends one message (DC read sweep of N points, ``:INIT``,
       ``*WAI``) and one compound query
       ``:FETC:ARR:CURR? (@1);:SENS1:CURR:PROT:TRIP?;:SYST:ERR:COUN?`` whose reply is the N
       currents as a binary block (``:FORM REAL,64``), the trip flag and the error count. The
       whole query is idempotent (it only reads), so a transient failure is retried; the error
       queue is read (``:SYST:ERR:ALL?``) only when the count is not zero.
    The router (array board or switch matrix) must step to the next cell on each SMU trigger
    point; see :mod:`drivers.bench`.

Assumptions about the real instrument (from the B2900 programming guide; not verified on
hardware in this project): ``:SOUR:LIST:VOLT`` takes up to 2500 points; a pulsed list sweep
sources each list value as the pulse peak with ``:SOUR:VOLT`` as base; ``:TRIG:TRAN:TOUT``
with ``:TRIG:TRAN:TOUT:SIGN EXT1`` emits one trigger per source point for the router; the
compound fetch of a ``REAL,64`` block followed by ASCII replies is delivered as one message.
"""

from __future__ import annotations

import logging
import re
import struct
from collections.abc import Sequence

import numpy as np

from drivers.errors import InstrumentError, ProtocolError
from drivers.instruments.base import Instrument
from drivers.limits import SafetyLimits
from drivers.timing import BenchTiming
from drivers.transport import Transport, format_number

log = logging.getLogger(__name__)

f = format_number

#: Largest list the driver sends in one sweep (points).
MAX_LIST_POINTS = 2500

_TAIL = re.compile(r";([01]);([+-]?\d+)")
_ERR_ITEM = re.compile(r'([+-]?\d+),("[^"]*")')


class ComplianceTrip(InstrumentError):
    """The SMU reached its current compliance while measuring (the reading is clamped)."""


class B2900(Instrument):
    """Driver of a two-channel B2900 SMU.

    Args:
        transport: the instrument's transport.
        limits: the bench's safety limits, checked before any byte is sent.
        bitline_channel: channel wired to the bit line (pulses and reads).
        gate_channel: channel wired to the word-line gate, or ``None`` when a router's DAC
            drives the gate.
        reset: send ``*RST``/``*CLS`` and the data-format setup in the constructor.

    Constructor traffic (``reset=True``)::

        > *IDN?                      < <identity>
        > *RST;*CLS
        > :FORM:DATA REAL,64;:FORM:BORD SWAP;:SOUR1:FUNC:MODE VOLT;:SOUR2:FUNC:MODE VOLT
        > :SYST:ERR:ALL?             < +0,"No error"
    """

    label = "B2900"

    def __init__(
        self,
        transport: Transport,
        limits: SafetyLimits,
        bitline_channel: int = 1,
        gate_channel: int | None = 2,
        reset: bool = True,
    ) -> None:
        if bitline_channel not in (1, 2) or gate_channel not in (1, 2, None) or gate_channel == bitline_channel:
            raise ValueError(f"channels must be 1 or 2 and distinct, got bit line {bitline_channel}, gate {gate_channel}")
        super().__init__(transport)
        self.limits = limits
        self.bl = bitline_channel
        self.gate = gate_channel
        self.identity = transport.query("*IDN?", idempotent=True).strip()
        if "B29" not in self.identity:
            log.warning("instrument %r does not identify as a B2900", self.identity)
        if reset:
            transport.write("*RST;*CLS")
            modes = ";".join(f":SOUR{c}:FUNC:MODE VOLT" for c in self.channels)
            transport.write(f":FORM:DATA REAL,64;:FORM:BORD SWAP;{modes}")
            self.check_errors()

    @property
    def channels(self) -> tuple[int, ...]:
        return tuple(sorted(c for c in (self.bl, self.gate) if c is not None))

    # ------------------------------------------------------------------ checks
    def _check_channel(self, channel: int) -> None:
        if channel not in (1, 2):
            raise ValueError(f"channel must be 1 or 2, got {channel!r}")

    def _check_dc(self, channel: int, volts: float | np.ndarray) -> None:
        """DC levels: the gate channel within the gate range, the bit line within the read range."""
        self._check_channel(channel)
        if channel == self.gate:
            self.limits.check_gate(volts)
        else:
            self.limits.check_read(float(np.max(np.abs(volts))) if np.size(volts) else 0.0)

    def _check_aperture(self, aperture: float) -> None:
        self.limits.check_range("aperture", aperture, BenchTiming.MIN_APERTURE, BenchTiming.MAX_APERTURE, "s")

    # ------------------------------------------------------------------ errors
    def check_errors(self) -> None:
        """Read the whole error queue (``:SYST:ERR:ALL?``); raise InstrumentError if not empty."""
        reply = self.transport.query(":SYST:ERR:ALL?")
        items = _ERR_ITEM.findall(reply)
        if not items or "".join(f"{c},{m}," for c, m in items).rstrip(",") != reply.strip():
            raise ProtocolError(f"B2900: unparsable error queue reply {reply!r}")
        errors = [(int(c), m) for c, m in items if int(c) != 0]
        if errors:
            raise InstrumentError("B2900 error queue: " + "; ".join(f"{c} {m}" for c, m in errors))

    def error_count(self) -> int:
        """Entries in the error queue (``:SYST:ERR:COUN?``; reading it changes nothing)."""
        return self.transport.query_parsed(":SYST:ERR:COUN?", _parse_int, idempotent=True)

    # ------------------------------------------------------------------ DC
    def set_compliance(self, channel: int, amps: float) -> None:
        """Current compliance of ``channel``, A."""
        self._check_channel(channel)
        self.limits.check_compliance(amps)
        self.transport.write(f":SENS{channel}:CURR:PROT {f(amps)}")

    def compliance_tripped(self, channel: int) -> bool:
        """Whether ``channel`` reached its compliance in the last measurement (``:SENS:CURR:PROT:TRIP?``)."""
        self._check_channel(channel)
        return self.transport.query_parsed(f":SENS{channel}:CURR:PROT:TRIP?", _parse_bool, idempotent=True)

    def source_voltage(self, channel: int, volts: float) -> None:
        """Hold a DC voltage on ``channel`` (V) and switch its output on."""
        self._check_dc(channel, volts)
        self._guarded(
            f":SOUR{channel}:FUNC:SHAP DC;:SOUR{channel}:VOLT:MODE FIX;:SOUR{channel}:VOLT {f(volts)};:OUTP{channel} ON"
        )

    def output(self, channel: int, on: bool) -> None:
        """Switch the output of ``channel`` on or off."""
        self._check_channel(channel)
        self.transport.write(f":OUTP{channel} {'ON' if on else 'OFF'}")

    def spot_current(self, v_read: float, aperture: float, compliance: float) -> float:
        """Apply ``v_read`` (V) on the bit line and measure one current, A (``:MEAS:CURR?``).

        Raises:
            ComplianceTrip: the reading hit the compliance.
        """
        self._check_dc(self.bl, v_read)
        self._check_aperture(aperture)
        self.limits.check_compliance(compliance)
        c = self.bl
        self._guarded(
            f":SOUR{c}:FUNC:SHAP DC;:SOUR{c}:VOLT:MODE FIX;:SOUR{c}:VOLT {f(v_read)};"
            f":SENS{c}:CURR:APER {f(aperture)};:SENS{c}:CURR:PROT {f(compliance)};:OUTP{c} ON"
        )
        values, tripped, errors = self._guarded_fetch(f":MEAS:CURR? (@{c});:SENS{c}:CURR:PROT:TRIP?;:SYST:ERR:COUN?", 1)
        self._after_fetch(tripped, errors)
        return float(values[0])

    # ------------------------------------------------------------------ pulses
    def pulse(self, peak: float, width: float, compliance: float, base: float = 0.0) -> None:
        """Fire one voltage pulse on the bit line: ``base`` -> ``peak`` (V) for ``width`` (s)."""
        self.pulse_list([peak], width, compliance, base=base)

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
            width: pulse width, s.
            compliance: bit-line current compliance, A.
            gates: gate voltage per point on the gate channel, V (``None``: gate not stepped).
            base: pulse base level, V.

        Errors from the sweep surface at the next query (:meth:`measure_list` checks them).
        """
        peaks = np.asarray(peaks, dtype=float).reshape(-1)
        n = peaks.size
        if not 1 <= n <= MAX_LIST_POINTS:
            raise ValueError(f"a pulse list holds 1..{MAX_LIST_POINTS} points, got {n}")
        self.limits.check_pulse(peaks, width)
        self.limits.check_read(base)
        self.limits.check_compliance(compliance)
        c = self.bl
        parts = [
            f":SOUR{c}:FUNC:SHAP PULS;:SOUR{c}:VOLT {f(base)};:SOUR{c}:PULS:DEL {f(0.0)};:SOUR{c}:PULS:WIDT {f(width)}",
            f":SENS{c}:CURR:PROT {f(compliance)};:SOUR{c}:VOLT:MODE LIST;:SOUR{c}:LIST:VOLT {_join(peaks)};:TRIG{c}:COUN {n}",
        ]
        chans = [c]
        if gates is not None:
            parts.append(self._gate_list(gates, n))
            chans.append(self.gate)  # type: ignore[arg-type]
        parts.append(self._run(chans))
        self._guarded(";".join(parts))

    def _gate_list(self, gates: Sequence[float] | np.ndarray, n: int) -> str:
        if self.gate is None:
            raise ValueError("no gate channel is wired to this SMU")
        gates = np.asarray(gates, dtype=float).reshape(-1)
        if gates.size != n:
            raise ValueError(f"need one gate voltage per point ({n}), got {gates.size}")
        self.limits.check_gate(gates)
        g = self.gate
        return f":SOUR{g}:FUNC:SHAP DC;:SOUR{g}:VOLT:MODE LIST;:SOUR{g}:LIST:VOLT {_join(gates)};:TRIG{g}:COUN {n}"

    def _run(self, chans: list[int]) -> str:
        outs = ";".join(f":OUTP{ch} ON" for ch in sorted(chans))
        return f"{outs};:INIT (@{','.join(str(ch) for ch in sorted(chans))});*WAI"

    def pulse_one(self, peak: float, gate: float | None, width: float, compliance: float) -> None:
        """One pulse on the routed cell, with the gate channel at ``gate`` (V) when given."""
        self.pulse_list([peak], width, compliance, None if gate is None else [gate])

    def read_one(self, v_read: float, gate: float | None, aperture: float, compliance: float) -> float:
        """Current of the routed cell at ``v_read`` (V), A."""
        return float(self.measure_list(1, v_read, aperture, compliance, gate)[0])

    def wait_idle(self) -> None:
        """Block until every pending operation (e.g. a write-only pulse sweep) has finished
        (``*OPC?``). Call it before re-routing after :meth:`pulse_list`."""
        reply = self.transport.query_parsed("*OPC?", _parse_bool, idempotent=True)
        if not reply:
            raise ProtocolError("B2900: *OPC? answered 0")

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
        if not 1 <= n <= MAX_LIST_POINTS:
            raise ValueError(f"a measurement list holds 1..{MAX_LIST_POINTS} points, got {n}")
        self._check_dc(self.bl, v_read)
        self._check_aperture(aperture)
        self.limits.check_compliance(compliance)
        c = self.bl
        parts = [
            f":SOUR{c}:FUNC:SHAP DC;:SOUR{c}:VOLT:MODE FIX;:SOUR{c}:VOLT:TRIG {f(v_read)};"
            f":SENS{c}:CURR:APER {f(aperture)};:SENS{c}:CURR:PROT {f(compliance)};:TRIG{c}:COUN {n}"
        ]
        chans = [c]
        if gate is not None:
            if self.gate is None:
                raise ValueError("no gate channel is wired to this SMU")
            self.limits.check_gate(gate)
            g = self.gate
            parts.append(f":SOUR{g}:FUNC:SHAP DC;:SOUR{g}:VOLT:MODE FIX;:SOUR{g}:VOLT:TRIG {f(gate)};:TRIG{g}:COUN {n}")
            chans.append(g)
        parts.append(self._run(chans))
        self._guarded(";".join(parts))
        values, tripped, errors = self._guarded_fetch(f":FETC:ARR:CURR? (@{c});:SENS{c}:CURR:PROT:TRIP?;:SYST:ERR:COUN?", n)
        self._after_fetch(tripped and not allow_trip, errors)
        return values

    def fetch_currents(self, n: int) -> np.ndarray:
        """Fetch the last acquisition's ``n`` currents of the bit-line channel, A (idempotent)."""
        c = self.bl
        values, tripped, errors = self._guarded_fetch(f":FETC:ARR:CURR? (@{c});:SENS{c}:CURR:PROT:TRIP?;:SYST:ERR:COUN?", n)
        self._after_fetch(False, errors)
        return values

    def _guarded_fetch(self, command: str, n: int) -> tuple[np.ndarray, bool, int]:
        def parse(payload: bytes, tail: str) -> tuple[np.ndarray, bool, int]:
            if len(payload) != 8 * n:
                raise ProtocolError(f"B2900: expected {n} float64 values ({8 * n} bytes), got {len(payload)} bytes")
            m = _TAIL.fullmatch(tail)
            if m is None:
                raise ProtocolError(f"B2900: malformed reply after the data block: {tail[:40]!r}")
            values = np.array(struct.unpack(f"<{n}d", payload))
            if not np.all(np.isfinite(values)):
                raise ProtocolError("B2900: non-finite current in the data block")
            return values, m.group(1) == "1", int(m.group(2))

        try:
            return self.transport.query_block_parsed(command, parse, idempotent=True)
        except BaseException:
            self.switch_off_after_failure()
            raise

    def _after_fetch(self, tripped: bool, errors: int) -> None:
        if errors:
            self.switch_off_after_failure()
            self.check_errors()
            raise InstrumentError(f"B2900 reported {errors} error(s) but its queue read empty")
        if tripped:
            raise ComplianceTrip("B2900: the bit-line channel reached its current compliance; readings are clamped")

    # ------------------------------------------------------------------ safety
    def _emergency_off(self) -> None:
        self.transport.write(";".join(f":OUTP{c} OFF" for c in (1, 2)))

    def _safe_idle(self) -> None:
        """Both channels to 0 V and output off."""
        self.transport.write(";".join(f":SOUR{c}:VOLT {f(0.0)};:OUTP{c} OFF" for c in (1, 2)))


def _join(values: np.ndarray) -> str:
    return ",".join(f(v) for v in values)


def _parse_int(text: str) -> int:
    t = text.strip()
    if not re.fullmatch(r"[+-]?\d+", t):
        raise ProtocolError(f"expected an integer, got {text[:40]!r}")
    return int(t)


def _parse_bool(text: str) -> bool:
    t = text.strip()
    if t not in ("0", "1"):
        raise ProtocolError(f"expected 0 or 1, got {text[:40]!r}")
    return t == "1"

