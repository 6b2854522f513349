from __future__ import annotations

import pytest

from calibration.fit import fit
from drivers.sim.presets import get_preset
from drivers.sim_array import SimArray
from hil.experiments.characterise import characterise


@pytest.fixture(scope="module")
def hfo2_char():
    """(array, data, fit) of a characterised 16x16 simulated HfO2 array."""
    array = SimArray((16, 16), "hfo2", seed=11)
    data = characterise(array)
    return array, data, fit(data, get_preset("hfo2").physics, n_boot=30)
