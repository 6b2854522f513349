"""Faults: with injected timeouts, garbled replies and instrument errors, program-and-verify
either completes with exactly the fault-free result or stops with a clear error. Never
silently wrong data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drivers.bench import BenchArray, load_bench
from drivers.errors import HilError, InstrumentError
from drivers.sim.instruments.base import Faults
from drivers.sim.server import SimServer, build_sim_bench, resources_overrides
from drivers.sim_array import SimArray
from hil.program import program_verify

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def reference():
    cfg = load_bench(EXAMPLES / "bench-sim.toml")
    sim = SimArray(cfg.shape, "hfo2", seed=0, technology=cfg.technology)
    targets = cfg.technology.level_targets(8)[np.random.default_rng(3).integers(0, 8, cfg.shape)]
    sim.form()
    return targets, program_verify(sim, targets)


def _run(cfg, transports, targets):
    with BenchArray.from_config(cfg, transports) as bench:
        bench.form()
        return program_verify(bench, targets), bench


def _assert_same(report, ref):
    np.testing.assert_array_equal(report.pulses, ref.pulses)
    np.testing.assert_array_equal(report.success, ref.success)
    np.testing.assert_allclose(report.g_final, ref.g_final, rtol=1e-9)


def test_timeouts_and_garbles_complete_exactly_or_stop_clearly(reference):
    """3 % dropped and 3 % garbled replies on both instruments, 8 fault seeds, in-process."""
    targets, ref = reference
    cfg = load_bench(EXAMPLES / "bench-sim.toml")
    completed = stopped = 0
    retries = 0
    for seed in range(8):
        sims = build_sim_bench(cfg, Faults(p_timeout=0.03, p_garble=0.03, seed=100 + seed))
        try:
            report, bench = _run(cfg, sims.transports(), targets)
        except HilError as exc:  # InstrumentError, ProtocolError, TransportTimeout
            assert str(exc)
            stopped += 1
            continue
        _assert_same(report, ref)
        completed += 1
        retries += bench.smu.transport.traffic.retries + bench.router.transport.traffic.retries
        assert sims.smu.counters.timeouts + sims.smu.counters.garbles > 0
    assert completed >= 4  # the retries make most runs complete
    assert retries > 0


def test_instrument_errors_never_pass_silently(reference):
    """1 % of SMU commands fail with an error-queue entry (the command is not executed)."""
    targets, ref = reference
    cfg = load_bench(EXAMPLES / "bench-sim.toml")
    outcomes = []
    for seed in range(4):
        sims = build_sim_bench(cfg, Faults(p_error=0.01, seed=200 + seed))
        sims.router.faults = Faults()  # errors on the SMU only
        try:
            report, _ = _run(cfg, sims.transports(), targets)
        except InstrumentError as exc:
            assert "error queue" in str(exc) or "B2900" in str(exc)
            outcomes.append("stopped")
            continue
        assert sims.smu.counters.errors == 0  # completing is only allowed when no error was injected
        _assert_same(report, ref)
        outcomes.append("completed")
    assert "stopped" in outcomes


def test_faults_over_pyvisa_py_and_pty(reference):
    """The same over the real transports (short timeouts so dropped replies cost little)."""
    targets, ref = reference
    cfg = load_bench(EXAMPLES / "bench-sim.toml", {"sim": {"smu_port": 0, "pty_link": ""}})
    with SimServer(cfg, faults=Faults(p_timeout=0.02, p_garble=0.03, seed=7)) as server:
        over = resources_overrides(server.resources)
        over["smu"]["timeout"] = 0.3
        over["router"]["timeout"] = 0.3
        bench_cfg = load_bench(EXAMPLES / "bench-sim.toml", over)
        try:
            report, bench = _run(bench_cfg, None, targets)
        except HilError as exc:
            assert str(exc)
            return
        injected = server.sims.smu.counters.timeouts + server.sims.smu.counters.garbles + server.sims.router.counters.garbles
    assert injected > 0
    _assert_same(report, ref)
