"""Figures of metaplastic runs (PNG, matplotlib Agg), as the paper draws them.

* Fig. 2 — validation accuracy of every task after every epoch (lines; solid metaplastic,
  dashed plain) and the test accuracy where the run's protocol evaluated it (markers), and,
  when runs with several m* are given, the final accuracy of both tasks against m* (validation;
  the plain rule is drawn at m* = 0).
* Fig. 5b — percentage of devices against the number of programming operations after the
  initial programming, split into level changes, retries of cells that missed the tolerance,
  and drift refreshes, one line per run (metaplastic against plain); and programming pulses
  per device.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hil.store import RunReader  # noqa: E402


def _history(reader: RunReader, prefix: str = "val.") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Task name -> (epochs, accuracy %) of metrics ``<prefix><task>`` (``val.``: validation,
    ``acc.``: test), last value per epoch (a resumed run may repeat epochs)."""
    out = {}
    for name in reader.metric_names():
        if name.startswith(prefix):
            m = reader.metric(name)
            last = {int(e): float(v) for e, v in zip(m["epoch"], m["value"])}
            ep = np.array(sorted(last))
            out[name[len(prefix):]] = (ep, 100 * np.array([last[e] for e in ep]))
    return out


def _label(reader: RunReader) -> str:
    lc = reader.config["learning"]
    return f"m*={lc['m_star']:g}" if lc["rule"] == "metaplastic" else "plain"


def fig2_accuracy(path: Path, readers: list[RunReader]) -> Path:
    """Accuracy of every task after every epoch, for each run."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    boundaries = set()
    for reader in readers:
        style = "-" if reader.config["learning"]["rule"] == "metaplastic" else "--"
        test = _history(reader, "acc.")
        lines = _history(reader) or test  # run files from before the validation split: test only
        for k, (task, (ep, acc)) in enumerate(sorted(lines.items(), key=lambda kv: kv[1][0][0])):
            color = colors[k % len(colors)]
            ax.plot(ep, acc, style, color=color, label=f"{task} val ({_label(reader)})")
            if task in test:
                ax.plot(*test[task], "D", ms=5, mfc="none", color=color, label=f"{task} test ({_label(reader)})")
            boundaries.add(int(ep[0]) - 0.5)
    for b in sorted(boundaries)[1:]:
        ax.axvline(b, color="0.6", lw=0.8)
    ax.set_xlabel("epoch (whole sequence)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title("Sequential learning (Fig. 2b/c): validation lines, test markers; solid metaplastic, dashed plain",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def fig2_sweep(path: Path, readers: list[RunReader]) -> Path:
    """Final accuracy of each task against m* (plain rule at m* = 0)."""
    points: dict[str, list[tuple[float, float]]] = {}
    for reader in readers:
        lc = reader.config["learning"]
        m = lc["m_star"] if lc["rule"] == "metaplastic" else 0.0
        for task, (ep, acc) in sorted(_history(reader).items(), key=lambda kv: kv[1][0][0]):
            points.setdefault(task, []).append((m, acc[-1]))
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for task, pts in points.items():
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=task)
    ax.set_xlabel("m*")
    ax.set_ylabel("validation accuracy after the sequence (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("Impact of m* (Fig. 2a)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


SESSION_LABELS = {"level": "level changes", "retry": "retries (missed tolerance)", "refresh": "drift refreshes"}


def _per_device(reader: RunReader, prefix: str) -> np.ndarray | None:
    """Last snapshot of every layer ``<prefix>layer<l>``, concatenated (None if absent)."""
    names = sorted(n for n in reader.snapshot_names() if n.startswith(prefix) and n[len(prefix):].startswith("layer"))
    return np.concatenate([reader.snapshot(n)[0].ravel() for n in names]) if names else None


def fig5b_programming(path: Path, reader: RunReader, others: list[RunReader] | None = None) -> Path | None:
    """Percentage of devices vs programming operations (all layers, end of the sequence), by
    kind of session, for ``reader`` and the comparison runs ``others`` (e.g. plain vs metaplastic)."""
    readers = [r for r in [reader, *(others or [])] if _per_device(r, "programming_events.") is not None]
    if not readers:
        return None
    fig, axes = plt.subplots(1, 4, figsize=(17, 4))
    for r in readers:
        style = "-" if r.config["learning"]["rule"] == "metaplastic" else "--"
        panels = [(_per_device(r, f"sessions.{k}."), SESSION_LABELS[k]) for k in SESSION_LABELS]
        if panels[0][0] is None:  # a run file from before the split: all sessions together
            panels = [(_per_device(r, "reprogrammed."), "program-and-verify sessions (all kinds)"), (None, ""), (None, "")]
        panels.append((_per_device(r, "programming_events."), "programming pulses (forming + SET + RESET)"))
        for ax, (data, title) in zip(axes, panels):
            if data is None:
                continue
            counts = np.bincount(data.astype(np.int64))
            x = np.arange(counts.size)
            keep = counts > 0
            ax.plot(x[keep], 100 * counts[keep] / data.size, style, marker="o", ms=3,
                    label=f"{_label(r)}: mean {data.mean():.2f}, max {int(data.max())}")
            ax.set_title(title, fontsize=9)
    for ax in axes:
        ax.set_yscale("log")
        ax.set_xlabel("operations per device", fontsize=9)
        ax.set_ylabel("devices (%)")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    fig.suptitle("Devices vs programming operations after the sequence (Fig. 5b); sessions after the initial programming")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def metaplastic_report(reader: RunReader, out_dir: Path, stem: str, others: list[RunReader] | None = None) -> list[Path]:
    """All figures of a metaplastic run (plus comparison runs ``others``)."""
    readers = [reader, *(others or [])]
    paths = [fig2_accuracy(out_dir / f"{stem}_fig2_accuracy.png", readers)]
    if len({(r.config["learning"]["rule"], r.config["learning"]["m_star"]) for r in readers}) > 1:
        paths.append(fig2_sweep(out_dir / f"{stem}_fig2_mstar.png", readers))
    fig5 = fig5b_programming(out_dir / f"{stem}_fig5b_programming.png", reader, others)
    if fig5 is not None:
        paths.append(fig5)
    return paths
