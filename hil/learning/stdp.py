"""The asynchronous STDP block with spike-frequency adaptation, on a SiOx array.

Built as the SiOx paper describes it (Muñoz-Martín, Bianchi et al., Fig. 4a-c): the binary
feature map drives a crossbar of 1T1R synapses whose columns feed integrate-and-fire neurons
with winner-take-all; "when a neuron fires, it partially sets a further SiOx RRAM which, in
turn, increases its internal threshold V_TH" (spike-frequency adaptation, SFA, after Indiveri
et al., Front. Neurosci. 5:73, 2011); "a further bit-line ... is used for pattern detection,
since each STDP activity relies on uncorrelated signals (noise) for synaptic background
depression" (Prezioso et al., Nat. Commun. 9, 5311, 2018). The 1T1R STDP rule is that of
Bianchi et al., VLSI 2019 / Pedretti et al., Sci. Rep. 7, 5288 (2017): a post spike applied to
the top electrodes SETs the synapses whose gate (pre spike) is open just before it and RESETs
those whose pre spike falls just after it.

Array layout (rows = word lines, columns = bit lines): rows ``0 .. n_in - 1`` are the feature
lines, row ``n_in`` the noise line, row ``n_in + 1`` the SFA devices; column ``j`` is neuron
``j``. The SFA row is never driven during integration (its cells carry no current into the
neuron; they sit in the neuron's threshold circuit).

One presentation (one image), vectorised over neurons and synapses:

1. **Integration**: the feature lines carry the feature map, the noise line an uncorrelated noise
   spike (probability ``p_noise``). The neuron currents are ``array.mvm`` of the measured
   conductances; a non-leaky integrate-and-fire neuron charged for the window reaches
   ``V_j = I_j / (v_read * g_unit)`` (in units of one fully potentiated synapse). With
   ``drive = "unipolar"`` a line carries ``+v_read`` for a 1 bit and nothing for a 0 bit, so
   ``V_j = x . w_j``: a neuron with many potentiated synapses gathers the most charge for any
   input (the dot-product bias). With ``drive = "bipolar"`` (default) a 0 bit drives its line at
   ``-v_read``: ``V_j = (2x - 1) . w_j = 2 x . w_j - sum(w_j)``, which for a binary ``x`` and
   weights ``w`` in [0, 1] is ``|x| - L1(x, w_j)``: the neuron whose weights are nearest to the
   pattern in L1 (Hamming) distance integrates the most, with one MVM and no host-side
   normalisation (the column's total conductance is subtracted by the array itself).
2. **Winner-take-all**: the neuron with the largest excess ``V_j - V_TH_j`` fires if that excess
   is positive; lateral inhibition keeps the others silent. The adaptation adds to the firing
   threshold as the adaptive threshold ``theta`` of Diehl & Cook (Front. Comput. Neurosci. 9:99,
   2015), a neuron firing when ``v > v_thresh + theta``. With the bipolar drive ``V`` can be
   negative, so ``vth0`` may be zero or negative.
3. **STDP on the winner's column**: feature lines that spiked (before the post spike) get one
   partial SET at gate ``v_gate_ltp`` (potentiation). Background lines (no pattern spike) receive
   the noise line's uncorrelated spikes: each one, with probability ``p_noise``, has a noise spike
   in the depression window and gets one RESET to ``v_stop_ltd`` (background depression).
   Pattern lines are never depressed: their spike is the one that preceded the post spike.
4. **SFA**: the winner's SFA device gets one partial SET at gate ``v_gate_sfa``; it is read back
   once, and the neuron's threshold becomes ``V_TH = vth0 + sfa_gain * (G_sfa - G_sfa,0) / g_unit``.
   **Relaxation of the adaptation**: every ``sfa_decay_every`` presentations (0 = never) all SFA
   devices get one partial RESET to ``v_stop_sfa_decay`` (one pulse per neuron, vectorised) and
   are read back, so the threshold of a neuron that stopped firing falls again (the adaptive
   threshold of Diehl & Cook 2015 rises by a step per spike and decays; a SiOx device that can
   only be SET would saturate, every busy neuron ending at the same threshold).

Every update is a device pulse through the :class:`~drivers.array.CrossbarArray` API (logged to
the run store, counted for endurance). Energy of each operation (J) is estimated from its
conditions: a SET draws at most its compliance, ``E = v_pulse * I_C * width``; a RESET of a cell
at (at most) the synapse's LRS ``E = v_stop**2 * g_lrs * width``; the integration MVM
``E = v_read * sum(I) * read_time``. These are upper bounds from the physics of the pulse.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from drivers.array import CrossbarArray


@dataclass(frozen=True)
class STDPParams:
    """Settings of the STDP block (SI units; ``vth0`` and ``sfa_gain`` in units of one synapse).

    Attributes:
        n_neurons: output neurons.
        vth0: threshold of a neuron whose SFA device is in its initial state.
        sfa: spike-frequency adaptation on (off: the SFA device is never pulsed).
        sfa_gain: threshold raise per ``g_unit`` of SFA conductance.
        p_noise: probability of a noise spike per line and presentation.
        v_gate_ltp: gate of the potentiating partial SET, V (sets its compliance).
        v_pulse_ltp: SET amplitude, V; width_ltp its width, s.
        v_stop_ltd: RESET stop voltage of the depression, V; width_ltd its width, s.
        v_gate_sfa: gate of the SFA partial SET, V; v_pulse_sfa / width_sfa its amplitude / width.
        v_stop_init: RESET of every synapse at the start (the initial HRS), V.
        init_gate: (low, high) gate range of the random initial SET of the synapses, V: each
            synapse gets one full SET under a compliance drawn uniformly in this gate range, so
            the neurons start with random weights (Diehl & Cook 2015 start from random weights).
        drive: ``"bipolar"`` (a 0 bit drives its line at ``-v_read``: L1 nearest-prototype
            integration) or ``"unipolar"`` (a 0 bit leaves its line at 0 V), see the module doc.
        sfa_decay_every: presentations between two partial RESETs of all SFA devices (0 = never).
        v_stop_sfa_decay: stop voltage of that partial RESET, V; width_sfa_decay its width, s.
    """

    n_neurons: int = 100
    vth0: float = -4.0
    sfa: bool = True
    sfa_gain: float = 16.0
    p_noise: float = 1.0
    v_gate_ltp: float = 1.2
    v_pulse_ltp: float = 1.3
    width_ltp: float = 1e-6
    v_stop_ltd: float = -1.0
    width_ltd: float = 1e-6
    v_gate_sfa: float = 1.0
    v_pulse_sfa: float = 1.3
    width_sfa: float = 1e-6
    v_stop_init: float = -2.0
    init_gate: tuple[float, float] = (0.75, 0.95)
    drive: str = "bipolar"
    sfa_decay_every: int = 100
    v_stop_sfa_decay: float = -1.0
    width_sfa_decay: float = 1e-6

    def to_dict(self) -> dict:
        d = asdict(self)
        d["init_gate"] = list(self.init_gate)
        return d


DRIVES = ("bipolar", "unipolar")


class STDPBlock:
    """Integrate-and-fire WTA neurons with SFA and STDP synapses in ``array``.

    Args:
        array: a (n_in + 2, n_neurons) array (feature lines, noise line, SFA row).
        n_in: feature lines.
        params: :class:`STDPParams`.
        seed: seed of the noise line and of the initial state.
    """

    def __init__(self, array: CrossbarArray, n_in: int, params: STDPParams, seed: int = 0) -> None:
        if array.shape != (n_in + 2, params.n_neurons):
            raise ValueError(f"the STDP array must be {(n_in + 2, params.n_neurons)} (features, noise line, SFA row "
                             f"x neurons), got {array.shape}")
        self.array, self.n_in, self.p = array, n_in, params
        self.rng = np.random.default_rng([seed, 11])
        tech = array.technology
        self.v_read = tech.v_read
        self.g_lrs = float(tech.transistor.compliance(params.v_gate_ltp)) / 0.4  # LRS ~ I_C / V0 (V0 = 0.4 V)
        self.g_unit = self.g_lrs
        self.vth = np.full(params.n_neurons, params.vth0)
        self.g_sfa0 = np.zeros(params.n_neurons)
        if params.drive not in DRIVES:
            raise ValueError(f"drive = {params.drive!r} is not allowed; allowed: one of {list(DRIVES)}")
        self.counts = {"firings": 0, "set_pulses": 0, "reset_pulses": 0, "sfa_pulses": 0, "sfa_decay_pulses": 0,
                       "presentations": 0}
        self.energy = {"set": 0.0, "reset": 0.0, "sfa": 0.0, "mvm": 0.0}
        self._cols = np.arange(params.n_neurons)
        self.fired = np.zeros(params.n_neurons, dtype=np.int64)  # firings per neuron while learning

    # ------------------------------------------------------------------ set-up
    def initialise(self) -> None:
        """Form every cell, RESET synapses, noise line and SFA row to ``v_stop_init``, SET the feature
        synapses to random initial weights (``init_gate``), read the SFA row."""
        a, p = self.array, self.p
        a.form(None)
        synapses = np.arange((self.n_in + 1) * p.n_neurons)
        a.reset_pulse(synapses, v_stop=p.v_stop_init)
        gates = self.rng.uniform(p.init_gate[0], p.init_gate[1], self.n_in * p.n_neurons)
        a.set_pulse(synapses[: self.n_in * p.n_neurons], v_gate=gates, v_pulse=a.technology.v_set)
        sfa_cells = (self.n_in + 1) * p.n_neurons + self._cols
        a.reset_pulse(sfa_cells, v_stop=p.v_stop_init)
        self.g_sfa0 = a.read_cells(sfa_cells)
        self.vth = np.full(p.n_neurons, p.vth0)

    # ------------------------------------------------------------------ one image
    def _drive(self, bits: np.ndarray) -> np.ndarray:
        x = np.zeros(self.n_in + 2)
        x[: self.n_in] = self.line_levels(bits)
        x[self.n_in] = float(self.rng.random() < self.p.p_noise)
        return x

    def line_levels(self, bits: np.ndarray) -> np.ndarray:
        """Read amplitudes (fractions of ``v_read``) of the feature lines for feature maps ``bits`` (..., n_in)."""
        b = np.asarray(bits, dtype=float)
        return 2.0 * b - 1.0 if self.p.drive == "bipolar" else b

    def potentials(self, x: np.ndarray) -> np.ndarray:
        """Membrane potentials at the end of the window for drive vectors ``x`` (n, n_in + 2), in synapses."""
        i = self.array.mvm(x)
        self.energy["mvm"] += float(self.v_read * np.sum(np.abs(i)) * self.array.timing.read_time)
        return i / (self.v_read * self.g_unit)

    def present(self, bits: np.ndarray, learn: bool = True) -> int:
        """Present one feature map (n_in,) bool; returns the neuron that fired, or -1."""
        p, a = self.p, self.array
        self.counts["presentations"] += 1
        if learn and p.sfa and p.sfa_decay_every and self.counts["presentations"] % p.sfa_decay_every == 0:
            self._relax_sfa()
        v = self.potentials(self._drive(bits))
        margin = v - self.vth
        w = int(np.argmax(margin))
        if margin[w] <= 0.0:
            return -1
        self.counts["firings"] += 1
        if not learn:
            return w
        self.fired[w] += 1
        n = p.n_neurons
        pattern = np.flatnonzero(bits)
        background = np.flatnonzero(~np.asarray(bits, bool))
        noisy = background[self.rng.random(background.size) < p.p_noise]
        if pattern.size:
            a.set_pulse(pattern * n + w, v_gate=p.v_gate_ltp, v_pulse=p.v_pulse_ltp, width=p.width_ltp)
            self.counts["set_pulses"] += pattern.size
            i_c = float(a.technology.transistor.compliance(p.v_gate_ltp))
            self.energy["set"] += pattern.size * p.v_pulse_ltp * i_c * p.width_ltp
        if noisy.size:
            a.reset_pulse(noisy * n + w, v_stop=p.v_stop_ltd, width=p.width_ltd)
            self.counts["reset_pulses"] += noisy.size
            self.energy["reset"] += noisy.size * p.v_stop_ltd**2 * self.g_lrs * p.width_ltd
        if p.sfa:
            cell = np.array([(self.n_in + 1) * n + w])
            a.set_pulse(cell, v_gate=p.v_gate_sfa, v_pulse=p.v_pulse_sfa, width=p.width_sfa)
            self.counts["sfa_pulses"] += 1
            self.energy["sfa"] += p.v_pulse_sfa * float(a.technology.transistor.compliance(p.v_gate_sfa)) * p.width_sfa
            g = float(a.read_cells(cell)[0])
            self.vth[w] = self._threshold(g, self.g_sfa0[w])
        return w

    def _relax_sfa(self) -> None:
        """One partial RESET of every SFA device, read back; thresholds follow (vectorised over neurons)."""
        p, a = self.p, self.array
        cells = (self.n_in + 1) * p.n_neurons + self._cols
        a.reset_pulse(cells, v_stop=p.v_stop_sfa_decay, width=p.width_sfa_decay)
        g = a.read_cells(cells)
        self.counts["sfa_decay_pulses"] += cells.size
        self.energy["sfa"] += float(p.v_stop_sfa_decay**2 * np.sum(np.maximum(g, 0.0)) * p.width_sfa_decay)
        self.vth = self._threshold(g, self.g_sfa0)

    def _threshold(self, g_sfa: float | np.ndarray, g_sfa0: float | np.ndarray) -> float | np.ndarray:
        """Firing threshold (synapses) from the SFA device's conductance ``g_sfa`` and its initial
        ``g_sfa0`` (S): ``vth0 + sfa_gain * max(g_sfa - g_sfa0, 0) / g_unit``."""
        return self.p.vth0 + self.p.sfa_gain * np.maximum(g_sfa - g_sfa0, 0.0) / self.g_unit

    def margins(self, bits: np.ndarray) -> np.ndarray:
        """Frozen-weight excess ``V - V_TH`` of every neuron (synapses) for feature maps ``bits``
        (n, n_in) -> (n, n_neurons); ``-inf`` for a neuron that never fired while learning (it holds
        its random initial weights, no pattern)."""
        b = np.asarray(bits, float)
        x = np.zeros((len(b), self.n_in + 2))
        x[:, : self.n_in] = self.line_levels(b)
        margin = self.potentials(x) - self.vth
        margin[:, self.fired == 0] = -np.inf
        return margin

    def winners(self, bits: np.ndarray, chunk: int = 2048) -> np.ndarray:
        """Frozen-weight WTA winner of each feature map (n, n_in): the largest :meth:`margins` among
        the neurons that fired while learning; -1 if none has."""
        out = np.full(len(bits), -1, dtype=np.int64)
        if not np.any(self.fired):
            return out
        for s in range(0, len(bits), chunk):
            out[s:s + chunk] = np.argmax(self.margins(bits[s:s + chunk]), axis=1)
        return out

    def vote(self, bits: np.ndarray, neuron_labels: np.ndarray, m: int, chunk: int = 2048) -> np.ndarray:
        """k-winner-take-all readout: the class of each feature map (n, n_in) voted by the ``m``
        labelled neurons with the largest :meth:`margins` (see :func:`vote`); -1 if no neuron has a label."""
        out = np.full(len(bits), -1, dtype=np.int64)
        for s in range(0, len(bits), chunk):
            out[s:s + chunk] = vote(self.margins(bits[s:s + chunk]), neuron_labels, m)
        return out

    # ------------------------------------------------------------------ state
    def state(self) -> tuple[dict[str, np.ndarray], dict]:
        return ({"vth": self.vth.copy(), "g_sfa0": self.g_sfa0.copy(), "fired": self.fired.copy()},
                {"rng": self.rng.bit_generator.state, "counts": dict(self.counts), "energy": dict(self.energy)})

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        self.vth = np.asarray(arrays["vth"], float).copy()
        self.g_sfa0 = np.asarray(arrays["g_sfa0"], float).copy()
        self.fired = np.asarray(arrays["fired"], np.int64).copy()
        self.rng.bit_generator.state = meta["rng"]
        self.counts = {k: int(v) for k, v in meta["counts"].items()}
        self.energy = {k: float(v) for k, v in meta["energy"].items()}


def assign_labels(winners: np.ndarray, labels: np.ndarray, n_neurons: int, n_classes: int = 10) -> np.ndarray:
    """Label of every neuron: the class it wins most often (training stream); -1 if it never wins."""
    hist = np.zeros((n_neurons, n_classes), dtype=np.int64)
    ok = winners >= 0
    np.add.at(hist, (winners[ok], np.asarray(labels)[ok]), 1)
    lab = hist.argmax(axis=1)
    lab[hist.sum(axis=1) == 0] = -1
    return lab


def predict(winners: np.ndarray, neuron_labels: np.ndarray) -> np.ndarray:
    """Class predicted for each winner (-1 for a neuron without a label)."""
    return np.where(winners >= 0, neuron_labels[np.maximum(winners, 0)], -1)


def vote(margins: np.ndarray, neuron_labels: np.ndarray, m: int, n_classes: int = 10) -> np.ndarray:
    """Class of each row of ``margins`` (n, n_neurons) voted by its ``m`` most excited labelled neurons.

    The soft (k-) winner-take-all readout: lateral inhibition lets the ``m`` neurons with the
    largest excess fire (Maass, Neural Comput. 12, 2519 (2000), k-WTA), and the class is the one
    that most of them were assigned to (the class averaging of Diehl & Cook, Front. Comput.
    Neurosci. 9:99 (2015), with one spike per firing neuron). Ties go to the class of the most
    excited neuron among the tied. Neurons without a label (-1) or with ``-inf`` margin do not
    vote; -1 where none votes. ``m = 1``: the class of the most excited labelled neuron.
    """
    margins = np.where(np.asarray(neuron_labels)[None, :] >= 0, margins, -np.inf)
    n, m = len(margins), min(m, margins.shape[1])
    top = np.argpartition(-margins, m - 1, axis=1)[:, :m]
    top = np.take_along_axis(top, np.argsort(-np.take_along_axis(margins, top, 1), axis=1, kind="stable"), 1)
    voter = np.isfinite(np.take_along_axis(margins, top, 1))
    rows = np.broadcast_to(np.arange(n)[:, None], top.shape)[voter]
    cls = np.asarray(neuron_labels)[top][voter]
    rank = np.broadcast_to(np.arange(m), top.shape)[voter]
    votes = np.zeros((n, n_classes), np.int64)
    np.add.at(votes, (rows, cls), 1)
    first = np.full((n, n_classes), m, np.int64)
    np.minimum.at(first, (rows, cls), rank)
    score = votes * (m + 1) + (m - first)
    return np.where(votes.any(axis=1), score.argmax(axis=1), -1)
