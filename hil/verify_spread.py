"""The conductance spread that program-and-verify leaves, measured as Milo et al. report it.

Milo et al., IEEE IRPS 2021 (see :mod:`calibration.published`), program a 4-kbit HfO2 1T1R
array to multi-level targets with IGVVA (SET pulses of fixed amplitude, the gate voltage raised
step by step, a verify read after every pulse) and report the spread of the conductances read
back after programming (their Fig. 4). Their exact step, acceptance window and pulse budget are
not in the material available to us, so :data:`MILO_LIKE` states ours, chosen like theirs:

* strategy: IGVVA, gate step 10 mV from the bottom of the gate range, SET at the technology's
  ``v_set``; an overshoot is RESET and the gate restarts 4 steps lower;
* acceptance: +-2 % of the target (``tolerance=0.02``), verified into the inner half
  (``verify_band=0.5``: +-1 %);
* budget: 100 pulses (SET + RESET) per cell;
* read-back: one read of every cell ``readback_delay`` = 1 s after the whole array is programmed
  (cells programmed first have relaxed for the whole programming time, as on the bench);
* spread: per level, ``IQR / 1.349`` of the read-back conductances (the one-sigma of a normal
  distribution), robust to the few stuck and unconverged cells a distribution plot shows as
  tails.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drivers.array import CrossbarArray
from hil.program import IGVVA, ProgramReport, program_verify

#: Program-and-verify settings like Milo et al.'s (see the module docstring).
MILO_LIKE = {"tolerance": 0.02, "verify_band": 0.5, "max_pulses": 100}
#: The conductances at which the spread is compared, S.
MILO_LEVELS = (50e-6, 100e-6, 150e-6, 200e-6)


@dataclass(frozen=True)
class SpreadResult:
    """Spread per target level after program-and-verify.

    Attributes:
        g_target: target conductances, S, shape (L,).
        g_median: median read-back conductance per level, S, shape (L,).
        sigma: robust one-sigma spread (IQR / 1.349) per level, S, shape (L,).
        n_cells: cells per level, shape (L,).
        yield_: fraction per level whose read-back lies within the tolerance, shape (L,).
        report: the program-and-verify report.
    """

    g_target: np.ndarray
    g_median: np.ndarray
    sigma: np.ndarray
    n_cells: np.ndarray
    yield_: np.ndarray
    report: ProgramReport


def robust_sigma(values: np.ndarray) -> float:
    """``IQR / 1.349`` of ``values`` (the standard deviation for a normal distribution)."""
    q25, q75 = np.percentile(np.asarray(values, dtype=float), [25, 75])
    return float((q75 - q25) / 1.349)


def measure_spread(array: CrossbarArray, levels: tuple[float, ...] = MILO_LEVELS, *,
                   mask: np.ndarray | None = None, readback_delay: float = 1.0,
                   settings: dict | None = None) -> SpreadResult:
    """Program ``levels`` into the array (interleaved: cell ``k`` gets level ``k % L``), read
    every cell back once after ``readback_delay`` (s) and return the spread per level.

    Args:
        array: a formed array (simulated or bench).
        levels: target conductances, S.
        mask: optional (rows, cols) boolean of usable cells (others are left alone).
        readback_delay: wait between the end of programming and the read-back, s (>= 0).
        settings: program-and-verify settings; default :data:`MILO_LIKE`.
    """
    if readback_delay < 0:
        raise ValueError(f"readback_delay={readback_delay!r} must be >= 0 s")
    settings = dict(MILO_LIKE if settings is None else settings)
    g = np.asarray(levels, dtype=float)
    level_of = (np.arange(array.size) % g.size).reshape(array.shape)
    targets = g[level_of]
    if mask is not None:
        targets = np.where(np.asarray(mask, dtype=bool), targets, np.nan)
    report = program_verify(array, targets, strategy=IGVVA(), **settings)
    array.wait(readback_delay)
    read = array.read()
    sel = ~np.isnan(targets)
    med, sig, n, yld = (np.zeros(g.size) for _ in range(4))
    for l, target in enumerate(g):
        cells = sel & (level_of == l)
        values = read[cells]
        n[l] = values.size
        med[l] = np.median(values) if values.size else np.nan
        sig[l] = robust_sigma(values) if values.size >= 4 else np.nan
        yld[l] = np.mean(np.abs(values - target) <= settings["tolerance"] * target) if values.size else np.nan
    return SpreadResult(g, med, sig, n.astype(int), yld, report)
