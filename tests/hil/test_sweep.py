"""hil sweep: the sweep file, validation before any trial, the local executor, resume, summary."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest

from hil.cli import main
from hil.experiments import registry
from hil.experiments.schema import ConfigError
from hil.store import RunStore
from hil.sweep import engine
from hil.sweep.executors import LocalExecutor
from hil.sweep.figures import sweep_report
from hil.sweep.spec import load_sweep, trial_name
from hil.sweep.summary import format_table, run_metrics, summarise
from hil.sweep.trial import SINGLE_THREAD_ENV, child_env, failed_path, run_path
from sweep_helpers import run_file_content, write_program_sweep

TINY_EXPERIMENT = """
experiment = "metaplastic"
name = "tiny"
seed = 0
out = "tiny.h5"

[tasks]
sequence = "mnist-fmnist"
epochs = [1, 1]
train_limit = 120
test_limit = 60

[dataset]
source = "bundled"

[network]
hidden = [8]

[learning]
m_star = 2.0
batch_size = 20

[device]
backend = "software"
"""


def _experiment_sweep(tmp_path: Path, sweep_body: str) -> Path:
    (tmp_path / "tiny.toml").write_text(TINY_EXPERIMENT)
    path = tmp_path / "sweep.toml"
    path.write_text(f'[base]\nfile = "tiny.toml"\n\n[sweep]\nout = "{tmp_path / "out"}"\n' + sweep_body)
    return path


# ---------------------------------------------------------------------------- expansion
def test_grid_points_and_seeds_expand_into_named_validated_trials(tmp_path):
    path = _experiment_sweep(tmp_path, """seeds = [3, 4]
[sweep.set]
"tasks.test_limit" = 40
[sweep.grid]
"learning.m_star" = [0.0, 1.5, 3.0]
"network.hidden" = [[8], [16]]
[[sweep.points]]
"learning.rule" = "plain"
""")
    plan = load_sweep(path)
    assert len(plan.trials) == (3 * 2 + 1) * 2
    assert plan.swept == ["learning.m_star", "network.hidden", "learning.rule", "seed"]
    names = [t.name for t in plan.trials]
    assert len(set(names)) == len(names)
    first = plan.trials[0]
    assert first.params == {"learning.m_star": 0.0, "network.hidden": [8], "seed": 3}
    assert first.name == "m_star=0__hidden=8__seed=3"
    t = next(t for t in plan.trials if t.params == {"learning.m_star": 3.0, "network.hidden": [16], "seed": 4})
    assert t.config["learning"]["m_star"] == 3.0 and t.config["network"]["hidden"] == [16]
    assert t.config["seed"] == 4 and t.config["tasks"]["test_limit"] == 40  # [sweep.set] applies to all
    assert t.config["learning"]["batch_size"] == 20  # the base's own values stay
    point = [t for t in plan.trials if t.params.get("learning.rule") == "plain"]
    assert [p.params["seed"] for p in point] == [3, 4] and point[0].config["learning"]["m_star"] == 2.0
    assert not (tmp_path / "out").exists()  # parsing writes nothing


def test_trial_names_stay_unique_when_leaf_names_collide(tmp_path):
    path = _experiment_sweep(tmp_path, """[sweep.grid]
