"""A fully connected ReLU network whose weights are quantised, with BatchNorm per task or shared.

Plain numpy, float32, no I/O. The network does not own its *effective* weights: the caller
passes them to :meth:`QNN.forward` (the quantised levels in software, or the conductances
measured back from a memristor array mapped to weights, see :mod:`hil.mapping`). The hidden
weights ``W_H`` live here, in digital memory, and receive the (metaplastic) updates.

BatchNorm protocols (``batchnorm=``):

* ``"per-task"`` (Laborieux et al., Nat. Commun. 12, 2549 (2021), the protocol of their
  metaplastic BNN code): every task has its own BN statistics and affine terms; they are trained
  with that task and restored when testing it, so **the task identity is given at test time**.
  A new task starts from a copy of the previous task's BN parameters.
* ``"shared"``: one BN set, trained through every task and used for every test; the network is
  not told which task an input belongs to.

Shapes: inputs ``x`` (batch, n_in) in [0, 1]; weights ``W_l`` (n_in_l, n_out_l); logits (batch, 10).
"""

from __future__ import annotations

import numpy as np

BN_EPS = 1e-5
BN_MOMENTUM = 0.1
BATCHNORM_PROTOCOLS = ("per-task", "shared")


class QNN:
    """ReLU MLP ``n_in - hidden... - n_out`` without biases, BN after every layer (per task).

    Args:
        sizes: layer widths, e.g. (784, 1024, 10).
        n_tasks: number of tasks (one BN set each).
        rng: generator for the initial hidden weights.
        batchnorm: ``"per-task"`` or ``"shared"`` (see the module docstring).
        init_scale: hidden weights start uniform in ``[-init_scale, init_scale]`` (weight units).
        activation: ``"relu"`` (the QNN) or ``"sign"`` (binary activations of the BNN baseline,
            straight-through estimator with the hardtanh derivative ``1{|z| <= 1}``).
    """

    def __init__(
        self, sizes: tuple[int, ...], n_tasks: int, rng: np.random.Generator, init_scale: float, activation: str = "relu",
        batchnorm: str = "per-task",
    ) -> None:
        if activation not in ("relu", "sign"):
            raise ValueError(f"activation={activation!r} is not one of ['relu', 'sign']")
        if batchnorm not in BATCHNORM_PROTOCOLS:
            raise ValueError(f"batchnorm={batchnorm!r} is not one of {list(BATCHNORM_PROTOCOLS)}")
        self.batchnorm = batchnorm
        self.activation = activation
        if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
            raise ValueError(f"sizes must list at least 2 positive layer widths, got {sizes!r}")
        if n_tasks < 1:
            raise ValueError(f"n_tasks must be >= 1, got {n_tasks}")
        self.sizes = tuple(int(s) for s in sizes)
        self.n_tasks = int(n_tasks)
        self.w_h: list[np.ndarray] = [
            rng.uniform(-init_scale, init_scale, size=(a, b)).astype(np.float32)
            for a, b in zip(self.sizes[:-1], self.sizes[1:])
        ]
        n_sets = self.n_tasks if batchnorm == "per-task" else 1
        self.bn: list[dict[str, np.ndarray]] = [self._fresh_bn() for _ in range(n_sets)]

    @property
    def n_layers(self) -> int:
        return len(self.w_h)

    def _fresh_bn(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for layer, n in enumerate(self.sizes[1:]):
            out[f"gamma{layer}"] = np.ones(n, np.float32)
            out[f"beta{layer}"] = np.zeros(n, np.float32)
            out[f"mean{layer}"] = np.zeros(n, np.float32)
            out[f"var{layer}"] = np.ones(n, np.float32)
        return out

    def bn_of(self, task: int) -> dict[str, np.ndarray]:
        """The BN set used for task ``task`` (the one shared set with ``batchnorm="shared"``)."""
        return self.bn[task if self.batchnorm == "per-task" else 0]

    def start_task(self, task: int) -> None:
        """Per task: initialise task ``task``'s BN from task ``task - 1``'s (fresh for task 0).
        Shared: fresh at task 0, then kept (it goes on training)."""
        if self.batchnorm == "shared":
            if task == 0:
                self.bn[0] = self._fresh_bn()
            return
        self.bn[task] = self._fresh_bn() if task == 0 else {k: v.copy() for k, v in self.bn[task - 1].items()}

    # ------------------------------------------------------------------ forward / backward
    def forward(
        self, x: np.ndarray, weights: list[np.ndarray], task: int, train: bool
    ) -> tuple[np.ndarray, list[tuple]]:
        """Logits (batch, n_out) and the cache for :meth:`backward`.

        In training mode BN uses batch statistics and updates task ``task``'s running ones.
        """
        bn = self.bn_of(task)
        cache: list[tuple] = []
        h = x
        for layer, w in enumerate(weights):
            a = h @ w
            if train:
                mu = a.mean(axis=0)
                var = a.var(axis=0)
                bn[f"mean{layer}"] *= 1 - BN_MOMENTUM
                bn[f"mean{layer}"] += BN_MOMENTUM * mu
                n = a.shape[0]
                bn[f"var{layer}"] *= 1 - BN_MOMENTUM
                bn[f"var{layer}"] += BN_MOMENTUM * var * (n / max(n - 1, 1))
            else:
                mu, var = bn[f"mean{layer}"], bn[f"var{layer}"]
            inv = (1.0 / np.sqrt(var + BN_EPS)).astype(np.float32)
            xhat = (a - mu) * inv
            z = xhat * bn[f"gamma{layer}"] + bn[f"beta{layer}"]
            last = layer == len(weights) - 1
            out = z if last else (np.maximum(z, 0) if self.activation == "relu" else np.where(z >= 0, 1.0, -1.0).astype(np.float32))
            cache.append((h, xhat, inv, z, bn[f"gamma{layer}"]))
            h = out
        return h, cache

    def backward(
        self, cache: list[tuple], dlogits: np.ndarray, weights: list[np.ndarray]
    ) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
        """Gradients of the loss w.r.t. the effective weights (list, shapes of ``weights``) and
        the BN affine terms (``gamma<l>``, ``beta<l>``). Straight-through: the caller applies the
        weight gradients to ``W_H``."""
        grads_w: list[np.ndarray] = [np.empty(0)] * len(weights)
        grads_bn: dict[str, np.ndarray] = {}
        dout = dlogits
        for layer in reversed(range(len(weights))):
            h_in, xhat, inv, z, gamma = cache[layer]
            if layer != len(weights) - 1:
                dout = dout * ((z > 0) if self.activation == "relu" else (np.abs(z) <= 1))
            grads_bn[f"gamma{layer}"] = (dout * xhat).sum(axis=0)
            grads_bn[f"beta{layer}"] = dout.sum(axis=0)
            dxhat = dout * gamma
            n = dxhat.shape[0]
            da = inv / n * (n * dxhat - dxhat.sum(axis=0) - xhat * (dxhat * xhat).sum(axis=0))
            grads_w[layer] = h_in.T @ da
            if layer > 0:
                dout = da @ weights[layer].T
        return grads_w, grads_bn

    def loss_and_grads(
        self, x: np.ndarray, y: np.ndarray, weights: list[np.ndarray], task: int
    ) -> tuple[float, list[np.ndarray], dict[str, np.ndarray]]:
        """Mean softmax cross-entropy on (x, y) in training mode, and its gradients."""
        logits, cache = self.forward(x, weights, task, train=True)
        shifted = logits - logits.max(axis=1, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        n = x.shape[0]
        loss = float(-logp[np.arange(n), y].mean())
        dlogits = np.exp(logp)
        dlogits[np.arange(n), y] -= 1
        dlogits /= n
        gw, gbn = self.backward(cache, dlogits.astype(np.float32), weights)
        return loss, gw, gbn

    def predict(self, x: np.ndarray, weights: list[np.ndarray], task: int, batch: int = 2000) -> np.ndarray:
        """Predicted classes, shape (n,), with task ``task``'s BN in inference mode."""
        out = [self.forward(x[i : i + batch], weights, task, train=False)[0].argmax(axis=1) for i in range(0, len(x), batch)]
        return np.concatenate(out)

    def accuracy(self, x: np.ndarray, y: np.ndarray, weights: list[np.ndarray], task: int) -> float:
        """Fraction of correct predictions (0..1)."""
        return float(np.mean(self.predict(x, weights, task) == y))

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, np.ndarray]:
        """Flat dict of arrays for a checkpoint (hidden weights and every task's BN)."""
        out = {f"w_h{l}": w for l, w in enumerate(self.w_h)}
        for t, bn in enumerate(self.bn):
            for k, v in bn.items():
                out[f"bn{t}/{k}"] = v
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore from :meth:`state`."""
        self.w_h = [np.array(state[f"w_h{l}"], dtype=np.float32) for l in range(self.n_layers)]
        for t in range(len(self.bn)):
            self.bn[t] = {k: np.array(state[f"bn{t}/{k}"], dtype=np.float32) for k in self.bn[t]}
