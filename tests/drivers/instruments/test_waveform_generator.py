"""33500B generator driver: exact exchanges (constructor included), model table from *IDN?,
limits checked before any byte is sent, error queue, output off on close; hypothesis fuzz."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.errors import InstrumentError, ProtocolError, SafetyLimitError
from drivers.instruments.waveform_generator import GENERATOR_MODELS, WaveformGenerator
from drivers.limits import SafetyLimits
from drivers.transport_testing import ExpectedTransport, expected_protocol
from pulse_recording import RecordingTransport, numbers

LIMITS = SafetyLimits(max_v_pulse=5.0, max_v_gate=3.0, max_v_read=0.3, max_compliance=1e-3, max_width=1e-3, min_width=1e-8)
IDN = "Agilent Technologies,33522B,MY57800256,5.00-1.19-2.00-58-00"
OK = '+0,"No error"'
SETUP = (
    "OUTP1 OFF;OUTP1:LOAD INF;SOUR1:FUNC PULS;SOUR1:PULS:TRAN:LEAD 1.000000e-08;SOUR1:PULS:TRAN:TRA 1.000000e-08;"
    "SOUR1:BURS:MODE TRIG;SOUR1:BURS:NCYC 1;TRIG1:SOUR BUS;SOUR1:BURS:STAT ON;OUTP1:POL NORM;"
    "SOUR1:VOLT:HIGH 1.000000e-01;SOUR1:VOLT:LOW 0.000000e+00"
)
INIT = [("*IDN?", IDN), ("*RST;*CLS", None), (SETUP, None), ("SYST:ERR?", OK), ("OUTP1 ON", None)]


def gen(script=(), **kw):
    return expected_protocol(WaveformGenerator, INIT + list(script), LIMITS, **kw)


def test_constructor_traffic_and_model():
    with gen() as g:
        assert g.model is GENERATOR_MODELS["33522B"]
        assert g.identity == IDN


def test_unknown_model_is_refused_after_idn_only():
    with pytest.raises(InstrumentError, match="33250A"):
        with expected_protocol(WaveformGenerator, [("*IDN?", "Agilent Technologies,33250A,0,1")], LIMITS):
            pass


def test_channel_2_on_a_one_channel_model_is_refused():
    with pytest.raises(ValueError, match="1 channel"):
        with expected_protocol(WaveformGenerator, [("*IDN?", "Keysight Technologies,33511B,0,1")], LIMITS, 2):
            pass


def test_positive_then_negative_100ns_pulses():
    """A positive pulse rests at LOW = 0 and pulses to HIGH; a negative one inverts about the
    offset (HIGH = 0, LOW = v); HIGH > LOW holds at every step; unchanged setups are not resent."""
    script = [
        ("SOUR1:PULS:WIDT 1.000000e-07;SOUR1:PULS:PER 2.400000e-07;SOUR1:VOLT:HIGH 2.000000e+00;SYST:ERR?", OK),
        ("*TRG;*OPC?", "1"),
        ("*TRG;*OPC?", "1"),
        ("OUTP1 OFF;OUTP1:POL INV;SOUR1:VOLT:LOW -1.500000e+00;SOUR1:VOLT:HIGH 0.000000e+00;OUTP1 ON;SYST:ERR?", OK),
        ("*TRG;*OPC?", "1"),
        ("SOUR1:VOLT:LOW -2.500000e+00;SYST:ERR?", OK),  # same polarity: only the pulse level moves
        ("*TRG;*OPC?", "1"),
        ("SOUR1:PULS:PER 2.040000e-06;SOUR1:PULS:WIDT 1.000000e-06;OUTP1 OFF;OUTP1:POL NORM;SOUR1:VOLT:HIGH 2.000000e+00;"
         "SOUR1:VOLT:LOW 0.000000e+00;OUTP1 ON;SYST:ERR?", OK),
        ("*TRG;*OPC?", "1"),
    ]
    with gen(script) as g:
        g.pulse(2.0, 100e-9)
        g.pulse(2.0, 100e-9)
        g.pulse(-1.5, 100e-9)
        g.pulse(-2.5, 100e-9)
        g.pulse(2.0, 1e-6)


def test_a_refused_setup_never_fires_and_switches_the_output_off():
    script = [
        ("SOUR1:PULS:WIDT 1.000000e-07;SOUR1:PULS:PER 2.400000e-07;SOUR1:VOLT:HIGH 2.000000e+00;SYST:ERR?",
         '-222,"Data out of range"'),
        ("OUTP1 OFF", None),
    ]
    with gen(script) as g:
        with pytest.raises(InstrumentError, match="-222 Data out of range"):
            g.pulse(2.0, 100e-9)


def test_opc_not_1_is_a_protocol_error_with_output_off():
    script = [
        ("SOUR1:PULS:WIDT 1.000000e-07;SOUR1:PULS:PER 2.400000e-07;SOUR1:VOLT:HIGH 2.000000e+00;SYST:ERR?", OK),
        ("*TRG;*OPC?", "0"), ("OUTP1 OFF", None),
    ]
    with gen(script) as g:
        with pytest.raises(ProtocolError):
            g.pulse(2.0, 100e-9)


def test_close_switches_off_and_confirms():
    t = ExpectedTransport(INIT + [("OUTP1 OFF", None), ("OUTP1?", "0")])
    g = WaveformGenerator(t, LIMITS)
    g.close()
    t.assert_done()
    assert t._closed


def test_close_reports_an_output_that_stays_on():
    t = ExpectedTransport(INIT + [("OUTP1 OFF", None), ("OUTP1?", "1")])
    g = WaveformGenerator(t, LIMITS)
    with pytest.raises(InstrumentError, match="still on"):
        g.close()


@pytest.mark.parametrize("peak,width,match", [
    (2.0, 5e-9, "width"), (6.0, 1e-7, "v_pulse"), (0.0, 1e-7, "0 V pulse"), (2.0, 1.5e-8, "edges"),
    (float("nan"), 1e-7, "finite"),
])
def test_limits_refuse_before_any_byte(peak, width, match):
    with gen() as g:
        with pytest.raises(SafetyLimitError, match=match):
            g.pulse(peak, width)


def test_model_levels_depend_on_the_declared_load():
    wide = SafetyLimits(max_v_pulse=20.0, max_v_gate=3.0, max_v_read=0.3, max_compliance=1e-3, max_width=1e-3, min_width=1e-8)
    setup50 = SETUP.replace("LOAD INF", "LOAD 5.000000e+01")
    t = ExpectedTransport([("*IDN?", IDN), ("*RST;*CLS", None), (setup50, None), ("SYST:ERR?", OK), ("OUTP1 ON", None)])
    g = WaveformGenerator(t, wide, load=50.0)
    with pytest.raises(SafetyLimitError, match=r"VOLT:HIGH/LOW: peak = 6 V outside the instrument's allowed range \[-5, 5\]"):
        g.pulse(6.0, 1e-7)
    t.assert_done()


anything = st.one_of(st.floats(), st.integers(-10**6, 10**6), st.booleans(), st.none(), st.text(max_size=3))


def _answer(message: str) -> str | None:
    if message == "*IDN?":
        return IDN
    if message.endswith("SYST:ERR?"):
        return OK
    if message.endswith("*OPC?") or message.endswith("OUTP1?"):
        return "1"
    return None


@settings(max_examples=300, deadline=None)
@given(calls=st.lists(st.tuples(anything, anything), min_size=1, max_size=4))
def test_fuzz_pulse_traffic_stays_within_the_model_and_the_bench(calls):
    t = RecordingTransport(_answer)
    g = WaveformGenerator(t, LIMITS)
    m = g.model
    sent_at_start = len(t.sent)
    for peak, width in calls:
        try:
            g.pulse(peak, width)
        except (TypeError, ValueError):
            pass
    high, low, pol, on = 0.1, 0.0, "NORM", True
    for message in t.sent[sent_at_start:]:
        for command in message.split(";"):
            head, _, rest = command.partition(" ")
            values = numbers(rest)
            assert all(math.isfinite(v) for v in values), command
            if head == "OUTP1":
                on = rest == "ON"
            elif head == "OUTP1:POL":
                assert not on, "polarity changed with the output relay closed"
                pol = rest
            if head.endswith("PULS:WIDT"):
                assert max(m.min_width, LIMITS.min_width) <= values[0] <= LIMITS.max_width
            elif head.endswith("VOLT:HIGH"):
                high = values[0]
            elif head.endswith("VOLT:LOW"):
                low = values[0]
            if head.endswith(("VOLT:HIGH", "VOLT:LOW")):
                assert high > low and max(abs(high), abs(low)) <= LIMITS.max_v_pulse, command
                assert not on or (low if pol == "NORM" else high) == 0.0, "resting level moved on a connected cell"


@settings(max_examples=200, deadline=None)
@given(channel=anything, edge=anything, load=anything, trigger=st.sampled_from(["BUS", "EXT", "IMM", 1, None]))
def test_fuzz_constructor_arguments(channel, edge, load, trigger):
    t = RecordingTransport(_answer)
    try:
        WaveformGenerator(t, LIMITS, channel, edge=edge, load=load, trigger=trigger)
    except (TypeError, ValueError, InstrumentError):
        assert t.sent in ([], ["*IDN?"])
        return
    assert channel in (1, 2) and not isinstance(channel, bool) and 8.4e-9 <= edge <= 1e-6 and trigger in ("BUS", "EXT")
