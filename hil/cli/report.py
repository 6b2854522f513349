"""``hil report RUN.h5``: draw a run's figures as PNG files next to it (or in --out-dir)."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

import numpy as np

from hil.store import open_run


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="draw a run's figures as PNG")
    p.add_argument("run_file", type=Path, metavar="RUN.h5|SWEEP_DIR")
    p.add_argument("--out-dir", type=Path, help="directory for the PNG files (default: beside the run file)")
    p.add_argument("--with", dest="others", type=Path, nargs="+", default=[], metavar="RUN.h5",
                   help="further runs drawn in the same figures (metaplastic runs: plain baseline, m* sweep)")
    p.set_defaults(func=run)


def _require_snapshots(reader, names: tuple[str, ...], what: str) -> None:
    """ValueError unless the run holds every snapshot in ``names`` (else there is nothing to draw)."""
    missing = [n for n in names if n not in reader.snapshot_names()]
    if missing:
        status = reader.attrs.get("status", "unknown")
        raise ValueError(f"{str(reader.path)!r} (status {status!r}) has no {what} yet (no snapshot {missing[0]!r}): "
                         "nothing to draw")


def program_report(reader, out_dir: Path, stem: str) -> list[Path]:
    """Figures of a ``hil program`` run: per-level CDFs and the pulses-per-cell histogram."""
    _require_snapshots(reader, ("targets", "final"), "finished programming")
    from hil import figures  # matplotlib only when drawing

    cfg = reader.config
    targets, _ = reader.snapshot("targets")
    g_final, _ = reader.snapshot("final")
    shape = targets.shape
    pulses = figures.pulses_per_cell(reader.ops, shape)[~np.isnan(targets)]
    return [
        figures.level_cdfs(out_dir / f"{stem}_level_cdf.png", targets, g_final, cfg["tolerance"]),
        figures.pulse_histogram(out_dir / f"{stem}_pulses.png", pulses, cfg.get("max_pulses")),
    ]


def read_report(reader, out_dir: Path, stem: str) -> list[Path]:
    _require_snapshots(reader, ("read",), "read map")
    from hil import figures

    g, t = reader.snapshot("read")
    return [figures.heat_map(out_dir / f"{stem}_map.png", g, f"read at t = {t:.0f} s")]


def require_finished_epoch(reader) -> None:
    """ValueError unless the run recorded the accuracy of at least one finished epoch."""
    for name in reader.metric_names():
        if name.startswith(("val.", "acc.")) and reader.metric(name).size:
            return
    status = reader.attrs.get("status", "unknown")
    raise ValueError(f"{str(reader.path)!r} (status {status!r}) has no finished epoch yet: nothing to draw")


def metaplastic_report(reader, out_dir: Path, stem: str, others=()) -> list[Path]:
    from hil.experiments.metaplastic_figures import metaplastic_report as build

    for r in (reader, *others):
        require_finished_epoch(r)
    return build(reader, out_dir, stem, list(others))


#: Figure builders by the ``command`` recorded in a run's configuration.
REPORTS = {"program": program_report, "read": read_report, "metaplastic": metaplastic_report}


def sweep_report(sweep_dir: Path, out_dir: Path | None) -> int:
    """``hil report DIR`` of a sweep folder: its table and its figures (into DIR by default)."""
    from hil.sweep.figures import sweep_report as draw
    from hil.sweep.summary import format_table, summarise

    summary = summarise(sweep_dir)
    print(format_table(summary))
    for path in draw(summary, out_dir or sweep_dir):
        print(path)
    for path in _experiment_sweep_figures(summary, out_dir or sweep_dir):
        print(path)
    return 0


def _experiment_sweep_figures(summary, out_dir: Path) -> list[Path]:
    """The experiment's own sweep figures (its ``report_sweep`` classmethod, if it has one)."""
    from hil.experiments import registry
    from hil.sweep.summary import read_definition
    from hil.sweep.trial import run_path, trial_state

    for t in read_definition(summary.out_dir)["trials"]:
        if trial_state(summary.out_dir, t["name"]) == "done":
            with open_run(run_path(summary.out_dir, t["name"])) as reader:
                kind = reader.config.get("experiment")
            builder = getattr(registry.get(kind), "report_sweep", None) if kind else None
            return builder(summary, out_dir) if builder else []
    return []


def run(args: argparse.Namespace) -> int:
    if args.run_file.is_dir():
        if args.others:
            raise ValueError("--with is for run files, not for a sweep folder")
        return sweep_report(args.run_file, args.out_dir)
    out_dir = args.out_dir or args.run_file.resolve().parent
    if not out_dir.is_dir():
        raise ValueError(f"--out-dir {str(out_dir)!r} is not a directory")
    with open_run(args.run_file) as reader:
        kind = reader.config.get("command") or reader.config.get("experiment")
        builder = REPORTS.get(kind)
        if builder is None and reader.config.get("experiment") is not None:
            from hil.experiments import registry

            builder = registry.get(kind).report
        if builder is None:
            raise ValueError(f"no report for runs of kind {kind!r}; known: {sorted(REPORTS)}")
        if args.others:
            if kind != "metaplastic":
                raise ValueError("--with is only for metaplastic runs")
            with contextlib.ExitStack() as stack:
                others = [stack.enter_context(open_run(p)) for p in args.others]
                paths = builder(reader, out_dir, args.run_file.stem, others)
        else:
            paths = builder(reader, out_dir, args.run_file.stem)
    for path in paths:
        print(path)
    return 0
