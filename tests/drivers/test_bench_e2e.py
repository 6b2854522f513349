"""End to end: BenchArray over real transports (pyvisa-py TCP socket + pyserial pty) to the
simulated bench server, against SimArray; and the other SMU/router combinations in-process."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from drivers.bench import BenchArray, load_bench
from drivers.sim.server import SimServer, build_sim_bench, resources_overrides
from drivers.sim_array import SimArray
from hil.program import program_verify

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SERVER = {"sim": {"smu_port": 0, "router_port": 0, "pty_link": ""}}
# These tests check the protocol path (bit-identical to SimArray, reads equal to the model,
# convergence), not the device: they run on the benign HfO2 physics, whose read noise is small
# enough for the 5 % comparisons below. The harsh "hfo2" preset is checked in
# tests/hil/test_verify_spread.py.
BENIGN = {"sim": {"physics": "hfo2-benign"}}


def _targets(technology, shape, seed=3):
    return technology.level_targets(8)[np.random.default_rng(seed).integers(0, 8, shape)]


def test_bench_over_pyvisa_py_matches_simarray():
    """BenchArray (B2900 over pyvisa-py ``TCPIP::127.0.0.1::<port>::SOCKET`` + array board over
    pyserial on a pty) program-and-verifies an 8x8 HfO2 array; so does ``SimArray`` with the
    same seed (0) and technology.

    "Matches" means: the sim server's physics is seeded like SimArray's and receives the same
    vectorised physics calls in the same order (one per masked operation), so
      * the per-cell pulse counts are identical (exact integer equality),
      * the converged and success maps are identical,
      * final and verify conductances agree within a relative 1e-9 (they differ only by the
        instrument's %.6e number formatting of gate voltages, ~1e-16 here, and the
        current = G * V_read -> G = I / V_read round trip),
      * the bench time agrees within a relative 1e-12 (same timing model, same arithmetic).
    """
    cfg = load_bench(EXAMPLES / "bench-sim.toml", {"sim": {**SERVER["sim"], **BENIGN["sim"]}})
    with SimServer(cfg) as server:
        assert server.resources["smu"].startswith("TCPIP::127.0.0.1::")
        bench_cfg = load_bench(EXAMPLES / "bench-sim.toml", resources_overrides(server.resources))
        with BenchArray.from_config(bench_cfg) as bench:
            assert bench.identity()["smu"].startswith("Keysight Technologies,B2902A")
            targets = _targets(bench.technology, bench.shape)
            bench.form()
            rb = program_verify(bench, targets, tolerance=0.05)
        # close() read the output state back: one more round trip, counted on both sides
        smu_trips, board_trips = bench.smu.transport.traffic.queries, bench.router.transport.traffic.queries
        assert server.sims.smu.counters.replies == smu_trips  # every round trip reached the simulator
    sim = SimArray((8, 8), "hfo2-benign", seed=0, technology=bench_cfg.technology)  # same (>= 50 us) pulse widths
    sim.form()
    rs = program_verify(sim, targets, tolerance=0.05)
    np.testing.assert_array_equal(rb.pulses, rs.pulses)
    np.testing.assert_array_equal(rb.converged, rs.converged)
    np.testing.assert_array_equal(rb.success, rs.success)
    np.testing.assert_allclose(rb.g_final, rs.g_final, rtol=1e-9)
    np.testing.assert_allclose(rb.g_verify, rs.g_verify, rtol=1e-9)
    assert rb.bench_time == pytest.approx(rs.bench_time, rel=1e-12)
    assert rb.yield_ > 0.9
    # Round trips: the batch is the whole active set, so an iteration costs at most 2 (board
    # LOAD + SMU fetch) plus 3 when a RESET-and-retry re-routes (LOAD, *OPC?, LOAD).
    assert smu_trips + board_trips <= 5 * rb.iterations + 20


def test_pulse_verify_iteration_costs_two_round_trips():
    cfg = load_bench(EXAMPLES / "bench-sim.toml")
    sims = build_sim_bench(cfg)
    with BenchArray.from_config(cfg, sims.transports()) as bench:
        bench.form()
        mask = np.zeros(bench.shape, bool)
        mask[2:6, 1:7] = True
        bench.read(mask)
        for new_list in (True, False):
            if new_list:
                mask[2, 1] = False  # the active set shrank: the board list must be re-loaded
            before = sims.smu.counters.replies + sims.router.counters.replies
            bench.set_pulse(mask, v_gate=1.0)
            bench.read(mask)
            spent = sims.smu.counters.replies + sims.router.counters.replies - before
            assert spent == (2 if new_list else 1)


@pytest.mark.parametrize("smu,router", [("b2900", "switch_matrix"), ("b1500", "array_board"), ("b1500", "switch_matrix")])
def test_other_combinations_program_in_process(smu, router):
    """The per-cell path: results are physically right (read = model conductance within read
    noise) and program-and-verify converges; no exact match is claimed (per-cell physics calls
    draw the model's random numbers in another order than SimArray's masked calls)."""
    cfg = load_bench(EXAMPLES / "bench-sim.toml", {
        "bench": {"shape": [3, 3], "operating": {"width_set": 1e-3, "width_reset": 1e-3, "width_form": 1e-3}},
        "smu": {"model": smu, "gate_channel": 2},
        "router": {"model": router, "resource": "sim"},
        "limits": {"max_width": 2e-3}, **BENIGN,
    })
    sims = build_sim_bench(cfg)
    with BenchArray.from_config(cfg, sims.transports()) as bench:
        bench.form()
        g = bench.read()
        truth = sims.bench.physics.conductance().reshape(bench.shape)
        np.testing.assert_allclose(g, truth, rtol=0.05, atol=1e-8)
        rep = program_verify(bench, _targets(bench.technology, bench.shape, seed=5), max_pulses=60)
        assert rep.yield_ >= 0.7
        finite = np.isfinite(rep.g_final)
        truth = sims.bench.physics.conductance().reshape(bench.shape)
        np.testing.assert_allclose(rep.g_final[finite], truth[finite], rtol=0.05)


def test_board_dac_gate_path():
    """Gate from the board's DAC (16-bit codes), SMU channel 2 unused."""
    cfg = load_bench(EXAMPLES / "bench-sim.toml", {"smu": {"gate_channel": 0}, "bench": {"shape": [4, 4]}, **BENIGN})
    sims = build_sim_bench(cfg)
    with BenchArray.from_config(cfg, sims.transports()) as bench:
        assert bench.router.status()["gate_source"] == "DAC"
        bench.form()
        rep = program_verify(bench, _targets(bench.technology, bench.shape))
        assert rep.yield_ >= 0.9
        np.testing.assert_allclose(rep.g_final, sims.bench.physics.conductance().reshape(4, 4), rtol=0.05)


