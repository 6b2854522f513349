"""The simulated bench: one physics model shared by the simulated SMU and router.

The SMU sources and measures; the router (switch matrix or array board) decides which cell
each source/measure *point* reaches, and the array board can also supply the gate voltage
from its DAC. :class:`SimBench` holds the shared :class:`~drivers.sim.physics.ArrayPhysics`,
the bench clock and the router, and turns a whole list of points into **one vectorised
physics call** (the same call, in the same order, that :class:`~drivers.sim_array.SimArray`
makes for one masked operation; that is what lets a bench run match a ``SimArray`` run
exactly).

Clock: every point costs ``route_settle + pulse_overhead + width`` (a pulse) or
``route_settle + read_overhead + aperture`` (a measurement) of bench time, accumulated with
the same arithmetic as :meth:`drivers.array.CrossbarArray._account`; the physics clock
follows it (devices relax meanwhile).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Protocol

import numpy as np

from drivers.sim.physics import ArrayPhysics
from drivers.technology import Technology
from drivers.timing import BenchTiming

log = logging.getLogger(__name__)

#: Current of an addressed-but-open path (no cell connected), A.
I_OPEN = 0.0


class SimRouter(Protocol):
    """What a simulated router tells the bench about a run of ``n`` source/measure points."""

    def point_cells(self, n: int, edges: bool = False) -> np.ndarray:
        """Flat cell index reached by each of the next ``n`` points (-1: no cell); advances.
        ``edges``: the SMU sends the router one trigger edge at the start of each point."""

    def point_gates(self, n: int, edges: bool = False) -> np.ndarray | None:
        """Gate voltage (V) the router itself applies at each of the next ``n`` points, or
        ``None`` when the gate comes from an SMU channel. Does not advance (call before
        :meth:`point_cells`)."""


class SimBench:
    """Shared state of a simulated 1T1R bench.

    Args:
        physics: the array model.
        technology: operating conditions (the transistor maps gate voltage to compliance).
        timing: the instrument timing model (same values as the host's bench file).
    """

    def __init__(self, physics: ArrayPhysics, technology: Technology, timing: BenchTiming | None = None) -> None:
        self.physics = physics
        self.technology = technology
        self.timing = timing or BenchTiming()
        self.router: SimRouter | None = None
        #: Digital I/O line of the SMU wired to the router's trigger input.
        self.trigger_line = "EXT1"
        self.bench_time = 0.0
        self.points = 0  # source/measure points executed

    @property
    def shape(self) -> tuple[int, int]:
        return self.physics.shape

    def attach_router(self, router: SimRouter) -> None:
        self.router = router

    def _advance(self, per_point: float, n: int) -> None:
        # Same arithmetic as CrossbarArray._account + SimArray._after_time_advance.
        self.bench_time += per_point * n
        self.physics.advance(self.bench_time - self.physics.t)

    def _cells(self, n: int, edges: bool) -> tuple[np.ndarray, np.ndarray | None]:
        if self.router is None:
            return np.full(n, -1), None
        gates = self.router.point_gates(n, edges)
        return np.asarray(self.router.point_cells(n, edges)), gates

    # ------------------------------------------------------------------ operations
    def pulse_points(
        self, v_pulse: np.ndarray, v_gate: np.ndarray | None, width: float, compliance: float, edges: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Apply one pulse per point (points in order) and return (current at the peak, tripped
        per point).

        Args:
            v_pulse: pulse amplitude per point, V (> 0 SET/forming, < 0 RESET, 0 nothing).
            v_gate: gate voltage per point from an SMU channel, V (``None``: the router's DAC).
            width: pulse width, s.
            compliance: the SMU's current compliance, A.

        A positive pulse on a cell that is not yet formed is counted as a forming event (the
        instrument cannot know the user's intent; the device's state decides).
        """
        n = v_pulse.size
        cells, router_gates = self._cells(n, edges)
        gates = router_gates if router_gates is not None else v_gate
        if gates is None:
            gates = np.zeros(n)
        ok = cells >= 0
        current = np.zeros(n)
        tripped = np.zeros(n, bool)
        tr = self.technology.transistor
        p = self.physics
        for sign in (1, -1):
            sel = ok & (np.sign(v_pulse) == sign)
            if not np.any(sel):
                continue
            idx, vp, vg = cells[sel], v_pulse[sel], np.asarray(gates, dtype=float)[sel]
            g = p.conductance(idx)
            if sign > 0:
                i_c = tr.compliance(vg)
                clamp = compliance < i_c  # the SMU, not the transistor, limits the current
                vg_eff = np.where(clamp, tr.gate_for(np.minimum(compliance, i_c)), vg)
                i_peak = np.minimum(np.minimum(g * vp, i_c), compliance)
                tripped[sel] = np.minimum(g * vp, i_c) > compliance
                was_formed = p.formed[idx].copy()
                p.set(idx, vg_eff, vp, width)
                first = ~was_formed  # forming pulses: count them as such
                p.n_set[idx[first]] -= 1
                p.n_form[idx[first]] += 1
            else:
                i_need = g * np.abs(vp)
                clamp = i_need > compliance  # the source sags to hold the compliance
                vs_eff = np.where(clamp, -compliance / np.maximum(g, 1e-30), vp)
                i_peak = -np.minimum(i_need, compliance)
                tripped[sel] = clamp
                p.reset(idx, vs_eff, vg, width)
            current[sel] = i_peak
        self.points += n
        self._advance(self.timing.route_settle + self.timing.pulse_time(width), n)
        return current, tripped

    def measure_points(
        self, v_read: np.ndarray, v_gate: np.ndarray | None, aperture: float, compliance: float, edges: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Measure the current of one cell per point at ``v_read`` (V); returns (A, tripped per point).

        One vectorised :meth:`ArrayPhysics.read` call per distinct read voltage. A cell whose
        transistor is off (gate below threshold) conducts nothing.
        """
        n = v_read.size
        cells, router_gates = self._cells(n, edges)
        gates = router_gates if router_gates is not None else v_gate
        ok = cells >= 0
        current = np.full(n, I_OPEN)
        for v in np.unique(v_read[ok]):
            sel = ok & (v_read == v)
            if v == 0:
                continue
            g = self.physics.read(cells[sel], float(v), aperture)
            current[sel] = g * v
        if gates is not None:
            on = self.technology.transistor.compliance(np.asarray(gates, dtype=float)) > 0
            current = np.where(on, current, I_OPEN)
        tripped = np.abs(current) > compliance
        current = np.clip(current, -compliance, compliance)
        self.points += n
        timing = replace(self.timing, aperture=float(np.clip(aperture, BenchTiming.MIN_APERTURE, BenchTiming.MAX_APERTURE)))
        self._advance(timing.route_settle + timing.read_time, n)
        return current, tripped
