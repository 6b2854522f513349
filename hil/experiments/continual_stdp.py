"""The SiOx continual-learning experiment: CNN filters in RRAM, the overlay in the loop, STDP with SFA.

System of Muñoz-Martín, Bianchi et al., "A SiOx RRAM-based hardware with spike frequency
adaptation for power-saving continual learning in CNNs" (Figs. 3-4): 64 filters of 20x20,
trained on ``10 - k`` classes (:mod:`hil.learning.filters`), are programmed into a simulated SiOx
array (bit-sliced, :mod:`hil.bitslice`); every convolution step is an MVM of that array; its
outputs, quantised to the overlay's Q3.12 input, go through the max-pool + V_REF overlay by its
driver (:mod:`drivers.overlay.driver`); the binary feature maps of **all ten** classes drive the
STDP block on a second SiOx array (:mod:`hil.learning.stdp`), online, one image after another.

Stages (a checkpoint after each): ``filters`` (train on the trained classes, program),
``features`` (feature maps of the training stream, the validation split and the test set through
array and overlay), ``stdp`` (online learning over the stream), ``evaluate`` (neuron labels from
the training stream; validation and test accuracy, once), and, if ``[retrain] enabled``,
``retrain`` (feature filters whose bit almost never (or always) appears over the stream are
re-trained from the patterns the classification neurons clustered, only their cells are
re-programmed, and the STDP block is evaluated again).

With ``filters.vref = "median"`` (our addition, not the paper's;
:func:`hil.learning.filters.max_entropy_vref`) every filter's V_REF is re-set after training to
the median window maximum of the trained classes' training images (max-entropy bits); selected
on the validation split for k = 5 with a 4x4 pool (README). ``"measured-median"`` (also ours)
takes that median after programming on the array's measured responses instead
(:meth:`ContinualSTDPExperiment.measured_median_vref`).

MVM output quantisation (stated): the filter current ``Y`` (A) of each convolution step is
converted by a transimpedance ``R_f`` to a voltage and rounded to the IP's signed 16-bit Q3.12
code (LSB 2**-12 V, range [-8 V, 8 V)), saturating at the range ends (counted). ``R_f`` maps
``full_scale`` weight units of response (measured ``dG``) to 8 V. V_REF of each filter is written
through the driver in the same code: ``round(vref * v_read * dG * R_f / LSB)``.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from calibration.table import default_table
from drivers.array import CrossbarArray
from drivers.overlay.driver import MaxPoolOverlay, NumpyOverlay
from drivers.overlay.reference import CODE_MAX, CODE_MIN, FixedPoint, Geometry
from drivers.sim_array import SimArray
from hil.bitslice import SCHEMES, BitSlicedFilters
from hil.datasets import load_dataset, validation_split
from hil.datasets.noisy import noisy
from hil.experiments import registry
from hil.experiments.runner import Experiment, StageContext
from hil.experiments.schema import ConfigError, RunFields, bad, build, check_bool, check_choice, check_number
from hil.experiments.schema import validate_run_fields
from hil.learning import filters as flt
from hil.learning.stdp import DRIVES, STDPBlock, STDPParams, assign_labels, predict
from hil.store import RunReader

log = logging.getLogger(__name__)

OVERLAY_BACKENDS = ("twin", "sim-device", "board")
#: V_REF rules: the filters' own (trained), the median of the software window maxima
#: (:func:`hil.learning.filters.max_entropy_vref`), or the median of the measured ones
#: (:meth:`ContinualSTDPExperiment.measured_median_vref`, after programming).
VREF_RULES = (*flt.VREF_RULES, "measured-median")
#: Training images (of the trained classes, seeded draw) whose measured window maxima set V_REF.
VREF_IMAGES = 1000
#: Readouts of the STDP block: the class of the single WTA winner (the paper), or the vote of the
#: ``stdp.voters`` most excited neurons (k-WTA, :func:`hil.learning.stdp.vote`; ours).
READOUTS = ("winner", "vote")


# ---------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class DataCfg:
    name: str = "mnist"
    source: str = "bundled"
    data_dir: str = ""
    noise: float = 0.0             # fraction of random pixels (noisy MNIST: 0.2)
    validation: float = 0.1        # fraction of the training set held out (seeded)
    train_limit: int = 0           # 0 = all
    test_limit: int = 0


@dataclass(frozen=True)
class FilterCfg:
    kind: str = "joint"            # "joint" (STE) or "paper" (CFs + FFs)
    untrained: int = 0             # k: classes 10-k .. 9 are not trained
    bits: int = 4
    pool: int = 9                  # 9 = global pool (64 bits)
    vref: str = "trained"          # "trained", "median" (max-entropy bits of the software responses, ours)
                                   # or "measured-median" (the same on the array's measured responses, ours)
    epochs: int = 3
    lr: float = 0.01
    noise_aware: float = 0.0       # fraction of training images given the dataset's pixel noise
    scheme: str = "offset"
    i_c: float = 60e-6
    v_stop: float = -2.8
    tolerance: float = 0.05
    max_pulses: int = 60


@dataclass(frozen=True)
class OverlayCfg:
    backend: str = "twin"
    bitstream: str = ""
    full_scale: float = 128.0      # weight units of response mapped to +8 V


@dataclass(frozen=True)
class STDPCfg(STDPParams):
    """The STDP block's settings (:class:`~hil.learning.stdp.STDPParams`) plus the stream."""

    epochs: int = 1
    stream: str = "shuffled"       # or "incremental": classes appear one after another
    readout: str = "winner"        # the class of the one winner, or "vote": k-WTA vote of `voters` neurons
    voters: int = 5


