"""Switch-matrix driver: exact exchanges, route verification, wiring checks, close."""

from __future__ import annotations

import pytest

from drivers.errors import InstrumentError
from drivers.instruments.switch_matrix import MatrixWiring, SwitchMatrix
from drivers.transport_testing import ExpectedTransport, expected_protocol

IDN = "Keysight Technologies,B2201A,0,1.0"
INIT = [("*IDN?", IDN), ("*RST;*CLS;:ROUT:OPEN:CARD ALL", None), (":SYST:ERR?", '+0,"No error"')]
WIRING = MatrixWiring()


def test_constructor_traffic():
    with expected_protocol(SwitchMatrix, INIT, WIRING, (8, 8)) as m:
        assert m.identity == IDN


def test_select_closes_three_relays_and_verifies_them():
    script = INIT + [
        (":ROUT:OPEN:CARD ALL;:ROUT:CLOS (@00106,00212,00320)", None),
        (":ROUT:CLOS? (@00106,00212,00320)", "1,1,1"),
        (":ROUT:OPEN:CARD ALL", None),
    ]
    with expected_protocol(SwitchMatrix, script, WIRING, (8, 8)) as m:
        m.select(3, 5)
        assert m.selected == (3, 5)
        m.release()


def test_select_on_a_numbered_card():
    wiring = MatrixWiring(card=2, bitline_first=1, wordline_first=13, sourceline_first=25)
    script = [("*IDN?", IDN), ("*RST;*CLS;:ROUT:OPEN:CARD 2", None), (":SYST:ERR?", '+0,"No error"'),
              (":ROUT:OPEN:CARD 2;:ROUT:CLOS (@20101,20213,20325)", None), (":ROUT:CLOS? (@20101,20213,20325)", "1,1,1")]
    with expected_protocol(SwitchMatrix, script, wiring, (12, 12)) as m:
        m.select(0, 0)


def test_unconfirmed_route_raises_with_the_error_queue():
    script = INIT + [
        (":ROUT:OPEN:CARD ALL;:ROUT:CLOS (@00101,00209,00317)", None),
        (":ROUT:CLOS? (@00101,00209,00317)", "1,0,1"),
        (":SYST:ERR?", '-222,"Data out of range"'),
        (":SYST:ERR?", '+0,"No error"'),
    ]
    with pytest.raises(InstrumentError, match="-222"):
        with expected_protocol(SwitchMatrix, script, WIRING, (8, 8)) as m:
            m.select(0, 0)


def test_garbled_state_reply_is_retried():
    script = INIT + [
        (":ROUT:OPEN:CARD ALL;:ROUT:CLOS (@00101,00209,00317)", None),
        (":ROUT:CLOS? (@00101,00209,00317)", "1,\x7f1,1"),
        (":ROUT:CLOS? (@00101,00209,00317)", "1,1,1"),
    ]
    with expected_protocol(SwitchMatrix, script, WIRING, (8, 8)) as m:
        m.select(0, 0)


def test_close_opens_all_relays():
    t = ExpectedTransport(INIT + [(":ROUT:OPEN:CARD ALL", None)])
    with SwitchMatrix(t, WIRING, (8, 8)):
        pass
    t.assert_done()


@pytest.mark.parametrize("call", [lambda m: m.select(8, 0), lambda m: m.select(0, -1)])
def test_cells_off_the_array_send_nothing(call):
    t = ExpectedTransport(INIT)
    m = SwitchMatrix(t, WIRING, (8, 8))
    t.traffic.clear()
    with pytest.raises(ValueError):
        call(m)
    assert t.traffic.entries == []


def test_wiring_is_checked_before_any_traffic():
    t = ExpectedTransport([])
    with pytest.raises(ValueError, match="overlap"):
        SwitchMatrix(t, MatrixWiring(wordline_first=5), (8, 8))
    with pytest.raises(ValueError, match="outside"):
        SwitchMatrix(t, WIRING, (40, 8))
    assert t.traffic.entries == []