"learning.lr" = [0.01]
"learning.lr_bn" = [0.01]
[[sweep.points]]
"learning.lr" = 0.02
[[sweep.points]]
"learning.lr_bn" = 0.02
""")
    plan = load_sweep(path)
    assert len({t.name for t in plan.trials}) == 3
    assert trial_name({"a.x": 1.0, "seed": 2}) == "x=1__seed=2"


@pytest.mark.parametrize("body, words", [
    ('[sweep.grid]\n"learning.m_starr" = [1.0]\n', ["learning.m_starr", "unknown path", "sweep.grid"]),
    ('[sweep.grid]\n"learning.m_star" = [1.0, -1.0]\n', ["m_star=-1", "learning.m_star", "-1", "[0, 100]"]),
    ('[sweep.grid]\n"device.technology" = ["hfo2", "gold"]\n', ["device.technology", "'gold'", "hfo2", "siox"]),
    ('[[sweep.points]]\n"tasks.epochs" = [1]\n', ["tasks.epochs", "[1]", "2 epoch counts"]),
    ('[sweep.set]\n"nope" = 1\n', ["sweep.set", "'nope'"]),
    ('seeds = [1, 1]\n', ["sweep.seeds", "distinct"]),
    ('seeds = [1]\n[sweep.grid]\nseed = [2]\n', ["seed", "once"]),
    ('executor = "ray"\n', ["sweep.executor", "'ray'", "dask"]),
    ('[sweep.grid]\n"learning.m_star" = []\n', ["sweep.grid.learning.m_star", "non-empty"]),
    ('[sweep.dask]\nscheduler = "localhost"\n', ["sweep.dask.scheduler", "tcp://"]),
])
def test_bad_paths_and_values_are_refused_before_any_trial(tmp_path, body, words):
    path = _experiment_sweep(tmp_path, body)
    with pytest.raises(ConfigError) as err:
        load_sweep(path)
    for w in words:
        assert w in str(err.value), (w, str(err.value))
    assert str(path) in str(err.value)
    assert main(["sweep", str(path), "--no-progress"]) == 2
    assert not (tmp_path / "out").exists()  # nothing started, nothing written


def test_program_base_is_validated_by_the_commands_own_rules(tmp_path):
    path = write_program_sweep(tmp_path, tolerances=(0.05, 1.5))
    with pytest.raises(ConfigError, match=r"tolerance=1.5__seed=0 .*--tolerance 1.5 outside the allowed range \(0, 1\)"):
        load_sweep(path)
    bad = tmp_path / "bad.toml"
    bad.write_text('[base]\ncommand = "program"\n[base.args]\nlevels = 4\nshape = "4x4"\n[sweep.grid]\nlevels = [4, 999]\n')
    with pytest.raises(ConfigError, match=r"--levels 999 outside the allowed range \[2, 256\]"):
        load_sweep(bad)
    bad.write_text('[base]\ncommand = "program"\n[base.args]\nlevels = 4\nshape = "four"\n')
    with pytest.raises(ConfigError, match="argument --shape: .*'four'"):
        load_sweep(bad)
    bad.write_text('[base]\ncommand = "program"\n[base.args]\nlevles = 4\n')
    with pytest.raises(ConfigError, match="unknown path 'levles'|unknown field levles"):
        load_sweep(bad)


def test_trial_files_rerun_alone_with_the_trials_configuration(tmp_path):
    path = _experiment_sweep(tmp_path, 'seeds = [5]\n[sweep.grid]\n"learning.m_star" = [0.5]\n"network.hidden" = [[8, 4]]\n')
    plan = load_sweep(path)
    engine.prepare(plan)
    (trial,) = plan.trials
    cls, cfg = registry.load_experiment(engine.trial_file(plan.out_dir, trial))
    _, expected = registry.parse_experiment(trial.config, tmp_path)
    assert dataclasses.replace(cfg, out=expected.out) == expected
    assert cfg.learning.m_star == 0.5 and cfg.network.hidden == (8, 4) and cfg.seed == 5
    assert json.loads((plan.out_dir / "sweep.json").read_text())["trials"][0]["params"] == trial.params


def test_trials_run_single_threaded(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")  # what a Dask nanny gives its worker
    monkeypatch.setenv("HIL_SOMETHING", "kept")
    env = child_env("/somewhere")
    for k, v in SINGLE_THREAD_ENV.items():
        assert env[k] == "1", k
    assert env["PYTHONPATH"].split(os.pathsep)[0] == "/somewhere"
    assert "MALLOC_TRIM_THRESHOLD_" not in env and env["HIL_SOMETHING"] == "kept"


# ---------------------------------------------------------------------------- local executor
def _killing_site(tmp_path: Path) -> Path:
    """A directory whose sitecustomize SIGKILLs the interpreter that imports it (a crashing trial)."""
    d = tmp_path / "crash"
    d.mkdir()
    (d / "sitecustomize.py").write_text("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    return d


def test_a_crashing_trial_fails_alone_and_a_rerun_retries_it(tmp_path, monkeypatch):
    path = write_program_sweep(tmp_path, seeds=(0,), tolerances=(0.05, 0.1, 0.2))
    plan = load_sweep(path)
    victim = plan.trials[1].name
    crash = _killing_site(tmp_path)
    real_job_for = engine.job_for

    def job_for(plan, trial):
        job = real_job_for(plan, trial)
        return dataclasses.replace(job, pythonpath=f"{crash}{os.pathsep}{job.pythonpath}") if trial.name == victim else job

    monkeypatch.setattr(engine, "job_for", job_for)
    report = engine.run_sweep(plan, LocalExecutor(2), progress=False)
    assert sorted(report.ran) == sorted(t.name for t in plan.trials)
    assert list(report.failed) == [victim] and "SIGKILL" in report.failed[victim]
    for t in plan.trials:
        assert run_path(plan.out_dir, t.name).is_file() == (t.name != victim)
    record = json.loads(failed_path(plan.out_dir, victim).read_text())
    assert "killed by signal SIGKILL" in record["error"]
    assert not list(plan.out_dir.glob(".*.part.h5"))  # no half-written run file left
    summary = summarise(plan.out_dir)
    assert summary.counts == {"done": 2, "running": 0, "failed": 1, "missing": 0}
    assert "failed " + victim in format_table(summary)

    monkeypatch.setattr(engine, "job_for", real_job_for)
    again = engine.run_sweep(load_sweep(path), LocalExecutor(2), progress=False)
    assert again.ran == [victim] and not again.failed
    assert sorted(again.skipped) == sorted(t.name for t in plan.trials if t.name != victim)
    assert run_path(plan.out_dir, victim).is_file() and not failed_path(plan.out_dir, victim).exists()


def test_resuming_a_half_finished_sweep_runs_only_the_missing_trials(tmp_path):
    path = write_program_sweep(tmp_path, seeds=(0, 1), tolerances=(0.05, 0.1))
    plan = load_sweep(path)
    names = [t.name for t in plan.trials]
    # half of the sweep: the first two trials only (as if the sweep had been stopped)
    half = dataclasses.replace(plan, trials=plan.trials[:2])
    assert sorted(engine.run_sweep(half, LocalExecutor(2), progress=False).ran) == sorted(names[:2])
    before = {n: os.stat(run_path(plan.out_dir, n)) for n in names[:2]}
    (plan.out_dir / f".{names[3]}.deadbeef.part.h5").write_bytes(b"left by a killed trial")
    report = engine.run_sweep(plan, LocalExecutor(2), progress=False)
    assert sorted(report.ran) == sorted(names[2:]) and sorted(report.skipped) == sorted(names[:2])
    for n in names[:2]:  # untouched
        st = os.stat(run_path(plan.out_dir, n))
        assert (st.st_ino, st.st_mtime_ns) == (before[n].st_ino, before[n].st_mtime_ns)
    assert all(run_path(plan.out_dir, n).is_file() for n in names)
    assert not list(plan.out_dir.glob(".*.part.h5"))
    third = engine.run_sweep(plan, LocalExecutor(2), progress=False)
    assert third.ran == [] and len(third.skipped) == 4


def test_a_trial_equals_the_same_hil_program_run_alone(tmp_path):
    path = write_program_sweep(tmp_path, seeds=(7,), tolerances=(0.1,))
    plan = load_sweep(path)
    assert main(["sweep", str(path), "--no-progress", "--workers", "1"]) == 0
    alone = tmp_path / "alone.h5"
    assert main(["program", "--levels", "4", "--shape", "4x4", "--max-pulses", "60", "--tolerance", "0.1",
                 "--seed", "7", "--out", str(alone)]) == 0
    assert run_file_content(run_path(plan.out_dir, plan.trials[0].name)) == run_file_content(alone)


# ---------------------------------------------------------------------------- summary, figures
def _fake_run(path: Path, config: dict, metrics: dict[str, float], seed: int) -> None:
    with RunStore.create(path, config=config, seed=seed, backend="sim", instruments={}) as store:
        for k, v in metrics.items():
            store.metric(k, 1, 1, v)


def _fake_sweep(tmp_path: Path) -> Path:
    """A sweep folder of m* x technology x 3 seeds with known final accuracies (one trial failed)."""
    out = tmp_path / "fake"
    out.mkdir()
    trials = []
    for m in (0.0, 1.0, 4.0):
        for tech in ("hfo2", "siox"):
            for seed in (0, 1, 2):
                params = {"learning.m_star": m, "device.technology": tech, "seed": seed}
                name = trial_name(params)
                trials.append({"name": name, "kind": "experiment", "params": params})
                if (m, tech, seed) == (4.0, "siox", 2):
                    (out / f"{name}.failed.json").write_text(json.dumps({"error": "boom\nValueError: x"}))
                    continue
                acc = 0.5 + 0.1 * m + (0.05 if tech == "siox" else 0) + 0.01 * seed
                _fake_run(out / f"{name}.h5", {"experiment": "metaplastic"},
                          {"final.mnist": acc, "final.val.mnist": acc - 0.1, "bench_time": 10.0 + seed,
                           "loss": 99.0, "programming.pulses": 100.0 * (seed + 1)}, seed)
    (out / "sweep.json").write_text(json.dumps({"source": "x.toml", "swept": ["learning.m_star", "device.technology", "seed"],
                                                "base": {}, "trials": trials}))
    return out


def test_summary_gives_mean_and_std_over_seeds_per_configuration(tmp_path):
    out = _fake_sweep(tmp_path)
    s = summarise(out)
    assert s.counts == {"done": 17, "running": 0, "failed": 1, "missing": 0}
    assert len(s.rows) == 6
    row = next(r for r in s.rows if r.params == {"learning.m_star": 1.0, "device.technology": "hfo2"})
    accs = np.array([0.6, 0.61, 0.62])
    mean, std, n = row.mean_std("mnist")
    assert n == 3 and mean == pytest.approx(accs.mean()) and std == pytest.approx(accs.std(ddof=1))
    assert row.mean_std("programming.pulses")[0] == pytest.approx(200.0)
    assert "loss" not in s.metrics  # a running metric, not a final one
    failed_row = next(r for r in s.rows if r.params == {"learning.m_star": 4.0, "device.technology": "siox"})
    assert failed_row.failed == 1 and len(failed_row.seeds) == 2
    assert failed_row.mean_std("mnist")[0] == pytest.approx(0.5 + 0.4 + 0.05 + 0.005)
    table = format_table(s)
    assert "0.61 ± 0.01" in table and "ValueError: x" in table


def test_program_runs_report_all_their_summary_metrics(tmp_path):
    p = tmp_path / "p.h5"
    _fake_run(p, {"command": "program"}, {"yield": 0.98, "mean_pulses": 12.0, "bench_time_s": 3.0}, 0)
    m = run_metrics(p)
    assert m["yield"] == 0.98 and m["mean_pulses"] == 12.0 and m["bench_time_s"] == 3.0


def test_report_of_a_sweep_folder_draws_the_mstar_curve_and_the_2d_map(tmp_path, capsys):
    out = _fake_sweep(tmp_path)
    paths = sweep_report(summarise(out), out)
    names = sorted(p.name for p in paths)
    assert names == ["sweep_device_technology.png", "sweep_map_mnist.png", "sweep_mstar.png"]
    assert all(p.stat().st_size > 5000 for p in paths)
    assert main(["report", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "sweep_mstar.png" in printed and "± " in printed
    assert main(["sweep", "--status", str(out)]) == 0
    assert "17 done, 0 running, 1 failed, 0 missing of 18 trials" in capsys.readouterr().out
    assert main(["sweep", "--status", str(tmp_path)]) == 2  # not a sweep folder


def test_the_example_sweeps_validate(tmp_path):
    root = Path(__file__).resolve().parents[2] / "examples"
    mstar = load_sweep(root / "sweep-mstar.toml", tmp_path / "m")
    assert len(mstar.trials) == 18 and mstar.swept == ["learning.m_star", "seed"]
    assert {t.config["device"]["backend"] for t in mstar.trials} == {"software"}
    assert sorted({t.params["learning.m_star"] for t in mstar.trials}) == [0.0, 1.0, 3.0, 10.0, 30.0, 100.0]
    slurm = load_sweep(root / "sweep-slurm.toml", tmp_path / "s")
    assert slurm.executor == "dask" and slurm.dask.system == "slurm" and len(slurm.trials) == 60
    assert not (tmp_path / "m").exists() and not (tmp_path / "s").exists()


def test_status_shows_a_trial_being_retried_as_running(tmp_path):
    out = _fake_sweep(tmp_path)
    retried = trial_name({"learning.m_star": 4.0, "device.technology": "siox", "seed": 2})
    (out / f".{retried}.0123abcd.part.h5").write_bytes(b"")
    assert summarise(out).counts == {"done": 17, "running": 1, "failed": 0, "missing": 0}
