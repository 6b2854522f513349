"""The one experiment runner: registry look-up, exact resume (also from the initial checkpoint),
arrays closed on every exit path, and the generic contract on a toy experiment."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pytest

from drivers.sim_array import SimArray
from hil.cli import main
from hil.experiments import registry, runner
from hil.experiments.metaplastic import MetaplasticExperiment
from hil.experiments.schema import ConfigError, build, check_number
from hil.store import RunFinishedError, StoreError, open_run


def small(tmp_path: Path, name: str, **device) -> dict:
    return {
        "experiment": "metaplastic", "name": name, "seed": 5, "out": str(tmp_path / f"{name}.h5"),
        "tasks": {"sequence": "mnist-fmnist", "epochs": [2, 1], "train_limit": 200, "test_limit": 100},
        "dataset": {"source": "bundled"},
        "network": {"hidden": [12]},
        "learning": {"m_star": 3.0, "batch_size": 50},
        "device": {"backend": "sim", "program_every": 2, **device},
    }


def parse(data: dict):
    cls, cfg = registry.parse_experiment(data)
    assert cls is MetaplasticExperiment
    return cfg


def file_contents(path: Path) -> dict:
    """Everything a resumed file must reproduce: metrics, snapshots, ops, final checkpoint."""
    with open_run(path) as r:
        out = {f"metric/{n}": r.metric(n) for n in r.metric_names()}
        out.update({f"snapshot/{n}": r.snapshot(n)[0] for n in r.snapshot_names()})
        out["ops"] = r.ops
        arrays, meta = r.load_checkpoint()
        out.update({f"ckpt/{k}": v for k, v in arrays.items()})
        out["status"] = r.attrs["status"]
    return out, meta


def assert_same_run(a: Path, b: Path) -> None:
    fa, ma = file_contents(a)
    fb, mb = file_contents(b)
    assert sorted(fa) == sorted(fb)
    for key in fa:
        if key == "ops":  # bench-time stamps and results of every device operation
            assert fa[key].size == fb[key].size and fa[key].size > 0
            for col in fa[key].dtype.names:
                np.testing.assert_array_equal(fa[key][col], fb[key][col], err_msg=col)
        else:
            np.testing.assert_array_equal(fa[key], fb[key], err_msg=key)
    assert ma == mb


def test_resume_through_the_runner_is_bit_identical(tmp_path):
    whole = runner.start(MetaplasticExperiment, parse(small(tmp_path, "whole")), progress=False)
    assert whole.complete and whole.stages_done == 4  # program + 3 epochs
    part = runner.start(MetaplasticExperiment, parse(small(tmp_path, "part")), progress=False, stop_after=2)
    assert not part.complete and part.stages_done == 2
    with open_run(part.path) as r:
        assert r.attrs["status"] == "stopped"
    resumed = runner.resume(part.path, progress=False)
    assert resumed.complete and resumed.stages_done == 4
    assert resumed.summary == whole.summary and set(whole.summary) == {"mnist", "fashion-mnist", "val.mnist", "val.fashion-mnist"}
    wa, _ = whole.experiment.state()
    ra, _ = resumed.experiment.state()
    assert sorted(wa) == sorted(ra)
    for k in wa:
        np.testing.assert_array_equal(wa[k], ra[k], err_msg=k)
    assert_same_run(whole.path, resumed.path)
    with open_run(resumed.path) as r:
        assert r.metric("final.mnist")["value"][-1] == whole.summary["mnist"]


def test_a_run_killed_in_its_first_stage_resumes_from_the_initial_checkpoint(tmp_path, monkeypatch):
    whole = runner.start(MetaplasticExperiment, parse(small(tmp_path, "whole")), progress=False)
    original = MetaplasticExperiment.run_stage
    closed: list[SimArray] = []

    def killed(self, i, ctx):
        if i == 0:
            self.device.arrays[0].form(None)  # some device operations happen, then the process dies
            raise KeyboardInterrupt
        return original(self, i, ctx)

    monkeypatch.setattr(MetaplasticExperiment, "run_stage", killed)
    monkeypatch.setattr(SimArray, "_close", lambda self: closed.append(self))
    with pytest.raises(KeyboardInterrupt):
        runner.start(MetaplasticExperiment, parse(small(tmp_path, "killed")), progress=False)
    assert len(closed) == 2  # both layers' arrays closed on the way out
    with open_run(tmp_path / "killed.h5") as r:
        assert r.attrs["status"] == "failed: KeyboardInterrupt"
        _, meta = r.load_checkpoint()
        assert meta["runner"]["next_stage"] == 0
    monkeypatch.setattr(MetaplasticExperiment, "run_stage", original)
    resumed = runner.resume(tmp_path / "killed.h5", progress=False)
    assert resumed.complete and resumed.summary == whole.summary
    wa, _ = whole.experiment.state()
    ra, _ = resumed.experiment.state()
    for k in wa:
        np.testing.assert_array_equal(wa[k], ra[k], err_msg=k)


def test_arrays_are_closed_when_a_stage_raises_mid_run(tmp_path, monkeypatch):
    original = MetaplasticExperiment.run_stage
    seen = {}

    def failing(self, i, ctx):
        seen["arrays"] = list(self.device.arrays)
        if i == 2:
            raise RuntimeError("instrument lost")
        return original(self, i, ctx)

    monkeypatch.setattr(MetaplasticExperiment, "run_stage", failing)
    with pytest.raises(RuntimeError, match="instrument lost"):
        runner.start(MetaplasticExperiment, parse(small(tmp_path, "broken")), progress=False)
    for array in seen["arrays"]:
        with pytest.raises(RuntimeError, match="closed"):
            array.read(None)
    with open_run(tmp_path / "broken.h5") as r:
        assert r.attrs["status"] == "failed: RuntimeError"
        assert r.metric("val.mnist")["epoch"].tolist() == [1]  # the epoch before the failure was kept
        _, meta = r.load_checkpoint()
        assert meta["runner"]["next_stage"] == 2


def test_unknown_experiment_lists_the_known_ones(tmp_path, capsys):
    with pytest.raises(registry.UnknownExperimentError) as err:
        registry.parse_experiment({"experiment": "stdp-2", "seed": 1})
    msg = str(err.value)
    assert "experiment = 'stdp-2'" in msg and "metaplastic" in msg and "continual-stdp" in msg
    toml = tmp_path / "bad.toml"
    toml.write_text('experiment = "nope"\nout = "x.h5"\n')
    assert main(["run", str(toml), "--no-progress"]) == 2
    err_text = capsys.readouterr().err
    assert "experiment = 'nope'" in err_text and "metaplastic" in err_text and str(toml) in err_text
    with pytest.raises(ConfigError, match="no `experiment` key"):
        registry.parse_experiment({"seed": 1})


def test_file_without_the_key_but_with_metaplastic_tables_is_metaplastic_with_a_warning(tmp_path, caplog):
    data = small(tmp_path, "legacy")
    del data["experiment"]
    with caplog.at_level(logging.WARNING):
        cls, cfg = registry.parse_experiment(data)
    assert cls is MetaplasticExperiment and cfg.name == "legacy"
    assert "deprecated" in caplog.text


def test_unknown_keys_and_values_are_rejected_by_dotted_name(tmp_path):
    data = small(tmp_path, "x")
    data["learning"]["m_stare"] = 2
    with pytest.raises(ConfigError, match=r"unknown field learning\.m_stare"):
        registry.parse_experiment(data)
    data = small(tmp_path, "x")
    data["device"]["tolerance"] = 3
    with pytest.raises(ConfigError, match=r"device\.tolerance = 3 is not allowed; allowed: a number in \[0.001, 0.5\]"):
        registry.parse_experiment(data)
    paths = MetaplasticExperiment.schema_paths()
    assert {"seed", "learning.m_star", "device.tolerance", "tasks.epochs", "network.hidden"} <= set(paths)
    assert "learning" not in paths and "experiment" not in paths


def test_cli_run_and_resume(tmp_path, capsys, monkeypatch):
    toml = tmp_path / "run.toml"
    data = small(tmp_path, "cli")
    lines = [f'experiment = "metaplastic"', f'name = "cli"', "seed = 5", f'out = "{tmp_path / "ignored.h5"}"']
    for section in ("tasks", "dataset", "network", "learning", "device"):
        lines.append(f"[{section}]")
        for k, v in data[section].items():
            lines.append(f"{k} = {v!r}".replace("'", '"'))
    toml.write_text("\n".join(lines) + "\n")
    out = tmp_path / "cli.h5"
    assert main(["run", str(toml), "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert f"run file: {out} (complete, 4 stages)" in text and "epoch  3 (task 1)" in text
    assert (tmp_path / "cli_fig2_accuracy.png").is_file()
    assert not (tmp_path / "ignored.h5").exists()
    before = out.read_bytes()
    assert main(["run", "--resume", str(out), "--no-progress", "--no-figures"]) == 2  # nothing left to do
    assert "is complete" in capsys.readouterr().err
    assert out.read_bytes() == before
    opened = []
    monkeypatch.setattr(MetaplasticExperiment, "__init__", lambda self, *a, **k: opened.append(1))
    with pytest.raises(RunFinishedError):
        runner.resume(out, progress=False)
    assert not opened  # refused before the data were loaded or an array opened


# ---------------------------------------------------------------------- the contract on a toy
@dataclass(frozen=True)
class ToyInner:
    gain: float = 1.0


@dataclass(frozen=True)
class ToyConfig:
    name: str = "toy"
    seed: int = 0
    out: str = "toy.h5"
    overwrite: bool = False
    n_stages: int = 3
    inner: ToyInner = field(default_factory=ToyInner)

    def to_dict(self) -> dict:
        return asdict(self)


class ToyExperiment(runner.Experiment):
    """A random walk on a small simulated array: one SET pulse per stage on a random cell."""

    name = "toy-test"
    config_type = ToyConfig

    @classmethod
    def parse_config(cls, data, base_dir=None):
        cfg = build(ToyConfig, data)
        check_number("inner.gain", cfg.inner.gain, 0, 10)
        check_number("n_stages", cfg.n_stages, 1, 100, integer=True)
        return cfg

    def __init__(self, cfg, *, arrays=None):
        self.cfg = cfg
        self.array = (arrays or {}).get("a") or SimArray((4, 4), "hfo2", seed=cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.walk = np.zeros(0)

    def arrays(self):
        return {"a": self.array}

    def stages(self):
        return [f"step {k}" for k in range(self.cfg.n_stages)]

    def stage_work(self, i):
        return 2

    def run_stage(self, i, ctx):
        self.walk = np.append(self.walk, self.rng.normal() * self.cfg.inner.gain)
        mask = np.zeros((4, 4), bool)
        mask[self.rng.integers(4), self.rng.integers(4)] = True
        self.array.form(mask)
        ctx.metric("walk", float(self.walk.sum()), step=10 * (i + 1))
        ctx.advance(2)

    def state(self):
        a, m = self.array.get_state()
        return {"walk/values": self.walk, **{f"array/{k}": v for k, v in a.items()}}, {
            "rng": self.rng.bit_generator.state, "array": m}

    def load_state(self, arrays, meta):
        self.walk = np.array(arrays["walk/values"])
        self.rng.bit_generator.state = meta["rng"]
        self.array.set_state({k[6:]: v for k, v in arrays.items() if k.startswith("array/")}, meta["array"])

    def summary(self):
        return {"walk": float(self.walk.sum())}


@pytest.fixture
def toy():
    registry.register(ToyExperiment)
    yield ToyExperiment
    registry._registered.pop(ToyExperiment.name, None)


def test_toy_experiment_contract(tmp_path, toy):
    cls, cfg = registry.parse_experiment({"experiment": "toy-test", "out": str(tmp_path / "t.h5"), "inner": {"gain": 2.0}})
    assert cls is toy and cfg.inner.gain == 2.0
    assert toy.schema_paths() == ["name", "seed", "out", "overwrite", "n_stages", "inner.gain"]
    with pytest.raises(ConfigError, match=r"unknown field inner\.gian"):
        registry.parse_experiment({"experiment": "toy-test", "inner": {"gian": 1}})
    whole = runner.start(cls, cfg, progress=False)
    part = runner.start(cls, cfg, out=tmp_path / "p.h5", progress=False, stop_after=1)
    resumed = runner.resume(part.path, progress=False)
    assert resumed.summary == whole.summary and whole.summary["walk"] != 0
    with open_run(whole.path) as r:
        assert r.config["experiment"] == "toy-test" and r.metric("walk")["step"].tolist() == [10, 20, 30]
        assert r.metric("final.walk")["step"].tolist() == [30]
    assert_same_run(whole.path, resumed.path)
    again = ToyExperiment(cfg)
    with pytest.raises(StoreError, match="exists"):
        runner.start(cls, cfg, progress=False, arrays={"a": again.array})  # the file exists, overwrite is false
    with pytest.raises(RuntimeError, match="closed"):
        again.array.read(None)  # closed although the run never started
    with pytest.raises(RuntimeError, match="closed"):
        whole.experiment.array.read(None)


def test_every_stage_logs_how_long_it_took(tmp_path, toy, caplog):
    cls, cfg = registry.parse_experiment({"experiment": "toy-test", "out": str(tmp_path / "t.h5"), "n_stages": 2})
    with caplog.at_level(logging.INFO, logger="hil.experiments.runner"):
        runner.start(cls, cfg, progress=False)
    done = [r.getMessage() for r in caplog.records if "done in" in r.getMessage()]
    assert [m.split(": stage ")[1].split(" done")[0] for m in done] == ["step 0", "step 1"]
