"""End to end over loopback: ``hil program --bench`` and ``hil read --bench`` against
``hil sim-server``'s instruments (pyvisa-py raw sockets), for the fast-pulse benches
(B1500 + B1525A SPGU + matrix; B2900 + 33522B + matrix) with 100 ns pulses, compared with a
SimArray of the same technology, seed and timing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from drivers.bench import load_bench
from drivers.oplog import OpKind
from drivers.sim.server import SimServer
from drivers.sim_array import SimArray
from hil.cli import main
from hil.program import program_verify
from hil.store import open_run

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EPHEMERAL = {"sim": {"smu_port": 0, "router_port": 0, "pulser_port": 0, "pty_link": ""}}


def _served_copy(example: Path, resources: dict[str, str], config, tmp_path: Path) -> Path:
    """The example bench file with its loopback ports replaced by the running server's."""
    text = example.read_text()
    ports = {"smu": config.sim.smu_port, "router": config.sim.router_port, "pulser": config.sim.pulser_port}
    for role, resource in resources.items():
        actual = re.search(r"::(\d+)::SOCKET", resource)
        if actual:
            text = text.replace(f"::{ports[role]}::SOCKET", f"::{actual.group(1)}::SOCKET")
    path = tmp_path / example.name
    path.write_text(text)
    return path


def _targets(technology, shape, seed):
    return technology.level_targets(8)[np.random.default_rng([seed, 0x7A46]).integers(0, 8, shape)]


@pytest.mark.parametrize("example", ["bench-b1500-spgu-matrix.toml", "bench-b2900-33500b-matrix.toml"])
def test_hil_program_and_read_on_a_fast_pulse_bench_over_loopback(example, tmp_path):
    """Tolerances (8x8 HfO2, 8 levels, IGVVA, +-5 %): the bench goes through the per-cell path
    (one physics call per cell) and SimArray through masked calls, so their random streams
    differ and no bit-exact match is claimed. Claimed: yield within 0.1 of SimArray's, mean
    pulses per cell within 25 %, bench time per pulse the same within 1 % (same timing
    model); every pulse on the wire is 100 ns wide; the final map matches the simulator's
    true conductances within read noise (5 %)."""
    cfg = load_bench(EXAMPLES / example, EPHEMERAL)
    with SimServer(cfg) as server:
        bench_file = _served_copy(EXAMPLES / example, server.resources, load_bench(EXAMPLES / example), tmp_path)
        out = tmp_path / "run.h5"
        assert main(["program", "--bench", str(bench_file), "--levels", "8", "--seed", "3", "--out", str(out)]) == 0
        truth = server.sims.bench.physics.conductance().reshape(cfg.shape)
        fired = server.sims.smu.spgu.pulses_fired if server.sims.pulser is None else server.sims.pulser.pulses_fired
        widths = {round(c.width, 12) for c in (server.sims.smu.spgu.ch.values() if server.sims.pulser is None else server.sims.pulser.ch.values()) if c.width}
        read_out = tmp_path / "map.h5"
        assert main(["read", "--bench", str(bench_file), "--cells", "0:4,0:8", "--out", str(read_out)]) == 0
    assert 1e-7 in widths
    with open_run(out) as r:
        config = r.config
        assert config["bench"]["pulser"]["model"] in ("b1525a", "33500b")
        assert config["bench"]["limits"]["min_width"] == 1e-8
        assert config["bench"]["technology"]["width_set"] == 1e-7
        assert "pulser" in r.instruments
        g_final, _ = r.snapshot("final")
        ops = r.ops
        summary = {n: float(r.metric(n)["value"][-1]) for n in ("yield", "mean_pulses", "bench_time_s")}
    assert fired == int(np.count_nonzero(ops["kind"] != int(OpKind.READ)))  # one wire pulse per logged pulse
    finite = np.isfinite(g_final)
    np.testing.assert_allclose(g_final[finite], truth[finite], rtol=0.05)
    sim = SimArray(cfg.shape, cfg.sim.physics, seed=cfg.sim.seed, technology=cfg.technology, limits=cfg.limits, timing=cfg.timing)
    sim.form()
    rs = program_verify(sim, _targets(sim.technology, cfg.shape, 3), tolerance=0.05)
    assert abs(summary["yield"] - rs.yield_) <= 0.1
    assert summary["mean_pulses"] == pytest.approx(rs.summary()["mean_pulses"], rel=0.25)
    with open_run(read_out) as r:
        g, _ = r.snapshot("read")
        assert r.config["bench"]["name"] == cfg.name
    assert np.isfinite(g[:4]).all() and np.isnan(g[4:]).all()
    assert (tmp_path / "map.png").stat().st_size > 0
    with h5py.File(read_out, "r") as f:
        assert json.loads(f.attrs["config"])["cells"] == [[0, 4], [0, 8]]


def test_hil_read_bench_sim_over_loopback(tmp_path):
    """``hil read --bench examples/bench-sim.toml`` (B2900 + array board on a pty) against the
    simulated bench server: the map equals the simulator's conductances within read noise."""
    cfg = load_bench(EXAMPLES / "bench-sim.toml", {"sim": {"smu_port": 0, "pty_link": str(tmp_path / "board")}})
    with SimServer(cfg) as server:
        text = (EXAMPLES / "bench-sim.toml").read_text()
        port = re.search(r"::(\d+)::SOCKET", server.resources["smu"]).group(1)
        text = text.replace("::5025::SOCKET", f"::{port}::SOCKET").replace("/tmp/hil-sim-array-board", str(tmp_path / "board"))
        bench_file = tmp_path / "bench.toml"
        bench_file.write_text(text)
        server.sims.bench.physics.formed[:] = True
        truth = server.sims.bench.physics.conductance().reshape(cfg.shape)
        out = tmp_path / "map.h5"
        assert main(["read", "--bench", str(bench_file), "--out", str(out)]) == 0
    with open_run(out) as r:
        g, _ = r.snapshot("read")
        assert r.attrs["backend"] == "bench"
        assert r.config["bench"]["smu"]["model"] == "b2900"
    np.testing.assert_allclose(g, truth, rtol=0.05, atol=1e-8)


def test_read_bench_refuses_options_of_the_simulated_path(tmp_path):
    assert main(["read", "--bench", str(EXAMPLES / "bench-sim.toml"), "--form", "--out", str(tmp_path / "x.h5")]) == 2
    assert not (tmp_path / "x.h5").exists()


def test_hil_sim_server_serves_the_generator_bench(tmp_path):
    """The ``hil sim-server`` command serves the SMU, the matrix and the 33522B on loopback."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from drivers.transport import VisaTransport

    root = Path(__file__).resolve().parents[2]
    state = tmp_path / "state.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hil", "sim-server", "--bench", str(EXAMPLES / "bench-b2900-33500b-matrix.toml"),
         "--smu-port", "0", "--router-port", "0", "--pulser-port", "0", "--state-file", str(state), "--duration", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(root)}, cwd=root, text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not state.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        resources = json.loads(state.read_text())
        t = VisaTransport(resources["pulser"], backend="@py", timeout=2.0)
        assert t.query("*IDN?").split(",")[1] == "33522B"
        t.close()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    assert proc.returncode == 0 and "pulser (33500b): TCPIP::127.0.0.1::" in out
