"""Program-and-verify seeded from a calibrated table needs far fewer pulses than from the bottom
of the gate range. benchmarks/calibration_savings.py measures the same on 64x64 / 128x128."""

from __future__ import annotations

import numpy as np

from calibration.table import default_table
from drivers.sim_array import SimArray
from hil.cli.program import generate_targets
from hil.program import program_verify


def _program(first_guess_from_table: bool, seed: int = 7):
    array = SimArray((32, 32), "hfo2", seed=seed)  # another chip than the one the table came from
    array.form()
    targets = generate_targets(array.technology, 8, array.shape, seed)
    guess = default_table("hfo2").first_guess_map(targets) if first_guess_from_table else None
    return program_verify(array, targets, first_guess=guess)


def test_calibrated_first_guess_saves_pulses():
    base, cal = _program(False), _program(True)
    # measured: ~42 vs ~7 pulses per cell; require at least a 3x reduction
    assert cal.mean_pulses < base.mean_pulses / 3, (cal.mean_pulses, base.mean_pulses)
    assert cal.yield_ >= base.yield_ - 0.01
    assert np.median(cal.pulses[cal.programmed]) < np.median(base.pulses[base.programmed]) / 3
