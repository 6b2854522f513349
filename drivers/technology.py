"""What the host knows about a memristor technology: operating conditions and its window.

A :class:`Technology` is the user's datasheet of a 1T1R technology: recommended pulse
conditions, the reachable conductance window, the nominal access transistor (gate voltage to
compliance current) and nominal multi-level targets. Both the simulated array and the bench
array carry one. The *physics* of a simulated device lives separately in
:mod:`drivers.sim.physics`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Transistor:
    """Square-law access transistor in saturation: ``I_C = k/2 * (V_G - V_th)^2``.

    Attributes:
        v_th: threshold voltage, V.
        k: transconductance parameter, A/V^2.
    """

    v_th: float
    k: float

    def compliance(self, v_gate: float | np.ndarray) -> np.ndarray:
        """Compliance current I_C (A) for gate voltage(s) ``v_gate`` (V); 0 below threshold."""
        overdrive = np.maximum(np.asarray(v_gate, dtype=float) - self.v_th, 0.0)
        return 0.5 * self.k * overdrive**2

    def gate_for(self, compliance: float | np.ndarray) -> np.ndarray:
        """Gate voltage (V) that gives compliance current(s) ``compliance`` (A)."""
        i_c = np.asarray(compliance, dtype=float)
        if np.any(i_c < 0):
            raise ValueError("compliance must be >= 0 A")
        return self.v_th + np.sqrt(2.0 * i_c / self.k)


@dataclass(frozen=True)
class Technology:
    """Operating conditions of a 1T1R technology (all SI units).

    Attributes:
        name: short name (``"hfo2"``, ``"siox"``, or a bench's own).
        transistor: nominal access transistor.
        v_read: read voltage, V.
        v_form: forming pulse amplitude, V.
        v_gate_form: gate voltage during forming, V.
        width_form: forming pulse width, s.
        v_set: SET pulse amplitude, V.
        width_set: SET pulse width, s.
        v_stop: default RESET stop voltage (negative), V.
        v_gate_reset: gate voltage during RESET (transistor fully on), V.
        width_reset: RESET pulse width, s.
        v_gate_min, v_gate_max: gate range usable for SET, V.
        g_window: (low, high) conductance reachable by programming, S.
        levels: nominal multi-level conductance targets, S, ascending.
        reference: where these numbers come from.
    """

    name: str
    transistor: Transistor
    v_read: float
    v_form: float
    v_gate_form: float
    width_form: float
    v_set: float
    width_set: float
    v_stop: float
    v_gate_reset: float
    width_reset: float
    v_gate_min: float
    v_gate_max: float
    g_window: tuple[float, float]
    levels: tuple[float, ...] = field(default=())
    reference: str = ""

    def level_targets(self, n_levels: int) -> np.ndarray:
        """``n_levels`` target conductances (S), ascending.

        Uses the technology's nominal levels when their count matches; otherwise spreads the
        levels evenly in conductance over the programmable window.
        """
        if n_levels < 2:
            raise ValueError(f"levels must be >= 2, got {n_levels}")
        if len(self.levels) == n_levels:
            return np.asarray(self.levels, dtype=float)
        low, high = self.g_window
        return np.linspace(low, high, n_levels)
