"""benchmarks/program_verify.py: the level from which a tolerance holds."""

from __future__ import annotations

import numpy as np

from script_loader import load_benchmark


def test_lowest_level_holding_needs_every_level_above_to_hold():
    pv = load_benchmark("program_verify")
    levels = np.array([25e-6, 50e-6, 75e-6, 100e-6])
    assert pv.lowest_level_holding(levels, [0.2, 0.95, 0.91, 0.99]) == 50e-6
    assert pv.lowest_level_holding(levels, [0.95, 0.5, 0.91, 0.99]) == 75e-6  # a dip breaks the run from the top
    assert pv.lowest_level_holding(levels, [0.99, 0.99, 0.99, 0.8]) is None  # the top level fails
    assert pv.lowest_level_holding(levels, [0.9] * 4) == 25e-6  # 90 % counts as holding
