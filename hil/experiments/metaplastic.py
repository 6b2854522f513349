"""The metaplastic sequential-task experiment, hardware-in-the-loop.

The hidden weights ``W_H`` stay on the host (digital memory); the quantised weights live in
memristor arrays as multi-level conductances; the forward and backward passes use the
conductances measured back from the arrays; the (metaplastic) updates act on ``W_H``; only the
devices whose quantised level changed are re-programmed, by program-and-verify (see
:mod:`hil.experiments.device` for the programming and read-back policy).

Sequence: MNIST then Fashion-MNIST, or permuted MNIST. The experiment runs on the shared
runner (:mod:`hil.experiments.runner`): its stages are the initial programming of the arrays
(device runs) and then one stage per epoch. Per epoch the run store gets the test accuracy of
every task seen so far (``/metrics/acc.<task>``), the programming counters, and a checkpoint; at
the end of every task the programming operations per device
(``/snapshots/programming_events.layer<l>``). A resumed run continues from the last checkpoint
and gives bit-identical results (all RNG states, the arrays' physics state, the optimisers and
the conductance cache are in :meth:`MetaplasticExperiment.state`).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from drivers.array import CrossbarArray
from drivers.sim.presets import get_preset, stressed
from drivers.sim_array import SimArray
from hil.datasets import load_dataset, permuted, validation_split
from hil.experiments.config import ConfigError, RunConfig, parse_config
from hil.experiments.device import (
    SESSION_KINDS,
    DeviceWeights,
    ProgrammingPolicy,
    check_arrays,
    open_bench_arrays,
)
from hil.learning.learner import MetaplasticLearner, RuleConfig
from hil.learning.qnn import QNN
from hil.experiments.runner import Experiment, StageContext
from hil.mapping import make_mapping
from hil.store import RunReader

log = logging.getLogger(__name__)

#: The BNN baseline of the paper (Laborieux et al. 2021): 784-4096-4096-10.
BNN_SIZES = (784, 4096, 4096, 10)


@dataclass
class Task:
    """One task's data, flattened float32 (n, 784) in [0, 1]; ``x_val`` is held out of the training set."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


@dataclass
class RunResult:
    """What a finished (or stopped) run reports.

    Attributes:
        accuracy: per epoch: ``epoch``, ``task``, ``val.<task>`` (validation accuracy of every
            task seen so far, 0..1) and ``<task>`` (test accuracy, when ``tasks.test_at`` says).
        epochs_done: epochs completed.
        final: test accuracy per task after the last epoch (empty if not evaluated then).
        final_val: validation accuracy per task after the last epoch.
        programming: counters (programmings, cells programmed, pulses, failures, cells retired).
        events_per_device: programming events per cell, concatenated over layers (device runs).
        reprogrammed_per_device: program-and-verify sessions per cell after the initial programming.
        sessions_per_device: the same split by kind (``level``, ``retry``, ``refresh``).
        memory: memory accounting, bits.
        wall_time: s; bench_time: estimated bench time of the device operations, s.
    """

    accuracy: list[dict[str, float]] = field(default_factory=list)
    epochs_done: int = 0
    final: dict[str, float] = field(default_factory=dict)
    final_val: dict[str, float] = field(default_factory=dict)
    programming: dict[str, int] = field(default_factory=dict)
    events_per_device: np.ndarray | None = None
    reprogrammed_per_device: np.ndarray | None = None
    sessions_per_device: dict[str, np.ndarray] = field(default_factory=dict)
    memory: dict[str, float] = field(default_factory=dict)
    wall_time: float = 0.0
    bench_time: float = 0.0
    w_h: list[np.ndarray] = field(default_factory=list)


