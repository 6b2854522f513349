"""Run-store targets (issue 9): file size, logging cost and read speed.

Prints three measurements against their targets:

1. the size of the quickstart run file (``hil run examples/quickstart.toml``, every device
   operation logged) — target <= 50 MB — with the largest datasets;
2. the wall time of program-and-verify on a 128x128 HfO2 array to 8 levels (the work of
   ``benchmarks/program_verify.py``) with every operation logged to a run file, against the same
   work unlogged — target <= 25 % more (best of ``--repeat`` runs each, same seed);
3. the time to compute the programming pulses per device of every array from the quickstart
   file (``RunReader.pulses_per_device``) — target < 2 s.

    OMP_NUM_THREADS=1 python benchmarks/run_store.py [--quickstart FILE.h5] [--repeat 3]

Without ``--quickstart`` the quickstart experiment is run first (about 1-4 minutes).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py

from drivers.sim_array import SimArray
from hil.cli.program import generate_targets
from hil.program import program_verify
from hil.store import RunStore, open_run

ROOT = Path(__file__).resolve().parents[1]


def largest(path: Path, k: int = 8) -> list[tuple[str, int]]:
    sizes: dict[str, int] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, o: sizes.__setitem__(name, o.id.get_storage_size()) if isinstance(o, h5py.Dataset) else None)
    return sorted(sizes.items(), key=lambda x: -x[1])[:k]


def logging_cost(shape: tuple[int, int], seed: int, repeat: int) -> tuple[float, float, int]:
    """(best unlogged wall s, best logged wall s, records logged)."""
    plain, logged, records = [], [], 0
    for _ in range(repeat):
        array = SimArray(shape, "hfo2", seed=seed)
        array.form()
        targets = generate_targets(array.technology, 8, shape, seed)
        t0 = time.perf_counter()
        program_verify(array, targets)
        plain.append(time.perf_counter() - t0)
        array = SimArray(shape, "hfo2", seed=seed)
        array.form()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bench.h5"
            t0 = time.perf_counter()
            with RunStore.create(path, config={}, seed=seed, backend="sim") as store:
                store.attach_array("array", array)
                program_verify(array, targets)
            logged.append(time.perf_counter() - t0)
            with open_run(path) as r:
                records = r.n_ops
    return min(plain), min(logged), records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quickstart", type=Path, help="an existing quickstart run file (default: run it now)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each program-verify variant (best is kept)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    qs = args.quickstart
    tmp = None
    if qs is None:
        tmp = tempfile.TemporaryDirectory()
        qs = Path(tmp.name) / "quickstart.h5"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "hil", "run", str(ROOT / "examples" / "quickstart.toml"), "--out", str(qs),
                        "--overwrite", "--no-progress", "--no-figures"], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        print(f"quickstart run: {time.perf_counter() - t0:.0f} s wall")
    size = qs.stat().st_size
    with open_run(qs) as r:
        n_ops, arrays = r.n_ops, r.arrays
        t0 = time.perf_counter()
        pulses = {a["name"]: r.pulses_per_device(a["name"]) for a in arrays}
        t_pulses = time.perf_counter() - t0
    print(f"1. quickstart run file      {size / 1e6:7.1f} MB for {n_ops:,} operation records "
          f"({size / max(n_ops, 1):.2f} B/record)   target <= 50 MB: {'PASS' if size <= 50e6 else 'FAIL'}")
    for name, nbytes in largest(qs):
        print(f"     {nbytes / 1e6:7.2f} MB  {name}")
    plain, logged, records = logging_cost((128, 128), args.seed, args.repeat)
    extra = logged / plain - 1
    print(f"2. program-verify 128x128   {plain:.2f} s unlogged, {logged:.2f} s logging {records:,} records: "
          f"+{100 * extra:.1f} %   target <= 25 %: {'PASS' if extra <= 0.25 else 'FAIL'}")
    total = sum(int(p.sum()) for p in pulses.values())
    print(f"3. pulses per device        {t_pulses:.2f} s for {len(pulses)} arrays ({total:,} pulses)   "
          f"target < 2 s: {'PASS' if t_pulses < 2 else 'FAIL'}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
