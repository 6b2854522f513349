"""The run store: one HDF5 file per run, valid at every moment, watchable live (SWMR).

Layout (schema :data:`SCHEMA_VERSION`)::

    /                      attrs: schema_version, package_version, config (JSON), backend,
                                  instruments (JSON), seed, start_time (ISO 8601, UTC), status
    /ops                   append-only table of every device operation (drivers.oplog.OP_DTYPE),
                           chunked and compressed
    /snapshots/<name>/g    conductance maps, S, shape (n, rows, cols)
    /snapshots/<name>/time bench time of each map, s, shape (n,)
    /metrics/<name>        table (step, epoch, value)
    /checkpoints/slot0|1   double-buffered resume state; /checkpoints/index says which slot is
                           complete (a kill while writing one slot leaves the other intact)
    /calibration           a copy of the calibration table used

The writer opens the file with ``libver="latest"`` and switches to SWMR mode at once, so a
second process can open it with ``RunReader`` while it grows. Operations are buffered and
flushed every ``flush_interval`` seconds (and on close). After a SIGKILL every operation up to
the last flush is readable with :func:`open_run`; :meth:`RunStore.resume` clears the dead
writer's flags (:mod:`hil.h5recover`) and appends to the same file.

Objects (snapshots, metrics) created during a run appear to a reader when it reopens the file.
Requires h5py >= 3.16 (HDF5 2.0), which permits creating objects while in SWMR mode.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np

from drivers.oplog import OP_DTYPE, OpBatch
from hil import __version__, provenance
from hil.h5recover import clear_consistency_flags, consistency_flags

log = logging.getLogger(__name__)

SCHEMA_VERSION = "1.0"
METRIC_DTYPE = np.dtype([("step", "<i8"), ("epoch", "<i8"), ("value", "<f8")])
_OPS_CHUNK = 16384


class StoreError(OSError):
    """The run file cannot be created, written or read as a run."""


def check_writable(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Verify that a run file can be created at ``path`` without creating it.

    Raises:
        StoreError: the directory is missing or not writable, the path is a directory, or the
            file exists and ``overwrite`` is false.
    """
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise StoreError(f"output path {str(p)!r} is a directory; give a file name such as run.h5")
    if not parent.is_dir():
        raise StoreError(f"output directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StoreError(f"output directory {str(parent)!r} is not writable")
    if p.exists() and not overwrite:
        raise StoreError(f"output file {str(p)!r} exists; choose another path or allow overwriting")
    if p.exists() and not os.access(p, os.W_OK):
        raise StoreError(f"output file {str(p)!r} is not writable")
    return p


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=_json_default)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


