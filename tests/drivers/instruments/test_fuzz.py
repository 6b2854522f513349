"""Fuzz every public driver method (hypothesis): counts, holds, periods, empty channel lists,
wrong types, NaN/inf. Whatever the arguments, either the call is refused before any byte is
sent, or every message on the wire holds only finite numbers within the bench's and the
instrument's limits."""

from __future__ import annotations

import re
import struct

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.errors import ProtocolError
from drivers.instruments.b1500 import B1500
from drivers.instruments.b2900 import B2900
from drivers.limits import SafetyLimits
from drivers.transport import Transport, make_block

LIMITS = SafetyLimits(max_v_pulse=4.0, max_v_gate=3.0, max_v_read=0.3, max_compliance=1e-3, max_width=2e-3, min_width=1e-8)
_NUM = re.compile(r"(?<![A-Za-z])[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|nan|inf)", re.I)


class RecordingTransport(Transport):
    """Records every message and answers each query with a valid reply of the instrument."""

    def __init__(self, replies) -> None:  # type: ignore[no-untyped-def]
        super().__init__(1.0, "\n", "\n", retries=0)
        self.replies = replies
        self.sent: list[str] = []
        self._out = bytearray()

    def _send(self, data: bytes) -> None:
        text = data.decode().rstrip("\n")
        self.sent.append(text)
        self._out.extend(self.replies(text, self.sent))

    def _recv_until(self, terminator: bytes) -> bytes:
        cut = self._out.index(terminator) + len(terminator)
        out = bytes(self._out[:cut])
        del self._out[:cut]
        return out

    def _recv_exact(self, n: int) -> bytes:
        out = bytes(self._out[:n])
        del self._out[:n]
        return out

    def _drain(self) -> None:
        self._out.clear()

    def _close(self) -> None:
        pass


FETCH_POINTS = [1]  # points a bare fetch_currents(n) asks for


def b2900_replies(text: str, sent: list[str]) -> bytes:
    if text == "*IDN?":
        return b"Keysight Technologies,B2902A,0,0\n"
    if text.startswith(":FETC:ARR?"):
        counts = re.findall(r":TRIG1:COUN (\d+)", sent[-2]) if len(sent) > 1 else []
        n = int(counts[-1]) if counts else FETCH_POINTS[0]
        return make_block(struct.pack(f"<{2 * n}d", *([1e-6, 0.0] * n))) + b";+0\n"
    if text.startswith("*OPC?"):
        return b"1;+0\n"
    if text.startswith(":OUTP1?"):
        return b"0;0\n"
    if text.endswith(":SYST:ERR:ALL?"):
        return b'+0,"No error"\n'
    return b""


def b1500_replies(text: str, sent: list[str]) -> bytes:
    if text == "*IDN?":
        return b"Agilent Technologies,B1500A,0,0\n"
    if text == "UNT?":
        return b"B1517A,0;B1517A,0;0,0;0,0;0,0;0,0;0,0;0,0;0,0;0,0\n"
    if text == "*LRN? 0":
        return b"CL\n"
    lines = []
    for part in text.split(";"):
        if part == "XE" and text.startswith("MM 2"):
            n = int(text.split(",")[-2])
            lines.append(",".join(["NAI+001.000E-06"] * n))
        elif part == "XE":
            lines.append("NAI+001.000E-06")
        elif part.startswith(("TI ", "TV ")):
            letter = "ABCDEFGHIJ"[int(part[3:]) - 1]
            lines.append(f"N{letter}I+001.000E-06" if part[1] == "I" else f"N{letter}V+100.000E-03")
        elif part == "ERRX?":
            lines.append('0,"No Error."')
    return "".join(f"{x}\n" for x in lines).encode()


# Values a user might pass by mistake, and plausible ones.
weird = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6), st.booleans(), st.none(),
    st.text(max_size=3), st.sampled_from([0.0, 1e-4, 5e-5, 1e-3, 0.1, 1.0, 2.5, -0.1, 1e-9, 2.5e-3]),
)
channels = st.one_of(st.sampled_from([1, 2, 3, 0, -1, 1.0, True, "1"]), st.integers(-3, 12))
lists = st.one_of(st.lists(weird, max_size=4), st.lists(st.floats(-5, 5), max_size=4), st.just([]))


def _numbers_ok(messages: list[str]) -> None:
    for m in messages:
        for tok in _NUM.findall(m):
            v = float(tok)
            assert np.isfinite(v), f"non-finite number {tok!r} in {m!r}"


