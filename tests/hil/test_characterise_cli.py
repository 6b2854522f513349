"""``hil calibrate`` end to end on a small simulated array, ``--from-run``, ``--bench``, and errors."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.table import LevelTable
from hil.cli import main
from hil.store import open_run


def test_calibrate_sim(tmp_path, capsys):
    out = tmp_path / "t.h5"
    assert main(["calibrate", "--sim", "hfo2", "--shape", "12x12", "--seed", "3", "--boot", "30",
                 "--relax-max", "1000", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "true (sim)" in text and "v0" in text and "not fitted" in text and "level table (8 levels" in text
    table = LevelTable.load(out)
    assert table.n_levels == 8 and "t_char.h5" in table.source
    for k in ("iv", "lrs", "hrs", "levels", "noise"):
        assert (tmp_path / f"t_{k}.png").stat().st_size > 10_000, k
    with open_run(tmp_path / "t_char.h5") as run:
        assert run.attrs["status"] == "complete"
        assert run.config["command"] == "calibrate"
        ops = run.ops
        cal = run.calibration()
        v0 = run.metric("fit_v0")["value"][0]
        names = run.snapshot_names()
    assert {"pristine", "form", "lrs", "hrs", "noise", "relax", "levels", "lcs", "iv_set"} <= set(names)
    assert set(np.unique(ops["kind"])) == {0, 1, 2, 3}  # form, set, reset, read all logged
    np.testing.assert_array_equal(cal["v_gate"], table.v_gate)
    assert v0 == pytest.approx(0.4, rel=0.05)

    # refit the stored run offline: same data -> same V0
    out2 = tmp_path / "t2.h5"
    assert main(["calibrate", "--from-run", str(tmp_path / "t_char.h5"), "--boot", "30", "--seed", "3",
                 "--out", str(out2), "--no-figures"]) == 0
    t2 = LevelTable.load(out2)
    assert "no level run" in t2.source
    np.testing.assert_allclose(t2.i_c, table.i_c, rtol=1e-9)


def test_bad_bench_file_is_a_clear_error_and_leaves_nothing(tmp_path, capsys):
    bench = tmp_path / "bench.toml"
    bench.write_text("[limits]\nmax_v_pulse = -1\n")
    before = set(tmp_path.iterdir())
    assert main(["calibrate", "--bench", str(bench), "--out", str(tmp_path / "t.h5")]) == 2
    assert "bench" in capsys.readouterr().err
    assert set(tmp_path.iterdir()) == before


@pytest.mark.parametrize(("args", "message"), [
    (["--levels", "1"], "--levels 1 outside the allowed range [2, 64]"),
    (["--margin", "-1"], "--margin -1.0 outside the allowed range"),
    (["--cycles", "1"], "--cycles 1 outside the allowed range"),
    (["--boot", "5"], "--boot 5 outside the allowed range"),
    (["--shape", "4x4"], "needs at least 64"),
    (["--relax-max", "1"], "--relax-max 1.0 outside the allowed range"),
    (["--out", "table.txt"], "must end in .h5"),
])
def test_bad_arguments_leave_nothing(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    assert main(["calibrate", "--sim", "hfo2", *args]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_existing_outputs_are_not_overwritten(tmp_path, capsys):
    (tmp_path / "t.h5").write_bytes(b"keep")
    assert main(["calibrate", "--out", str(tmp_path / "t.h5")]) == 2
    assert "exists" in capsys.readouterr().err
    assert (tmp_path / "t.h5").read_bytes() == b"keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.h5"]


def test_from_bad_run(tmp_path, capsys):
    (tmp_path / "junk.h5").write_bytes(b"junk")
    assert main(["calibrate", "--from-run", str(tmp_path / "junk.h5"), "--out", str(tmp_path / "t.h5")]) == 2
    assert "cannot open" in capsys.readouterr().err
    assert not (tmp_path / "t.h5").exists()


def test_program_with_table(tmp_path, capsys):
    out = tmp_path / "p.h5"
    assert main(["program", "--sim", "hfo2", "--levels", "8", "--shape", "16x16", "--seed", "2", "--table", "default",
                 "--out", str(out)]) == 0
    with open_run(out) as run:
        assert run.config["table"] == "default"
        assert "v_gate_first" in run.calibration()
    assert main(["program", "--sim", "hfo2", "--levels", "8", "--shape", "4x4", "--strategy", "ispp",
                 "--table", "default", "--out", str(tmp_path / "q.h5")]) == 2
    assert "needs --strategy igvva" in capsys.readouterr().err
    assert main(["program", "--sim", "siox", "--levels", "8", "--shape", "4x4",
                 "--table", str(tmp_path / "none.h5"), "--out", str(tmp_path / "q.h5")]) == 2
    assert not (tmp_path / "q.h5").exists()
