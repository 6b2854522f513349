"""Bad or incomplete characterisation data give a clear error, never a silently wrong table."""

from __future__ import annotations

import copy

import h5py
import numpy as np
import pytest

from calibration.data import CalibrationDataError
from calibration.fit import fit
from calibration.table import LevelData, TableError, apply_levels, build_table
from drivers.sim.presets import get_preset
from drivers.sim_array import SimArray
from hil.experiments.characterise import characterise, load_characterisation
from hil.store import RunStore

BASE = get_preset("hfo2").physics


def _mutated(data, **changes):
    d = copy.deepcopy(data)
    for k, v in changes.items():
        setattr(d, k, v)
    return d


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: {"hrs_v_stop": d.hrs_v_stop[:1], "hrs_g": d.hrs_g[:1], "hrs_g_set": d.hrs_g_set[:1]}, "hrs_v_stop has 1"),
    (lambda d: {"lrs_g": d.lrs_g[:, :1], "lrs_g_reset": d.lrs_g_reset[:, :1]}, "1 cycle"),
    (lambda d: {"lrs_v_gate": d.lrs_v_gate[::-1].copy()}, "lrs_v_gate must be strictly ascending"),
    (lambda d: {"lrs_v_gate": d.lrs_v_gate[:2], "lrs_i_c": d.lrs_i_c[:2], "lrs_g": d.lrs_g[:2],
                "lrs_g_reset": d.lrs_g_reset[:2]}, "compliance conditions"),
    (lambda d: {"noise_g": np.where(np.arange(d.n_cells) == 5, np.nan, d.noise_g)}, "noise_g has"),
    (lambda d: {"lrs_g": np.full_like(d.lrs_g, np.nan)}, "lrs_g condition 0 has only 0 cells"),
    (lambda d: {"relax_t": np.r_[0.0, d.relax_t[1:]]}, "relax_t must be > 0"),
    (lambda d: {"relax_g": d.relax_g[:-1]}, "relax_g must have shape"),
    (lambda d: {"lrs_i_c": np.r_[0.0, d.lrs_i_c[1:]]}, "lrs_i_c must be > 0"),
    (lambda d: {"excluded": np.ones(d.n_cells, dtype=bool)}, "usable"),
    (lambda d: {"form_steps": np.array([3.0])}, "form_steps has 1"),
])
def test_malformed_data_rejected(hfo2_char, change, message):
    _, data, _ = hfo2_char
    bad = _mutated(data, **change(data))
    with pytest.raises(CalibrationDataError, match=message):
        fit(bad, BASE, n_boot=20)


def test_data_against_the_model_rejected(hfo2_char):
    """HRS that falls with |V_STOP| cannot give a positive hrs_v: the fit says which law fails."""
    _, data, _ = hfo2_char
    bad = _mutated(data, hrs_g=data.hrs_g[::-1].copy(), hrs_g_set=data.hrs_g_set[::-1].copy())
    with pytest.raises(CalibrationDataError, match="hrs_v"):
        fit(bad, BASE, n_boot=20)


def test_spread_below_read_noise_rejected(hfo2_char):
    _, data, _ = hfo2_char
    # every SET of a cell gives the same value: no cycle-to-cycle spread above the read noise
    flat = np.broadcast_to(data.lrs_g[:, :1], data.lrs_g.shape).copy()
    with pytest.raises(CalibrationDataError, match="cycle-to-cycle LRS variance"):
        fit(_mutated(data, lrs_g=flat), BASE, n_boot=20)


def test_targets_outside_the_sweep_rejected(hfo2_char):
    _, data, result = hfo2_char
    with pytest.raises(TableError, match=r"target 5\.000e-04 S lies outside"):
        build_table(data, result, np.array([50e-6, 500e-6]))
    with pytest.raises(TableError, match="strictly ascending"):
        build_table(data, result, np.array([100e-6, 50e-6]))
    with pytest.raises(TableError, match="at least 2 levels"):
        build_table(data, result, np.array([100e-6]))