def test_close_leaves_everything_off():
    cfg = load_bench(EXAMPLES / "bench-sim.toml")
    sims = build_sim_bench(cfg)
    bench = BenchArray.from_config(cfg, sims.transports())
    bench.form()
    with pytest.raises(ZeroDivisionError):
        with bench:
            1 / 0
    assert not sims.smu.ch[1].output and not sims.smu.ch[2].output
    assert sims.smu.ch[1].level == 0.0
    assert (sims.router.wl, sims.router.bl, sims.router.armed) == (-1, -1, 0)


def test_wait_sleeps_on_a_real_bench_and_only_ticks_on_a_simulated_one():
    for mode, seconds in (("clock", 100.0), ("sleep", 0.05)):
        cfg = load_bench(EXAMPLES / "bench-sim.toml", {"bench": {"wait": mode}})
        sims = build_sim_bench(cfg)
        with BenchArray.from_config(cfg, sims.transports()) as bench:
            t0, b0 = time.monotonic(), bench.bench_time
            bench.wait(seconds)
            elapsed = time.monotonic() - t0
            assert bench.bench_time - b0 == pytest.approx(seconds)
            assert (elapsed >= seconds) if mode == "sleep" else (elapsed < 1.0)


def test_a_failure_mid_operation_switches_the_smu_outputs_off():
    cfg = load_bench(EXAMPLES / "bench-sim.toml")
    sims = build_sim_bench(cfg)
    bench = BenchArray.from_config(cfg, sims.transports())
    bench.form()
    assert sims.smu.ch[1].output and sims.smu.ch[2].output
    sims.router.faults.p_timeout = 1.0  # the board stops answering
    mask = np.zeros(bench.shape, bool)
    mask[0, :3] = True
    with pytest.raises(Exception, match="no complete reply"):
        bench.set_pulse(mask, v_gate=1.0)
    assert not sims.smu.ch[1].output and not sims.smu.ch[2].output
    sims.router.faults.p_timeout = 0.0
    bench.close()


