"""Simulated instruments: they speak the protocol, act on the physics, clamp at compliance,
count transactions and keep a timing model."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from drivers.sim.instruments.array_board import SimArrayBoard, frame
from drivers.sim.instruments.b1500 import SimB1500
from drivers.sim.instruments.b2900 import SimB2900
from drivers.sim.instruments.base import Faults
from drivers.sim.instruments.bench_state import SimBench
from drivers.sim.instruments.scpi import parse_header, short_form, split_commands
from drivers.sim.instruments.switch_matrix import SimSwitchMatrix
from drivers.sim.physics import ArrayPhysics
from drivers.sim.presets import get_preset
from drivers.instruments.switch_matrix import MatrixWiring
from drivers.transport import SimTransport


def make_bench(shape=(4, 4), seed=0):
    pre = get_preset("hfo2")
    return SimBench(ArrayPhysics(pre.physics, shape, seed), pre.technology)


def q(inst, text: str) -> bytes:
    return inst.handle(text.encode() + b"\n")


@pytest.mark.parametrize("long,short", [("VOLTage", "VOLT"), ("PROTECTION", "PROT"), ("DELAY", "DEL"), ("ERROR", "ERR"),
                                         ("ARRAY", "ARR"), ("IMMEDIATE", "IMM"), ("COUNT", "COUN"), ("curr", "CURR")])
def test_scpi_short_forms(long, short):
    assert short_form(long) == short


def test_scpi_headers_and_compound_split():
    assert parse_header(":SOURce2:VOLTage:LEVel:IMMediate") == (("SOUR", "VOLT"), 2, False)
    assert parse_header(":SENS1:CURR:PROT:TRIP?") == (("SENS", "CURR", "PROT", "TRIP"), 1, True)
    assert split_commands(':INIT (@1,2);:SENS:FUNC "CURR;X";*WAI') == [":INIT (@1,2)", ':SENS:FUNC "CURR;X"', "*WAI"]


def test_b2900_long_forms_error_queue_and_count():
    smu = SimB2900(make_bench())
    assert q(smu, ":SOURce1:VOLTage 0.1;:SOUR1:VOLT?") == b"+1.000000E-01\n"
    assert q(smu, ":SOUR1:BOGUS 1") == b""
    assert q(smu, ":SOUR1:VOLT 999") == b""  # out of range: refused, level unchanged
    assert q(smu, ":SYST:ERR:COUN?") == b"+2\n"
    assert q(smu, ":SYST:ERR?") == b'-113,"Undefined header"\n'
    assert q(smu, ":SYST:ERR:ALL?") == b'-222,"Data out of range"\n'
    assert q(smu, ":SYST:ERR?") == b'+0,"No error"\n'
    assert q(smu, ":SOUR1:VOLT?") == b"+1.000000E-01\n"
    assert smu.counters.replies == 6 and smu.counters.messages == 8


def test_b2900_list_length_must_match_trigger_count():
    smu = SimB2900(make_bench())
    q(smu, ":SOUR1:VOLT:MODE LIST;:SOUR1:LIST:VOLT 1,2,3;:TRIG1:COUN 2;:INIT (@1)")
    assert q(smu, ":SYST:ERR?").startswith(b"-221")


def test_b2900_read_sweep_acts_on_the_routed_cells_and_clamps_at_compliance():
    bench = make_bench()
    board = SimArrayBoard(bench, (16, 16))
    smu = SimB2900(bench)
    g_true = bench.physics.conductance().copy()
    hexes = "".join(f"{r:04X}{c:04X}0000" for r, c in [(0, 0), (1, 2), (3, 3)])
    assert q(board, frame(f"LOAD 0 3 {hexes}")).startswith(b"OK LOAD")
    q(board, frame("GSRC EXT"))
    q(smu, ":FORM REAL,64;:FORM:BORD SWAP;:SOUR2:VOLT 2.5;:OUTP2 ON")
    q(smu, ":SOUR1:VOLT:MODE FIX;:SOUR1:VOLT:TRIG 0.1;:SENS1:CURR:PROT 1e-3;:TRIG1:COUN 3;:INIT (@1)")
    reply = q(smu, ":FETC:ARR:CURR? (@1);:SENS1:CURR:PROT:TRIP?")
    assert reply[:4] == b"#224" and reply.endswith(b";0\n")
    i = np.array(struct.unpack("<3d", reply[4:28]))
    np.testing.assert_allclose(i / 0.1, g_true[[0, 6, 15]], rtol=0.05, atol=1e-8)
    # A compliance below the cell current clamps it and sets the trip flag.
    q(smu, ":SENS1:CURR:PROT 1e-12;:INIT (@1)")
    reply = q(smu, ":FETC:ARR:CURR? (@1);:SENS1:CURR:PROT:TRIP?")
    assert np.all(np.array(struct.unpack("<3d", reply[4:28])) <= 1e-12) and reply.endswith(b";1\n")
    assert bench.points == 6
    assert bench.bench_time == pytest.approx(6 * (0.5e-3 + 0.6e-3 + 1e-3))


def test_b2900_pulse_sweep_programs_and_gate_off_does_nothing():
    bench = make_bench()
    board = SimArrayBoard(bench, (16, 16))
    smu = SimB2900(bench)
    q(board, frame("GSRC EXT"))
    q(board, frame("SEL 1 1"))
    q(smu, ":SOUR1:FUNC:SHAP PULS;:SOUR1:PULS:WIDT 1e-5;:SENS1:CURR:PROT 1e-3;:SOUR1:VOLT:MODE LIST;:SOUR1:LIST:VOLT 3.6;:TRIG1:COUN 1")
    g0 = bench.physics.g_prog[5]
    q(smu, ":INIT (@1)")  # gate channel off: transistor off, zero compliance: no filament growth
    assert bench.physics.g_prog[5] == g0
    assert bench.physics.n_form[5] == 1  # a positive pulse on an unformed cell counts as forming
    q(smu, ":SOUR2:VOLT:MODE LIST;:SOUR2:LIST:VOLT 1.0;:TRIG2:COUN 1;:INIT (@1,2)")
    assert bench.physics.n_form[5] + bench.physics.n_set[5] == 2
    assert bench.physics.conductance()[5] > 10 * g0


def test_b1500_flex_output_format_and_errors():
    bench = make_bench()
    SimArrayBoard(bench, (16, 16))  # router with nothing selected: open circuit
    b = SimB1500(bench)
    assert q(b, "UNT?") == b"B1517A,0;B1517A,0;B1511A,0;B1511A,0;0,0;0,0;0,0;0,0;0,0;0,0\r\n"
    assert q(b, "TI 1") == b""  # channel not connected (CN): error, no data
    assert q(b, "ERRX?") == b'200,"Channel not enabled"\r\n'
    q(b, "CN 1,2;DV 1,0,0.1,1e-4")
    assert q(b, "TI 1") == b"NAI+000.000E+00\r\n"
    assert q(b, "TV 1;ERRX?") == b'NAV+100.000E-03\r\n0,"No Error."\r\n'  # one line per reply
    assert q(b, "*LRN? 0") == b"CN1,2\r\n"
    q(b, "CL")
    assert q(b, "*LRN? 0") == b"CL\r\n"


@pytest.mark.parametrize("pt,ok", [("PT 0,1e-3,2e-3", False), ("PT 0,1e-3,5e-3", True), ("PT 0,1e-6,5e-3", False),
                                   ("PT 0,4e-3,5e-3", False), ("PT 0,4e-3,6e-3", True), ("PT -1,1e-3,5e-3", False),
                                   ("PT 0,1e-3,6", False), ("PT 0,1e-3", True),
                                   ("PT 0,0.2,0.205", False), ("PT 0,0.2,0.21", True), ("PT 0,0.2,0", True),
                                   ("PT 0,0.1,0.102", True)])
def test_b1500_enforces_the_pt_rules(pt, ok):
    """Period 5 ms..5 s and >= width + 2 ms (width + 10 ms above 100 ms; 0 = automatic), width
    0.5 ms..2 s, hold 0..655.35 s (E5260/E5270 Programming Guide Ed. 4, p. 4-90, PT)."""
    b = SimB1500(make_bench())
    assert q(b, f"{pt};ERRX?").startswith(b"0," if ok else b"120,")


def test_b1500_aperture_from_ait():
    b = SimB1500(make_bench())
    assert q(b, "AIT 0,3,5e-3;ERRX?").startswith(b"0,") and b.aperture == 5e-3
    assert q(b, "AIT 0,3,0.5;ERRX?").startswith(b"120,")


def test_b2900_list_reaches_one_cell_per_point_only_with_the_trigger_output():
    """Without :TRIG:TRAN:TOUT ON on the wired line the board never steps: the whole list lands
    on one cell, as on a real bench."""
    for tout, expect in (("", 0), (":TRIG1:TRAN:TOUT ON;:TRIG1:TRAN:TOUT:SIGN EXT2;", 0),
                         (":TRIG1:TRAN:TOUT ON;:TRIG1:TRAN:TOUT:SIGN EXT1;", 3)):
        bench = make_bench()
        board = SimArrayBoard(bench, (16, 16))
        smu = SimB2900(bench)
        hexes = "".join(f"{r:04X}{c:04X}0000" for r, c in [(0, 0), (1, 2), (3, 3)])
        q(board, frame(f"LOAD 0 3 {hexes}"))
        q(smu, f":SOUR1:VOLT:TRIG 0.1;:TRIG1:SOUR TIM;:TRIG1:TIM 2e-3;:TRIG1:COUN 3;{tout}:INIT (@1)")
        assert board.triggers == expect


def test_b2900_refuses_pulses_below_50_us_and_reports_per_point_status():
    smu = SimB2900(make_bench())
    assert q(smu, ":SOUR1:PULS:WIDT 1e-6;:SYST:ERR?") == b'-222,"Data out of range"\n'
    assert q(smu, ":SOUR1:PULS:WIDT 5e-5;:SYST:ERR:COUN?") == b"+0\n"
    q(smu, ":FORM:ELEM:SENS CURR,STAT;:SENS1:CURR:PROT 1e-12;:SOUR1:VOLT:TRIG 0.1;:TRIG1:COUN 2;:INIT (@1)")
    vals = [float(x) for x in q(smu, ":FETC:ARR? (@1)").decode().strip().split(",")]
    assert len(vals) == 4  # (current, status) per point


def test_b2900_status_word_marks_compliance_in_bits_1_2_and_timer_min_is_20_us():
    """B2900 SCPI Command Reference Ed. 2, p. 1-14, Table 1-2 (compliance = bits 1-2, bit 3 is
    over voltage); B2900A data sheet p. 17 (B2902A trigger interval from 20 us)."""
    bench = make_bench()
    m = SimSwitchMatrix(bench, MatrixWiring())
    smu = SimB2900(bench)
    q(m, ":ROUT:CLOS (@00103,00210,00318)")
    q(smu, ":SOUR2:VOLT 2.5;:OUTP2 ON")
    q(smu, ":FORM:ELEM:SENS CURR,STAT;:SENS1:CURR:PROT 1e-12;:SOUR1:VOLT:TRIG 0.1;:OUTP1 ON;:TRIG1:COUN 2;:INIT (@1)")
    vals = [float(x) for x in q(smu, ":FETC:ARR? (@1)").decode().strip().split(",")]
    words = [int(w) for w in vals[1::2]]
    assert all(w & 0b110 for w in words) and not any(w & 0b111000 for w in words)
    assert q(smu, ":TRIG1:TIM 15e-6;:SYST:ERR?") == b'-222,"Data out of range"\n'
    assert q(smu, ":TRIG1:TIM 20e-6;:SYST:ERR:COUN?") == b"+0\n"


def test_b2900_aperture_out_of_range_is_clamped_not_refused():
    """B2900 SCPI Command Reference Ed. 2, p. 4-73: a time below MIN or above MAX is set to MIN
    or MAX (no error). The old simulator queued -222 instead."""
    smu = SimB2900(make_bench())
    assert q(smu, ":SENS1:CURR:APER 1e-6;:SYST:ERR:COUN?") == b"+0\n"
    assert smu.ch[1].aperture == 8e-6
    assert q(smu, ":SENS1:CURR:APER 5;:SYST:ERR:COUN?") == b"+0\n"
    assert smu.ch[1].aperture == 2.0


def test_switch_matrix_routes_exactly_one_cell():
    bench = make_bench()
    m = SimSwitchMatrix(bench, MatrixWiring())
    q(m, ":ROUT:CLOS (@00103,00210,00318)")
    assert m.point_cells(2).tolist() == [1 * 4 + 2] * 2
    assert q(m, ":ROUT:CLOS? (@00103,00210,00317)") == b"1,1,0\n"
    q(m, ":ROUT:CLOS (@00104)")  # two bit lines: no single cell
    assert m.point_cells(1).tolist() == [-1]
    q(m, ":ROUT:OPEN:CARD ALL")
    assert m.point_cells(1).tolist() == [-1]


def test_faults_drop_and_garble_replies_with_their_own_seed():
    bench = make_bench()
    smu = SimB2900(bench, faults=Faults(p_timeout=0.2, p_garble=0.2, seed=1))
    state = bench.physics.rng.bit_generator.state
    replies = [q(smu, "*IDN?") for _ in range(200)]
    good = SimB2900.idn.encode() + b"\n"
    assert smu.counters.timeouts > 10 and smu.counters.garbles > 10
    assert sum(r == good for r in replies) == 200 - smu.counters.timeouts - smu.counters.garbles
    assert all(r == b"" or r == good or r != good for r in replies)
    assert bench.physics.rng.bit_generator.state == state  # the physics stream is untouched
    with pytest.raises(ValueError):
        Faults(p_timeout=1.5)


def test_sim_transport_counts_round_trips():
    smu = SimB2900(make_bench())
    t = SimTransport(smu)
    t.write("*RST")
    assert t.query("*OPC?") == "1"
    assert (t.traffic.queries, smu.counters.replies, smu.counters.messages) == (1, 1, 2)


def test_b2900_gate_list_steps_with_the_bit_line_only_when_both_share_the_trigger_setup():
    """Programming Guide, synchronizing channels: same source, timer, count and delays, one :INIT."""
    seen = {}
    for name, gate_trig in (("same", ":TRIG2:SOUR TIM;:TRIG2:TIM 1e-3;:TRIG2:COUN 3"),
                            ("other timer", ":TRIG2:SOUR TIM;:TRIG2:TIM 3e-3;:TRIG2:COUN 3"),
                            ("default source", ":TRIG2:COUN 3")):
        bench = make_bench()
        smu = SimB2900(bench)
        got = []
        bench.measure_points = lambda v, g, a, c, edges=False: (got.append(g.copy()), (np.zeros(v.size), np.zeros(v.size, bool)))[1]
        q(smu, ":SOUR1:VOLT:TRIG 0.1;:TRIG1:SOUR TIM;:TRIG1:TIM 1e-3;:TRIG1:COUN 3;"
               f":SOUR2:VOLT:MODE LIST;:SOUR2:LIST:VOLT 1,2,3;{gate_trig};:INIT (@1,2)")
        seen[name] = got[0].tolist()
    assert seen["same"] == [1.0, 2.0, 3.0]
    assert seen["other timer"] == [1.0, 1.0, 1.0]
    assert seen["default source"] == [3.0, 3.0, 3.0]
