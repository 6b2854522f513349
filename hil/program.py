"""Program-and-verify: write a target conductance map into a 1T1R array.

Two strategies, both vectorised over the cells of the batch with converged cells masked out:

* :class:`IGVVA` — incremental gate-voltage (compliance) ramp: SET pulses of fixed amplitude
  with the gate stepped up by ``v_gate_step`` while the verify read is below the window.
* :class:`ISPP` — incremental step pulse programming: fixed gate (compliance), SET amplitude
  stepped up by ``v_pulse_step`` (partial SETs).

Both verify after every pulse and, on overshoot (read above the window), RESET the cell and
retry from a lower gate / amplitude ("RESET-and-retry"). A cell fails when it reaches
``max_pulses`` (SET + RESET pulses) without a verified read inside the window; stuck cells
fail this way and are reported, never silently accepted.

After the loop every programmed cell is read once more (``g_final``); ``success`` and the
yield are judged on that final read, so relaxation during the rest of the array's programming
is included.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drivers.array import CrossbarArray

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


class TargetError(ValueError):
    """A target map is malformed or outside the technology's reachable window."""


@dataclass
class CellReport:
    """Outcome of programming a list of cells (the vectorised core's own result).

    Attributes:
        cells: flat indices of the programmed cells, shape (n,).
        targets: target conductance per cell, S, shape (n,).
        pulses: SET + RESET pulses applied per cell, shape (n,).
        g_verify: last verify read per cell, S, shape (n,).
        g_final: read after the whole batch finished, S, shape (n,).
        converged: the cell reached the verify window before its pulse cap, shape (n,).
        success: converged and the final read lies within ``tolerance`` of the target, shape (n,).
        tolerance: relative tolerance (e.g. 0.05 for +-5 %).
        strategy: strategy name.
        bench_time: bench time the run cost according to the timing model, s.
        wall_time: host wall-clock time of the run, s.
        iterations: pulse-verify iterations of the vectorised loop.
        cell_iterations: sum over iterations of the cells still active.
        params: the strategy's settings.
    """

    cells: np.ndarray
    targets: np.ndarray
    pulses: np.ndarray
    g_verify: np.ndarray
    g_final: np.ndarray
    converged: np.ndarray
    success: np.ndarray
    tolerance: float
    strategy: str
    bench_time: float
    wall_time: float
    iterations: int
    cell_iterations: int
    params: dict = field(default_factory=dict)

    @property
    def n_cells(self) -> int:
        return int(self.cells.size)

    @property
    def yield_(self) -> float:
        """Fraction of programmed cells within tolerance on the final read."""
        return float(self.success.mean()) if self.n_cells else 1.0

    @property
    def mean_pulses(self) -> float:
        return float(self.pulses.mean()) if self.n_cells else 0.0

    @property
    def max_pulses(self) -> int:
        return int(self.pulses.max()) if self.n_cells else 0

    def summary(self) -> dict[str, float | int | str]:
        """Scalar figures of merit, JSON-ready."""
        return {
            "strategy": self.strategy,
            "cells": self.n_cells,
            "tolerance": self.tolerance,
            "yield": self.yield_,
            "converged": float(self.converged.mean()) if self.n_cells else 1.0,
            "mean_pulses": self.mean_pulses,
            "max_pulses": self.max_pulses,
            "bench_time_s": self.bench_time,
            "wall_time_s": self.wall_time,
            "iterations": self.iterations,
            "cell_iterations": self.cell_iterations,
        }


class ProgramReport:
    """Outcome of programming a target map: the per-cell results as (rows, cols) maps.

    Attributes:
        cells: the :class:`CellReport` of the programmed cells (scalars and vectors).
        targets: target conductance, S; NaN where not programmed.
        pulses: SET + RESET pulses per cell (0 where not programmed).
        g_verify: last verify read, S (NaN where not programmed).
        g_final: read after the whole batch finished, S (NaN where not programmed).
        converged: the cell reached the verify window before its pulse cap.
        success: converged and the final read lies within the tolerance of the target.

    The scalar figures (``yield_``, ``mean_pulses``, ``bench_time``, ``summary()`` ...) are those of
    :attr:`cells`.
    """

    def __init__(self, core: CellReport, shape: tuple[int, int]) -> None:
        self.cells = core

        def as_map(values: np.ndarray, fill: float | bool) -> np.ndarray:
            out = np.full(shape[0] * shape[1], fill, dtype=np.asarray(values).dtype)
            out[core.cells] = values
            return out.reshape(shape)

        self.targets = as_map(core.targets, np.nan)
        self.pulses = as_map(core.pulses, 0)
        self.g_verify = as_map(core.g_verify, np.nan)
        self.g_final = as_map(core.g_final, np.nan)
        self.converged = as_map(core.converged, False)
        self.success = as_map(core.success, False)

    def __getattr__(self, name: str):
        # scalar figures and settings come from the cell report
        if name in ("n_cells", "yield_", "mean_pulses", "max_pulses", "summary", "tolerance", "strategy",
                    "bench_time", "wall_time", "iterations", "cell_iterations", "params"):
            return getattr(self.cells, name)
        raise AttributeError(name)

    @property
    def programmed(self) -> np.ndarray:
        """Cells this run was asked to program, bool (rows, cols)."""
        return ~np.isnan(self.targets)


