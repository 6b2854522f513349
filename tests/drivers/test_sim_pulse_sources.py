"""Simulated SPGU and 33522B enforce their manuals on their own (error-queue entries, nothing
changes), reply in the documented formats, and act on the physics of the routed cell."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drivers.bench import load_bench
from drivers.sim.server import build_sim_bench

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _b1500():
    sims = build_sim_bench(load_bench(EXAMPLES / "bench-b1500-spgu-matrix.toml"))
    return sims, sims.smu


def ask(sim, message: str) -> str:
    return sim.handle(message.encode() + b"\r\n").decode().rstrip("\r\n")


def errors(sim) -> list[int]:
    out = []
    while (reply := ask(sim, "ERRX?")) != '0,"No Error."':
        out.append(int(reply.split(",")[0]))
    return out


def test_spgu_reports_in_unt_and_answers_spst():
    _, b = _b1500()
    assert ask(b, "UNT?").split(";")[4] == "B1525A,0"
    assert ask(b, "SPST?") == "0"


@pytest.mark.parametrize("command", [
    "SPPER 1E-9", "SPPER 11", "SPT 501,1,0,5E-9,1E-8,1E-8", "SPT 501,1,0,1E-7,1E-9,1E-8",
    "SPV 501,1,0,45", "SPM 501,7", "SPRM 1,0", "SPRM 1,2.5", "SER 501,0", "SPT 501,1,0,abc,1E-8,1E-8",
    "SPV 502,1,0,1",  # channel 502 not connected
])
def test_spgu_rejects_illegal_values_with_an_error_and_keeps_its_setup(command):
    _, b = _b1500()
    assert ask(b, "CN 501;SIM 0;SPM 501,1;SPRM 1,1;SER 501,1E6;SPPER 1E-6") == ""
    before = (b.spgu.period, dict(vars(b.spgu.ch[501])), b.spgu.repeat)
    ask(b, command)
    assert errors(b) in ([120], [150])
    assert (b.spgu.period, dict(vars(b.spgu.ch[501])), b.spgu.repeat) == before


def test_spgu_open_load_allows_40v_but_50ohm_only_20v():
    _, b = _b1500()
    ask(b, "CN 501;SER 501,1E6;SPV 501,1,0,30")
    assert errors(b) == []
    ask(b, "SER 501,50;SPV 501,1,0,30")
    assert errors(b) == [120]


def test_spgu_needs_spupd_and_a_pulse_setup_before_srp():
    sims, b = _b1500()
    ask(b, "CN 501;SIM 0;SPM 501,1;SPRM 1,1;SER 501,1E6;SPPER 2.4E-7;SPT 501,1,0,1E-7,1E-8,1E-8;SPV 501,1,0,-2")
    ask(b, "SRP")  # no SPUPD yet: the output has no pulse to make
    assert errors(b) == [150] and b.spgu.pulses_fired == 0
    ask(b, "SPUPD 501")
    points = sims.bench.points
    assert ask(b, "SRP;SPST?") == "0"
    assert b.spgu.pulses_fired == 1 and sims.bench.points == points + 1


def test_spgu_pulse_reaches_the_routed_cell_as_bitline_minus_source_line():
    """A -2 V source-line pulse with the bit line at 0 V and the gate at 1.2 V SETs the routed
    cell (and only it), like a +2 V SET with the same gate."""
    sims, b = _b1500()
    from drivers.instruments.switch_matrix import MatrixWiring

    r = load_bench(EXAMPLES / "bench-b1500-spgu-matrix.toml").router
    w = MatrixWiring(r.card, r.bitline_port, r.gate_port, r.ground_port, r.bitline_first, r.wordline_first, r.sourceline_first)
    sims.router.handle(f":ROUT:CLOS (@{','.join(w.cell_channels(2, 3))})\n".encode())
    physics = sims.bench.physics
    physics.formed[:] = True
    g0, n0 = physics.conductance().copy(), physics.n_set.copy()
    ask(b, "CN 1,2;DV 1,0,0,1E-3;DV 2,0,1.2,1E-3")
    ask(b, "CN 501;SIM 0;SPM 501,1;SPRM 1,1;SER 501,1E6;SPPER 2.4E-6;SPT 501,1,0,1E-6,1E-8,1E-8;SPV 501,1,0,-2;SPUPD 501;SRP")
    assert errors(b) == []
    cell = 2 * physics.shape[1] + 3
    assert np.flatnonzero(physics.n_set != n0).tolist() == [cell]  # a SET event, on that cell only
    assert physics.conductance()[cell] > g0[cell]


def _awg():
    sims = build_sim_bench(load_bench(EXAMPLES / "bench-b2900-33500b-matrix.toml"))
    return sims, sims.pulser


def scpi(sim, message: str) -> str:
    return sim.handle(message.encode() + b"\n").decode().rstrip("\n")


@pytest.mark.parametrize("command,code", [
    ("PULS:WIDT 1E-8", -222), ("PULS:TRAN:LEAD 5E-9", -222), ("PULS:TRAN:TRA 2E-6", -222),
    ("VOLT:HIGH 6", -222), ("VOLT:LOW 0.1", -221), ("PULS:PER 1E-4", -221), ("BURS:NCYC 2.5", -222),
    ("OUTP:LOAD 0", -222), ("PULS:WIDT abc", -104), ("FUNC TRIANGLEX", -224), ("*TRG", -211),
])
def test_generator_rejects_illegal_values_and_keeps_its_settings(command, code):
    _, g = _awg()
    g.reset()
    scpi(g, "*CLS")
    before = dict(vars(g.ch[1]))
    scpi(g, command)
    assert scpi(g, "SYST:ERR?").startswith(f"{code:+d},")
    assert scpi(g, "SYST:ERR?") == '+0,"No error"'
    assert dict(vars(g.ch[1])) == before


def test_generator_high_z_load_doubles_the_level_range():
    _, g = _awg()
    g.reset()
    scpi(g, "OUTP1:LOAD INF;SOUR1:VOLT:HIGH 8")
    assert scpi(g, "SYST:ERR?") == '+0,"No error"' and g.ch[1].high == 8.0


def test_generator_fires_only_when_armed_and_inverted_polarity_pulses_to_low():
    sims, g = _awg()
    g.reset()
    scpi(g, "TRIG1:SOUR BUS;SOUR1:FUNC PULS;SOUR1:BURS:MODE TRIG;SOUR1:BURS:NCYC 1;OUTP1:LOAD INF")
    scpi(g, "*TRG")  # burst off, output off: nothing happens
    assert g.pulses_fired == 0
    scpi(g, "SOUR1:BURS:STAT ON;OUTP1 ON;OUTP1:POL INV;SOUR1:VOLT:HIGH 0;SOUR1:VOLT:LOW -2;SOUR1:PULS:WIDT 1E-7;SOUR1:PULS:PER 2.4E-7")
    assert scpi(g, "SYST:ERR?") == '+0,"No error"'
    seen = []
    sims.bench.pulse_points = lambda v, gates, width, comp: seen.append((float(v[0]), width))  # type: ignore[method-assign]
    assert scpi(g, "*TRG;*OPC?") == "1"
    assert seen == [(2.0, 1e-7)]  # bit line 0 V minus a -2 V source-line pulse


@pytest.mark.parametrize("example", ["bench-b1500-spgu-matrix.toml", "bench-b2900-33500b-matrix.toml"])
def test_bench_close_leaves_the_pulse_source_and_the_smu_off(example):
    from drivers.bench import BenchArray

    cfg = load_bench(EXAMPLES / example, {"bench": {"shape": [2, 2]}})
    sims = build_sim_bench(cfg)
    with BenchArray.from_config(cfg, sims.transports()) as bench:
        bench.form()
        bench.reset_pulse(None)
    if sims.pulser is None:
        assert not any(c.connected for c in sims.smu.spgu.ch.values()) and not sims.smu.spgu.active
        assert not any(c.enabled for c in sims.smu.ch.values())
    else:
        assert not sims.pulser.ch[1].output
        assert not sims.smu.ch[1].output and not sims.smu.ch[2].output


def test_a_pulse_source_failure_mid_batch_switches_everything_off():
    from drivers.bench import BenchArray

    cfg = load_bench(EXAMPLES / "bench-b2900-33500b-matrix.toml", {"bench": {"shape": [2, 2]}})
    sims = build_sim_bench(cfg)
    bench = BenchArray.from_config(cfg, sims.transports())
    bench.form()
    assert sims.pulser.ch[1].output and sims.smu.ch[2].output
    sims.pulser.faults.p_timeout = 1.0  # the generator stops answering
    with pytest.raises(Exception, match="no complete reply"):
        bench.set_pulse(None, v_gate=1.0)
    assert not sims.pulser.ch[1].output  # OUTP1 OFF is a write: it still arrives
    assert not sims.smu.ch[1].output and not sims.smu.ch[2].output
    sims.pulser.faults.p_timeout = 0.0
    bench.close()


def test_an_instrument_error_in_the_batch_error_check_stops_the_run_with_outputs_off():
    from drivers.bench import BenchArray
    from drivers.errors import InstrumentError

    cfg = load_bench(EXAMPLES / "bench-b1500-spgu-matrix.toml", {"bench": {"shape": [2, 2]}})
    sims = build_sim_bench(cfg)
    bench = BenchArray.from_config(cfg, sims.transports())
    bench.form()
    sims.smu.errors.append((150, '"Command not allowed in this state"'))  # an error the pulse itself did not report
    with pytest.raises(InstrumentError, match="150"):
        bench.set_pulse(None, v_gate=1.0)
    assert not any(c.connected for c in sims.smu.spgu.ch.values())
    bench.close()


def test_a_refused_smu_gate_setting_stops_the_generator_batch():
    """The B2900's queue is read once per pulse batch: an error there stops the run, outputs off."""
    from drivers.bench import BenchArray
    from drivers.errors import InstrumentError

    cfg = load_bench(EXAMPLES / "bench-b2900-33500b-matrix.toml", {"bench": {"shape": [2, 2]}})
    sims = build_sim_bench(cfg)
    bench = BenchArray.from_config(cfg, sims.transports())
    bench.form()
    sims.smu.push_error(-222, '"Data out of range"')
    with pytest.raises(InstrumentError, match="-222"):
        bench.set_pulse(None, v_gate=1.0)
    assert not sims.pulser.ch[1].output and not sims.smu.ch[1].output
    bench.close()


