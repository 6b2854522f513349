"""The weights of a QNN held in memristor arrays: program changed levels, read back, cache.

One array per layer (shape from the mapping, e.g. (n_in, n_out) for an offset reference). The
host keeps a cache of the *measured* conductances; the forward pass uses them, mapped back to
weights (:mod:`hil.mapping`).

Programming and read-back policy (stated, configurable):

* **Initialisation**: every cell is formed, then every weight is programmed to its level by
  program-and-verify with a generous pulse cap (``init_max_pulses``). Cells that still fail
  (stuck from fabrication, unformable) are marked defective and never programmed again; their
  measured value (clamped by the mapping) is used.
* **During training**: the learner reports which weights changed level. Those cells are
  accumulated and programmed by program-and-verify (``mask`` = the changed, non-defective
  cells) every ``program_every`` minibatches (1 = after every step). The final verify reads of
  the program-and-verify report replace those cells' cached conductances: the re-programmed
  cells are read back at every programming. Cells that miss the tolerance within
  ``max_pulses`` stay pending and are programmed again at the next programming.
* **Retiring dead cells** (``retire_after`` = K > 0): a cell whose program-and-verify does not
  converge (its whole pulse cap spent without a verify read inside the window) in K consecutive
  sessions is marked defective, like a cell that failed the initial programming: it is never
  programmed or refreshed again and its measured conductance stays in use. A cell worn out at
  LRS or HRS otherwise costs its whole pulse cap at every programming. Off (0) by default.
* **Every epoch** (drift / relaxation policy): the whole array is read; the cache becomes that
  read, and cells whose read lies outside ``refresh_tolerance`` of their level's target are
  re-programmed (and re-read).

Every program-and-verify session of a cell after the initial programming is counted in one of
three kinds (:data:`SESSION_KINDS`, per cell and in total, with their pulses): ``level`` — the
weight changed level; ``retry`` — the cell missed the tolerance at its previous session and its
level has not changed since; ``refresh`` — the epoch read found it drifted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from drivers.array import CrossbarArray
from hil.program import program_cells, program_verify

log = logging.getLogger(__name__)

#: Kinds of programming session after the initial programming (see the module docstring).
SESSION_KINDS = ("level", "retry", "refresh")


@dataclass(frozen=True)
class ProgrammingPolicy:
    """Program-and-verify and read-back settings.

    Attributes:
        tolerance: relative program-and-verify tolerance.
        max_pulses: pulse cap per cell and programming during training.
        init_max_pulses: pulse cap of the initial programming (decides which cells are defective).
        program_every: minibatches between programmings of the changed cells.
        refresh_tolerance: relative deviation at the epoch read that triggers a re-program.
        v0: V; first gate guess from ``I_C = G * v0`` (the 1T1R LRS law), minus ``gate_backoff``.
        gate_backoff: V below the estimated gate to start the IGVVA ramp.
        strategy: program-and-verify strategy name.
        retire_after: consecutive unconverged sessions after which a cell is retired
            (marked defective); 0 never retires.
    """

    tolerance: float = 0.05
    max_pulses: int = 20
    init_max_pulses: int = 100
    program_every: int = 1
    refresh_tolerance: float = 0.10
    v0: float = 0.4
    gate_backoff: float = 0.02
    strategy: str = "igvva"
    retire_after: int = 0


class DeviceWeights:
    """Layer weights stored in arrays, with the cached measured conductances.

    Args:
        arrays: one array per layer, shapes ``mapping.array_shape(n_in, n_out)``.
        mapping: weight <-> conductance mapping.
        policy: :class:`ProgrammingPolicy`.
    """

    def __init__(self, arrays: list[CrossbarArray], mapping, policy: ProgrammingPolicy) -> None:
        self.arrays = arrays
        self.mapping = mapping
        self.policy = policy
        self.g_cache: list[np.ndarray] = [np.full(a.shape, np.nan) for a in arrays]
        self.defective: list[np.ndarray] = [np.zeros(a.shape, bool) for a in arrays]
        self.pending: list[np.ndarray] = [np.zeros(a.shape, bool) for a in arrays]
        #: program-and-verify sessions per cell after initialisation (level changes + refreshes)
        self.reprogrammed: list[np.ndarray] = [np.zeros(a.shape, np.int32) for a in arrays]
        #: the same sessions per cell split by kind: kind -> per layer (rows, cols) int32
        self.sessions: dict[str, list[np.ndarray]] = {k: [np.zeros(a.shape, np.int32) for a in arrays] for k in SESSION_KINDS}
        #: programming pulses of those sessions, by kind
        self.pulses_by_kind: dict[str, int] = {k: 0 for k in SESSION_KINDS}
        #: cells that missed the tolerance at their last session (their next one is a retry)
        self.missed: list[np.ndarray] = [np.zeros(a.shape, bool) for a in arrays]
        #: consecutive sessions per cell that ended without convergence (``retire_after``)
        self.unconverged: list[np.ndarray] = [np.zeros(a.shape, np.int32) for a in arrays]
        #: cells retired during training (marked defective after ``retire_after`` sessions)
        self.retired = 0
        self._weights: list[np.ndarray] = [np.zeros(0, np.float32)] * len(arrays)
        self._buffers: dict[int, np.ndarray] = {}
        self.programmings = 0  # program-and-verify calls
        self.cells_programmed = 0
        self.pulses = 0
        self.failures = 0

    # ------------------------------------------------------------------ programming
    def _first_guess(self, array: CrossbarArray, targets: np.ndarray) -> np.ndarray:
        g = np.nan_to_num(targets, nan=array.technology.g_window[0])
        return array.technology.transistor.gate_for(g * self.policy.v0) - self.policy.gate_backoff

    def _program(self, layer: int, level_idx: np.ndarray, cells: np.ndarray, refresh: bool = False) -> np.ndarray:
        """Program ``cells`` of ``layer`` to their levels; returns the cells that missed the tolerance.

        The sessions are counted as ``refresh`` when ``refresh``, else as ``retry`` for cells
        that missed at their previous session and ``level`` for the others.

        A per-layer buffer holds the target map; program-and-verify itself runs on the list of
        cells (:func:`hil.program.program_cells`), so its cost follows the number of cells that
        changed level, not the array's size.
        """
        array = self.arrays[layer]
        cells = cells & ~self.defective[layer]
        flat = np.flatnonzero(cells)
        if flat.size == 0:
            return cells
        if layer not in self._buffers:
            self._buffers[layer] = np.empty(array.shape)
        targets = self.mapping.targets(level_idx, out=self._buffers[layer]).reshape(-1)[flat]
        guess = array.technology.transistor.gate_for(targets * self.policy.v0) - self.policy.gate_backoff
        report = program_cells(
            array, flat, targets, tolerance=self.policy.tolerance, strategy=self.policy.strategy,
            max_pulses=self.policy.max_pulses, first_guess=guess,
        )
        self.g_cache[layer].flat[flat] = report.g_final
        self.reprogrammed[layer].flat[flat] += 1
        retry = self.missed[layer].reshape(-1)[flat]
        kinds = (("refresh", np.ones(flat.size, bool)),) if refresh else (("retry", retry), ("level", ~retry))
        for kind, sel in kinds:
            self.sessions[kind][layer].flat[flat[sel]] += 1
            self.pulses_by_kind[kind] += int(report.pulses[sel].sum())
        self.programmings += 1
        self.cells_programmed += flat.size
        self.pulses += int(report.pulses.sum())
        missed = np.zeros_like(cells)
        missed.flat[flat[~report.success]] = True
        self.missed[layer].flat[flat] = ~report.success
        self.failures += int(flat.size - report.success.sum())
        if self.policy.retire_after > 0:
            missed.flat[self._retire(layer, flat, report.converged)] = False
        self._refresh_weights(layer, cells)
        return missed

    def _retire(self, layer: int, flat: np.ndarray, converged: np.ndarray) -> np.ndarray:
        """Count the sessions of ``flat`` (flat cell indices) that did not converge; mark the
        cells that reached ``retire_after`` in a row defective. Returns their flat indices."""
        count = self.unconverged[layer].reshape(-1)
        count[flat] = np.where(converged, 0, count[flat] + 1)
        dead = flat[count[flat] >= self.policy.retire_after]
        if dead.size:
            self.defective[layer].flat[dead] = True
            self.retired += int(dead.size)
            log.info("layer %d: %d cells retired (%d sessions in a row without convergence), %d in all",
                     layer, dead.size, self.policy.retire_after, self.retired)
        return dead

    def _refresh_weights(self, layer: int, cells: np.ndarray) -> None:
        """Re-map the cached conductances of the weights that own ``cells`` (all when few are left)."""
        if self.mapping.cells_per_weight == 1 and self._weights[layer].shape == cells.shape:
            self._weights[layer][cells] = self.mapping.to_weight(self.g_cache[layer][cells])
        else:
            self._weights[layer] = self.mapping.to_weight(self.g_cache[layer])

    def initialise(self, level_idx: list[np.ndarray]) -> None:
        """Form every cell, program every weight, mark the cells that fail as defective."""
        for layer, (array, idx) in enumerate(zip(self.arrays, level_idx)):
            array.form(None)
            everything = np.ones(array.shape, bool)
            targets = self.mapping.targets(idx)
            report = program_verify(
                array, targets, tolerance=self.policy.tolerance, strategy=self.policy.strategy,
                max_pulses=self.policy.init_max_pulses, first_guess=self._first_guess(array, targets),
            )
            self.g_cache[layer] = np.array(report.g_final)
            self.defective[layer] = ~report.success
            self.programmings += 1
            self.cells_programmed += array.size
            self.pulses += int(report.pulses.sum())
            self._weights[layer] = self.mapping.to_weight(self.g_cache[layer])
            log.info("layer %d: %d cells programmed, yield %.4f", layer, everything.sum(), report.yield_)

    def update(self, step: int, level_idx: list[np.ndarray], changed: list[np.ndarray]) -> None:
        """Record the weights that changed level; program the pending cells every ``program_every`` steps."""
        for layer, ch in enumerate(changed):
            cells = self.mapping.cell_mask(ch)
            self.pending[layer] |= cells
            self.missed[layer] &= ~cells  # a new level: the next session is a level change, not a retry
        if (step + 1) % self.policy.program_every == 0:
            self.flush(level_idx)

    def flush(self, level_idx: list[np.ndarray]) -> None:
        """Program every pending cell now."""
        for layer in range(len(self.arrays)):
            if self.pending[layer].any():
                self.pending[layer] = self._program(layer, level_idx[layer], self.pending[layer])

    def reread(self, level_idx: list[np.ndarray]) -> int:
        """Read every cell into the cache; re-program cells drifted beyond ``refresh_tolerance``.

        Returns the number of cells re-programmed.
        """
        refreshed = 0
        for layer, array in enumerate(self.arrays):
            g = array.read(None)
            self.g_cache[layer] = g
            targets = self.mapping.targets(level_idx[layer])
            drifted = (np.abs(g - targets) > self.policy.refresh_tolerance * targets) & ~self.defective[layer]
            refreshed += int(drifted.sum())
            self._weights[layer] = self.mapping.to_weight(g)
            if drifted.any():
                self.pending[layer] |= self._program(layer, level_idx[layer], drifted, refresh=True)
        return refreshed

    # ------------------------------------------------------------------ access
    def weights(self) -> list[np.ndarray]:
        """Weights from the measured conductances, float32, one (n_in, n_out) array per layer."""
        return self._weights

    def programming_events(self) -> list[np.ndarray]:
        """Programming operations (SET + RESET + forming pulses) per cell, per layer array."""
        return [a.programming_events() for a in self.arrays]

    def state(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for l in range(len(self.arrays)):
            out[f"g_cache{l}"] = self.g_cache[l]
            out[f"defective{l}"] = self.defective[l]
            out[f"reprogrammed{l}"] = self.reprogrammed[l]
            out[f"pending{l}"] = self.pending[l]
            out[f"missed{l}"] = self.missed[l]
            out[f"unconverged{l}"] = self.unconverged[l]
            for kind in SESSION_KINDS:
                out[f"sessions_{kind}{l}"] = self.sessions[kind][l]
        out["counters"] = np.array([self.programmings, self.cells_programmed, self.pulses, self.failures], np.int64)
        out["pulses_by_kind"] = np.array([self.pulses_by_kind[k] for k in SESSION_KINDS], np.int64)
        out["retired"] = np.array(self.retired, np.int64)
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        for l in range(len(self.arrays)):
            self.g_cache[l] = np.array(state[f"g_cache{l}"])
            self.defective[l] = np.array(state[f"defective{l}"], dtype=bool)
            self.reprogrammed[l] = np.array(state[f"reprogrammed{l}"], dtype=np.int32)
            self.pending[l] = np.array(state[f"pending{l}"], dtype=bool)
            self.missed[l] = np.array(state[f"missed{l}"], dtype=bool)
            # checkpoints written before retire_after existed have no counters: none retired
            self.unconverged[l] = np.array(state.get(f"unconverged{l}", np.zeros(self.arrays[l].shape)), dtype=np.int32)
            for kind in SESSION_KINDS:
                self.sessions[kind][l] = np.array(state[f"sessions_{kind}{l}"], dtype=np.int32)
            self._weights[l] = self.mapping.to_weight(self.g_cache[l])
        self.programmings, self.cells_programmed, self.pulses, self.failures = (int(v) for v in state["counters"])
        self.pulses_by_kind = {k: int(v) for k, v in zip(SESSION_KINDS, state["pulses_by_kind"])}
        self.retired = int(state.get("retired", 0))


def open_bench_arrays(bench_files: tuple[str, ...] | list[str], shapes: list[tuple[int, int]],
                      technology: str) -> list[CrossbarArray]:
    """Validate one bench file per layer (shape, technology), then open their instruments.

    Every file is checked before any instrument is opened; if opening one fails, those already
    open are closed (outputs off).

    Raises:
        ValueError: a bench file's array shape or technology does not fit its layer.
    """
    from drivers.bench import BenchArray, load_bench

    configs = [load_bench(path) for path in bench_files]
    for layer, (path, config, shape) in enumerate(zip(bench_files, configs, shapes)):
        if tuple(config.shape) != tuple(shape):
            raise ValueError(f"device.bench[{layer}] = {path!r}: bench.shape = {list(config.shape)}, "
                             f"layer {layer} needs an array of shape {list(shape)}")
        if config.technology.name != technology:
            raise ValueError(f"device.bench[{layer}] = {path!r}: technology {config.technology.name!r}, "
                             f"device.technology is {technology!r}")
    arrays: list[CrossbarArray] = []
    try:
        for config in configs:
            arrays.append(BenchArray.from_config(config))
    except BaseException:
        for array in arrays:
            array.close()
        raise
    return arrays


def check_arrays(arrays: list[CrossbarArray], shapes: list[tuple[int, int]], technology: str) -> None:
    """Raise ValueError unless there is one array per layer, of the layer's shape and technology."""
    if len(arrays) != len(shapes):
        raise ValueError(f"{len(arrays)} arrays given for {len(shapes)} layers")
    for layer, (array, shape) in enumerate(zip(arrays, shapes)):
        if tuple(array.shape) != tuple(shape) or array.technology.name != technology:
            raise ValueError(f"layer {layer} needs a {technology} array of shape {tuple(shape)}, "
                             f"got {array.technology.name} {array.shape}")
