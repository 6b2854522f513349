"""Build the simulated pulse source a bench file's ``[pulser]`` names and wire it to the bench.

* ``b1525a``: a :class:`~drivers.sim.instruments.spgu.SimSpgu` inside the simulated B1500
  (the slot of ``pulser.channel``); it has no port of its own.
* ``33500b``: a :class:`~drivers.sim.instruments.waveform_generator.SimWaveformGenerator`,
  served on its own TCP port.

Either reads the bit-line and gate voltages that the simulated SMU holds at the moment of a
pulse (the cell sees bit line minus source line).
"""

from __future__ import annotations

from collections.abc import Callable

from drivers.bench import BenchConfig
from drivers.sim.instruments.b1500 import MODULES, SimB1500
from drivers.sim.instruments.b2900 import SimB2900
from drivers.sim.instruments.base import Faults, SimInstrument
from drivers.sim.instruments.bench_state import SimBench
from drivers.sim.instruments.spgu import SimSpgu
from drivers.sim.instruments.waveform_generator import SimWaveformGenerator


def smu_line_state(smu: SimInstrument) -> Callable[[], tuple[float, float | None]]:
    """A function returning (bit-line V, gate V or None) as the simulated SMU holds them now."""
    if isinstance(smu, SimB1500):  # FlexChannel: .enabled, .voltage
        bl, gate, on, level = smu.bl, smu.gate, "enabled", "voltage"
    elif isinstance(smu, SimB2900):  # SmuChannel: .output, .level
        bl, gate, on, level = smu.bitline_channel, smu.gate_channel, "output", "level"
    else:
        raise TypeError(f"no line state for {type(smu).__name__}")

    def held(channel: int) -> float:
        c = smu.ch[channel]
        return getattr(c, level) if getattr(c, on) else 0.0

    return lambda: (held(bl), None if gate is None else held(gate))


def attach_sim_pulser(config: BenchConfig, smu: SimInstrument, bench: SimBench, faults: Faults) -> SimInstrument | None:
    """Create the simulated pulse source of ``config`` (``None`` without ``[pulser]``).

    Returns the instrument to serve on its own port (a generator), or ``None`` when there is
    none or it lives inside the SMU's mainframe (an SPGU, attached to ``smu`` here).
    """
    pc = config.pulser
    if pc is None:
        return None
    state = smu_line_state(smu)
    if pc.model == "b1525a":
        slot = pc.channel // 100
        if not isinstance(smu, SimB1500) or slot in MODULES:
            raise ValueError(f"simulated SPGU: slot {slot} must be a free slot of the simulated B1500 (SMUs in {sorted(MODULES)})")
        smu.spgu = SimSpgu(bench, slot, pc.channel, state)
        return None
    return SimWaveformGenerator(bench, pc.channel, state, faults)
