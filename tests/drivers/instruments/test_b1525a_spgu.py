"""B1525A SPGU driver: exact exchanges (constructor included), model limits checked before any
byte is sent, error buffer, safe idle; hypothesis fuzz over every public method."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.errors import InstrumentError, ProtocolError, SafetyLimitError
from drivers.instruments.b1525a_spgu import B1525A, SPGU_MODELS
from drivers.limits import SafetyLimits
from drivers.transport_testing import ExpectedTransport, expected_protocol
from pulse_recording import RecordingTransport, numbers

LIMITS = SafetyLimits(max_v_pulse=5.0, max_v_gate=3.0, max_v_read=0.3, max_compliance=1e-3, max_width=1e-3, min_width=1e-8)
UNT = "B1517A,0;B1517A,0;0,0;0,0;B1525A,0;0,0;0,0;0,0;0,0;0,0"
OK = '0,"No Error."'
INIT = [
    ("UNT?", UNT),
    ("CN 501", None),
    ("SIM 0;SPM 501,1;SPRM 1,1;SER 501,1.000000e+06;ODSW 501,0", None),
    ("ERRX?", OK),
]
SETUP_100NS = "SPPER 2.400000e-07;SPT 501,1,0.000000e+00,1.000000e-07,1.000000e-08,1.000000e-08;SPV 501,1,0.000000e+00,-2.000000e+00;SPUPD 501;ERRX?"


def spgu(script=(), **kw):
    return expected_protocol(B1525A, INIT + list(script), LIMITS, read_termination="\r\n", **kw)


def test_constructor_traffic_and_model():
    with spgu() as s:
        assert s.model is SPGU_MODELS["B1525A"]
        assert s.slot == 5 and s.channel == 501
        assert "B1525A" in s.identity


def test_constructor_refuses_a_slot_without_spgu():
    with pytest.raises(InstrumentError, match="slot 1 holds 'B1517A'"):
        with expected_protocol(B1525A, [("UNT?", UNT)], LIMITS, 101, read_termination="\r\n"):
            pass


@pytest.mark.parametrize("channel", [500, 503, 99, 1101, 5.01, True, "501"])
def test_constructor_refuses_bad_channels_before_any_byte(channel):
    t = ExpectedTransport([])
    with pytest.raises((ValueError, TypeError)):
        B1525A(t, LIMITS, channel)
    assert t.position == 0


def test_a_100ns_pulse_costs_one_round_trip_and_the_setup_one_more_when_it_changes():
    script = [
        (SETUP_100NS, OK),
        ("SRP;SPST?", "0"),
        ("SRP;SPST?", "0"),  # same setup: nothing re-sent
        ("SRP;SPST?", "1"),  # still running: poll until it ends
        ("SPST?", "0"),
    ]
    with spgu(script) as s:
        s.pulse(-2.0, 100e-9)
        s.pulse(-2.0, 100e-9)
        s.pulse(-2.0, 100e-9)


def test_a_refused_setup_never_fires_and_switches_off():
    script = [(SETUP_100NS, '120,"Incorrect numeric parameter"'), ("SPP;CL 501", None), ("SPST?", "0")]
    with spgu(script) as s:
        with pytest.raises(InstrumentError, match="refused the SPGU setup"):
            s.pulse(-2.0, 100e-9)


def test_error_buffer_is_drained_and_reported_with_outputs_off():
    script = [("ERRX?", '150,"Command not allowed"'), ("ERRX?", OK), ("SPP;CL 501", None), ("SPST?", "0")]
    with spgu(script) as s:
        with pytest.raises(InstrumentError, match="150 Command not allowed"):
            s.check_errors()


def test_unexpected_spst_reply_is_a_protocol_error():
    script = [(SETUP_100NS, OK), ("SRP;SPST?", "2"), ("SPP;CL 501", None), ("SPST?", "0")]
    with spgu(script) as s:
        with pytest.raises(ProtocolError):
            s.pulse(-2.0, 100e-9)


def test_close_stops_confirms_and_keeps_the_mainframe_transport_open():
    t = ExpectedTransport(INIT + [("SPP;CL 501", None), ("SPST?", "0")], read_termination="\r\n")
    s = B1525A(t, LIMITS)
    s.close()
    s.close()  # idempotent
    t.assert_done()
    assert not t._closed  # the B1500 SMU driver still uses it


def test_close_reports_an_output_that_stays_on():
    t = ExpectedTransport(INIT + [("SPP;CL 501", None), ("SPST?", "1")], read_termination="\r\n")
    s = B1525A(t, LIMITS)
    with pytest.raises(InstrumentError, match="still active"):
        s.close()


@pytest.mark.parametrize("peak,width,match", [
    (2.0, 5e-9, "width"),          # below the bench's min_width (1e-8 s)
    (6.0, 1e-7, "v_pulse"),        # above the bench's max_v_pulse
    (2.0, 2e-3, "width"),          # above the bench's max_width
    (2.0, 1e-8, "edges"),          # shorter than its two 10 ns edges
    (2.0, 1.5e-7 + 5e-9, "multiple of the 1e-08 s resolution"),
])
def test_limits_refuse_before_any_byte(peak, width, match):
    with spgu() as s:
        with pytest.raises(SafetyLimitError, match=match):
            s.pulse(peak, width)


def test_model_table_refuses_what_the_spgu_cannot_do_even_within_bench_limits():
    wide = SafetyLimits(max_v_pulse=100.0, max_v_gate=3.0, max_v_read=0.3, max_compliance=1e-3, max_width=20.0, min_width=1e-9)
    t = ExpectedTransport(INIT + [("SER 501,5.000000e+01", None)] * 0, read_termination="\r\n")
    s = B1525A(t, wide)
    with pytest.raises(SafetyLimitError, match=r"SPV: peak = 45 V outside the instrument's allowed range \[-40, 40\]"):
        s.pulse(45.0, 1e-7)
    with pytest.raises(SafetyLimitError, match=r"SPPER: period"):
        s.pulse(1.0, 6.0)  # period 2 x (width + edges) > 10 s
    t.assert_done()


finite = st.floats(allow_nan=False, allow_infinity=False)
anything = st.one_of(st.floats(), st.integers(-10**6, 10**6), st.booleans(), st.none(), st.text(max_size=3), st.just(float("nan")))


@settings(max_examples=300, deadline=None)
@given(peak=anything, width=anything, base=anything)
def test_fuzz_pulse_never_sends_an_illegal_value(peak, width, base):
    """Whatever the arguments, either they are legal and the exact setup goes out, or nothing
    reaches the transport."""
    t = ExpectedTransport(INIT, read_termination="\r\n")
    s = B1525A(t, LIMITS)
    sent = t.position
    try:
        s.pulse_setup(peak, width, base)
    except (TypeError, ValueError):
        assert t.position == sent
        return
    legal = all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in (peak, width, base))
    assert legal and abs(peak) <= LIMITS.max_v_pulse and LIMITS.min_width <= width <= LIMITS.max_width
    assert abs(base) <= LIMITS.max_v_read and width >= 2 * s.edge - 1e-18
    assert abs(round(width / 1e-8) * 1e-8 - width) <= 1e-11


@settings(max_examples=200, deadline=None)
@given(channel=anything, load=anything, edge=anything)
def test_fuzz_constructor_arguments(channel, load, edge):
    t = ExpectedTransport(INIT, read_termination="\r\n")
    try:
        B1525A(t, LIMITS, channel, load_impedance=load, edge=edge)
    except (TypeError, ValueError, InstrumentError):
        # refused before the first byte, or (wrong slot) right after UNT?
        assert t.position in (0, 1)
        return
    assert channel == 501 and 0.1 <= load <= 1e6 and 8e-9 <= edge <= 0.4


def _spgu_answer(message: str) -> str | None:
    if message == "UNT?":
        return UNT
    if message.endswith("ERRX?"):
        return OK
    if message.endswith("SPST?"):
        return "0"
    return None


@settings(max_examples=300, deadline=None)
@given(calls=st.lists(st.tuples(anything, anything), min_size=1, max_size=4))
def test_fuzz_pulse_traffic_stays_within_the_model_and_the_bench(calls):
    """Drive :meth:`B1525A.pulse` with anything; every SPT/SPV/SPPER value on the wire is
    finite and inside both the model table and the bench limits."""
    t = RecordingTransport(_spgu_answer, read_termination="\r\n")
    s = B1525A(t, LIMITS)
    m = s.model
    for peak, width in calls:
        try:
            s.pulse(peak, width)
        except (TypeError, ValueError):
            pass
    for message in t.sent:
        for command in message.split(";"):
            head, _, rest = command.partition(" ")
            values = numbers(rest)
            assert all(math.isfinite(v) for v in values), command
            if head == "SPT":
                _, _, delay, width, lead, trail = values
                assert LIMITS.min_width <= width <= LIMITS.max_width and m.min_width <= width
                assert m.min_edge <= lead <= m.max_edge and m.min_edge <= trail <= m.max_edge
            elif head == "SPV":
                assert abs(values[3]) <= LIMITS.max_v_pulse and abs(values[2]) <= LIMITS.max_v_read
            elif head == "SPPER":
                assert m.min_period <= values[0] <= m.max_period


def test_smu_holds_ride_in_the_pulse_message():
    """``before=``: the SMUs' DV and the SPGU's start in one message (one round trip); with a
    setup change they ride in the checked setup message instead."""
    script = [
        ("DV 1,0,0;" + SETUP_100NS, OK),
        ("SRP;SPST?", "0"),
        ("DV 1,0,0;DV 2,0,1.2;SRP;SPST?", "0"),
    ]
    with spgu(script) as s:
        s.pulse(-2.0, 100e-9, before="DV 1,0,0")
        s.pulse(-2.0, 100e-9, before="DV 1,0,0;DV 2,0,1.2")


@pytest.mark.parametrize("before", ["ERRX?", 5, None])
def test_before_refuses_queries_and_non_strings_before_any_byte(before):
    with spgu() as s:
        with pytest.raises(ValueError):
            s.pulse(-2.0, 100e-9, before=before)