def _check_b2900(messages: list[str]) -> None:
    _numbers_ok(messages)
    joined = ";".join(messages)
    for w in re.findall(r"PULS:WIDT ([^;]+)", joined):
        assert 5e-5 <= float(w) <= LIMITS.max_width
    for n in re.findall(r"COUN ([^;]+)", joined):
        assert re.fullmatch(r"\d+", n) and 1 <= int(n) <= 2500
    for lst in re.findall(r"LIST:VOLT ([^;]+)", joined):
        assert all(abs(float(v)) <= LIMITS.max_v_pulse for v in lst.split(","))
    for c in re.findall(r"PROT ([^;]+)", joined):
        assert 0 < float(c) <= LIMITS.max_compliance
    assert "TRUE" not in joined.upper() and "NONE" not in joined.upper()


def _check_b1500(messages: list[str]) -> None:
    _numbers_ok(messages)
    joined = ";".join(messages)
    for h, w, p in re.findall(r"PT ([^,;]+),([^,;]+),([^,;]+)", joined):
        h, w, p = float(h), float(w), float(p)
        assert 0 <= h <= 655.35 and 5e-4 <= w <= LIMITS.max_width and max(5e-3, w + 2e-3) <= p <= 5.0
    assert not re.search(r"(^|;)CN($|;)", joined), "CN alone connects every channel"
    for args in re.findall(r"DV ([^;]+)", joined):
        slot, _, v, i = args.split(",")
        assert 0 < float(i) <= LIMITS.max_compliance
        assert abs(float(v)) <= (LIMITS.max_v_gate if slot == "2" else LIMITS.max_v_read)
    for steps in re.findall(r"WV \d+,1,0,[^,]+,[^,]+,([^,]+),", joined):
        assert re.fullmatch(r"\d+", steps) and 1 <= int(steps) <= 10001


def _call(driver, name, args, kw):
    try:
        getattr(driver, name)(*args, **kw)
    except (ValueError, TypeError):  # SafetyLimitError is a ValueError
        return False
    except ProtocolError:  # the canned reply does not fit the request (e.g. fewer points): not a value sent
        return True
    return True


# Legal arguments; each test call then corrupts at most one of them, so that both legal calls
# (checked on the wire) and every single-argument violation (refused, nothing sent) happen.
v_pulse = st.floats(-4.0, 4.0)
v_read = st.floats(-0.3, 0.3)
v_dc = st.floats(0.0, 0.3)  # legal on the bit line and on the gate
v_gate = st.floats(0.0, 3.0)
v_gate_opt = st.one_of(st.none(), v_gate)
comp = st.floats(1e-9, 1e-3)
width_b29 = st.floats(5e-5, 2e-3)
width_b15 = st.floats(5e-4, 2e-3)
aperture = st.floats(4e-4, 19.4e-3)
count = st.integers(1, 40)
chan = st.sampled_from([1, 2])
volt_list = st.lists(v_pulse, min_size=1, max_size=5)
bad = st.one_of(weird, st.floats(-20.0, 20.0), st.sampled_from([1e-7, 4.9e-5, 4.9e-4, 2.1e-3, 0.31, 3.01, 4.01, -1e-9, 0, 2.5, 3000, []]))

B2900_METHODS = {
    "pulse": st.tuples(v_pulse, width_b29, comp, v_read),
    "pulse_list": st.tuples(volt_list, width_b29, comp, st.none(), v_read),
    "measure_list": st.tuples(count, v_read, aperture, comp, v_gate_opt),
    "spot_current": st.tuples(v_read, aperture, comp),
    "set_compliance": st.tuples(chan, comp),
    "source_voltage": st.tuples(chan, v_dc),
    "output": st.tuples(chan, st.booleans()),
    "pulse_one": st.tuples(v_pulse, v_gate_opt, width_b29, comp),
    "read_one": st.tuples(v_read, v_gate_opt, aperture, comp),
    "fetch_currents": st.tuples(count),
    "wait_idle": st.just(()),
}
B1500_METHODS = {
    "enable": st.lists(chan, min_size=1, max_size=2).map(tuple),
    "disable": st.lists(chan, max_size=2).map(tuple),
    "force_voltage": st.tuples(chan, v_dc, comp),
    "force_current": st.tuples(chan, comp, v_dc),
    "spot_current": st.tuples(chan),
    "spot_voltage": st.tuples(chan),
    "staircase_sweep": st.tuples(v_read, v_read, count, comp, st.floats(0.0, 1.0), st.floats(0.0, 1.0)),
    "pulsed_spot": st.tuples(v_pulse, width_b15, comp, v_read, st.floats(0.0, 1.0), st.none()),
    "pulse_one": st.tuples(v_pulse, v_gate_opt, width_b15, comp),
    "read_one": st.tuples(v_read, v_gate_opt, aperture, comp),
    "pulse_and_read": st.tuples(v_pulse, v_gate_opt, width_b15, comp, v_read, v_gate_opt, aperture, comp),
}


