"""`hil example NAME` (examples shipped as package data) and figures that do not mislead."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hil import figures
from hil.cli import build_parser, main
from hil.cli.example import examples

ROOT = Path(__file__).resolve().parents[2]


def test_every_example_is_shipped_and_written_verbatim(tmp_path, monkeypatch):
    shipped = examples()
    on_disk = {p.stem for p in (ROOT / "examples").glob("*.toml")}
    assert set(shipped) == on_disk and "quickstart" in shipped and "bench-sim" in shipped
    monkeypatch.chdir(tmp_path)
    for name in shipped:
        assert main(["example", name]) == 0
        assert (tmp_path / f"{name}.toml").read_text() == (ROOT / "examples" / f"{name}.toml").read_text()
    assert main(["example", "quickstart"]) == 2  # exists: not replaced
    assert main(["example", "nope"]) == 2


def test_shipped_examples_validate(tmp_path):
    from drivers.bench import load_bench
    from hil.experiments import registry
    for name in examples():
        path = ROOT / "examples" / f"{name}.toml"
        if name.startswith("sweep-"):
            continue
        if name.startswith("bench-"):
            load_bench(path)
        else:
            registry.load_experiment(path)


def test_help_names_examples_through_hil_example():
    text = build_parser()._subparsers._group_actions[0].choices["program"].format_help()
    assert "examples/" not in text and "hil example bench-sim" in text


def test_level_cdf_is_a_step_ecdf_with_off_scale_cells_marked():
    targets = np.full((10, 10), 100e-6)
    targets[:5] = 200e-6
    g = targets * (1 + np.linspace(-0.04, 0.04, 100).reshape(10, 10))
    g[0, 0] = 1e-3  # far above the axis
    g[9, 9] = 1e-7  # far below
    fig = figures.level_cdfs_figure(targets, g, 0.05)
    ax = fig.axes[0]
    steps = [l for l in ax.get_lines() if l.get_drawstyle() == "steps-post"]
    assert len(steps) == 2
    markers = [l for l in ax.get_lines() if l.get_marker() in ("<", ">")]
    assert {m.get_marker() for m in markers} == {"<", ">"}
    assert "2 off-scale" in ax.get_title()
    for line in steps:  # the ECDF ends below 1 where cells fall off the right edge
        y = line.get_ydata()
        assert np.all(np.diff(y) >= 0) and 0 <= y[0] and y[-1] <= 1


def test_pulse_bins_are_integer_wide_and_centred():
    for top in (0, 5, 79, 80, 500):
        edges = figures.pulse_bins(top)
        width = edges[1] - edges[0]
        assert width == int(width) >= 1 and edges[0] == -0.5 and edges[-1] >= top + 0.5
        assert np.allclose(np.diff(edges), width)


def test_heat_map_full_range_and_integer_ticks():
    g = np.linspace(1e-6, 300e-6, 64).reshape(8, 8)
    g[3, 3] = np.nan
    fig = figures.heat_map_figure(g, "t")
    ax = fig.axes[0]
    vmin, vmax = ax.get_images()[0].get_clim()
    assert vmin == pytest.approx(1.0) and vmax == pytest.approx(300.0)
    fig.canvas.draw()
    for ticks in (ax.get_xticks(), ax.get_yticks()):
        assert np.allclose(ticks, np.round(ticks))
    with pytest.raises(ValueError):
        figures.heat_map_figure(np.full((2, 2), np.nan), "t")


def test_report_of_a_run_without_finished_epoch_says_so(tmp_path, capsys):
    from hil.store import RunStore
    path = tmp_path / "m.h5"
    with RunStore.create(path, config={"experiment": "metaplastic", "learning": {"rule": "plain", "m_star": 0}},
                         seed=0, backend="sim") as store:
        store.flush()
    assert main(["report", str(path)]) == 2
    assert "no finished epoch" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.png"))
