"""PNG figures of program-and-verify and read runs (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from drivers.oplog import OpKind  # noqa: E402


def pulses_per_cell(ops: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """SET + RESET pulses per cell counted from ``/ops`` records, shape (rows, cols)."""
    pulses = ops[(ops["kind"] == OpKind.SET) | (ops["kind"] == OpKind.RESET)]
    flat = pulses["row"].astype(np.int64) * shape[1] + pulses["col"]
    return np.bincount(flat, minlength=shape[0] * shape[1]).reshape(shape)


def level_cdfs(path: Path, targets: np.ndarray, g_final: np.ndarray, tolerance: float) -> Path:
    """Cumulative distribution of the final conductance for each target level (cf. [META] Fig. 4b)."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    levels = np.unique(targets[~np.isnan(targets)])
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(levels)))
    for level, color in zip(levels, colors):
        g = np.sort(g_final[targets == level] * 1e6)
        ax.plot(g, np.arange(1, g.size + 1) / g.size, color=color, lw=1.5, label=f"{level * 1e6:.0f} µS")
        ax.axvspan(level * 1e6 * (1 - tolerance), level * 1e6 * (1 + tolerance), color=color, alpha=0.12, lw=0)
    span = levels.max() - levels.min() if levels.size > 1 else levels.max()
    low, high = (levels.min() - 0.25 * span) * 1e6, (levels.max() + 0.25 * span) * 1e6
    ax.set_xlim(max(low, 0.0), high)
    sel = ~np.isnan(targets)
    outside = int(np.count_nonzero(sel & (np.abs(g_final - targets) > tolerance * targets)))
    ax.set_xlabel("conductance after programming (µS)")
    ax.set_ylabel("cumulative probability")
    ax.set_title(f"Programmed levels (bands: ±{100 * tolerance:g}%); {outside} of {int(sel.sum())} cells outside")
    ax.legend(fontsize=7, ncol=2, loc="lower right", title="target")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def pulse_histogram(path: Path, pulses: np.ndarray, max_pulses: int | None = None) -> Path:
    """Histogram of pulses (SET + RESET) per programmed cell."""
    fig, ax = plt.subplots(figsize=(6, 4))
    top = int(pulses.max()) if pulses.size else 1
    ax.hist(pulses, bins=np.arange(0, top + 2) - 0.5 if top < 80 else 80, color="tab:blue")
    if max_pulses:
        ax.axvline(max_pulses, color="tab:red", ls="--", label=f"cap {max_pulses}")
        ax.legend()
    ax.set_xlabel("pulses per cell (SET + RESET)")
    ax.set_ylabel("cells")
    ax.set_title(f"Program-and-verify effort: mean {pulses.mean():.1f}, max {top}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def heat_map(path: Path, g_map: np.ndarray, title: str) -> Path:
    """Conductance map (S) as an image in µS."""
    rows, cols = g_map.shape
    fig, ax = plt.subplots(figsize=(6.5, 5.5 * rows / max(cols, 1) + 0.8))
    us = g_map * 1e6
    finite = us[np.isfinite(us)]
    vmin, vmax = np.percentile(finite, [0.5, 99.5]) if finite.size else (0.0, 1.0)
    cmap = plt.get_cmap("viridis").with_extremes(over="red", under="black")
    im = ax.imshow(us, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest", aspect="auto")
    fig.colorbar(im, ax=ax, extend="both", label="conductance (µS); red/black: beyond the 0.5-99.5 % range")
    ax.set_xlabel("bit line (column)")
    ax.set_ylabel("word line (row)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