@dataclass
class IGVVA:
    """Incremental gate-voltage ramp with RESET-and-retry.

    Attributes:
        v_gate_step: gate increment per pulse, V.
        backoff_steps: after an overshoot, the gate restarts this many steps lower.
        v_pulse: SET amplitude, V (default: technology ``v_set``).
    """

    v_gate_step: float = 0.01
    backoff_steps: int = 4
    v_pulse: float | None = None
    name: str = "igvva"

    def start(self, array: CrossbarArray, first_guess: np.ndarray) -> np.ndarray:
        """Initial per-cell control value (gate voltage, V) from the first guess, shape (n,)."""
        return first_guess.copy()

    def pulse(self, array: CrossbarArray, cells: np.ndarray, control: np.ndarray) -> None:
        """One SET pulse on flat cell indices ``cells`` with per-cell gate voltages ``control`` (V)."""
        array.set_pulse(cells, v_gate=control, v_pulse=self.v_pulse)

    def bounds(self, array: CrossbarArray) -> tuple[float, float]:
        return array.technology.v_gate_min, array.technology.v_gate_max

    @property
    def step(self) -> float:
        return self.v_gate_step

    def default_first_guess(self, array: CrossbarArray) -> float:
        return array.technology.v_gate_min


@dataclass
class ISPP:
    """Incremental step pulse programming at a fixed gate, with RESET-and-retry.

    Attributes:
        v_pulse_start: first SET amplitude, V.
        v_pulse_step: amplitude increment per pulse, V.
        v_pulse_max: highest SET amplitude, V.
        v_gate: gate voltage (compliance), V; default the technology's ``v_gate_max``.
        backoff_steps: after an overshoot, the amplitude restarts this many steps lower.
    """

    v_pulse_start: float = 0.6
    v_pulse_step: float = 0.01
    v_pulse_max: float = 2.5
    v_gate: float | None = None
    backoff_steps: int = 6
    name: str = "ispp"

    def start(self, array: CrossbarArray, first_guess: np.ndarray) -> np.ndarray:
        return first_guess.copy()

    def pulse(self, array: CrossbarArray, cells: np.ndarray, control: np.ndarray) -> None:
        """One SET pulse on flat cell indices ``cells`` with per-cell amplitudes ``control`` (V)."""
        v_gate = array.technology.v_gate_max if self.v_gate is None else self.v_gate
        array.set_pulse(cells, v_gate=v_gate, v_pulse=control)

    def bounds(self, array: CrossbarArray) -> tuple[float, float]:
        return self.v_pulse_start, self.v_pulse_max

    @property
    def step(self) -> float:
        return self.v_pulse_step

    def default_first_guess(self, array: CrossbarArray) -> float:
        return self.v_pulse_start


STRATEGIES = {"igvva": IGVVA, "ispp": ISPP}


def make_strategy(strategy: str | IGVVA | ISPP) -> IGVVA | ISPP:
    """A strategy object from its name (``"igvva"``, ``"ispp"``) or the object itself."""
    if isinstance(strategy, str):
        try:
            return STRATEGIES[strategy.lower()]()
        except KeyError:
            raise ValueError(f"unknown strategy {strategy!r}; choose one of {sorted(STRATEGIES)}") from None
    return strategy


def _check_settings(tolerance: float, max_pulses: int, verify_band: float) -> None:
    if not (np.isfinite(tolerance) and 0 < tolerance < 1):
        raise ValueError(f"tolerance={tolerance!r} outside the allowed range (0, 1) (relative, e.g. 0.05)")
    if int(max_pulses) < 1:
        raise ValueError(f"max_pulses={max_pulses!r} must be >= 1")
    if not 0 < verify_band <= 1:
        raise ValueError(f"verify_band={verify_band!r} outside the allowed range (0, 1]")