def memory_bits(sizes: tuple[int, ...], n_levels: int, devices_per_weight: int = 1) -> dict[str, float]:
    """Memory accounting of the QNN against the BNN baseline 784-4096-4096-10 (Laborieux et al.).

    Accounting (bits):

    * QNN: hidden weights ``W_H`` float32 in digital memory (32 per weight) + the quantised weight
      in ``devices_per_weight`` multi-level devices, counted as ``log2(n_levels)`` bits per weight
      (the information they hold; the devices themselves are ``qnn_devices``);
    * BNN: ``W_H`` float32 + 1 binary weight bit per weight, all digital;
    * optimiser state: Adam's two moments, float32, per weight, for both (both train with Adam);
      reported separately (``*_with_optimiser``) because the paper's 15x does not say whether it
      counts it;
    * BatchNorm parameters are left out of both (a few per neuron, the same kind in both).
    """
    n_q = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    n_b = sum(a * b for a, b in zip(BNN_SIZES[:-1], BNN_SIZES[1:]))
    bits_q_digital = 32 * n_q
    bits_q_analog = float(np.log2(n_levels)) * n_q
    bits_b = 33 * n_b
    adam_q, adam_b = 64 * n_q, 64 * n_b
    return {
        "qnn_weights": n_q, "bnn_weights": n_b, "qnn_devices": devices_per_weight * n_q,
        "qnn_digital_bits": bits_q_digital, "qnn_analog_bits": bits_q_analog,
        "qnn_total_bits": bits_q_digital + bits_q_analog, "bnn_bits": bits_b,
        "qnn_optimiser_bits": adam_q, "bnn_optimiser_bits": adam_b,
        "bnn_over_qnn_total": bits_b / (bits_q_digital + bits_q_analog),
        "bnn_over_qnn_digital": bits_b / bits_q_digital,
        "bnn_over_qnn_with_optimiser": (bits_b + adam_b) / (bits_q_digital + bits_q_analog + adam_q),
    }


def memory_lines(m: dict[str, float]) -> list[str]:
    """The memory comparison with its accounting, beside the paper's 15x."""
    return [
        f"memory: QNN {int(m['qnn_weights'])} weights: W_H float32 {m['qnn_digital_bits'] / 8e6:.2f} MB digital + "
        f"{m['qnn_analog_bits'] / 8e6:.2f} MB-equivalent in {int(m['qnn_devices'])} multi-level devices; "
        f"BNN 784-4096-4096-10 {int(m['bnn_weights'])} weights x (32 + 1) bit = {m['bnn_bits'] / 8e6:.1f} MB",
        f"  BNN / QNN = {m['bnn_over_qnn_total']:.1f}x (weights only), {m['bnn_over_qnn_with_optimiser']:.1f}x with "
        f"Adam's two float32 moments per weight in both; paper: 15x (its accounting is not stated); "
        f"BatchNorm parameters excluded",
    ]


def load_tasks(cfg: RunConfig) -> list[Task]:
    """The task sequence's train/validation/test data, flattened to float32 (n, 784) in [0, 1].

    ``tasks.train_limit`` first draws a seeded subset of the training set; the validation split
    (``tasks.validation``: a fraction or a count) is then held out of it, seeded by the run's
    seed and the task index. ``tasks.test_limit`` keeps the first test images.
    """
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
        v = cfg.tasks.validation
        split = {"n": v} if isinstance(v, int) else {"fraction": float(v)}
        try:
            xtr, ytr, xva, yva = validation_split(xtr, ytr, seed=[cfg.seed, 11, len(tasks)], **split)
        except ValueError as exc:
            raise ConfigError(f"tasks.validation = {v!r} does not fit task {name!r} ({len(xtr)} training images): {exc}") from exc
        tasks.append(Task(name, xtr, ytr, xte, yte, xva, yva))
    return tasks