@pytest.mark.parametrize("smu,router", [("b1500", "switch_matrix"), ("b1500", "array_board"), ("b2900", "switch_matrix")])
def test_per_cell_pulse_and_verify_costs_two_round_trips_per_cell(smu, router):
    """Issue 10: the B1500 cost 6 round trips per cell (route, XE, ERRX?, route, TI, ERRX?); now a
    pulse waits for its cell's verify read and both go in one message that ends in the error
    check: route + 1 = 2 per cell (target: <= 3)."""
    cfg = load_bench(EXAMPLES / "bench-sim.toml", {
        "bench": {"shape": [3, 3], "operating": {"width_set": 1e-3, "width_reset": 1e-3, "width_form": 1e-3}},
        "smu": {"model": smu, "gate_channel": 2}, "router": {"model": router, "resource": "sim"},
        "limits": {"max_width": 2e-3},
    })
    sims = build_sim_bench(cfg)
    with BenchArray.from_config(cfg, sims.transports()) as bench:
        bench.form()
        bench.read()
        mask = np.ones(bench.shape, bool)
        mask[0, 0] = False
        before = sims.smu.counters.replies + sims.router.counters.replies
        bench.set_pulse(mask, v_gate=1.0)
        bench.read(mask)
        assert sims.smu.counters.replies + sims.router.counters.replies - before == 2 * mask.sum()
        if smu == "b1500":
            assert all(m.endswith("ERRX?") for m in _sent(bench.smu.transport)[-int(mask.sum()):])
        # a pulse no read takes is still fired (before the wait, here)
        n_set = sims.bench.physics.n_set.copy()
        bench.set_pulse(mask, v_gate=1.0)
        bench.wait(0.0)
        assert (sims.bench.physics.n_set - n_set)[mask.reshape(-1)].min() == 1


def _sent(transport):
    return [e.data.decode().strip() for e in transport.traffic.entries if e.direction == ">"]


def test_b1500_instrument_error_stops_the_run_with_outputs_off():
    cfg = load_bench(EXAMPLES / "bench-sim.toml", {
        "bench": {"shape": [3, 3], "operating": {"width_set": 1e-3, "width_reset": 1e-3, "width_form": 1e-3}},
        "smu": {"model": "b1500", "gate_channel": 2}, "router": {"model": "switch_matrix", "resource": "sim"},
        "limits": {"max_width": 2e-3},
    })
    sims = build_sim_bench(cfg)
    bench = BenchArray.from_config(cfg, sims.transports())
    sims.smu.faults.p_error = 0.2  # a fifth of the SMU's commands are refused (queued for ERRX?)
    sims.smu.faults.rng = np.random.default_rng(1)
    with pytest.raises(Exception, match="B1500 error buffer"):
        bench.read()
    assert _sent(bench.smu.transport)[-1] == "DZ;CL"  # outputs off right after the error
    sims.smu.faults.p_error = 0.0
    assert bench.smu.transport.query("*LRN? 0") == "CL"
    sims.smu.faults.p_error = 0.0
    bench.close()
