"""Figures of a sweep (PNG, matplotlib Agg), mean ± std over seeds as error bars.

* the m* sweep: final test accuracy per task against m* (the metaplasticity paper's Fig. 2a);
* the main metrics against every other swept parameter (one line per value of the others);
* a 2-D map of the main metric over the first two swept parameters (SiOx paper Fig. 6e-f style).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hil.sweep.summary import CUMULATIVE, ConfigRow, SweepSummary  # noqa: E402

M_STAR = "learning.m_star"


def main_metrics(summary: SweepSummary) -> list[str]:
    """The results a figure shows: test accuracies per task (else validation), or a program
    run's yield."""
    names = summary.metrics
    if "yield" in names:
        return ["yield"]
    results = [m for m in names if m not in CUMULATIVE and not m.startswith(("energy", "run_wall_time", "val."))]
    return results or [m for m in names if m.startswith("val.")]


def _label(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _sort_key(value: Any) -> tuple:
    return (0, value, "") if isinstance(value, (int, float)) and not isinstance(value, bool) else (1, 0, _label(value))


def _series(rows: list[ConfigRow], x: str) -> dict[str, list[ConfigRow]]:
    """Rows grouped by the values of every parameter except ``x``, each group sorted by ``x``."""
    groups: dict[str, list[ConfigRow]] = {}
    for r in rows:
        if x not in r.params:
            continue
        rest = ", ".join(f"{k.rsplit('.', 1)[-1]}={_label(v)}" for k, v in r.params.items() if k != x)
        groups.setdefault(rest, []).append(r)
    for g in groups.values():
        g.sort(key=lambda r: _sort_key(r.params[x]))
    return groups


def against(summary: SweepSummary, x: str, metrics: list[str], path: Path, title: str | None = None) -> Path:
    """Each metric (mean ± std over seeds) against the swept parameter ``x``."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    groups = _series(summary.rows, x)
    numeric = all(isinstance(r.params[x], (int, float)) and not isinstance(r.params[x], bool)
                  for g in groups.values() for r in g)
    categories = sorted({_label(r.params[x]) for g in groups.values() for r in g})
    for rest, rows in groups.items():
        xs = [r.params[x] if numeric else categories.index(_label(r.params[x])) for r in rows]
        for m in metrics:
            stats = [r.mean_std(m) for r in rows]
            mean = np.array([s[0] for s in stats])
            std = np.array([s[1] for s in stats])
            label = m if not rest else f"{m} ({rest})"
            scale = 100.0 if _is_fraction(m) else 1.0
            ax.errorbar(xs, scale * mean, yerr=scale * std, marker="o", capsize=3, lw=1.2, label=label)
    if not numeric:
        ax.set_xticks(range(len(categories)), categories, rotation=20)
    else:
        positive = [r.params[x] for g in groups.values() for r in g if r.params[x] > 0]
        if positive and max(positive) > 20 * min(positive):  # e.g. m* = 0, 1, 3, ..., 100
            ax.set_xscale("symlog", linthresh=min(positive))
    ax.set_xlabel(x)
    ax.set_ylabel(_ylabel(metrics))
    n = max((len(r.seeds) for r in summary.rows), default=0)
    ax.set_title(title or f"{', '.join(metrics)} against {x} (mean ± std over {n} seeds)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _is_fraction(metric: str) -> bool:
    return metric == "yield" or metric.split(".")[-1] not in ("bench_time", "pulses", "cells", "failures") and \
        not metric.endswith(("_s", "pulses"))


def _ylabel(metrics: list[str]) -> str:
    if all(_is_fraction(m) for m in metrics):
        return "yield (%)" if metrics == ["yield"] else "final test accuracy (%)"
    return ", ".join(metrics)


def _axis(rows: list[ConfigRow], p: str) -> list[str]:
    """The distinct values of ``p`` as labels, numbers in ascending order."""
    values = {_label(r.params[p]): r.params[p] for r in rows}
    return [label for label, _ in sorted(values.items(), key=lambda kv: _sort_key(kv[1]))]


def map_2d(summary: SweepSummary, x: str, y: str, metric: str, path: Path) -> Path:
    """Mean of ``metric`` over the grid of two swept parameters, std written in each cell."""
    both = [r for r in summary.rows if x in r.params and y in r.params]
    xs, ys = _axis(both, x), _axis(both, y)
    mean = np.full((len(ys), len(xs)), np.nan)
    std = np.full_like(mean, np.nan)
    for r in both:
        i, j = ys.index(_label(r.params[y])), xs.index(_label(r.params[x]))
        m, s, n = r.mean_std(metric)
        if n:  # several rows per cell (a third parameter): the last one is shown
            mean[i, j], std[i, j] = m, s
    scale = 100.0 if _is_fraction(metric) else 1.0
    fig, ax = plt.subplots(figsize=(1.2 * len(xs) + 2.5, 0.9 * len(ys) + 2))
    im = ax.imshow(scale * mean, origin="lower", cmap="viridis", aspect="auto")
    for i in range(len(ys)):
        for j in range(len(xs)):
            if not math.isnan(mean[i, j]):
                ax.text(j, i, f"{scale * mean[i, j]:.3g}\n±{scale * std[i, j]:.2g}", ha="center", va="center",
                        fontsize=7, color="white")
    ax.set_xticks(range(len(xs)), xs)
    ax.set_yticks(range(len(ys)), ys)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    fig.colorbar(im, ax=ax, label=f"{metric}{' (%)' if scale == 100 else ''}")
    ax.set_title(f"{metric}: mean (± std over seeds)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def sweep_report(summary: SweepSummary, out_dir: Path) -> list[Path]:
    """Every figure the sweep's parameters allow; returns the PNG paths."""
    metrics = main_metrics(summary)
    params = summary.config_params
    if not metrics or not any(r.seeds for r in summary.rows):
        return []
    paths = []
    if M_STAR in params:
        paths.append(against(summary, M_STAR, metrics, out_dir / "sweep_mstar.png",
                             title="Final test accuracy per task against m* (cf. Fig. 2a), mean ± std over seeds"))
    for p in params:
        if p != M_STAR:
            paths.append(against(summary, p, metrics, out_dir / f"sweep_{p.replace('.', '_')}.png"))
    if len(params) >= 2:
        paths.append(map_2d(summary, params[0], params[1], metrics[0], out_dir / f"sweep_map_{metrics[0].replace('.', '_')}.png"))
    return paths
