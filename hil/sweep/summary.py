"""A sweep folder -> one row per configuration with mean ± std over seeds of every final metric.

The final metrics of a run are its ``/metrics/final.*`` (an experiment's summary: accuracy per
task, ...), plus the last value of the cumulative device metrics where present (estimated bench
time, pulses, cells programmed, energy). A ``hil program`` run writes only summary metrics; all
of them are taken (yield, mean/max pulses, bench time, ...). ``wall_time_s`` of every run comes
from its start and end times.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from hil.store import open_run
from hil.sweep.trial import failed_path, run_path, trial_state

#: Cumulative metrics of an experiment whose last value is a final result.
CUMULATIVE = ("bench_time", "programming.pulses", "programming.cells", "programming.failures")


def run_metrics(path: str | Path) -> dict[str, float]:
    """The final scalar metrics of one run file (see the module doc)."""
    out: dict[str, float] = {}
    with open_run(path) as reader:
        names = reader.metric_names()
        program_run = reader.config.get("command") == "program"
        for name in names:
            if name.startswith("final."):
                key = name[len("final."):]
            elif program_run or name in CUMULATIVE or name.startswith("energy"):
                key = name
            else:
                continue
            table = reader.metric(name)
            if len(table):
                out[key] = float(table["value"][-1])
        attrs = reader.attrs
    try:
        t0 = datetime.fromisoformat(str(attrs["start_time"]))
        t1 = datetime.fromisoformat(str(attrs["end_time"]))
        out["run_wall_time_s"] = (t1 - t0).total_seconds()
    except (KeyError, ValueError):
        pass
    return out


@dataclass
class ConfigRow:
    """One configuration of a sweep (its trials differ only by seed)."""

    params: dict[str, Any]
    seeds: list[Any] = field(default_factory=list)  # seeds with a complete run
    failed: int = 0
    missing: int = 0
    values: dict[str, list[float]] = field(default_factory=dict)

    def mean_std(self, metric: str) -> tuple[float, float, int]:
        """(mean, sample std (ddof=1; 0 for one seed), number of seeds) of a metric."""
        v = np.asarray(self.values.get(metric, []), dtype=float)
        if v.size == 0:
            return math.nan, math.nan, 0
        return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0, int(v.size)


@dataclass
class SweepSummary:
    out_dir: Path
    swept: list[str]
    rows: list[ConfigRow]
    counts: dict[str, int]  # done / failed / missing trials
    errors: dict[str, str]  # failed trial -> first line of its error

    @property
    def metrics(self) -> list[str]:
        names: dict[str, None] = {}
        for r in self.rows:
            names.update(dict.fromkeys(r.values))
        return sorted(names)

    @property
    def config_params(self) -> list[str]:
        return [p for p in self.swept if p != "seed"]


def read_definition(out_dir: str | Path) -> dict[str, Any]:
    path = Path(out_dir) / "sweep.json"
    if not path.is_file():
        raise ValueError(f"{str(out_dir)!r} is not a sweep folder (no sweep.json; run `hil sweep SWEEP.toml` first)")
    return json.loads(path.read_text())


def summarise(out_dir: str | Path) -> SweepSummary:
    """Read a sweep folder: the state of every trial and the metrics of the complete ones."""
    out_dir = Path(out_dir)
    definition = read_definition(out_dir)
    rows: dict[str, ConfigRow] = {}
    counts = {"done": 0, "running": 0, "failed": 0, "missing": 0}
    errors: dict[str, str] = {}
    for t in definition["trials"]:
        params = {k: v for k, v in t["params"].items() if k != "seed"}
        row = rows.setdefault(json.dumps(params, sort_keys=True), ConfigRow(params))
        state = trial_state(out_dir, t["name"])
        counts[state] += 1
        if state == "done":
            row.seeds.append(t["params"].get("seed"))
            for k, v in run_metrics(run_path(out_dir, t["name"])).items():
                row.values.setdefault(k, []).append(v)
        elif state == "failed":
            row.failed += 1
            try:
                err = json.loads(failed_path(out_dir, t["name"]).read_text()).get("error", "")
            except (OSError, ValueError):
                err = "(unreadable failure record)"
            errors[t["name"]] = err.strip().splitlines()[-1] if err.strip() else ""
        else:  # missing or running
            row.missing += 1
    return SweepSummary(out_dir, definition["swept"], list(rows.values()), counts, errors)


def _fmt(mean: float, std: float, n: int) -> str:
    if n == 0:
        return "-"
    return f"{mean:.4g} ± {std:.2g}"


def format_table(summary: SweepSummary, metrics: list[str] | None = None) -> str:
    """A plain-text table: one row per configuration, mean ± std (over n seeds) per metric."""
    metrics = metrics if metrics is not None else summary.metrics
    params = summary.config_params
    header = [*params, "seeds", "failed", "missing", *metrics]
    lines = [header]
    for r in summary.rows:
        cells = [json.dumps(r.params.get(p)) if not isinstance(r.params.get(p), (int, float, str)) else str(r.params.get(p))
                 for p in params]
        cells += [str(len(r.seeds)), str(r.failed), str(r.missing)]
        cells += [_fmt(*r.mean_std(m)) for m in metrics]
        lines.append(cells)
    widths = [max(len(row[k]) for row in lines) for k in range(len(header))]
    text = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    c = summary.counts
    text.append(f"{c['done']} done, {c['running']} running, {c['failed']} failed, {c['missing']} missing of "
                f"{sum(c.values())} trials in {summary.out_dir}")
    for name, err in summary.errors.items():
        text.append(f"  failed {name}: {err}")
    return "\n".join(text)
