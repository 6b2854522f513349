"""Transports at their seams: pyvisa.ResourceManager and serial.Serial mocked with pytest-mock."""

from __future__ import annotations

import pytest

from drivers.errors import InstrumentError, ProtocolError, TransportTimeout
from drivers.transport import (
    RECEIVED,
    SENT,
    SerialTransport,
    SimTransport,
    VisaTransport,
    make_block,
    parse_block_header,
)


class VisaTimeout(Exception):
    pass


@pytest.fixture
def visa(mocker):
    """pyvisa.ResourceManager mocked: returns a resource whose reads come from a list."""
    import pyvisa

    rm = mocker.MagicMock(name="ResourceManager()")
    mocker.patch("pyvisa.ResourceManager", return_value=rm)
    res = rm.open_resource.return_value
    res.replies = []

    def timeout_error():
        return pyvisa.errors.VisaIOError(pyvisa.constants.StatusCode.error_timeout)

    def read_raw():
        if not res.replies:
            raise timeout_error()
        item = res.replies.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    def read_bytes(n, break_on_termchar=False):
        buf = b""
        while len(buf) < n:
            if not res.replies:
                raise timeout_error()
            chunk = res.replies[0]
            take = chunk[: n - len(buf)]
            res.replies[0] = chunk[len(take):]
            if not res.replies[0]:
                res.replies.pop(0)
            buf += take
        return buf

    res.read_raw.side_effect = read_raw
    res.read_bytes.side_effect = read_bytes
    res.timeout_error = timeout_error
    return rm, res


def test_visa_open_write_query_and_log(visa):
    rm, res = visa
    t = VisaTransport("GPIB0::23::INSTR", backend="@py", timeout=2.5, retries=1)
    rm.open_resource.assert_called_once_with("GPIB0::23::INSTR", read_termination="\n", write_termination="", timeout=2500)
    res.replies.append(b"KEYSIGHT,B2902A,1,2\n")
    assert t.query("*IDN?") == "KEYSIGHT,B2902A,1,2"
    t.write(":OUTP1 OFF")
    assert [c.args[0] for c in res.write_raw.call_args_list] == [b"*IDN?\n", b":OUTP1 OFF\n"]
    assert t.traffic.exchanges() == [(SENT, b"*IDN?\n"), (RECEIVED, b"KEYSIGHT,B2902A,1,2\n"), (SENT, b":OUTP1 OFF\n")]
    assert (t.traffic.queries, t.traffic.writes) == (1, 2)
    t.close()
    t.close()
    res.close.assert_called_once()
    rm.close.assert_called_once()


def test_visa_block_read_with_tail(visa):
    _, res = visa
    t = VisaTransport("TCPIP::10.0.0.2::5025::SOCKET")
    payload = bytes(range(256)) + b"\n\n"  # binary payload may hold the terminator
    res.replies += [make_block(payload)[:5], make_block(payload)[5:] + b";1;+0\n"]
    data, tail = t.query_block(":FETC:ARR:CURR? (@1);:SENS1:CURR:PROT:TRIP?;:SYST:ERR:COUN?")
    assert data == payload and tail == ";1;+0"


def test_visa_timeout_retried_only_when_idempotent(visa):
    _, res = visa
    t = VisaTransport("GPIB0::1::INSTR", retries=2)
    res.replies += [res.timeout_error(), b"1\n"]
    assert t.query("*OPC?", idempotent=True) == "1"
    assert t.traffic.retries == 1
    res.clear.assert_called_once()  # the input was cleared before the repeat
    res.replies += [res.timeout_error(), b"late\n"]
    with pytest.raises(TransportTimeout):
        t.query(":SYST:ERR:ALL?")  # reading the queue changes it: never repeated
    assert res.write_raw.call_count == 3