@dataclass(frozen=True)
class RetrainCfg:
    enabled: bool = False
    rate: float = 0.02             # a filter whose bit appears in < rate (or > 1 - rate) of the stream is neglected
    epochs: int = 2                # epochs of filter training for the re-trained filters
    stdp_epochs: int = 1           # passes of the STDP block over the stream after re-training


@dataclass(frozen=True)
class ContinualConfig(RunFields):
    name: str = "continual-stdp"
    out: str = "continual-stdp.h5"
    dataset: DataCfg = field(default_factory=DataCfg)
    filters: FilterCfg = field(default_factory=FilterCfg)
    overlay: OverlayCfg = field(default_factory=OverlayCfg)
    stdp: STDPCfg = field(default_factory=STDPCfg)
    retrain: RetrainCfg = field(default_factory=RetrainCfg)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def validate(cfg: ContinualConfig, base_dir: Path | None) -> ContinualConfig:
    """Range checks; ConfigError names field, value and allowed range."""
    validate_run_fields(cfg)
    d, f, o, s, r = cfg.dataset, cfg.filters, cfg.overlay, cfg.stdp, cfg.retrain
    check_choice("dataset.name", d.name, ("mnist", "fashion-mnist"))
    check_choice("dataset.source", d.source, ("auto", "full", "bundled"))
    check_number("dataset.noise", d.noise, 0.0, 1.0)
    check_number("dataset.validation", d.validation, 0.0, 0.5, lo_open=True)
    check_number("dataset.train_limit", d.train_limit, 0, 10**7, integer=True)
    check_number("dataset.test_limit", d.test_limit, 0, 10**7, integer=True)
    check_choice("filters.kind", f.kind, ("joint", "paper"))
    check_number("filters.untrained", f.untrained, 0, 9, integer=True)
    check_number("filters.bits", f.bits, 1, 8, integer=True)
    check_number("filters.pool", f.pool, 1, 9, integer=True)
    if f.kind == "paper" and f.pool != 9:
        raise bad("filters.pool", f.pool, "9 (the paper's CF + FF bank uses the global pool)")
    check_choice("filters.vref", f.vref, VREF_RULES)
    if f.kind == "paper" and f.vref != "trained":
        raise bad("filters.vref", f.vref, "\"trained\" (the paper's class filters are trained with respect to V_REF; "
                  "its feature filters already take the median)")
    check_number("filters.epochs", f.epochs, 1, 100, integer=True)
    check_number("filters.lr", f.lr, 0.0, 1.0, lo_open=True)
    check_number("filters.noise_aware", f.noise_aware, 0.0, 1.0)
    check_choice("filters.scheme", f.scheme, SCHEMES)
    check_number("filters.i_c", f.i_c, 10.5e-6, 113e-6)
    check_number("filters.v_stop", f.v_stop, -3.5, -0.5)
    check_number("filters.tolerance", f.tolerance, 0.0, 0.5, lo_open=True)
    check_number("filters.max_pulses", f.max_pulses, 1, 1000, integer=True)
    check_choice("overlay.backend", o.backend, OVERLAY_BACKENDS)
    if o.backend == "board" and not o.bitstream:
        raise bad("overlay.bitstream", o.bitstream, "the path of maxpool_thresh.bit (required with backend = \"board\")")
    check_number("overlay.full_scale", o.full_scale, 1.0, 400.0)
    check_number("stdp.n_neurons", s.n_neurons, 1, 1000, integer=True)
    check_number("stdp.vth0", s.vth0, -1000.0, 1000.0)
    check_bool("stdp.sfa", s.sfa)
    check_number("stdp.sfa_gain", s.sfa_gain, 0.0, 1000.0)
    check_number("stdp.p_noise", s.p_noise, 0.0, 1.0)
    check_number("stdp.v_gate_ltp", s.v_gate_ltp, 0.75, 1.4)
    check_number("stdp.v_gate_sfa", s.v_gate_sfa, 0.75, 1.4)
    check_number("stdp.v_pulse_ltp", s.v_pulse_ltp, 0.5, 3.0)
    check_number("stdp.v_pulse_sfa", s.v_pulse_sfa, 0.5, 3.0)
    check_number("stdp.v_stop_ltd", s.v_stop_ltd, -3.5, -0.3)
    for name in ("width_ltp", "width_ltd", "width_sfa"):
        check_number(f"stdp.{name}", getattr(s, name), 1e-9, 1e-3)
    check_number("stdp.v_stop_init", s.v_stop_init, -3.5, -0.3)
    if len(s.init_gate) != 2 or not 0.75 <= s.init_gate[0] <= s.init_gate[1] <= 1.4:
        raise bad("stdp.init_gate", list(s.init_gate), "[low, high] gate voltages with 0.75 <= low <= high <= 1.4 V")
    check_choice("stdp.drive", s.drive, DRIVES)
    check_number("stdp.sfa_decay_every", s.sfa_decay_every, 0, 10**6, integer=True)
    check_number("stdp.v_stop_sfa_decay", s.v_stop_sfa_decay, -3.5, -0.3)
    check_number("stdp.width_sfa_decay", s.width_sfa_decay, 1e-9, 1e-3)
    check_number("stdp.epochs", s.epochs, 1, 20, integer=True)
    check_choice("stdp.stream", s.stream, ("shuffled", "incremental"))
    check_choice("stdp.readout", s.readout, READOUTS)
    check_number("stdp.voters", s.voters, 1, s.n_neurons, integer=True)
    check_bool("retrain.enabled", r.enabled)
    check_number("retrain.rate", r.rate, 0.0, 0.5)
    check_number("retrain.epochs", r.epochs, 1, 100, integer=True)
    check_number("retrain.stdp_epochs", r.stdp_epochs, 0, 20, integer=True)
    return cfg


