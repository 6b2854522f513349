"""B1500 FLEX driver: exact exchanges, output-data parsing, safety, error buffer, close."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.instruments.b1500 import B1500, parse_flex_data
from drivers.instruments.b2900 import ComplianceTrip
from drivers.errors import InstrumentError, ProtocolError, SafetyLimitError
from drivers.limits import SafetyLimits
from drivers.transport_testing import ExpectedTransport, expected_protocol

LIMITS = SafetyLimits(max_v_pulse=5.0, max_v_gate=3.0, max_v_read=0.3, max_compliance=1e-3, max_width=2e-3, min_width=1e-8)
IDN = "Agilent Technologies,B1500A,0,A.06.01"
UNT = "B1517A,0;B1517A,0;B1511A,0;0,0;0,0;0,0;0,0;0,0;0,0;0,0"
INIT = [("*IDN?", IDN), ("*RST", None), ("UNT?", UNT), ("FMT 1,0;CN 1,2", None), ("ERRX?", '0,"No Error."')]


def flex(factory=B1500, script=(), **kw):
    return expected_protocol(factory, INIT + list(script), LIMITS, read_termination="\r\n", **kw)


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
        ("DV 1,0,1.000000e-01,1.000000e-04", None),
        ("TI 1", "NAI+1.23456E-06"),
        ("TV 1", "NAV+1.00000E-01"),
        ("DV 2,0,1.500000e+00,1.000000e-03", None),
        ("DI 1,0,1.000000e-06,2.000000e-01", None),
    ]
    with flex(script=script) as b:
        b.force_voltage(1, 0.1, 1e-4)
        assert b.spot_current(1) == 1.23456e-06
        assert b.spot_voltage(1) == 0.1
        b.force_voltage(2, 1.5, 1e-3)
        b.force_current(1, 1e-6, 0.2)


def test_enable_disable():
    with flex(script=[("CN 1", None), ("CL 1,2", None), ("CL", None)]) as b:
        b.enable(1)
        b.disable(1, 2)
        b.disable()


def test_staircase_sweep():
    script = [
        ("MM 2,1;WT 0.000000e+00,1.000000e-03;WV 1,1,0,0.000000e+00,2.000000e-01,3,1.000000e-04", None),
        ("XE", "NAI+0.00000E+00,NAI+1.00000E-06,NAI+2.00000E-06"),
    ]
    with flex(script=script) as b:
        np.testing.assert_allclose(b.staircase_sweep(0.0, 0.2, 3, 1e-4, delay=1e-3), [0, 1e-6, 2e-6])


def test_pulsed_spot():
    script = [
        ("PT 0.000000e+00,1.000000e-03,2.000000e-03;PV 1,0,0.000000e+00,2.000000e+00,1.000000e-03;MM 3,1", None),
        ("XE", "CAI+1.00000E-03"),  # compliance reached during a pulse is allowed (returned)
    ]
    with flex(script=script) as b:
        assert b.pulsed_spot(2.0, 1e-3, 1e-3) == 1e-3


def test_bench_roles_check_errors():
    script = [
        ("DV 2,0,1.000000e+00,1.000000e-03", None),
        ("PT 0.000000e+00,1.000000e-03,2.000000e-03;PV 1,0,0.000000e+00,2.000000e+00,1.000000e-03;MM 3,1", None),
        ("XE", "NAI+5.00000E-05"),
        ("ERRX?", '0,"No Error."'),
        ("DV 2,0,2.500000e+00,1.000000e-03", None),
        ("DV 1,0,1.000000e-01,1.000000e-03", None),
        ("TI 1", "NAI+1.00000E-05"),
        ("ERRX?", '0,"No Error."'),
    ]
    with flex(script=script) as b:
        b.pulse_one(2.0, 1.0, 1e-3, 1e-3)
        assert b.read_one(0.1, 2.5, 1e-3, 1e-3) == 1e-5


def test_error_buffer_is_drained_and_raised():
    script = [("DV 1,0,1.000000e-01,1.000000e-03", None), ("ERRX?", '120,"Incorrect numeric parameter"'), ("ERRX?", '0,"No Error."')]
    with pytest.raises(InstrumentError, match="120 Incorrect numeric parameter"):
        with flex(script=script) as b:
            b.force_voltage(1, 0.1, 1e-3)
            b.check_errors()


def test_compliance_status_on_a_read_raises():
    with pytest.raises(ComplianceTrip):
        with flex(script=[("TI 1", "CAI+1.00000E-04")]) as b:
            b.spot_current(1)


def test_overflow_status_raises_and_turns_off():
    with pytest.raises(InstrumentError, match="over range"):
        with flex(script=[("TI 1", "VAI+1.99999E+99"), ("DZ;CL", None)]) as b:
            b.spot_current(1)


def test_wrong_channel_in_reply_is_a_protocol_error():
    script = [("TI 1", "NAB+1.00000E-06")] * 3 + [("DZ;CL", None)]
    with pytest.raises(ProtocolError):
        with flex(script=script) as b:
            b.spot_current(1)


@pytest.mark.parametrize("text,expect", [
    ("NAI+1.23456E-06", [("N", 1, "I", 1.23456e-06)]),
    ("NAI-2.00000E-03,CBV+1.00000E+00", [("N", 1, "I", -2e-3), ("C", 2, "V", 1.0)]),
    ("TJI+0.00000E+00", [("T", 10, "I", 0.0)]),
])
def test_parse_flex_data(text, expect):
    got = [(d.status, d.slot, d.kind, d.value) for d in parse_flex_data(text)]
    assert got == expect


@pytest.mark.parametrize("text", ["NAI+1.2345E-06", "NAI1.23456E-06", "QAI+1.23456E-06", "NAI+1.23456E-06,", "NA~+1.23456E-06", ""])
def test_parse_flex_data_is_strict(text):
    with pytest.raises(ProtocolError):
        parse_flex_data(text)


def test_close_zeroes_and_disconnects():
    t = ExpectedTransport(INIT + [("DZ;CL", None)], read_termination="\r\n")
    with B1500(t, LIMITS):
        pass
    t.assert_done()


CALLS = [
    ("DV above the read range on the bit line", lambda b: b.force_voltage(1, 0.5, 1e-4)),
    ("DV gate above range", lambda b: b.force_voltage(2, 3.5, 1e-4)),
    ("DV compliance", lambda b: b.force_voltage(1, 0.1, 0.1)),
    ("DI current", lambda b: b.force_current(1, 0.01, 0.1)),
    ("pulse amplitude", lambda b: b.pulsed_spot(6.0, 1e-3, 1e-4)),
    ("pulse narrower than the SMU can", lambda b: b.pulsed_spot(2.0, 1e-6, 1e-4)),
    ("pulse too long for the bench", lambda b: b.pulsed_spot(2.0, 3e-3, 1e-4)),
    ("sweep stop", lambda b: b.staircase_sweep(0.0, 1.0, 5, 1e-4)),
    ("unwired slot", lambda b: b.spot_current(3)),
]


@pytest.mark.parametrize("name,call", CALLS, ids=[c[0] for c in CALLS])
def test_out_of_limit_requests_send_nothing(name, call):
    t = ExpectedTransport(INIT, read_termination="\r\n")
    b = B1500(t, LIMITS)
    t.traffic.clear()
    with pytest.raises((SafetyLimitError, ValueError)):
        call(b)
    assert t.traffic.entries == []