@pytest.mark.parametrize("gate_channel", [2, 0])
def test_generator_with_the_array_board_as_router(gate_channel):
    """The pulse source on the board's source-line ground: the board's SEL routes each pulse
    (gate from the SMU, or from the board's DAC), reads go through the B2900 list path."""
    from drivers.bench import BenchArray
    from hil.program import program_verify

    over = {"bench": {"shape": [3, 3]}, "router": {"model": "array_board", "resource": "sim", "ground_port": 3},
            "smu": {"gate_channel": gate_channel},
            # the routing path is under test, not the device: the benign physics' small read
            # noise allows the 5 % comparison of the verify reads with the true conductances
            "sim": {"physics": "hfo2-benign"}}
    data_path = EXAMPLES / "bench-b2900-33500b-matrix.toml"
    cfg = load_bench(data_path, over)
    sims = build_sim_bench(cfg)
    with BenchArray.from_config(cfg, sims.transports()) as bench:
        bench.form()
        targets = bench.technology.level_targets(8)[np.random.default_rng(5).integers(0, 8, (3, 3))]
        rep = program_verify(bench, targets, max_pulses=100)
        assert sims.pulser.pulses_fired == int(rep.pulses.sum()) + 9  # + the forming pulses
        truth = sims.bench.physics.conductance().reshape(3, 3)
        finite = np.isfinite(rep.g_final)
        np.testing.assert_allclose(rep.g_final[finite], truth[finite], rtol=0.05)
        assert rep.yield_ >= 0.7