# ---------------------------------------------------------------------------- the experiment
@registry.register
class ContinualSTDPExperiment(Experiment):
    """One continual-learning run (see the module docstring)."""

    name = "continual-stdp"
    config_type = ContinualConfig

    @classmethod
    def parse_config(cls, data: dict[str, Any], base_dir: Path | None = None) -> ContinualConfig:
        cfg = build(ContinualConfig, data)
        return validate(cfg, base_dir)

    def __init__(self, cfg: ContinualConfig, *, arrays: dict[str, CrossbarArray] | None = None) -> None:
        self.cfg = cfg
        d, f = cfg.dataset, cfg.filters
        ds = load_dataset(d.name, d.data_dir or None, d.source)
        if d.noise > 0:
            ds = noisy(ds, d.noise, cfg.seed)
        x_tr, y_tr = ds.x_train, ds.y_train.astype(np.int64)
        if d.train_limit:
            x_tr, y_tr = x_tr[: d.train_limit], y_tr[: d.train_limit]
        self.x_train, self.y_train, self.x_val, self.y_val = validation_split(x_tr, y_tr, fraction=d.validation,
                                                                              seed=[cfg.seed, 5])
        self.x_test, self.y_test = ds.x_test, ds.y_test.astype(np.int64)
        if d.test_limit:
            self.x_test, self.y_test = self.x_test[: d.test_limit], self.y_test[: d.test_limit]
        self.trained = tuple(range(10 - f.untrained))
        self.layout = BitSlicedFilters(400, flt.N_FILTERS, f.bits, f.scheme, f.i_c, f.v_stop, f.tolerance, f.max_pulses)
        self.windows = flt.pool_windows(f.pool)
        self.n_bits = self.windows.shape[0] * flt.N_FILTERS
        s = cfg.stdp
        self.stdp_params = STDPParams(**{k.name: getattr(s, k.name) for k in fields(STDPParams)})
        if arrays is None:
            arrays = {"filters": SimArray(self.layout.shape, "siox", seed=cfg.seed * 1000 + 1),
                      "stdp": SimArray((self.n_bits + 2, s.n_neurons), "siox", seed=cfg.seed * 1000 + 2)}
        for key, shape in (("filters", self.layout.shape), ("stdp", (self.n_bits + 2, s.n_neurons))):
            if key not in arrays or arrays[key].shape != shape:
                raise ConfigError(f"arrays[{key!r}] must be a CrossbarArray of shape {shape}")
        self._arrays = arrays
        self.table = default_table("siox")
        self.block = STDPBlock(arrays["stdp"], self.n_bits, self.stdp_params, seed=cfg.seed)
        self.overlay = self._open_overlay()
        self.bank: flt.FilterBank | None = None
        self.features: dict[str, np.ndarray] = {}
        self.results: dict[str, float] = {}
        self.order = self._stream_order()
        self.saturated = 0
        self.wall = 0.0

    # ------------------------------------------------------------------ plumbing
    def _open_overlay(self):
        o = self.cfg.overlay
        if o.backend == "twin":
            return NumpyOverlay()
        if o.backend == "sim-device":
            from drivers.overlay.sim_hwh import write_overlay_files
            from drivers.sim.pynq_device import SimPynqDevice

            self._overlay_dir = tempfile.TemporaryDirectory(prefix="hil-overlay-")
            return MaxPoolOverlay(str(write_overlay_files(self._overlay_dir.name)), device=SimPynqDevice())
        return MaxPoolOverlay(o.bitstream)

    def _stream_order(self) -> np.ndarray:
        rng = np.random.default_rng([self.cfg.seed, 3])
        n = len(self.y_train)
        orders = []
        for _ in range(self.cfg.stdp.epochs):
            if self.cfg.stdp.stream == "shuffled":
                orders.append(rng.permutation(n))
            else:  # trained classes mixed first, then each untrained class joins the mix in turn
                seq = [np.flatnonzero(np.isin(self.y_train, self.trained))]
                for c in range(10 - self.cfg.filters.untrained, 10):
                    seq.append(np.flatnonzero(self.y_train == c))
                orders.append(np.concatenate([rng.permutation(s) for s in seq]))
        return np.concatenate(orders)

    def arrays(self) -> dict[str, CrossbarArray]:
        return self._arrays

    def stages(self) -> list[str]:
        names = ["filters", "features", "stdp", "evaluate"]
        return names + (["retrain"] if self.cfg.retrain.enabled else [])

    def stage_work(self, i: int) -> int:
        retrain = 1 + self.cfg.retrain.stdp_epochs * (len(self.order) // self.cfg.stdp.epochs)
        return {0: 1, 1: len(self.x_train) + len(self.x_val) + len(self.x_test), 2: len(self.order), 3: 1, 4: retrain}[i]

    # ------------------------------------------------------------------ filters and feature maps
    def _train_bank(self, x: np.ndarray, y: np.ndarray, classes: tuple[int, ...], n_filters: int, epochs: int,
                    seed: int) -> flt.FilterBank:
        f, d = self.cfg.filters, self.cfg.dataset
        kw = dict(bits=f.bits, epochs=epochs, seed=seed, noise_fraction=d.noise if f.noise_aware else 0.0,
                  fraction_noisy=f.noise_aware)
        if f.kind == "paper" and n_filters == flt.N_FILTERS:
            bank = flt.paper_filters(x, y, classes, n_filters=n_filters, **kw)
        else:
            bank = flt.train_joint_filters(x, y, classes, n_filters=n_filters, pool=f.pool, lr=f.lr, **kw)
        if f.vref == "median":  # our addition: each bit on for half of the trained classes' images
                                # ("measured-median" sets V_REF after programming: measured_median_vref)
            bank = flt.max_entropy_vref(bank, x, y, seed=seed)
        return bank

    def _conversion(self) -> tuple[float, np.ndarray]:
        """(R_f in ohm, V_REF codes (64,)) for the programmed array's measured dG."""
        fp = FixedPoint()
        v_read = self._arrays["filters"].technology.v_read
        r_f = fp.v_max / (self.cfg.overlay.full_scale * v_read * self.layout.d_g)
        vref = np.clip(np.rint(self.bank.vref * v_read * self.layout.d_g * r_f / fp.lsb_volts), CODE_MIN, CODE_MAX)
        return r_f, vref.astype(np.int16)

    def measured_median_vref(self, which: np.ndarray) -> flt.FilterBank:
        """The bank with V_REF of filters ``which`` at the median of their *measured* window maxima.

        Our addition (``filters.vref = "measured-median"``): up to :data:`VREF_IMAGES` training
        images of the trained classes (seeded draw; no other class is looked at) go through the
        programmed array's MVM and the overlay's input quantisation; V_REF is the median, per
        filter, of the maxima of every pooling window in the overlay's Q3.12 code, converted back
        to weight units (so that :meth:`_conversion` writes that code). Taken on the measured
        responses, the bits are balanced on the hardware, where the maximum of a window of noisy,
        non-ideal responses lies above the software one (``"median"`` balances the software bits).
        """
        pick = flt.class_sample(self.y_train, self.trained, VREF_IMAGES, [self.cfg.seed, 19])
        maxima = [flt.pooled(np.clip(self._input_codes(self.x_train[pick[s:s + 100]]), CODE_MIN, CODE_MAX),
                             self.windows)[0].reshape(-1, flt.N_FILTERS) for s in range(0, pick.size, 100)]
        code = np.median(np.concatenate(maxima), axis=0)
        r_f, _ = self._conversion()
        vref = self.bank.vref.copy()
        v_read = self._arrays["filters"].technology.v_read
        vref[which] = code[which] * FixedPoint().lsb_volts / (r_f * v_read * self.layout.d_g)
        return flt.FilterBank(self.bank.weights, vref, self.bank.bits, self.bank.kinds, self.bank.classes, self.bank.pool)

    def configure_overlay(self) -> None:
        _, vref = self._conversion()
        p = self.cfg.filters.pool
        self.geometry = Geometry(flt.POSITIONS, flt.POSITIONS, flt.N_FILTERS, pool_h=p, pool_w=p)
        self.overlay.configure(vref, self.geometry)

    def feature_maps(self, images: np.ndarray, ctx: StageContext | None = None, chunk: int = 100) -> np.ndarray:
        """Binary feature maps (n, n_bits) through the filter array's MVM and the overlay."""
        out = np.empty((len(images), self.n_bits), dtype=bool)
        for s in range(0, len(images), chunk):
            codes = self._input_codes(images[s:s + chunk])
            self.saturated += int(np.count_nonzero((codes < CODE_MIN) | (codes > CODE_MAX)))
            n = len(codes)
            frames = np.clip(codes, CODE_MIN, CODE_MAX).astype(np.int16).reshape(n, flt.POSITIONS, flt.POSITIONS, -1)
            out[s:s + n] = self.overlay.process(frames).reshape(n, -1)
            if ctx is not None:
                ctx.advance(n)
        return out

    def _input_codes(self, images: np.ndarray) -> np.ndarray:
        """The overlay's input for ``images``: the filter array's MVM currents of every convolution
        step, rounded to the Q3.12 code (not yet clipped to its range), shape (n, 81, 64)."""
        fp = FixedPoint()
        r_f, _ = self._conversion()
        p = flt.patches(images)  # single precision, as the array's MVM takes its inputs (MVM_DTYPE)
        y = self.layout.responses(self._arrays["filters"], p.reshape(-1, p.shape[-1]))
        return np.rint(y * r_f / fp.lsb_volts).reshape(len(p), flt.POSITIONS ** 2, -1)

    # ------------------------------------------------------------------ stages
    def run_stage(self, i: int, ctx: StageContext) -> None:
        t0 = time.perf_counter()
        [self._stage_filters, self._stage_features, self._stage_stdp, self._stage_evaluate, self._stage_retrain][i](ctx)
        self.wall += time.perf_counter() - t0

    def _stage_filters(self, ctx: StageContext) -> None:
        f = self.cfg.filters
        self.bank = self._train_bank(self.x_train, self.y_train, self.trained, flt.N_FILTERS, f.epochs, self.cfg.seed)
        summary = self.layout.program(self._arrays["filters"], self.bank.codes(), self.table)
        for k, v in summary.items():
            ctx.metric(f"program.{k}", float(v), step=0)
        # software reference of the trained bank on the validation split (for Fig. 5 / Fig. 6)
        ctx.metric("filters.defects", float(getattr(self.layout, "n_defects", 0)))
        if f.vref == "measured-median":
            self.bank = self.measured_median_vref(np.arange(flt.N_FILTERS))
        self.block.initialise()
        self.configure_overlay()
        ctx.advance(1)

    def _stage_features(self, ctx: StageContext) -> None:
        for split, x in (("train", self.x_train), ("val", self.x_val), ("test", self.x_test)):
            self.features[split] = self.feature_maps(x, ctx)
        ctx.metric("features.saturated_codes", float(self.saturated))
        # Fig. 12: appearance rate of every filter's bit over the training stream
        for j, r in enumerate(self.appearance_rate("train")):
            ctx.metric("appearance_rate", float(r), step=j)
        acc = self._software_readout()
        ctx.metric("features.readout_val_accuracy", acc, step=0)
        self.results["diag_ncm_val_accuracy"] = acc
        kinds = self.bank.kinds
        if np.any(kinds == "class"):  # paper Fig. 6: accuracy of the class filters and of the feature filters
            self.results["filters_cf_val_accuracy"] = self._class_filter_accuracy()
            self.results["filters_ff_val_accuracy"] = self._software_readout(np.flatnonzero(kinds == "feature"))
            for k in ("filters_cf_val_accuracy", "filters_ff_val_accuracy"):
                ctx.metric(k, self.results[k], step=0)

    def _filter_bits(self, split: str, filters: np.ndarray) -> np.ndarray:
        """Bits of ``filters`` (any window) of the hardware feature maps of ``split``, (n, len(filters)) float32."""
        f = self.features[split]
        return f.reshape(len(f), -1, flt.N_FILTERS)[:, :, filters].any(axis=1).astype(np.float32)

    def _software_readout(self, filters: np.ndarray | None = None) -> float:
        """Nearest-class-mean accuracy of the hardware feature maps (of ``filters`` only, default all) on
        the validation split: a diagnostic of the feature map, not a result of the system."""
        if filters is None:
            ftr, fva = self.features["train"].astype(np.float32), self.features["val"].astype(np.float32)
        else:
            ftr, fva = self._filter_bits("train", filters), self._filter_bits("val", filters)
        means = np.stack([ftr[self.y_train == c].mean(axis=0) if np.any(self.y_train == c) else np.zeros(ftr.shape[1])
                          for c in range(10)])
        pred = np.argmin(((fva[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
        return float(np.mean(pred == self.y_val)) if len(pred) else math.nan

    def _class_filter_accuracy(self) -> float:
        """Mean balanced one-vs-rest accuracy of the class filters' bits on the validation split (Fig. 6a-b)."""
        cf = np.flatnonzero(self.bank.kinds == "class")
        bits = self._filter_bits("val", cf) > 0
        accs = []
        for k, c in enumerate(self.bank.classes[: cf.size]):  # class filter k recognises trained class k
            pos = self.y_val == c
            if pos.any() and (~pos).any():
                accs.append(0.5 * (bits[pos, k].mean() + (~bits[~pos, k]).mean()))
        return float(np.mean(accs)) if accs else math.nan

    def _stage_stdp(self, ctx: StageContext) -> None:
        self._stdp_pass(self.order, ctx, step0=0)
        block = self.block
        for k, v in block.counts.items():
            ctx.metric(f"stdp.{k}", float(v), step=len(self.order))
        for k, v in block.energy.items():
            ctx.metric(f"energy.{k}_J", v, step=len(self.order))

    def _stdp_pass(self, order: np.ndarray, ctx: StageContext, step0: int, window: int = 200) -> None:
        """Online learning over ``order`` (indices of the training stream); the spike rate per window
        and the class presented are logged at steps ``step0 + n``."""
        feats, block = self.features["train"], self.block
        fired = 0
        for n, idx in enumerate(order, 1):
            fired += block.present(feats[idx], learn=True) >= 0
            if n % window == 0:
                rate = fired / window
                ctx.metric("stdp.spike_rate", rate, step=step0 + n)
                ctx.metric("stdp.class_of_stream", float(self.y_train[idx]), step=step0 + n)
                ctx.postfix({"spike rate": rate, "firings": block.counts["firings"]})
                ctx.advance(window)
                fired = 0
        ctx.advance(len(order) % window)

    def _accuracies(self, prefix: str) -> dict[str, float]:
        win_tr = self.block.winners(self.features["train"])
        labels = assign_labels(win_tr, self.y_train, self.stdp_params.n_neurons)
        out: dict[str, float] = {}
        s = self.cfg.stdp
        for split, y in (("val", self.y_val), ("test", self.y_test)):
            if s.readout == "vote":
                pred = self.block.vote(self.features[split], labels, s.voters)
            else:
                pred = predict(self.block.winners(self.features[split]), labels)
            ok = pred == y
            untrained = ~np.isin(y, self.trained)
            out[f"{prefix}{split}_accuracy"] = float(ok.mean())
            out[f"{prefix}{split}_accuracy_trained"] = float(ok[~untrained].mean()) if np.any(~untrained) else math.nan
            out[f"{prefix}{split}_accuracy_untrained"] = float(ok[untrained].mean()) if np.any(untrained) else math.nan
        self.neuron_labels = labels
        return out

    def _stage_evaluate(self, ctx: StageContext) -> None:
        res = self._accuracies("")
        self.results.update(res)
        for k, v in res.items():
            ctx.metric(k, v)
        ctx.postfix({"test acc": res["test_accuracy"]})
        ctx.advance(1)

    def appearance_rate(self, split: str = "train") -> np.ndarray:
        """Fraction of the images of ``split`` in which each filter's bit appears (any window), (64,)."""
        f = self.features[split]
        return f.reshape(len(f), -1, flt.N_FILTERS).any(axis=1).mean(axis=0)

    def neglected_filters(self) -> np.ndarray:
        """Filters whose bit (almost) never or (almost) always appears over the training stream (paper Fig. 12)."""
        rate, r = self.appearance_rate("train"), self.cfg.retrain.rate
        return np.flatnonzero((rate < r) | (rate > 1 - r))

    def _stage_retrain(self, ctx: StageContext) -> None:
        """Re-train the neglected filters from the clusters of the classification neurons (Figs. 12-14).

        The training targets are the classes of the neurons that won each training pattern during
        continual learning (never the dataset's labels directly: an untrained class is known only
        through its neuron); only the cells of the re-trained filters are re-programmed; the STDP
        block then keeps learning online over the stream (``retrain.stdp_epochs`` passes) with the
        new feature maps, and is evaluated again (``retrained_*``).
        """
        r = self.cfg.retrain
        neglected = self.neglected_filters()
        ctx.metric("retrain.neglected", float(neglected.size))
        for j in neglected:
            ctx.metric("retrain.neglected_filter", float(j), step=int(j))
        clusters = predict(self.block.winners(self.features["train"]), self.neuron_labels)
        keep = clusters >= 0
        if neglected.size and not keep.any():
            log.warning("re-training skipped: no classification neuron clustered any training pattern")
        if neglected.size and keep.any():
            new = self._train_bank(self.x_train[keep], clusters[keep], tuple(int(c) for c in np.unique(clusters[keep])),
                                   neglected.size, r.epochs, self.cfg.seed + 7)
            full = flt.FilterBank(self.bank.weights.copy(), self.bank.vref.copy(), self.bank.bits,
                                  self.bank.kinds.astype("U16"), self.bank.classes, self.bank.pool)
            full.weights[:, neglected], full.vref[neglected] = new.weights, new.vref
            full.kinds[neglected] = "retrained"
            self.bank = full
            self.layout.program(self._arrays["filters"], self.bank.codes(), self.table, filters=neglected)
            if self.cfg.filters.vref == "measured-median":
                self.bank = self.measured_median_vref(neglected)
            self.configure_overlay()
            for split, x in (("train", self.x_train), ("val", self.x_val), ("test", self.x_test)):
                self.features[split] = self.feature_maps(x)
            rate = self.appearance_rate("train")
            for j, v in enumerate(rate):
                ctx.metric("retrain.appearance_rate", float(v), step=j)
            n = len(self.order) // self.cfg.stdp.epochs  # one pass = one epoch of the stream's order
            for e in range(r.stdp_epochs):
                first = (e % self.cfg.stdp.epochs) * n
                self._stdp_pass(self.order[first:first + n], ctx, step0=len(self.order) + e * n)
        res = self._accuracies("retrained_")
        self.results.update(res)
        for k, v in res.items():
            ctx.metric(k, v)
        ctx.advance(1)

    # ------------------------------------------------------------------ state
    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays: dict[str, np.ndarray] = {}
        meta: dict[str, Any] = {"results": self.results, "saturated": self.saturated, "wall": self.wall}
        for name, a in self._arrays.items():
            if isinstance(a, SimArray):
                st, m = a.get_state()
                arrays.update({f"{name}/{k}": v for k, v in st.items()})
                meta[f"array/{name}"] = m
        st, m = self.block.state()
        arrays.update({f"block/{k}": v for k, v in st.items()})
        meta["block"] = m
        if self.bank is not None:
            arrays.update({"bank/weights": self.bank.weights, "bank/vref": self.bank.vref,
                           "bank/kinds": self.bank.kinds.astype("S16")})
            meta["layout"] = {"g_on": self.layout.g_on, "d_g": self.layout.d_g,
                              "g_off": getattr(self.layout, "_g_off_median", 0.0),
                              "n_defects": getattr(self.layout, "n_defects", 0)}
            if self.layout.correction is not None:
                arrays["layout/correction"] = self.layout.correction
        for k, v in self.features.items():
            arrays[f"features/{k}"] = v
        if hasattr(self, "neuron_labels"):
            arrays["neuron_labels"] = self.neuron_labels
        return arrays, meta

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        for name, a in self._arrays.items():
            if isinstance(a, SimArray) and f"array/{name}" in meta:
                a.set_state({k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith(f"{name}/")},
                            meta[f"array/{name}"])
        self.block.load_state({k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("block/")}, meta["block"])
        self.results, self.saturated, self.wall = dict(meta["results"]), int(meta["saturated"]), float(meta["wall"])
        if "bank/weights" in arrays:
            f = self.cfg.filters
            self.bank = flt.FilterBank(np.asarray(arrays["bank/weights"]), np.asarray(arrays["bank/vref"]), f.bits,
                                       np.asarray(arrays["bank/kinds"]).astype(str), self.trained, f.pool)
            lay = meta["layout"]
            self.layout.g_on, self.layout.d_g, self.layout._g_off_median = lay["g_on"], lay["d_g"], lay["g_off"]
            self.layout.n_defects = lay["n_defects"]
            if "layout/correction" in arrays:
                self.layout.correction = np.asarray(arrays["layout/correction"])
            self.configure_overlay()
        self.features = {k.split("/", 1)[1]: np.asarray(v, bool) for k, v in arrays.items() if k.startswith("features/")}
        if "neuron_labels" in arrays:
            self.neuron_labels = np.asarray(arrays["neuron_labels"])

    def summary(self) -> dict[str, float]:
        out = dict(self.results)
        out.update({f"stdp_{k}": float(v) for k, v in self.block.counts.items()})
        out["energy_J"] = float(sum(self.block.energy[k] for k in sorted(self.block.energy)))
        out.update({f"energy_{k}_J": float(v) for k, v in self.block.energy.items()})
        out["wall_time_s"] = self.wall
        return out

    @classmethod
    def report(cls, reader: RunReader, out_dir: Path, stem: str) -> list[Path]:
        from hil.experiments.continual_stdp_figures import draw

        return draw(reader, Path(out_dir), stem)

    @classmethod
    def report_sweep(cls, summary, out_dir: Path) -> list[Path]:
        from hil.experiments.continual_stdp_figures import draw_sweep

        return draw_sweep(summary, Path(out_dir))
