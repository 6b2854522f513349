"""The SMU hooks the pulse-source path uses: B1500.dv_command (validated, nothing sent) and
B2900.hold_voltages (one write, every level checked before it)."""

from __future__ import annotations

import pytest

from drivers.errors import SafetyLimitError
from drivers.instruments.b1500 import B1500
from drivers.instruments.b2900 import B2900
from drivers.limits import SafetyLimits
from drivers.transport_testing import expected_protocol

LIMITS = SafetyLimits(max_v_pulse=4.0, max_v_gate=3.0, max_v_read=0.3, max_compliance=1e-3, max_width=1e-3, min_width=1e-8)
B29_IDN = "Keysight Technologies,B2902A,MY51141234,3.4.2011.5100"
B29_INIT = [("*IDN?", B29_IDN), ("*RST;*CLS", None),
            (':FORM:DATA REAL,64;:FORM:BORD SWAP;:FORM:ELEM:SENS CURR,STAT;'
             ':SOUR1:FUNC:MODE VOLT;:SENS1:FUNC "CURR";:SOUR2:FUNC:MODE VOLT;:SENS2:FUNC "CURR";:SYST:ERR:ALL?', '+0,"No error"')]
B15_INIT = [("*IDN?", "Agilent Technologies,B1500A,0,A.06.01"), ("*RST", None),
            ("UNT?", "B1517A,0;B1517A,0;B1511A,0;0,0;0,0;0,0;0,0;0,0;0,0;0,0"), ("FMT 1,0;AAD 1,0;CN 1,2;ERRX?", '0,"No Error."')]


def test_b2900_hold_voltages_one_write():
    msg = (":SOUR1:FUNC:SHAP DC;:SOUR1:VOLT:MODE FIX;:SOUR1:VOLT 0.000000e+00;:OUTP1 ON;"
           ":SOUR2:FUNC:SHAP DC;:SOUR2:VOLT:MODE FIX;:SOUR2:VOLT 1.200000e+00;:OUTP2 ON")
    with expected_protocol(B2900, B29_INIT + [(msg, None)], LIMITS) as smu:
        smu.hold_voltages({1: 0.0, 2: 1.2})


@pytest.mark.parametrize("levels", [{1: 0.0, 2: 3.5}, {1: 0.5, 2: 1.0}, {1: float("nan")}, {1: 0.0, 2: "1"}])
def test_b2900_hold_voltages_refuses_before_any_byte(levels):
    with expected_protocol(B2900, B29_INIT, LIMITS) as smu:
        with pytest.raises((SafetyLimitError, TypeError, ValueError)):
            smu.hold_voltages(levels)


def test_b1500_dv_command_sends_nothing_and_validates():
    with expected_protocol(B1500, B15_INIT, LIMITS, read_termination="\r\n") as smu:
        assert smu.dv_command(1, 0.0, 1e-3) == "DV 1,0,0.000000e+00,1.000000e-03"
        assert smu.dv_command(2, 1.2, 1e-3) == "DV 2,0,1.200000e+00,1.000000e-03"
        with pytest.raises((SafetyLimitError, ValueError)):
            smu.dv_command(2, 3.5, 1e-3)  # above max_v_gate
        with pytest.raises((SafetyLimitError, ValueError)):
            smu.dv_command(1, 0.5, 1e-3)  # the bit line stays within the read range
