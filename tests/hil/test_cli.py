"""The command line: a small end-to-end run, and clear errors that leave no run file."""

from __future__ import annotations

import os
import re

import h5py
import numpy as np
import pytest

from hil.cli import main
from hil.store import open_run


def run_cli(*args: str) -> int:
    return main(list(args))


def test_program_report_read(tmp_path, capsys):
    # the benign HfO2 physics: this checks the CLI, store and report path at +-5 %, which the
    # harsh "hfo2" preset cannot reach at its 25 uS level (tests/hil/test_program.py)
    out = tmp_path / "run.h5"
    assert run_cli("program", "--sim", "hfo2-benign", "--levels", "8", "--shape", "16x16", "--seed", "3",
                   "--out", str(out)) == 0
    text = capsys.readouterr().out
    assert "programmed 256 cells" in text and "yield" in text
    with open_run(out) as run:
        rec = run.ops
        cfg = run.config
        targets, _ = run.snapshot("targets")
        final, _ = run.snapshot("final")
        assert run.attrs["seed"] == 3 and run.attrs["status"] == "complete"
        yield_ = run.metric("yield")["value"][0]
        mean_pulses = run.metric("mean_pulses")["value"][0]
    assert cfg["strategy"] == "igvva" and cfg["tolerance"] == 0.05 and cfg["shape"] == [16, 16]
    assert len(np.unique(targets)) == 8
    ok = np.abs(final / targets - 1) <= 0.05
    assert yield_ == pytest.approx(ok.mean())
    assert yield_ >= 0.97
    from hil.figures import pulses_per_cell

    per_cell = pulses_per_cell(rec, (16, 16))
    assert per_cell.mean() == pytest.approx(mean_pulses)  # every pulse the algorithm counted is in /ops
    assert per_cell.sum() > 256
    assert run_cli("report", str(out)) == 0
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert pngs == ["run_level_cdf.png", "run_pulses.png"]
    assert all(p.stat().st_size > 10_000 for p in tmp_path.glob("*.png"))
    # read the programmed (simulated) array back a day later
    assert run_cli("read", "--run", str(out), "--after", "86400", "--out", str(tmp_path / "day.h5")) == 0
    with open_run(tmp_path / "day.h5") as run:
        g, t = run.snapshot("read")
    assert (tmp_path / "day.png").stat().st_size > 10_000
    drift = np.abs(g / final - 1)[ok]
    assert 0.002 < np.median(drift) < 0.05  # relaxed, but still near the programmed values


def test_program_from_npy(tmp_path):
    targets = np.full((4, 5), 100e-6)
    targets[0, 0] = np.nan
    np.save(tmp_path / "t.npy", targets)
    assert run_cli("program", "--targets", str(tmp_path / "t.npy"), "--out", str(tmp_path / "r.h5")) == 0
    with open_run(tmp_path / "r.h5") as run:
        rec = run.ops
    assert not np.any((rec["row"] == 0) & (rec["col"] == 0) & (rec["kind"] != 0) & (rec["kind"] != 3))


def _bad_npy(d):
    (d / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    return ["--targets", str(d / "bad.npy")]


def _obj_npy(d):
    np.save(d / "obj.npy", np.array([["a", "b"]]))
    return ["--targets", str(d / "obj.npy")]


def _high_npy(d):
    np.save(d / "high.npy", np.full((4, 4), 5e-3))
    return ["--targets", str(d / "high.npy")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (_high_npy, r"5\.0+e-03 S outside the hfo2 technology's reachable window \[2\.0+e-05, 2\.60*e-04\] S"),
        (_bad_npy, "is not a valid .npy array file"),
        (_obj_npy, "must hold numbers in siemens"),
        (lambda d: ["--targets", str(d / "none.npy")], "no such file"),
        (lambda d: ["--levels", "8", "--shape", "8x8", "--tolerance", "0"], r"--tolerance 0\.0 outside the allowed range \(0, 1\)"),
        (lambda d: ["--levels", "8", "--shape", "8x8", "--tolerance", "-0.05"], "--tolerance -0.05 outside"),
        (lambda d: ["--levels", "1", "--shape", "8x8"], r"--levels 1 outside the allowed range \[2, 256\]"),
        (lambda d: ["--levels", "8"], "--levels needs --shape"),
        (lambda d: ["--levels", "8", "--shape", "8x8", "--max-pulses", "0"], "--max-pulses 0 must be >= 1"),
    ],
)
def test_bad_input_gives_clear_error_and_no_run_file(tmp_path, capsys, args, message):
    out = tmp_path / "run.h5"
    argv = args(tmp_path)
    before = set(os.listdir(tmp_path))
    assert run_cli("program", *argv, "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert not out.exists()
    assert set(os.listdir(tmp_path)) - before == set()


@pytest.mark.parametrize(
    ("out", "message"),
    [("missing/run.h5", "output directory .* does not exist"), (".", "is a directory")],
)
def test_unwritable_output_gives_clear_error(tmp_path, capsys, out, message):
    target = tmp_path / out
    assert run_cli("program", "--levels", "8", "--shape", "8x8", "--out", str(target)) == 2
    assert re.search(message, capsys.readouterr().err)
    assert os.listdir(tmp_path) == []


def test_existing_output_needs_overwrite(tmp_path, capsys):
    out = tmp_path / "run.h5"
    out.write_bytes(b"precious")
    assert run_cli("program", "--levels", "8", "--shape", "4x4", "--out", str(out)) == 2
    assert "exists" in capsys.readouterr().err and out.read_bytes() == b"precious"
    assert run_cli("program", "--levels", "8", "--shape", "4x4", "--out", str(out), "--overwrite") == 0
    assert h5py.is_hdf5(out)


def test_bad_shape_is_an_argument_error(capsys):
    with pytest.raises(SystemExit) as exc:
        run_cli("program", "--levels", "8", "--shape", "128by128")
    assert exc.value.code == 2
    assert "ROWSxCOLS" in capsys.readouterr().err


def test_report_of_unknown_file(tmp_path, capsys):
    assert run_cli("report", str(tmp_path / "nope.h5")) == 2
    assert "does not exist" in capsys.readouterr().err


def test_info(capsys):
    assert run_cli("info") == 0
    assert "technology hfo2" in capsys.readouterr().out
