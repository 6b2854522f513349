"""Bench TOML: validated into typed objects before any instrument is touched."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest

from drivers.bench import BenchArray, BenchConfigError, load_bench, parse_bench

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SIM = tomllib.loads((EXAMPLES / "bench-sim.toml").read_text())


@pytest.mark.parametrize("name", ["bench-sim.toml", "bench-b2900-board.toml", "bench-b1500-matrix.toml"])
def test_examples_load(name):
    cfg = load_bench(EXAMPLES / name)
    assert cfg.limits.max_v_read <= 0.3
    assert cfg.technology.v_read <= cfg.limits.max_v_read
    assert cfg.smu.model in ("b2900", "b1500")


def test_sim_example_values():
    cfg = load_bench(EXAMPLES / "bench-sim.toml")
    assert cfg.shape == (8, 8)
    assert cfg.smu.resource == "TCPIP::127.0.0.1::5025::SOCKET" and cfg.smu.backend == "@py"
    assert (cfg.smu.bitline_channel, cfg.smu.gate_channel) == (1, 2)
    assert cfg.router.model == "array_board" and cfg.sim.host == "127.0.0.1"
    assert cfg.limits.max_v_pulse == 4.0 and cfg.timing.aperture == 1e-3
    assert cfg.technology.name == "hfo2"


def _with(section, key, value):
    data = copy.deepcopy(SIM)
    if value is None:
        data[section].pop(key)
    else:
        data[section][key] = value
    return data


# (section, field, bad value, words the message must contain)
BAD = [
    ("limits", "max_v_pulse", -1.0, ["limits.max_v_pulse", "-1.0", "[0.01, 20] V"]),
    ("limits", "max_compliance", 1.0, ["limits.max_compliance", "1.0", "A"]),
    ("limits", "min_width", 0.5, ["limits.min_width", "max_width"]),
    ("limits", "max_v_read", "0.1", ["limits.max_v_read", "'0.1'"]),
    ("timing", "aperture", 0.1, ["timing.aperture", "0.1", "s"]),
    ("smu", "model", "k2400", ["smu.model", "k2400", "b2900", "b1500"]),
    ("smu", "timeout", 0.0, ["smu.timeout", "0.0"]),
    ("smu", "gate_channel", 1, ["smu.gate_channel", "equals smu.bitline_channel"]),
    ("smu", "resource", None, ["smu.resource is missing"]),
    ("router", "model", "mux", ["router.model", "mux"]),
    ("router", "baudrate", 12.5, ["router.baudrate", "12.5", "integer"]),
    ("bench", "shape", [8], ["bench.shape", "[8]"]),
    ("bench", "shape", [0, 8], ["bench.shape", "1 <= rows"]),
    ("bench", "technology", "gold", ["bench.technology", "gold", "hfo2"]),
    ("bench", "batch", 5000, ["bench.batch", "5000", "2500"]),
    ("bench", "read_compliance", 0.5, ["bench.read_compliance", "0.5"]),
    ("bench", "v_gate_read", 5.0, ["bench.v_gate_read", "5.0", "[0, 3] V"]),
    ("bench", "colour", "red", ["unknown field", "colour"]),
    ("sim", "p_timeout", 0.9, ["sim.p_timeout", "0.9", "[0, 0.5]"]),
]


@pytest.mark.parametrize("section,key,value,words", BAD, ids=[f"{b[0]}.{b[1]}={b[2]!r}" for b in BAD])
def test_bad_fields_name_field_value_and_range(section, key, value, words):
    with pytest.raises(BenchConfigError) as info:
        parse_bench(_with(section, key, value))
    for w in words:
        assert w in str(info.value), (w, str(info.value))


def test_operating_overrides_and_read_voltage_above_limit():
    data = copy.deepcopy(SIM)
    data["bench"]["operating"] = {"v_read": 0.2, "width_set": 2e-4, "width_reset": 2e-4, "width_form": 2e-4}
    cfg = parse_bench(data)
    assert cfg.technology.v_read == 0.2 and cfg.technology.width_set == 2e-4
    data["bench"]["operating"] = {"v_read": 0.5}
    with pytest.raises(BenchConfigError, match="v_read = 0.5 V exceeds limits.max_v_read"):
        parse_bench(data)
    data["bench"]["operating"] = {"v_gate_min": 2.0, "v_gate_max": 1.0}
    with pytest.raises(BenchConfigError, match="v_gate_min"):
        parse_bench(data)


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(BenchConfigError, match="does not exist"):
        load_bench(tmp_path / "nope.toml")
    p = tmp_path / "bad.toml"
    p.write_text("[bench\nshape = 3")
    with pytest.raises(BenchConfigError, match="not valid TOML"):
        load_bench(p)


def test_bad_config_touches_no_instrument(tmp_path, mocker):
    visa = mocker.patch("pyvisa.ResourceManager")
    ser = mocker.patch("serial.Serial")
    text = (EXAMPLES / "bench-sim.toml").read_text().replace("max_v_pulse = 4.0", "max_v_pulse = 40.0")
    p = tmp_path / "bench.toml"
    p.write_text(text)
    with pytest.raises(BenchConfigError, match="limits.max_v_pulse = 40.0"):
        BenchArray.from_config(load_bench(p))
    visa.assert_not_called()
    ser.assert_not_called()


def test_gate_from_board_needs_a_board():
    data = copy.deepcopy(SIM)
    data["smu"]["gate_channel"] = 0
    parse_bench(data)  # board DAC drives the gate: fine
    data["router"] = {"model": "switch_matrix", "resource": "GPIB0::22::INSTR"}
    with pytest.raises(BenchConfigError, match="gate_channel = 0"):
        parse_bench(data)


def test_terminations_default_to_the_manuals_and_can_be_overridden():
    cfg = load_bench(EXAMPLES / "bench-sim.toml")
    assert cfg.smu.terminations() == ("\n", "\n") and cfg.router.terminations() == ("\n", "\n")
    b1500 = load_bench(EXAMPLES / "bench-b1500-matrix.toml")
    assert b1500.smu.terminations() == ("\r\n", "\n")  # FLEX data end in CR/LF
    over = load_bench(EXAMPLES / "bench-b1500-matrix.toml", {"smu": {"write_termination": "\r\n"}})
    assert over.smu.terminations() == ("\r\n", "\r\n")
    with pytest.raises(BenchConfigError, match="smu.read_termination"):
        load_bench(EXAMPLES / "bench-sim.toml", {"smu": {"read_termination": ";"}})
    with pytest.raises(BenchConfigError, match="smu.trigger_line"):
        load_bench(EXAMPLES / "bench-sim.toml", {"smu": {"trigger_line": "EXT99"}})


@pytest.mark.parametrize("name", ["bench-sim.toml", "bench-b2900-board.toml", "bench-b1500-matrix.toml"])
def test_example_pulse_widths_are_legal_for_their_smu(name):
    """The shipped bench files' pulses are within their SMU's range (B2900 >= 50 us, B1500 SMU >= 0.5 ms)."""
    cfg = load_bench(EXAMPLES / name)
    low = {"b2900": 50e-6, "b1500": 5e-4}[cfg.smu.model]
    t = cfg.technology
    assert min(t.width_set, t.width_reset, t.width_form) >= low
    assert cfg.limits.max_width >= max(t.width_set, t.width_reset, t.width_form)


def test_smu_pulse_widths_below_the_manual_are_refused_at_load():
    with pytest.raises(BenchConfigError, match=r"bench.operating.width_set = 1e-06 s is below the B2900's shortest pulse \(5e-05 s\)"):
        load_bench(EXAMPLES / "bench-sim.toml", {"bench": {"operating": {"width_set": 1e-6}}})
