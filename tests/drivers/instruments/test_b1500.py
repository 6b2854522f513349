"""B1500 FLEX driver: exact exchanges (constructor included), FMT 1 output data as the manual
prints it, PT timing, statuses, AIT, error buffer, close; one test per defect of issue 10."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.errors import InstrumentError, ProtocolError, SafetyLimitError
from drivers.instruments.b1500 import B1500, parse_flex_data, pulse_period
from drivers.instruments.b2900 import ComplianceTrip
from drivers.limits import SafetyLimits
from drivers.sim.instruments.b1500 import flex_value
from drivers.transport_testing import ExpectedTransport, expected_protocol

LIMITS = SafetyLimits(max_v_pulse=5.0, max_v_gate=3.0, max_v_read=0.3, max_compliance=1e-3, max_width=2e-3, min_width=1e-8)
IDN = "Agilent Technologies,B1500A,0,A.06.01"
UNT = "B1517A,0;B1517A,0;B1511A,0;0,0;0,0;0,0;0,0;0,0;0,0;0,0"
OK = '0,"No Error."'
INIT = [("*IDN?", IDN), ("*RST", None), ("UNT?", UNT), ("FMT 1,0;AAD 1,0;CN 1,2;ERRX?", OK)]
CLOSE = [("DZ;CL", None), ("*LRN? 0", "CL")]
PULSE_1MS = "PT 0.000000e+00,1.000000e-03,5.000000e-03;PV 1,0,0.000000e+00,2.000000e+00,1.000000e-03;MM 3,1;XE"
READ = "AIT 0,3,1.000000e-03;DV 1,0,1.000000e-01,1.000000e-03;TI 1"


def flex(script=(), close=False, **kw):
    return expected_protocol(B1500, INIT + list(script) + (CLOSE if close else []), LIMITS, read_termination="\r\n", **kw)


def _run(script, fn):
    with flex(script) as b:
        return fn(b)


def test_constructor_traffic_and_modules():
    with flex() as b:
        assert b.modules == {1: "B1517A", 2: "B1517A", 3: "B1511A"}
        assert b.identity == IDN


def test_constructor_refuses_a_slot_without_smu():
    script = [("*IDN?", IDN), ("*RST", None), ("UNT?", UNT)]
    with pytest.raises(InstrumentError, match="slot 5"):
        with expected_protocol(B1500, script, LIMITS, 1, 5, read_termination="\r\n"):
            pass


def test_force_and_spot_measurements():
    script = [
        ("DV 1,0,1.000000e-01,1.000000e-04;ERRX?", OK),
        ("TI 1;ERRX?", "NAI+001.234E-06\r\n" + OK),
        ("TV 1;ERRX?", "NAV+100.000E-03\r\n" + OK),
        ("DV 2,0,1.500000e+00,1.000000e-03;ERRX?", OK),
        ("DI 1,0,1.000000e-06,2.000000e-01;ERRX?", OK),
    ]
    with flex(script) as b:
        b.force_voltage(1, 0.1, 1e-4)
        assert b.spot_current(1) == 1.234e-06
        assert b.spot_voltage(1) == pytest.approx(0.1)
        b.force_voltage(2, 1.5, 1e-3)
        b.force_current(1, 1e-6, 0.2)


def test_enable_disable():
    with flex([("CN 1;ERRX?", OK), ("CL 1,2;ERRX?", OK), ("CL;ERRX?", OK)]) as b:
        b.enable(1)
        b.disable(1, 2)
        b.disable()


def test_enable_without_slots_is_refused():
    """Defect: ``enable()`` sent ``CN `` alone, which connects every channel."""
    t = ExpectedTransport(INIT, read_termination="\r\n")
    b = B1500(t, LIMITS)
    t.traffic.clear()
    with pytest.raises(ValueError, match="at least one slot"):
        b.enable()
    assert t.traffic.entries == []


def test_staircase_sweep():
    script = [("MM 2,1;WT 0.000000e+00,1.000000e-03;WV 1,1,0,0.000000e+00,2.000000e-01,3,1.000000e-04;XE;ERRX?",
               "NAI+000.000E+00,NAI+001.000E-06,NAI+002.000E-06\r\n" + OK)]
    with flex(script) as b:
        np.testing.assert_allclose(b.staircase_sweep(0.0, 0.2, 3, 1e-4, delay=1e-3), [0, 1e-6, 2e-6])


def test_pulsed_spot_period_is_legal():
    """Defect: period = 2 x width (2 ms for 1 ms) is below the 5 ms minimum and below width + 2 ms."""
    with flex([(PULSE_1MS + ";ERRX?", "CAI+001.000E-03\r\n" + OK)]) as b:
        assert b.pulsed_spot(2.0, 1e-3, 1e-3) == 1e-3  # compliance during a pulse is returned
    assert pulse_period(1e-3) == 5e-3 and pulse_period(10e-3) == pytest.approx(12e-3)


@pytest.mark.parametrize("kw", [dict(period=2e-3), dict(period=6e3), dict(hold=float("nan")), dict(hold=-1.0),
                                dict(hold=float("inf")), dict(period=float("nan")), dict(hold=1e4), dict(period=True)])
def test_pulse_hold_and_period_are_validated_before_sending(kw):
    """Defect: hold and period were not validated (NaN, inf and negatives reached the wire)."""
    t = ExpectedTransport(INIT, read_termination="\r\n")
    b = B1500(t, LIMITS)
    t.traffic.clear()
    with pytest.raises(SafetyLimitError, match="PT"):
        b.pulsed_spot(2.0, 1e-3, 1e-3, **kw)
    assert t.traffic.entries == []


def test_long_pulses_need_a_10_ms_period_margin():
    """PT: period >= width + 10 ms for width > 100 ms (E5260/E5270 Programming Guide Ed. 4,
    p. 4-90, FLEX PT). The old rule (width + 2 ms for every width) let 0.205 s for 0.2 s through."""
    assert pulse_period(0.1) == pytest.approx(0.102) and pulse_period(0.2) == pytest.approx(0.21)
    t = ExpectedTransport(INIT, read_termination="\r\n")
    b = B1500(t, SafetyLimits(max_v_pulse=5.0, max_v_gate=3.0, max_v_read=0.3, max_compliance=1e-3, max_width=1.0))
    t.traffic.clear()
    with pytest.raises(SafetyLimitError, match="period"):
        b.pulsed_spot(2.0, 0.2, 1e-3, period=0.205)
    assert t.traffic.entries == []


def test_read_one_sends_the_aperture():
    """Defect: ``read_one`` validated an aperture but never sent ``AV``/``AIT``."""
    script = [("DV 2,0,2.500000e+00,1.000000e-03;" + READ + ";ERRX?", "NAI+010.000E-06\r\n" + OK)]
    with flex(script) as b:
        assert b.read_one(0.1, 2.5, 1e-3, 1e-3) == pytest.approx(1e-5)


def test_bench_roles_one_round_trip_each_with_the_error_check():
    script = [
        ("DV 2,0,1.000000e+00,1.000000e-03;" + PULSE_1MS + ";ERRX?", "NAI+050.000E-06\r\n" + OK),
        ("DV 2,0,1.000000e+00,1.000000e-03;" + PULSE_1MS + ";DV 2,0,2.500000e+00,1.000000e-03;" + READ + ";ERRX?",
         "NAI+050.000E-06\r\nNAI+020.000E-06\r\n" + OK),
    ]
    with flex(script) as b:
        b.pulse_one(2.0, 1.0, 1e-3, 1e-3)
        assert b.pulse_and_read(2.0, 1.0, 1e-3, 1e-3, 0.1, 2.5, 1e-3, 1e-3) == pytest.approx(2e-5)
        assert b.transport.traffic.queries == 3 + 2  # constructor: *IDN?, UNT?, set-up;ERRX?


def test_error_buffer_is_drained_raised_and_outputs_off():
    script = [("DV 1,0,1.000000e-01,1.000000e-03;ERRX?", '120,"Incorrect numeric parameter"'), ("ERRX?", OK), ("DZ;CL", None)]
    with pytest.raises(InstrumentError, match="120 Incorrect numeric parameter"):
        with flex(script) as b:
            b.force_voltage(1, 0.1, 1e-3)


def test_a_refused_pulse_without_data_is_reported_not_misread():
    script = [(PULSE_1MS + ";ERRX?", '120,"Incorrect numeric parameter"'), ("ERRX?", OK), ("DZ;CL", None)]
    with pytest.raises(InstrumentError, match="120"):
        with flex(script) as b:
            b.pulsed_spot(2.0, 1e-3, 1e-3)


def test_compliance_status_on_a_read_raises_with_outputs_off():
    """Defect: on a trip no driver switched its outputs off."""
    with pytest.raises(ComplianceTrip, match="outputs switched off"):
        with flex([("TI 1;ERRX?", "CAI+100.000E-06\r\n" + OK), ("DZ;CL", None)]) as b:
            b.spot_current(1)


def test_status_T_is_a_problem():
    """Defect: status T (another channel reached its compliance) was treated as normal."""
    for call in (lambda b: b.spot_current(1), lambda b: b.pulsed_spot(2.0, 1e-3, 1e-3)):
        cmd = "TI 1;ERRX?" if call.__code__.co_names[-1] == "spot_current" else PULSE_1MS + ";ERRX?"
        with pytest.raises(InstrumentError, match="another channel"):
            with flex([(cmd, "TAI+001.000E-06\r\n" + OK), ("DZ;CL", None)]) as b:
                call(b)


def test_overflow_status_raises_and_turns_off():
    with pytest.raises(InstrumentError, match="over range"):
        with flex([("TI 1;ERRX?", "VAI+199.999E+99\r\n" + OK), ("DZ;CL", None)]) as b:
            b.spot_current(1)


def test_wrong_channel_in_reply_is_a_protocol_error():
    script = [("TI 1;ERRX?", "NAB+001.000E-06\r\n" + OK)] * 3 + [("DZ;CL", None)]
    with pytest.raises(ProtocolError):
        with flex(script) as b:
            b.spot_current(1)


@pytest.mark.parametrize("text,expect", [
    ("NAI+000.005E-09", [("N", 1, "I", 5e-12)]),  # the Programming Guide's form
    ("NAV+001.500E+00", [("N", 1, "V", 1.5)]),
    ("NAI-002.000E-03,CBV+001.000E+00", [("N", 1, "I", -2e-3), ("C", 2, "V", 1.0)]),
    ("TJI+000.000E+00", [("T", 10, "I", 0.0)]),
    # The other two 12-character forms, sn.nnnnnEsnn and snn.nnnnEsnn (E5260/E5270 Programming
    # Guide Ed. 4, p. 1-27, FLEX data element D): the old parser rejected these real replies.
    ("NAI+1.23456E-06", [("N", 1, "I", 1.23456e-6)]),
    ("NAI-12.3456E-09", [("N", 1, "I", -12.3456e-9)]),
])
def test_parse_flex_data_accepts_the_manual_format(text, expect):
    """Defect: only ``+d.dddddE+dd`` was accepted, so every real reply was rejected."""
    got = [(d.status, d.slot, d.kind, d.value) for d in parse_flex_data(text)]
    assert [(s, c, k) for s, c, k, _ in got] == [(s, c, k) for s, c, k, _ in expect]
    np.testing.assert_allclose([v for *_, v in got], [v for *_, v in expect], rtol=1e-12)


@pytest.mark.parametrize("text", ["NAI+1.234567E-06", "NAI+01.234E-06", "NAI+0001.23E-06", "NAI001.234E-06", "QAI+001.234E-06",
                                  "NAI+001.234E-06,", "NA~+001.234E-06", "nai+001.234E-06", ""])
def test_parse_flex_data_is_strict(text):
    with pytest.raises(ProtocolError):
        parse_flex_data(text)


@pytest.mark.parametrize("v", [5e-12, 1.234e-6, -2e-3, 1.5, 0.0, 999.9996e-9, 3.3e-15])
def test_simulated_values_are_12_characters_and_parse_back(v):
    text = flex_value(v)
    assert len(text) == 12
    assert parse_flex_data(f"NAI{text}")[0].value == pytest.approx(v, rel=1e-3, abs=1e-30)


def test_close_zeroes_disconnects_and_confirms():
    t = ExpectedTransport(INIT + CLOSE, read_termination="\r\n")
    with B1500(t, LIMITS):
        pass
    t.assert_done()


def test_close_reports_outputs_it_could_not_confirm_off():
    t = ExpectedTransport(INIT + [("DZ;CL", None), ("*LRN? 0", "CN1")], read_termination="\r\n")
    with pytest.raises(InstrumentError, match="still reported on"):
        B1500(t, LIMITS).close()


CALLS = [
    ("DV above the read range on the bit line", lambda b: b.force_voltage(1, 0.5, 1e-4)),
    ("DV gate above range", lambda b: b.force_voltage(2, 3.5, 1e-4)),
    ("DV compliance", lambda b: b.force_voltage(1, 0.1, 0.1)),
    ("DV bool volts", lambda b: b.force_voltage(1, True, 1e-4)),
    ("DV negative gate compliance", lambda b: b.force_voltage(2, 1.0, -1e-4)),
    ("DI current", lambda b: b.force_current(1, 0.01, 0.1)),
    ("pulse amplitude", lambda b: b.pulsed_spot(6.0, 1e-3, 1e-4)),
    ("pulse narrower than the SMU can", lambda b: b.pulsed_spot(2.0, 1e-4, 1e-4)),
    ("pulse too long for the bench", lambda b: b.pulsed_spot(2.0, 3e-3, 1e-4)),
    ("sweep stop", lambda b: b.staircase_sweep(0.0, 1.0, 5, 1e-4)),
    ("sweep steps 2.5", lambda b: b.staircase_sweep(0.0, 0.1, 2.5, 1e-4)),
    ("sweep steps True", lambda b: b.staircase_sweep(0.0, 0.1, True, 1e-4)),
    ("unwired slot", lambda b: b.spot_current(3)),
    ("slot 1.0", lambda b: b.spot_current(1.0)),
    ("aperture outside AIT", lambda b: b.read_one(0.1, 2.5, 0.5, 1e-3)),
    ("negative gate", lambda b: b.read_one(0.1, -0.5, 1e-3, 1e-3)),
]


@pytest.mark.parametrize("name,call", CALLS, ids=[c[0] for c in CALLS])
def test_out_of_limit_requests_send_nothing(name, call):
    t = ExpectedTransport(INIT, read_termination="\r\n")
    b = B1500(t, LIMITS)
    t.traffic.clear()
    with pytest.raises((SafetyLimitError, ValueError)):
        call(b)
    assert t.traffic.entries == []