def test_thin_conditions_rejected(hfo2_char):
    _, data, result = hfo2_char
    with pytest.raises(TableError, match="only .* cells switched; need 300"):
        build_table(data, result, np.array([50e-6, 100e-6]), min_cells=300)


def test_level_data_checked(hfo2_char):
    _, data, result = hfo2_char
    table = build_table(data, result, np.array([50e-6, 100e-6, 150e-6]))
    g = np.full((3, 100), 1e-4)
    g[1, 5:] = np.nan
    with pytest.raises(TableError, match="level 1: only 5 usable reads"):
        apply_levels(table, LevelData(v_gate=table.v_gate, g=g, v_stop=-2.5, g_lcs=np.full(100, 1e-6)))
    with pytest.raises(TableError, match="the table has 3 levels"):
        apply_levels(table, LevelData(v_gate=table.v_gate[:2], g=g[:2], v_stop=-2.5, g_lcs=np.full(100, 1e-6)))
    with pytest.raises(TableError, match="other than the table's v_gate"):
        apply_levels(table, LevelData(v_gate=table.v_gate + 0.1, g=np.full((3, 100), 1e-4), v_stop=-2.5,
                                      g_lcs=np.full(100, 1e-6)))


# ---------------------------------------------------------------------- run files
@pytest.fixture(scope="module")
def char_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("char") / "char.h5"
    array = SimArray((10, 10), "hfo2", seed=2)
    from hil.experiments.characterise import CharacterisationPlan
    plan = CharacterisationPlan()
    conditions = plan.resolve(array)
    with RunStore.create(path, config={"command": "calibrate", "plan": conditions}, seed=2, backend="sim") as store:
        data = characterise(array, plan, store=store, conditions=conditions)
    return path, data


def test_run_file_reloads_identically(char_run):
    path, data = char_run
    again = load_characterisation(path)
    for name in ("g_pristine", "form_v", "lrs_g", "lrs_g_reset", "hrs_g", "hrs_g_set", "noise_g", "relax_g",
                 "relax_t", "iv_g_set", "iv_g_reset", "iv_cells", "excluded", "preformed"):
        np.testing.assert_allclose(np.asarray(getattr(again, name), float), np.asarray(getattr(data, name), float),
                                   rtol=1e-6, err_msg=name)
    assert fit(again, BASE, n_boot=20, seed=0).estimates["v0"].value == pytest.approx(
        fit(data, BASE, n_boot=20, seed=0).estimates["v0"].value, rel=1e-6)


def _copy_without(src, dst, drop=None, truncate=None):
    with h5py.File(src, "r") as f, h5py.File(dst, "w") as g:
        for k, v in f.attrs.items():
            g.attrs[k] = v
        for key in f:
            f.copy(f[key], g, name=key)
        if drop:
            del g[drop]
        if truncate:
            name, keep = truncate
            data = g[f"snapshots/{name}/g"][:keep]
            del g[f"snapshots/{name}"]
            g.create_dataset(f"snapshots/{name}/g", data=data)
    return dst


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"drop": "snapshots/hrs"}, "measurement 'hrs' is missing"),
    ({"truncate": ("relax", 4)}, "measurement 'relax' has 4 of 9 maps"),
    ({"drop": "metrics/relax_t"}, "relax_t"),
])
def test_incomplete_run_rejected(char_run, tmp_path, kwargs, message):
    path, _ = char_run
    bad = _copy_without(path, tmp_path / "bad.h5", **kwargs)
    with pytest.raises(CalibrationDataError, match=message):
        load_characterisation(bad)


def test_not_a_characterisation_run(tmp_path):
    with pytest.raises(CalibrationDataError, match="does not exist"):
        load_characterisation(tmp_path / "none.h5")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(CalibrationDataError, match="cannot open"):
        load_characterisation(tmp_path / "junk.h5")
    with RunStore.create(tmp_path / "program.h5", config={"command": "program"}, seed=0, backend="sim"):
        pass
    with pytest.raises(CalibrationDataError, match="not a characterisation run"):
        load_characterisation(tmp_path / "program.h5")
