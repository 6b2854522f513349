"""What a run file records so that the run can be attributed and rerun: versions, BLAS, bench.

:func:`collect` gathers, at the moment a run file is created:

* ``package``: the package version and, when the package runs from a git checkout, the commit
  and whether the tree had uncommitted changes;
* ``python``, ``numpy``, ``h5py``, ``hdf5``: library versions; ``platform``, ``host``;
* ``blas``: every BLAS/OpenMP library loaded (threadpoolctl: library, version, threading layer,
  thread count in effect) and ``blas_threads``, the BLAS thread count the run computes with;
* ``bench``: for bench runs, every bench file both as parsed (the validated
  :class:`drivers.bench.BenchConfig`, every default filled in) and as text, with its SHA-256.

:func:`pinned_blas_threads` fixes the BLAS thread count inside a run. Matrix products of the
same operands differ in their last bits between BLAS thread counts (the library picks other
kernels and blockings), so a run computes with a fixed count (default 1) whatever the machine's
environment says: the same configuration and seed give the same bits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

#: BLAS threads inside a run unless configured otherwise (``hil run --blas-threads``).
DEFAULT_BLAS_THREADS = 1


@contextlib.contextmanager
def pinned_blas_threads(threads: int | None = DEFAULT_BLAS_THREADS) -> Iterator[None]:
    """Limit every loaded BLAS (and OpenMP) library to ``threads`` threads inside the block.

    Raises:
        ValueError: ``threads`` is not an integer in [1, 256].
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 256:
        raise ValueError(f"BLAS threads = {threads!r} is not allowed; allowed: an integer in [1, 256]")
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        yield


def blas_info() -> list[dict[str, Any]]:
    """The BLAS / OpenMP libraries loaded in this process, as threadpoolctl reports them."""
    from threadpoolctl import threadpool_info

    keys = ("user_api", "internal_api", "prefix", "version", "num_threads", "threading_layer", "architecture", "filepath")
    return [{k: info.get(k) for k in keys if k in info} for info in threadpool_info()]


def git_commit(path: Path | None = None) -> dict[str, Any]:
    """``{"commit": sha, "dirty": bool}`` of the git checkout holding ``path`` (default: this
    package), or ``{}`` when it is not one (an installed wheel) or git is missing.

    For the package itself the answer is taken once per process: it describes the code this
    process imported, which later checkouts do not change (and three git calls per run file
    would cost more than writing a small run)."""
    if path is None:
        return dict(_package_commit())
    return _git_commit(Path(path))


@functools.lru_cache(maxsize=1)
def _package_commit() -> tuple[tuple[str, Any], ...]:
    return tuple(_git_commit(Path(__file__).resolve().parents[1]).items())


def _git_commit(where: Path) -> dict[str, Any]:
    try:
        sha = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return {}
        top = subprocess.run(["git", "-C", str(where), "rev-parse", "--show-toplevel"], capture_output=True, text=True, timeout=5)
        if top.returncode != 0 or not (Path(top.stdout.strip()) / "pyproject.toml").is_file():
            return {}  # the package sits in some other repository (e.g. a site-packages tree)
        status = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"commit": sha.stdout.strip(), "dirty": bool(status.stdout.strip()) if status.returncode == 0 else None}


def _plain(obj: Any) -> Any:
    """Dataclasses, tuples and paths -> JSON-ready dicts, lists and strings."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return obj.item()
    return obj


def bench_record(config: Any) -> dict[str, Any]:
    """One bench file as parsed (every field of the validated config) and as text (+ SHA-256)."""
    out: dict[str, Any] = {"parsed": _plain(config)}
    source = getattr(config, "source", "")
    if source and Path(source).is_file():
        raw = Path(source).read_bytes()
        out["file"] = str(Path(source).resolve())
        out["sha256"] = hashlib.sha256(raw).hexdigest()
        out["text"] = raw.decode("utf-8", errors="replace")
    return out


def bench_configs(arrays: Mapping[str, Any]) -> dict[str, Any]:
    """The bench configurations of those ``arrays`` that were opened from a bench file."""
    return {name: a.bench_config for name, a in arrays.items() if getattr(a, "bench_config", None) is not None}


def collect(bench: Any = None) -> dict[str, Any]:
    """Provenance of a run created now (see the module docstring).

    Args:
        bench: a :class:`drivers.bench.BenchConfig`, a sequence of them, or a mapping (array
            name -> BenchConfig); None for runs without a bench.
    """
    import h5py
    import numpy as np

    from hil import __version__

    blas = blas_info()
    blas_threads = sorted({b["num_threads"] for b in blas if b.get("user_api") == "blas"})
    record: dict[str, Any] = {
        "package": {"name": "memristor-hil", "version": __version__, **git_commit()},
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "h5py": h5py.version.version,
        "hdf5": h5py.version.hdf5_version,
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "blas": blas,
        "blas_threads": blas_threads[0] if len(blas_threads) == 1 else blas_threads,
    }
    if bench is not None:
        if isinstance(bench, Mapping):
            record["bench"] = {str(k): bench_record(v) for k, v in bench.items()}
        elif isinstance(bench, Sequence) and not isinstance(bench, (str, bytes)):
            record["bench"] = {f"layer{k}": bench_record(v) for k, v in enumerate(bench)}
        else:
            record["bench"] = {"array": bench_record(bench)}
    return record
