"""Metaplastic updates for quantised neural networks (QNNs) with unequally spaced levels.

What is implemented, and where it comes from
--------------------------------------------
**BNN metaplasticity** — Laborieux, Ernoult, Hirtzlin, Querlioz, "Synaptic metaplasticity in
binarized neural networks", Nature Communications 12, 2549 (2021), their ``f_meta`` and Algorithm 1: every
binary weight ``W_B = sign(W_H)`` has a real hidden weight ``W_H``; an optimiser (Adam) proposes
an update ``U`` of ``W_H``, and when ``U`` pushes ``W_H`` toward zero (``U * W_H < 0``, i.e. toward a
sign flip) it is scaled by ``f_meta(W_H) = 1 - tanh^2(m * |W_H|)``; other updates pass unchanged.
``|W_H|`` is not bounded, so weights that kept being pushed the same way consolidate.

**QNN extension** — D'Agostino, Moro, Hirtzlin, Arcamone, Castellani, Querlioz, Payvand,
Vianello, "Synaptic metaplasticity with multi-level memristive devices", arXiv:2306.12142
(2023), its two equations: (1) the quantised weight is the level ``Q_i`` nearest to
``W_H``; (2) the meta-function ``M(W_H)``, defined over the intervals
``I_i^D = Q_{i+1} - Q_i`` between the (device) levels with a parameter ``m*``, scales the updates
of ``W_H``. Our copy of the paper does not reproduce the equations, so the form below is a
reconstruction, stated precisely:

    phi(w)   = i + (w - Q_i) / I_i      for Q_i <= w <= Q_{i+1}   (position in interval units,
                                                                  outer intervals extended)
    u(W_H)   = |phi(W_H) - phi(0)| / |phi(Q_edge) - phi(0)|      (Q_edge: outermost level on
                                                                  W_H's side of zero)
    M(W_H)   = 1 - tanh^2(m* * u(W_H))                                             (Eq. 2)
    dW_H     = U * M(W_H)   if U * W_H < 0     else   U                       (as Laborieux)

so consolidation is measured by how many level intervals separate ``W_H`` from zero, each
interval counting as one unit whatever its width, and normalised so that the outermost level
sits at ``u = 1`` (``m*`` then has the same meaning for any number of levels). This is
``unit="interval"``. For equally spaced levels symmetric about zero it reduces exactly to the
magnitude rule ``unit="weight"``: ``f = 1 - tanh^2(m * |W_H| / Q_max)``; for unequally spaced
levels the two differ: a narrow interval counts as much consolidation as a wide one.

Comparing ``m*`` with the paper's
--------------------------------
A search for the paper's own equations (arXiv:2306.12142 and its published version) found
only the abstract and figure captions, not Eq. 2, so the paper's scale of ``m*`` is not known
exactly. Our ``m*`` (``scale="edge"``) puts ``u = 1`` at the outermost level. The comparison with
the paper's robust range ``m* in [2, 4]`` (its Fig. 2a) **assumes** that the paper's ``m*`` is
Laborieux et al.'s ``m`` with ``W_H`` counted in units of the local interval width ``I_i``
(``u_paper = |phi(W_H) - phi(0)|``, one unit per interval, not normalised). Under that
assumption

    m*_paper = m*_edge / S,      S = intervals from zero to the outermost level

(S = 3.5 for 8 levels symmetric about zero), see :func:`paper_m_star` and
:func:`edge_m_star`; ``consolidation(..., scale="interval")`` gives ``u_paper`` itself. The
other natural assumption, that the paper normalises to the outermost level as we do, makes the
two scales equal (factor 1); a sweep reported on both axes shows which reading the data favour.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hil.learning.levels import check_levels, level_coordinate

META_UNITS = ("interval", "weight")
META_SCALES = ("edge", "interval")


def edge_span(levels: np.ndarray, side: int = 1) -> float:
    """Intervals from zero to the outermost level on ``side`` (+1 top, -1 bottom): ``S``."""
    q = check_levels(levels)
    if not q[0] < 0 < q[-1]:
        raise ValueError(f"levels must straddle zero (signed weights), got [{q[0]}, {q[-1]}]")
    phi0 = float(level_coordinate(np.zeros(1), q)[0])
    return (q.size - 1) - phi0 if side > 0 else phi0


def paper_m_star(m_star: float, levels: np.ndarray) -> float:
    """Our ``m*`` (``scale="edge"``) on the paper's scale, under the stated assumption
    (``m*`` per interval): ``m* / S``. Symmetric spans only (S equal on both sides)."""
    s_pos, s_neg = edge_span(levels, 1), edge_span(levels, -1)
    if not np.isclose(s_pos, s_neg):
        raise ValueError(f"levels span {s_pos:.3g} intervals above zero and {s_neg:.3g} below; "
                         "the conversion needs a symmetric span")
    return float(m_star) / s_pos


def edge_m_star(m_star_paper: float, levels: np.ndarray) -> float:
    """Inverse of :func:`paper_m_star`: the paper-scale ``m*`` on our scale, ``m* * S``."""
    return float(m_star_paper) * paper_m_star(1.0, levels) ** -1


def consolidation(w_h: np.ndarray, levels: np.ndarray, unit: str = "interval", scale: str = "edge") -> np.ndarray:
    """Consolidation ``u(W_H) >= 0`` (0 at zero weight).

    Args:
        w_h: hidden weights, any shape.
        levels: weight levels Q, shape (L,), ascending; zero must lie inside [Q_0, Q_{L-1}].
        unit: ``"interval"`` (paper reconstruction, see module docstring) or ``"weight"``
            (``|W_H| / max|Q|``).
        scale: ``"edge"``: normalised to 1 at the outermost level (our ``m*``); ``"interval"``:
            one unit per level interval, not normalised (the paper-comparable ``m*`` under the
            assumption in the module docstring). For ``unit="weight"`` the interval scale
            multiplies by the symmetric span ``S``.
    """
    if scale not in META_SCALES:
        raise ValueError(f"meta scale={scale!r} is not one of {list(META_SCALES)}")
    if scale == "interval":
        q = check_levels(levels)
        w = np.asarray(w_h)
        u = consolidation(w, q, unit, "edge")
        if unit == "weight":
            return u * u.dtype.type(paper_m_star(1.0, q) ** -1)
        dtype = u.dtype
        d = level_coordinate(w, q) - dtype.type(level_coordinate(np.zeros(1), q)[0])
        return np.abs(d).astype(dtype, copy=False)
    q = check_levels(levels)
    if not q[0] < 0 < q[-1]:
        raise ValueError(f"levels must straddle zero (signed weights), got [{q[0]}, {q[-1]}]")
    w_h = np.asarray(w_h)
    dtype = w_h.dtype if w_h.dtype.kind == "f" else np.float64
    if unit == "weight":
        return (np.abs(w_h) / dtype.type(np.max(np.abs(q)))).astype(dtype, copy=False)
    if unit != "interval":
        raise ValueError(f"meta unit={unit!r} is not one of {list(META_UNITS)}")
    widths = np.diff(q)
    if np.allclose(widths, widths[0], rtol=1e-9, atol=0) and np.isclose(q[0], -q[-1], rtol=1e-9, atol=0):
        # equally spaced, symmetric: phi(w) - phi(0) = w / I exactly, and the span is Q_max / I
        return np.abs(w_h) * dtype.type(1.0 / q[-1])
    phi0 = float(level_coordinate(np.zeros(1), q)[0])
    span_pos = (q.size - 1) - phi0  # intervals from zero to the top level
    span_neg = phi0  # intervals from zero to the bottom level
    d = level_coordinate(w_h, q) - dtype.type(phi0)
    if np.isclose(span_pos, span_neg):
        return np.abs(d) * dtype.type(1.0 / span_pos)
    return np.where(d >= 0, d / dtype.type(span_pos), -d / dtype.type(span_neg)).astype(dtype, copy=False)


def meta_function(w_h: np.ndarray, levels: np.ndarray, m_star: float, unit: str = "interval",
                  scale: str = "edge") -> np.ndarray:
    """``M(W_H) = 1 - tanh^2(m* u(W_H))`` in (0, 1], same shape as ``w_h`` (Eq. 2, reconstructed;
    ``scale`` as in :func:`consolidation`)."""
    if not np.isfinite(m_star) or m_star < 0:
        raise ValueError(f"m_star={m_star!r} must be a finite number >= 0")
    w_h = np.asarray(w_h)
    dtype = w_h.dtype if w_h.dtype.kind == "f" else np.dtype(np.float64)
    t = np.tanh(dtype.type(m_star) * consolidation(w_h, levels, unit, scale))
    return 1 - t * t


def metaplastic_update(
    w_h: np.ndarray, update: np.ndarray, levels: np.ndarray, m_star: float, unit: str = "interval",
    scale: str = "edge",
) -> np.ndarray:
    """The update actually applied to ``W_H``: ``update * M(W_H)`` where it moves ``W_H`` toward
    zero (``update * W_H < 0``), ``update`` elsewhere. ``m_star = 0`` gives the plain update.

    Args:
        w_h: hidden weights, any shape.
        update: proposed update (e.g. Adam's ``-lr * m_hat / (sqrt(v_hat) + eps)``), same shape.
        levels: weight levels Q, shape (L,).
        m_star: metaplasticity strength ``m*`` (>= 0).
        unit, scale: see :func:`consolidation`.
    """
    if m_star == 0:
        return np.array(update, copy=True)
    toward_zero = (update * w_h) < 0
    return np.where(toward_zero, update * meta_function(w_h, levels, m_star, unit, scale), update)


def bnn_meta_update(w_h: np.ndarray, update: np.ndarray, m: float) -> np.ndarray:
    """Laborieux et al. (2021), f_meta: ``update * (1 - tanh^2(m |W_H|))`` where ``update * W_H < 0``."""
    if m == 0:
        return np.array(update, copy=True)
    t = np.tanh(np.asarray(m, dtype=w_h.dtype) * np.abs(w_h))
    return np.where(update * w_h < 0, update * (1 - t * t), update)


@dataclass
class Adam:
    """Adam (Kingma & Ba 2015) over named parameters; returns proposed *updates*, applies nothing.

    Attributes:
        lr: learning rate (weight units per step).
        beta1, beta2, eps: Adam constants.
        m, v: first/second moment per parameter name; t: step count.
    """

    lr: float = 0.005
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    t: int = 0
    m: dict[str, np.ndarray] = field(default_factory=dict)
    v: dict[str, np.ndarray] = field(default_factory=dict)

    def updates(self, grads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Advance one step with ``grads`` and return ``-lr * m_hat / (sqrt(v_hat) + eps)`` per name."""
        self.t += 1
        c1 = 1.0 - self.beta1**self.t
        c2 = 1.0 - self.beta2**self.t
        out: dict[str, np.ndarray] = {}
        for name, g in grads.items():
            if name not in self.m:
                self.m[name] = np.zeros_like(g)
                self.v[name] = np.zeros_like(g)
            m, v = self.m[name], self.v[name]
            m *= self.beta1
            m += (1 - self.beta1) * g
            v *= self.beta2
            v += (1 - self.beta2) * (g * g)
            denom = np.sqrt(v)
            denom *= g.dtype.type(1.0 / np.sqrt(c2))
            denom += g.dtype.type(self.eps)
            out[name] = m * g.dtype.type(-self.lr / c1) / denom
        return out

    def reset(self) -> None:
        """Forget the moments (done at every task boundary)."""
        self.t = 0
        self.m.clear()
        self.v.clear()

    def state(self) -> dict[str, np.ndarray]:
        """Flat dict of arrays for a checkpoint."""
        out = {"t": np.asarray(self.t)}
        for k in self.m:
            out[f"m/{k}"] = self.m[k]
            out[f"v/{k}"] = self.v[k]
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore from :meth:`state`."""
        self.t = int(np.asarray(state["t"]).item())  # a 0-d or a 1-element array (as read from HDF5)
        self.m = {k[2:]: np.array(a) for k, a in state.items() if k.startswith("m/")}
        self.v = {k[2:]: np.array(a) for k, a in state.items() if k.startswith("v/")}
