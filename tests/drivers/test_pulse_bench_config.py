"""The [pulser] section of a bench file, the bench as parsed (as_dict), the pulse source's
timing model, and VISA transports that share pyvisa's one ResourceManager."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from drivers.bench import BenchConfigError, load_bench, parse_bench
from drivers.timing import PULSE_SOURCE_OVERHEAD

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SPGU = tomllib.loads((EXAMPLES / "bench-b1500-spgu-matrix.toml").read_text())
AWG = tomllib.loads((EXAMPLES / "bench-b2900-33500b-matrix.toml").read_text())


def _with(base, section, **values):
    data = json.loads(json.dumps(base))
    data.setdefault(section, {}).update(values)
    return data


def test_examples_load_with_their_pulse_sources():
    spgu = parse_bench(SPGU)
    assert spgu.pulser.model == "b1525a" and spgu.pulser.channel == 501 and spgu.pulser.shares_smu_transport
    assert spgu.technology.width_set == 1e-7 and spgu.pulser.load == float("inf")
    awg = parse_bench(AWG)
    assert awg.pulser.model == "33500b" and awg.pulser.resource.startswith("TCPIP::127.0.0.1::")
    assert parse_bench(tomllib.loads((EXAMPLES / "bench-sim.toml").read_text())).pulser is None


def test_timing_model_of_the_pulse_source_unless_the_file_sets_it():
    assert parse_bench(SPGU).timing.pulse_overhead == PULSE_SOURCE_OVERHEAD["b1525a"]
    assert parse_bench(AWG).timing.pulse_overhead == PULSE_SOURCE_OVERHEAD["33500b"]
    assert parse_bench(_with(AWG, "pulser", pulse_overhead=2e-4)).timing.pulse_overhead == 2e-4
    assert parse_bench(_with(AWG, "timing", pulse_overhead=3e-4)).timing.pulse_overhead == 3e-4


@pytest.mark.parametrize("base,section,values,match", [
    (SPGU, "pulser", {"channel": 503}, "not an SPGU channel"),
    (SPGU, "pulser", {"channel": 1101}, r"pulser.channel = 1101 is not an integer in the allowed range \[101, 1002\]"),
    (SPGU, "pulser", {"resource": "GPIB0::1::INSTR"}, "through the B1500's resource"),
    (SPGU, "smu", {"model": "b2900"}, "needs smu.model = 'b1500'"),
    (AWG, "pulser", {"model": "33250a"}, "pulser.model = '33250a' is not allowed"),
    (AWG, "pulser", {"channel": 3}, r"pulser.channel = 3"),
    (AWG, "pulser", {"edge": 0.0}, "pulser.edge"),
    (AWG, "pulser", {"load": -5}, "pulser.load"),
    (AWG, "pulser", {"line": "bit"}, "pulser.line = 'bit' is not allowed"),
    (AWG, "pulser", {"trigger": "IMM"}, "pulser.trigger"),
    (AWG, "pulser", {"colour": 1}, "unknown field"),
])
def test_bad_pulser_fields_name_field_value_and_range(base, section, values, match):
    with pytest.raises(BenchConfigError, match=match):
        parse_bench(_with(base, section, **values))


def test_as_dict_records_the_whole_bench_as_parsed():
    cfg = load_bench(EXAMPLES / "bench-b2900-33500b-matrix.toml")
    d = json.loads(json.dumps(cfg.as_dict(), allow_nan=False))
    assert d["pulser"]["load"] == "inf" and d["pulser"]["model"] == "33500b"
    assert d["smu"]["resource"] == cfg.smu.resource and d["router"]["ground_port"] == 3
    assert d["limits"] == {k: getattr(cfg.limits, k) for k in d["limits"]}
    assert d["timing"]["pulse_overhead"] == cfg.timing.pulse_overhead
    assert d["technology"]["transistor"]["v_th"] == cfg.technology.transistor.v_th
    assert d["shape"] == [8, 8] and d["source"].endswith("bench-b2900-33500b-matrix.toml")


def test_visa_transports_sharing_pyvisas_manager_close_it_with_the_last_one(mocker):
    """pyvisa returns one ResourceManager per VISA library; closing it closes every session,
    so the first instrument to close must not close it under the others."""
    from drivers.transport import VisaTransport

    rm = mocker.MagicMock(name="ResourceManager()")
    mocker.patch("pyvisa.ResourceManager", return_value=rm)
    a = VisaTransport("TCPIP::127.0.0.1::1::SOCKET", backend="@py")
    b = VisaTransport("TCPIP::127.0.0.1::2::SOCKET", backend="@py")
    a.close()
    rm.close.assert_not_called()
    b.close()
    rm.close.assert_called_once()


def test_operating_widths_are_checked_against_the_pulse_source_model():
    with pytest.raises(BenchConfigError, match=r"width_set = 1e-08 s is below the 33500b pulse source's shortest width \(1.6e-08 s\)"):
        parse_bench(_with(AWG, "bench", operating={"width_set": 1e-8}))
    assert parse_bench(_with(SPGU, "bench", operating={"width_set": 1e-8})).technology.width_set == 1e-8
