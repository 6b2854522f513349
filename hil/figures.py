"""PNG figures of program-and-verify and read runs (matplotlib, Agg backend).

Drawn so that they do not mislead: the level CDFs are step ECDFs of every cell (no smoothing),
cells beyond the axis range are counted and marked at the edge they fall off; pulse counts use
integer bins; heat maps use the full data range (no percentile clipping) with integer cell
ticks. Each ``*_figure`` function returns the matplotlib Figure (for tests); the plain-named
function saves it as PNG.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from drivers.oplog import OpKind  # noqa: E402


def pulses_per_cell(ops: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """SET + RESET pulses per cell counted from ``/ops`` records, shape (rows, cols)."""
    pulses = ops[(ops["kind"] == OpKind.SET) | (ops["kind"] == OpKind.RESET)]
    flat = pulses["row"].astype(np.int64) * shape[1] + pulses["col"]
    return np.bincount(flat, minlength=shape[0] * shape[1]).reshape(shape)


def _save(fig: plt.Figure, path: Path, dpi: int = 130) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def level_cdf_range(levels: np.ndarray, tolerance: float) -> tuple[float, float]:
    """Axis range (S) of the level CDFs: the levels' tolerance bands plus a quarter level spacing."""
    spacing = float(np.min(np.diff(levels))) if levels.size > 1 else float(levels[0])
    low = float(levels.min()) * (1 - tolerance) - 0.25 * spacing
    high = float(levels.max()) * (1 + tolerance) + 0.25 * spacing
    return max(low, 0.0), high


def level_cdfs_figure(targets: np.ndarray, g_final: np.ndarray, tolerance: float) -> plt.Figure:
    """Step ECDF of the final conductance of the cells of each target level (cf. [META] Fig. 4b).

    Every cell counts (non-finite reads sort last); cells beyond the axis range are not hidden:
    each level's count below / above the range is marked by a triangle at that edge at the
    ECDF height where its curve leaves the axes, and the counts are listed in the legend.
    """
    fig, ax = plt.subplots(figsize=(7, 4.5))
    sel = ~np.isnan(targets)
    levels = np.unique(targets[sel])
    if levels.size == 0:
        raise ValueError("the target map has no target (all NaN): no level CDF to draw")
    lo, hi = level_cdf_range(levels, tolerance)
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(levels)))
    off_total = 0
    for level, color in zip(levels, colors):
        g = np.sort(np.where(np.isfinite(g_final[targets == level]), g_final[targets == level], np.inf))
        n = g.size
        below, above = int(np.count_nonzero(g < lo)), int(np.count_nonzero(g > hi))
        off_total += below + above
        # ECDF: F(x) = #(g <= x) / n, drawn as steps from the left edge to the right edge
        x = np.concatenate([[lo], np.clip(g, lo, hi), [hi]]) * 1e6
        y = np.concatenate([[below / n], np.arange(1, n + 1) / n, [1.0 - above / n]])
        y[1:-1] = np.where(g < lo, below / n, y[1:-1])
        y[1:-1] = np.where(g > hi, 1.0 - above / n, y[1:-1])
        label = f"{level * 1e6:.0f} µS"
        if below or above:
            label += f" ({below} below, {above} above the axis)"
        ax.step(x, y, where="post", color=color, lw=1.5, label=label)
        if below:
            ax.plot([lo * 1e6], [below / n], marker="<", ms=8, color=color, clip_on=False, ls="none")
        if above:
            ax.plot([hi * 1e6], [1.0 - above / n], marker=">", ms=8, color=color, clip_on=False, ls="none")
        ax.axvspan(level * 1e6 * (1 - tolerance), level * 1e6 * (1 + tolerance), color=color, alpha=0.12, lw=0)
    ax.set_xlim(lo * 1e6, hi * 1e6)
    ax.set_ylim(0, 1)
    outside = int(np.count_nonzero(sel & ~(np.abs(g_final - targets) <= tolerance * targets)))
    ax.set_xlabel("conductance after programming (µS)")
    ax.set_ylabel("fraction of cells (ECDF)")
    ax.set_title(f"Programmed levels (bands: ±{100 * tolerance:g}%): {outside} of {int(sel.sum())} cells outside; "
                 f"{off_total} off-scale (◀ ▶)", fontsize=9)
    ax.legend(fontsize=7, ncol=2, loc="lower right", title="target")
    ax.grid(alpha=0.3)
    return fig


def level_cdfs(path: Path, targets: np.ndarray, g_final: np.ndarray, tolerance: float) -> Path:
    """Save :func:`level_cdfs_figure` as PNG."""
    return _save(level_cdfs_figure(targets, g_final, tolerance), path)


def pulse_bins(top: int, max_bins: int = 80) -> np.ndarray:
    """Histogram edges for counts 0..top: integer-wide bins (1, 2, 3, ... counts each) centred
    on the integers, at most about ``max_bins`` of them."""
    width = max(1, int(np.ceil((top + 1) / max_bins)))
    return np.arange(0, top + width + 1, width) - 0.5


def pulse_histogram_figure(pulses: np.ndarray, max_pulses: int | None = None) -> plt.Figure:
    """Histogram of pulses (SET + RESET) per programmed cell, integer bins."""
    pulses = np.asarray(pulses)
    if pulses.size == 0:
        raise ValueError("no programmed cell: no pulse histogram to draw")
    fig, ax = plt.subplots(figsize=(6, 4))
    top = int(pulses.max())
    edges = pulse_bins(top)
    ax.hist(pulses, bins=edges, color="tab:blue")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if max_pulses:
        ax.axvline(max_pulses, color="tab:red", ls="--", label=f"cap {max_pulses}")
        ax.legend()
    width = int(edges[1] - edges[0])
    ax.set_xlabel("pulses per cell (SET + RESET)" + (f"; bins of {width}" if width > 1 else ""))
    ax.set_ylabel("cells")
    ax.set_title(f"Program-and-verify effort: mean {pulses.mean():.1f}, max {top}")
    ax.grid(alpha=0.3)
    return fig


def pulse_histogram(path: Path, pulses: np.ndarray, max_pulses: int | None = None) -> Path:
    """Save :func:`pulse_histogram_figure` as PNG."""
    return _save(pulse_histogram_figure(pulses, max_pulses), path)


def heat_map_figure(g_map: np.ndarray, title: str) -> plt.Figure:
    """Conductance map (S) as an image in µS over its full range; cells not read (NaN) grey."""
    g_map = np.asarray(g_map, dtype=float)
    rows, cols = g_map.shape
    us = g_map * 1e6
    finite = us[np.isfinite(us)]
    if finite.size == 0:
        raise ValueError("the map holds no finite conductance: no heat map to draw")
    fig, ax = plt.subplots(figsize=(6.5, min(5.5 * rows / max(cols, 1), 12) + 0.8))
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.7")
    vmin, vmax = float(finite.min()), float(finite.max())
    if vmin == vmax:
        vmin, vmax = vmin - 0.5, vmax + 0.5
    im = ax.imshow(np.ma.masked_invalid(us), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest", aspect="auto")
    n_bad = int(us.size - finite.size)
    fig.colorbar(im, ax=ax, label="conductance (µS), full range" + (f"; grey: {n_bad} cells not finite" if n_bad else ""))
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("bit line (column)")
    ax.set_ylabel("word line (row)")
    ax.set_title(title)
    return fig


def heat_map(path: Path, g_map: np.ndarray, title: str) -> Path:
    """Save :func:`heat_map_figure` as PNG."""
    return _save(heat_map_figure(g_map, title), path)
