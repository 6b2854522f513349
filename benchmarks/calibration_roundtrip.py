"""Round-trip accuracy of the calibration: characterise SimArrays with known parameters, fit.

Prints, per fitted parameter, the true value, the mean fitted value over seeds, the largest and
the RMS relative error, the mean bootstrap standard error (relative) and the RMS of
error / standard error (about 1 if the uncertainties are honest), plus the tolerance the test
suite applies (tests/calibration/test_roundtrip.py).

    python benchmarks/calibration_roundtrip.py [--shape 32x32] [--seeds 8] [--boot 100] [--tech hfo2|hfo2-benign|siox|known]
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import numpy as np

from calibration.fit import fit
from drivers.sim.presets import get_preset
from drivers.sim_array import SimArray
from hil.cli.common import parse_shape
from hil.experiments.characterise import characterise


def _test_suite_constants():
    """The test suite's tolerances and known-parameter device (tests/calibration/test_roundtrip.py)."""
    path = Path(__file__).resolve().parents[1] / "tests" / "calibration" / "test_roundtrip.py"
    spec = importlib.util.spec_from_file_location("_calibration_roundtrip_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.TOLERANCE, module.TRUE_HFO2


TOLERANCE, TRUE_HFO2 = _test_suite_constants()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", type=parse_shape, default=(32, 32))
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--boot", type=int, default=100)
    ap.add_argument("--tech", choices=["known", "hfo2", "hfo2-benign", "siox"], default="known",
                    help="known: the test suite's modified (benign) HfO2 parameters; hfo2/hfo2-benign/siox: the "
                         "presets (the fit does not model hfo2's device read fluctuation and absolute relaxation)")
    args = ap.parse_args()
    tech = "hfo2-benign" if args.tech == "known" else args.tech
    true = TRUE_HFO2 if args.tech == "known" else get_preset(tech).physics
    rows: dict[str, list[tuple[float, float]]] = {}
    t0 = time.perf_counter()
    for seed in range(args.seeds):
        array = SimArray(args.shape, true, seed=seed, technology=get_preset(tech).technology)
        result = fit(characterise(array), get_preset(tech).physics, n_boot=args.boot, seed=seed)
        for name, est in result.estimates.items():
            rows.setdefault(name, []).append((est.value, est.stderr))
    wall = time.perf_counter() - t0
    print(f"{args.tech} parameters, {args.shape[0]}x{args.shape[1]} array, {args.seeds} seeds, "
          f"{args.boot} bootstrap resamples ({wall:.1f} s)")
    print(f"{'parameter':15s} {'true':>11s} {'mean fit':>11s} {'max|err|':>9s} {'rms err':>8s} "
          f"{'mean s.e.':>9s} {'rms z':>6s} {'test tol':>8s}")
    for name, vals in rows.items():
        v = np.array(vals)
        t = float(getattr(true, name))
        if t == 0:
            continue
        err = (v[:, 0] - t) / abs(t)
        z = np.where(v[:, 1] > 0, (v[:, 0] - t) / np.maximum(v[:, 1], 1e-300), np.nan)
        tol = TOLERANCE.get(name)
        print(f"{name:15s} {t:11.4g} {v[:, 0].mean():11.4g} {100 * np.abs(err).max():8.1f}% "
              f"{100 * np.sqrt((err**2).mean()):7.1f}% {100 * (v[:, 1] / abs(t)).mean():8.1f}% "
              f"{np.sqrt(np.nanmean(z**2)):6.2f} {'' if tol is None else f'{100 * tol:7.0f}%':>8s}")


if __name__ == "__main__":
    main()
