"""The interval-based meta-function on device levels, and the m* scale conversion."""

import numpy as np
import pytest

from drivers.sim.presets import get_preset
from hil.learning.metaplastic import consolidation, edge_m_star, edge_span, meta_function, paper_m_star
from hil.mapping import make_mapping

Q8 = np.array([-7, -5, -3, -1, 1, 3, 5, 7]) / 7


def _device_levels(preset: str) -> np.ndarray:
    return make_mapping("offset-reference", np.asarray(get_preset(preset).technology.levels)).weight_levels


def test_icc_preset_levels_are_unequal_and_hfo2_equal():
    eq, uneq = np.diff(get_preset("hfo2").technology.levels), np.diff(get_preset("hfo2-icc").technology.levels)
    assert np.allclose(eq, eq[0])
    assert uneq.max() / uneq.min() > 5  # 60 uS vs 7 uS intervals


def test_meta_function_differs_between_equal_and_unequal_device_levels():
    eq, uneq = _device_levels("hfo2"), _device_levels("hfo2-icc")
    # same weight range, so the magnitude rule cannot tell them apart ...
    w = np.linspace(0.9 * eq[0], 0.9 * eq[-1], 201) * (uneq[-1] / eq[-1])
    w_eq = np.linspace(0.9 * eq[0], 0.9 * eq[-1], 201)
    m_eq = meta_function(w_eq, eq, 3.0, "interval")
    m_un = meta_function(w, uneq, 3.0, "interval")
    # ... but the interval rule does: on the unequal levels, narrow intervals near zero count
    # as much consolidation as wide ones, so M differs at the same relative position
    assert np.max(np.abs(m_eq - m_un)) > 0.05
    # and for the equal levels the interval rule is the magnitude rule
    np.testing.assert_allclose(m_eq, meta_function(w_eq, eq, 3.0, "weight"), atol=1e-12)
    assert np.max(np.abs(m_un - meta_function(w, uneq, 3.0, "weight"))) > 0.05


def test_paper_scale_counts_intervals():
    # 8 symmetric equal levels: 3.5 intervals from zero to the top level
    assert edge_span(Q8) == pytest.approx(3.5)
    w = np.array([0.0, 1 / 7, 3 / 7, 1.0])
    np.testing.assert_allclose(consolidation(w, Q8, "interval", "interval"), [0, 0.5, 1.5, 3.5], atol=1e-12)
    # M with m*_paper on the interval scale equals M with m*_edge = S * m*_paper on the edge scale
    m_paper = 2.5
    np.testing.assert_allclose(meta_function(w, Q8, m_paper, scale="interval"),
                               meta_function(w, Q8, edge_m_star(m_paper, Q8)), atol=1e-12)
    assert paper_m_star(edge_m_star(m_paper, Q8), Q8) == pytest.approx(m_paper)
    assert paper_m_star(5.0, Q8) == pytest.approx(5.0 / 3.5)


def test_paper_scale_rejects_asymmetric_span_and_bad_scale():
    with pytest.raises(ValueError, match="symmetric span"):
        paper_m_star(3.0, np.array([-1.0, -0.2, 0.3, 1.0]))
    with pytest.raises(ValueError, match="meta scale"):
        consolidation(np.zeros(2), Q8, "interval", "bogus")
