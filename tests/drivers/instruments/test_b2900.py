"""B2900 driver: exact exchanges of every method (constructor included), model limits, trigger
set-up, per-point compliance, errors, close; one test per defect of issue 10."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from drivers.errors import InstrumentError, ProtocolError, SafetyLimitError, TransportTimeout
from drivers.instruments.b2900 import B2900, STATUS_CURRENT_COMPLIANCE, ComplianceTrip
from drivers.limits import SafetyLimits
from drivers.transport import make_block
from drivers.transport_testing import ExpectedTransport, expected_protocol

LIMITS = SafetyLimits(max_v_pulse=4.0, max_v_gate=3.0, max_v_read=0.3, max_compliance=1e-3, max_width=1e-3, min_width=1e-8)
IDN = "Keysight Technologies,B2902A,MY51141234,3.4.2011.5100"
NOERR = '+0,"No error"'
SETUP = (':FORM:DATA REAL,64;:FORM:BORD SWAP;:FORM:ELEM:SENS CURR,STAT;'
         ':SOUR1:FUNC:MODE VOLT;:SENS1:FUNC "CURR";:SOUR2:FUNC:MODE VOLT;:SENS2:FUNC "CURR";:SYST:ERR:ALL?')
INIT = [("*IDN?", IDN), ("*RST;*CLS", None), (SETUP, NOERR)]
OFF = (":SOUR1:VOLT 0.000000e+00;:OUTP1 OFF;:SOUR2:VOLT 0.000000e+00;:OUTP2 OFF", None)
FETCH = ":FETC:ARR? (@1);:SYST:ERR:COUN?"
E = "0.000000e+00"


def block(values, status=None, tail=b";+0"):
    status = [0] * len(values) if status is None else status
    flat = [x for pair in zip(values, status) for x in pair]
    return make_block(struct.pack(f"<{len(flat)}d", *flat)) + tail + b"\n"


def trig(ch, n, period, tran, acq, tout):
    out = f":TRIG{ch}:TRAN:TOUT ON;:TRIG{ch}:TRAN:TOUT:SIGN EXT1" if tout else f":TRIG{ch}:TRAN:TOUT OFF"
    return (f":TRIG{ch}:SOUR TIM;:TRIG{ch}:TIM {period};:TRIG{ch}:COUN {n};"
            f":TRIG{ch}:TRAN:DEL {tran};:TRIG{ch}:ACQ:DEL {acq};{out}")


def test_constructor_traffic():
    with expected_protocol(B2900, INIT, LIMITS) as smu:
        assert smu.identity == IDN
        assert smu.channels == (1, 2) and smu.model.channels == 2


def test_constructor_without_reset_only_identifies():
    with expected_protocol(B2900, [("*IDN?", IDN)], LIMITS, reset=False) as smu:
        assert smu.gate == 2


def test_model_is_picked_from_the_identity():
    one = "Keysight Technologies,B2901A,MY1,3.4"
    with pytest.raises(InstrumentError, match="1 channel"):
        B2900(ExpectedTransport([("*IDN?", one)]), LIMITS)
    with pytest.raises(InstrumentError, match="unknown model"):
        B2900(ExpectedTransport([("*IDN?", "Keithley,2400,1,1")]), LIMITS)


def test_constructor_reports_error_queue_and_switches_off():
    script = INIT[:2] + [(SETUP, '-113,"Undefined header"'), (":OUTP1 OFF;:OUTP2 OFF", None)]
    with pytest.raises(InstrumentError, match="-113"):
        with expected_protocol(B2900, script, LIMITS):
            pass


def test_pulse_is_at_least_50_us():
    """Defect: the B2900's pulses are >= 50 us; 1 us was sent."""
    smu, t = _fresh()
    with pytest.raises(SafetyLimitError, match=r":SOUR:PULS:WIDT: width=1e-06 s outside the instrument's range \[5e-05"):
        smu.pulse(2.0, 1e-6, 1e-4)
    assert t.traffic.entries == []


def test_pulse_list_sets_trigger_output_source_timer_delays_on_both_channels():
    """Defect: no trigger output, source, timer or delays; channels not set up to start together."""
    msg = _pulse_msg("1.000000e+00,2.000000e+00", "1.000000e+00,1.500000e+00", 2)
    with expected_protocol(B2900, INIT + [(msg, None)], LIMITS) as smu:
        smu.pulse_list([1.0, 2.0], 50e-6, 1e-4, gates=[1.0, 1.5])
        assert smu.transport.traffic.queries == 2  # write-only


