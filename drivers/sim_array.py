"""SimArray: a :class:`~drivers.array.CrossbarArray` on the vectorised physics model.

The fast path for learning runs: direct vectorised calls into
:class:`~drivers.sim.physics.ArrayPhysics`, no protocol. It still validates safety limits,
keeps the bench-time estimate of the instrument timing model, and emits every operation to
the run store. The physics clock follows the bench clock, so devices relax for as long as the
bench would have taken.
"""

from __future__ import annotations

import numpy as np

from drivers.array import CrossbarArray
from drivers.limits import SafetyLimits, peak
from drivers.sim.physics import ArrayPhysics, DeviceParams
from drivers.sim.presets import get_preset
from drivers.technology import Technology
from drivers.timing import BenchTiming


class SimArray(CrossbarArray):
    """Simulated 1T1R array.

    Args:
        shape: (rows, cols).
        physics: device parameters, or a preset name (``"hfo2"``, ``"siox"``).
        seed: seed of the physics model (variability and noise).
        technology: operating conditions (default: the preset's).
        limits: safety limits (default :class:`SafetyLimits`).
        timing: instrument timing model (default :class:`BenchTiming`).
    """

    def __init__(
        self,
        shape: tuple[int, int],
        physics: DeviceParams | str = "hfo2",
        seed: int | None = 0,
        technology: Technology | None = None,
        limits: SafetyLimits | None = None,
        timing: BenchTiming | None = None,
    ) -> None:
        if isinstance(physics, str):
            preset = get_preset(physics)
            physics, technology = preset.physics, technology or preset.technology
        if technology is None:
            technology = get_preset(physics.name).technology
        super().__init__(shape, technology, limits, timing)
        self.seed = seed
        self.model = ArrayPhysics(physics, self.shape, seed)
        self.mvm_count = 0

    def _after_time_advance(self) -> None:
        self.model.advance(self.bench_time - self.model.t)

    def _form(self, idx: np.ndarray, v_pulse: np.ndarray, v_gate: np.ndarray, width: float) -> None:
        self.model.form(idx, v_pulse, v_gate, width)

    def _set(self, idx: np.ndarray, v_gate: np.ndarray, v_pulse: np.ndarray, width: float) -> None:
        self.model.set(idx, v_gate, v_pulse, width)

    def _reset(self, idx: np.ndarray, v_stop: np.ndarray, v_gate: np.ndarray, width: float) -> None:
        self.model.reset(idx, v_stop, v_gate, width)

    def _read(self, idx: np.ndarray, v_read: float) -> np.ndarray:
        return self.model.read(idx, v_read, self.timing.aperture)

    def mvm(self, x: np.ndarray, v_read: float | None = None) -> np.ndarray:
        """Column currents (A) by Kirchhoff summation on the model (one read time per input vector).

        MVMs are counted in ``mvm_count`` but not written to ``/ops`` (they program nothing).
        """
        self._check_open()
        v_read = self.technology.v_read if v_read is None else v_read
        x = np.asarray(x)
        if x.dtype.kind != "f":
            x = x.astype(float)  # single precision stays single: the model sums in MVM_DTYPE
        if x.shape[-1] != self.shape[0]:
            raise ValueError(f"x must have {self.shape[0]} entries on its last axis, got shape {x.shape}")
        self.limits.check_read(peak(x) * v_read)
        n_vectors = int(np.prod(x.shape[:-1])) if x.ndim > 1 else 1
        self.mvm_count += n_vectors
        out = self.model.mvm(x, v_read, self.timing.aperture)
        self.bench_time += n_vectors * self.timing.read_time
        self._after_time_advance()
        return out

    def conductance(self) -> np.ndarray:
        """True (noise-free) conductance map, S, shape (rows, cols). Simulation only."""
        return self.model.conductance().reshape(self.shape)

    def programming_events(self) -> np.ndarray:
        """Programming events per cell (SET + RESET + forming), shape (rows, cols)."""
        return self.model.programming_events()

    def get_state(self) -> tuple[dict[str, np.ndarray], dict]:
        """The simulated devices' state plus the bench clock: (arrays, JSON-ready meta).

        The fixed device-to-device draws are saved only for an unseeded array; a seeded one
        regenerates them, so :meth:`set_state` then needs an array built with the same seed.
        """
        arrays, meta = self.model.get_state(include_fixed=self.seed is None)
        meta.update(bench_time=self.bench_time, mvm_count=self.mvm_count, seed=self.seed)
        return arrays, meta

    def set_state(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        """Continue from a :meth:`get_state` snapshot (same technology, shape and seed)."""
        if "d2d" not in arrays and meta.get("seed") != self.seed:
            raise ValueError(f"state was saved from an array with seed {meta.get('seed')}, this one has seed {self.seed}")
        self.model.set_state(arrays, meta)
        self.bench_time = float(meta["bench_time"])
        self.mvm_count = int(meta.get("mvm_count", 0))

    def identity(self) -> dict[str, str]:
        return {"backend": "sim", "array": f"SimArray {self.model.params.name} {self.shape[0]}x{self.shape[1]} seed={self.seed}"}
