"""The metaplastic sequential-task experiment, hardware-in-the-loop.

The hidden weights ``W_H`` stay on the host (digital memory); the quantised weights live in
memristor arrays as multi-level conductances; the forward and backward passes use the
conductances measured back from the arrays; the (metaplastic) updates act on ``W_H``; only the
devices whose quantised level changed are re-programmed, by program-and-verify (see
:mod:`hil.experiments.device` for the programming and read-back policy).

Sequence: MNIST then Fashion-MNIST, or permuted MNIST. Per epoch the run store gets the test
accuracy of every task seen so far (``/metrics/acc/<task>``), the programming counters, and a
checkpoint; at the end of every task the programming operations per device
(``/snapshots/programming_events/layer<l>``). A resumed run continues from the last checkpoint
and gives bit-identical results (all RNG states, the arrays' physics state, the optimisers and
the conductance cache are checkpointed).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from drivers.array import CrossbarArray
from drivers.sim.presets import get_preset
from drivers.sim_array import SimArray
from hil.datasets import load_dataset, permuted
from hil.experiments.config import RunConfig, config_from_dict
from hil.experiments.device import (
    DeviceWeights,
    ProgrammingPolicy,
    check_arrays,
    open_bench_arrays,
)
from hil.learning.learner import MetaplasticLearner, RuleConfig
from hil.learning.qnn import QNN
from hil.mapping import make_mapping
from hil.store import RunStore, open_run

log = logging.getLogger(__name__)

#: The BNN baseline of the paper (Laborieux et al. 2021): 784-4096-4096-10.
BNN_SIZES = (784, 4096, 4096, 10)


@dataclass
class Task:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@dataclass
class RunResult:
    """What a finished (or stopped) run reports.

    Attributes:
        accuracy: per evaluation (after every epoch): dict task name -> accuracy (0..1).
        epochs_done: epochs completed.
        final: last accuracy per task.
        programming: counters (programmings, cells programmed, pulses, failures).
        events_per_device: programming events per cell, concatenated over layers (device runs).
        memory: memory accounting, bits.
        wall_time: s; bench_time: estimated bench time of the device operations, s.
    """

    accuracy: list[dict[str, float]] = field(default_factory=list)
    epochs_done: int = 0
    final: dict[str, float] = field(default_factory=dict)
    programming: dict[str, int] = field(default_factory=dict)
    events_per_device: np.ndarray | None = None
    reprogrammed_per_device: np.ndarray | None = None
    memory: dict[str, float] = field(default_factory=dict)
    wall_time: float = 0.0
    bench_time: float = 0.0
    w_h: list[np.ndarray] = field(default_factory=list)


def memory_bits(sizes: tuple[int, ...], n_levels: int) -> dict[str, float]:
    """Memory of the QNN (``W_H`` float32 digital + one multi-level device per weight) vs the
    BNN baseline 784-4096-4096-10 (``W_H`` float32 + 1 binary bit per weight, all digital).

    BN parameters are left out of both (they are small and the same kind in both).
    """
    n_q = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    n_b = sum(a * b for a, b in zip(BNN_SIZES[:-1], BNN_SIZES[1:]))
    bits_q_digital = 32 * n_q
    bits_q_analog = float(np.log2(n_levels)) * n_q
    bits_b = 33 * n_b
    return {
        "qnn_weights": n_q, "bnn_weights": n_b,
        "qnn_digital_bits": bits_q_digital, "qnn_analog_bits": bits_q_analog,
        "qnn_total_bits": bits_q_digital + bits_q_analog, "bnn_bits": bits_b,
        "bnn_over_qnn_total": bits_b / (bits_q_digital + bits_q_analog),
        "bnn_over_qnn_digital": bits_b / bits_q_digital,
    }


def load_tasks(cfg: RunConfig) -> list[Task]:
    """The task sequence's train/test data, flattened to float32 (n, 784) in [0, 1]."""
    src, ddir = cfg.dataset.source, cfg.dataset.data_dir or None
    if cfg.tasks.sequence == "mnist-fmnist":
        datasets = [load_dataset("mnist", ddir, src), load_dataset("fashion-mnist", ddir, src)]
    else:
        base = load_dataset("mnist", ddir, src)
        datasets = [permuted(base, cfg.seed, k) for k in range(cfg.tasks.n_tasks)]
    tasks = []
    for name, ds in zip(cfg.task_names, datasets):
        xtr, ytr = ds.flat("train")
        xte, yte = ds.flat("test")
        sel = np.random.default_rng([cfg.seed, 7]).permutation(len(xtr))
        if cfg.tasks.train_limit:
            sel = np.sort(sel[: cfg.tasks.train_limit])
            xtr, ytr = xtr[sel], ytr[sel]
        if cfg.tasks.test_limit:
            xte, yte = xte[: cfg.tasks.test_limit], yte[: cfg.tasks.test_limit]
        tasks.append(Task(name, xtr, ytr, xte, yte))
    return tasks


