"""Device policy of the metaplastic experiment: only changed cells are re-programmed; cache = measured."""

import numpy as np

from drivers.sim_array import SimArray
from hil.experiments.device import DeviceWeights, ProgrammingPolicy
from hil.mapping import DifferentialPairMapping, OffsetReferenceMapping


def make(mapping_cls, shape_w=(20, 12), seed=4, physics="hfo2-benign"):
    # benign physics: the policy's bookkeeping at +-5 % (the harsh "hfo2" preset misses +-5 %
    # at its low levels, see tests/hil/test_program.py)
    tech_levels = np.arange(1, 9) * 25e-6
    mapping = mapping_cls.from_levels(tech_levels)
    array = SimArray(mapping.array_shape(*shape_w), physics, seed=seed)
    dev = DeviceWeights([array], mapping, ProgrammingPolicy(program_every=1, max_pulses=20))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, 8, shape_w).astype(np.int8)
    dev.initialise([idx])
    return dev, mapping, array, idx, rng


def test_initial_programming_puts_measured_weights_on_levels():
    dev, mapping, array, idx, _ = make(OffsetReferenceMapping)
    ok = ~dev.defective[0]
    assert ok.mean() > 0.97  # defects: ~0.3 % stuck cells plus rare misses at 100 pulses
    w = dev.weights()[0]
    q = mapping.weight_levels
    # 5 % of G (<= 10 uS at 200 uS) is <= 0.115 in weight units (G_unit = 87.5 uS); read noise on top
    assert np.max(np.abs(w[ok] - q[idx][ok])) < 0.13


def test_only_changed_cells_are_programmed():
    dev, mapping, array, idx, rng = make(OffsetReferenceMapping)
    before = array.programming_events().copy()
    new = idx.copy()
    changed = np.zeros(idx.shape, bool)
    changed[rng.random(idx.shape) < 0.1] = True
    new[changed] = np.where(new[changed] < 7, new[changed] + 1, new[changed] - 1)
    dev.update(0, [new], [changed])
    grew = array.programming_events() > before
    assert not np.any(grew & ~changed)  # nothing outside the changed weights was pulsed
    target_cells = changed & ~dev.defective[0]
    assert np.all(grew[target_cells])
    np.testing.assert_allclose(dev.weights()[0], mapping.to_weight(dev.g_cache[0]))
    good = target_cells & ~dev.pending[0]
    assert np.max(np.abs(dev.weights()[0][good] - mapping.weight_levels[new][good])) < 0.13
    assert (dev.reprogrammed[0][changed & ~dev.defective[0]] >= 1).all()
    assert dev.reprogrammed[0][~changed].sum() == 0


def test_differential_pair_programs_both_devices_of_a_changed_weight():
    dev, mapping, array, idx, rng = make(DifferentialPairMapping, (10, 6))
    before = array.programming_events().copy()
    new = idx.copy()
    changed = np.zeros(idx.shape, bool)
    changed[2, 3] = True
    new[2, 3] = 7 if idx[2, 3] != 7 else 0
    dev.update(0, [new], [changed])
    grew = array.programming_events() > before
    assert not grew[:, [c for c in range(12) if c not in (6, 7)]].any()
    assert not np.delete(grew[:, 6:8], 2, axis=0).any()


def test_epoch_reread_refreshes_drifted_cells():
    dev, mapping, array, idx, _ = make(OffsetReferenceMapping)
    # push one healthy cell far from its target behind the host's back (a disturb)
    r, c = np.argwhere(~dev.defective[0] & (idx < 6))[0]
    mask = np.zeros(array.shape, bool)
    mask[r, c] = True
    array.reset_pulse(mask)
    n = dev.reread([idx])
    assert n >= 1
    assert abs(dev.weights()[0][r, c] - mapping.weight_levels[idx[r, c]]) < 0.13


