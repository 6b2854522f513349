"""Bad input from issue 9: each gives one clear line (file, field, value, range), exit 2, and
writes nothing."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from hil.cli import main

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*argv: str) -> int:
    return main([str(a) for a in argv])


def listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def bench_text() -> str:
    return (ROOT / "examples" / "bench-sim.toml").read_text()


def test_bench_limits_not_a_table(tmp_path, capsys):
    bench = tmp_path / "b.toml"
    text = re.sub(r"(?ms)^\[limits\].*?(?=^\[)", "", bench_text())
    bench.write_text("limits = 5\n" + text)
    assert run_cli("program", "--bench", bench, "--levels", "8", "--out", tmp_path / "r.h5") == 2
    err = capsys.readouterr().err
    assert "limits = 5" in err and "table" in err and "Traceback" not in err
    assert not (tmp_path / "r.h5").exists()


def test_npy_header_claiming_huge_array_is_refused_before_loading(tmp_path, capsys):
    path = tmp_path / "huge.npy"
    header = {"descr": "<f8", "fortran_order": False, "shape": (100000, 100000)}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
    assert run_cli("program", "--targets", path, "--out", tmp_path / "r.h5") == 2
    err = capsys.readouterr().err
    assert "(100000, 100000)" in err and "allowed range" in err
    assert not (tmp_path / "r.h5").exists()


def test_truncated_npy_is_refused(tmp_path, capsys):
    path = tmp_path / "t.npy"
    np.save(path, np.full((8, 8), 1e-4))
    path.write_bytes(path.read_bytes()[:-8])
    assert run_cli("program", "--targets", path, "--out", tmp_path / "r.h5") == 2
    assert "truncated" in capsys.readouterr().err


def test_all_nan_targets_nothing_to_program(tmp_path, capsys):
    path = tmp_path / "nan.npy"
    np.save(path, np.full((8, 8), np.nan))
    assert run_cli("program", "--targets", path, "--out", tmp_path / "r.h5") == 2
    assert "nothing to program" in capsys.readouterr().err
    assert not (tmp_path / "r.h5").exists()


@pytest.mark.parametrize("text, field", [
    ("", "experiment"),
    ('experiment = "metaplastic"\n', "tasks.epochs"),
    ('experiment = "metaplastic"\n[tasks]\nepochs = [1, 1]\n', "network.hidden"),
])
def test_empty_or_bare_experiment_file_is_an_error(tmp_path, monkeypatch, capsys, text, field):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "e.toml").write_text(text)
    assert run_cli("run", "e.toml", "--no-progress") == 2
    err = capsys.readouterr().err
    assert field in err and "e.toml" in err
    assert sorted(os.listdir(tmp_path)) == ["e.toml"]


def quickstart(tmp_path: Path, **device) -> Path:
    text = (ROOT / "examples" / "quickstart.toml").read_text()
    text = text.replace('out = "quickstart.h5"', f'out = "{tmp_path / "q.h5"}"')
    for key, value in device.items():
        text = text.replace("[device]\n", f"[device]\n{key} = {value}\n")
    path = tmp_path / "q.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("levels", ["[1.0, 1000.0]", "[10.0, 100.0]", "[100.0, 300.0]"])
def test_levels_outside_the_technology_window_fail_at_validation(tmp_path, capsys, levels):
    path = quickstart(tmp_path, levels_uS=levels)
    assert run_cli("run", path, "--no-progress") == 2
    err = capsys.readouterr().err
    assert "device.levels_uS[" in err and "hfo2" in err and "[20, 260]" in err, err
    assert not (tmp_path / "q.h5").exists()


def test_levels_inside_the_window_validate():
    from hil.experiments.config import parse_config
    data = {"tasks": {"epochs": [1, 1]}, "network": {"hidden": [8]}, "device": {"backend": "sim", "levels_uS": [25.0, 250.0]}}
    assert parse_config(data).device.levels_uS == (25.0, 250.0)


@pytest.mark.parametrize("kind", ["experiment", "bench"])
def test_non_utf8_toml_names_the_file(tmp_path, capsys, kind):
    path = tmp_path / "latin1.toml"
    path.write_bytes('name = "d\u00e9j\u00e0"\n'.encode("latin-1"))
    argv = ["run", path] if kind == "experiment" else ["program", "--bench", path, "--levels", "8", "--out", tmp_path / "r.h5"]
    assert run_cli(*argv) == 2
    err = capsys.readouterr().err
    assert "latin1.toml" in err and "UTF-8" in err


@pytest.mark.parametrize("argv", [
    ["program", "--levels", "8", "--shape", "8x8", "--out", "{d}/x.txt"],
    ["read", "--shape", "8x8", "--out", "{d}/x.txt"],
    ["run", str(ROOT / "examples" / "quickstart.toml"), "--out", "{d}/x.txt"],
    ["calibrate", "--sim", "hfo2", "--out", "{d}/x.txt"],
])
def test_out_must_be_h5_everywhere(tmp_path, capsys, argv):
    assert run_cli(*[a.format(d=tmp_path) for a in argv]) == 2
    assert ".h5" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_read_refuses_to_overwrite_the_run_it_reads(tmp_path, capsys):
    run = tmp_path / "p.h5"
    assert run_cli("program", "--levels", "4", "--shape", "4x4", "--out", run) == 0
    before = listing(tmp_path)
    assert run_cli("read", "--run", run, "--out", run, "--overwrite") == 2
    assert re.search("reads|input of this command", capsys.readouterr().err)
    assert listing(tmp_path) == before


@pytest.mark.parametrize("where", ["before", "after"])
def test_traceback_only_with_v_before_or_after_the_command(tmp_path, capsys, where):
    argv = ["program", "--levels", "8", "--shape", "8x8", "--out", str(tmp_path / "x.txt")]
    assert run_cli(*argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert run_cli(*(["-v", *argv] if where == "before" else [*argv, "-v"])) == 2
    assert "Traceback" in capsys.readouterr().err


def test_internal_error_is_one_line_too(monkeypatch, capsys):
    import hil.cli.info as info

    def boom(args):
        raise TypeError("a bug")
    monkeypatch.setattr(info, "run", boom)  # registered when main builds its parser
    assert main(["info"]) == 1
    err = capsys.readouterr().err
    assert "internal error: TypeError: a bug" in err and "Traceback" not in err


@pytest.mark.parametrize("value", ["-1", "2.5", "true", "1001"])
def test_retire_after_must_be_a_session_count(tmp_path, capsys, value):
    path = quickstart(tmp_path, retire_after=value)
    assert run_cli("run", path, "--no-progress") == 2
    err = capsys.readouterr().err
    assert "device.retire_after" in err, err
    assert not (tmp_path / "q.h5").exists()
