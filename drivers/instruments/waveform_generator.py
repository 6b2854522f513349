"""Keysight 33500B-series function / arbitrary waveform generator as a single-pulse source (SCPI).

Each SET or RESET pulse is a triggered burst of one pulse: ``FUNC PULS``, ``BURS:MODE TRIG``,
``BURS:NCYC 1``, ``BURS:STAT ON`` and ``TRIG:SOUR BUS``, fired by ``*TRG`` (or ``EXT``: a
rear-panel trigger edge). Levels are set as ``VOLT:HIGH``/``VOLT:LOW`` for the load the
output is declared to drive (``OUTP:LOAD INF``: a high-impedance 1T1R line, so that the
levels are the open-circuit voltages). Between pulses the output rests at the low level
(0 V); a negative pulse uses ``OUTP:POL INV`` with ``VOLT:HIGH 0`` and ``VOLT:LOW <v>``, which
inverts the waveform about its offset: it rests at 0 V and pulses to ``v``.

Commands and limits: Agilent/Keysight 33500 Series Operating and Service Guide ("Pulse
Waveforms", p. 69: pulse width 16 ns to 1,000,000 s, width < period - 16 ns, edge time
8.4 ns minimum; "Burst Mode", "Triggering", "Output Configuration" and the SCPI reference);
see ``drivers/instruments/MANUALS.md``.

One pulse costs one round trip (``*TRG;*OPC?``), plus one (``...;SYST:ERR?``) when width or
levels changed, so that a refused setup never fires; on a bench the SMU confirms the cell's
gate and bit-line levels (``*OPC?``, one more round trip) before each ``*TRG``, because the
generator's link does not wait for the SMU's (``drivers.bench.BenchArray``). Not verified against
a real generator.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from drivers.errors import InstrumentError, ProtocolError, SafetyLimitError
from drivers.instruments.base import Instrument
from drivers.instruments.pulse_common import drain_error_queue, in_range, integer, real
from drivers.limits import SafetyLimits
from drivers.transport import Transport, format_number

log = logging.getLogger(__name__)
f = format_number


@dataclass(frozen=True)
class GeneratorModel:
    """What one generator model allows (SI units); picked by the ``*IDN?`` model field.

    Attributes:
        name: model as ``*IDN?`` reports it.
        channels: number of output channels.
        max_frequency: highest pulse frequency, Hz (the shortest period is its inverse).
        min_width: shortest pulse width, s; also width <= period - ``min_width``.
        min_edge, max_edge: pulse edge time range, s.
        max_level_50ohm, max_vpp_50ohm: largest |level| and peak-to-peak into 50 ohm, V
            (doubled for ``OUTP:LOAD INF``).
        max_period: longest pulse period, s.
    """

    name: str
    channels: int
    max_frequency: float
    min_width: float = 16e-9
    min_edge: float = 8.4e-9
    max_edge: float = 1e-6
    max_level_50ohm: float = 5.0
    max_vpp_50ohm: float = 10.0
    max_period: float = 1e6

    def max_level(self, load: float) -> float:
        """Largest |VOLT:HIGH|, |VOLT:LOW| for the declared load (ohm; ``inf`` = high-Z), V."""
        return self.max_level_50ohm * (2.0 if load == float("inf") else 1.0)

    def max_vpp(self, load: float) -> float:
        return self.max_vpp_50ohm * (2.0 if load == float("inf") else 1.0)


def _model(name: str, channels: int, mhz: float) -> GeneratorModel:
    return GeneratorModel(name, channels, mhz * 1e6)


#: 33500B Series (20 MHz and 30 MHz models; one or two channels).
GENERATOR_MODELS = {
    m.name: m for m in (
        _model("33509B", 1, 20), _model("33510B", 2, 20), _model("33511B", 1, 20), _model("33512B", 2, 20),
        _model("33519B", 1, 30), _model("33520B", 2, 30), _model("33521B", 1, 30), _model("33522B", 2, 30),
    )
}
_ERROR = re.compile(r'([+-]?\d+),("[^"]*")')


def parse_error(reply: str) -> tuple[int, str]:
    """``SYST:ERR?`` reply ``+0,"No error"`` -> (code, message)."""
    m = _ERROR.fullmatch(reply.strip())
    if m is None:
        raise ProtocolError(f"33500B: unparsable SYST:ERR? reply {reply!r}")
    return int(m.group(1)), m.group(2).strip('"')


class WaveformGenerator(Instrument):
    """Driver of one channel of a 33500B-series generator used as a single-pulse source.

    Args:
        transport: the generator's transport (write/read termination LF).
        limits: the bench's safety limits, checked before any byte is sent.
        channel: output channel (1 or 2 on a two-channel model).
        edge: leading and trailing edge time, s.
        load: declared load, ohm (``float('inf')``: high impedance, ``OUTP:LOAD INF``).
        trigger: ``"BUS"`` (``*TRG``) or ``"EXT"`` (rear-panel trigger input).

    Constructor traffic (``n`` the channel)::

        > *IDN?     < Agilent Technologies,33522B,MY...,<firmware>
        > *RST;*CLS
        > OUTPn OFF;OUTPn:LOAD INF;SOURn:FUNC PULS;SOURn:PULS:TRAN:LEAD <e>;SOURn:PULS:TRAN:TRA <e>;
          SOURn:BURS:MODE TRIG;SOURn:BURS:NCYC 1;TRIGn:SOUR BUS;SOURn:BURS:STAT ON;
          OUTPn:POL NORM;SOURn:VOLT:HIGH <h>;SOURn:VOLT:LOW 0   (one message)
        > SYST:ERR? < +0,"No error"
        > OUTPn ON
    """

    label = "33500B"

    def __init__(self, transport: Transport, limits: SafetyLimits, channel: int = 1, edge: float = 10e-9, load: float = float("inf"), trigger: str = "BUS") -> None:
        channel = integer("generator channel", channel, 1, 2)
        edge = real("PULS:TRAN edge", edge)
        if isinstance(load, bool) or not isinstance(load, (int, float)) or not (load == float("inf") or 1.0 <= load <= 1e4):
            raise ValueError(f"OUTP:LOAD: load = {load!r} must be 1..10000 ohm or inf (high impedance)")
        if trigger not in ("BUS", "EXT"):
            raise ValueError(f"TRIG:SOUR {trigger!r} not allowed; choose 'BUS' or 'EXT'")
        super().__init__(transport)
        self.limits = limits
        self.channel = channel
        self.load = float(load)
        self.trigger = trigger
        self.identity = transport.query("*IDN?", idempotent=True).strip()
        fields = [x.strip() for x in self.identity.split(",")]
        name = fields[1] if len(fields) >= 2 else ""
        if name not in GENERATOR_MODELS:
            raise InstrumentError(f"33500B: *IDN? model {name!r} is not in the model table {sorted(GENERATOR_MODELS)}")
        self.model = GENERATOR_MODELS[name]
        if channel > self.model.channels:
            raise ValueError(f"{name} has {self.model.channels} channel(s); channel {channel} does not exist")
        in_range("PULS:TRAN", "edge", edge, self.model.min_edge, self.model.max_edge, "s")
        self.edge = edge
        self._levels: tuple[float, float, str] = (0.0, 0.0, "")
        self._width: float | None = None  # None: the next pulse sends its width
        self._wire_width = 100e-6  # width the instrument holds (*RST default, Operating Guide p. 69)
        n = channel
        transport.write("*RST;*CLS")
        load_text = "INF" if self.load == float("inf") else f(self.load)
        high = min(0.1, limits.max_v_pulse)
        self._guarded(
            f"OUTP{n} OFF;OUTP{n}:LOAD {load_text};SOUR{n}:FUNC PULS;SOUR{n}:PULS:TRAN:LEAD {f(edge)};"
            f"SOUR{n}:PULS:TRAN:TRA {f(edge)};SOUR{n}:BURS:MODE TRIG;SOUR{n}:BURS:NCYC 1;TRIG{n}:SOUR {trigger};"
            f"SOUR{n}:BURS:STAT ON;OUTP{n}:POL NORM;SOUR{n}:VOLT:HIGH {f(high)};SOUR{n}:VOLT:LOW {f(0.0)}"
        )
        self._levels = (high, 0.0, "NORM")
        self.check_errors()
        self._guarded(f"OUTP{n} ON")

    # ------------------------------------------------------------------ errors
    def check_errors(self) -> None:
        """Read ``SYST:ERR?`` until it reports 0; outputs off and InstrumentError if it held any."""
        drain_error_queue(lambda: self.transport.query("SYST:ERR?"), parse_error, self.switch_off_after_failure, "33500B error queue")

    # ------------------------------------------------------------------ checks
    def pulse_setup(self, peak: float, width: float) -> tuple[float, float, float, str]:
        """Validate one pulse of ``peak`` (V, either sign) and ``width`` (s); returns
        (period, high, low, polarity) as they go on the wire."""
        peak, width = real("pulse peak", peak), real("PULS:WIDT width", width)
        m = self.model
        self.limits.check_pulse(peak, width)
        if peak == 0.0:
            raise SafetyLimitError("VOLT:HIGH/LOW: a 0 V pulse has VOLT:HIGH = VOLT:LOW (settings conflict)")
        if self.edge + self.edge > width:
            raise SafetyLimitError(f"PULS:WIDT: width = {width:.6g} s shorter than its two edges ({self.edge:.3g} s each)")
        period = max(1.0 / m.max_frequency, 2.0 * (width + 2.0 * self.edge))
        in_range("PULS:PER", "period", period, 1.0 / m.max_frequency, m.max_period, "s")
        in_range("PULS:WIDT", "width", width, m.min_width, period - m.min_width, "s")
        v = m.max_level(self.load)
        in_range("VOLT:HIGH/LOW", "peak", peak, -v, v, "V")
        in_range("VOLT", "peak-to-peak", abs(peak), 0.0, m.max_vpp(self.load), "Vpp")
        high, low, pol = (peak, 0.0, "NORM") if peak > 0 else (0.0, peak, "INV")
        return period, high, low, pol

    def _level_commands(self, high: float, low: float, pol: str) -> list[str]:
        """Commands from the held levels to (``high``, ``low``, ``pol``) that never move the
        resting level (VOLT:LOW in normal, VOLT:HIGH in inverted polarity) on a connected cell:
        within one polarity only the pulse level changes; a polarity change happens with the
        output relay open (``OUTPn OFF`` ... ``OUTPn ON``). HIGH > LOW holds at every step."""
        n = self.channel
        cur_high, cur_low, cur_pol = self._levels
        lo, hi = f"SOUR{n}:VOLT:LOW {f(low)}", f"SOUR{n}:VOLT:HIGH {f(high)}"
        if pol == cur_pol:
            return [c for c, changed in ((hi, high != cur_high), (lo, low != cur_low)) if changed][:: 1 if low >= cur_high else -1]
        ordered = [lo, hi] if low < cur_high else [hi, lo]
        return [f"OUTP{n} OFF", f"OUTP{n}:POL {pol}", *ordered, f"OUTP{n} ON"]

    # ------------------------------------------------------------------ pulses
    def pulse(self, peak: float, width: float) -> None:
        """Fire one pulse of ``peak`` (V; < 0 a negative pulse) and ``width`` (s); wait for it.

        Not retried (it programs). A failure switches the output off before re-raising.
        """
        period, high, low, pol = self.pulse_setup(peak, width)
        n = self.channel
        try:
            changes = []
            if self._width != width:
                per, wid = f"SOUR{n}:PULS:PER {f(period)}", f"SOUR{n}:PULS:WIDT {f(width)}"
                # keep width < period - min width at every step: shrink the width first
                changes += [wid, per] if width < self._wire_width else [per, wid]
            if self._levels != (high, low, pol):
                changes += self._level_commands(high, low, pol)
            if changes:
                self._width = None
                self._levels = (high, low, pol)  # what the instrument holds if it accepted them
                code, message = parse_error(self.transport.query(";".join(changes + ["SYST:ERR?"])))
                if code != 0:
                    self._levels = (float("nan"), float("nan"), "")
                    raise InstrumentError(f"33500B refused the pulse setup (width {width:.3g} s, peak {peak:.3g} V): {code} {message}")
                self._width = self._wire_width = width
            if self.trigger == "BUS":
                reply = self.transport.query("*TRG;*OPC?").strip()
                if reply != "1":
                    raise ProtocolError(f"33500B: *OPC? answered {reply!r}")
        except BaseException:
            self.switch_off_after_failure()
            raise

    def output_on(self) -> bool:
        """Output state (``OUTPn?``)."""
        reply = self.transport.query(f"OUTP{self.channel}?", idempotent=True).strip()
        if reply not in ("0", "1"):
            raise ProtocolError(f"33500B: unexpected OUTP? reply {reply!r}")
        return reply == "1"

    # ------------------------------------------------------------------ safety
    def _emergency_off(self) -> None:
        self.transport.write(f"OUTP{self.channel} OFF")

    def _safe_idle(self) -> None:
        """Output off (``OUTPn OFF``), confirmed by ``OUTPn?``."""
        self.transport.write(f"OUTP{self.channel} OFF")
        if self.output_on():
            raise InstrumentError("33500B: output still on after OUTP OFF")