def test_sessions_are_split_into_level_changes_retries_and_refreshes():
    import dataclasses

    dev, mapping, array, idx, rng = make(OffsetReferenceMapping)
    initial_pulses = dev.pulses
    dev.policy = dataclasses.replace(dev.policy, max_pulses=1)  # one pulse per session: many cells miss
    new = idx.copy()
    changed = (rng.random(idx.shape) < 0.2) & ~dev.defective[0]
    new[changed] = np.where(new[changed] < 7, new[changed] + 1, new[changed] - 1)
    dev.update(0, [new], [changed])
    s = dev.sessions
    np.testing.assert_array_equal(s["level"][0], changed.astype(np.int32))
    assert s["retry"][0].sum() == 0 and s["refresh"][0].sum() == 0
    missed = dev.pending[0].copy()
    assert 0 < missed.sum() < changed.sum()
    dev.flush([new])  # the missed cells again, same level: retries
    np.testing.assert_array_equal(s["retry"][0], missed.astype(np.int32))
    np.testing.assert_array_equal(s["level"][0], changed.astype(np.int32))
    # a missed cell whose level changes again is a level change, not a retry
    still = np.argwhere(dev.pending[0])
    if still.size:
        r, c = still[0]
        again = np.zeros_like(changed)
        again[r, c] = True
        new[r, c] = 0 if new[r, c] else 7
        retries = s["retry"][0][r, c]
        dev.update(1, [new], [again])
        assert s["retry"][0][r, c] == retries and s["level"][0][r, c] == 2
    before_refresh = s["refresh"][0].sum()
    dev.policy = dataclasses.replace(dev.policy, max_pulses=20)
    ok = np.argwhere(~dev.defective[0] & ~dev.pending[0] & (new < 6))[0]
    mask = np.zeros(array.shape, bool)
    mask[tuple(ok)] = True
    array.reset_pulse(mask)  # a disturb behind the host's back
    dev.reread([new])
    assert s["refresh"][0][tuple(ok)] == 1 and s["refresh"][0].sum() > before_refresh
    np.testing.assert_array_equal(dev.reprogrammed[0], s["level"][0] + s["retry"][0] + s["refresh"][0])
    assert sum(dev.pulses_by_kind.values()) == dev.pulses - initial_pulses
    assert min(dev.pulses_by_kind.values()) > 0


def _wear_out(dev, array, idx, n=5):
    """Stick ``n`` healthy cells whose level is above the lowest in HRS (worn out): SET pulses
    no longer move them, so their program-and-verify never converges."""
    from drivers.sim.physics import STUCK_HRS

    cells = np.argwhere(~dev.defective[0] & (idx >= 4))[:n]
    flat = np.ravel_multi_index(cells.T, array.shape)
    array.model.stuck[flat] = STUCK_HRS
    array.model.g_prog[flat] = 2e-6
    mask = np.zeros(array.shape, bool)
    mask.flat[flat] = True
    return mask


def test_dead_cells_are_retired_after_consecutive_unconverged_sessions():
    import dataclasses

    dev, mapping, array, idx, rng = make(OffsetReferenceMapping)
    dev.policy = dataclasses.replace(dev.policy, retire_after=2)
    dead = _wear_out(dev, array, idx)
    healthy = ~dev.defective[0] & ~dead & (idx < 7)
    changed = dead | (healthy & (rng.random(idx.shape) < 0.1))
    new = np.where(changed, np.minimum(idx + 1, 7), idx).astype(np.int8)
    new[dead] = 7
    dev.update(0, [new], [changed])
    assert dev.pending[0][dead].all() and not dev.defective[0][dead].any()  # one miss: a retry comes
    assert dev.unconverged[0][dead].tolist() == [1] * int(dead.sum())
    dev.flush([new])  # the second session in a row without convergence: retired
    assert dev.defective[0][dead].all() and not dev.pending[0][dead].any()
    assert dev.retired == dead.sum()
    assert not dev.defective[0][changed & ~dead].any()  # cells that converged are not retired
    before = array.programming_events().copy()
    dev.update(1, [new], [dead])  # asked again: a retired cell is never pulsed
    dev.reread([new])
    assert (array.programming_events()[dead] == before[dead]).all()
    # the measured conductance of a retired cell stays in use
    np.testing.assert_allclose(dev.weights()[0][dead], mapping.to_weight(dev.g_cache[0])[dead])


def test_without_retirement_dead_cells_are_pulsed_at_every_programming():
    dev, mapping, array, idx, rng = make(OffsetReferenceMapping)
    dead = _wear_out(dev, array, idx)
    new = np.where(dead, 7, idx).astype(np.int8)
    dev.update(0, [new], [dead])
    before = array.programming_events().copy()
    dev.flush([new])
    dev.flush([new])
    grew = array.programming_events() - before
    assert (grew[dead] == 2 * dev.policy.max_pulses).all()
    assert dev.retired == 0 and not dev.defective[0][dead].any()


def test_unconverged_counts_survive_a_checkpoint():
    import dataclasses

    dev, mapping, array, idx, rng = make(OffsetReferenceMapping)
    dev.policy = dataclasses.replace(dev.policy, retire_after=2)
    dead = _wear_out(dev, array, idx)
    new = np.where(dead, 7, idx).astype(np.int8)
    dev.update(0, [new], [dead])
    state = dev.state()
    other, *_ = make(OffsetReferenceMapping)
    other.policy = dev.policy
    other.load_state(state)
    np.testing.assert_array_equal(other.unconverged[0], dev.unconverged[0])
    legacy = {k: v for k, v in state.items() if not k.startswith("unconverged") and k != "retired"}
    other.load_state(legacy)  # a checkpoint from before retire_after: nothing counted
    assert other.unconverged[0].sum() == 0 and other.retired == 0
