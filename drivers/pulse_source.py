"""The pulse source of a bench: its ``[pulser]`` section, its driver, and its place in the wiring.

A bench file may name a pulse source beside the SMU::

    [pulser]
    model = "b1525a"        # the B1500's SPGU (programmed over the mainframe's transport)
    channel = 501           # SPGU channel: slot x 100 + 1 or 2
    # model = "33500b"      # a 33500B-series generator on its own resource
    # resource = "TCPIP::192.168.1.60::5025::SOCKET"
    # channel = 1
    line = "source"         # the pulse source drives the source lines (matrix ground input)
    edge = 1e-8             # s, leading and trailing edge
    load = "inf"            # declared load: "inf" (high impedance) or ohm
    pulse_overhead = 2e-4   # s, bench time per pulse beyond its width (default: the model's)

Roles on such a bench: the SMU holds the bit line (0 V during a pulse, ``v_read`` during a
read) and drives the gate; the pulse source fires SET and RESET pulses on the source line of
the routed cell, so a cell voltage ``v`` (bit line minus source line) is a source-line pulse of
``-v``; between pulses it rests at 0 V and serves as the source-line ground of reads (through
its output impedance, 50 ohm: below 1 % of any cell resistance above 5 kohm). The router is
the switch matrix, its ``ground_port`` input wired to the pulse source output, or the array
board, its source-line ground terminal wired to the pulse source output (the board's ``SEL``
connects the cell's source line to it; the gate comes from the SMU or the board's DAC).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drivers.limits import SafetyLimits
from drivers.timing import PULSE_SOURCE_OVERHEAD
from drivers.transport import Transport

PULSER_MODELS = ("b1525a", "33500b")
PULSER_LINES = ("source",)


@dataclass(frozen=True)
class PulserConfig:
    """A validated ``[pulser]`` section (see the module docstring)."""

    model: str
    resource: str = ""
    backend: str = ""
    timeout: float = 5.0
    retries: int = 2
    channel: int = 1
    line: str = "source"
    edge: float = 10e-9
    load: float = float("inf")
    trigger: str = "BUS"
    pulse_overhead: float = 0.0

    def terminations(self) -> tuple[str, str]:
        """(read, write) terminations: LF both ways (33500B Operating and Service Guide, SCPI
        reference: commands and responses end in a line feed). The SPGU uses the B1500's."""
        return "\n", "\n"

    @property
    def shares_smu_transport(self) -> bool:
        """The SPGU is programmed through the B1500 mainframe (no transport of its own)."""
        return self.model == "b1525a"


def parse_pulser(section: Any, smu_model: str, router_model: str, error: type[ValueError],
                 num: Any, text: Any, check_keys: Any) -> PulserConfig | None:
    """Validate the ``[pulser]`` section (``None`` when absent); the helpers are the bench
    file's own field readers, so the errors read like every other bench-file error."""
    if section is None:
        return None
    if not isinstance(section, dict):
        raise error("[pulser] must be a table")
    check_keys(section, "pulser", set(PulserConfig.__dataclass_fields__))
    model = text(section, "model", "pulser", PULSER_MODELS)
    if model == "b1525a" and smu_model != "b1500":
        raise error(f"pulser.model = 'b1525a' (the B1500's SPGU) needs smu.model = 'b1500', not {smu_model!r}")
    if model == "33500b":
        resource = text(section, "resource", "pulser")
        channel = num(section, "channel", "pulser", 1, 2, 1, integer=True)
    else:
        if "resource" in section:
            raise error("pulser.resource: the b1525a SPGU is programmed through the B1500's resource; remove it")
        resource = ""
        channel = num(section, "channel", "pulser", 101, 1002, 501, integer=True)
        if channel % 100 not in (1, 2):
            raise error(f"pulser.channel = {channel} is not an SPGU channel (slot x 100 + 1 or 2)")
    load_raw = section.get("load", "inf")
    if isinstance(load_raw, str) and load_raw.lower() == "inf":
        load = float("inf")
    else:
        load = num(section, "load", "pulser", 1.0, 1e6, None, "ohm")
    return PulserConfig(
        model=model,
        resource=resource,
        backend=text(section, "backend", "pulser", default=""),
        timeout=num(section, "timeout", "pulser", 0.01, 600.0, 5.0, "s"),
        retries=num(section, "retries", "pulser", 0, 10, 2, integer=True),
        channel=channel,
        line=text(section, "line", "pulser", PULSER_LINES, "source"),
        edge=num(section, "edge", "pulser", 1e-9, 1e-3, 10e-9, "s"),
        load=load,
        trigger=text(section, "trigger", "pulser", ("BUS", "EXT"), "BUS"),
        pulse_overhead=num(section, "pulse_overhead", "pulser", 0.0, 1.0, PULSE_SOURCE_OVERHEAD[model], "s"),
    )


def make_pulser(cfg: PulserConfig, limits: SafetyLimits, transport: Transport) -> Any:
    """The pulse-source driver for ``cfg`` on ``transport`` (the B1500's for an SPGU)."""
    if cfg.model == "b1525a":
        from drivers.instruments.b1525a_spgu import B1525A

        return B1525A(transport, limits, cfg.channel, load_impedance=min(cfg.load, 1e6), edge=cfg.edge)
    from drivers.instruments.waveform_generator import WaveformGenerator

    return WaveformGenerator(transport, limits, cfg.channel, edge=cfg.edge, load=cfg.load, trigger=cfg.trigger)


def cell_to_pulse_amplitude(cfg: PulserConfig, v_cell: float) -> float:
    """Pulse-source amplitude (V) that puts ``v_cell`` (bit line minus source line) on a cell."""
    return -v_cell if cfg.line == "source" else v_cell