@dataclass(frozen=True)
class VerifySettings:
    """The settings of a program-and-verify run (the keyword arguments ``**settings`` of
    :func:`program_cells`, :func:`program_verify` and :func:`program_verify_chunked`).

    Attributes:
        tolerance: relative acceptance half-width (0.05 = +-5 %).
        strategy: ``"igvva"``, ``"ispp"`` or a configured strategy object.
        max_pulses: per-cell cap on SET + RESET pulses.
        verify_band: fraction of the tolerance used as the verify window during programming
            (0.5: a +-5 % tolerance verifies into +-2.5 %). The guard band keeps read noise and
            relaxation after acceptance from pushing cells out of the tolerance.
    """

    tolerance: float = 0.05
    strategy: str | IGVVA | ISPP = "igvva"
    max_pulses: int = 200
    verify_band: float = 0.5

    def __post_init__(self) -> None:
        _check_settings(self.tolerance, self.max_pulses, self.verify_band)
        object.__setattr__(self, "strategy", make_strategy(self.strategy))

    def report(self, cells: np.ndarray, targets: np.ndarray, pulses: np.ndarray, g_verify: np.ndarray,
               g_final: np.ndarray, converged: np.ndarray, *, bench_time: float, wall_time: float, iterations: int,
               cell_iterations: int) -> CellReport:
        """The :class:`CellReport` of a run with these settings (``success`` judged on ``g_final``)."""
        strat = self.strategy
        return CellReport(
            cells=cells, targets=targets, pulses=pulses, g_verify=g_verify, g_final=g_final, converged=converged,
            success=converged & (np.abs(g_final - targets) <= self.tolerance * targets),
            tolerance=float(self.tolerance), strategy=strat.name, bench_time=bench_time, wall_time=wall_time,
            iterations=iterations, cell_iterations=cell_iterations,
            params={k: v for k, v in vars(strat).items() if k != "name"},
        )


def _check_window(array: CrossbarArray, values: np.ndarray) -> None:
    """Raise :class:`TargetError` unless finite targets lie in the technology's window."""
    if np.any(np.isinf(values)):
        raise TargetError("target map contains infinite values")
    low, high = array.technology.g_window
    vals = values[~np.isnan(values)]
    if vals.size and (vals.min() < low or vals.max() > high):
        bad = vals.min() if vals.min() < low else vals.max()
        raise TargetError(
            f"target conductance {bad:.6e} S outside the {array.technology.name} technology's "
            f"reachable window [{low:.6e}, {high:.6e}] S"
        )


def validate_targets(array: CrossbarArray, targets: np.ndarray, tolerance: float) -> np.ndarray:
    """Check a target map against the array and its technology; return it as float64.

    Raises:
        TargetError: wrong shape, non-finite values other than NaN (= skip), or targets
            outside the technology's programmable window ``g_window``.
        ValueError: tolerance not in (0, 1).
    """
    _check_settings(tolerance, 1, 1.0)
    t = np.asarray(targets)
    if t.shape != array.shape:
        raise TargetError(f"target map has shape {t.shape}, the array is {array.shape}")
    if not np.issubdtype(t.dtype, np.number):
        raise TargetError(f"target map must be numeric (siemens), got dtype {t.dtype}")
    t = t.astype(float)
    _check_window(array, t)
    return t