class MetaplasticExperiment(Experiment):
    """One run: builds the network, the arrays and the learner from a :class:`RunConfig`.

    Args:
        cfg: the validated configuration.
        arrays: ready arrays by name (``"layer0"``, ``"layer1"``, ...; a list, one per layer, is
            accepted too) instead of those ``cfg.device`` describes.
        tasks: the task data (default: loaded as ``cfg`` says).
    """

    name = "metaplastic"
    config_type = RunConfig

    @classmethod
    def parse_config(cls, data: dict[str, Any], base_dir: Path | None = None) -> RunConfig:
        return parse_config(data, base_dir)

    def __init__(self, cfg: RunConfig, *, arrays: Mapping[str, CrossbarArray] | Sequence[CrossbarArray] | None = None,
                 tasks: list[Task] | None = None) -> None:
        self.cfg = cfg
        self.tasks = tasks if tasks is not None else load_tasks(cfg)
        preset = get_preset(cfg.device.technology)
        g_levels = np.asarray(cfg.device.levels_uS) * 1e-6 if cfg.device.levels_uS else np.asarray(preset.technology.levels)
        self.mapping = make_mapping(cfg.device.mapping, g_levels)
        self.levels = self.mapping.weight_levels
        self.rng = np.random.default_rng(cfg.seed)
        sizes = (784, *cfg.network.hidden, 10)
        self.sizes = sizes
        model = QNN(sizes, len(self.tasks), self.rng, cfg.network.init_scale, batchnorm=cfg.network.batchnorm)
        m_star = cfg.learning.m_star if cfg.learning.rule == "metaplastic" else 0.0
        self.learner = MetaplasticLearner(
            model, self.levels, RuleConfig(m_star=m_star, unit=cfg.learning.unit, lr=cfg.learning.lr, lr_bn=cfg.learning.lr_bn)
        )
        self.device: DeviceWeights | None = None
        shapes = [self.mapping.array_shape(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
        layer_arrays: list[CrossbarArray] | None
        if isinstance(arrays, Mapping):
            layer_arrays = [arrays[k] for k in sorted(arrays, key=lambda k: int(str(k).removeprefix("layer")))]
        else:
            layer_arrays = list(arrays) if arrays is not None else None
        if layer_arrays is None and cfg.device.backend == "sim":
            d = cfg.device
            physics = stressed(preset.physics, read_noise_x=d.read_noise_x, relaxation_x=d.relaxation_x,
                               endurance_x=d.endurance_x)
            layer_arrays = [SimArray(shape, physics, seed=cfg.seed * 1000 + 1 + l, technology=preset.technology)
                            for l, shape in enumerate(shapes)]
        elif layer_arrays is None and cfg.device.backend == "bench":
            layer_arrays = open_bench_arrays(cfg.device.bench, shapes, cfg.device.technology)
        if layer_arrays is not None:
            check_arrays(layer_arrays, shapes, cfg.device.technology)
            d = cfg.device
            policy = ProgrammingPolicy(tolerance=d.tolerance, max_pulses=d.max_pulses, init_max_pulses=d.init_max_pulses,
                                       program_every=d.program_every, refresh_tolerance=d.refresh_tolerance,
                                       retire_after=d.retire_after)
            self.device = DeviceWeights(layer_arrays, self.mapping, policy)
        self.epoch = 0  # epochs completed over the whole sequence
        self.step = 0  # minibatches completed
        self.history: list[dict[str, float]] = []
        self._wall = 0.0

    # ------------------------------------------------------------------ runner interface
    def backend(self) -> str:
        return self.cfg.device.backend

    def log_ops(self) -> bool:
        return self.device is not None and self.cfg.device.log_ops

    def arrays(self) -> dict[str, CrossbarArray]:
        return {f"layer{l}": a for l, a in enumerate(self.device.arrays)} if self.device is not None else {}

    def plan(self) -> list[tuple[int, int]]:
        """(task, epoch-within-task) of every epoch of the sequence."""
        return [(t, e) for t, n in enumerate(self.cfg.tasks.epochs) for e in range(n)]

    @property
    def _offset(self) -> int:
        """Stages before the first epoch: the initial programming of device runs."""
        return 1 if self.device is not None else 0

    def stages(self) -> list[str]:
        names = ["program arrays"] if self.device is not None else []
        epochs = self.cfg.tasks.epochs
        return names + [f"{self.tasks[t].name} {e + 1}/{epochs[t]}" for t, e in self.plan()]

    def _batches(self, task: int) -> int:
        return int(np.ceil(len(self.tasks[task].x_train) / self.cfg.learning.batch_size))

    def stage_work(self, i: int) -> int:
        if i < self._offset:
            return sum(a.size for a in self.device.arrays) // 1000 + 1
        return self._batches(self.plan()[i - self._offset][0])

    def checkpoint_after(self, i: int) -> bool:
        return self.cfg.checkpoint_every_epoch

    def run_stage(self, i: int, ctx: StageContext) -> None:
        t0 = time.perf_counter()
        if i < self._offset:
            self.device.initialise(self.learner.level_idx)
            ctx.advance(self.stage_work(i))
        else:
            self._epoch(i - self._offset, ctx)
        self._wall += time.perf_counter() - t0

    def weights(self) -> list[np.ndarray]:
        return self.device.weights() if self.device is not None else self.learner.quantized_weights()

    def evaluate(self, upto: int, split: str = "test") -> dict[str, float]:
        """Accuracy of tasks 0..upto on ``split`` ("test" or "val") with the current (measured)
        weights and each task's BN (the shared one with ``network.batchnorm = "shared"``)."""
        w = self.weights()
        out = {}
        for k in range(upto + 1):
            t = self.tasks[k]
            x, y = (t.x_test, t.y_test) if split == "test" else (t.x_val, t.y_val)
            out[t.name] = self.learner.model.accuracy(x, y, w, k)
        return out

    def _test_now(self, ep_index: int) -> bool:
        """Whether the protocol (``tasks.test_at``) evaluates the test set after epoch ``ep_index``."""
        task, ep_in_task = self.plan()[ep_index]
        when = self.cfg.tasks.test_at
        return (when == "every-epoch" or (when == "task-end" and ep_in_task == self.cfg.tasks.epochs[task] - 1)
                or (when == "end" and ep_index == len(self.plan()) - 1))

    def _epoch(self, ep_index: int, ctx: StageContext) -> None:
        cfg = self.cfg
        bs = cfg.learning.batch_size
        task, ep_in_task = self.plan()[ep_index]
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
            ctx.advance(1)
        refreshed = 0
        if self.device is not None:
            self.device.flush(self.learner.level_idx)
            refreshed = self.device.reread(self.learner.level_idx)
        val = self.evaluate(task, "val")
        acc = self.evaluate(task, "test") if self._test_now(ep_index) else {}
        self.epoch = ep_index + 1
        self.history.append({"epoch": self.epoch, "task": task, **acc, **{f"val.{k}": v for k, v in val.items()}})
        ctx.postfix({f"val {k[:6]}": f"{100 * v:.1f}" for k, v in val.items()})
        self._log_epoch(ctx, task, acc, val, float(np.mean(losses)), refreshed,
                        last_of_task=ep_in_task == cfg.tasks.epochs[task] - 1)

    def _log_epoch(self, ctx: StageContext, task: int, acc: dict[str, float], val: dict[str, float], loss: float,
                   refreshed: int, last_of_task: bool) -> None:
        """Metrics of the epoch: ``val.<task>`` (validation), ``acc.<task>`` (test, when the
        protocol evaluates it), loss, programming counters; snapshots at the end of a task."""
        def metric(name: str, value: float) -> None:
            ctx.metric(name, value, step=self.step, epoch=self.epoch)

        for name, value in val.items():
            metric(f"val.{name}", value)
        for name, value in acc.items():
            metric(f"acc.{name}", value)
        metric("loss", loss)
        metric("task", task)
        if self.device is not None:
            d = self.device
            metric("programming.cells", d.cells_programmed)
            metric("programming.pulses", d.pulses)
            metric("programming.failures", d.failures)
            metric("programming.refreshed", refreshed)
            if d.policy.retire_after:
                metric("programming.retired", d.retired)
            for kind in SESSION_KINDS:
                metric(f"programming.sessions.{kind}", sum(int(c.sum()) for c in d.sessions[kind]))
                metric(f"programming.pulses.{kind}", d.pulses_by_kind[kind])
            metric("bench_time", sum(a.bench_time for a in d.arrays))
            if last_of_task:
                for l, ev in enumerate(d.programming_events()):
                    ctx.snapshot(f"programming_events.layer{l}", ev.astype(np.float64), d.arrays[l].bench_time)
                    ctx.snapshot(f"reprogrammed.layer{l}", d.reprogrammed[l].astype(np.float64), d.arrays[l].bench_time)
                    for kind in SESSION_KINDS:
                        ctx.snapshot(f"sessions.{kind}.layer{l}", d.sessions[kind][l].astype(np.float64), d.arrays[l].bench_time)
        if self.epoch == len(self.plan()):
            for key, value in memory_bits(self.sizes, len(self.levels), self.mapping.cells_per_weight).items():
                metric(f"memory.{key}", float(value))

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

    # ------------------------------------------------------------------ results
    def summary(self) -> dict[str, float]:
        """Final accuracy per task (0..1): test (``<task>``, if the protocol evaluated it at the
        end) and validation (``val.<task>``)."""
        r = self.result()
        return {**r.final, **{f"val.{k}": v for k, v in r.final_val.items()}}

    def result(self) -> RunResult:
        r = RunResult(accuracy=list(self.history), epochs_done=self.epoch, wall_time=self._wall)
        if self.history:
            last = self.history[-1]
            r.final = {t.name: last[t.name] for t in self.tasks if t.name in last}
            r.final_val = {t.name: last[f"val.{t.name}"] for t in self.tasks if f"val.{t.name}" in last}
        r.memory = memory_bits(self.sizes, len(self.levels), self.mapping.cells_per_weight)
        r.w_h = [w.copy() for w in self.learner.model.w_h]
        if self.device is not None:
            d = self.device
            r.programming = {"programmings": d.programmings, "cells_programmed": d.cells_programmed,
                             "pulses": d.pulses, "failures": d.failures, "retired": d.retired}
            r.events_per_device = np.concatenate([e.ravel() for e in d.programming_events()])
            r.reprogrammed_per_device = np.concatenate([e.ravel() for e in d.reprogrammed])
            r.sessions_per_device = {k: np.concatenate([c.ravel() for c in d.sessions[k]]) for k in SESSION_KINDS}
            r.programming.update({f"sessions_{k}": int(r.sessions_per_device[k].sum()) for k in SESSION_KINDS})
            r.programming.update({f"pulses_{k}": d.pulses_by_kind[k] for k in SESSION_KINDS})
            r.bench_time = sum(a.bench_time for a in d.arrays)
        return r

    def describe(self) -> list[str]:
        result = self.result()
        lines = []
        for h in result.accuracy:
            accs = "  ".join(f"{k if k.startswith('val.') else 'test.' + k} {100 * v:5.2f} %"
                             for k, v in h.items() if k not in ("epoch", "task"))
            lines.append(f"  epoch {h['epoch']:2d} (task {h['task']}): {accs}")
        if result.programming:
            p = result.programming
            lines.append(f"  programming: {p['cells_programmed']} cell programmings, {p['pulses']} pulses, "
                         f"{p['failures']} outside tolerance; estimated bench time {result.bench_time / 3600:.2f} h")
        lines.extend("  " + line for line in memory_lines(result.memory))
        return lines

    @classmethod
    def report(cls, reader: RunReader, out_dir: Path, stem: str) -> list[Path]:
        from hil.experiments.metaplastic_figures import metaplastic_report

        return metaplastic_report(reader, out_dir, stem)
