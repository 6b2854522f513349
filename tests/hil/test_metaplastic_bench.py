"""The metaplastic experiment on BenchArrays: the same loop through the instruments' protocols.

Each layer's array is a BenchArray (B2900 + array board) on in-process simulated instruments;
every programming and read goes through the drivers and the wire protocols.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from drivers.bench import BenchArray, load_bench
from drivers.sim.server import build_sim_bench
from hil.experiments.config import ConfigError, parse_config
from hil.experiments import runner
from hil.experiments.metaplastic import MetaplasticExperiment
from hil.store import open_run

ROOT = Path(__file__).resolve().parents[2]
SHAPES = [(784, 8), (8, 10)]


def bench_files(tmp_path: Path, shapes=SHAPES) -> list[str]:
    text = (ROOT / "examples" / "bench-sim.toml").read_text()
    paths = []
    for layer, (rows, cols) in enumerate(shapes):
        p = tmp_path / f"layer{layer}.toml"
        p.write_text(re.sub(r"(?m)^shape = \[8, 8\]", f"shape = [{rows}, {cols}]", text))
        paths.append(str(p))
    return paths


def config(tmp_path: Path, benches: list[str], **device) -> dict:
    return {
        "name": "bench-run", "seed": 3, "out": str(tmp_path / "bench-run.h5"), "overwrite": True,
        "tasks": {"sequence": "mnist-fmnist", "epochs": [1, 1], "train_limit": 1000, "test_limit": 300},
        "dataset": {"source": "bundled"},
        "network": {"hidden": [8]},
        "learning": {"rule": "metaplastic", "m_star": 5.0, "batch_size": 50},
        "device": {"backend": "bench", "bench": benches, "max_pulses": 20, **device},
    }


def test_metaplastic_run_on_bench_arrays_through_the_protocols(tmp_path):
    cfg = parse_config(config(tmp_path, bench_files(tmp_path)))
    sims = [build_sim_bench(load_bench(path)) for path in cfg.device.bench]
    arrays = [BenchArray.from_config(load_bench(path), s.transports()) for path, s in zip(cfg.device.bench, sims)]
    result = runner.start(MetaplasticExperiment, cfg, progress=False,
                          arrays={f"layer{l}": a for l, a in enumerate(arrays)}).experiment.result()
    assert result.epochs_done == 2 and len(result.accuracy) == 2
    # the measured-conductance network learns as the software QNN of the same config does
    software = config(tmp_path, [])
    software["device"] = {"backend": "software"}
    software["out"] = str(tmp_path / "software.h5")
    reference = runner.start(MetaplasticExperiment, parse_config(software), progress=False).experiment.result()
    assert result.accuracy[0]["mnist"] > 0.4
    assert abs(result.accuracy[0]["mnist"] - reference.accuracy[0]["mnist"]) < 0.15
    assert all(s.smu.counters.messages > 100 and s.router.counters.messages > 10 for s in sims)
    events = result.events_per_device
    assert events.size == 784 * 8 + 8 * 10 and events.min() >= 1  # every cell formed, pulses counted by the host
    assert all(not ch.output for s in sims for ch in s.smu.ch.values())  # outputs left off
    with open_run(cfg.out) as run:
        assert run.attrs["backend"] == "bench" and '"backend": "bench"' in run.instruments["layer0"]
        assert len(run.ops) > events.sum() // 2


def test_bench_files_must_fit_the_layers(tmp_path):
    wrong = bench_files(tmp_path, [(784, 5), (8, 10)])
    cfg = parse_config(config(tmp_path, wrong))
    with pytest.raises(ValueError, match=r"device.bench\[0\] = .*bench.shape = \[784, 5\], layer 0 needs an array of shape \[784, 8\]"):
        runner.start(MetaplasticExperiment, cfg, progress=False)
    assert not Path(cfg.out).exists()


@pytest.mark.parametrize(("device", "message"), [
    ({"bench": ["one.toml"]}, r"device.bench = \['one.toml'\] is not allowed; allowed: 2 bench file paths"),
    ({"backend": "sim", "bench": ["a.toml", "b.toml"]}, "empty unless device.backend = 'bench'"),
])
def test_bench_config_errors(tmp_path, device, message):
    data = config(tmp_path, ["a.toml", "b.toml"])
    data["device"].update(device)
    with pytest.raises(ConfigError, match=message):
        parse_config(data)
