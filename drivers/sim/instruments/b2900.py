"""Simulated Keysight B2900-series SMU (two channels), speaking its SCPI.

Supported subset (short or long forms, channel suffix ``1``/``2`` where the real instrument
has one): ``*IDN? *RST *CLS *OPC? *WAI``, ``:SYST:ERR[:NEXT]? / :ALL? / :COUN?``,
``:SOUR:FUNC:MODE VOLT``, ``:SOUR:FUNC:SHAP DC|PULS``, ``:SOUR:VOLT <v>`` (immediate / pulse
base), ``:SOUR:VOLT:TRIG <v>`` (triggered / pulse peak), ``:SOUR:VOLT:MODE FIX|LIST``,
``:SOUR:LIST:VOLT <v,...>``, ``:SOUR:PULS:WIDT <s>``, ``:SOUR:PULS:DEL <s>``,
``:SENS:CURR:PROT <A>``, ``:SENS:CURR:PROT:TRIP?``, ``:SENS:CURR:APER <s>``,
``:SENS:FUNC "CURR"``, ``:TRIG[:ALL]:COUN|SOUR|TIM``, ``:TRIG:TRAN:DEL``, ``:TRIG:ACQ:DEL``,
``:TRIG:TRAN:TOUT[:STAT] ON|OFF``, ``:TRIG:TRAN:TOUT:SIGN <line>``, ``:INIT [(@1,2)]``,
``:FETC:ARR? [(@n)]`` (the ``:FORM:ELEM:SENS`` elements of every point), ``:FETC:ARR:CURR?``,
``:FETC:ARR:VOLT?``, ``:MEAS:CURR? [(@n)]``, ``:FORM[:DATA] ASC|REAL,64``, ``:FORM:BORD NORM|SWAP``,
``:FORM:ELEM:SENS CURR[,VOLT][,STAT]``, ``:OUTP ON|OFF``, ``:OUTP?``.

It enforces the manual (``drivers/instruments/MANUALS.md``), not the driver's assumptions:
pulse width 50 us..100000 s, aperture 8 us..2 s (out of range: clamped, as the manual states), list up to 2500 points, trigger count
1..100000, timer 20 us..100000 s; a refused command queues its error code (-222 data out of
range, -221 settings conflict, -113 undefined header, ...) and is not executed.

``:INIT`` runs one list (or fixed) sweep of ``TRIG:COUN`` points on the channel wired to the
bit line. The router steps one cell per point only if the bit-line channel's transient trigger
output is on and routed to the line wired to the router (``SimBench.trigger_line``, ``EXT1``);
otherwise every point lands on the cell the router holds, as on a real bench. The gate channel
steps in step with the bit line only if both were initiated together with the same trigger
source, timer, count and delays; otherwise its points run on their own clock. A pulsed sweep
programs; a DC sweep measures. The whole sweep is one vectorised call into the physics (see
:class:`~.bench_state.SimBench`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from drivers.sim.instruments.base import Faults, SimCommandError
from drivers.sim.instruments.bench_state import SimBench
from drivers.sim.instruments.scpi import ScpiInstrument, parse_channel_list, parse_number
from drivers.transport import make_block

#: Largest list the simulated B2900 accepts (points).
MAX_LIST_POINTS = 2500
#: Output range of the simulated SMU, V.
MAX_VOLTAGE = 210.0
#: Compliance range, A.
MAX_COMPLIANCE = 3.03
#: B2902A pulse width, aperture, trigger count and timer ranges (SCPI Command Reference).
MIN_PULSE_WIDTH, MAX_PULSE_WIDTH = 50e-6, 100_000.0
MIN_APERTURE, MAX_APERTURE = 8e-6, 2.0
MAX_COUNT = 100_000
#: Trigger interval of the B2901A/B2902A: 20 us to 100000 s (B2900A Series Data Sheet, p. 17).
MIN_TIMER, MAX_TIMER = 20e-6, 100_000.0
MAX_DELAY = 100_000.0
#: Status word of a point at compliance (``:FORM:ELEM:SENS STAT``): compliance field in bits 1-2
#: set to 1 (Agilent B2900 SCPI Command Reference, Edition 2, p. 1-14, Table 1-2).
STAT_CURRENT_COMPLIANCE = 1 << 1
TRIGGER_SOURCES = ("AINT", "BUS", "TIM", "INT1", "INT2", "LAN") + tuple(f"EXT{k}" for k in range(1, 15))


@dataclass
class SmuChannel:
    """Settings and measurement buffer of one SMU channel (power-on defaults)."""

    output: bool = False
    shape: str = "DC"
    level: float = 0.0
    trig_level: float | None = None
    mode: str = "FIX"
    list_volt: np.ndarray = field(default_factory=lambda: np.zeros(0))
    width: float = 1e-4
    delay: float = 0.0
    compliance: float = 1e-4
    aperture: float = 1e-3
    trig_count: int = 1
    trig_source: str = "AINT"
    timer: float = MIN_TIMER
    tran_delay: float = 0.0
    acq_delay: float = 0.0
    tout: bool = False
    tout_signal: str = "EXT1"
    tripped: bool = False
    buf_status: np.ndarray = field(default_factory=lambda: np.zeros(0))
    buf_current: np.ndarray = field(default_factory=lambda: np.zeros(0))
    buf_voltage: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def points(self, n: int) -> np.ndarray:
        """Source value of each of ``n`` trigger points, V."""
        if self.mode == "LIST":
            if self.list_volt.size != n:
                raise SimCommandError(-221, '"Settings conflict; list length differs from trigger count"')
            return self.list_volt.copy()
        level = self.level if self.trig_level is None else self.trig_level
        return np.full(n, level)


class SimB2900(ScpiInstrument):
    """Simulated B2902A acting on a :class:`SimBench`.

    Args:
        bench: the shared simulated bench.
        bitline_channel: SMU channel wired to the bit line (pulses and reads).
        gate_channel: SMU channel wired to the word-line gate, or ``None`` (router's DAC).
        faults: fault injection.
    """

    idn = "Keysight Technologies,B2902A,SIM00001,3.4.2011.5100"

    def __init__(self, bench: SimBench, bitline_channel: int = 1, gate_channel: int | None = 2, faults: Faults | None = None) -> None:
        super().__init__(faults)
        self.bench = bench
        self.bitline_channel = bitline_channel
        self.gate_channel = gate_channel
        self.reset()

    def reset(self) -> None:
        self.ch = {1: SmuChannel(), 2: SmuChannel()}
        self.form_real = False
        self.swap = False
        self.elements = ("CURR", "VOLT")
        for c in self.ch.values():
            c.output = False

    # ------------------------------------------------------------------ dispatch
    def _chan(self, channel: int | None) -> SmuChannel:
        n = 1 if channel is None else channel
        if n not in self.ch:
            raise SimCommandError(-114, '"Header suffix out of range"')
        return self.ch[n]

    def _command(self, nodes: tuple[str, ...], channel: int | None, query: bool, args: str) -> str | bytes | None:
        err = self._system_error(nodes) if query else None
        if err is not None:
            return err
        head = nodes[0] if nodes else ""
        if head == "SOUR":
            return self._source(nodes[1:], self._chan(channel), query, args)
        if head == "SENS":
            return self._sense(nodes[1:], self._chan(channel), query, args)
        if head == "TRIG":
            return self._trigger(nodes[1:], self._chan(channel), query, args)
        if head == "OUTP":
            c = self._chan(channel)
            if query:
                return "1" if c.output else "0"
            c.output = _on_off(args)
            return None
        if head == "INIT" or nodes == ("INIT", "ALL"):
            chans = parse_channel_list(args) if args else [channel or 1]
            self._initiate(chans)
            return None
        if head == "FETC" and query:
            return self._fetch(nodes[1:], args)
        if head == "MEAS" and query:
            return self._measure(nodes[1:], args)
        if head == "FORM":
            return self._format(nodes[1:], args)
        raise SimCommandError(-113, '"Undefined header"')

    def _source(self, nodes: tuple[str, ...], c: SmuChannel, query: bool, args: str) -> str | None:
        if nodes == ("FUNC", "MODE"):
            if args.upper() not in ("VOLT", "VOLTAGE"):
                raise SimCommandError(-224, '"Illegal parameter value; only voltage sourcing is simulated"')
            return None
        if nodes == ("FUNC", "SHAP"):
            s = args.upper()
            if s not in ("DC", "PULS", "PULSE"):
                raise SimCommandError(-224, '"Illegal parameter value"')
            c.shape = "PULS" if s.startswith("PULS") else "DC"
            return None
        if nodes == ("VOLT",):
            if query:
                return f"{c.level:+.6E}"
            c.level = _volts(args)
            return None
        if nodes == ("VOLT", "TRIG"):
            c.trig_level = _volts(args)
            return None
        if nodes == ("VOLT", "MODE"):
            m = args.upper()
            if m not in ("FIX", "FIXED", "LIST"):
                raise SimCommandError(-224, '"Illegal parameter value"')
            c.mode = "LIST" if m == "LIST" else "FIX"
            return None
        if nodes == ("LIST", "VOLT"):
            values = np.array([_volts(v) for v in args.split(",")]) if args else np.zeros(0)
            if values.size > MAX_LIST_POINTS:
                raise SimCommandError(-223, '"Too much data"')
            c.list_volt = values
            return None
        if nodes == ("PULS", "WIDT"):
            c.width = _in_range(parse_number(args), MIN_PULSE_WIDTH, MAX_PULSE_WIDTH)
            return None
        if nodes == ("PULS", "DEL"):
            c.delay = _in_range(parse_number(args), 0.0, 100.0)
            return None
        raise SimCommandError(-113, '"Undefined header"')

    def _sense(self, nodes: tuple[str, ...], c: SmuChannel, query: bool, args: str) -> str | None:
        if nodes == ("CURR", "PROT"):
            if query:
                return f"{c.compliance:+.6E}"
            c.compliance = _in_range(parse_number(args), 1e-12, MAX_COMPLIANCE)
            return None
        if nodes == ("CURR", "PROT", "TRIP") and query:
            return "1" if c.tripped else "0"
        if nodes == ("CURR", "APER"):
            # Out-of-range apertures are set to MIN/MAX, not refused (Agilent B2900 SCPI Command
            # Reference, Edition 2, p. 4-73, :SENSe:CURRent:APERture).
            c.aperture = float(np.clip(parse_number(args), MIN_APERTURE, MAX_APERTURE))
            return None
        if nodes == ("FUNC",):
            if args.strip('"').upper() not in ("CURR", "CURRENT", "VOLT", "VOLTAGE"):
                raise SimCommandError(-224, '"Illegal parameter value"')
            return None
        raise SimCommandError(-113, '"Undefined header"')

    def _trigger(self, nodes: tuple[str, ...], c: SmuChannel, query: bool, args: str) -> str | None:
        if nodes[:1] == ("ALL",):
            nodes = nodes[1:]
        a = args.strip().upper()
        if nodes == ("COUN",):
            n = parse_number(args)
            if n != int(n) or not 1 <= n <= MAX_COUNT:
                raise SimCommandError(-222, '"Data out of range"')
            c.trig_count = int(n)
        elif nodes == ("SOUR",):
            if a not in TRIGGER_SOURCES:
                raise SimCommandError(-224, '"Illegal parameter value"')
            c.trig_source = a
        elif nodes == ("TIM",):
            c.timer = _in_range(parse_number(args), MIN_TIMER, MAX_TIMER)
        elif nodes == ("TRAN", "DEL"):
            c.tran_delay = _in_range(parse_number(args), 0.0, MAX_DELAY)
        elif nodes == ("ACQ", "DEL"):
            c.acq_delay = _in_range(parse_number(args), 0.0, MAX_DELAY)
        elif nodes in (("TRAN", "TOUT"), ("TRAN", "TOUT", "STAT")):
            c.tout = _on_off(args)
        elif nodes == ("TRAN", "TOUT", "SIGN"):
            if a not in TRIGGER_SOURCES[3:] and a != "TOUT":
                raise SimCommandError(-224, '"Illegal parameter value"')
            c.tout_signal = a
        else:
            raise SimCommandError(-113, '"Undefined header"')
        return None

    def _format(self, nodes: tuple[str, ...], args: str) -> None:
        a = args.upper().replace(" ", "")
        if nodes in ((), ("DATA",)):
            if a in ("ASC", "ASCII"):
                self.form_real = False
            elif a in ("REAL,64", "REAL"):
                self.form_real = True
            else:
                raise SimCommandError(-224, '"Illegal parameter value"')
            return None
        if nodes == ("ELEM", "SENS"):
            elems = tuple(short for short in (e.strip().upper()[:4] for e in args.split(",")) if short)
            if not elems or any(e not in ("CURR", "VOLT", "STAT", "TIME", "RES", "SOUR") for e in elems):
                raise SimCommandError(-224, '"Illegal parameter value"')
            self.elements = elems
            return None
        if nodes == ("BORD",):
            if a not in ("NORM", "NORMAL", "SWAP", "SWAPPED"):
                raise SimCommandError(-224, '"Illegal parameter value"')
            self.swap = a.startswith("SWAP")
            return None
        raise SimCommandError(-113, '"Undefined header"')

    # ------------------------------------------------------------------ actions
    def _initiate(self, chans: list[int]) -> None:
        for n in chans:
            self._chan(n)
        bl = self.ch[self.bitline_channel]
        npts = bl.trig_count
        v_bl = bl.points(npts)
        for n in chans:
            self.ch[n].output = True  # output auto-on at :INIT, as the real instrument
            self.ch[n].tripped = False
        v_gate = None
        if self.gate_channel is not None:
            g = self.ch[self.gate_channel]
            if self.gate_channel in chans:
                v_gate = self._gate_points(g, bl, npts, chans)
            else:
                v_gate = np.full(npts, g.level if g.output else 0.0)
        if self.bitline_channel not in chans:
            return  # only the gate channel stepped: no cell is driven
        if np.any(np.abs(v_bl) > MAX_VOLTAGE):
            raise SimCommandError(-222, '"Data out of range"')
        edges = bl.tout and bl.tout_signal == self.bench.trigger_line
        period = bl.timer if bl.trig_source == "TIM" else 0.0
        if bl.shape == "PULS":
            current, tripped = self.bench.pulse_points(v_bl, v_gate, bl.width, bl.compliance, edges)
            self.busy_time += npts * max(period, bl.tran_delay + bl.delay + bl.width)
        else:
            current, tripped = self.bench.measure_points(v_bl, v_gate, bl.aperture, bl.compliance, edges)
            self.busy_time += npts * max(period, bl.acq_delay + bl.aperture)
        bl.buf_current, bl.buf_voltage, bl.tripped = current, v_bl, bool(np.any(tripped))
        bl.buf_status = np.where(tripped, STAT_CURRENT_COMPLIANCE, 0).astype(float)

    def _gate_points(self, g: SmuChannel, bl: SmuChannel, npts: int, chans: list[int]) -> np.ndarray:
        """Gate level at each bit-line point. In step only when both channels share the
        trigger set-up (Programming Guide, synchronizing channels); otherwise the gate runs on
        its own: with its own timer, or (not timer-triggered) straight to its last point."""
        values = g.points(g.trig_count)
        same = (g.trig_source, g.timer, g.trig_count, g.tran_delay, g.acq_delay) == (
            bl.trig_source, bl.timer, bl.trig_count, bl.tran_delay, bl.acq_delay)
        if same and bl.trig_source == "TIM":
            return values
        if g.trig_source == "TIM" and bl.trig_source == "TIM":
            k = np.floor(np.arange(npts) * bl.timer / g.timer).astype(np.int64)
            return values[np.minimum(k, values.size - 1)]
        return np.full(npts, values[-1])

    def _fetch(self, nodes: tuple[str, ...], args: str) -> str | bytes:
        chans = parse_channel_list(args) if args else [1]
        if len(chans) != 1:
            raise SimCommandError(-108, '"Parameter not allowed; one channel per fetch in the simulator"')
        c = self._chan(chans[0])
        if c.buf_current.size == 0:
            raise SimCommandError(-230, '"Data corrupt or stale; no data"')
        if nodes == ("ARR", "CURR"):
            data = c.buf_current
        elif nodes == ("ARR", "VOLT"):
            data = c.buf_voltage
        elif nodes == ("ARR",):
            cols = {"CURR": c.buf_current, "VOLT": c.buf_voltage, "STAT": c.buf_status}
            if any(e not in cols for e in self.elements):
                raise SimCommandError(-221, '"Settings conflict; element not simulated"')
            data = np.stack([cols[e] for e in self.elements], axis=1).reshape(-1)
        else:
            raise SimCommandError(-113, '"Undefined header"')
        return self._encode(data)

    def _measure(self, nodes: tuple[str, ...], args: str) -> str | bytes:
        if nodes != ("CURR",):
            raise SimCommandError(-113, '"Undefined header"')
        chans = parse_channel_list(args) if args else [1]
        if chans != [self.bitline_channel]:
            raise SimCommandError(-108, '"Parameter not allowed"')
        c = self.ch[self.bitline_channel]
        c.output = True
        v_gate = None
        if self.gate_channel is not None:
            g = self.ch[self.gate_channel]
            v_gate = np.array([g.level if g.output else 0.0])
        current, tripped = self.bench.measure_points(np.array([c.level]), v_gate, c.aperture, c.compliance)
        c.tripped = bool(np.any(tripped))
        self.busy_time += c.aperture
        return self._encode(current)

    def _encode(self, data: np.ndarray) -> str | bytes:
        if self.form_real:
            fmt = "<" if self.swap else ">"
            return make_block(struct.pack(f"{fmt}{data.size}d", *data.astype(float)))
        return ",".join(f"{v:+.6E}" for v in data)


def _on_off(args: str) -> bool:
    a = args.strip().upper()
    if a in ("ON", "1"):
        return True
    if a in ("OFF", "0"):
        return False
    raise SimCommandError(-224, '"Illegal parameter value"')


def _volts(text: str) -> float:
    v = parse_number(text)
    if abs(v) > MAX_VOLTAGE:
        raise SimCommandError(-222, '"Data out of range"')
    return v


def _in_range(value: float, low: float, high: float) -> float:
    if not low <= value <= high:
        raise SimCommandError(-222, '"Data out of range"')
    return value
