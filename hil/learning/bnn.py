"""The software BNN baseline of the paper: Laborieux et al. (2021), metaplastic binarized network.

Laborieux, Ernoult, Hirtzlin, Querlioz, "Synaptic metaplasticity in binarized neural networks",
Nat. Commun. 12, 2549 (2021): a fully connected 784-4096-4096-10 network with binary weights
``W_B = sign(W_H)`` and binary (sign) activations, BatchNorm after every layer (kept per task),
trained with Adam whose updates are scaled by ``f_meta = 1 - tanh^2(m |W_H|)`` when they push
``W_H`` toward zero (their Eq. 1, :func:`hil.learning.metaplastic.bnn_meta_update`). Everything is
digital: ``W_H`` in float32 plus the binary weight, which is what the memory comparison counts.
"""

from __future__ import annotations

import numpy as np

from hil.learning.metaplastic import Adam, bnn_meta_update
from hil.learning.qnn import QNN

#: The paper's baseline architecture.
BNN_SIZES = (784, 4096, 4096, 10)


class BNNLearner:
    """Metaplastic BNN (Laborieux et al. 2021): sign weights, sign activations, BN per task.

    Args:
        sizes: layer widths (default :data:`BNN_SIZES`).
        n_tasks: number of tasks (one BN set each).
        rng: generator for the initial hidden weights.
        m: metaplasticity strength (0 = plain BNN).
        lr: Adam learning rate.
        init_scale: hidden weights start uniform in ``[-init_scale, init_scale]``.
    """

    def __init__(
        self, sizes: tuple[int, ...] = BNN_SIZES, n_tasks: int = 2, rng: np.random.Generator | None = None,
        m: float = 1.3, lr: float = 0.005, init_scale: float = 0.01,
    ) -> None:
        rng = rng if rng is not None else np.random.default_rng(0)
        self.model = QNN(sizes, n_tasks, rng, init_scale, activation="sign")
        self.m = float(m)
        self.adam_w = Adam(lr=lr)
        self.adam_bn = Adam(lr=lr)

    def binary_weights(self) -> list[np.ndarray]:
        """``sign(W_H)`` per layer (+1 at zero), float32."""
        return [np.where(w >= 0, 1.0, -1.0).astype(np.float32) for w in self.model.w_h]

    def start_task(self, task: int) -> None:
        self.adam_w.reset()
        self.adam_bn.reset()
        self.model.start_task(task)

    def step(self, x: np.ndarray, y: np.ndarray, task: int) -> float:
        """One minibatch; returns the loss."""
        loss, gw, gbn = self.model.loss_and_grads(x, y, self.binary_weights(), task)
        upd = self.adam_w.updates({f"w{l}": g for l, g in enumerate(gw)})
        for l, w_h in enumerate(self.model.w_h):
            w_h += bnn_meta_update(w_h, upd[f"w{l}"], self.m)
        bn = self.model.bn_of(task)
        for k, u in self.adam_bn.updates(gbn).items():
            bn[k] += u
        return loss

    def accuracy(self, x: np.ndarray, y: np.ndarray, task: int) -> float:
        return self.model.accuracy(x, y, self.binary_weights(), task)

    def memory_bits(self) -> int:
        """Digital memory of the weights: float32 ``W_H`` + 1 bit ``W_B`` per weight, bits."""
        return 33 * sum(w.size for w in self.model.w_h)