def _pulse_msg(peaks, gates, n):
    period = "6.500000e-04"  # settle 0.5 ms + width 50 us + 100 us
    return (f":SOUR1:FUNC:SHAP PULS;:SOUR1:VOLT {E};:SOUR1:PULS:DEL {E};:SOUR1:PULS:WIDT 5.000000e-05;"
            f":SENS1:CURR:PROT 1.000000e-04;:SOUR1:VOLT:MODE LIST;:SOUR1:LIST:VOLT {peaks};"
            f":SOUR2:FUNC:SHAP DC;:SOUR2:VOLT:MODE LIST;:SOUR2:LIST:VOLT {gates};"
            + trig(1, n, period, "5.000000e-04", "5.000000e-04", True) + ";"
            + trig(2, n, period, "5.000000e-04", "5.000000e-04", False)
            + ";:OUTP1 ON;:OUTP2 ON;:INIT (@1,2);*WAI")


def _read_msg(n, gate=True):
    period = "1.600000e-03"  # settle 0.5 ms + aperture 1 ms + 100 us
    msg = (f":SOUR1:FUNC:SHAP DC;:SOUR1:VOLT:MODE FIX;:SOUR1:VOLT:TRIG 1.000000e-01;"
           ":SENS1:CURR:APER 1.000000e-03;:SENS1:CURR:PROT 1.000000e-04")
    if gate:
        msg += ":SOUR2:FUNC:SHAP DC;:SOUR2:VOLT:MODE FIX;:SOUR2:VOLT:TRIG 2.500000e+00".join([";", ""])
    msg += ";" + trig(1, n, period, E, "5.000000e-04", True)
    if gate:
        msg += ";" + trig(2, n, period, E, "5.000000e-04", False)
    return msg + (";:OUTP1 ON;:OUTP2 ON;:INIT (@1,2);*WAI" if gate else ";:OUTP1 ON;:INIT (@1);*WAI")


def test_measure_list_is_one_round_trip_with_per_point_status():
    script = INIT + [(_read_msg(3), None), (FETCH, block([1e-6, 2e-6, 3e-6]))]
    with expected_protocol(B2900, script, LIMITS) as smu:
        np.testing.assert_allclose(smu.measure_list(3, 0.1, 1e-3, 1e-4, gate=2.5), [1e-6, 2e-6, 3e-6])


def test_a_point_that_clamped_mid_list_is_caught_from_its_status():
    """Defect: TRIP? after the list reports the state at the time of the query, so a point that
    clamped mid-list passed; the per-point status word catches it, and the outputs go off."""
    script = INIT + [(_read_msg(3), None), (FETCH, block([1e-6, 1e-4, 3e-6], [0, STATUS_CURRENT_COMPLIANCE, 0])),
                     (":OUTP1 OFF;:OUTP2 OFF", None)]
    with pytest.raises(ComplianceTrip, match="point 1"):
        with expected_protocol(B2900, script, LIMITS) as smu:
            smu.measure_list(3, 0.1, 1e-3, 1e-4, gate=2.5)
    script[-1:] = []
    with expected_protocol(B2900, script, LIMITS) as smu:
        assert smu.measure_list(3, 0.1, 1e-3, 1e-4, gate=2.5, allow_trip=True)[1] == 1e-4


@pytest.mark.parametrize("word", [2, 4, 6])
def test_compliance_is_read_from_status_bits_1_and_2(word):
    """Manual: B2900 SCPI Command Reference Ed. 2, p. 1-14, Table 1-2 -- the compliance
    condition is bits 1-2 (2, 4 or 6). The old driver tested bit 3 (8) and missed it."""
    script = INIT + [(_read_msg(2), None), (FETCH, block([1e-6, 1e-4], [0, word])), (":OUTP1 OFF;:OUTP2 OFF", None)]
    with pytest.raises(ComplianceTrip, match="point 1"):
        with expected_protocol(B2900, script, LIMITS) as smu:
            smu.measure_list(2, 0.1, 1e-3, 1e-4, gate=2.5)


