"""benchmarks/stdp_loop.py: the STDP loop it times is seeded, and logging does not change it."""

from __future__ import annotations

from script_loader import load_benchmark


def test_the_timed_loop_is_seeded_and_logging_leaves_its_bits_alone(tmp_path):
    b = load_benchmark("stdp_loop")
    bits = b.feature_maps(60, 16)
    assert bits.shape == (60, 16) and bits.dtype == bool
    wall, logged = b.run(bits, tmp_path)
    assert wall > 0 and (tmp_path / "stdp_loop_16.h5").exists()
    _, again = b.run(bits, tmp_path)
    _, unlogged = b.run(bits, None)
    assert logged == again == unlogged
    _, other = b.run(b.feature_maps(60, 16, seed=6), None)
    assert other != logged