class RunStore:
    """Writer of one run file. Use :meth:`create` or :meth:`resume`, then as a context manager.

    Attributes:
        path: the file.
        flush_interval: seconds between automatic flushes of buffered operations.
    """

    def __init__(self, f: h5py.File, path: Path, flush_interval: float) -> None:
        self._f = f
        self.path = path
        self.flush_interval = float(flush_interval)
        self._pending: list[np.ndarray] = []
        self._pending_n = 0
        self._last_flush = time.monotonic()
        self._closed = False

    # ------------------------------------------------------------------ opening
    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        *,
        config: dict[str, Any],
        seed: int | None,
        backend: str,
        instruments: dict[str, str] | None = None,
        overwrite: bool = False,
        flush_interval: float = 1.0,
        bench: Any = None,
    ) -> RunStore:
        """Create a run file with its root attributes and empty tables, in SWMR mode.

        Args:
            path: file to create.
            config: the run's configuration (stored as JSON).
            seed: the random seed of the run.
            backend: ``"sim"`` or ``"bench"``.
            instruments: instrument identities (stored as JSON).
            overwrite: replace an existing file.
            flush_interval: seconds between automatic flushes.
        """
        p = check_writable(path, overwrite)
        attrs = {
            "schema_version": SCHEMA_VERSION,
            "package_version": __version__,
            "config": _json(config),
            "backend": backend,
            "instruments": _json(instruments or {}),
            "seed": -1 if seed is None else int(seed),
            "start_time": _dt.datetime.now(_dt.timezone.utc).isoformat(),
            "status": "running",
            "provenance": _json(provenance.collect(bench)),  # versions, BLAS, git, bench files (hil.provenance)
        }
        try:
            f = h5py.File(p, "w", libver="latest")
        except OSError as exc:
            raise StoreError(f"cannot create run file {str(p)!r}: {exc}") from exc
        try:
            f.attrs.update(attrs)
            f.create_dataset(
                "ops", shape=(0,), maxshape=(None,), dtype=OP_DTYPE,
                chunks=(_OPS_CHUNK,), compression="gzip", compression_opts=4, shuffle=True,
            )
            for group in ("snapshots", "metrics", "checkpoints", "calibration"):
                f.create_group(group)
            f.swmr_mode = True
            f.flush()
        except Exception:
            f.close()
            p.unlink(missing_ok=True)
            raise
        log.info("run file %s created", p)
        return cls(f, p, flush_interval)

    @classmethod
    def resume(cls, path: str | os.PathLike, flush_interval: float = 1.0) -> RunStore:
        """Reopen an existing run file for appending (also after its writer was killed)."""
        p = Path(path)
        if not p.is_file():
            raise StoreError(f"run file {str(p)!r} does not exist")
        if consistency_flags(p):
            log.warning("%s was not closed cleanly (writer killed?); clearing its open-for-write flags", p)
            clear_consistency_flags(p)
        try:
            f = h5py.File(p, "a", libver="latest")
        except OSError as exc:
            raise StoreError(f"cannot reopen run file {str(p)!r}: {exc}") from exc
        if "ops" not in f or f.attrs.get("schema_version") is None:
            f.close()
            raise StoreError(f"{str(p)!r} is not a run file")
        f.attrs["status"] = "running"
        f.swmr_mode = True
        return cls(f, p, flush_interval)

    # ------------------------------------------------------------------ writing
    def append_ops(self, batch: OpBatch | np.ndarray) -> None:
        """Buffer operation records (an :class:`OpBatch` or an OP_DTYPE array); flushes on interval.

        Suitable as a :meth:`drivers.array.CrossbarArray.add_listener` callback.
        """
        rec = batch.records if isinstance(batch, OpBatch) else np.asarray(batch, dtype=OP_DTYPE)
        if rec.size == 0:
            return
        self._pending.append(rec)
        self._pending_n += rec.size
        if time.monotonic() - self._last_flush >= self.flush_interval or self._pending_n >= 1_000_000:
            self.flush()

    def _write_pending(self) -> None:
        if not self._pending:
            return
        rec = np.concatenate(self._pending)
        ds = self._f["ops"]
        n0 = ds.shape[0]
        ds.resize((n0 + rec.size,))
        ds[n0:] = rec
        self._pending.clear()
        self._pending_n = 0

    def snapshot(self, name: str, g_map: np.ndarray, time_s: float) -> None:
        """Append a conductance map (S, (rows, cols)) taken at bench time ``time_s`` (s)."""
        g_map = np.asarray(g_map, dtype=np.float64)
        if g_map.ndim != 2:
            raise ValueError(f"snapshot must be a 2-D conductance map, got shape {g_map.shape}")
        grp = self._f["snapshots"].require_group(_name(name))
        if "g" not in grp:
            grp.create_dataset("g", shape=(0, *g_map.shape), maxshape=(None, *g_map.shape),
                               dtype="<f8", chunks=(1, *g_map.shape), compression="gzip", shuffle=True)
            grp.create_dataset("time", shape=(0,), maxshape=(None,), dtype="<f8", chunks=(256,))
        g, t = grp["g"], grp["time"]
        if g.shape[1:] != g_map.shape:
            raise ValueError(f"snapshot {name!r} holds maps of shape {g.shape[1:]}, got {g_map.shape}")
        n = g.shape[0]
        g.resize((n + 1, *g_map.shape))
        g[n] = g_map
        t.resize((n + 1,))
        t[n] = float(time_s)
        self._f.flush()

    def metric(self, name: str, step: int, epoch: int, value: float) -> None:
        """Append one value of metric ``name`` at ``step`` / ``epoch``."""
        grp = self._f["metrics"]
        key = _name(name)
        if key not in grp:
            grp.create_dataset(key, shape=(0,), maxshape=(None,), dtype=METRIC_DTYPE, chunks=(256,))
        ds = grp[key]
        n = ds.shape[0]
        ds.resize((n + 1,))
        ds[n] = (int(step), int(epoch), float(value))
        if time.monotonic() - self._last_flush >= self.flush_interval:
            self.flush()

    def checkpoint(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Write resume state into the older of two slots, then mark it complete.

        Args:
            arrays: named numpy arrays (weights, optimiser state, conductance cache ...).
            meta: JSON-ready values (epoch, RNG states, ...).
        """
        self.flush()
        grp = self._f["checkpoints"]
        if "index" not in grp:
            grp.create_dataset("index", data=np.array([-1, -1], dtype="<i8"))  # [slot, serial]
        slot_now, serial = (int(v) for v in grp["index"][()])
        slot = 1 - slot_now if slot_now in (0, 1) else 0
        key = f"slot{slot}"
        if key in grp:
            del grp[key]
        sg = grp.create_group(key)
        for name, arr in arrays.items():
            sg.create_dataset(_name(name), data=np.asarray(arr))
        sg.create_dataset("meta", data=np.bytes_(_json(meta)))
        self._f.flush()
        grp["index"][...] = np.array([slot, serial + 1], dtype="<i8")
        self._f.flush()

    def save_calibration(self, table: dict[str, np.ndarray], attrs: dict[str, Any] | None = None) -> None:
        """Copy the calibration table used by this run into ``/calibration``."""
        grp = self._f["calibration"]
        for name, arr in table.items():
            if name in grp:
                del grp[name]
            grp.create_dataset(_name(name), data=np.asarray(arr))
        if attrs:
            grp.attrs["table"] = _json(attrs)
        self._f.flush()

    def flush(self) -> None:
        """Write buffered operations and flush the file."""
        self._write_pending()
        self._f.flush()
        self._last_flush = time.monotonic()

    def close(self, status: str = "complete") -> None:
        """Flush, record the final ``status`` and close. Idempotent."""
        if self._closed:
            return
        try:
            self._write_pending()
            self._f.attrs["status"] = status
            self._f.attrs["end_time"] = _dt.datetime.now(_dt.timezone.utc).isoformat()
            self._f.flush()
        finally:
            self._f.close()
            self._closed = True

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close("complete" if exc_type is None else f"failed: {exc_type.__name__}")


def _name(name: str) -> str:
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"invalid object name {name!r}: must be non-empty, without '/'")
    return name


class RunReader:
    """Read-only view of a run file (works while it is being written, or after its writer died)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise StoreError(f"run file {str(self.path)!r} does not exist")
        try:
            self._f = h5py.File(self.path, "r", swmr=True)
        except OSError as exc:
            raise StoreError(f"cannot open run file {str(self.path)!r}: {exc}") from exc
        if "ops" not in self._f:
            self._f.close()
            raise StoreError(f"{str(self.path)!r} is not a run file (no /ops)")

    @property
    def attrs(self) -> dict[str, Any]:
        return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in self._f.attrs.items()}

    @property
    def config(self) -> dict[str, Any]:
        return json.loads(self._f.attrs["config"])

    @property
    def instruments(self) -> dict[str, str]:
        return json.loads(self._f.attrs["instruments"])

    @property
    def ops(self) -> np.ndarray:
        """All operation records (OP_DTYPE), as flushed so far."""
        ds = self._f["ops"]
        ds.refresh()
        return ds[()]

    def snapshot_names(self) -> list[str]:
        return sorted(self._f["snapshots"].keys())

    def snapshot(self, name: str, index: int = -1) -> tuple[np.ndarray, float]:
        """Conductance map (S, (rows, cols)) and its bench time (s); the latest by default."""
        grp = self._f["snapshots"][name]
        grp["g"].refresh()
        grp["time"].refresh()
        return grp["g"][index], float(grp["time"][index])

    def metric_names(self) -> list[str]:
        return sorted(self._f["metrics"].keys())

    def metric(self, name: str) -> np.ndarray:
        """Metric table (METRIC_DTYPE): step, epoch, value."""
        ds = self._f["metrics"][name]
        ds.refresh()
        return ds[()]

    def load_checkpoint(self) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
        """The latest complete checkpoint as (arrays, meta), or None."""
        grp = self._f["checkpoints"]
        if "index" not in grp:
            return None
        slot, _serial = (int(v) for v in grp["index"][()])
        if slot < 0:
            return None
        sg = grp[f"slot{slot}"]
        arrays = {k: sg[k][()] for k in sg if k != "meta"}
        return arrays, json.loads(sg["meta"][()].decode())

    def calibration(self) -> dict[str, np.ndarray]:
        grp = self._f["calibration"]
        return {k: grp[k][()] for k in grp}

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> RunReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_run(path: str | os.PathLike) -> RunReader:
    """Open a run file for reading (live, finished, or left behind by a killed writer)."""
    return RunReader(path)
