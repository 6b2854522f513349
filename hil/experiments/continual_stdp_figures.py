"""PNG figures of a continual-stdp run file (matplotlib, Agg), from the metrics it holds.

Drawn when the file holds them: spike rate over the stream with the class being presented
(paper Fig. 11), the appearance rate of every filter's bit (Fig. 12), and the accuracies
(global / trained / non-trained classes, before and after re-training; Figs. 10 and 14).
Figs. 5, 6e-f and 9 compare several runs (bits, I_C x V_STOP, datasets): they are drawn by
``benchmarks/continual_stdp.py`` from its run files with :func:`sweep_figure`.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hil.store import RunReader  # noqa: E402


def _metric(reader: RunReader, name: str) -> np.ndarray | None:
    return reader.metric(name) if name in reader.metric_names() else None


def draw(reader: RunReader, out_dir: Path, stem: str) -> list[Path]:
    out: list[Path] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    rate, cls = _metric(reader, "stdp.spike_rate"), _metric(reader, "stdp.class_of_stream")
    if rate is not None and len(rate):
        fig, ax = plt.subplots(figsize=(6, 3.2))
        ax.plot(rate["step"], rate["value"], lw=1)
        ax.set_xlabel("images presented")
        ax.set_ylabel("firings per image")
        if cls is not None and len(cls):
            ax2 = ax.twinx()
            ax2.step(cls["step"], cls["value"], color="0.6", lw=0.6, where="post")
            ax2.set_ylabel("class presented (last of window)")
        ax.set_title("Spike rate over the stream (cf. Fig. 11)")
        out.append(_save(fig, out_dir / f"{stem}_fig11_spike_rate.png"))
    app = _metric(reader, "appearance_rate")
    if app is not None and len(app):
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.bar(app["step"], app["value"])
        ax.set_xlabel("filter")
        ax.set_ylabel("appearance rate")
        ax.set_title("Appearance rate of every filter's bit (cf. Fig. 12)")
        out.append(_save(fig, out_dir / f"{stem}_fig12_appearance.png"))
    bars = {}
    for prefix, label in (("", "after STDP"), ("retrained_", "after re-training")):
        vals = [_metric(reader, f"{prefix}test_accuracy{s}") for s in ("", "_trained", "_untrained")]
        if vals[0] is not None:
            bars[label] = [float(v["value"][-1]) * 100 if v is not None and len(v) else np.nan for v in vals]
    if bars:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        width = 0.8 / len(bars)
        for k, (label, vals) in enumerate(bars.items()):
            ax.bar(np.arange(3) + k * width, vals, width, label=label)
        ax.set_xticks(np.arange(3) + 0.4 - width / 2, ["global", "trained", "non-trained"])
        ax.set_ylabel("test accuracy (%)")
        ax.set_ylim(0, 100)
        ax.legend()
        ax.set_title("Accuracy (cf. Figs. 10, 14)")
        out.append(_save(fig, out_dir / f"{stem}_fig10_14_accuracy.png"))
    return out


def sweep_figure(x: list, series: dict[str, tuple[list, list]], xlabel: str, title: str, path: Path) -> Path:
    """Mean ± std accuracy lines over a swept parameter (Figs. 5, 9); ``series[name] = (means, stds)``."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name, (m, s) in series.items():
        ax.errorbar(x, m, yerr=s, marker="o", capsize=3, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.legend()
    return _save(fig, path)


def contour_figure(xs: list, ys: list, z: np.ndarray, xlabel: str, ylabel: str, title: str, path: Path) -> Path:
    """Contour of accuracy over (I_C, V_STOP) (Fig. 6e-f); ``z`` shape (len(ys), len(xs))."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    cs = ax.contourf(xs, ys, z, levels=12)
    fig.colorbar(cs, ax=ax, label="accuracy (%)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
