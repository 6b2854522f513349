"""PNG figures of a continual-stdp run file (matplotlib, Agg), from the metrics it holds.

One run file (:func:`draw`, ``hil report RUN.h5``), when the file holds them: spike rate over
the stream with the class being presented (paper Fig. 11), the appearance rate of every filter's
bit before and after re-training (Fig. 12), and the accuracies (global / trained / non-trained
classes, before and after re-training; Figs. 10 and 14).

A sweep folder of continual-stdp runs (:func:`draw_sweep`, ``hil sweep FILE`` then ``hil report
DIR``), mean ± std over seeds: accuracy against bits per weight (Fig. 5, swept
``filters.bits``), the class- and feature-filter accuracy over ``filters.i_c`` x
``filters.v_stop`` (contours of Fig. 6e-f, with ``filters.kind = "paper"``), accuracy against
``filters.i_c`` per dataset (Fig. 9), accuracy on the non-trained classes and global against
``filters.untrained`` (Fig. 10), and the spike rate over the stream with and without SFA
(Fig. 11, swept ``stdp.sfa``). See ``examples/sweep-continual-stdp-*.toml``.
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
        ax.bar(app["step"], app["value"], label="after continual learning")
        after = _metric(reader, "retrain.appearance_rate")
        if after is not None and len(after):
            ax.bar(after["step"], after["value"], alpha=0.5, label="after re-training")
            ax.legend(fontsize=7)
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


def draw_sweep(summary, out_dir: Path) -> list[Path]:
    """The continual-stdp figures a sweep folder's parameters allow (see the module doc).

    Args:
        summary: a :class:`hil.sweep.summary.SweepSummary` of continual-stdp runs.
    """
    out: list[Path] = []
    params = summary.config_params
    rows = [r for r in summary.rows if r.seeds]
    out_dir.mkdir(parents=True, exist_ok=True)

    def series(x: str, metrics: list[str], by: str | None) -> tuple[list, dict[str, tuple[list, list]]]:
        xs = sorted({r.params[x] for r in rows if x in r.params})
        lines: dict[str, tuple[list, list]] = {}
        groups = sorted({str(r.params.get(by)) for r in rows}) if by else [""]
        for g in groups:
            for m in metrics:
                mean, std = [], []
                for v in xs:
                    pick = [r for r in rows if r.params.get(x) == v and (not by or str(r.params.get(by)) == g)]
                    st = pick[0].mean_std(m) if pick else (np.nan, np.nan, 0)
                    mean.append(100 * st[0])
                    std.append(100 * st[1])
                lines[f"{m} {by}={g}" if by else m] = (mean, std)
        return xs, lines

    others = lambda x: next((p for p in params if p != x), None)  # noqa: E731
    if "filters.bits" in params:
        xs, lines = series("filters.bits", ["test_accuracy", "val_accuracy"], others("filters.bits"))
        out.append(sweep_figure(xs, lines, "bits per weight", "Accuracy vs bits per weight (cf. Fig. 5)",
                                out_dir / "continual_fig5_bits.png"))
    if "filters.i_c" in params and "filters.v_stop" in params:
        ics = sorted({r.params["filters.i_c"] for r in rows})
        vss = sorted({r.params["filters.v_stop"] for r in rows})
        for metric, label in (("filters_cf_val_accuracy", "class filters"), ("filters_ff_val_accuracy", "feature filters")):
            z = np.full((len(vss), len(ics)), np.nan)
            for r in rows:
                z[vss.index(r.params["filters.v_stop"]), ics.index(r.params["filters.i_c"])] = 100 * r.mean_std(metric)[0]
            if np.isfinite(z).any() and len(ics) > 1 and len(vss) > 1:
                out.append(contour_figure([i * 1e6 for i in ics], vss, z, "I_C (uA)", "V_STOP (V)",
                                          f"Accuracy of the {label} (cf. Fig. 6{'e' if 'cf' in metric else 'f'})",
                                          out_dir / f"continual_fig6_{metric}.png"))
    elif "filters.i_c" in params:
        xs, lines = series("filters.i_c", ["test_accuracy"], "dataset.name" if "dataset.name" in params else None)
        out.append(sweep_figure([x * 1e6 for x in xs], lines, "programming I_C (uA)", "Accuracy vs I_C (cf. Fig. 9)",
                                out_dir / "continual_fig9_ic.png"))
    if "filters.untrained" in params:
        xs, lines = series("filters.untrained", ["test_accuracy_untrained", "test_accuracy"], None)
        out.append(sweep_figure(xs, lines, "non-trained classes k", "Continual learning (cf. Fig. 10)",
                                out_dir / "continual_fig10_untrained.png"))
    if "stdp.sfa" in params:
        out.extend(_sfa_rates(summary, out_dir))
    return out


def _sfa_rates(summary, out_dir: Path) -> list[Path]:
    """Spike rate over the stream of the first seed with SFA on and off (Fig. 11), from the run files."""
    from hil.store import open_run
    from hil.sweep.summary import read_definition
    from hil.sweep.trial import run_path, trial_state

    fig, ax = plt.subplots(figsize=(6, 3.2))
    drawn = set()
    for t in read_definition(summary.out_dir)["trials"]:
        key = (t["params"].get("stdp.sfa"), json_key({k: v for k, v in t["params"].items() if k not in ("seed", "stdp.sfa")}))
        if key in drawn or trial_state(summary.out_dir, t["name"]) != "done":
            continue
        with open_run(run_path(summary.out_dir, t["name"])) as reader:
            rate = _metric(reader, "stdp.spike_rate")
            firings = _metric(reader, "final.stdp_firings")
        if rate is None or not len(rate):
            continue
        drawn.add(key)
        n = f", {firings['value'][-1]:.0f} firings" if firings is not None and len(firings) else ""
        ax.plot(rate["step"], rate["value"], lw=1, label=f"SFA {'on' if key[0] else 'off'} {key[1]}{n}")
    if not drawn:
        plt.close(fig)
        return []
    ax.set_xlabel("images presented")
    ax.set_ylabel("firings per image")
    ax.set_title("Spike rate with and without SFA (cf. Fig. 11)")
    ax.legend(fontsize=6)
    return [_save(fig, out_dir / "continual_fig11_sfa.png")]


def json_key(d: dict) -> str:
    import json

    return json.dumps(d, sort_keys=True) if d else ""


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
