"""Where the logging cost of ``benchmarks/run_store.py`` goes (issue 9's <= 25 % target).

Runs the same 128x128 HfO2 program-and-verify to 8 levels as ``benchmarks/program_verify.py``
(about 1.4 M operations, seed 1) unlogged and logged, median of ``--repeat`` runs each, and
logged with parts of the store's work switched off, to split the added wall time into:

* ``copies``: the experiment's thread building and queueing the batches (``RunStore._append``),
  with the flush thread encoding and writing nothing;
* ``encoding``: the flush thread's dictionary / delta encoding (``RunStore._encode``), nothing
  written;
* ``write, no deflate``: byte-shuffle and HDF5 direct chunk writes of the same chunks as stored
  (level 0, uncompressed) deflate streams: what the writes cost without compression;
* ``deflate + write``: byte-shuffle, deflate and HDF5 direct chunk writes (what the store does);
* ``close``: the last flush, the final metadata and the compaction of the file.

It then runs the unlogged program-and-verify beside a second thread that only deflates a
256 KB shuffled chunk in a loop (``zlib`` releases the GIL while it runs) and prints the slowdown.
That slowdown is the part of the flush thread's work that no rearrangement of the store's threads
hides on this machine.

    OMP_NUM_THREADS=1 python benchmarks/run_store_breakdown.py [--repeat 15]

The switched-off variants patch the store's private methods inside this process only: the
files they write are incomplete and are deleted.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from drivers.sim_array import SimArray
from hil import store as store_mod
from hil.cli.program import generate_targets
from hil.program import program_verify
from hil.store import RunStore

SHAPE = (128, 128)


def fresh(seed: int) -> tuple[SimArray, np.ndarray]:
    array = SimArray(SHAPE, "hfo2", seed=seed)
    array.form()
    return array, generate_targets(array.technology, 8, SHAPE, seed)


@contextlib.contextmanager
def patched(*pairs: tuple[type, str, Callable]) -> Iterator[None]:
    saved = [(cls, name, getattr(cls, name)) for cls, name, _ in pairs]
    try:
        for cls, name, fn in pairs:
            setattr(cls, name, fn)
        yield
    finally:
        for cls, name, fn in saved:
            setattr(cls, name, fn)


def plain(seed: int) -> float:
    array, targets = fresh(seed)
    t0 = time.perf_counter()
    program_verify(array, targets)
    return time.perf_counter() - t0


def logged(seed: int) -> tuple[float, float]:
    """(wall s of program-and-verify with the store attached, wall s of create + work + close)."""
    array, targets = fresh(seed)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        store = RunStore.create(Path(tmp) / "b.h5", config={}, seed=seed, backend="sim")
        store.attach_array("array", array)
        t1 = time.perf_counter()
        program_verify(array, targets)
        t2 = time.perf_counter()
        store.close()
        return t2 - t1, time.perf_counter() - t0


#: The store's own chunk writes with deflate level 0: the same chunks as stored blocks.
NO_DEFLATE = (store_mod, "_GZIP_LEVEL", 0)


def beside_deflate(seed: int) -> float:
    """Unlogged program-and-verify while another thread deflates 256 KB chunks in a loop."""
    chunk = store_mod._byte_shuffled((np.random.default_rng(0).random(1 << 16) * 1e-4).astype("<f4"))
    stop = threading.Event()

    def deflate() -> None:
        while not stop.is_set():
            z = zlib.compressobj(1, zlib.DEFLATED, 15, 8, zlib.Z_RLE)
            z.compress(chunk)
            z.flush()

    th = threading.Thread(target=deflate)
    th.start()
    try:
        return plain(seed)
    finally:
        stop.set()
        th.join()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    med = statistics.median
    nothing = (store_mod._ChunkAppender, "append", lambda self, data: None)
    variants = {
        "copies only": [nothing, (RunStore, "_encode", lambda self, queued: {})],
        "+ encoding": [nothing],
        "+ write, no deflate": [NO_DEFLATE],
        "+ deflate + write": [],
    }
    # interleaved rounds (every variant once per round), so that drifts of the machine's speed
    # fall on all of them alike; one warm-up round first
    base, contended = [], []
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for k in range(args.repeat + 1):
        t = plain(args.seed)
        for name, pairs in variants.items():
            with patched(*pairs):
                r = logged(args.seed)
            if k:
                runs[name].append(r)
        c = beside_deflate(args.seed)
        if k:
            base.append(t)
            contended.append(c)
    rows = [(name, med(r[0] for r in rs), med(r[1] for r in rs)) for name, rs in runs.items()]
    p = med(base)
    print(f"128x128 HfO2 program-and-verify to 8 levels, seed {args.seed}, median of {args.repeat} runs")
    print(f"  unlogged                               {p:.3f} s")
    prev = p
    for name, work, total in rows:
        print(f"  logged, {name:22s} work {work:.3f} s ({work - prev:+.3f} s), with create + close {total:.3f} s "
              f"({100 * (total / p - 1):+.0f} % of unlogged)")
        prev = work
    print(f"  close (last flush, compaction)         {rows[-1][2] - rows[-1][1]:.3f} s incl. create")
    c = med(contended)
    print(f"  unlogged beside a deflating thread     {c:.3f} s ({100 * (c / p - 1):+.0f} %: GIL-free zlib "
          "in a second thread is not free on this machine)")


if __name__ == "__main__":
    main()
