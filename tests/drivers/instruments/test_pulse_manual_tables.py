"""Every command the pulse-source drivers send appears in their section of MANUALS.md."""

from __future__ import annotations

import re
from pathlib import Path

from drivers.instruments.b1525a_spgu import B1525A
from drivers.instruments.waveform_generator import WaveformGenerator
from drivers.limits import SafetyLimits
from pulse_recording import RecordingTransport

MANUALS = Path(__file__).resolve().parents[3] / "drivers" / "instruments" / "MANUALS.md"
LIMITS = SafetyLimits(max_v_pulse=5.0, max_v_gate=3.0, max_v_read=0.3, max_compliance=1e-3, max_width=1e-3, min_width=1e-8)


def _section(title: str) -> str:
    text = MANUALS.read_text()
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def _heads(messages: list[str]) -> set[str]:
    out = set()
    for message in messages:
        for command in message.split(";"):
            head = command.split(" ")[0]
            out.add(re.sub(r"^(OUTP|SOUR|TRIG)\d", r"\1n", re.sub(r":(OUTP|SOUR|TRIG)\d", r":\1n", head)))
    return out


def _session(driver, transport):
    for peak, width in ((2.0, 1e-7), (-1.5, 1e-7), (-2.5, 1e-7), (2.0, 1e-6), (2.0, 1e-7)):
        driver.pulse(peak, width)
    driver.check_errors()
    driver.close()
    return _heads(transport.sent)


def test_spgu_commands_are_in_the_table():
    def answer(m):
        return ("B1517A,0;B1517A,0;0,0;0,0;B1525A,0;0,0;0,0;0,0;0,0;0,0" if m == "UNT?" else
                '0,"No Error."' if m.endswith("ERRX?") else "0" if m.endswith("SPST?") else None)

    t = RecordingTransport(answer, read_termination="\r\n")
    heads = _session(B1525A(t, LIMITS), t)
    assert {"SPT", "SPV", "SPPER", "SRP", "SPST?", "SPP", "CL", "CN"} <= heads
    table = _section("Keysight B1525A SPGU")
    assert sorted(h for h in heads if f"`{h}" not in table and f"`{h} " not in table) == []


def test_generator_commands_are_in_the_table():
    def answer(m):
        return ("Agilent Technologies,33522B,0,1" if m == "*IDN?" else '+0,"No error"' if m.endswith("SYST:ERR?") else
                "1" if m.endswith("*OPC?") else "0" if m.endswith("OUTP1?") else None)

    t = RecordingTransport(answer)
    heads = _session(WaveformGenerator(t, LIMITS), t)
    assert {"SOURn:PULS:WIDT", "OUTPn:POL", "*TRG", "SYST:ERR?", "OUTPn?"} <= heads
    table = _section("Keysight 33500B")
    assert sorted(h for h in heads if h not in table) == []
