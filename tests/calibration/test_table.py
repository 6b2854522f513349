"""Level tables: build, save/load round trip, validation on load, first guesses, shipped defaults."""

from __future__ import annotations

import dataclasses
import os

import h5py
import numpy as np
import pytest

from calibration.table import (
    LEVEL_FIELDS, LevelTable, TableError, apply_levels, build_table, default_table, default_table_path,
)
from drivers.sim.presets import get_preset
from hil.experiments.characterise import characterise_levels
from hil.store import RunStore, open_run

TARGETS = get_preset("hfo2").technology.level_targets(8)


@pytest.fixture(scope="module")
def table(hfo2_char):
    array, data, result = hfo2_char
    t = build_table(data, result, TARGETS)
    lv = characterise_levels(array, t.v_gate, t.lcs_v_stop, mask=~data.excluded_mask().reshape(array.shape))
    return apply_levels(t, lv)


def test_table_reaches_its_levels(table, hfo2_char):
    """One SET at each level's gate lands the median cell on the target (within the sampling error)."""
    assert table.n_levels == 8 and table.technology == "hfo2"
    n = table.n_cells.min()
    np.testing.assert_allclose(table.g_median, table.g_target, rtol=4 * table.sigma.max() / np.sqrt(n) + 0.01)
    assert np.all(np.diff(table.i_c) > 0) and np.all(table.v_gate_first < table.v_gate)
    # spread shrinks as the compliance grows (Fig. 2e / Fig. 4b)
    assert table.sigma[0] > table.sigma[-1]
    assert table.lcs_g_median < table.g_target[0] / 5
    assert "fit of characterisation" in table.source


def test_save_load_round_trip(table, tmp_path):
    path = table.save(tmp_path / "t.h5")
    again = LevelTable.load(path)
    for name in LEVEL_FIELDS:
        np.testing.assert_array_equal(getattr(again, name), getattr(table, name))
    for name in ("technology", "source", "created", "package_version", "schema_version", "margin", "lcs_v_stop",
                 "device_model", "fit"):
        assert getattr(again, name) == getattr(table, name), name
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    umask = os.umask(0)
    os.umask(umask)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~umask)


def test_invalid_table_is_never_written(table, tmp_path):
    bad = dataclasses.replace(table, g_target=table.g_target[::-1].copy())
    with pytest.raises(TableError, match="'g_target' must increase strictly"):
        bad.save(tmp_path / "bad.h5")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(OSError, match="does not exist"):
        table.save(tmp_path / "missing" / "t.h5")


def _rewrite(path, dataset=None, value=None, attr=None, attr_value=None, drop=None):
    with h5py.File(path, "a") as f:
        if drop:
            if drop in f:
                del f[drop]
            else:
                del f.attrs[drop]
        if dataset:
            del f[dataset]
            f.create_dataset(dataset, data=value)
        if attr:
            f.attrs[attr] = attr_value


@pytest.mark.parametrize(("edit", "message"), [
    ({"drop": "v_gate"}, "lacks the dataset 'v_gate'"),
    ({"drop": "source"}, "lacks the attribute 'source'"),
    ({"dataset": "i_c", "value": np.r_[np.nan, np.ones(7)]}, "'i_c' has non-finite"),
    ({"dataset": "g_target", "value": np.linspace(2e-4, 2.5e-5, 8)}, "'g_target' must increase strictly"),
    ({"dataset": "v_stop", "value": np.full(8, 1.0)}, "'v_stop' must be < 0"),
    ({"dataset": "sigma", "value": np.ones(5)}, "'sigma' has shape"),
    ({"dataset": "n_cells", "value": np.zeros(8, int)}, "'n_cells' must be positive"),
    ({"attr": "schema_version", "attr_value": "9.9"}, "schema_version '9.9' not supported"),
    ({"attr": "technology", "attr_value": ""}, "'technology' is missing or empty"),
    ({"dataset": "v_gate_first", "value": np.full(8, 3.0)}, "must not exceed 'v_gate'"),
])
def test_load_validates(table, tmp_path, edit, message):
    path = table.save(tmp_path / "t.h5")
    _rewrite(path, **edit)
    with pytest.raises(TableError, match=message):
        LevelTable.load(path)


def test_load_non_table(tmp_path):
    (tmp_path / "x.h5").write_text("nope")
    with pytest.raises(TableError, match="not an HDF5 table"):
        LevelTable.load(tmp_path / "x.h5")
    with pytest.raises(TableError, match="does not exist"):
        LevelTable.load(tmp_path / "y.h5")


def test_first_guess_map(table):
    levels = table.g_target
    np.testing.assert_allclose(table.first_guess_map(levels), table.v_gate_first, rtol=1e-12)
    fine = np.geomspace(levels[0] / 2, levels[-1] * 1.3, 200)
    guess = table.first_guess_map(fine)
    assert np.all(np.diff(guess) > 0) and np.all(np.isfinite(guess))
    assert guess[0] < table.v_gate_first[0] and guess[-1] > table.v_gate_first[-1]
    m = np.array([[levels[2], np.nan], [levels[5], levels[0]]])
    g = table.first_guess_map(m)
    assert g.shape == (2, 2) and np.isfinite(g).all()
    assert g[0, 0] == pytest.approx(table.v_gate_first[2]) and g[0, 1] == pytest.approx(table.v_gate_first[0])


def test_table_copied_into_run_store(table, tmp_path):
    arrays, attrs = table.to_store()
    with RunStore.create(tmp_path / "r.h5", config={}, seed=0, backend="sim") as store:
        store.save_calibration(arrays, attrs)
    with open_run(tmp_path / "r.h5") as run:
        cal = run.calibration()
    np.testing.assert_array_equal(cal["v_gate_first"], table.v_gate_first)


@pytest.mark.parametrize(("tech", "levels"), [("hfo2", 8), ("siox", 16)])
def test_default_tables_ship_and_validate(tech, levels):
    t = default_table(tech)
    assert t.technology == tech and t.n_levels == levels
    np.testing.assert_allclose(t.g_target, get_preset(tech).technology.level_targets(levels))
    assert t.source.startswith("fit of characterisation run") and "simulated preset" in t.source
    assert t.schema_version == "1.0" and t.created and t.package_version
    assert t.device_model and t.fit
    with pytest.raises(TableError, match="no default table for technology 'nbox'"):
        default_table_path("nbox")


@pytest.mark.parametrize("tech", ["hfo2", "siox"])
def test_default_tables_were_made_from_the_current_preset(tech):
    """A shipped table names the preset it was fitted on; after a recalibration of the preset the
    table must be regenerated (command in calibration/tables/__init__.py)."""
    t = default_table(tech)
    assert get_preset(tech).technology.reference in t.source
