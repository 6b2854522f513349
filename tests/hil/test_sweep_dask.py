"""hil sweep on Dask: same run files as the local executor, a killed worker, dask-jobqueue settings."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import types

import pytest

pytest.importorskip("distributed", reason="the `sweep` extra (dask[distributed]) is not installed")

from distributed import LocalCluster  # noqa: E402

from hil.experiments.schema import ConfigError  # noqa: E402
from hil.sweep import engine  # noqa: E402
from hil.sweep.executors import LOCAL_CLUSTER_CONFIG, DaskExecutor, LocalExecutor, jobqueue_cluster  # noqa: E402
from hil.sweep.spec import DaskSettings, load_sweep  # noqa: E402
from hil.sweep.trial import run_path  # noqa: E402
from sweep_helpers import run_file_content, write_program_sweep  # noqa: E402


def test_dask_local_cluster_gives_the_same_run_files_as_the_local_executor(tmp_path):
    path = write_program_sweep(tmp_path, out="local", seeds=(0, 1), tolerances=(0.05, 0.1))
    local = load_sweep(path)
    assert not engine.run_sweep(local, LocalExecutor(2), progress=False).failed
    on_dask = load_sweep(path, tmp_path / "dask")
    cluster = LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None)
    executor = DaskExecutor(cluster=cluster)
    try:
        report = engine.run_sweep(on_dask, executor, progress=False)
    finally:
        executor.close()
        cluster.close()
    assert not report.failed and sorted(report.ran) == sorted(t.name for t in local.trials)
    for t in local.trials:
        a = run_file_content(run_path(local.out_dir, t.name))
        b = run_file_content(run_path(on_dask.out_dir, t.name))
        assert a.keys() == b.keys() and a == b, t.name
    # different trials really differ (the comparison can fail)
    names = [t.name for t in local.trials]
    assert run_file_content(run_path(local.out_dir, names[0])) != run_file_content(run_path(local.out_dir, names[1]))


def test_a_worker_killed_mid_trial_does_not_lose_the_trial(tmp_path):
    path = write_program_sweep(tmp_path, seeds=(0, 1), tolerances=(0.05, 0.1))
    plan = load_sweep(path)
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                           host="127.0.0.1")
    executor = DaskExecutor(cluster=cluster, retries=0)  # the recompute comes from the scheduler, not a retry
    killed = {}

    def kill_a_worker_mid_trial() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            if list(plan.out_dir.glob(".*.part.h5")):  # a trial is writing its run file
                pids = executor.client.run(os.getpid)
                victim = sorted(pids.values())[0]
                killed["running"] = [p.name for p in plan.out_dir.glob(".*.part.h5")]
                os.kill(victim, signal.SIGKILL)
                killed["pid"] = victim
            time.sleep(0.02)

    killer = threading.Thread(target=kill_a_worker_mid_trial, daemon=True)
    killer.start()
    try:
        report = engine.run_sweep(plan, executor, progress=False)
    finally:
        killer.join(timeout=5)
        executor.close()
        cluster.close()
    assert killed.get("pid") and killed["running"], "no worker was killed while a trial ran"
    assert not report.failed, report.failed
    assert all(run_path(plan.out_dir, t.name).is_file() for t in plan.trials)
    assert not list(plan.out_dir.glob("*.failed.json"))


def test_dask_settings_are_parsed_from_the_sweep_file(tmp_path):
    path = write_program_sweep(tmp_path)
    text = path.read_text()
    path.write_text(text.replace('workers = 2', 'workers = 2\nexecutor = "dask"\n\n[sweep.dask]\njobs = 3\n\n'
                                 '[sweep.dask.slurm]\ncores = 1\nmemory = "2GB"\nwalltime = "01:00:00"\n'
                                 'job_extra_directives = ["--exclusive"]'))
    plan = load_sweep(path)
    assert plan.executor == "dask"
    assert plan.dask == DaskSettings(None, "slurm", {"cores": 1, "memory": "2GB", "walltime": "01:00:00",
                                                     "job_extra_directives": ["--exclusive"]}, 3)
    path.write_text(text + '\n[sweep.dask]\nscheduler = "tcp://h:8786"\n[sweep.dask.pbs]\ncores = 1\n')
    with pytest.raises(ConfigError, match="exclude each other"):
        load_sweep(path)


class _FakeCluster:
    instances: list = []

    def __init__(self, **kwargs):
        if "bogus" in kwargs:
            raise TypeError("__init__() got an unexpected keyword argument 'bogus'")
        self.kwargs = kwargs
        self.scaled = None
        _FakeCluster.instances.append(self)

    def scale(self, n=None, jobs=0, memory=None, cores=None):
        self.scaled = jobs

    def job_script(self):
        return "#!/usr/bin/env bash\n#SBATCH ..."


@pytest.mark.parametrize("system, cls_name", [("slurm", "SLURMCluster"), ("pbs", "PBSCluster"), ("sge", "SGECluster")])
def test_jobqueue_cluster_is_built_from_the_documented_api(monkeypatch, system, cls_name):
    fake = types.ModuleType("dask_jobqueue")
    setattr(fake, cls_name, type(cls_name, (_FakeCluster,), {}))
    monkeypatch.setitem(sys.modules, "dask_jobqueue", fake)
    _FakeCluster.instances.clear()
    settings = DaskSettings(None, system, {"cores": 2, "memory": "4GB", "queue": "short"}, 5)
    cluster = jobqueue_cluster(settings)
    assert type(cluster).__name__ == cls_name
    assert cluster.kwargs == {"cores": 2, "memory": "4GB", "queue": "short"}
    assert cluster.scaled == 5
    with pytest.raises(ConfigError, match=f"sweep.dask.{system}: .*bogus"):
        jobqueue_cluster(DaskSettings(None, system, {"bogus": 1}, 1))


def test_the_real_slurm_cluster_accepts_the_example_settings():
    jobqueue = pytest.importorskip("dask_jobqueue", reason="the `sweep` extra (dask-jobqueue) is not installed")
    from pathlib import Path

    plan = load_sweep(Path(__file__).resolve().parents[2] / "examples" / "sweep-slurm.toml")
    assert plan.dask.system == "slurm"
    # building the job script needs no SLURM: it checks the settings and renders #SBATCH lines
    cluster = jobqueue.SLURMCluster(**plan.dask.cluster)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH" in script and str(plan.dask.cluster["cores"]) in script


def test_executor_dask_without_an_address_starts_a_loopback_local_cluster(tmp_path, capsys):
    from hil.cli import main

    path = write_program_sweep(tmp_path, seeds=(0,), tolerances=(0.1,))
    executor = DaskExecutor(workers=1)
    try:
        assert executor.client.scheduler.address.startswith("tcp://127.0.0.1:")
        link = executor.dashboard()
        assert link is None or "127.0.0.1" in link
        workers = executor.client.scheduler_info()["workers"]
        assert len(workers) == 1 and all(w["nthreads"] == 1 for w in workers.values())
        # the worker process itself runs without the housekeeping that competes with the trials
        seen = executor.client.run(_worker_housekeeping)
        assert list(seen.values()) == [{"profiler": False, "tick_s": 1.0, "work_stealing": False}]
    finally:
        executor.close()
    assert main(["sweep", str(path), "--executor", "dask", "--workers", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Dask dashboard:" in out and "1 trials run" in out
    assert run_path(load_sweep(path).out_dir, "tolerance=0.1__seed=0").is_file()


def _worker_housekeeping(dask_worker=None):
    import dask
    from dask.utils import parse_timedelta

    return {"profiler": bool(dask.config.get("distributed.worker.profile.enabled")),
            "tick_s": parse_timedelta(dask.config.get("distributed.admin.tick.interval")),
            "work_stealing": bool(dask.config.get("distributed.scheduler.work-stealing"))}


def test_the_local_cluster_settings_are_distributed_keys():
    import dask

    for key in LOCAL_CLUSTER_CONFIG:
        assert dask.config.get(key, default=KeyError) is not KeyError, key
