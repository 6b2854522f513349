"""Array board: driver exchanges (CRC-framed), the C firmware over a pty through pyserial,
the simulated board, and parity between firmware and simulation."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from drivers.instruments.array_board import ArrayBoard, BoardError, crc16, frame
from drivers.errors import ProtocolError, SafetyLimitError
from drivers.limits import SafetyLimits
from drivers.sim.instruments.array_board import SimArrayBoard
from drivers.sim.instruments.base import Faults
from drivers.transport import SerialTransport, SimTransport
from drivers.transport_testing import ExpectedTransport, expected_protocol

LIMITS = SafetyLimits(max_v_gate=3.0)
FIRMWARE = Path(__file__).resolve().parents[3] / "firmware" / "array_board"
IDN = "OK IDN HIL-LAB,AB-1T1R,0001,1.0.0,128x128"
INIT = [(frame("IDN?"), frame(IDN)), (frame("RST"), frame("OK RST")), (frame("GSRC EXT"), frame("OK GSRC EXT"))]


def test_crc16_check_value():
    assert crc16(b"123456789") == 0x29B1  # CRC-16/CCITT-FALSE
    assert frame("SEL 3 5") == "SEL 3 5*" + f"{crc16(b'SEL 3 5'):04X}"


def test_constructor_traffic():
    with expected_protocol(ArrayBoard, INIT, LIMITS) as b:
        assert b.shape == (128, 128)
        assert b.identity == "HIL-LAB,AB-1T1R,0001,1.0.0"


def test_select_release_gate_and_status():
    script = INIT + [
        (frame("SEL 3 5"), frame("OK SEL 3 5")),
        (frame("DAC 19660"), frame("OK DAC 19660")),
        (frame("STAT?"), frame("OK STAT 3 5 3 19660 EXT 0 0 0")),
        (frame("OFF"), frame("OK OFF")),
    ]
    with expected_protocol(ArrayBoard, script, LIMITS) as b:
        b.select(3, 5)
        assert b.set_gate(1.5) == pytest.approx(1.5, abs=5e-5)
        assert b.status() == {"word_line": 3, "bit_line": 5, "source_line": 3, "dac_code": 19660, "gate_source": "EXT",
                              "armed": 0, "pointer": 0, "triggers": 0}
        b.release()


def test_load_cells_verifies_the_list_crc_and_caches_it():
    hexes = "000100020000" + "000300040000"
    script = INIT + [
        (frame(f"LOAD 0 2 {hexes}"), frame(f"OK LOAD 0 2 2 {crc16(hexes.encode()):04X}")),
        (frame("TRIG 1"), frame("OK TRIG 1")),
    ]
    with expected_protocol(ArrayBoard, script, LIMITS) as b:
        assert b.load_cells([1, 3], [2, 4]) == 1
        assert b.load_cells([1, 3], [2, 4]) == 0  # already armed: no traffic
        assert b.is_loaded([1, 3], [2, 4]) and not b.is_loaded([1, 3], [2, 5])
        assert b.trigger() == 1
        assert not b.is_loaded([1, 3], [2, 4])  # the pointer moved: the cache is void


def test_long_lists_go_in_chunks():
    rows = np.arange(1500) % 128
    cols = np.arange(1500) // 128
    chunks = []
    for off in (0, 1000):
        h = "".join(f"{r:04X}{c:04X}0000" for r, c in zip(rows[off:off + 1000], cols[off:off + 1000]))
        n = min(1000, 1500 - off)
        chunks.append((frame(f"LOAD {off} 1500 {h}"), frame(f"OK LOAD {off} {n} 1500 {crc16(h.encode()):04X}")))
    with expected_protocol(ArrayBoard, INIT + chunks, LIMITS) as b:
        assert b.load_cells(rows, cols) == 2


def test_corrupted_reply_is_retried_then_accepted():
    bad = frame("OK SEL 3 5")[:-1] + ("0" if frame("OK SEL 3 5")[-1] != "0" else "1")
    script = INIT + [(frame("SEL 3 5"), bad), (frame("SEL 3 5"), frame("OK SEL 3 5"))]
    with expected_protocol(ArrayBoard, script, LIMITS) as b:
        b.select(3, 5)
        assert b.transport.traffic.retries == 1


def test_err1_from_the_board_is_retried():
    script = INIT + [(frame("OFF"), frame("ERR 1 CRC")), (frame("OFF"), frame("OK OFF"))]
    with expected_protocol(ArrayBoard, script, LIMITS) as b:
        b.release()


def test_refusal_raises_board_error_without_retry():
    script = INIT + [(frame("DAC 65535"), frame("ERR 3 DAC"))]
    with pytest.raises(BoardError, match="ERR 3"):
        with expected_protocol(ArrayBoard, script, LIMITS, dac_vref=3.0) as b:
            b.set_gate(3.0)


def test_wrong_echo_is_a_protocol_error():
    script = INIT + [(frame("SEL 3 5"), frame("OK SEL 3 6"))] * 3
    with pytest.raises(ProtocolError, match="echo"):
        with expected_protocol(ArrayBoard, script, LIMITS) as b:
            b.select(3, 5)


def test_trigger_is_not_retried():
    script = INIT + [(frame("TRIG 2"), None)]
    with pytest.raises(Exception):
        with expected_protocol(ArrayBoard, script, LIMITS) as b:
            b.trigger(2)


STAT_OFF = (frame("STAT?"), frame("OK STAT - - - 0 EXT 0 0 7"))


def test_close_releases_lines_and_confirms():
    t = ExpectedTransport(INIT + [(frame("OFF"), frame("OK OFF")), STAT_OFF])
    with ArrayBoard(t, LIMITS):
        pass
    t.assert_done()


def test_close_logs_lines_it_could_not_confirm_released(caplog):
    t = ExpectedTransport(INIT + [(frame("OFF"), frame("OK OFF")), (frame("STAT?"), frame("OK STAT 1 2 1 0 EXT 0 0 7"))])
    ArrayBoard(t, LIMITS).close()  # a router logs instead of raising
    assert "still reported on" in caplog.text and t._closed


@pytest.mark.parametrize("call", [
    lambda b: b.set_gate(3.2),
    lambda b: b.set_gate(-0.1),
    lambda b: b.load_cells([0, 1], [0, 1], gates=[1.0, 3.01]),
    lambda b: b.select(128, 0),
    lambda b: b.load_cells([0, 200], [0, 0]),
])
def test_out_of_limit_requests_send_nothing(call):
    t = ExpectedTransport(INIT)
    b = ArrayBoard(t, LIMITS)
    t.traffic.clear()
    with pytest.raises((SafetyLimitError, ValueError)):
        call(b)
    assert t.traffic.entries == []


# ---------------------------------------------------------------------------------- firmware
@pytest.fixture(scope="module")
def firmware_binary(tmp_path_factory):
    if shutil.which("make") is None or shutil.which("gcc") is None:
        pytest.skip("gcc/make not installed (CI installs them)")
    build = tmp_path_factory.mktemp("fw")
    subprocess.run(["make", "-s", "-C", str(FIRMWARE), f"BUILD={build}"], check=True, timeout=120)
    return build / "array_board_host"


@pytest.fixture
def firmware_port(firmware_binary):
    proc = subprocess.Popen([str(firmware_binary), "--timeout", "60"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        line = proc.stdout.readline().decode().split()
        assert line[0] == "PTY"
        yield line[1]
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    assert proc.returncode == 0


def test_driver_against_the_compiled_firmware(firmware_port):
    with ArrayBoard(SerialTransport(firmware_port, timeout=2.0), LIMITS, dac_vref=5.0, external_gate=False) as b:
        assert b.shape == (128, 128)
        b.select(3, 5)
        assert b.set_gate(1.2) == pytest.approx(1.2, abs=1e-4)
        st = b.status()
        assert (st["word_line"], st["bit_line"], st["source_line"], st["gate_source"]) == (3, 5, 3, "DAC")
        assert b.load_cells([1, 2, 7], [4, 5, 6], gates=[0.8, 0.9, 1.0]) == 1
        st = b.status()
        assert (st["armed"], st["pointer"], st["word_line"], st["bit_line"]) == (3, 0, 1, 4)
        assert st["dac_code"] == int(np.rint(0.8 / 5 * 65535))
        assert b.trigger(4) == 1  # wraps modulo the list length
        assert b.status()["bit_line"] == 5
        rows = np.arange(1200) % 128
        assert b.load_cells(rows, rows[::-1]) == 2
        assert b.status()["armed"] == 1200
        with pytest.raises(BoardError, match="ERR 3"):
            b._command("SEL 128 0", "SEL", idempotent=True)
        b.release()
        st = b.status()
        assert (st["word_line"], st["bit_line"], st["armed"]) == (None, None, 0)


def test_firmware_rejects_bad_crc_and_long_lines(firmware_port):
    t = SerialTransport(firmware_port, timeout=2.0)
    try:
        assert t.query("IDN?*0000") == frame("ERR 1 CRC")
        assert t.query("X" * 13000) == frame("ERR 4 LINE")
        assert t.query(frame("LOAD 0 1 00010002000")) == frame("ERR 6 LOAD")
        assert t.query(frame("TRIG")) == frame("ERR 7 TRIG")
    finally:
        t.close()


SCRIPT = [
    "RST", "SEL 3 5", "STAT?", "WL 7", "BL OFF", "SL 127", "STAT?", "DAC 1000", "DAC 65536", "GSRC EXT",
    "GSRC FOO", "LOAD 0 3 000100020003000400050006000700080009", "STAT?", "TRIG", "TRIG 5", "STAT?",
    "LOAD 2 3 000100020003", "LOAD 0 1 0080000000000", "SEL 1", "SEL 1 2 3", "TRIG", "NOPE", "", "OFF", "STAT?",
]


def test_simulated_board_speaks_exactly_like_the_firmware(firmware_port):
    """Same command lines, byte-identical replies (IDN aside, which names the model)."""
    sim = SimArrayBoard(None, (128, 128))
    t_fw = SerialTransport(firmware_port, timeout=2.0)
    t_sim = SimTransport(sim)
    try:
        for body in SCRIPT:
            assert t_sim.query(frame(body)) == t_fw.query(frame(body)), body
        assert t_sim.query("SEL 1 1*FFFF") == t_fw.query("SEL 1 1*FFFF")
    finally:
        t_fw.close()


def test_sim_board_bit_flips_are_caught_and_retried():
    sim = SimArrayBoard(None, (16, 16), faults=Faults(p_garble=0.1, p_error=0.05, seed=3))
    b = ArrayBoard(SimTransport(sim, retries=6), LIMITS)
    for k in range(40):
        b.select(k % 16, (3 * k) % 16)
    assert sim.counters.garbles > 0
    assert b.transport.traffic.retries >= 1
    assert sim.counters.errors > 0  # commands that "arrived corrupted" (ERR 1) were resent too
    st = b.status()
    assert (st["word_line"], st["bit_line"]) == (39 % 16, (3 * 39) % 16)