@pytest.mark.parametrize("word", [8, 16, 32])
def test_over_voltage_current_temperature_bits_are_faults_not_compliance(word):
    """Bit 3 (8) is over voltage, bit 4 (16) over current, bit 5 (32) high temperature (Table 1-2):
    the run stops with outputs off, and it is not reported as a compliance trip."""
    script = INIT + [(_read_msg(2), None), (FETCH, block([1e-6, 1e-6], [0, word])), (":OUTP1 OFF;:OUTP2 OFF", None)]
    with pytest.raises(InstrumentError, match="status") as err:
        with expected_protocol(B2900, script, LIMITS) as smu:
            smu.measure_list(2, 0.1, 1e-3, 1e-4, gate=2.5, allow_trip=True)
    assert not isinstance(err.value, ComplianceTrip)


def test_trigger_interval_minimum_follows_the_model():
    """B2900A data sheet p. 17: trigger interval 20 us (B2901A/B2902A), 10 us (B2911A/B2912A)."""
    from drivers.instruments.b2900 import MODELS

    assert MODELS["B2901A"].min_timer == MODELS["B2902A"].min_timer == 20e-6
    assert MODELS["B2911A"].min_timer == MODELS["B2912A"].min_timer == 10e-6


def test_error_count_reads_queue_raises_and_switches_off():
    script = INIT + [(_read_msg(1), None), (FETCH, block([1e-6], tail=b";+1")),
                     (":SYST:ERR:ALL?", '-222,"Data out of range"'), (":OUTP1 OFF;:OUTP2 OFF", None)]
    with pytest.raises(InstrumentError, match="-222"):
        with expected_protocol(B2900, script, LIMITS) as smu:
            smu.measure_list(1, 0.1, 1e-3, 1e-4, gate=2.5)


def test_wait_idle_checks_the_error_count():
    with expected_protocol(B2900, INIT + [("*OPC?;:SYST:ERR:COUN?", "1;+0")], LIMITS) as smu:
        smu.wait_idle()


def test_idempotent_fetch_is_retried_after_a_garbled_block():
    script = INIT + [(FETCH, b"#8\n"), (FETCH, block([5e-6]))]
    with expected_protocol(B2900, script, LIMITS) as smu:
        assert smu.fetch_currents(1)[0] == 5e-6
        assert smu.transport.traffic.retries == 1


def test_fetch_gives_up_after_retries_with_outputs_off():
    script = INIT + [(FETCH, None)] * 3 + [(":OUTP1 OFF;:OUTP2 OFF", None)]
    with pytest.raises(TransportTimeout):
        with expected_protocol(B2900, script, LIMITS) as smu:
            smu.fetch_currents(1)


def test_malformed_tail_is_a_protocol_error():
    script = INIT + [(FETCH, block([1e-6], tail=b";x"))] * 3 + [(":OUTP1 OFF;:OUTP2 OFF", None)]
    with pytest.raises(ProtocolError):
        with expected_protocol(B2900, script, LIMITS) as smu:
            smu.fetch_currents(1)


def test_dc_commands_check_their_errors():
    script = INIT + [
        (":SENS1:CURR:PROT 1.000000e-04;:SYST:ERR:ALL?", NOERR),
        (":SOUR2:FUNC:SHAP DC;:SOUR2:VOLT:MODE FIX;:SOUR2:VOLT 1.500000e+00;:OUTP2 ON;:SYST:ERR:ALL?", NOERR),
        (":OUTP2 OFF;:SYST:ERR:ALL?", NOERR),
    ]
    with expected_protocol(B2900, script, LIMITS) as smu:
        smu.set_compliance(1, 1e-4)
        smu.source_voltage(2, 1.5)
        smu.output(2, False)


def test_close_turns_outputs_off_and_confirms():
    t = ExpectedTransport(INIT + [OFF, (":OUTP1?;:OUTP2?", "0;0")])
    with pytest.raises(RuntimeError):
        with B2900(t, LIMITS):
            raise RuntimeError("experiment failed")
    t.assert_done()
    assert t._closed


