"""Characterisation procedures: experiments run through a :class:`~drivers.array.CrossbarArray`.

They work on any array (simulated or bench) because they use only the seam's whole-array and
masked operations: ``form``, ``set_pulse``, ``reset_pulse``, ``read`` and ``wait``. Every
operation reaches the run store through the array's listener; every measured map is also kept
as a snapshot, so :func:`load_characterisation` rebuilds the data from the run file alone.

Procedures (in the order :func:`characterise` runs them):

1. **Forming** — read the pristine array, then a staircase of forming pulses of rising
   amplitude, pulsing only the cells not yet formed and reading them after each step. A cell's
   forming voltage is the first step after which it reads above a threshold (geometric mean of
   the pristine median and the lowest LRS the forming compliance can give with V0 <= 1 V).
   Cells already above the threshold before forming are pre-formed (stuck in LRS); cells never
   formed within the staircase are stuck in HRS. Both are excluded from the fits.
2. **Quasi-static I-V** (SiOx paper Fig. 2b). The seam has pulses and reads only, so a sweep
   is emulated by a staircase of short pulses with a read at V_read after each: SET branch of
   rising V at a fixed gate (compliance), RESET branch of rising |V| to V_STOP. The plotted
   current is the state current ``min(G * V, I_C)``. On a bench, an SMU's true DC sweep
   (B1500 ``WV`` staircase sweep, ``XE``) is the instrument-level equivalent; it would give the
   current *during* the sweep instead of the state after each step.
3. **LRS vs compliance I_C** (SiOx Fig. 2c-e): at each of J gate voltages, K cycles of
   (deep RESET, read, SET at that gate, read) on every usable cell. Repeated SETs of the same
   cells separate cycle-to-cycle from device-to-device spread.
4. **HRS vs V_STOP** (SiOx Fig. 2f): at each of M stop voltages, K cycles of (SET at the
   top gate, read, RESET to V_STOP, read).
5. **Read noise**: SET at a mid gate, wait, R back-to-back reads.
6. **Relaxation**: SET at the same gate, then reads at log-spaced times after programming.

The multi-level state CDFs (metaplasticity paper Fig. 4b) come after the fit, because their
conditions come from the level table: :func:`characterise_levels`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from calibration.data import CalibrationDataError, CharacterisationData
from calibration.table import LevelData
from drivers.array import CrossbarArray
from drivers.technology import Transistor

log = logging.getLogger(__name__)

#: ``progress(done_steps, total_steps, stage)``.
Progress = Callable[[int, int, str], None]

#: A SET (RESET) counts as switched only if it raised (lowered) the read by this factor.
SWITCH_FACTOR = 1.5


@dataclass(frozen=True)
class CharacterisationPlan:
    """What to measure. ``None`` fields take a default from the array's technology and limits.

    Attributes:
        form_start, form_stop, form_step: forming staircase, V (default: technology ``v_form``
            - 1.5 V to ``v_form`` + 0.4 V, limited by the safety limit, in 20 mV steps).
        lrs_gates: number of gate voltages of the LRS sweep, spread evenly over the
            technology's gate range [v_gate_min, v_gate_max].
        cycles: K, repeated SET (RESET) cycles per condition (>= 2).
        lrs_v_stop: V_STOP of the RESET before each LRS SET, V (default technology v_stop - 0.5 V:
            deep, so the HRS lies well below the lowest LRS).
        hrs_v_stops: number of V_STOP conditions, spread over |technology v_stop| +- 0.5 V.
        noise_reads: R, back-to-back reads for the read noise.
        noise_wait: wait between programming and the noise reads, s.
        relax_times: read times after programming, s, ascending.
        iv_gates: number of gates of the I-V loops (lowest, ..., highest of the gate range).
        iv_cells: cells in the I-V loops.
        iv_step: staircase step of the I-V loops, V.
    """

    form_start: float | None = None
    form_stop: float | None = None
    form_step: float = 0.02
    lrs_gates: int = 8
    cycles: int = 4
    lrs_v_stop: float | None = None
    hrs_v_stops: int = 6
    noise_reads: int = 16
    noise_wait: float = 60.0
    relax_times: tuple[float, ...] = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1e3, 3e3, 1e4)
    iv_gates: int = 3
    iv_cells: int = 32
    iv_step: float = 0.05

    def resolve(self, array: CrossbarArray) -> dict[str, Any]:
        """Concrete conditions for ``array`` (JSON-ready); raises ValueError on a bad plan."""
        tech, lim = array.technology, array.limits
        vmax = lim.max_v_pulse
        start = tech.v_form - 1.5 if self.form_start is None else self.form_start
        stop = min(tech.v_form + 0.4, vmax) if self.form_stop is None else self.form_stop
        if not (0 < self.form_step <= 0.5):
            raise ValueError(f"form_step={self.form_step} V outside the allowed range (0, 0.5] V")
        if not (0 < start < stop <= vmax):
            raise ValueError(f"forming staircase {start:.3g}..{stop:.3g} V must satisfy 0 < start < stop <= {vmax:g} V")
        if self.lrs_gates < 3:
            raise ValueError(f"lrs_gates={self.lrs_gates} must be >= 3 (the spread law has two parameters)")
        if self.cycles < 2:
            raise ValueError(f"cycles={self.cycles} must be >= 2 (to separate cycle-to-cycle from device-to-device)")
        if self.hrs_v_stops < 2:
            raise ValueError(f"hrs_v_stops={self.hrs_v_stops} must be >= 2")
        if self.noise_reads < 3:
            raise ValueError(f"noise_reads={self.noise_reads} must be >= 3")
        times = np.asarray(self.relax_times, dtype=float)
        if times.size < 3 or np.any(times <= 0) or np.any(np.diff(times) <= 0):
            raise ValueError(f"relax_times {list(self.relax_times)} must be >= 3 ascending times > 0 s")
        lrs_v_stop = tech.v_stop - 0.5 if self.lrs_v_stop is None else self.lrs_v_stop
        lrs_v_stop = max(lrs_v_stop, -vmax)
        if lrs_v_stop >= 0:
            raise ValueError(f"lrs_v_stop={lrs_v_stop} must be < 0 V")
        gates = np.linspace(tech.v_gate_min, tech.v_gate_max, self.lrs_gates)
        v_abs = abs(tech.v_stop)
        stops = -np.linspace(max(v_abs - 0.5, 0.1), min(v_abs + 0.5, vmax), self.hrs_v_stops)
        n_steps = int(round((stop - start) / self.form_step)) + 1
        iv_gates = np.linspace(tech.v_gate_min, tech.v_gate_max, max(self.iv_gates, 1))
        return {
            "form_steps": np.round(start + self.form_step * np.arange(n_steps), 9).tolist(),
            "form_v_gate": tech.v_gate_form,
            "lrs_v_gate": gates.tolist(),
            "lrs_i_c": tech.transistor.compliance(gates).tolist(),
            "lrs_v_stop": lrs_v_stop,
            "cycles": self.cycles,
            "v_set": tech.v_set,
            "hrs_v_stop": stops.tolist(),
            "hrs_v_gate": tech.v_gate_max,
            "noise_reads": self.noise_reads,
            "noise_wait": self.noise_wait,
            "relax_times": times.tolist(),
            "relax_v_gate": float(gates[len(gates) // 2]),
            "iv_v_gate": iv_gates.tolist() if self.iv_gates > 0 else [],
            "iv_cells": self.iv_cells,
            "iv_v_set": np.round(np.arange(self.iv_step, tech.v_set + 1e-9, self.iv_step), 9).tolist(),
            "iv_v_reset": (-np.round(np.arange(self.iv_step, abs(lrs_v_stop) + 1e-9, self.iv_step), 9)).tolist(),
            "v_read": tech.v_read,
            "aperture": array.timing.aperture,
            "transistor": {"v_th": tech.transistor.v_th, "k": tech.transistor.k},
            "technology": tech.name,
            "shape": list(array.shape),
        }

    def n_steps(self, conditions: dict[str, Any]) -> int:
        """Progress steps of :func:`characterise` (one per array-wide operation group)."""
        c = conditions
        k = c["cycles"]
        return (1 + len(c["form_steps"]) + len(c["iv_v_gate"]) * (len(c["iv_v_set"]) + len(c["iv_v_reset"]))
                + len(c["lrs_v_gate"]) * k + len(c["hrs_v_stop"]) * k + 1 + len(c["relax_times"]))


def forming_threshold(g_pristine: np.ndarray, v_gate_form: float, transistor: Transistor) -> float:
    """Read (S) above which a cell counts as formed: geometric mean of the pristine median and
    ``I_C(v_gate_form) / 1 V`` (the lowest LRS of that compliance for any V0 <= 1 V)."""
    base = max(float(np.nanmedian(np.abs(g_pristine))), 1e-12)
    lrs_low = float(transistor.compliance(v_gate_form)) / 1.0
    if lrs_low <= base:
        raise CalibrationDataError(
            f"pristine reads (median {base:.3e} S) are not below the forming compliance's LRS "
            f"({lrs_low:.3e} S): the array looks formed already or the forming gate is too low"
        )
    return float(np.sqrt(base * lrs_low))


class _Recorder:
    """Writes snapshots / metrics if a run store is attached; counts progress."""

    def __init__(self, array: CrossbarArray, store: Any | None, progress: Progress | None, total: int) -> None:
        self.array, self.store, self.progress, self.total, self.done = array, store, progress, total, 0

    def snap(self, name: str, g: np.ndarray) -> None:
        if self.store is not None:
            self.store.snapshot(name, g, self.array.bench_time)

    def metric(self, name: str, step: int, value: float) -> None:
        if self.store is not None:
            self.store.metric(name, step, 0, value)

    def step(self, stage: str) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total, stage)


def characterise(
    array: CrossbarArray,
    plan: CharacterisationPlan | None = None,
    *,
    store: Any | None = None,
    progress: Progress | None = None,
    conditions: dict[str, Any] | None = None,
) -> CharacterisationData:
    """Run forming, I-V, LRS-vs-I_C, HRS-vs-V_STOP, read-noise and relaxation procedures.

    Args:
        array: an unformed array (simulated or bench).
        plan: what to measure (default :class:`CharacterisationPlan`).
        store: a :class:`hil.store.RunStore` to log to (its config should hold
            ``{"plan": conditions}`` so :func:`load_characterisation` can rebuild the data);
            operations reach it through an array listener added here.
        progress: ``progress(done, total, stage)`` after every operation group.
        conditions: pre-resolved ``plan.resolve(array)`` (to store them in the config first).

    Returns:
        The measured :class:`CharacterisationData` (validated).
    """
    plan = plan or CharacterisationPlan()
    c = conditions or plan.resolve(array)
    if store is not None:
        store.attach_array("array", array)
    try:
        return _run(array, c, _Recorder(array, store, progress, plan.n_steps(c)))
    finally:
        if store is not None:
            store.detach_array(array)


def _run(array: CrossbarArray, c: dict[str, Any], rec: _Recorder) -> CharacterisationData:
    shape, n = array.shape, array.size
    tr = array.technology.transistor
    k = int(c["cycles"])

    # 1. forming
    pristine = array.read(None)
    rec.snap("pristine", pristine)
    rec.step("forming")
    thr = forming_threshold(pristine, c["form_v_gate"], tr)
    preformed = pristine.reshape(-1) > thr
    form_v = np.full(n, np.nan)
    todo = ~preformed
    for v in c["form_steps"]:
        if todo.any():
            mask = todo.reshape(shape)
            array.form(mask, v_pulse=v, v_gate=c["form_v_gate"])
            g = array.read(mask)
            rec.snap("form", g)
            now = todo & (g.reshape(-1) > thr)
            form_v[now] = v
            todo &= ~now
        else:
            rec.snap("form", np.full(shape, np.nan))
        rec.step("forming")
    usable = ~preformed & np.isfinite(form_v)
    if not usable.any():
        raise CalibrationDataError("no cell formed within the forming staircase")
    umask = usable.reshape(shape)
    log.info("forming: %d formed, %d pre-formed, %d never formed", usable.sum(), preformed.sum(), todo.sum())

    # 2. quasi-static I-V loops on the first usable cells
    iv_idx = np.flatnonzero(usable)[: int(c["iv_cells"])]
    iv_mask = np.zeros(n, dtype=bool)
    iv_mask[iv_idx] = True
    iv_mask = iv_mask.reshape(shape)
    n_l = len(c["iv_v_gate"])
    iv_set = np.full((n_l, len(c["iv_v_set"]), iv_idx.size), np.nan)
    iv_reset = np.full((n_l, len(c["iv_v_reset"]), iv_idx.size), np.nan)
    for l, vg in enumerate(c["iv_v_gate"]):
        array.reset_pulse(iv_mask, v_stop=c["lrs_v_stop"])
        for p, v in enumerate(c["iv_v_set"]):
            array.set_pulse(iv_mask, v_gate=vg, v_pulse=v)
            g = array.read(iv_mask)
            rec.snap("iv_set", g)
            iv_set[l, p] = g.reshape(-1)[iv_idx]
            rec.step("I-V")
        for q, v in enumerate(c["iv_v_reset"]):
            array.reset_pulse(iv_mask, v_stop=v)
            g = array.read(iv_mask)
            rec.snap("iv_reset", g)
            iv_reset[l, q] = g.reshape(-1)[iv_idx]
            rec.step("I-V")

    # 3. LRS vs I_C
    j = len(c["lrs_v_gate"])
    lrs = np.full((j, k, n), np.nan)
    lrs_reset = np.full((j, k, n), np.nan)
    for jj, vg in enumerate(c["lrs_v_gate"]):
        for kk in range(k):
            array.reset_pulse(umask, v_stop=c["lrs_v_stop"])
            g0 = array.read(umask)
            array.set_pulse(umask, v_gate=vg, v_pulse=c["v_set"])
            g1 = array.read(umask)
            rec.snap("lrs_reset", g0)
            rec.snap("lrs", g1)
            lrs_reset[jj, kk], lrs[jj, kk] = g0.reshape(-1), g1.reshape(-1)
            rec.step("LRS vs I_C")

    # 4. HRS vs V_STOP
    m = len(c["hrs_v_stop"])
    hrs = np.full((m, k, n), np.nan)
    hrs_set = np.full((m, k, n), np.nan)
    for mm, vs in enumerate(c["hrs_v_stop"]):
        for kk in range(k):
            array.set_pulse(umask, v_gate=c["hrs_v_gate"], v_pulse=c["v_set"])
            g0 = array.read(umask)
            array.reset_pulse(umask, v_stop=vs)
            g1 = array.read(umask)
            rec.snap("hrs_set", g0)
            rec.snap("hrs", g1)
            hrs_set[mm, kk], hrs[mm, kk] = g0.reshape(-1), g1.reshape(-1)
            rec.step("HRS vs V_STOP")

    # 5. read noise
    array.reset_pulse(umask, v_stop=c["lrs_v_stop"])
    array.set_pulse(umask, v_gate=c["relax_v_gate"], v_pulse=c["v_set"])
    array.wait(c["noise_wait"])
    noise = np.full((int(c["noise_reads"]), n), np.nan)
    for r in range(int(c["noise_reads"])):
        g = array.read(umask)
        rec.snap("noise", g)
        noise[r] = g.reshape(-1)
    rec.step("read noise")

    # 6. relaxation
    array.reset_pulse(umask, v_stop=c["lrs_v_stop"])
    t_prog = array.bench_time
    array.set_pulse(umask, v_gate=c["relax_v_gate"], v_pulse=c["v_set"])
    times = np.asarray(c["relax_times"], dtype=float)
    relax = np.full((times.size, n), np.nan)
    elapsed = np.zeros(times.size)
    for i, t in enumerate(times):
        array.wait(max(0.0, t - (array.bench_time - t_prog)))
        elapsed[i] = array.bench_time - t_prog
        g = array.read(umask)
        rec.snap("relax", g)
        rec.metric("relax_t", i, elapsed[i])
        relax[i] = g.reshape(-1)
        rec.step("relaxation")

    data = assemble(c, pristine.reshape(-1), preformed, form_v, lrs, lrs_reset, hrs, hrs_set, noise,
                    elapsed, relax, iv_idx, iv_set, iv_reset,
                    source=json.dumps(array.identity(), sort_keys=True))
    data.validate()
    return data


def assemble(c: dict[str, Any], pristine: np.ndarray, preformed: np.ndarray, form_v: np.ndarray,
             lrs: np.ndarray, lrs_reset: np.ndarray, hrs: np.ndarray, hrs_set: np.ndarray,
             noise: np.ndarray, relax_t: np.ndarray, relax: np.ndarray, iv_idx: np.ndarray,
             iv_set: np.ndarray, iv_reset: np.ndarray, source: str) -> CharacterisationData:
    """Raw reads -> :class:`CharacterisationData`: mark non-switching events and excluded cells."""
    lrs = np.where(lrs > SWITCH_FACTOR * lrs_reset, lrs, np.nan)
    hrs = np.where(hrs * SWITCH_FACTOR < hrs_set, hrs, np.nan)
    usable = ~preformed & np.isfinite(form_v)
    # a cell that failed to switch in more than half of its SETs or RESETs is broken (stuck)
    fail = (np.isnan(lrs).mean(axis=(0, 1)) > 0.5) | (np.isnan(hrs).mean(axis=(0, 1)) > 0.5)
    excluded = ~usable | fail
    tr = c["transistor"]
    return CharacterisationData(
        technology=c["technology"], shape=tuple(c["shape"]), v_read=float(c["v_read"]),
        aperture=float(c["aperture"]), transistor=Transistor(float(tr["v_th"]), float(tr["k"])), source=source,
        g_pristine=pristine, form_steps=np.asarray(c["form_steps"], float), form_v=form_v,
        form_v_gate=float(c["form_v_gate"]),
        lrs_v_gate=np.asarray(c["lrs_v_gate"], float), lrs_i_c=np.asarray(c["lrs_i_c"], float),
        lrs_g=lrs, lrs_g_reset=lrs_reset, lrs_v_stop=float(c["lrs_v_stop"]),
        hrs_v_stop=np.asarray(c["hrs_v_stop"], float), hrs_g=hrs, hrs_g_set=hrs_set,
        noise_g=noise, relax_t=np.asarray(relax_t, float), relax_g=relax, relax_v_gate=float(c["relax_v_gate"]),
        iv_v_gate=np.asarray(c["iv_v_gate"], float), iv_v_set=np.asarray(c["iv_v_set"], float),
        iv_v_reset=np.asarray(c["iv_v_reset"], float), iv_cells=np.asarray(iv_idx, np.int64),
        iv_g_set=iv_set, iv_g_reset=iv_reset, preformed=preformed, excluded=excluded,
        meta={"plan": c},
    )


# ---------------------------------------------------------------------- reading a run back
def load_characterisation(path: str | Path) -> CharacterisationData:
    """Rebuild :class:`CharacterisationData` from a characterisation run file.

    Raises:
        CalibrationDataError: the file is not a characterisation run, or a measurement is
            missing or incomplete (e.g. the run was interrupted); the message names it.
    """
    path = Path(path)
    if not path.is_file():
        raise CalibrationDataError(f"characterisation run {str(path)!r} does not exist")
    try:
        f = h5py.File(path, "r", swmr=True)
    except OSError as exc:
        raise CalibrationDataError(f"cannot open {str(path)!r} as HDF5: {exc}") from None
    with f:
        try:
            config = json.loads(f.attrs["config"])
            c = config["plan"]
        except (KeyError, ValueError, TypeError):
            raise CalibrationDataError(f"{str(path)!r} is not a characterisation run (no plan in its configuration)") from None
        snaps = f.get("snapshots")
        if snaps is None:
            raise CalibrationDataError(f"{str(path)!r} has no /snapshots")
        shape = tuple(c["shape"])
        n = shape[0] * shape[1]
        k = int(c["cycles"])
        n_l, n_p, n_q = len(c["iv_v_gate"]), len(c["iv_v_set"]), len(c["iv_v_reset"])
        expected = {
            "pristine": 1, "form": len(c["form_steps"]),
            "iv_set": n_l * n_p, "iv_reset": n_l * n_q,
            "lrs_reset": len(c["lrs_v_gate"]) * k, "lrs": len(c["lrs_v_gate"]) * k,
            "hrs_set": len(c["hrs_v_stop"]) * k, "hrs": len(c["hrs_v_stop"]) * k,
            "noise": int(c["noise_reads"]), "relax": len(c["relax_times"]),
        }
        maps: dict[str, np.ndarray] = {}
        for name, count in expected.items():
            if count == 0:
                maps[name] = np.zeros((0, n))
                continue
            if name not in snaps:
                raise CalibrationDataError(f"{str(path)!r}: measurement {name!r} is missing (run interrupted?)")
            g = snaps[name]["g"]
            g.refresh()
            if g.shape[0] < count:
                raise CalibrationDataError(
                    f"{str(path)!r}: measurement {name!r} has {g.shape[0]} of {count} maps (run interrupted?)"
                )
            if tuple(g.shape[1:]) != shape:
                raise CalibrationDataError(f"{str(path)!r}: {name!r} maps are {g.shape[1:]}, the plan says {shape}")
            maps[name] = g[:count].reshape(count, n)
        metrics = f.get("metrics")
        if metrics is None or "relax_t" not in metrics or metrics["relax_t"].shape[0] < len(c["relax_times"]):
            raise CalibrationDataError(f"{str(path)!r}: relaxation read times (metric 'relax_t') missing or incomplete")
        relax_t = metrics["relax_t"]["value"][: len(c["relax_times"])]
        source = f.attrs.get("instruments", "")
        source = source.decode() if isinstance(source, bytes) else str(source)

    tr = Transistor(float(c["transistor"]["v_th"]), float(c["transistor"]["k"]))
    pristine = maps["pristine"][0]
    thr = forming_threshold(pristine, c["form_v_gate"], tr)
    preformed = pristine > thr
    form_v = np.full(n, np.nan)
    steps = np.asarray(c["form_steps"], float)
    above = np.nan_to_num(maps["form"], nan=-np.inf) > thr  # (S, n)
    seen = above.any(axis=0) & ~preformed
    form_v[seen] = steps[np.argmax(above, axis=0)[seen]]
    # I-V cells: the cells read in the first I-V map
    if n_l:
        iv_idx = np.flatnonzero(np.isfinite(maps["iv_set"][0]))
        iv_set = maps["iv_set"].reshape(n_l, n_p, n)[..., iv_idx]
        iv_reset = maps["iv_reset"].reshape(n_l, n_q, n)[..., iv_idx]
    else:
        iv_idx, iv_set, iv_reset = np.zeros(0, np.int64), np.zeros((0, 0, 0)), np.zeros((0, 0, 0))
    j, m = len(c["lrs_v_gate"]), len(c["hrs_v_stop"])
    data = assemble(
        c, pristine, preformed, form_v,
        maps["lrs"].reshape(j, k, n), maps["lrs_reset"].reshape(j, k, n),
        maps["hrs"].reshape(m, k, n), maps["hrs_set"].reshape(m, k, n),
        maps["noise"], relax_t, maps["relax"], iv_idx, iv_set, iv_reset,
        source=f"characterisation run {path.name} ({source})",
    )
    data.validate()
    return data


# ---------------------------------------------------------------------- multi-level CDFs
def characterise_levels(
    array: CrossbarArray,
    v_gate: np.ndarray,
    v_stop: float,
    *,
    mask: np.ndarray | None = None,
    store: Any | None = None,
    progress: Progress | None = None,
) -> LevelData:
    """Multi-level states vs I_CC (metaplasticity paper Fig. 4b): one compliance-limited SET per level.

    For each level: RESET every cell in ``mask`` to ``v_stop``, SET at the level's gate, read.
    Then a RESET to ``v_stop`` and a read give the low-conductance state (LCS).

    Args:
        array: a formed array.
        v_gate: gate voltage per level, V, shape (L,), ascending.
        v_stop: RESET stop voltage, V (< 0).
        mask: cells to use, bool (rows, cols); default all.
        store: run store to log to (snapshots ``levels`` and ``lcs``).
        progress: ``progress(done, total, stage)``.

    Returns:
        :class:`calibration.table.LevelData` with reads (L, n) of the cells in ``mask``.
    """
    v_gate = np.asarray(v_gate, dtype=float)
    if v_gate.ndim != 1 or v_gate.size < 1:
        raise ValueError(f"v_gate must be a 1-D array of level gates, got shape {v_gate.shape}")
    mask = np.ones(array.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    idx = np.flatnonzero(mask)
    if store is not None:
        store.attach_array("array", array)
    try:
        g = np.full((v_gate.size, idx.size), np.nan)
        for l, vg in enumerate(v_gate):
            array.reset_pulse(mask, v_stop=v_stop)
            array.set_pulse(mask, v_gate=vg)
            read = array.read(mask)
            if store is not None:
                store.snapshot("levels", read, array.bench_time)
            g[l] = read.reshape(-1)[idx]
            if progress is not None:
                progress(l + 1, v_gate.size + 1, "levels")
        array.reset_pulse(mask, v_stop=v_stop)
        lcs = array.read(mask)
        if store is not None:
            store.snapshot("lcs", lcs, array.bench_time)
        if progress is not None:
            progress(v_gate.size + 1, v_gate.size + 1, "levels")
    finally:
        if store is not None:
            store.detach_array(array)
    return LevelData(v_gate=v_gate, g=g, v_stop=float(v_stop), g_lcs=lcs.reshape(-1)[idx])


def plan_from_json(text: str) -> CharacterisationPlan:
    """A plan from its JSON form (:func:`dataclasses.asdict`)."""
    d = json.loads(text)
    if "relax_times" in d:
        d["relax_times"] = tuple(d["relax_times"])
    return CharacterisationPlan(**d)


def plan_to_dict(plan: CharacterisationPlan) -> dict[str, Any]:
    return asdict(plan)


__all__ = [
    "CharacterisationPlan", "characterise", "characterise_levels", "load_characterisation",
    "forming_threshold", "assemble", "plan_from_json", "plan_to_dict",
]