class MetaplasticRun:
    """One run: builds the network, the arrays and the learner from a :class:`RunConfig`."""

    def __init__(self, cfg: RunConfig, tasks: list[Task] | None = None,
                 arrays: list[CrossbarArray] | None = None) -> None:
        """``arrays``: ready arrays, one per layer, instead of those ``cfg.device`` describes."""
        self.cfg = cfg
        self.tasks = tasks if tasks is not None else load_tasks(cfg)
        preset = get_preset(cfg.device.technology)
        g_levels = np.asarray(cfg.device.levels_uS) * 1e-6 if cfg.device.levels_uS else np.asarray(preset.technology.levels)
        self.mapping = make_mapping(cfg.device.mapping, g_levels)
        self.levels = self.mapping.weight_levels
        self.rng = np.random.default_rng(cfg.seed)
        sizes = (784, *cfg.network.hidden, 10)
        self.sizes = sizes
        model = QNN(sizes, len(self.tasks), self.rng, cfg.network.init_scale)
        m_star = cfg.learning.m_star if cfg.learning.rule == "metaplastic" else 0.0
        self.learner = MetaplasticLearner(
            model, self.levels, RuleConfig(m_star=m_star, unit=cfg.learning.unit, lr=cfg.learning.lr, lr_bn=cfg.learning.lr_bn)
        )
        self.device: DeviceWeights | None = None
        shapes = [self.mapping.array_shape(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
        if arrays is None and cfg.device.backend == "sim":
            arrays = [SimArray(shape, cfg.device.technology, seed=cfg.seed * 1000 + 1 + l) for l, shape in enumerate(shapes)]
        elif arrays is None and cfg.device.backend == "bench":
            arrays = open_bench_arrays(cfg.device.bench, shapes, cfg.device.technology)
        if arrays is not None:
            check_arrays(arrays, shapes, cfg.device.technology)
            d = cfg.device
            policy = ProgrammingPolicy(tolerance=d.tolerance, max_pulses=d.max_pulses, init_max_pulses=d.init_max_pulses,
                                       program_every=d.program_every, refresh_tolerance=d.refresh_tolerance)
            self.device = DeviceWeights(arrays, self.mapping, policy)
        self.epoch = 0  # epochs completed over the whole sequence
        self.step = 0  # minibatches completed
        self.history: list[dict[str, float]] = []

    def close(self) -> None:
        """Leave every array in its safe idle state (instrument outputs off)."""
        for array in self.device.arrays if self.device is not None else ():
            array.close()

    # ------------------------------------------------------------------ plan
    def plan(self) -> list[tuple[int, int]]:
        """(task, epoch-within-task) of every epoch of the sequence."""
        return [(t, e) for t, n in enumerate(self.cfg.tasks.epochs) for e in range(n)]

    def weights(self) -> list[np.ndarray]:
        return self.device.weights() if self.device is not None else self.learner.quantized_weights()

    def evaluate(self, upto: int) -> dict[str, float]:
        """Test accuracy of tasks 0..upto with their own BN and the current (measured) weights."""
        w = self.weights()
        return {
            self.tasks[k].name: self.learner.model.accuracy(self.tasks[k].x_test, self.tasks[k].y_test, w, k)
            for k in range(upto + 1)
        }

    # ------------------------------------------------------------------ state
    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {f"learner/{k}": v for k, v in self.learner.state().items()}
        meta: dict[str, Any] = {
            "epoch": self.epoch, "step": self.step, "history": self.history,
            "rng": json.loads(json.dumps(self.rng.bit_generator.state)),
        }
        if self.device is not None:
            arrays.update({f"device/{k}": v for k, v in self.device.state().items()})
            for l, arr in enumerate(self.device.arrays):
                if hasattr(arr, "get_state"):  # a simulated array: its devices can be saved too
                    a, m = arr.get_state()
                    arrays.update({f"array{l}/{k}": v for k, v in a.items()})
                    meta[f"array{l}"] = m
        return arrays, meta

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        def sub(prefix: str) -> dict[str, np.ndarray]:
            return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}

        self.learner.load_state(sub("learner/"))
        self.epoch, self.step = int(meta["epoch"]), int(meta["step"])
        self.history = list(meta["history"])
        self.rng.bit_generator.state = meta["rng"]
        if self.device is not None:
            for l, arr in enumerate(self.device.arrays):
                if f"array{l}" in meta:
                    arr.set_state(sub(f"array{l}/"), meta[f"array{l}"])
                else:  # real devices keep their own state; the next epoch's re-read measures it
                    log.warning("layer %d: bench array, device state is what the chip holds now", l)
            self.device.load_state(sub("device/"))

    # ------------------------------------------------------------------ loop
    def run(self, store: RunStore | None = None, progress: bool = True, stop_after_epochs: int | None = None) -> RunResult:
        """Train the sequence from the current state; log to ``store``; stop early after
        ``stop_after_epochs`` epochs in total (to simulate an interruption)."""
        cfg, t_wall = self.cfg, time.perf_counter()
        plan = self.plan()
        bs = cfg.learning.batch_size
        if self.device is not None and self.epoch == 0 and self.step == 0:
            self.device.initialise(self.learner.level_idx)
        total = sum(int(np.ceil(len(self.tasks[t].x_train) / bs)) for t, _ in plan)
        done = sum(int(np.ceil(len(self.tasks[t].x_train) / bs)) for t, _ in plan[: self.epoch])
        bar = tqdm(total=total, initial=done, desc=cfg.name, unit="batch", disable=not progress, dynamic_ncols=True, mininterval=0.5)
        try:
            for ep_index in range(self.epoch, len(plan)):
                if stop_after_epochs is not None and ep_index >= stop_after_epochs:
                    break
                task, ep_in_task = plan[ep_index]
                if ep_in_task == 0:
                    self.learner.start_task(task)
                data = self.tasks[task]
                order = self.rng.permutation(len(data.x_train))
                losses = []
                for i in range(0, len(order), bs):
                    b = order[i : i + bs]
                    loss, changed = self.learner.step(data.x_train[b], data.y_train[b], task, self.weights())
                    if self.device is not None:
                        self.device.update(self.step, self.learner.level_idx, changed)
                    losses.append(loss)
                    self.step += 1
                    bar.update(1)
                refreshed = 0
                if self.device is not None:
                    self.device.flush(self.learner.level_idx)
                    refreshed = self.device.reread(self.learner.level_idx)
                acc = self.evaluate(task)
                self.epoch = ep_index + 1
                self.history.append({"epoch": self.epoch, "task": task, **acc})
                bar.set_postfix({k[:6]: f"{100 * v:.1f}" for k, v in acc.items()})
                if store is not None:
                    self._log_epoch(store, task, acc, float(np.mean(losses)), refreshed,
                                    last_of_task=ep_in_task == cfg.tasks.epochs[task] - 1)
                    if cfg.checkpoint_every_epoch:
                        arrays, meta = self.state()
                        store.checkpoint({k.replace("/", "."): v for k, v in arrays.items()}, meta)
        finally:
            bar.close()
        return self.result(time.perf_counter() - t_wall)

    def _log_epoch(self, store: RunStore, task: int, acc: dict[str, float], loss: float, refreshed: int, last_of_task: bool) -> None:
        for name, value in acc.items():
            store.metric(f"acc.{name}", self.step, self.epoch, value)
        store.metric("loss", self.step, self.epoch, loss)
        store.metric("task", self.step, self.epoch, task)
        if self.device is not None:
            d = self.device
            store.metric("programming.cells", self.step, self.epoch, d.cells_programmed)
            store.metric("programming.pulses", self.step, self.epoch, d.pulses)
            store.metric("programming.failures", self.step, self.epoch, d.failures)
            store.metric("programming.refreshed", self.step, self.epoch, refreshed)
            store.metric("bench_time", self.step, self.epoch, sum(a.bench_time for a in d.arrays))
            if last_of_task:
                for l, ev in enumerate(d.programming_events()):
                    store.snapshot(f"programming_events.layer{l}", ev.astype(np.float64), d.arrays[l].bench_time)
                    store.snapshot(f"reprogrammed.layer{l}", d.reprogrammed[l].astype(np.float64), d.arrays[l].bench_time)
        store.flush()

    def result(self, wall: float) -> RunResult:
        r = RunResult(accuracy=list(self.history), epochs_done=self.epoch, wall_time=wall)
        if self.history:
            last = self.history[-1]
            r.final = {t.name: last[t.name] for t in self.tasks if t.name in last}
        r.memory = memory_bits(self.sizes, len(self.levels))
        r.w_h = [w.copy() for w in self.learner.model.w_h]
        if self.device is not None:
            d = self.device
            r.programming = {"programmings": d.programmings, "cells_programmed": d.cells_programmed,
                             "pulses": d.pulses, "failures": d.failures}
            r.events_per_device = np.concatenate([e.ravel() for e in d.programming_events()])
            r.reprogrammed_per_device = np.concatenate([e.ravel() for e in d.reprogrammed])
            r.bench_time = sum(a.bench_time for a in d.arrays)
        return r


def run_experiment(
    cfg: RunConfig, *, progress: bool = True, stop_after_epochs: int | None = None,
    tasks: list[Task] | None = None, out: str | Path | None = None, arrays: list[CrossbarArray] | None = None,
) -> RunResult:
    """Run ``cfg`` from scratch into a new run file (``out`` or ``cfg.out``).

    ``arrays``: ready arrays, one per layer (e.g. bench arrays on in-process simulated
    instruments), instead of those ``cfg.device`` describes. They are closed at the end.
    """
    path = Path(out or cfg.out)
    run = MetaplasticRun(cfg, tasks, arrays)  # loads data / validates everything before the file exists
    try:
        instruments = ({f"layer{l}": json.dumps(a.identity()) for l, a in enumerate(run.device.arrays)}
                       if run.device else {})
        with RunStore.create(path, config=cfg.to_dict(), seed=cfg.seed, backend=cfg.device.backend,
                             instruments=instruments, overwrite=cfg.overwrite) as store:
            return _run_into(store, run, progress, stop_after_epochs)
    finally:
        run.close()


def resume_experiment(path: str | Path, *, progress: bool = True, tasks: list[Task] | None = None,
                      stop_after_epochs: int | None = None) -> RunResult:
    """Continue the run in ``path`` from its last checkpoint (same configuration and seed)."""
    with open_run(path) as reader:
        cfg = config_from_dict({k: v for k, v in reader.config.items()})
        ckpt = reader.load_checkpoint()
    if ckpt is None:
        raise RuntimeError(f"{path}: no checkpoint to resume from")
    run = MetaplasticRun(cfg, tasks)
    try:
        arrays, meta = ckpt
        run.load_state({k.replace(".", "/"): v for k, v in arrays.items()}, meta)
        with RunStore.resume(path) as store:
            return _run_into(store, run, progress, stop_after_epochs)
    finally:
        run.close()


def _run_into(store: RunStore, run: MetaplasticRun, progress: bool, stop_after_epochs: int | None) -> RunResult:
    """Log the arrays' operations to ``store`` (if configured), run, and record the results."""
    if run.device is not None and run.cfg.device.log_ops:
        for a in run.device.arrays:
            a.add_listener(store.append_ops)
    result = run.run(store, progress=progress, stop_after_epochs=stop_after_epochs)
    _finish(store, run, result)
    return result


def _finish(store: RunStore, run: MetaplasticRun, result: RunResult) -> None:
    """Scalar results as metrics at the last step: memory accounting and, when complete, the final accuracies."""
    for key, value in result.memory.items():
        store.metric(f"memory.{key}", run.step, run.epoch, float(value))
    if run.epoch == len(run.plan()):
        for name, value in result.final.items():
            store.metric(f"final.{name}", run.step, run.epoch, value)
