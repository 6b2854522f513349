"""Speed of the STDP block's online loop: wall time per presented image.

One presentation is the block's MVM on the measured conductances and, when a neuron fires, its
device pulses (potentiation SET, noise RESET, SFA SET and read-back; every ``sfa_decay_every``
images the SFA relaxation), each checked against the limits and logged to a run store as in an
experiment. Synthetic feature maps (10 noisy prototypes, seeded) drive a simulated SiOx array of
``n_in + 2`` rows and 200 neurons: 64 lines is the global pool of the continual-stdp benchmark, 256
the 4x4 pool of its k = 5 rows. Prints the best of ``--repeat`` runs and a fingerprint of the
array's final state (equal fingerprints: the same bits).

    OMP_NUM_THREADS=1 python benchmarks/stdp_loop.py [--images 3000] [--lines 64,256] [--repeat 3] [--no-store]
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path

import numpy as np

from drivers.sim_array import SimArray
from hil.learning.stdp import STDPBlock, STDPParams
from hil.store import RunStore


def feature_maps(n_images: int, n_in: int, seed: int = 5) -> np.ndarray:
    """(n_images, n_in) bool: one of 10 random prototypes per image, 10 % of its bits flipped."""
    rng = np.random.default_rng(seed)
    prototypes = rng.random((10, n_in)) < 0.5
    return prototypes[rng.integers(0, 10, n_images)] ^ (rng.random((n_images, n_in)) < 0.1)


def run(bits: np.ndarray, store_dir: Path | None) -> tuple[float, str]:
    """(wall time of the presentation loop in s, fingerprint of the final array and block state)."""
    n_in = bits.shape[1]
    array = SimArray((n_in + 2, 200), "siox", seed=2)
    store = None
    if store_dir is not None:
        store = RunStore.create(store_dir / f"stdp_loop_{n_in}.h5", config={}, seed=0, backend="sim", overwrite=True)
        store.attach_array("stdp", array)
    block = STDPBlock(array, n_in, STDPParams(n_neurons=200, sfa_gain=32.0), seed=0)
    block.initialise()
    t0 = time.perf_counter()
    winners = np.array([block.present(b) for b in bits])
    wall = time.perf_counter() - t0
    if store is not None:
        store.close()
    h = hashlib.sha256()
    for a in (winners, array.model.g_prog, array.model.t_prog, block.vth):
        h.update(np.ascontiguousarray(a).tobytes())
    return wall, h.hexdigest()[:16]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=3000)
    ap.add_argument("--lines", default="64,256", help="comma-separated numbers of feature lines")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-store", action="store_true", help="no run store attached (the loop without logging)")
    args = ap.parse_args()
    if args.images < 1 or args.repeat < 1:
        ap.error("--images and --repeat must be >= 1")
    try:
        lines = [int(v) for v in args.lines.split(",")]
    except ValueError:
        lines = []
    if not lines or min(lines) < 1:
        ap.error(f"--lines must be comma-separated positive integers, got {args.lines!r}")
    with tempfile.TemporaryDirectory() as tmp:
        for n_in in lines:
            bits = feature_maps(args.images, n_in)
            results = [run(bits, None if args.no_store else Path(tmp)) for _ in range(args.repeat)]
            best = min(w for w, _ in results)
            prints = {f for _, f in results}
            print(f"{n_in} lines x 200 neurons, {args.images} images{'' if args.no_store else ', run store'}: "
                  f"best {best / args.images * 1e3:.3f} ms per image of {args.repeat}; fingerprint {', '.join(prints)}",
                  flush=True)


if __name__ == "__main__":
    main()
