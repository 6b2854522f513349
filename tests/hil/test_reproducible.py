"""Same configuration and seed -> the same bits whatever the environment's BLAS thread count
(`hil run` pins it, default 1), and the run file records versions, BLAS and thread count."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hil.store import open_run

ROOT = Path(__file__).resolve().parents[2]

CONFIG = """experiment = "metaplastic"
name = "repro"
seed = 1
out = "{out}"
overwrite = true
[tasks]
sequence = "mnist-fmnist"
epochs = [1, 1]
train_limit = 200
test_limit = 100
[dataset]
source = "bundled"
[network]
hidden = [256]
[learning]
m_star = 10.0
batch_size = 20
[device]
backend = "sim"
"""


def run(tmp_path: Path, tag: str, env_threads: int, *extra: str) -> Path:
    out = tmp_path / f"{tag}.h5"
    cfg = tmp_path / f"{tag}.toml"
    cfg.write_text(CONFIG.format(out=out))
    env = {**os.environ, "OMP_NUM_THREADS": str(env_threads), "OPENBLAS_NUM_THREADS": str(env_threads),
           "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "hil", "run", str(cfg), "--no-progress", "--no-figures", *extra],
                   check=True, env=env, cwd=tmp_path, capture_output=True, timeout=300)
    return out


def fingerprint(path: Path) -> tuple[str, dict]:
    with open_run(path) as r:
        ops = hashlib.sha256(np.ascontiguousarray(r.ops).tobytes()).hexdigest()
        metrics = {n: r.metric(n)[["step", "epoch", "value"]].tobytes().hex() for n in r.metric_names()
                   if not n.startswith(("wall", "memory"))}
    return ops, metrics


@pytest.mark.slow
def test_same_bits_with_1_and_2_blas_threads_in_the_environment(tmp_path):
    one = run(tmp_path, "t1", 1)
    two = run(tmp_path, "t2", 2)
    assert fingerprint(one) == fingerprint(two)
    for path in (one, two):
        with open_run(path) as r:
            prov = json.loads(r.attrs["provenance"])
        assert prov["blas_threads"] == 1
        assert any(b.get("user_api") == "blas" and b.get("version") for b in prov["blas"])
    # the thread count does change the bits (so the pin above is what makes them equal)
    other = run(tmp_path, "t2x", 2, "--blas-threads", "2")
    assert fingerprint(other) != fingerprint(two)
    with open_run(other) as r:
        assert json.loads(r.attrs["provenance"])["blas_threads"] == 2


def test_provenance_records_versions_and_the_bench_file(tmp_path):
    import h5py

    from hil.cli import main
    out = tmp_path / "p.h5"
    bench = ROOT / "examples" / "bench-sim.toml"
    from drivers.bench import load_bench
    from hil import provenance
    prov = provenance.collect(load_bench(bench))
    assert prov["numpy"] == np.__version__ and prov["h5py"] == h5py.version.version
    assert prov["hdf5"] == h5py.version.hdf5_version and prov["package"]["version"]
    rec = prov["bench"]["array"]
    assert rec["text"] == bench.read_text() and rec["parsed"]["shape"] == [8, 8]
    assert rec["parsed"]["limits"]["max_v_pulse"] > 0 and len(rec["sha256"]) == 64
    assert main(["program", "--levels", "4", "--shape", "4x4", "--out", str(out)]) == 0
    with open_run(out) as r:
        stored = json.loads(r.attrs["provenance"])
    assert stored["blas_threads"] == 1 and "bench" not in stored and stored["python"]
