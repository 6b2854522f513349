"""Small sweeps for the sweep tests: `hil program` trials on a 4x4 array (about 1 s each)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hil.store import open_run

PROGRAM_SWEEP = """
[base]
command = "program"

[base.args]
levels = 4
shape = "4x4"
max_pulses = 60

[sweep]
out = "{out}"
seeds = {seeds}
workers = 2

[sweep.grid]
tolerance = {tolerances}
"""


def write_program_sweep(tmp: Path, out: str = "out", seeds=(0, 1), tolerances=(0.05, 0.1)) -> Path:
    path = tmp / "sweep.toml"
    path.write_text(PROGRAM_SWEEP.format(out=tmp / out, seeds=list(seeds), tolerances=list(tolerances)))
    return path


#: metrics that measure this machine, not the run
WALL_CLOCK = {"wall_time_s"}


def run_file_content(path: Path) -> dict:
    """Everything of a run file that must be bit-identical between two runs of a trial."""
    with open_run(path) as r:
        out = {"config": r.config, "seed": r.attrs["seed"], "ops": r.ops.tobytes()}
        for name in r.metric_names():
            if name not in WALL_CLOCK:
                out[f"metric:{name}"] = r.metric(name).tobytes()
        for name in r.snapshot_names():
            g, t = r.snapshot(name)
            out[f"snapshot:{name}"] = (np.asarray(g).tobytes(), t)
    return out
