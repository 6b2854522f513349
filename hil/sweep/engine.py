"""Run a validated sweep into its folder: write the trial files, skip finished trials, run the
rest on an executor with a progress bar over trials."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

import hil
from hil.sweep import tomlfile
from hil.sweep.spec import SweepPlan, Trial, program_argv
from hil.sweep.trial import TrialJob, TrialOutcome, clean_partials, trial_state

log = logging.getLogger(__name__)

SWEEP_JSON = "sweep.json"
TRIALS_DIR = "trials"


@dataclass
class SweepReport:
    """What one ``hil sweep`` invocation did.

    Attributes:
        skipped: trials already complete (not run again).
        ran: trials run by this invocation; ``failed``: those of them that failed.
        wall_time: s.
    """

    skipped: list[str] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    wall_time: float = 0.0
    trial_times: dict[str, float] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not self.failed


def trial_file(out_dir: Path, trial: Trial) -> Path:
    return out_dir / TRIALS_DIR / f"{trial.name}.toml"


def _trial_text(plan: SweepPlan, trial: Trial, base_dir: Path) -> str:
    params = ", ".join(f"{k} = {v!r}" for k, v in trial.params.items())
    if trial.kind == "experiment":
        header = (f"Trial {trial.name} of the sweep {plan.source.name} ({params}).\n"
                  f"Rerun it alone: hil run {TRIALS_DIR}/{trial.name}.toml --out {trial.name}.h5")
        config = {**trial.config, "out": f"{trial.name}.h5"}
        return tomlfile.dumps(config, header)
    argv = ["program", *program_argv(trial.config, base_dir)]
    header = (f"Trial {trial.name} of the sweep {plan.source.name} ({params}): a `hil program` run.\n"
              f"Rerun it alone: hil {' '.join(argv)} --out {trial.name}.h5")
    return tomlfile.dumps({"command": "program", "argv": argv, "args": trial.config}, header)


def prepare(plan: SweepPlan) -> None:
    """Create the folder, ``sweep.json`` and every ``trials/NAME.toml`` (each written atomically)."""
    out = plan.out_dir
    (out / TRIALS_DIR).mkdir(parents=True, exist_ok=True)
    base_dir = plan.source.parent.resolve()
    _atomic_write(out / SWEEP_JSON, json.dumps(plan.to_json(), indent=1, default=str))
    for t in plan.trials:
        _atomic_write(trial_file(out, t), _trial_text(plan, t, base_dir))


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def job_for(plan: SweepPlan, trial: Trial) -> TrialJob:
    """The worker's view of a trial: the ``hil`` arguments and absolute paths."""
    out = plan.out_dir.resolve()
    if trial.kind == "experiment":
        argv = ("run", str(trial_file(out, trial)), "--no-progress", "--no-figures", "--overwrite")
    else:
        argv = ("program", *program_argv(trial.config, plan.source.parent.resolve()), "--overwrite")
    package_root = str(Path(hil.__file__).resolve().parent.parent)
    return TrialJob(trial.name, argv, str(out), str(Path.cwd()), package_root)


def pending_trials(plan: SweepPlan) -> list[Trial]:
    """Trials without a complete run file (missing or failed), in sweep order (call after
    :func:`~hil.sweep.trial.clean_partials`: no trial of this folder runs elsewhere)."""
    return [t for t in plan.trials if trial_state(plan.out_dir, t.name) != "done"]


def run_sweep(plan: SweepPlan, executor: Any, *, progress: bool = True) -> SweepReport:
    """Run every unfinished trial of ``plan`` on ``executor`` (a Local- or DaskExecutor)."""
    t0 = time.perf_counter()
    prepare(plan)
    clean_partials(plan.out_dir)
    todo = pending_trials(plan)
    report = SweepReport(skipped=[t.name for t in plan.trials if t not in todo])
    bar = tqdm(total=len(plan.trials), initial=len(report.skipped), desc=f"sweep {plan.out_dir.name}",
               unit="trial", disable=not progress, dynamic_ncols=True, smoothing=0)

    def postfix() -> None:
        bar.set_postfix({"running": executor.running(), "failed": len(report.failed)}, refresh=True)

    try:
        for outcome in executor.map([job_for(plan, t) for t in todo], tick=postfix if progress else None):
            _record(report, outcome)
            bar.update(1)
            postfix() if progress else None
    finally:
        bar.close()
    report.wall_time = time.perf_counter() - t0
    return report


def _record(report: SweepReport, outcome: TrialOutcome) -> None:
    report.ran.append(outcome.name)
    report.trial_times[outcome.name] = outcome.wall_time
    if not outcome.ok:
        report.failed[outcome.name] = outcome.error
        log.warning("trial %s failed: %s", outcome.name, outcome.error.splitlines()[0] if outcome.error else "")
