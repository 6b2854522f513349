"""The continual-stdp experiment through the runner: bad files, exact resume (small, seeded)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hil.experiments import registry, runner
from hil.experiments.schema import ConfigError
from hil.store import open_run

SMALL = {
    "experiment": "continual-stdp", "name": "t", "seed": 3, "overwrite": True,
    "dataset": {"name": "mnist", "source": "bundled", "train_limit": 300, "test_limit": 60, "validation": 0.2},
    "filters": {"untrained": 2, "epochs": 1, "bits": 4},
    "stdp": {"n_neurons": 10},
}


def cfg_for(tmp_path: Path, name: str, **over) -> tuple[type, object]:
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in SMALL.items()}
    data["out"] = str(tmp_path / name)
    for dotted, value in over.items():
        table, key = dotted.split(".")
        data.setdefault(table, {})[key] = value
    return registry.parse_experiment(data, tmp_path)


@pytest.mark.parametrize("dotted, value, words", [
    ("filters.bits", 9, ["filters.bits", "9", "[1, 8]"]),
    ("filters.untrained", 10, ["filters.untrained", "10", "[0, 9]"]),
    ("overlay.backend", "fpga", ["overlay.backend", "fpga", "twin"]),
    ("filters.i_c", 1e-3, ["filters.i_c", "0.001"]),
    ("stdp.n_neurons", 0, ["stdp.n_neurons", "0", "[1, 1000]"]),
])
def test_bad_fields_named_and_no_run_file(tmp_path: Path, dotted: str, value, words: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        cfg_for(tmp_path, "bad.h5", **{dotted: value})
    for w in words:
        assert w in str(err.value)
    assert not (tmp_path / "bad.h5").exists()


def test_unknown_field_and_board_without_bitstream(tmp_path: Path) -> None:
    data = dict(SMALL, out=str(tmp_path / "x.h5"), stdp={"n_neurons": 10, "gain": 1})
    with pytest.raises(ConfigError, match="stdp.gain"):
        registry.parse_experiment(data, tmp_path)
    with pytest.raises(ConfigError, match="overlay.bitstream"):
        cfg_for(tmp_path, "x.h5", **{"overlay.backend": "board"})
    assert not (tmp_path / "x.h5").exists()


def test_resume_is_bit_identical(tmp_path: Path) -> None:
    cls, cfg = cfg_for(tmp_path, "full.h5")
    full = runner.start(cls, cfg, progress=False)
    assert full.complete
    _, cfg2 = cfg_for(tmp_path, "part.h5")
    part = runner.start(cls, cfg2, progress=False, stop_after=2)
    assert not part.complete
    done = runner.resume(tmp_path / "part.h5", progress=False)
    assert done.complete
    a, b = full.summary, done.summary
    for k in a:
        if k != "wall_time_s":
            assert a[k] == b[k] or (np.isnan(a[k]) and np.isnan(b[k])), k
    with open_run(tmp_path / "full.h5") as r1, open_run(tmp_path / "part.h5") as r2:
        o1, o2 = r1.ops, r2.ops
        assert len(o1) == len(o2) and len(o1) > 1000
        for name in ("kind", "row", "col", "v_gate", "v_pulse", "result"):
            np.testing.assert_array_equal(o1[name], o2[name])
        assert "stdp.spike_rate" in r1.metric_names() and "appearance_rate" in r1.metric_names()
