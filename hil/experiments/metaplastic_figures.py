"""Figures of metaplastic runs (PNG, matplotlib Agg), as the paper draws them.

* Fig. 2 — test accuracy of every task through the sequence (one curve per task and run; solid
  metaplastic, dashed plain), and, when runs with several m* are given, the final accuracy of
  both tasks against m* (the m* sweep; the plain rule is drawn at m* = 0).
* Fig. 5b — percentage of devices against the number of programming operations: program-and-
  verify sessions per device after the initial programming, and programming pulses per device.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hil.store import RunReader  # noqa: E402


def _history(reader: RunReader) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Task name -> (epochs, accuracy %), last value per epoch (a resumed run may repeat epochs)."""
    out = {}
    for name in reader.metric_names():
        if name.startswith("acc."):
            m = reader.metric(name)
            last = {int(e): float(v) for e, v in zip(m["epoch"], m["value"])}
            ep = np.array(sorted(last))
            out[name[4:]] = (ep, 100 * np.array([last[e] for e in ep]))
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
        ep_acc = 0
        for k, (task, (ep, acc)) in enumerate(sorted(_history(reader).items(), key=lambda kv: kv[1][0][0])):
            ax.plot(ep, acc, style, marker="o", ms=3, color=colors[k % len(colors)], label=f"{task} ({_label(reader)})")
            boundaries.add(int(ep[0]) - 0.5)
            ep_acc = max(ep_acc, int(ep[-1]))
    for b in sorted(boundaries)[1:]:
        ax.axvline(b, color="0.6", lw=0.8)
    ax.set_xlabel("epoch (whole sequence)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title("Sequential learning (Fig. 2b/c): solid metaplastic, dashed plain")
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
    ax.set_ylabel("test accuracy after the sequence (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("Impact of m* (Fig. 2a)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def fig5b_programming(path: Path, reader: RunReader) -> Path | None:
    """Percentage of devices vs programming operations (all layers, end of the sequence)."""
    names = reader.snapshot_names()
    sessions = [reader.snapshot(n)[0].ravel() for n in names if n.startswith("reprogrammed.")]
    pulses = [reader.snapshot(n)[0].ravel() for n in names if n.startswith("programming_events.")]
    if not sessions:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, data, xlabel in (
        (axes[0], np.concatenate(sessions), "program-and-verify sessions per device (after initial programming)"),
        (axes[1], np.concatenate(pulses), "programming pulses per device (forming + SET + RESET)"),
    ):
        counts = np.bincount(data.astype(np.int64))
        x = np.arange(counts.size)
        ax.bar(x, 100 * counts / data.size, width=1.0, color="tab:blue")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel, fontsize=9)
        ax.set_ylabel("devices (%)")
        ax.grid(alpha=0.3)
        ax.set_title(f"mean {data.mean():.1f}, max {int(data.max())}", fontsize=9)
    fig.suptitle("Devices vs programming operations after MNIST and Fashion-MNIST (Fig. 5b)")
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
    fig5 = fig5b_programming(out_dir / f"{stem}_fig5b_programming.png", reader)
    if fig5 is not None:
        paths.append(fig5)
    return paths
