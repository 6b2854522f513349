"""Keysight B1525A semiconductor pulse generator unit (SPGU) in a B1500A mainframe, FLEX commands.

The SPGU fires the nanosecond-to-microsecond SET and RESET pulses that an SMU's pulse mode
cannot make (a B1500 SMU pulse is at least 500 us wide). It lives in the B1500 and is
programmed through the mainframe's own transport; the mainframe's SMU driver
(:class:`~drivers.instruments.b1500.B1500`) has already reset the mainframe and set the data
format when this driver starts, so the SPGU driver sends no ``*RST``.

Commands (Agilent B1500A/B1505A Programming Guide, Edition 11: chapter 2 "Remote Mode
Functions", section "SPGU Module", and the chapter 4 "Command Reference" entry of each command;
see ``drivers/instruments/MANUALS.md``):

* ``UNT?``               which module sits in which slot (the SPGU answers ``B1525A``)
* ``CN ch`` / ``CL ch``  connect / disconnect an SPGU channel (channel number = slot x 100 + 1 or 2)
* ``SIM 0``              SPGU operation mode: pulse generator (PG), not ALWG
* ``SPM ch,1``           channel output mode: 2-level pulse
* ``SPRM 1,1``           output operation: count mode, one pulse per start
* ``SER ch,Z``           load impedance the output voltage is computed for, ohm
* ``ODSW ch,0``          pulse switch not used (output relay stays closed while connected)
* ``SPPER p``            pulse period, s (common to the module)
* ``SPT ch,1,d,w,l,t``   delay, width, leading and trailing edge of pulse source 1, s
* ``SPV ch,1,base,peak`` base and peak voltage of pulse source 1, V
* ``SPUPD ch``           apply the new setup to the output
* ``SRP``                start the output; ``SPST?`` 1 while running, 0 when done
* ``SPP``                stop the output
* ``ERRX?``              error buffer

One pulse costs one round trip (``SRP;SPST?``: the reply says the pulse has ended; the SMUs'
``DV`` that hold bit line and gate may ride in the same message), plus one
(``...;SPUPD ch;ERRX?``) when amplitude or width changed, so that a refused setup never fires.
The error buffer is otherwise read once per batch (:meth:`B1525A.check_errors`). Not verified
against a real SPGU.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

from drivers.errors import InstrumentError, ProtocolError, SafetyLimitError
from drivers.instruments.base import Instrument
from drivers.instruments.pulse_common import drain_error_queue, in_range, integer, real
from drivers.limits import SafetyLimits
from drivers.transport import Transport, format_number

log = logging.getLogger(__name__)
f = format_number


@dataclass(frozen=True)
class SpguModel:
    """What one SPGU model allows (SI units), as its documentation states; picked by ``UNT?``.

    Attributes:
        name: module model as ``UNT?`` reports it.
        min_period, max_period: ``SPPER`` range, s.
        min_width: shortest ``SPT`` width, s; the width must also be <= period - ``min_width``.
        min_edge, max_edge: ``SPT`` leading/trailing edge range, s.
        max_volts_open, max_volts_50ohm: largest |base|, |peak| for a high-impedance load
            (``SER`` >= 1 kohm) and for a 50 ohm load, V.
        time_resolution: granularity of period, delay and width, s.
    """

    name: str
    min_period: float
    max_period: float
    min_width: float
    min_edge: float
    max_edge: float
    max_volts_open: float
    max_volts_50ohm: float
    time_resolution: float

    def max_volts(self, load_impedance: float) -> float:
        return self.max_volts_open if load_impedance >= 1e3 else self.max_volts_50ohm


#: Per-model limits (B1500A Programming Guide Ed. 11, "SPGU Module" and the SPPER/SPT/SPV
#: entries of the Command Reference; ALWG time resolution 10 ns, p. 2-62).
SPGU_MODELS = {
    "B1525A": SpguModel("B1525A", 20e-9, 10.0, 10e-9, 8e-9, 0.4, 40.0, 20.0, 10e-9),
}
#: Channel numbers of an SPGU in slot ``s``: ``100 s + 1`` and ``100 s + 2``.
SPGU_CHANNEL_SUFFIXES = (1, 2)
#: Longest time :meth:`B1525A.pulse` polls ``SPST?`` for the end of one pulse, s.
END_OF_PULSE_TIMEOUT = 2.0


def parse_modules(text: str) -> dict[int, str]:
    """``UNT?`` reply (10 ``model,rev`` entries separated by ``;``) -> ``{slot: model}``."""
    entries = text.strip().split(";")
    if len(entries) != 10 or not all(re.fullmatch(r"[A-Z0-9/]+,\d+", e) for e in entries):
        raise ProtocolError(f"B1500: malformed UNT? reply {text[:60]!r}")
    return {i + 1: e.split(",")[0] for i, e in enumerate(entries) if e.split(",")[0] != "0"}


def parse_errx(reply: str) -> tuple[int, str]:
    """``ERRX?`` reply ``code,"message"`` -> (code, message)."""
    m = re.fullmatch(r'([+-]?\d+),"([^"]*)"', reply.strip())
    if m is None:
        raise ProtocolError(f"B1500: unparsable ERRX? reply {reply!r}")
    return int(m.group(1)), m.group(2)


def _quantise(value: float, step: float) -> float:
    """Round a time to the instrument's resolution (the value that goes on the wire)."""
    return round(value / step) * step


