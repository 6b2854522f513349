"""Convolutional filters of the SiOx continual-learning system, as plain numpy (no I/O).

The system (Muñoz-Martín, Bianchi et al., "A SiOx RRAM-based hardware with spike frequency
adaptation for power-saving continual learning in CNNs", Fig. 3b) convolves a 28x28 image with
64 filters of 20x20 pixels (9x9 = 81 positions, stride 1). For every filter the FPGA max-pools
the 81 MVM results (globally, or over local windows) and compares the maximum with that filter's
threshold V_REF: the bits form the binary feature map classified by the STDP block. The filters
are trained *with respect to V_REF*: the threshold is a trained parameter of each filter.

Three kinds of filter bank, all trained on the trained classes only:

* **class filters** (CFs, :func:`train_class_filters`): one per trained class, each trained to
  recognise its class against all others (one-vs-rest logistic loss on the pooled, thresholded
  response), as the paper says and its reference [4] (Muñoz-Martín et al., IEEE JxCDC 5, 58
  (2019)) introduced;
* **feature filters** (FFs, :func:`feature_filters`): generic features of the training set that
  transfer to untrained classes (the paper's ref. [5], Torrey & Shavlik, "Transfer learning",
  2009). Ref. [4] gives no construction we could read; we take the leading principal
  components of the 20x20 training patches (an unsupervised, class-agnostic feature basis), and
  each FF's V_REF is the median of its pooled response over the training images, so that its
  bit splits the training set in half (the most informative threshold of a single bit);
* **jointly trained filters** (:func:`train_joint_filters`, our addition): all 64 filters and
  their V_REF trained together for the feature map itself, through the max pool and the V_REF
  step with a straight-through estimator (Bengio et al., arXiv:1308.3432, 2013) for the step and
  for the weight quantisation, with a softmax read-out on the bits that is discarded afterwards.

Optionally (:func:`max_entropy_vref`, our addition, not the paper's) every filter's V_REF is
re-set after training to the median of its window maxima over the trained classes' training
images, so that each bit is on for half of them (the largest entropy a single bit can carry);
with a local pool this keeps the bits of the classes the filters never saw balanced too.
The median is taken on the software responses: through an array the window maxima of noisy
responses are biased upward, so the hardware bits are on somewhat more often than half.

Weights live in [-1, 1] and are quantised to ``bits`` bits (1..8, default 4; paper Fig. 5):
unsigned codes ``u = 0 .. 2**bits - 1`` stand for ``w = 2 u / (2**bits - 1) - 1``.
Responses are in *weight units*: ``r = sum_i x_i w_i`` for pixels ``x_i`` in [0, 1].
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

IMAGE = 28
KERNEL = 20
POSITIONS = IMAGE - KERNEL + 1  # 9 positions per axis, 81 in all
N_FILTERS = 64


# ---------------------------------------------------------------------------- geometry
def patches(images: np.ndarray, dtype: type = np.float32) -> np.ndarray:
    """The 81 receptive fields of each image.

    Args:
        images: (n, 28, 28) uint8 (0..255) or float in [0, 1].

    Returns:
        (n, 81, 400): patch of position ``(py, px)`` at index ``py * 9 + px``, pixels row-major.
    """
    x = np.asarray(images)
    if x.ndim != 3 or x.shape[1:] != (IMAGE, IMAGE):
        raise ValueError(f"images must have shape (n, {IMAGE}, {IMAGE}), got {x.shape}")
    if x.dtype == np.uint8:
        x = x.astype(dtype) / dtype(255.0)
    v = np.lib.stride_tricks.sliding_window_view(x.astype(dtype, copy=False), (KERNEL, KERNEL), axis=(1, 2))
    return np.ascontiguousarray(v.reshape(x.shape[0], POSITIONS * POSITIONS, KERNEL * KERNEL))


def pool_windows(pool: int) -> np.ndarray:
    """Flat positions (0..80) of every pooling window on the 9x9 grid, shape (n_windows, pool**2).

    ``pool = 9`` is the global pool (one window); a smaller pool tiles non-overlapping
    ``pool x pool`` windows with stride ``pool``; trailing rows/columns no window covers are
    ignored (the overlay's rule, :mod:`drivers.overlay.reference`).
    """
    if not 1 <= int(pool) <= POSITIONS:
        raise ValueError(f"pool = {pool!r} is not allowed; allowed: an integer in [1, {POSITIONS}]")
    p = int(pool)
    n = (POSITIONS - p) // p + 1
    win = []
    for oy in range(n):
        for ox in range(n):
            ys, xs = np.meshgrid(np.arange(oy * p, oy * p + p), np.arange(ox * p, ox * p + p), indexing="ij")
            win.append((ys * POSITIONS + xs).reshape(-1))
    return np.asarray(win, dtype=np.intp)


def pooled(responses: np.ndarray, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Max of every window: responses (n, 81, F) -> (max (n, W, F), argmax position (n, W, F))."""
    r = responses[:, windows, :]  # (n, W, k, F)
    arg = r.argmax(axis=2)
    m = np.take_along_axis(r, arg[:, :, None, :], axis=2)[:, :, 0, :]
    return m, windows[np.arange(windows.shape[0])[None, :, None], arg]


# ---------------------------------------------------------------------------- quantisation
def check_bits(bits: int) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 8:
        raise ValueError(f"bits = {bits!r} is not allowed; allowed: an integer in [1, 8]")
    return int(bits)


def weight_codes(w: np.ndarray, bits: int) -> np.ndarray:
    """Unsigned codes (0 .. 2**bits - 1, uint8) of weights ``w`` (clipped to [-1, 1])."""
    top = (1 << check_bits(bits)) - 1
    return np.rint((np.clip(w, -1.0, 1.0) + 1.0) * 0.5 * top).astype(np.uint8)


def code_weights(codes: np.ndarray, bits: int) -> np.ndarray:
    """Weights in [-1, 1] of unsigned codes: ``2 u / (2**bits - 1) - 1``."""
    top = (1 << check_bits(bits)) - 1
    return np.asarray(codes, dtype=np.float64) * (2.0 / top) - 1.0


def quantise(w: np.ndarray, bits: int) -> np.ndarray:
    """``w`` rounded to the nearest of the ``2**bits`` levels in [-1, 1] (same dtype)."""
    return code_weights(weight_codes(w, bits), bits).astype(np.asarray(w).dtype, copy=False)


# ---------------------------------------------------------------------------- the bank
@dataclass
class FilterBank:
    """64 filters with their thresholds.

    Attributes:
        weights: (400, F) quantised weights in [-1, 1] (column f = filter f, pixels row-major).
        vref: (F,) thresholds in weight units (the bit of a window is ``max > vref``).
        bits: bits per weight.
        kinds: (F,) ``"class"``, ``"feature"`` or ``"joint"``.
        classes: the trained classes the bank was trained on.
        pool: pooling window (9 = global).
    """

    weights: np.ndarray
    vref: np.ndarray
    bits: int
    kinds: np.ndarray
    classes: tuple[int, ...]
    pool: int = POSITIONS

    @property
    def n_filters(self) -> int:
        return int(self.weights.shape[1])

    def codes(self) -> np.ndarray:
        """Unsigned weight codes, (400, F) uint8."""
        return weight_codes(self.weights, self.bits)

    def feature_maps(self, images: np.ndarray, batch: int = 512) -> np.ndarray:
        """Ideal (software) binary feature maps, (n, W * F) bool — for training and references only."""
        win = pool_windows(self.pool)
        out = []
        w = self.weights.astype(np.float32)
        for s in range(0, len(images), batch):
            m, _ = pooled(patches(images[s:s + batch]) @ w, win)
            out.append((m > self.vref.astype(np.float32)).reshape(m.shape[0], -1))
        return np.concatenate(out) if out else np.zeros((0, win.shape[0] * self.n_filters), bool)

    def replace(self, which: np.ndarray, other: FilterBank) -> FilterBank:
        """A bank with filters ``which`` (indices) taken from ``other`` (same bits and pool)."""
        w, v, k = self.weights.copy(), self.vref.copy(), self.kinds.copy()
        w[:, which], v[which], k[which] = other.weights[:, which], other.vref[which], other.kinds[which]
        return FilterBank(w, v, self.bits, k, self.classes, self.pool)


# ---------------------------------------------------------------------------- training
class _Adam:
    """Adam (Kingma & Ba, ICLR 2015) over a dict of float32 parameters."""

    def __init__(self, params: dict[str, np.ndarray], lr: float) -> None:
        self.lr, self.t = lr, 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        self.t += 1
        b1, b2 = 0.9, 0.999
        c1, c2 = 1 - b1**self.t, 1 - b2**self.t
        for k, g in grads.items():
            self.m[k] = b1 * self.m[k] + (1 - b1) * g
            self.v[k] = b2 * self.v[k] + (1 - b2) * g * g
            params[k] -= self.lr * (self.m[k] / c1) / (np.sqrt(self.v[k] / c2) + 1e-8)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _responses(p: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Responses (n, 81, F) of patches ``p`` (n, 81, 400) to filters ``w`` (400, F), as one product."""
    return (p.reshape(-1, p.shape[-1]) @ w).reshape(p.shape[0], p.shape[1], w.shape[1])


def _weight_grad(p: np.ndarray, argpos: np.ndarray, d_m: np.ndarray) -> np.ndarray:
    """Gradient of the window maxima (n, W, F) with respect to the filter weights, (400, F).

    A window's maximum depends on the weights only through the patch at its argmax position
    (``argpos`` (n, W, F), flat positions), so ``dL/dw[:, f] = sum_{n, w} d_m[n, w, f] *
    p[n, argpos[n, w, f], :]``: a gather of those patches, not a dense product with a gradient
    that is zero at all other positions (a fifth of the work for the global pool).
    """
    n, w, f = d_m.shape
    sel = p[np.arange(n)[:, None, None], argpos].reshape(n * w, f, p.shape[-1])  # (n W, F, 400)
    return np.matmul(sel.transpose(1, 2, 0), d_m.reshape(n * w, f).T[:, :, None])[:, :, 0].T


def _noisy_mix(x: np.ndarray, rng: np.random.Generator, noise_fraction: float, fraction_noisy: float) -> np.ndarray:
    if fraction_noisy <= 0 or noise_fraction <= 0:
        return x
    from hil.datasets.noisy import add_pixel_noise

    out = x.copy()
    pick = rng.random(len(x)) < fraction_noisy
    out[pick] = add_pixel_noise(x[pick], noise_fraction, rng)
    return out


def _initial_filters(x: np.ndarray, n_filters: int, bits: int, win: np.ndarray,
                     rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random latent weights (400, n_filters); V_REF at the median window maximum of the initial filters."""
    w = (0.15 * rng.standard_normal((KERNEL * KERNEL, n_filters))).astype(np.float32)
    p0 = patches(x[rng.choice(len(x), min(500, len(x)), replace=False)])
    theta = np.median(pooled(p0 @ quantise(w, bits), win)[0], axis=(0, 1)).astype(np.float32)
    return {"w": w, "theta": theta}


def _batches(x: np.ndarray, batch: int, rng: np.random.Generator, noise_fraction: float, fraction_noisy: float):
    """One epoch of shuffled minibatches: yields (indices, patches (b, 81, 400))."""
    order = rng.permutation(len(x))
    for s in range(0, len(order), batch):
        idx = order[s:s + batch]
        yield idx, patches(_noisy_mix(x[idx], rng, noise_fraction, fraction_noisy))


def train_joint_filters(
    images: np.ndarray, labels: np.ndarray, classes: tuple[int, ...], *, n_filters: int = N_FILTERS,
    bits: int = 4, pool: int = POSITIONS, epochs: int = 5, batch: int = 100, lr: float = 0.01,
    seed: int = 0, noise_fraction: float = 0.0, fraction_noisy: float = 0.0,
) -> FilterBank:
    """Filters and V_REF trained together for the binary feature map (straight-through estimator).

    Forward: quantised weights, 81 responses per filter, max over each pooling window, step at
    V_REF, softmax read-out of the bits over the trained classes. Backward: the step's gradient
    is the logistic surrogate ``s (1 - s) / tau`` with ``tau`` the batch spread of the filter's
    window maxima; the quantiser passes the gradient straight to the latent weights (clipped to
    [-1, 1]). Only images of ``classes`` are used. ``fraction_noisy`` of the images (per batch,
    seeded) get ``noise_fraction`` random pixels (noise-aware training for noisy MNIST).
    """
    check_bits(bits)
    rng = np.random.default_rng(seed)
    keep = np.isin(labels, classes)
    x_all, y_all = images[keep], np.searchsorted(np.sort(classes), labels[keep])
    win = pool_windows(pool)
    n_win, n_cls = win.shape[0], len(classes)
    params = _initial_filters(x_all, n_filters, bits, win, rng)
    params["a"] = (0.05 * rng.standard_normal((n_win * n_filters, n_cls))).astype(np.float32)
    params["c"] = np.zeros(n_cls, np.float32)
    opt = _Adam(params, lr)
    for epoch in range(epochs):
        for idx, p in _batches(x_all, batch, rng, noise_fraction, fraction_noisy):
            wq = quantise(params["w"], bits)
            m, argpos = pooled(_responses(p, wq), win)
            tau = m.reshape(-1, n_filters).std(axis=0) + 1e-3
            z = (m - params["theta"]) / tau
            bits_on = (z > 0).astype(np.float32)
            feats = bits_on.reshape(len(idx), -1)
            logits = feats @ params["a"] + params["c"]
            logits -= logits.max(axis=1, keepdims=True)
            prob = np.exp(logits)
            prob /= prob.sum(axis=1, keepdims=True)
            d_logits = prob
            d_logits[np.arange(len(idx)), y_all[idx]] -= 1.0
            d_logits /= len(idx)
            d_feats = (d_logits @ params["a"].T).reshape(m.shape)
            sg = _sigmoid(z)
            d_z = d_feats * sg * (1 - sg)
            d_m = d_z / tau
            grads = {
                "a": feats.T @ d_logits, "c": d_logits.sum(axis=0),
                "theta": -d_m.sum(axis=(0, 1)),
                "w": _weight_grad(p, argpos, d_m),
            }
            opt.step(params, grads)
            np.clip(params["w"], -1.0, 1.0, out=params["w"])
        log.info("joint filters: epoch %d/%d done", epoch + 1, epochs)
    return FilterBank(quantise(params["w"], bits), params["theta"].astype(np.float64), bits,
                      np.array(["joint"] * n_filters), tuple(int(c) for c in classes), pool)


def train_class_filters(
    images: np.ndarray, labels: np.ndarray, classes: tuple[int, ...], *, bits: int = 4, epochs: int = 3,
    batch: int = 100, lr: float = 0.01, seed: int = 0, noise_fraction: float = 0.0, fraction_noisy: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """One class filter per trained class, one-vs-rest, trained with respect to its V_REF.

    Each filter's globally pooled response, minus its V_REF and over the batch spread ``tau``,
    is the logit of "this image is of my class" (binary cross-entropy, positives re-weighted to
    balance the classes); weights quantised with the straight-through estimator.

    Returns:
        (weights (400, C) quantised, vref (C,)) in weight units.
    """
    check_bits(bits)
    rng = np.random.default_rng(seed)
    keep = np.isin(labels, classes)
    x_all, y_all = images[keep], labels[keep]
    cls = np.asarray(classes)
    target_all = (y_all[:, None] == cls[None, :]).astype(np.float32)
    pos_weight = np.float32(len(cls) - 1)
    win = pool_windows(POSITIONS)
    params = _initial_filters(x_all, len(cls), bits, win, rng)
    opt = _Adam(params, lr)
    for _ in range(epochs):
        for idx, p in _batches(x_all, batch, rng, noise_fraction, fraction_noisy):
            m, argpos = pooled(_responses(p, quantise(params["w"], bits)), win)
            tau = m.reshape(-1, len(cls)).std(axis=0) + 1e-3
            z = (m - params["theta"]) / tau
            t = target_all[idx][:, None, :]
            weight = np.where(t > 0, pos_weight, 1.0)
            d_z = weight * (_sigmoid(z) - t) / len(idx)
            d_m = d_z / tau
            grads = {"theta": -d_m.sum(axis=(0, 1)),
                     "w": _weight_grad(p, argpos, d_m)}
            opt.step(params, grads)
            np.clip(params["w"], -1.0, 1.0, out=params["w"])
    return quantise(params["w"], bits), params["theta"].astype(np.float64)


def feature_filters(images: np.ndarray, labels: np.ndarray, classes: tuple[int, ...], n: int, *,
                    bits: int = 4, seed: int = 0, max_images: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """``n`` feature filters: leading principal components of the training patches (see the module doc).

    Each component is scaled to a peak |w| of 1 and signed so that its mean response is positive;
    V_REF is the median of its globally pooled response over (up to ``max_images``) training
    images of ``classes``.

    Returns:
        (weights (400, n) quantised, vref (n,)) in weight units.
    """
    if n == 0:
        return np.zeros((KERNEL * KERNEL, 0)), np.zeros(0)
    rng = np.random.default_rng(seed)
    pool_idx = np.flatnonzero(np.isin(labels, classes))
    pick = rng.choice(pool_idx, min(max_images, pool_idx.size), replace=False)
    p = patches(images[pick]).reshape(-1, KERNEL * KERNEL).astype(np.float64)
    p -= p.mean(axis=0)
    _, _, vt = np.linalg.svd(p[rng.choice(len(p), min(len(p), 40000), replace=False)], full_matrices=False)
    w = vt[:n].T
    w /= np.abs(w).max(axis=0, keepdims=True)
    w *= np.sign(w.sum(axis=0, keepdims=True) + 1e-12)
    wq = quantise(w, bits)
    m, _ = pooled(patches(images[pick]) @ wq.astype(np.float32), pool_windows(POSITIONS))
    return wq, np.median(m[:, 0, :], axis=0).astype(np.float64)


VREF_RULES = ("trained", "median")


def class_sample(labels: np.ndarray, classes: tuple[int, ...], n: int, seed: list[int] | int) -> np.ndarray:
    """Sorted indices of up to ``n`` images whose label is in ``classes``, drawn without
    replacement by ``np.random.default_rng(seed)``; no other image is ever picked.

    Raises:
        ValueError: no image of ``classes``.
    """
    idx = np.flatnonzero(np.isin(labels, classes))
    if idx.size == 0:
        raise ValueError(f"no training image of the classes {tuple(classes)}")
    return np.sort(np.random.default_rng(seed).choice(idx, min(n, idx.size), replace=False))


def max_entropy_vref(bank: FilterBank, images: np.ndarray, labels: np.ndarray, *, max_images: int = 5000,
                     seed: int = 0, batch: int = 512) -> FilterBank:
    """The bank with every V_REF at the median of that filter's window maxima (our addition).

    The median is taken over all pooling windows of up to ``max_images`` training images of the
    bank's trained classes (``bank.classes``, seeded draw), with the bank's quantised weights: each
    filter's bit is then on for half of those (image, window) pairs, the threshold of largest
    entropy of a single bit. Images of other classes are never looked at (continual learning:
    the filters only ever see the trained classes).

    Args:
        bank: trained bank (weights (400, F) in [-1, 1], any pool).
        images: (n, 28, 28) training images; labels: (n,) their classes.

    Returns:
        a new :class:`FilterBank`, same weights, V_REF (F,) in weight units.
    """
    pick = class_sample(labels, bank.classes, max_images, [seed, 17])
    win, w = pool_windows(bank.pool), bank.weights.astype(np.float32)
    maxima = np.concatenate([pooled(patches(images[pick[s:s + batch]]) @ w, win)[0].reshape(-1, bank.n_filters)
                             for s in range(0, pick.size, batch)])
    return FilterBank(bank.weights, np.median(maxima, axis=0).astype(np.float64), bank.bits, bank.kinds,
                      bank.classes, bank.pool)


def paper_filters(images: np.ndarray, labels: np.ndarray, classes: tuple[int, ...], *, n_filters: int = N_FILTERS,
                  bits: int = 4, epochs: int = 3, seed: int = 0, noise_fraction: float = 0.0,
                  fraction_noisy: float = 0.0) -> FilterBank:
    """The paper's bank: one CF per trained class, then FFs up to ``n_filters`` (global pool)."""
    wc, vc = train_class_filters(images, labels, classes, bits=bits, epochs=epochs, seed=seed,
                                 noise_fraction=noise_fraction, fraction_noisy=fraction_noisy)
    wf, vf = feature_filters(images, labels, classes, n_filters - len(classes), bits=bits, seed=seed)
    kinds = np.array(["class"] * len(classes) + ["feature"] * (n_filters - len(classes)))
    return FilterBank(np.concatenate([wc, wf], axis=1).astype(np.float64), np.concatenate([vc, vf]), bits,
                      kinds, tuple(int(c) for c in classes), POSITIONS)
