"""Weight <-> conductance mappings (hil.mapping)."""

import numpy as np
import pytest

from drivers.sim.presets import HFO2_TECHNOLOGY
from hil.mapping import DifferentialPairMapping, OffsetReferenceMapping, make_mapping

G = np.asarray(HFO2_TECHNOLOGY.levels)  # 25 .. 200 uS
Q8 = np.array([-7, -5, -3, -1, 1, 3, 5, 7]) / 7


def test_offset_reference_levels_and_roundtrip():
    m = OffsetReferenceMapping.from_levels(G)
    assert m.g_ref == pytest.approx(112.5e-6)
    assert m.g_unit == pytest.approx(87.5e-6)
    np.testing.assert_allclose(m.weight_levels, Q8, atol=1e-12)
    idx = np.array([[0, 7], [3, 4]])
    t = m.targets(idx)
    np.testing.assert_allclose(t, [[25e-6, 200e-6], [100e-6, 125e-6]])
    np.testing.assert_allclose(m.to_weight(t), Q8[idx], atol=1e-6)
    assert m.array_shape(784, 10) == (784, 10)


def test_offset_reference_clamps_defective_cells():
    m = OffsetReferenceMapping.from_levels(G)
    w = m.to_weight(np.array([[600e-6, 1e-8]]))  # stuck LRS, never formed
    np.testing.assert_allclose(w, [[1 + 1 / 7, -1 - 1 / 7]], atol=1e-6)


def test_differential_pair_levels_layout_and_roundtrip():
    m = DifferentialPairMapping.from_levels(G)
    assert m.g_low == pytest.approx(25e-6)
    np.testing.assert_allclose(m.g_pos, [50e-6, 100e-6, 150e-6, 200e-6])
    np.testing.assert_allclose(m.weight_levels, Q8, atol=1e-12)
    idx = np.array([[0, 7, 4]])
    t = m.targets(idx)
    assert t.shape == (1, 6) == m.array_shape(1, 3)
    # weight level 0 (-1): G+ = G_low, G- = 200 uS; level 7 (+1): G+ = 200, G- = 25; level 4 (+1/7): 50 / 25
    np.testing.assert_allclose(t[0], [25e-6, 200e-6, 200e-6, 25e-6, 50e-6, 25e-6])
    np.testing.assert_allclose(m.to_weight(t), Q8[idx], atol=1e-6)
    np.testing.assert_array_equal(m.cell_mask(np.array([[True, False, True]])), [[True, True, False, False, True, True]])


def test_make_mapping_rejects_unknown():
    with pytest.raises(ValueError, match="mapping='diff'"):
        make_mapping("diff", G)
    with pytest.raises(ValueError, match="ascending"):
        OffsetReferenceMapping.from_levels(G[::-1])