def program_cells(
    array: CrossbarArray,
    cells: np.ndarray,
    targets: np.ndarray,
    *,
    first_guess: np.ndarray | float | None = None,
    progress: Progress | None = None,
    **settings: Any,
) -> CellReport:
    """Program-and-verify the cells at flat indices ``cells`` (the vectorised core).

    Work and host memory are O(len(cells)), whatever the array's size: the call to use for
    sparse re-programming of a large array.

    Args:
        array: the array (simulated or bench).
        cells: strictly increasing flat cell indices (``row * cols + col``), shape (n,).
        targets: target conductance per cell, S, shape (n,).
        first_guess: starting control value, scalar or one per cell (shape (n,)).
        progress: ``progress(finished_cells, total_cells)`` called after every iteration.
        settings: ``tolerance``, ``strategy``, ``max_pulses``, ``verify_band`` (:class:`VerifySettings`).
    """
    t0_wall, t0_bench = time.perf_counter(), array.bench_time
    opts = VerifySettings(**settings)
    strat, tolerance, max_pulses, verify_band = opts.strategy, opts.tolerance, opts.max_pulses, opts.verify_band
    cells = np.asarray(cells)
    if cells.ndim != 1 or not np.issubdtype(cells.dtype, np.integer):
        raise ValueError(f"cells must be a 1-D array of flat cell indices, got {cells.dtype} {cells.shape}")
    target = np.asarray(targets, dtype=float)
    if target.shape != cells.shape:
        raise TargetError(f"targets must have one value per cell ({cells.size}), got shape {target.shape}")
    if np.any(np.isnan(target)):
        raise TargetError("targets of listed cells must not be NaN")
    _check_window(array, target)
    array._indices(cells)  # range and order check before anything is sent
    n = cells.size
    band = tolerance * verify_band
    lo, hi = target * (1 - band), target * (1 + band)

    c_min, c_max = strat.bounds(array)
    guess = strat.default_first_guess(array) if first_guess is None else first_guess
    guess = np.broadcast_to(np.asarray(guess, dtype=float), (n,))
    control = np.clip(strat.start(array, np.array(guess)), c_min, c_max)
    pulses = np.zeros(n, dtype=np.int32)

    # Initial verify: cells already in the window cost nothing; cells above it are RESET first.
    g_verify = array.read_cells(cells)
    converged = (g_verify >= lo) & (g_verify <= hi)
    above = np.flatnonzero(g_verify > hi)
    if above.size:
        array.reset_pulse(cells[above])
        pulses[above] += 1

    active = np.flatnonzero(~converged)  # positions into ``cells``
    iterations = cell_iterations = 0
    while active.size:
        iterations += 1
        cell_iterations += active.size
        addressed = cells[active]
        strat.pulse(array, addressed, control[active])
        pulses[active] += 1
        g = array.read_cells(addressed)
        g_verify[active] = g
        hit, below, over = (g >= lo[active]) & (g <= hi[active]), g < lo[active], g > hi[active]
        converged[active[hit]] = True
        control[active[below]] = np.minimum(control[active[below]] + strat.step, c_max)
        retry = active[over & (pulses[active] < max_pulses)]
        if retry.size:
            array.reset_pulse(cells[retry])
            pulses[retry] += 1
            control[retry] = np.maximum(control[retry] - strat.backoff_steps * strat.step, c_min)
        active = active[~hit & (pulses[active] < max_pulses)]
        if progress is not None:
            progress(n - active.size, n)

    g_final = array.read_cells(cells)
    report = opts.report(cells, target, pulses, g_verify, g_final, converged, bench_time=array.bench_time - t0_bench,
                         wall_time=time.perf_counter() - t0_wall, iterations=iterations,
                         cell_iterations=cell_iterations)
    if log.isEnabledFor(logging.INFO):
        log.info("program-verify %s: %s", strat.name, report.summary())
    return report


def program_verify(
    array: CrossbarArray,
    targets: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    first_guess: np.ndarray | float | None = None,
    progress: Progress | None = None,
    **settings: Any,
) -> ProgramReport:
    """Program a target conductance map into ``array`` with verify after every pulse.

    Args:
        array: the array (simulated or bench).
        targets: target conductances, S, shape (rows, cols); NaN = leave the cell alone.
        mask: optional boolean (rows, cols) restricting the cells programmed.
        first_guess: starting control value per cell (gate voltage for IGVVA, amplitude for
            ISPP), scalar or (rows, cols); typically from a calibration table. Default: the
            bottom of the strategy's range.
        progress: ``progress(finished_cells, total_cells)`` called after every iteration.
        settings: ``tolerance`` (0.05), ``strategy`` ("igvva"), ``max_pulses`` (200),
            ``verify_band`` (0.5): see :class:`VerifySettings`.

    Returns:
        A :class:`ProgramReport`.
    """
    opts = VerifySettings(**settings)
    targets = validate_targets(array, targets, opts.tolerance)
    selected = ~np.isnan(targets)
    if mask is not None:
        selected &= np.asarray(mask, dtype=bool)
    cells = np.flatnonzero(selected)
    guess = first_guess
    if guess is not None and np.shape(guess) == array.shape:
        guess = np.asarray(guess, dtype=float).reshape(-1)[cells]
    core = program_cells(array, cells, targets.reshape(-1)[cells], first_guess=guess, progress=progress,
                         **vars(opts))
    return ProgramReport(core, array.shape)