def _draw_args(data, strategy) -> tuple:  # type: ignore[no-untyped-def]
    args = list(data.draw(strategy))
    if args and data.draw(st.booleans()):
        args[data.draw(st.integers(0, len(args) - 1))] = data.draw(bad)
    return tuple(args)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), name=st.sampled_from(sorted(B2900_METHODS)))
def test_b2900_never_sends_an_illegal_value(data, name):
    t = RecordingTransport(b2900_replies)
    smu = B2900(t, LIMITS)
    before = len(t.sent)
    args = _draw_args(data, B2900_METHODS[name])
    if name == "fetch_currents":
        FETCH_POINTS[0] = args[0] if isinstance(args[0], int) and not isinstance(args[0], bool) and args[0] > 0 else 1
    ok = _call(smu, name, args, {})
    new = t.sent[before:]
    if not ok:
        # refused: at most the emergency outputs-off message
        assert all(re.fullmatch(r"(:OUTP\d OFF;?)+", m) for m in new), new
    _check_b2900(new)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), name=st.sampled_from(sorted(B1500_METHODS)))
def test_b1500_never_sends_an_illegal_value(data, name):
    t = RecordingTransport(b1500_replies)
    b = B1500(t, LIMITS)
    t.sent.clear()
    args = _draw_args(data, B1500_METHODS[name])
    ok = _call(b, name, args, {})
    if not ok:
        assert all(m == "DZ;CL" for m in t.sent), t.sent
    _check_b1500(t.sent)


# ---------------------------------------------------------------------------------- routers
from drivers.instruments.array_board import ArrayBoard  # noqa: E402
from drivers.instruments.switch_matrix import MatrixWiring, SwitchMatrix  # noqa: E402
from drivers.sim.instruments.array_board import SimArrayBoard  # noqa: E402
from drivers.sim.instruments.switch_matrix import SimSwitchMatrix  # noqa: E402
from drivers.transport import SimTransport  # noqa: E402

cell = st.integers(0, 7)
ROUTER_METHODS = {
    "select": st.tuples(cell, cell),
    "release": st.just(()),
    "set_gate": st.tuples(v_gate),
    "load_cells": st.tuples(st.lists(cell, min_size=1, max_size=4), st.lists(cell, min_size=1, max_size=4)),
    "trigger": st.tuples(st.integers(1, 3)),
    "status": st.just(()),
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), name=st.sampled_from(sorted(ROUTER_METHODS)))
def test_array_board_never_sends_an_illegal_value(data, name):
    t = SimTransport(SimArrayBoard(None, (8, 8)))
    board = ArrayBoard(t, LIMITS)
    t.traffic.clear()
    args = _draw_args(data, ROUTER_METHODS[name])
    if name == "trigger":
        board.load_cells([0, 1], [0, 1])
        t.traffic.clear()
    if not _call(board, name, args, {}):
        assert t.traffic.entries == []
    for e in t.traffic.entries:
        if e.direction == ">":
            text = e.data.decode()
            _numbers_ok([text.split("*")[0]])
            for code in re.findall(r"^DAC (\S+)\*", text):
                assert 0 <= int(code) <= round(LIMITS.max_v_gate / 5.0 * 65535)
            for r, c in re.findall(r"^SEL (\S+) (\S+)\*", text):
                assert 0 <= int(r) < 8 and 0 <= int(c) < 8


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_switch_matrix_never_sends_an_illegal_route(data):
    t = SimTransport(SimSwitchMatrix(None, MatrixWiring()))
    m = SwitchMatrix(t, MatrixWiring(), (8, 8))
    t.traffic.clear()
    args = _draw_args(data, ROUTER_METHODS["select"])
    if not _call(m, "select", args, {}):
        assert t.traffic.entries == []
    for e in t.traffic.entries:
        for code in re.findall(r"\d{5}", e.data.decode()):
            assert 1 <= int(code[1:3]) <= 3 and 1 <= int(code[3:]) <= 24