def test_visa_partial_line_is_a_timeout(visa):
    _, res = visa
    t = VisaTransport("TCPIP::1.2.3.4::5025::SOCKET", retries=0)
    res.replies.append(b"+1.0E-0")  # pyvisa-py hands back what it has when the peer goes quiet
    with pytest.raises(TransportTimeout):
        t.query("*OPC?", idempotent=True)


def test_visa_open_failure_is_an_instrument_error(mocker):
    rm = mocker.MagicMock()
    rm.open_resource.side_effect = ValueError("no such resource")
    mocker.patch("pyvisa.ResourceManager", return_value=rm)
    with pytest.raises(InstrumentError, match="cannot open VISA resource"):
        VisaTransport("GPIB0::99::INSTR")
    rm.close.assert_called_once()


@pytest.fixture
def port(mocker):
    serial_cls = mocker.patch("serial.Serial")
    p = serial_cls.return_value
    p.incoming = bytearray()

    def read_until(term):
        if term in p.incoming:
            cut = p.incoming.index(term) + len(term)
        else:
            cut = len(p.incoming)
        out = bytes(p.incoming[:cut])
        del p.incoming[:cut]
        return out

    def read(n=1):
        out = bytes(p.incoming[:n])
        del p.incoming[:n]
        return out

    p.read_until.side_effect = read_until
    p.read.side_effect = read
    return serial_cls, p


def test_serial_open_query_and_close(port):
    serial_cls, p = port
    t = SerialTransport("/dev/ttyACM0", baudrate=57600, timeout=0.5)
    serial_cls.assert_called_once_with("/dev/ttyACM0", baudrate=57600, timeout=0.5, write_timeout=0.5)
    p.incoming += b"OK SEL 1 2*ABCD\n"
    assert t.query("SEL 1 2*0000") == "OK SEL 1 2*ABCD"
    p.write.assert_called_once_with(b"SEL 1 2*0000\n")
    t.close()
    p.close.assert_called_once()


def test_serial_timeout_and_retry_drains(port):
    _, p = port
    t = SerialTransport("/dev/ttyUSB0", retries=1)
    calls = {"n": 0}

    def parse(text):
        calls["n"] += 1
        if text.startswith("garbage"):
            raise ProtocolError("bad")
        return text

    p.incoming += b"garbage\n"
    p.write.side_effect = lambda data: p.incoming.extend(b"OK\n") if calls["n"] == 1 else None
    assert t.query_parsed("STAT?*0000", parse, idempotent=True) == "OK"
    p.reset_input_buffer.assert_called()
    p.write.side_effect = None
    with pytest.raises(TransportTimeout):
        t.query("STAT?*0000")  # nothing arrives


def test_serial_open_failure(mocker):
    import serial

    mocker.patch("serial.Serial", side_effect=serial.SerialException("busy"))
    with pytest.raises(InstrumentError, match="cannot open serial port"):
        SerialTransport("/dev/ttyS9")


def test_serial_url_uses_serial_for_url():
    t = SerialTransport("loop://", timeout=0.2)
    assert t.query("PING") == "PING"  # the loopback echoes
    t.close()


def test_block_header_parsing():
    assert parse_block_header(b"#3512") == 512
    assert make_block(b"abc") == b"#13abc"
    for bad in (b"#0", b"3512", b"#3a12", b"#"):
        with pytest.raises(ProtocolError):
            parse_block_header(bad)


class Echo:
    def handle(self, message: bytes) -> bytes:
        return message.upper()


def test_sim_transport_queues_replies_like_an_output_buffer():
    t = SimTransport(Echo())
    t.write("a")
    t.write("b")
    assert t.read() == "A" and t.read() == "B"
    with pytest.raises(TransportTimeout):
        t.read()


def test_closed_transport_refuses():
    t = SimTransport(Echo())
    t.close()
    with pytest.raises(InstrumentError):
        t.write("x")


def test_bad_arguments():
    with pytest.raises(ValueError):
        SimTransport(Echo(), timeout=0)
    with pytest.raises(ValueError):
        SimTransport(Echo(), retries=-1)
