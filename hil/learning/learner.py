"""The training step of a metaplastic QNN: gradients with the effective weights, Adam, the
metaplastic rule on ``W_H``, and the new quantised levels. Plain numpy, no I/O.

Which weights the forward pass uses is the caller's business (software levels, or conductances
measured on an array); the learner reports, per layer, which weights changed level so that the
caller re-programs only those devices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hil.learning.levels import check_levels, quantize
from hil.learning.metaplastic import META_UNITS, Adam, metaplastic_update
from hil.learning.qnn import QNN


@dataclass(frozen=True)
class RuleConfig:
    """Learning-rule settings.

    Attributes:
        m_star: metaplasticity strength m* (0 = the plain, non-metaplastic rule).
        unit: consolidation unit of the meta-function (``"interval"`` or ``"weight"``).
        lr: Adam learning rate of the hidden weights, weight units per step.
        lr_bn: Adam learning rate of the BN affine terms.
    """

    m_star: float = 4.0
    unit: str = "interval"
    lr: float = 0.005
    lr_bn: float = 0.005

    def __post_init__(self) -> None:
        if not (np.isfinite(self.m_star) and self.m_star >= 0):
            raise ValueError(f"m_star={self.m_star!r} must be >= 0")
        if self.unit not in META_UNITS:
            raise ValueError(f"unit={self.unit!r} is not one of {list(META_UNITS)}")
        for name in ("lr", "lr_bn"):
            v = getattr(self, name)
            if not (np.isfinite(v) and 0 < v <= 1):
                raise ValueError(f"{name}={v!r} must be in (0, 1]")


class MetaplasticLearner:
    """Owns the QNN's hidden weights, their quantised level indices and the optimisers.

    Args:
        model: the network (its ``w_h`` are the hidden weights).
        levels: weight levels Q, shape (L,), ascending, straddling zero.
        rule: :class:`RuleConfig`.
    """

    def __init__(self, model: QNN, levels: np.ndarray, rule: RuleConfig) -> None:
        self.model = model
        self.levels = check_levels(levels)
        self.levels32 = self.levels.astype(np.float32)
        self.rule = rule
        self.adam_w = Adam(lr=rule.lr)
        self.adam_bn = Adam(lr=rule.lr_bn)
        self.level_idx: list[np.ndarray] = [quantize(w, self.levels) for w in model.w_h]

    def quantized_weights(self) -> list[np.ndarray]:
        """The ideal quantised weights ``Q[idx]`` per layer (float32)."""
        return [self.levels32[i] for i in self.level_idx]

    def start_task(self, task: int) -> None:
        """Task boundary: reset both Adams, initialise the task's BN."""
        self.adam_w.reset()
        self.adam_bn.reset()
        self.model.start_task(task)

    def step(
        self, x: np.ndarray, y: np.ndarray, task: int, weights: list[np.ndarray] | None = None
    ) -> tuple[float, list[np.ndarray]]:
        """One minibatch.

        Args:
            x: inputs, (batch, n_in) float32; y: labels (batch,).
            task: index of the task being trained (selects its BN).
            weights: effective weights for the forward/backward pass (e.g. measured on the array);
                default the ideal quantised weights.

        Returns:
            The loss, and per layer a boolean mask (shape of the layer) of the weights whose
            quantised level changed (``self.level_idx`` already holds the new levels).
        """
        weights = self.quantized_weights() if weights is None else weights
        loss, gw, gbn = self.model.loss_and_grads(x, y, weights, task)
        upd = self.adam_w.updates({f"w{l}": g for l, g in enumerate(gw)})
        changed: list[np.ndarray] = []
        for l, w_h in enumerate(self.model.w_h):
            u = metaplastic_update(w_h, upd[f"w{l}"], self.levels, self.rule.m_star, self.rule.unit)
            w_h += u
            new_idx = quantize(w_h, self.levels)
            mask = new_idx != self.level_idx[l]
            self.level_idx[l] = new_idx
            changed.append(mask)
        bn = self.model.bn_of(task)
        for k, u in self.adam_bn.updates(gbn).items():
            bn[k] += u
        return loss, changed

    def state(self) -> dict[str, np.ndarray]:
        """Flat dict of arrays for a checkpoint (model, level indices, both Adams)."""
        out = dict(self.model.state())
        out.update({f"level_idx{l}": i for l, i in enumerate(self.level_idx)})
        out.update({f"adam_w/{k}": v for k, v in self.adam_w.state().items()})
        out.update({f"adam_bn/{k}": v for k, v in self.adam_bn.state().items()})
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore from :meth:`state`."""
        self.model.load_state(state)
        self.level_idx = [np.array(state[f"level_idx{l}"]) for l in range(self.model.n_layers)]
        self.adam_w.load_state({k[len("adam_w/"):]: v for k, v in state.items() if k.startswith("adam_w/")})
        self.adam_bn.load_state({k[len("adam_bn/"):]: v for k, v in state.items() if k.startswith("adam_bn/")})