class B1525A(Instrument):
    """Driver of one B1525A SPGU channel.

    Args:
        transport: the B1500 mainframe's transport (shared with its SMU driver; not closed here).
        limits: the bench's safety limits, checked before any byte is sent.
        channel: SPGU channel number (``101``..``1002``: slot x 100 + 1 or 2).
        load_impedance: ``SER`` load impedance, ohm (1e6: a high-impedance 1T1R line).
        edge: leading and trailing edge time, s.

    Constructor traffic (``<slot>`` the SPGU's slot)::

        > UNT?                              < ...;B1525A,0;...
        > CN <ch>
        > SIM 0;SPM <ch>,1;SPRM 1,1;SER <ch>,<Z>;ODSW <ch>,0
        > ERRX?                             < 0,"No Error."
    """

    label = "B1525A"

    def __init__(self, transport: Transport, limits: SafetyLimits, channel: int = 501, load_impedance: float = 1e6, edge: float = 10e-9) -> None:
        channel = integer("SPGU channel", channel, 101, 1002)
        slot, suffix = divmod(channel, 100)
        if not 1 <= slot <= 10 or suffix not in SPGU_CHANNEL_SUFFIXES:
            raise ValueError(f"SPGU channel {channel} is not slot x 100 + 1 or 2 (slots 1..10)")
        load_impedance = real("SER load impedance", load_impedance)
        in_range("SER", "load impedance", load_impedance, 0.1, 1e6, "ohm")
        edge = real("SPT edge", edge)
        super().__init__(transport)
        self.limits = limits
        self.channel = channel
        self.slot = slot
        self.load_impedance = load_impedance
        self._released = False
        self._setup: tuple[float, float, float] | None = None  # (period, width, peak) on the output
        modules = transport.query_parsed("UNT?", parse_modules, idempotent=True)
        name = modules.get(slot, "nothing")
        if name not in SPGU_MODELS:
            raise InstrumentError(f"B1500: slot {slot} holds {name!r}, not an SPGU (known: {sorted(SPGU_MODELS)})")
        self.model = SPGU_MODELS[name]
        in_range("SPT", "edge", edge, self.model.min_edge, self.model.max_edge, "s")
        self.edge = edge
        self.identity = f"{name} in B1500 slot {slot}, channel {channel}"
        transport.write(f"CN {channel}")
        self._guarded(f"SIM 0;SPM {channel},1;SPRM 1,1;SER {channel},{f(load_impedance)};ODSW {channel},0")
        self.check_errors()

    # ------------------------------------------------------------------ errors
    def check_errors(self) -> None:
        """Read ``ERRX?`` until it reports 0; outputs off and InstrumentError if it held any."""
        drain_error_queue(lambda: self.transport.query("ERRX?"), parse_errx, self.switch_off_after_failure, "B1500 error buffer (SPGU)")

    # ------------------------------------------------------------------ checks
    def pulse_setup(self, peak: float, width: float, base: float = 0.0) -> tuple[float, float, float, float]:
        """Validate one pulse and return (period, width, peak, base) as they go on the wire.

        Raises:
            TypeError: a value is not a real number.
            SafetyLimitError: a value is outside the bench limits or the model's range
                (the message names the command, the value and the range).
        """
        peak, width, base = real("SPV peak", peak), real("SPT width", width), real("SPV base", base)
        m = self.model
        self.limits.check_pulse(peak, width)
        self.limits.check_abs("SPV base", base, self.limits.max_v_read, "V")
        on_grid = _quantise(width, m.time_resolution)
        if abs(on_grid - width) > 1e-3 * m.time_resolution:
            raise SafetyLimitError(f"SPT: width = {width:.6g} s is not a multiple of the {m.time_resolution:.3g} s resolution")
        width = on_grid
        in_range("SPT", "width", width, m.min_width, m.max_period - m.min_width, "s")
        if self.edge + self.edge > width:
            raise SafetyLimitError(f"SPT: width = {width:.6g} s shorter than its two edges ({self.edge:.3g} s each)")
        period = _quantise(max(m.min_period, 2.0 * (width + 2.0 * self.edge)), m.time_resolution)
        in_range("SPPER", "period", period, m.min_period, m.max_period, "s")
        v_max = m.max_volts(self.load_impedance)
        in_range("SPV", "peak", peak, -v_max, v_max, "V")
        in_range("SPV", "base", base, -v_max, v_max, "V")
        return period, width, peak, base

    # ------------------------------------------------------------------ pulses
    def pulse(self, peak: float, width: float, base: float = 0.0, before: str = "") -> None:
        """Fire one pulse ``base`` -> ``peak`` (V) of ``width`` (s) and wait for its end.

        Args:
            before: already validated mainframe commands to run first in the same message
                (e.g. the SMUs' ``DV`` from :meth:`~drivers.instruments.b1500.B1500.dv_command`),
                so that holding the lines and firing cost one round trip.

        Not retried (it programs). A failure switches the output off before re-raising.
        """
        period, width, peak, base = self.pulse_setup(peak, width, base)
        if not isinstance(before, str) or "?" in before:
            raise ValueError(f"before must be mainframe commands without queries, got {before!r}")
        ch = self.channel
        lead = f"{before};" if before else ""
        try:
            if self._setup != (period, width, peak):
                self._setup = None
                code, message = parse_errx(self.transport.query(
                    f"{lead}SPPER {f(period)};SPT {ch},1,{f(0.0)},{f(width)},{f(self.edge)},{f(self.edge)};"
                    f"SPV {ch},1,{f(base)},{f(peak)};SPUPD {ch};ERRX?"
                ))
                lead = ""
                if code != 0:
                    raise InstrumentError(f"B1500 refused the SPGU setup (width {width:.3g} s, peak {peak:.3g} V): {code} {message}")
                self._setup = (period, width, peak)
            self._wait_end(self.transport.query(f"{lead}SRP;SPST?"))
        except BaseException:
            self.switch_off_after_failure()
            raise

    def _wait_end(self, reply: str) -> None:
        deadline = time.monotonic() + END_OF_PULSE_TIMEOUT
        while True:
            state = reply.strip()
            if state == "0":
                return
            if state != "1":
                raise ProtocolError(f"B1500: unexpected SPST? reply {reply!r}")
            if time.monotonic() > deadline:
                raise InstrumentError(f"SPGU output still active {END_OF_PULSE_TIMEOUT} s after SRP")
            reply = self.transport.query("SPST?", idempotent=True)

    def output_active(self) -> bool:
        """Whether the SPGU output is running (``SPST?``)."""
        reply = self.transport.query("SPST?", idempotent=True).strip()
        if reply not in ("0", "1"):
            raise ProtocolError(f"B1500: unexpected SPST? reply {reply!r}")
        return reply == "1"

    # ------------------------------------------------------------------ safety
    def _safe_idle(self) -> None:
        """Stop the output and disconnect the channel (``SPP;CL ch``), then confirm with ``SPST?``."""
        self._setup = None
        self.transport.write(f"SPP;CL {self.channel}")
        if self.output_active():
            raise InstrumentError("SPGU: output still active after SPP;CL")

    @property
    def closed(self) -> bool:
        return self._released or self.transport._closed

    def close(self) -> None:
        """Safe idle state; the mainframe's transport stays open for its SMU driver. Idempotent."""
        if self.closed:
            return
        try:
            self._safe_idle()
        finally:
            self._released = True
