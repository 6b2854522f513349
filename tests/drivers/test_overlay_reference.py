"""The numpy reference of the max-pool / V_REF IP against a plain-loop restatement, plus validation."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from drivers.overlay import regmap
from drivers.overlay.reference import (CODE_MAX, CODE_MIN, FixedPoint, FixedPointRangeError,
                                       Geometry, GeometryError, maxpool_threshold,
                                       pack_feature_maps, reference_words, unpack_feature_maps)


def loop_reference(frames: np.ndarray, vref: np.ndarray, g: Geometry) -> np.ndarray:
    """Straight from the paper's wording: per filter, max over each window, > V_REF."""
    n = frames.shape[0]
    out = np.zeros((n, g.out_h, g.out_w, g.num_filters), dtype=bool)
    for i in range(n):
        for oy in range(g.out_h):
            for ox in range(g.out_w):
                for f in range(g.num_filters):
                    best = max(int(frames[i, oy * g.stride_h + dy, ox * g.stride_w + dx, f])
                               for dy in range(g.pool_h) for dx in range(g.pool_w))
                    out[i, oy, ox, f] = best > int(vref[f])
    return out


def near_median_vref(frames: np.ndarray, g: Geometry) -> np.ndarray:
    """Per-filter V_REF that about half of the window maxima exceed."""
    q = 1 - 0.5 / (g.pool_h * g.pool_w)
    return np.quantile(frames.reshape(-1, g.num_filters), q, axis=0).astype(np.int16)


GEOMS = [
    Geometry(4, 5, 3, pool_h=2, pool_w=2),
    Geometry(9, 9, 64, pool_h=3, pool_w=3),
    Geometry(6, 7, 5, pool_h=2, pool_w=3, stride_h=3, stride_w=3),
    Geometry.global_pool(5, 4, 7),
    Geometry(3, 4, 1),
]


@pytest.mark.parametrize("g", GEOMS, ids=str)
def test_reference_matches_loops(g: Geometry) -> None:
    rng = np.random.default_rng(7)
    frames = rng.integers(-50, 50, size=(3,) + g.frame_shape).astype(np.int16)
    vref = near_median_vref(frames, g)
    got = maxpool_threshold(frames, vref, g)
    assert got.shape == (3,) + g.feature_shape
    assert np.array_equal(got, loop_reference(frames, vref, g))
    assert 0 < got.mean() < 1          # both values occur: the comparison is exercised


def test_threshold_is_strict_and_signed() -> None:
    g = Geometry(2, 2, 2, pool_h=2, pool_w=2)
    frames = np.array([[[[5, -7], [1, -9]], [[-3, -8], [0, -10]]]], dtype=np.int16)
    assert maxpool_threshold(frames, np.array([5, -8], np.int16), g).tolist() == [[[[False, True]]]]
    assert maxpool_threshold(frames, np.array([4, -7], np.int16), g).tolist() == [[[[True, False]]]]
    extremes = np.full((1, 2, 2, 2), CODE_MAX, np.int16)
    assert not maxpool_threshold(extremes, np.array([CODE_MAX, CODE_MAX], np.int16), g).any()


def test_packing_order_and_roundtrip() -> None:
    g = Geometry(1, 3, 12)                 # 36 bits -> 2 words, 28 bits of padding
    bits = np.zeros((1,) + g.feature_shape, bool)
    bits[0, 0, 0, 0] = True                # bit 0 of word 0
    bits[0, 0, 2, 8] = True                # bit index 2*12 + 8 = 32 -> bit 0 of word 1
    bits[0, 0, 1, 7] = True                # index 19
    words = pack_feature_maps(bits)
    assert words.tolist() == [[1 | (1 << 19), 1]]
    rng = np.random.default_rng(3)
    many = rng.random((5,) + g.feature_shape) < 0.5
    assert np.array_equal(unpack_feature_maps(pack_feature_maps(many), g), many)


