"""BenchArray: a :class:`~drivers.array.CrossbarArray` made of an SMU and a router, and the
bench TOML file it is built from.

Wiring (see ``examples/bench-*.toml``):
    * SMU ``bitline_channel`` on the bit line: pulses (SET > 0 V, RESET < 0 V, forming) and reads.
    * The word-line gate: SMU ``gate_channel``, or the array board's gate DAC when the SMU has
      no gate channel. The gate voltage sets the compliance through the access transistor.
    * The router connects the cell: an array board (serial) or a switch matrix (SCPI).

Two execution paths:
    * **List path** (B2900 + array board): a batch of up to ``batch`` cells is one cell list on
      the board and one list sweep on the SMU. One pulse+verify iteration over a batch costs
      2 round trips: the board's ``LOAD`` (skipped when the same list is still armed) and the
      SMU's compound fetch. The pulse sweep itself is write-only; its errors surface in the
      error count of the next fetch. The SMU's trigger output (``:TRIG:TRAN:TOUT`` on
      ``smu.trigger_line``) must be wired to the board's trigger input: one edge at the start
      of each point, so the list is loaded rotated by one (see :meth:`BenchArray._route_list`).
      The edge timing is taken from the manual's description and not verified on hardware.
    * **Per-cell path** (switch matrix, or a B1500): for every cell, route (one round trip:
      the router confirms), then pulse or measure. With a gate SMU channel, a pulse waits until
      the next read of its cell and both go in one round trip (``smu.pulse_and_read``): 2 round
      trips per cell and iteration; pulses no read takes are fired before anything else
      (another pulse on the cell, :meth:`BenchArray.wait`, close). An error raised by a
      deferred pulse surfaces from the read that fires it.

Configuration is validated into typed objects before any instrument is touched; a bad field
raises :class:`BenchConfigError` naming the field, the value and the allowed range.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from drivers.array import CrossbarArray
from drivers.limits import SafetyLimits
from drivers.pulse_source import PulserConfig, cell_to_pulse_amplitude, make_pulser, parse_pulser
from drivers.sim.presets import PRESETS
from drivers.technology import Technology, Transistor
from drivers.timing import BenchTiming
from drivers.tomlfile import read_toml
from drivers.transport import SerialTransport, Transport, VisaTransport

log = logging.getLogger(__name__)


class BenchConfigError(ValueError):
    """A bench file field is missing or out of range (names the field, value and range)."""


# ---------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class InstrumentConfig:
    """One instrument: model, resource string and transport settings.

    Attributes:
        model: ``"b2900"``, ``"b1500"``, ``"array_board"`` or ``"switch_matrix"``.
        resource: VISA resource string or serial port.
        backend: pyvisa backend (``""`` default VISA library, ``"@py"`` pyvisa-py).
        timeout: reply timeout, s.
        retries: retries of idempotent queries after a transient failure.
        baudrate: serial line rate (array board), baud.
        bitline_channel, gate_channel: SMU channels (``gate_channel`` 0 = none).
        dac_vref: array board gate-DAC full scale, V.
        bitline_port, gate_port, ground_port: switch-matrix input ports.
        bitline_first, wordline_first, sourceline_first: switch-matrix output port of bit
            line 0, word line 0 and source line 0.
        card: switch-matrix card number (0 = auto configuration).
        read_termination, write_termination: message terminations; ``""`` takes the
            instrument's documented default (:data:`DEFAULT_TERMINATIONS`).
        trigger_line: B2900 digital I/O line of the trigger output wired to the router.
    """

    model: str
    resource: str
    backend: str = ""
    timeout: float = 5.0
    retries: int = 2
    baudrate: int = 115200
    bitline_channel: int = 1
    gate_channel: int = 2
    dac_vref: float = 5.0
    bitline_port: int = 1
    gate_port: int = 2
    ground_port: int = 3
    bitline_first: int = 1
    wordline_first: int = 9
    sourceline_first: int = 17
    card: int = 0
    read_termination: str = ""
    write_termination: str = ""
    trigger_line: str = "EXT1"

    def terminations(self) -> tuple[str, str]:
        """(read, write) terminations: the bench file's, else the model's documented default."""
        read, write = DEFAULT_TERMINATIONS[self.model]
        return self.read_termination or read, self.write_termination or write


#: Documented default terminations (read, write) per model: the B2900 ends messages in LF
#: (Programming Guide, "Message terminator"); FLEX output data of the B1500 end in CR/LF
#: (Programming Guide, "Data Output Format"), its input accepts LF; the B2200A/E5250A use LF;
#: the array board's protocol (firmware/array_board/PROTOCOL.md) ends lines in LF.
DEFAULT_TERMINATIONS = {"b2900": ("\n", "\n"), "b1500": ("\r\n", "\n"), "switch_matrix": ("\n", "\n"), "array_board": ("\n", "\n")}
_TERMINATIONS = ("", "\n", "\r\n", "\r")


@dataclass(frozen=True)
class SimConfig:
    """Settings read only by ``hil sim-server``: the simulated devices and where to serve."""

    physics: str = "hfo2"
    seed: int = 0
    host: str = "127.0.0.1"
    smu_port: int = 5025
    router_port: int = 5026
    pulser_port: int = 5027
    pty_link: str = ""
    state_file: str = ""
    p_timeout: float = 0.0
    p_garble: float = 0.0
    p_error: float = 0.0
    fault_seed: int = 12345


@dataclass(frozen=True)
class BenchConfig:
    """A validated bench file."""

    name: str
    shape: tuple[int, int]
    technology: Technology
    smu: InstrumentConfig
    router: InstrumentConfig
    limits: SafetyLimits
    timing: BenchTiming
    batch: int = 1000
    read_compliance: float = 1e-3
    pulse_compliance: float = 1e-3
    v_gate_read: float | None = None
    wait: str = "sleep"
    sim: SimConfig = field(default_factory=SimConfig)
    source: str = ""
    pulser: PulserConfig | None = None

    def as_dict(self) -> dict[str, Any]:
        """The whole bench as parsed (instruments, wiring, limits, timing, operating conditions,
        simulation settings), JSON-ready: infinities become the string ``"inf"``."""
        return _json_ready(asdict(self))


def _json_ready(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return str(obj)
    return obj


_SMU_MODELS = ("b2900", "b1500")
_ROUTER_MODELS = ("array_board", "switch_matrix")


def _num(section: dict[str, Any], name: str, where: str, low: float, high: float, default: float | None = None, unit: str = "", integer: bool = False) -> Any:
    if name not in section:
        if default is None:
            raise BenchConfigError(f"{where}.{name} is missing (allowed range [{low:g}, {high:g}] {unit})".rstrip())
        return default
    value = section[name]
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or not (low <= value <= high):
        kind = "an integer" if integer else "a number"
        raise BenchConfigError(f"{where}.{name} = {value!r} is not {kind} in the allowed range [{low:g}, {high:g}] {unit}".rstrip())
    return int(value) if integer else float(value)


def _str(section: dict[str, Any], name: str, where: str, choices: tuple[str, ...] | None = None, default: str | None = None) -> str:
    if name not in section:
        if default is None:
            raise BenchConfigError(f"{where}.{name} is missing" + (f" (one of {list(choices)})" if choices else ""))
        return default
    value = section[name]
    if not isinstance(value, str) or (choices is not None and value not in choices):
        raise BenchConfigError(f"{where}.{name} = {value!r} is not allowed" + (f"; choose one of {list(choices)}" if choices else "; expected a string"))
    return value


def _table(data: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    """The optional table ``[name]`` of ``data`` ({} when absent); BenchConfigError if it is not a table."""
    section = data.get(name, {})
    if not isinstance(section, dict):
        raise BenchConfigError(f"{where} = {section!r} is not allowed; allowed: a table ([{where}] with key = value lines)")
    return section


def _check_keys(section: dict[str, Any], where: str, allowed: set[str]) -> None:
    unknown = set(section) - allowed
    if unknown:
        raise BenchConfigError(f"{where}: unknown field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")


def _instrument(section: Any, where: str, models: tuple[str, ...]) -> InstrumentConfig:
    if not isinstance(section, dict):
        raise BenchConfigError(f"[{where}] section is missing")
    _check_keys(section, where, {f.name for f in fields(InstrumentConfig)})
    model = _str(section, "model", where, models)
    return InstrumentConfig(
        model=model,
        resource=_str(section, "resource", where),
        backend=_str(section, "backend", where, default=""),
        timeout=_num(section, "timeout", where, 0.01, 600.0, 5.0, "s"),
        retries=_num(section, "retries", where, 0, 10, 2, integer=True),
        baudrate=_num(section, "baudrate", where, 300, 4_000_000, 115200, "baud", integer=True),
        bitline_channel=_num(section, "bitline_channel", where, 1, 10, 1, integer=True),
        gate_channel=_num(section, "gate_channel", where, 0, 10, 2 if model == "b2900" else 0, integer=True),
        dac_vref=_num(section, "dac_vref", where, 0.1, 20.0, 5.0, "V"),
        bitline_port=_num(section, "bitline_port", where, 1, 14, 1, integer=True),
        gate_port=_num(section, "gate_port", where, 1, 14, 2, integer=True),
        ground_port=_num(section, "ground_port", where, 1, 14, 3, integer=True),
        bitline_first=_num(section, "bitline_first", where, 1, 48, 1, integer=True),
        wordline_first=_num(section, "wordline_first", where, 1, 48, 9, integer=True),
        sourceline_first=_num(section, "sourceline_first", where, 1, 48, 17, integer=True),
        card=_num(section, "card", where, 0, 4, 0, integer=True),
        read_termination=_str(section, "read_termination", where, _TERMINATIONS, ""),
        write_termination=_str(section, "write_termination", where, _TERMINATIONS, ""),
        trigger_line=_str(section, "trigger_line", where, tuple(f"EXT{k}" for k in range(1, 15)), "EXT1"),
    )


def _technology(section: dict[str, Any]) -> Technology:
    from drivers.sim.presets import PRESETS  # preset operating conditions (datasheet values)

    name = _str(section, "technology", "bench", tuple(PRESETS) + ("custom",))
    tech_overrides = _table(section, "operating", "bench.operating")
    if name == "custom":
        base = None
    else:
        base = PRESETS[name].technology
    ranges = {
        "v_read": (0.01, 1.0), "v_form": (0.1, 10.0), "v_gate_form": (0.0, 10.0), "width_form": (1e-9, 1.0),
        "v_set": (0.1, 10.0), "width_set": (1e-9, 1.0), "v_stop": (-10.0, -0.1), "v_gate_reset": (0.0, 10.0),
        "width_reset": (1e-9, 1.0), "v_gate_min": (0.0, 10.0), "v_gate_max": (0.0, 10.0),
        "v_th": (0.0, 5.0), "k": (1e-7, 1.0),
    }
    _check_keys(tech_overrides, "bench.operating", set(ranges) | {"g_window"})
    values = {}
    for key, (lo, hi) in ranges.items():
        default = None
        if base is not None:
            default = base.transistor.v_th if key == "v_th" else base.transistor.k if key == "k" else getattr(base, key)
        values[key] = _num(tech_overrides, key, "bench.operating", lo, hi, default)
    if "g_window" in tech_overrides:
        gw = tech_overrides["g_window"]
        if not (isinstance(gw, list) and len(gw) == 2 and all(isinstance(x, (int, float)) for x in gw) and 0 < gw[0] < gw[1] < 1):
            raise BenchConfigError(f"bench.operating.g_window = {gw!r} must be [low, high] S with 0 < low < high < 1")
        g_window = (float(gw[0]), float(gw[1]))
    elif base is not None:
        g_window = base.g_window
    else:
        raise BenchConfigError("bench.operating.g_window is missing (needed for technology = 'custom')")
    if values["v_gate_min"] > values["v_gate_max"]:
        raise BenchConfigError(f"bench.operating.v_gate_min = {values['v_gate_min']} exceeds v_gate_max = {values['v_gate_max']}")
    return Technology(
        name=name if base is not None else "custom",
        transistor=Transistor(values.pop("v_th"), values.pop("k")),
        g_window=g_window,
        levels=base.levels if base is not None and "g_window" not in tech_overrides else (),
        reference=(base.reference if base is not None else "bench file"),
        **values,
    )


def parse_bench(data: dict[str, Any], source: str = "") -> BenchConfig:
    """Validate a parsed bench file into a :class:`BenchConfig` (touches no instrument)."""
    _check_keys(data, "bench file", {"bench", "smu", "router", "limits", "timing", "sim", "pulser"})
    bench = data.get("bench")
    if not isinstance(bench, dict):
        raise BenchConfigError("[bench] section is missing")
    _check_keys(bench, "bench", {"name", "shape", "technology", "operating", "batch", "read_compliance", "pulse_compliance", "v_gate_read", "wait"})
    shape = bench.get("shape")
    if not (isinstance(shape, list) and len(shape) == 2 and all(isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= 1024 for x in shape)):
        raise BenchConfigError(f"bench.shape = {shape!r} must be [rows, cols] with 1 <= rows, cols <= 1024")
    technology = _technology(bench)

    limits_section = _table(data, "limits", "limits")
    _check_keys(limits_section, "limits", {f.name for f in fields(SafetyLimits)})
    lim_ranges = {"max_v_pulse": (0.01, 20.0, "V"), "max_v_gate": (0.01, 10.0, "V"), "max_v_read": (0.001, 2.0, "V"),
                  "max_compliance": (1e-9, 0.1, "A"), "max_width": (1e-9, 10.0, "s"), "min_width": (1e-10, 1.0, "s")}
    default_limits = SafetyLimits()
    lim = {k: _num(limits_section, k, "limits", lo, hi, getattr(default_limits, k), unit) for k, (lo, hi, unit) in lim_ranges.items()}
    if lim["min_width"] > lim["max_width"]:
        raise BenchConfigError(f"limits.min_width = {lim['min_width']:g} s exceeds limits.max_width = {lim['max_width']:g} s")
    limits = SafetyLimits(**lim)

    timing_section = _table(data, "timing", "timing")
    _check_keys(timing_section, "timing", {"aperture", "read_overhead", "pulse_overhead", "route_settle"})
    dt = BenchTiming()
    timing = BenchTiming(
        aperture=_num(timing_section, "aperture", "timing", BenchTiming.MIN_APERTURE, BenchTiming.MAX_APERTURE, dt.aperture, "s"),
        read_overhead=_num(timing_section, "read_overhead", "timing", 0.0, 1.0, dt.read_overhead, "s"),
        pulse_overhead=_num(timing_section, "pulse_overhead", "timing", 0.0, 1.0, dt.pulse_overhead, "s"),
        route_settle=_num(timing_section, "route_settle", "timing", 0.0, 1.0, dt.route_settle, "s"),
    )

    smu = _instrument(data.get("smu"), "smu", _SMU_MODELS)
    router = _instrument(data.get("router"), "router", _ROUTER_MODELS)
    pulser = parse_pulser(data.get("pulser"), smu.model, router.model, BenchConfigError, _num, _str, _check_keys)
    if pulser is not None and "pulse_overhead" not in timing_section:
        timing = replace(timing, pulse_overhead=pulser.pulse_overhead)  # the pulse source's timing model
    sim_section = _table(data, "sim", "sim")
    _check_keys(sim_section, "sim", {f.name for f in fields(SimConfig)})
    sim = SimConfig(
        physics=_str(sim_section, "physics", "sim", tuple(sorted(PRESETS)), technology.name if technology.name in PRESETS else "hfo2"),
        seed=_num(sim_section, "seed", "sim", 0, 2**32 - 1, 0, integer=True),
        host=_str(sim_section, "host", "sim", default="127.0.0.1"),
        smu_port=_num(sim_section, "smu_port", "sim", 0, 65535, 5025, integer=True),
        router_port=_num(sim_section, "router_port", "sim", 0, 65535, 5026, integer=True),
        pulser_port=_num(sim_section, "pulser_port", "sim", 0, 65535, 5027, integer=True),
        pty_link=_str(sim_section, "pty_link", "sim", default=""),
        state_file=_str(sim_section, "state_file", "sim", default=""),
        p_timeout=_num(sim_section, "p_timeout", "sim", 0.0, 0.5, 0.0),
        p_garble=_num(sim_section, "p_garble", "sim", 0.0, 0.5, 0.0),
        p_error=_num(sim_section, "p_error", "sim", 0.0, 0.5, 0.0),
        fault_seed=_num(sim_section, "fault_seed", "sim", 0, 2**32 - 1, 12345, integer=True),
    )
    config = BenchConfig(
        name=_str(bench, "name", "bench", default=Path(source).stem if source else "bench"),
        shape=(shape[0], shape[1]),
        technology=technology,
        smu=smu,
        router=router,
        limits=limits,
        timing=timing,
        batch=_num(bench, "batch", "bench", 1, 2500, 1000, integer=True),
        read_compliance=_num(bench, "read_compliance", "bench", 1e-9, limits.max_compliance, min(1e-3, limits.max_compliance), "A"),
        pulse_compliance=_num(bench, "pulse_compliance", "bench", 1e-9, limits.max_compliance, min(1e-3, limits.max_compliance), "A"),
        v_gate_read=_num(bench, "v_gate_read", "bench", 0.0, limits.max_v_gate, min(technology.v_gate_reset, limits.max_v_gate), "V"),
        wait=_str(bench, "wait", "bench", ("sleep", "clock"), "sleep"),
        sim=sim,
        source=source,
        pulser=pulser,
    )
    if smu.model == "b2900" and smu.gate_channel not in (0, 1, 2):
        raise BenchConfigError(f"smu.gate_channel = {smu.gate_channel} is not allowed for a B2900; choose 1, 2 or 0 (none)")
    if smu.gate_channel == smu.bitline_channel:
        raise BenchConfigError(f"smu.gate_channel = {smu.gate_channel} equals smu.bitline_channel")
    if smu.gate_channel == 0 and router.model != "array_board":
        raise BenchConfigError("smu.gate_channel = 0 (no gate channel) needs router.model = 'array_board' (its gate DAC drives the gate)")
    if technology.v_read > limits.max_v_read:
        raise BenchConfigError(f"bench.operating.v_read = {technology.v_read} V exceeds limits.max_v_read = {limits.max_v_read} V")
    _check_smu_pulse_widths(config)
    return config


def _check_smu_pulse_widths(config: BenchConfig) -> None:
    """When the SMU fires the pulses, the operating widths must be ones its manual allows
    (every B2900 model: >= 50 us; the B1500's SMU modules: >= their shortest ``PT`` width);
    with a pulse source, the ones its model table allows."""
    if config.pulser is not None:
        from drivers.instruments.b1525a_spgu import SPGU_MODELS
        from drivers.instruments.waveform_generator import GENERATOR_MODELS

        table = SPGU_MODELS if config.pulser.model == "b1525a" else GENERATOR_MODELS
        low, what = min(m.min_width for m in table.values()), f"the {config.pulser.model} pulse source's shortest width"
    elif config.smu.model == "b2900":
        from drivers.instruments.b2900 import MODELS

        low, what = min(m.min_pulse_width for m in MODELS.values()), "the B2900's shortest pulse"
    else:
        from drivers.instruments.b1500 import SMU_MODELS

        low, what = min(m.min_pulse_width for m in SMU_MODELS.values()), "the B1500 SMUs' shortest PT width"
    t = config.technology
    for name in ("width_set", "width_reset", "width_form"):
        if getattr(t, name) < low:
            raise BenchConfigError(
                f"bench.operating.{name} = {getattr(t, name):g} s is below {what} ({low:g} s); allowed range "
                f"[{low:g}, {config.limits.max_width:g}] s"
            )


def load_bench(path: str | Path, overrides: dict[str, dict[str, Any]] | None = None) -> BenchConfig:
    """Read and validate a bench TOML file; ``overrides`` replace fields per section."""
    data = read_toml(path, "bench file", BenchConfigError)
    for section, values in (overrides or {}).items():
        _table(data, section, section)
        data.setdefault(section, {}).update(values)
    return parse_bench(data, str(path))


# ---------------------------------------------------------------------------------- roles
class Router(Protocol):
    shape: tuple[int, int]
    identity: str

    def select(self, row: int, col: int) -> None: ...

    def close(self) -> None: ...


# ---------------------------------------------------------------------------------- BenchArray
class BenchArray(CrossbarArray):
    """A 1T1R array on the bench: an SMU (B2900 or B1500) and a router (array board or
    switch matrix), each over its own :class:`~drivers.transport.Transport`.

    Args:
        shape: (rows, cols) of the array under test.
        technology: operating conditions (``v_read``, default pulse conditions, transistor).
        smu: a :class:`~drivers.instruments.b2900.B2900` or :class:`~drivers.instruments.b1500.B1500`.
        router: an :class:`~drivers.instruments.array_board.ArrayBoard` or
            :class:`~drivers.instruments.switch_matrix.SwitchMatrix`.
        limits, timing: safety limits and timing model.
        batch: cells per list sweep (list path).
        read_compliance, pulse_compliance: SMU compliances during reads and pulses, A (the
            gate sets the cell's own compliance during a SET; the SMU's is a backstop).
        v_gate_read: gate voltage during reads, V (transistor fully on).
        wait: what :meth:`wait` does: ``"sleep"`` lets the time really pass (a real bench:
            devices relax); ``"clock"`` only advances the bench clock (a simulated bench: its
            instruments' own clock advances with their operations only, so devices do not
            relax during host-side waits, unlike :class:`~drivers.sim_array.SimArray`).
    """

    #: the validated bench file the array was opened from (:meth:`from_config`), else None
    bench_config: BenchConfig | None = None

    def __init__(
        self,
        shape: tuple[int, int],
        technology: Technology,
        smu: Any,
        router: Any,
        limits: SafetyLimits | None = None,
        timing: BenchTiming | None = None,
        batch: int = 1000,
        read_compliance: float = 1e-3,
        pulse_compliance: float = 1e-3,
        v_gate_read: float | None = None,
        wait: str = "sleep",
        pulser: Any = None,
        pulser_config: PulserConfig | None = None,
    ) -> None:
        super().__init__(shape, technology, limits, timing)
        if wait not in ("sleep", "clock"):
            raise ValueError(f"wait must be 'sleep' or 'clock', got {wait!r}")
        self.wait_mode = wait
        rshape = getattr(router, "shape", None)
        if rshape is not None and (shape[0] > rshape[0] or shape[1] > rshape[1]):
            raise ValueError(f"array {shape} does not fit the router's {rshape}")
        self.smu = smu
        self.router = router
        self.batch = int(batch)
        self.limits.check_compliance(read_compliance)
        self.limits.check_compliance(pulse_compliance)
        self.read_compliance = float(read_compliance)
        self.pulse_compliance = float(pulse_compliance)
        self.v_gate_read = float(technology.v_gate_reset if v_gate_read is None else v_gate_read)
        self.limits.check_gate(self.v_gate_read)
        from drivers.instruments.array_board import ArrayBoard
        from drivers.instruments.b2900 import B2900

        self._board = router if isinstance(router, ArrayBoard) else None
        self._list_path = isinstance(smu, B2900) and self._board is not None
        self._smu_gate = getattr(smu, "gate", None) is not None
        # A write-only pulse sweep may still run on the SMU: the router must not change under it.
        self._smu_busy = False
        if pulser is not None and pulser_config is None:
            raise ValueError("a pulse source needs its PulserConfig (wiring)")
        self.pulser = pulser
        self.pulser_config = pulser_config
        # Per-cell path with an SMU that pulses and verifies in one round trip (a gate SMU
        # channel, no list path): pulses wait here and are fired with the next read of their cell (one route and
        # one round trip per cell and iteration), or flushed before anything else. Not with a
        # pulse source: it fires the pulses.
        self._defer = (not self._list_path) and self._smu_gate and hasattr(smu, "pulse_and_read") and pulser is None
        self._pending: dict[int, tuple[float, float, float]] = {}

    def _sync(self) -> None:
        """Wait for a pending SMU sweep (one round trip) before anything changes under it."""
        if self._smu_busy:
            self.smu.wait_idle()
            self._smu_busy = False

    def _route_list(self, rows: np.ndarray, cols: np.ndarray, gates: np.ndarray | None) -> None:
        """Arm the board's cell list, first waiting for a pending sweep if the list changes.

        The SMU sends the board one trigger edge at the start of each list point, and the board
        applies entry ``k`` after ``k`` edges: so the list is loaded rotated by one (cell ``j``
        at entry ``j + 1``, the last cell at entry 0). After a whole sweep the board is back at
        entry 0, ready for the next sweep over the same cells.
        """
        rows, cols = np.roll(rows, 1), np.roll(cols, 1)
        gates = None if gates is None else np.roll(gates, 1)
        if self._smu_busy and not self._board.is_loaded(rows, cols, gates):
            self.smu.wait_idle()
            self._smu_busy = False
        self._board.load_cells(rows, cols, gates)

    def _route_cell(self, row: int, col: int) -> None:
        self._sync()
        self.router.select(row, col)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, config: BenchConfig, transports: dict[str, Transport] | None = None) -> BenchArray:
        """Open the instruments of a validated bench file and build the array.

        Args:
            config: from :func:`load_bench`.
            transports: ready transports for ``"smu"``/``"router"`` (e.g. in-process
                simulated ones); the others are opened from the resource strings.
        """
        transports = dict(transports or {})
        opened: list[Any] = []  # closed in reverse order if the start fails
        try:
            smu_t = transports.get("smu") or _open_transport(config.smu)
            opened.append(smu_t)
            router_t = transports.get("router") or _open_transport(config.router)
            opened.append(router_t)
            smu = _make_smu(config, smu_t)
            opened.insert(1, smu)
            router = _make_router(config, router_t)
            opened.append(router)
            pulser = None
            if config.pulser is not None:
                pc = config.pulser
                pulser_t = smu_t if pc.shares_smu_transport else (transports.get("pulser") or _open_transport(pc))
                if pulser_t is not smu_t:
                    opened.append(pulser_t)
                pulser = make_pulser(pc, config.limits, pulser_t)
                opened.append(pulser)
            array = cls(
                config.shape, config.technology, smu, router, config.limits, config.timing,
                config.batch, config.read_compliance, config.pulse_compliance, config.v_gate_read, config.wait,
                pulser, config.pulser,
            )
            array.bench_config = config  # the validated bench file, recorded in run files (hil.provenance)
            return array
        except BaseException:
            for inst in reversed(opened):
                try:
                    inst.close()
                except Exception as exc:  # pragma: no cover - best effort
                    log.error("closing %s after a failed start: %s", type(inst).__name__, exc)
            raise

    # ------------------------------------------------------------------ hooks
    def _rows_cols(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.divmod(idx, self.shape[1])

    def _batches(self, n: int) -> list[slice]:
        return [slice(i, min(i + self.batch, n)) for i in range(0, n, self.batch)]

    def _flush_pending(self) -> None:
        """Fire the deferred pulses that no read has taken yet (route + pulse per cell)."""
        pending, self._pending = self._pending, {}
        try:
            for flat, (vp, vg, w) in pending.items():
                self._route_cell(*divmod(flat, self.shape[1]))
                self.smu.pulse_one(vp, vg, w, self.pulse_compliance)
                self._smu_busy = hasattr(self.smu, "wait_idle")  # a write-only pulse may still run
        except BaseException:
            self._after_failure()
            raise

    def _pulse(self, idx: np.ndarray, v_pulse: np.ndarray, v_gate: np.ndarray, width: float) -> None:
        rows, cols = self._rows_cols(idx)
        if self._defer:
            if any(int(i) in self._pending for i in idx):
                self._flush_pending()  # two pulses on one cell keep their order
            for k in range(idx.size):  # refuse now what the instrument would refuse later
                self.smu.check_pulse(float(v_pulse[k]), float(v_gate[k]), width, self.pulse_compliance)
            self._pending.update((int(i), (float(vp), float(vg), float(width))) for i, vp, vg in zip(idx, v_pulse, v_gate))
            return
        try:
            if self.pulser is not None:
                self._pulse_with_pulser(rows, cols, v_pulse, v_gate, width)
            elif self._list_path:
                for s in self._batches(idx.size):
                    self._route_list(rows[s], cols[s], None if self._smu_gate else v_gate[s])
                    self.smu.pulse_list(v_pulse[s], width, self.pulse_compliance, v_gate[s] if self._smu_gate else None)
                    self._smu_busy = True
            else:
                for k in range(idx.size):
                    self._route_cell(int(rows[k]), int(cols[k]))
                    if not self._smu_gate:
                        self._board.set_gate(float(v_gate[k]))
                    self.smu.pulse_one(float(v_pulse[k]), float(v_gate[k]) if self._smu_gate else None, width, self.pulse_compliance)
                    self._smu_busy = hasattr(self.smu, "wait_idle")
        except BaseException:
            self._after_failure()
            raise

    def _pulse_with_pulser(self, rows: np.ndarray, cols: np.ndarray, v_pulse: np.ndarray, v_gate: np.ndarray, width: float) -> None:
        """Per cell: route, hold the bit line at 0 V and the gate at ``v_gate`` on the SMU, fire
        the pulse source; the error queues are read once at the end of the batch.

        A pulse source on its own link races the SMU: a write to the SMU may still be queued
        when the source fires, and the pulse would meet the previous cell's gate voltage (the
        wrong compliance). So the SMU's levels are confirmed (one round trip) before every pulse
        unless the source rides in the same message (an SPGU on the B1500's link)."""
        smu = self.smu
        for k in range(rows.size):
            self._route_cell(int(rows[k]), int(cols[k]))
            amplitude = cell_to_pulse_amplitude(self.pulser_config, float(v_pulse[k]))
            if not self._smu_gate:  # the array board's gate DAC (the board confirms)
                self._board.set_gate(float(v_gate[k]))
            if hasattr(smu, "dv_command"):  # B1500: DV bit line 0 V and gate ride with the SPGU's SRP
                holds = [smu.dv_command(smu.bl, 0.0, self.pulse_compliance)]
                if self._smu_gate:
                    holds.append(smu.dv_command(smu.gate, float(v_gate[k]), self.limits.max_compliance))
                if self.pulser_config.shares_smu_transport:
                    self.pulser.pulse(amplitude, width, before=";".join(holds))
                    continue
                smu._checked(";".join(holds))  # executed (ERRX? answered) before the pulse fires
            else:  # B2900: both channels in one message, confirmed by *OPC? before the pulse fires
                smu.hold_voltages({smu.bl: 0.0, **({smu.gate: float(v_gate[k])} if self._smu_gate else {})}, confirm=True)
            self.pulser.pulse(amplitude, width)
        self.pulser.check_errors()
        if not self.pulser_config.shares_smu_transport:  # the SMU's own queue (an SPGU's ERRX? is the B1500's)
            smu.check_errors()

    def _after_failure(self) -> None:
        """Any failure mid-operation: SMU outputs off, the board's list cache void, deferred
        pulses dropped (the run stops with the error)."""
        self._pending.clear()
        if self._board is not None:
            self._board.forget_list()
        if self.pulser is not None:
            self.pulser.switch_off_after_failure()
        self.smu.switch_off_after_failure()
        self._smu_busy = False

    def _form(self, idx: np.ndarray, v_pulse: np.ndarray, v_gate: np.ndarray, width: float) -> None:
        self._pulse(idx, v_pulse, v_gate, width)

    def _set(self, idx: np.ndarray, v_gate: np.ndarray, v_pulse: np.ndarray, width: float) -> None:
        self._pulse(idx, v_pulse, v_gate, width)

    def _reset(self, idx: np.ndarray, v_stop: np.ndarray, v_gate: np.ndarray, width: float) -> None:
        self._pulse(idx, v_stop, v_gate, width)

    def _read(self, idx: np.ndarray, v_read: float) -> np.ndarray:
        rows, cols = self._rows_cols(idx)
        current = np.empty(idx.size)
        aperture = self.timing.aperture
        try:
            if self._list_path:
                for s in self._batches(idx.size):
                    n = s.stop - s.start
                    self._route_list(rows[s], cols[s], None if self._smu_gate else np.full(n, self.v_gate_read))
                    current[s] = self.smu.measure_list(n, v_read, aperture, self.read_compliance, self.v_gate_read if self._smu_gate else None)
                    self._smu_busy = False  # the fetch returned: the SMU has finished everything before it
            else:
                if not self._smu_gate:
                    self._sync()
                    self._board.set_gate(self.v_gate_read)
                gate = self.v_gate_read if self._smu_gate else None
                for k in range(idx.size):
                    self._route_cell(int(rows[k]), int(cols[k]))
                    p = self._pending.pop(int(idx[k]), None)
                    if p is None:
                        current[k] = self.smu.read_one(v_read, gate, aperture, self.read_compliance)
                    else:
                        current[k] = self.smu.pulse_and_read(p[0], p[1], p[2], self.pulse_compliance, v_read, gate, aperture, self.read_compliance)
                    self._smu_busy = False
        except BaseException:
            self._after_failure()
            raise
        return current / v_read

    def wait(self, seconds: float) -> None:
        """Let ``seconds`` pass: really (``wait="sleep"``, outputs as they are) or on the clock only."""
        self._flush_pending()
        super().wait(seconds)
        if self.wait_mode == "sleep":
            self._sync()
            end = time.monotonic() + float(seconds)
            while (left := end - time.monotonic()) > 0:
                time.sleep(min(left, 0.5))

    def _close(self) -> None:
        errors = []
        if self._pending:
            try:
                self._flush_pending()
            except Exception as exc:
                errors.append(exc)
                log.error("firing the deferred pulses before closing: %s", exc)
        for inst in ((self.pulser,) if self.pulser is not None else ()) + (self.smu, self.router):
            try:
                inst.close()
            except Exception as exc:
                errors.append(exc)
                log.error("closing %s: %s", type(inst).__name__, exc)
        if errors:
            raise errors[0]

    def identity(self) -> dict[str, str]:
        ids = {"backend": "bench", "smu": self.smu.identity, "router": self.router.identity}
        if self.pulser is not None:
            ids["pulser"] = self.pulser.identity
        return ids


# ---------------------------------------------------------------------------------- factories
def _open_transport(cfg: InstrumentConfig | PulserConfig) -> Transport:
    read, write = cfg.terminations()
    if cfg.model == "array_board":
        return SerialTransport(cfg.resource, baudrate=cfg.baudrate, timeout=cfg.timeout, retries=cfg.retries, read_termination=read, write_termination=write)
    return VisaTransport(cfg.resource, backend=cfg.backend, timeout=cfg.timeout, retries=cfg.retries, read_termination=read, write_termination=write)


def _make_smu(config: BenchConfig, transport: Transport) -> Any:
    cfg = config.smu
    gate = cfg.gate_channel or None
    if cfg.model == "b2900":
        from drivers.instruments.b2900 import B2900

        return B2900(transport, config.limits, cfg.bitline_channel, gate, settle=config.timing.route_settle, trigger_line=cfg.trigger_line)
    from drivers.instruments.b1500 import B1500

    return B1500(transport, config.limits, cfg.bitline_channel, gate)


def _make_router(config: BenchConfig, transport: Transport) -> Any:
    cfg = config.router
    if cfg.model == "array_board":
        from drivers.instruments.array_board import ArrayBoard

        board = ArrayBoard(transport, config.limits, cfg.dac_vref, external_gate=config.smu.gate_channel != 0)
        if config.shape[0] > board.shape[0] or config.shape[1] > board.shape[1]:
            board.close()
            raise BenchConfigError(f"bench.shape = {list(config.shape)} exceeds the board's {board.shape[0]}x{board.shape[1]} array")
        return board
    from drivers.instruments.switch_matrix import MatrixWiring, SwitchMatrix

    wiring = MatrixWiring(
        card=cfg.card, bitline_port=cfg.bitline_port, gate_port=cfg.gate_port, ground_port=cfg.ground_port,
        bitline_first=cfg.bitline_first, wordline_first=cfg.wordline_first, sourceline_first=cfg.sourceline_first,
    )
    return SwitchMatrix(transport, wiring, config.shape)


def open_bench(path: str | Path, overrides: dict[str, dict[str, Any]] | None = None) -> BenchArray:
    """Validate a bench file, then open its instruments: the one-call way to a bench array."""
    return BenchArray.from_config(load_bench(path, overrides))


BenchArray.from_toml = staticmethod(open_bench)  # type: ignore[attr-defined]
