"""`hil sim-server` and `hil program --bench`: the two-shell workflow, on loopback only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

from drivers.bench import load_bench
from drivers.sim.server import SimServer
from drivers.transport import SerialTransport, VisaTransport
from hil.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "bench-sim.toml"


def _bench_file(tmp_path, port=0, link=None, physics="hfo2"):
    """A copy of the example bench file on an ephemeral port and a private pty symlink."""
    link = link or str(tmp_path / "board")
    text = EXAMPLE.read_text().replace("smu_port = 5025", f"smu_port = {port}")
    text = text.replace('physics = "hfo2"', f'physics = "{physics}"')
    text = text.replace('pty_link = "/tmp/hil-sim-array-board"', f'pty_link = "{link}"')
    text = text.replace('resource = "/tmp/hil-sim-array-board"', f'resource = "{link}"')
    p = tmp_path / "bench.toml"
    p.write_text(text)
    return p, link


def test_server_binds_loopback_and_cleans_up(tmp_path):
    path, link = _bench_file(tmp_path)
    cfg = load_bench(path)
    server = SimServer(cfg)
    res = server.start()
    try:
        host, port = res["smu"].split("::")[1:3]
        assert host == "127.0.0.1" and int(port) > 0
        assert res["router"] == link and os.path.islink(link)
        t = VisaTransport(res["smu"], backend="@py", timeout=2.0)
        assert t.query("*IDN?").startswith("Keysight Technologies,B2902A")
        t.close()
        s = SerialTransport(link, timeout=2.0)
        assert s.query("IDN?*3139").startswith("OK IDN")
        s.close()
    finally:
        server.stop()
    assert not os.path.lexists(link)
    assert all(not t.is_alive() for t in server._threads)


def test_cli_program_against_a_running_server(tmp_path):
    # benign physics: the comparison below is of the protocol path; on the harsh "hfo2" preset
    # the slightly different kinetics of 50 us vs 1 us pulses send the noisy verify decisions
    # down different paths, so the two runs no longer agree cell for cell
    path, link = _bench_file(tmp_path, physics="hfo2-benign")
    with SimServer(load_bench(path)) as server:
        port = server.resources["smu"].split("::")[2]
        text = path.read_text().replace("TCPIP::127.0.0.1::5025::SOCKET", f"TCPIP::127.0.0.1::{port}::SOCKET")
        path.write_text(text)
        out = tmp_path / "run.h5"
        assert main(["program", "--bench", str(path), "--levels", "8", "--out", str(out)]) == 0
    sim_out = tmp_path / "sim.h5"
    assert main(["program", "--sim", "hfo2-benign", "--shape", "8x8", "--levels", "8", "--out", str(sim_out)]) == 0
    with h5py.File(out, "r") as fb, h5py.File(sim_out, "r") as fs:
        assert fb.attrs["backend"] == "bench"
        # The bench pulses are 50 us wide (the B2900's minimum), `--sim` uses the preset's 1 us:
        # the switching kinetics of one pulse differ slightly (< 1e-3 relative here).
        np.testing.assert_allclose(fb["snapshots/final/g"][()], fs["snapshots/final/g"][()], rtol=1e-3)
        assert len(fb["ops"]) == len(fs["ops"])


def test_cli_reports_a_bad_bench_file_without_traceback(tmp_path, capsys):
    p = tmp_path / "bench.toml"
    p.write_text(EXAMPLE.read_text().replace("max_v_gate = 3.0", "max_v_gate = 30.0"))
    assert main(["program", "--bench", str(p), "--levels", "8", "--out", str(tmp_path / "r.h5")]) == 2
    err = capsys.readouterr().err
    assert "limits.max_v_gate = 30.0" in err and "Traceback" not in err
    assert not (tmp_path / "r.h5").exists()


def test_cli_reports_an_absent_instrument(tmp_path, capsys):
    path, _ = _bench_file(tmp_path)
    text = path.read_text().replace("timeout = 5.0", "timeout = 0.5")
    path.write_text(text.replace("TCPIP::127.0.0.1::5025::SOCKET", "TCPIP::127.0.0.1::9::SOCKET"))
    assert main(["program", "--bench", str(path), "--levels", "8", "--out", str(tmp_path / "r.h5")]) == 2
    err = capsys.readouterr().err
    assert "cannot open" in err and "Traceback" not in err


def test_sim_server_subcommand_runs_and_stops_on_sigterm(tmp_path):
    path, link = _bench_file(tmp_path)
    state = tmp_path / "state.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hil", "sim-server", "--bench", str(path), "--state-file", str(state), "--duration", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT, text=True,
    )
    try:
        header = proc.stdout.readline()
        assert "hil sim-server" in header, proc.stderr.read() if proc.poll() is not None else header
        deadline = time.monotonic() + 20
        while not state.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        resources = json.loads(state.read_text())
        t = VisaTransport(resources["smu"], backend="@py", timeout=2.0)
        assert t.query("*OPC?") == "1"
        t.close()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    assert proc.returncode == 0
    assert "stopped" in err
    assert not state.exists() and not os.path.lexists(link)