def test_generator_pulse_waits_for_the_smu_gate():
    """The 33500B is on its own link: a gate level written to the B2900 may still be queued
    when ``*TRG`` reaches the generator (on the served bench this race made every pulse meet the
    previous cell's gate now and then). Every ``*TRG`` must follow an SMU message that the SMU
    confirmed (``*OPC?``) after setting the levels of that pulse."""
    from drivers.bench import BenchArray

    cfg = load_bench(EXAMPLES / "bench-b2900-33500b-matrix.toml", {"bench": {"shape": [2, 2]}})
    sims = build_sim_bench(cfg)
    transports = sims.transports()
    sent: list[tuple[str, str]] = []
    for role, t in transports.items():
        def spy(data: bytes, _send=t._send, _role=role) -> None:
            sent.append((_role, data.decode(errors="replace")))
            _send(data)
        t._send = spy
    with BenchArray.from_config(cfg, transports) as bench:
        bench.form()
        sent.clear()
        bench.set_pulse(None, v_gate=np.array([0.9, 1.0, 1.1, 1.2]))
    triggers = [i for i, (role, text) in enumerate(sent) if role == "pulser" and "*TRG" in text]
    assert len(triggers) == 4
    for i in triggers:
        last_smu = next(text for role, text in reversed(sent[:i]) if role == "smu")
        assert ":VOLT" in last_smu and "*OPC?" in last_smu, last_smu
