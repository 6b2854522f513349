"""Where the trials run: a local pool of worker processes, or a Dask cluster.

Both take :class:`~hil.sweep.trial.TrialJob` objects and call :func:`~hil.sweep.trial.run_trial`
(one subprocess per trial), so a trial that crashes or is killed loses only itself.

* :class:`LocalExecutor` (no extra dependency): ``workers`` threads, each waiting on one trial
  subprocess at a time.
* :class:`DaskExecutor`: a ``distributed.Client`` on a scheduler address, a ``LocalCluster``
  (dashboard on a free port bound to 127.0.0.1) or a dask-jobqueue cluster (SLURM, PBS, SGE).
  Tasks are submitted with ``retries``; a lost worker's task is recomputed by the scheduler.
"""

from __future__ import annotations

import concurrent.futures as cf
import importlib
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from hil.experiments.schema import ConfigError
from hil.sweep.spec import DaskSettings
from hil.sweep.trial import TrialJob, TrialOutcome, run_trial

log = logging.getLogger(__name__)

#: dask-jobqueue cluster classes by the table name of ``[sweep.dask.<system>]``.
JOBQUEUE_CLASSES = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster"}

#: Dask settings of the ``LocalCluster`` this package starts (keys of ``distributed.yaml``).
#: A trial task only waits on its subprocess, so the worker's housekeeping is pure cost on the
#: cores the trials need: its statistical profiler samples the waiting thread every 10 ms, the
#: event-loop health tick runs every 20 ms, the system and memory monitors every 0.5 s / 0.1 s, and
#: work stealing moves nothing useful between single-task workers. With the defaults, 8 trials of
#: ``benchmarks/sweep.py`` on 2 workers ran 18 % slower inside than on the local pool (28.3 s
#: against 24.0 s per trial) while the cluster's processes used 26 s of CPU in 133 s.
LOCAL_CLUSTER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.system-monitor.gil.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.scheduler.work-stealing": False,
}


def default_workers() -> int:
    """The number of cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class LocalExecutor:
    """A pool of ``workers`` trial subprocesses on this machine."""

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or default_workers()
        self._running = 0
        self._lock = threading.Lock()

    def _run(self, job: TrialJob) -> TrialOutcome:
        with self._lock:
            self._running += 1
        try:
            return run_trial(job)
        finally:
            with self._lock:
                self._running -= 1

    def running(self) -> int:
        return self._running

    def map(self, jobs: Iterable[TrialJob], tick: Callable[[], None] | None = None) -> Iterator[TrialOutcome]:
        """Outcomes in completion order; ``tick`` is called about once a second while waiting."""
        with cf.ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="trial") as pool:
            pending = {pool.submit(self._run, j) for j in jobs}
            while pending:
                done, pending = cf.wait(pending, timeout=1.0, return_when=cf.FIRST_COMPLETED)
                for f in done:
                    yield f.result()
                if tick is not None:
                    tick()

    def close(self) -> None:
        pass


def _import(module: str, extra: str = "sweep") -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise RuntimeError(f"the Dask executor needs {module!r}: pip install 'memristor-hil[{extra}]' ({exc})") from exc


def jobqueue_cluster(settings: DaskSettings) -> Any:
    """Start the dask-jobqueue cluster of ``[sweep.dask.<system>]`` and ask for ``jobs`` jobs.

    The table's keys are the cluster class's keyword arguments (dask-jobqueue's documented
    ``cores``, ``memory``, ``processes``, ``walltime``, ``queue``, ``account``,
    ``job_extra_directives``, ``job_script_prologue``, ...), passed through unchanged.
    """
    jobqueue = _import("dask_jobqueue")
    cls = getattr(jobqueue, JOBQUEUE_CLASSES[settings.system])
    try:
        cluster = cls(**settings.cluster)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"sweep.dask.{settings.system}: {exc}") from exc
    cluster.scale(jobs=settings.jobs)
    log.info("dask-jobqueue %s submitted %d job(s):\n%s", cls.__name__, settings.jobs, cluster.job_script())
    return cluster


class DaskExecutor:
    """Trials as Dask tasks (``pure=False``: every submission runs; the trial itself is idempotent).

    Args:
        settings: ``[sweep.dask]`` (a scheduler address or a jobqueue system).
        workers: LocalCluster workers (default: the number of cores).
        scheduler: an address that overrides ``settings`` (``--scheduler``).
        retries: times a failing task is resubmitted by Dask.
        cluster: a ready cluster object (tests), used instead of starting one.
    """

    name = "dask"

    def __init__(self, settings: DaskSettings | None = None, *, workers: int | None = None,
                 scheduler: str | None = None, retries: int = 2, cluster: Any = None) -> None:
        distributed = _import("distributed")
        settings = settings or DaskSettings()
        self.retries = retries
        self._own_cluster = None
        address = scheduler or settings.scheduler
        if cluster is not None:
            self.client = distributed.Client(cluster)
        elif address is not None:
            self.client = distributed.Client(address)
        elif settings.system is not None:
            self._own_cluster = jobqueue_cluster(settings)
            self.client = distributed.Client(self._own_cluster)
        else:
            import dask

            with dask.config.set(LOCAL_CLUSTER_CONFIG):  # read when the scheduler, nannies and workers start
                self._own_cluster = distributed.LocalCluster(
                    n_workers=workers or default_workers(), threads_per_worker=1, processes=True,
                    host="127.0.0.1", dashboard_address="127.0.0.1:0")
            self.client = distributed.Client(self._own_cluster)
        self._futures: list[Any] = []
        link = getattr(self.client, "dashboard_link", None)
        log.info("Dask scheduler %s, dashboard %s", self.client.scheduler.address, link)

    def dashboard(self) -> str | None:
        try:
            return self.client.dashboard_link
        except Exception:  # noqa: BLE001 - no dashboard (bokeh missing)
            return None

    def running(self) -> int:
        try:
            return sum(len(v) for v in self.client.processing().values())
        except Exception:  # noqa: BLE001 - the scheduler is busy or gone: not worth failing for
            return 0

    def map(self, jobs: Iterable[TrialJob], tick: Callable[[], None] | None = None) -> Iterator[TrialOutcome]:
        from distributed import wait

        jobs = list(jobs)
        futures = {self.client.submit(run_trial, j, key=f"trial-{j.name}", pure=False, retries=self.retries): j
                   for j in jobs}
        self._futures = list(futures)
        pending = set(futures)
        while pending:
            try:
                res = wait(pending, timeout=1.0, return_when="FIRST_COMPLETED")
            except TimeoutError:
                if tick is not None:
                    tick()
                continue
            for f in res.done:
                job = futures[f]
                try:
                    yield f.result()
                except Exception as exc:  # noqa: BLE001 - the task itself failed (e.g. lost too many workers)
                    yield TrialOutcome(job.name, False, 0.0, f"Dask task failed: {type(exc).__name__}: {exc}", -1)
            pending = res.not_done
            if tick is not None:
                tick()

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self._own_cluster is not None:
                self._own_cluster.close()
