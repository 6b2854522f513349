"""B2900 driver: exact exchanges of every method (constructor included), safety, errors, close."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.instruments.b2900 import B2900, ComplianceTrip
from drivers.errors import InstrumentError, ProtocolError, SafetyLimitError, TransportTimeout
from drivers.limits import SafetyLimits
from drivers.transport import make_block
from drivers.transport_testing import ExpectedTransport, expected_protocol

LIMITS = SafetyLimits(max_v_pulse=4.0, max_v_gate=3.0, max_v_read=0.3, max_compliance=1e-3, max_width=1e-3, min_width=1e-8)
IDN = "Keysight Technologies,B2902A,MY51141234,3.4.2011.5100"
INIT = [
    ("*IDN?", IDN),
    ("*RST;*CLS", None),
    (":FORM:DATA REAL,64;:FORM:BORD SWAP;:SOUR1:FUNC:MODE VOLT;:SOUR2:FUNC:MODE VOLT", None),
    (":SYST:ERR:ALL?", '+0,"No error"'),
]
FETCH = ":FETC:ARR:CURR? (@1);:SENS1:CURR:PROT:TRIP?;:SYST:ERR:COUN?"


def block(values, tail=b";0;+0"):
    return make_block(struct.pack(f"<{len(values)}d", *values)) + tail + b"\n"


def test_constructor_traffic():
    with expected_protocol(B2900, INIT, LIMITS) as smu:
        assert smu.identity == IDN
        assert smu.channels == (1, 2)


def test_constructor_without_reset_only_identifies():
    with expected_protocol(B2900, [("*IDN?", IDN)], LIMITS, reset=False) as smu:
        assert smu.gate == 2


def test_constructor_reports_error_queue():
    script = INIT[:-1] + [(":SYST:ERR:ALL?", '-113,"Undefined header",-222,"Data out of range"')]
    with pytest.raises(InstrumentError, match=r"-113 \"Undefined header\"; -222"):
        with expected_protocol(B2900, script, LIMITS):
            pass


def test_set_compliance_and_trip_query():
    script = INIT + [
        (":SENS1:CURR:PROT 1.000000e-04", None),
        (":SENS1:CURR:PROT:TRIP?", "1"),
        (":SENS2:CURR:PROT:TRIP?", "0"),
    ]
    with expected_protocol(B2900, script, LIMITS) as smu:
        smu.set_compliance(1, 1e-4)
        assert smu.compliance_tripped(1) is True
        assert smu.compliance_tripped(2) is False


def test_source_voltage_and_output():
    script = INIT + [
        (":SOUR2:FUNC:SHAP DC;:SOUR2:VOLT:MODE FIX;:SOUR2:VOLT 1.200000e+00;:OUTP2 ON", None),
        (":SOUR1:FUNC:SHAP DC;:SOUR1:VOLT:MODE FIX;:SOUR1:VOLT 1.000000e-01;:OUTP1 ON", None),
        (":OUTP1 OFF", None),
    ]
    with expected_protocol(B2900, script, LIMITS) as smu:
        smu.source_voltage(2, 1.2)  # gate channel: gate range
        smu.source_voltage(1, 0.1)  # bit line: read range
        smu.output(1, False)


def test_spot_current():
    script = INIT + [
        (":SOUR1:FUNC:SHAP DC;:SOUR1:VOLT:MODE FIX;:SOUR1:VOLT 1.000000e-01;:SENS1:CURR:APER 1.000000e-03;"
         ":SENS1:CURR:PROT 1.000000e-03;:OUTP1 ON", None),
        (":MEAS:CURR? (@1);:SENS1:CURR:PROT:TRIP?;:SYST:ERR:COUN?", block([1.25e-6])),
    ]
    with expected_protocol(B2900, script, LIMITS) as smu:
        assert smu.spot_current(0.1, 1e-3, 1e-3) == 1.25e-6


def test_single_pulse():
    script = INIT + [
        (":SOUR1:FUNC:SHAP PULS;:SOUR1:VOLT 0.000000e+00;:SOUR1:PULS:DEL 0.000000e+00;:SOUR1:PULS:WIDT 1.000000e-06;"
         ":SENS1:CURR:PROT 5.000000e-04;:SOUR1:VOLT:MODE LIST;:SOUR1:LIST:VOLT 2.000000e+00;:TRIG1:COUN 1;"
         ":OUTP1 ON;:INIT (@1);*WAI", None),
    ]
    with expected_protocol(B2900, script, LIMITS) as smu:
        smu.pulse(2.0, 1e-6, 5e-4)


def test_pulse_list_with_gate_list_is_one_message_no_reply():
    script = INIT + [
        (":SOUR1:FUNC:SHAP PULS;:SOUR1:VOLT 0.000000e+00;:SOUR1:PULS:DEL 0.000000e+00;:SOUR1:PULS:WIDT 1.000000e-06;"
         ":SENS1:CURR:PROT 1.000000e-03;:SOUR1:VOLT:MODE LIST;:SOUR1:LIST:VOLT 2.000000e+00,-1.500000e+00,3.000000e-07;"
         ":TRIG1:COUN 3;:SOUR2:FUNC:SHAP DC;:SOUR2:VOLT:MODE LIST;:SOUR2:LIST:VOLT 7.000000e-01,2.500000e+00,1.000000e+00;"
         ":TRIG2:COUN 3;:OUTP1 ON;:OUTP2 ON;:INIT (@1,2);*WAI", None),
    ]
    with expected_protocol(B2900, script, LIMITS) as smu:
        smu.pulse_list([2.0, -1.5, 3e-7], 1e-6, 1e-3, gates=[0.7, 2.5, 1.0])
        assert smu.transport.traffic.queries == 2  # the constructor's two; the sweep itself: none


def test_measure_list_is_one_round_trip():
    currents = [1e-6, 2.5e-5, -3e-9]
    script = INIT + [
        (":SOUR1:FUNC:SHAP DC;:SOUR1:VOLT:MODE FIX;:SOUR1:VOLT:TRIG 1.000000e-01;:SENS1:CURR:APER 1.000000e-03;"
         ":SENS1:CURR:PROT 1.000000e-03;:TRIG1:COUN 3;:SOUR2:FUNC:SHAP DC;:SOUR2:VOLT:MODE FIX;"
         ":SOUR2:VOLT:TRIG 2.500000e+00;:TRIG2:COUN 3;:OUTP1 ON;:OUTP2 ON;:INIT (@1,2);*WAI", None),
        (FETCH, block(currents)),
    ]
    with expected_protocol(B2900, script, LIMITS) as smu:
        q0 = smu.transport.traffic.queries
        out = smu.measure_list(3, 0.1, 1e-3, 1e-3, gate=2.5)
        assert smu.transport.traffic.queries - q0 == 1
        np.testing.assert_array_equal(out, currents)


def test_fetch_and_wait_idle():
    script = INIT + [(FETCH, block([4e-6, 5e-6])), ("*OPC?", "1")]
    with expected_protocol(B2900, script, LIMITS) as smu:
        np.testing.assert_array_equal(smu.fetch_currents(2), [4e-6, 5e-6])
        smu.wait_idle()


def test_error_count_reads_queue_and_raises():
    script = INIT + [
        (FETCH, block([1e-6], b";0;+1")),
        (":OUTP1 OFF;:OUTP2 OFF", None),
        (":SYST:ERR:ALL?", '-221,"Settings conflict"'),
    ]
    with pytest.raises(InstrumentError, match="-221"):
        with expected_protocol(B2900, script, LIMITS) as smu:
            smu.fetch_currents(1)


def test_compliance_trip_during_read_raises():
    script = INIT + [
        (":SOUR1:FUNC:SHAP DC;:SOUR1:VOLT:MODE FIX;:SOUR1:VOLT:TRIG 1.000000e-01;:SENS1:CURR:APER 1.000000e-03;"
         ":SENS1:CURR:PROT 1.000000e-05;:TRIG1:COUN 1;:OUTP1 ON;:INIT (@1);*WAI", None),
        (FETCH, block([1e-5], b";1;+0")),
    ]
    with pytest.raises(ComplianceTrip):
        with expected_protocol(B2900, script, LIMITS) as smu:
            smu.measure_list(1, 0.1, 1e-3, 1e-5)


def test_error_count_query():
    with expected_protocol(B2900, INIT + [(":SYST:ERR:COUN?", "+2")], LIMITS) as smu:
        assert smu.error_count() == 2


def test_idempotent_fetch_is_retried_after_a_garbled_block():
    garbled = make_block(b"\x00" * 7) + b";0;+0\n"  # 7 bytes, not 8: a framing error
    script = INIT + [(FETCH, garbled), (FETCH, block([3e-6]))]
    with expected_protocol(B2900, script, LIMITS) as smu:
        assert smu.fetch_currents(1)[0] == 3e-6
        assert smu.transport.traffic.retries == 1


def test_fetch_gives_up_after_retries():
    script = INIT + [(FETCH, None), (FETCH, None), (FETCH, None), (":OUTP1 OFF;:OUTP2 OFF", None)]
    with pytest.raises(TransportTimeout):
        with expected_protocol(B2900, script, LIMITS) as smu:
            smu.fetch_currents(1)


def test_malformed_tail_is_a_protocol_error():
    script = INIT + [(FETCH, block([1e-6], b";0~;+0"))] * 3 + [(":OUTP1 OFF;:OUTP2 OFF", None)]
    with pytest.raises(ProtocolError):
        with expected_protocol(B2900, script, LIMITS) as smu:
            smu.fetch_currents(1)


def test_close_and_context_exit_turn_outputs_off():
    off = (":SOUR1:VOLT 0.000000e+00;:OUTP1 OFF;:SOUR2:VOLT 0.000000e+00;:OUTP2 OFF", None)
    t = ExpectedTransport(INIT + [off])
    with B2900(t, LIMITS):
        pass
    t.assert_done()
    t = ExpectedTransport(INIT + [off])
    with pytest.raises(RuntimeError):
        with B2900(t, LIMITS):
            raise RuntimeError("experiment failed")
    t.assert_done()
    assert t._closed
    smu = B2900(ExpectedTransport(INIT + [off]), LIMITS)
    smu.close()
    smu.close()  # idempotent: nothing more on the wire


# ---------------------------------------------------------------------------------- safety
def _fresh() -> tuple[B2900, ExpectedTransport]:
    t = ExpectedTransport(INIT)
    smu = B2900(t, LIMITS)
    t.traffic.clear()
    return smu, t


CALLS = [
    ("pulse amplitude", lambda s: s.pulse(4.5, 1e-6, 1e-4)),
    ("negative pulse amplitude", lambda s: s.pulse_list([1.0, -4.01], 1e-6, 1e-4)),
    ("pulse too long", lambda s: s.pulse(2.0, 2e-3, 1e-4)),
    ("pulse too short", lambda s: s.pulse(2.0, 1e-9, 1e-4)),
    ("pulse compliance", lambda s: s.pulse(2.0, 1e-6, 2e-3)),
    ("pulse base", lambda s: s.pulse(2.0, 1e-6, 1e-4, base=1.0)),
    ("gate list", lambda s: s.pulse_list([1.0, 1.0], 1e-6, 1e-4, gates=[1.0, 3.5])),
    ("negative gate", lambda s: s.pulse_list([1.0], 1e-6, 1e-4, gates=[-0.1])),
    ("read voltage", lambda s: s.measure_list(4, 0.5, 1e-3, 1e-4)),
    ("read gate", lambda s: s.measure_list(4, 0.1, 1e-3, 1e-4, gate=3.1)),
    ("read aperture", lambda s: s.measure_list(4, 0.1, 5e-2, 1e-4)),
    ("read compliance", lambda s: s.measure_list(4, 0.1, 1e-3, 0.5)),
    ("DC on the bit line above the read range", lambda s: s.source_voltage(1, 1.0)),
    ("DC gate above range", lambda s: s.source_voltage(2, 3.3)),
    ("compliance", lambda s: s.set_compliance(1, 0.01)),
    ("spot read voltage", lambda s: s.spot_current(-0.4, 1e-3, 1e-4)),
    ("NaN amplitude", lambda s: s.pulse(float("nan"), 1e-6, 1e-4)),
]


@pytest.mark.parametrize("name,call", CALLS, ids=[c[0] for c in CALLS])
def test_out_of_limit_requests_send_nothing(name, call):
    smu, t = _fresh()
    with pytest.raises((SafetyLimitError, ValueError)):
        call(smu)
    assert t.traffic.entries == []


@settings(max_examples=60, deadline=None)
@given(
    peaks=st.lists(st.floats(-10, 10, allow_nan=False), min_size=1, max_size=8),
    width=st.floats(1e-10, 1e-2),
    compliance=st.floats(1e-13, 1e-2),
)
def test_pulse_list_sends_only_within_limits(peaks, width, compliance):
    smu, t = _fresh()
    t.script.append((None, None))  # the script is not consulted when limits fail
    within = (
        max(abs(p) for p in peaks) <= LIMITS.max_v_pulse
        and LIMITS.min_width <= width <= LIMITS.max_width
        and 1e-12 <= compliance <= LIMITS.max_compliance
    )
    if within:
        t.script = list(t.script[: t.position])  # expect exactly one message, whatever it is
        sent: list[bytes] = []
        t._send = lambda data: sent.append(data)  # type: ignore[method-assign]
        smu.pulse_list(peaks, width, compliance)
        assert len(sent) == 1 and b":INIT (@1)" in sent[0]
    else:
        with pytest.raises(SafetyLimitError):
            smu.pulse_list(peaks, width, compliance)
        assert t.traffic.entries == []


def test_bad_channel_configuration():
    with pytest.raises(ValueError):
        B2900(ExpectedTransport([]), LIMITS, bitline_channel=2, gate_channel=2)