@dataclass
class ProgramProgress:
    """Where a chunked program-and-verify run stands (what a checkpoint keeps).

    Attributes:
        cells: flat indices of every cell to program, increasing, shape (n,).
        targets: their target conductances, S, shape (n,).
        pulses, g_verify, converged: per-cell results of the chunks done so far, shape (n,).
        next_chunk: index of the first chunk not yet programmed.
        iterations, cell_iterations: summed over the chunks done.
    """

    cells: np.ndarray
    targets: np.ndarray
    pulses: np.ndarray
    g_verify: np.ndarray
    converged: np.ndarray
    next_chunk: int = 0
    iterations: int = 0
    cell_iterations: int = 0
    t0_bench: float | None = None
    g_final: np.ndarray | None = None  # read after each chunk finished, S

    @classmethod
    def start(cls, targets: np.ndarray, mask: np.ndarray | None = None) -> ProgramProgress:
        selected = ~np.isnan(targets)
        if mask is not None:
            selected &= np.asarray(mask, dtype=bool)
        cells = np.flatnonzero(selected)
        n = cells.size
        return cls(cells, targets.reshape(-1)[cells].astype(float), np.zeros(n, np.int32),
                   np.full(n, np.nan), np.zeros(n, bool))

    def state(self) -> tuple[dict[str, np.ndarray], dict]:
        arrays = {"cells": self.cells, "targets": self.targets, "pulses": self.pulses,
                  "g_verify": self.g_verify, "converged": self.converged,
                  "g_final": self.g_final if self.g_final is not None else np.full(self.cells.size, np.nan)}
        return arrays, {"next_chunk": self.next_chunk, "iterations": self.iterations,
                        "cell_iterations": self.cell_iterations, "t0_bench": self.t0_bench}

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], meta: dict) -> ProgramProgress:
        return cls(arrays["cells"], arrays["targets"], arrays["pulses"], arrays["g_verify"],
                   arrays["converged"].astype(bool), int(meta["next_chunk"]), int(meta["iterations"]),
                   int(meta["cell_iterations"]), meta.get("t0_bench"), arrays.get("g_final"))


def program_verify_chunked(
    array: CrossbarArray,
    targets: np.ndarray,
    *,
    chunk_cells: int = 4096,
    progress_state: ProgramProgress | None = None,
    on_chunk: Callable[[ProgramProgress], None] | None = None,
    first_guess: np.ndarray | float | None = None,
    progress: Progress | None = None,
    **settings: Any,
) -> ProgramReport:
    """:func:`program_verify` in chunks of ``chunk_cells`` cells (in flat-index order), resumable.

    After every chunk ``on_chunk(progress_state)`` is called (the command line checkpoints there);
    a run continued from such a state (``progress_state``, with the array restored to the same
    moment) gives the same result as one never interrupted. ``g_final`` is the read of each
    chunk's cells after that chunk finished; ``success`` is judged on it. ``settings``: as in :func:`program_verify`.
    """
    opts = VerifySettings(**settings)
    if chunk_cells < 1:
        raise ValueError(f"chunk_cells={chunk_cells!r} must be >= 1")
    t0_wall, t0_bench = time.perf_counter(), array.bench_time
    targets = validate_targets(array, targets, opts.tolerance)
    st = progress_state or ProgramProgress.start(targets)
    if st.t0_bench is None:
        st.t0_bench = t0_bench
    guess = first_guess
    if guess is not None and np.shape(guess) == array.shape:
        guess = np.asarray(guess, dtype=float).reshape(-1)[st.cells]
    n = st.cells.size
    n_chunks = -(-n // chunk_cells)
    for k in range(st.next_chunk, n_chunks):
        sl = slice(k * chunk_cells, min(n, (k + 1) * chunk_cells))
        g = guess if guess is None or np.ndim(guess) == 0 else np.asarray(guess)[sl]
        core = program_cells(array, st.cells[sl], st.targets[sl], first_guess=g, **vars(opts))
        if st.g_final is None:
            st.g_final = np.full(n, np.nan)
        st.pulses[sl], st.g_verify[sl], st.converged[sl] = core.pulses, core.g_verify, core.converged
        st.g_final[sl] = core.g_final
        st.iterations += core.iterations
        st.cell_iterations += core.cell_iterations
        st.next_chunk = k + 1
        if progress is not None:
            progress(sl.stop, n)
        if on_chunk is not None:
            on_chunk(st)
    g_final = st.g_final if st.g_final is not None else np.zeros(0)
    core = opts.report(st.cells, st.targets, st.pulses, st.g_verify, g_final, st.converged,
                       bench_time=array.bench_time - st.t0_bench, wall_time=time.perf_counter() - t0_wall,
                       iterations=st.iterations, cell_iterations=st.cell_iterations)
    return ProgramReport(core, array.shape)