@pytest.mark.parametrize("kwargs, match", [
    (dict(height=0, width=4), "height"),
    (dict(height=4, width=1024), "<= 1023"),
    (dict(height=4, width=4, num_filters=65), "num_filters"),
    (dict(height=4, width=4, pool_h=5), "larger than the frame"),
    (dict(height=4, width=4, pool_w=2, stride_w=1), "overlapping"),
    (dict(height=4, width=4, pool_w=256, stride_w=256), "<= 255"),
    (dict(height=2, width=1000, num_filters=64), "running-maximum memory"),
])
def test_geometry_rejected(kwargs: dict, match: str) -> None:
    with pytest.raises(GeometryError, match=match):
        Geometry(**kwargs)


def test_value_checks() -> None:
    g = Geometry(2, 2, 3)
    with pytest.raises(ValueError, match="shape"):
        maxpool_threshold(np.zeros((1, 2, 3, 3), np.int16), np.zeros(3, np.int16), g)
    with pytest.raises(ValueError, match=r"vref must have shape \(3,\)"):
        maxpool_threshold(np.zeros((1, 2, 2, 3), np.int16), np.zeros(4, np.int16), g)
    with pytest.raises(FixedPointRangeError, match="32767"):
        maxpool_threshold(np.zeros((1, 2, 2, 3), np.int32), np.array([0, 0, 40000]), g)
    with pytest.raises(FixedPointRangeError, match="integer"):
        maxpool_threshold(np.zeros((1, 2, 2, 3)), np.zeros(3, np.int16), g)


def test_fixed_point_q3_12() -> None:
    q = FixedPoint(12)
    assert q.lsb_volts == pytest.approx(244.140625e-6)
    assert q.to_codes([0.5, -1.0, 7.9997]).tolist() == [2048, -4096, 32767]
    assert q.currents_to_codes(50e-6, r_f=10e3).tolist() == 2048     # 50 µA x 10 kΩ = 0.5 V
    assert q.v_min == -8.0 and q.v_max == pytest.approx(8 - 2 ** -12)
    with pytest.raises(FixedPointRangeError, match="out of the Q3.12 range"):
        q.to_codes(8.0)
    assert CODE_MIN == -32768


def test_reference_words_shape() -> None:
    g = Geometry(9, 9, 64, pool_h=3, pool_w=3)
    w = reference_words(np.zeros((2,) + g.frame_shape, np.int16), np.full(64, -1, np.int16), g)
    assert w.shape == (2, g.words_per_frame) == (2, 18)
    assert (w == 0xFFFFFFFF).all()


def test_importing_drivers_does_not_import_pynq() -> None:
    code = ("import sys, drivers, drivers.overlay, drivers.overlay.driver, "
            "drivers.overlay.ip_model, drivers.overlay.sim_hwh, drivers.sim; "
            "assert 'pynq' not in sys.modules, sorted(m for m in sys.modules if 'pynq' in m)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_regmap_matches_package_script() -> None:
    """The IP-packaging TCL declares the same registers as regmap (they reach the .hwh)."""
    from pathlib import Path
    import re

    tcl = (Path(__file__).resolve().parents[2] / "firmware" / "ip" / "maxpool_thresh" /
           "scripts" / "package_ip.tcl").read_text()
    declared = dict(re.findall(r'add_register\s+(\w+)\s+(0x[0-9A-Fa-f]+)', tcl))
    vref_loop = re.search(r"for \{set f 0\} \{\$f < (\d+)\}", tcl)
    fixed = {r.name: r.offset for r in regmap.REGISTERS if not r.name.startswith("VREF_")}
    assert {k: int(v, 16) for k, v in declared.items()} == fixed
    assert vref_loop and int(vref_loop.group(1)) == 64
    assert f"0x{regmap.VREF_BASE:X}" in tcl
    assert regmap.VLNV.split(":")[0] in tcl and "maxpool_thresh" in tcl