def test_close_reports_an_output_it_could_not_confirm_off():
    """Defect: close() never confirmed that the outputs are off."""
    t = ExpectedTransport(INIT + [OFF, (":OUTP1?;:OUTP2?", "0;1")])
    with pytest.raises(InstrumentError, match="still reported on"):
        B2900(t, LIMITS).close()
    t = ExpectedTransport(INIT + [OFF, (":OUTP1?;:OUTP2?", None)] + [(None, None)])
    with pytest.raises(InstrumentError, match="could not confirm"):
        B2900(t, LIMITS).close()


# ---------------------------------------------------------------------------------- safety
def _fresh() -> tuple[B2900, ExpectedTransport]:
    t = ExpectedTransport(INIT)
    smu = B2900(t, LIMITS)
    t.traffic.clear()
    return smu, t


CALLS = [
    ("pulse amplitude", lambda s: s.pulse(4.5, 1e-4, 1e-4)),
    ("negative pulse amplitude", lambda s: s.pulse_list([1.0, -4.01], 1e-4, 1e-4)),
    ("pulse too long", lambda s: s.pulse(2.0, 2e-3, 1e-4)),
    ("pulse below the model's 50 us", lambda s: s.pulse(2.0, 1e-6, 1e-4)),
    ("pulse compliance", lambda s: s.pulse(2.0, 1e-4, 2e-3)),
    ("pulse base", lambda s: s.pulse(2.0, 1e-4, 1e-4, base=1.0)),
    ("gate list", lambda s: s.pulse_list([1.0, 1.0], 1e-4, 1e-4, gates=[1.0, 3.5])),
    ("negative gate", lambda s: s.pulse_list([1.0], 1e-4, 1e-4, gates=[-0.1])),
    ("bool peaks", lambda s: s.pulse_list([True], 1e-4, 1e-4)),
    ("empty list", lambda s: s.pulse_list([], 1e-4, 1e-4)),
    ("read voltage", lambda s: s.measure_list(4, 0.5, 1e-3, 1e-4)),
    ("read gate", lambda s: s.measure_list(4, 0.1, 1e-3, 1e-4, gate=3.1)),
    ("read aperture", lambda s: s.measure_list(4, 0.1, 5e-2, 1e-4)),
    ("read compliance", lambda s: s.measure_list(4, 0.1, 1e-3, 0.5)),
    ("count 2.5", lambda s: s.measure_list(2.5, 0.1, 1e-3, 1e-4)),
    ("count True", lambda s: s.measure_list(True, 0.1, 1e-3, 1e-4)),
    ("count 0", lambda s: s.measure_list(0, 0.1, 1e-3, 1e-4)),
    ("DC on the bit line above the read range", lambda s: s.source_voltage(1, 1.0)),
    ("DC gate above range", lambda s: s.source_voltage(2, 3.3)),
    ("compliance", lambda s: s.set_compliance(1, 0.01)),
    ("negative compliance", lambda s: s.set_compliance(2, -1e-4)),
    ("channel 1.0", lambda s: s.output(1.0, False)),
    ("on = 1", lambda s: s.output(1, 1)),
    ("spot read voltage", lambda s: s.spot_current(-0.4, 1e-3, 1e-4)),
    ("NaN amplitude", lambda s: s.pulse(float("nan"), 1e-4, 1e-4)),
]


@pytest.mark.parametrize("name,call", CALLS, ids=[c[0] for c in CALLS])
def test_out_of_limit_requests_send_nothing(name, call):
    smu, t = _fresh()
    with pytest.raises((SafetyLimitError, ValueError)):
        call(smu)
    assert t.traffic.entries == []


def test_bad_channel_configuration():
    with pytest.raises(ValueError):
        B2900(ExpectedTransport([]), LIMITS, bitline_channel=2, gate_channel=2)
    with pytest.raises(SafetyLimitError):
        B2900(ExpectedTransport([]), LIMITS, bitline_channel=True)


def test_pulse_and_read_is_one_round_trip():
    script = INIT + [(_pulse_msg("2.000000e+00", "1.000000e+00", 1), None), (_read_msg(1), None), (FETCH, block([2e-6]))]
    with expected_protocol(B2900, script, LIMITS) as smu:
        assert smu.pulse_and_read(2.0, 1.0, 50e-6, 1e-4, 0.1, 2.5, 1e-3, 1e-4) == 2e-6
        assert smu.transport.traffic.queries == 2 + 1
