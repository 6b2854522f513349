"""The run store: one HDF5 file per run, valid at every moment, watchable live (SWMR).

The layout, its version history and the recipe that expands ``/ops`` into one record per device
operation are documented in ``hil/SCHEMA.md`` (schema :data:`SCHEMA_VERSION`). In short::

    /                      attrs: schema_version, package_version, config (JSON), backend,
                                  instruments (JSON), seed, start_time, status, writer_host,
                                  writer_pid, heartbeat
    /arrays                one row per array of the run (id, name, rows, cols, technology, instrument)
    /ops/batch             one row per operation batch (array, kind, cells, timing, shared values)
    /ops/row, /ops/col     the addressed cells, one value per record
    /ops/<field>           per-record values of the batches whose value varies per cell
    /ops/extent            committed length of every /ops dataset (rows beyond it are not records)
    /snapshots/<name>/g    maps, shape (n, rows, cols); /snapshots/<name>/time bench times, s
    /metrics/<name>        table (step, epoch, value)
    /checkpoints/slot0|1   double-buffered resume state, compressed; /checkpoints/index says which
                           slot is complete; each slot records the counts of every appendable
                           dataset it has seen (attribute ``counts``)
    /resumes               one row per resume (time, checkpoint serial, host, pid, records dropped)
    /calibration           a copy of the calibration table used

The writer uses ``libver=("v110", "v114")`` (the oldest that keeps SWMR with object creation;
readable by HDF5 1.10 / 1.14 tools) and switches to SWMR mode at once, so a second process can
open it with :func:`open_run` while it grows. Buffered operations are flushed every
``flush_interval`` seconds by a timer thread (all HDF5 calls are serialised by one lock, so a
flush never falls inside a half-done write), which also refreshes the writer's heartbeat.

A write error (disk full, I/O error) stops the run with a :class:`StoreError` naming the file and
the cause; the file is marked failed when the disk still accepts that, and ``/ops/extent`` keeps
the last flushed state, so no half-written record is ever read as a record.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import io
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from drivers.oplog import OP_DTYPE, VALUE_FIELDS, OpBatch, OpKind
from hil import __version__
from hil.h5recover import clear_consistency_flags, consistency_flags, superblock_problem

if TYPE_CHECKING:
    from drivers.array import CrossbarArray

log = logging.getLogger(__name__)

#: Version of the run-file layout (``hil/SCHEMA.md``). Readers accept every major version up to
#: :data:`SCHEMA_MAJOR` and refuse newer ones.
SCHEMA_VERSION = "2.0"
SCHEMA_MAJOR = 2
#: HDF5 file-format bounds: the oldest that keeps SWMR with object creation.
LIBVER = ("v110", "v114")

METRIC_DTYPE = np.dtype([("step", "<i8"), ("epoch", "<i8"), ("value", "<f8")])
_STR = h5py.string_dtype("utf-8")
#: One row of ``/arrays``.
ARRAY_DTYPE = np.dtype([("id", "<u2"), ("name", _STR), ("rows", "<u4"), ("cols", "<u4"),
                        ("technology", _STR), ("instrument", _STR)])
#: One row of ``/ops/batch``: ``n`` records starting at record ``start``; ``varying`` has bit k set
#: when field :data:`VARYING_FIELDS`\\[k] is stored per record in ``/ops/<field>``, otherwise the
#: batch's own value applies to all its records. ``wall`` is the host's Unix time, s.
BATCH_DTYPE = np.dtype([
    ("array", "<u2"), ("kind", "u1"), ("varying", "u1"), ("start", "<u8"), ("n", "<u4"),
    ("t_start", "<f8"), ("t_step", "<f8"), ("wall", "<f8"),
    ("v_gate", "<f4"), ("v_pulse", "<f4"), ("width", "<f4"), ("compliance", "<f4"), ("result", "<f4"),
])
VARYING_FIELDS = ("time", *VALUE_FIELDS)
_RECORD_DTYPES = {"row": "<u2", "col": "<u2", "time": "<f8", **{f: "<f4" for f in VALUE_FIELDS}}
#: The ``/ops`` datasets in the order of ``/ops/extent``.
OPS_DATASETS = ("batch", "row", "col", *VARYING_FIELDS)
RESUME_DTYPE = np.dtype([("time", _STR), ("checkpoint", "<i8"), ("host", _STR), ("pid", "<i8"),
                         ("records_dropped", "<i8")])
_OPS_CHUNK = 1 << 16
_BATCH_CHUNK = 4096
_GZIP = {"compression": "gzip", "compression_opts": 1, "shuffle": True}
#: Time bound of opening a file whose flags say a writer is (or was) active, s.
OPEN_TIMEOUT = 30.0


class StoreError(OSError):
    """The run file cannot be created, written or read as a run."""


class RunFinishedError(StoreError):
    """``resume`` of a run that is complete: nothing to do, nothing changed."""


class WriterAliveError(StoreError):
    """The run file's writer is still running (or the file is locked by another process)."""


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


def check_not_reading(out: str | os.PathLike, *inputs: str | os.PathLike | None) -> None:
    """Refuse an output path that is one of the command's input files (it would be destroyed)."""
    o = Path(out)
    for i in inputs:
        if i is None:
            continue
        i = Path(i)
        same = i.exists() and o.exists() and os.path.samefile(i, o)
        if same or o.resolve() == i.resolve():
            raise StoreError(f"output file {str(o)!r} is also an input of this command; give another --out")


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


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat()


def _cause(exc: BaseException) -> str:
    """The human cause of an HDF5/OS error (errno text when there is one)."""
    text = str(exc)
    for code in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EFBIG):
        name = os.strerror(code)
        if name.lower() in text.lower() or f"errno = {code}" in text or f"errno {code}" in text.lower():
            return f"{name} ({text})"
    return text or type(exc).__name__


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _appendables(f: h5py.File) -> dict[str, h5py.Dataset]:
    """Every appendable dataset whose length a checkpoint records (path -> dataset)."""
    out: dict[str, h5py.Dataset] = {}
    if "arrays" in f:
        out["arrays"] = f["arrays"]
    for name in OPS_DATASETS:
        out[f"ops/{name}"] = f["ops"][name]
    for top in ("metrics", "snapshots"):
        def visit(name: str, obj: Any, top: str = top) -> None:
            if isinstance(obj, h5py.Dataset):
                out[f"{top}/{name}"] = obj
        f[top].visititems(visit)
    return out


class RunStore:
    """Writer of one run file. Use :meth:`create` or :meth:`resume`, then as a context manager.

    Attributes:
        path: the file.
        flush_interval: at most this many seconds pass between flushes of buffered operations.
    """

    def __init__(self, f: h5py.File, path: Path, flush_interval: float) -> None:
        self._f = f
        self.path = path
        self.flush_interval = float(flush_interval)
        self._lock = threading.RLock()
        self._pending: dict[str, list[np.ndarray]] = {k: [] for k in OPS_DATASETS}
        self._pending_n = 0
        self._n_records = int(f["ops/row"].shape[0])
        self._array_ids: dict[str, int] = {}
        self._listeners: dict[int, tuple[Any, Any]] = {}
        self._last_flush = time.monotonic()
        self._closed = False
        self._failed: str | None = None
        self._thread_error: BaseException | None = None
        self._stop = threading.Event()
        for row in f["arrays"][()]:
            self._array_ids[_s(row["name"])] = int(row["id"])
        self._write_writer_info()
        self._timer: threading.Thread | None = None
        if self.flush_interval > 0:
            self._timer = threading.Thread(target=self._flush_loop, name=f"runstore-flush {path.name}", daemon=True)
            self._timer.start()

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
    ) -> RunStore:
        """Create a run file with its root attributes and empty tables, in SWMR mode.

        Args:
            path: file to create.
            config: the run's configuration (stored as JSON).
            seed: the random seed of the run.
            backend: ``"sim"`` or ``"bench"``.
            instruments: instrument identities (stored as JSON).
            overwrite: replace an existing file.
            flush_interval: at most this many seconds between flushes (0: flush on every write).
        """
        p = check_writable(path, overwrite)
        attrs = {
            "schema_version": SCHEMA_VERSION,
            "package_version": __version__,
            "config": _json(config),
            "backend": backend,
            "instruments": _json(instruments or {}),
            "seed": -1 if seed is None else int(seed),
            "start_time": _now(),
            "status": "running",
        }
        try:
            f = h5py.File(p, "w", libver=LIBVER)
        except OSError as exc:
            raise StoreError(f"cannot create run file {str(p)!r}: {_cause(exc)}") from exc
        try:
            f.attrs.update(attrs)
            f.create_dataset("arrays", shape=(0,), maxshape=(None,), dtype=ARRAY_DTYPE, chunks=(64,))
            ops = f.create_group("ops")
            ops.attrs["layout"] = "batched (hil/SCHEMA.md)"
            ops.create_dataset("batch", shape=(0,), maxshape=(None,), dtype=BATCH_DTYPE,
                               chunks=(_BATCH_CHUNK,), **_GZIP)
            for name, dt in _RECORD_DTYPES.items():
                ops.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dt, chunks=(_OPS_CHUNK,), **_GZIP)
            ops.create_dataset("extent", data=np.zeros(len(OPS_DATASETS), dtype="<i8"))
            ops["extent"].attrs["datasets"] = ",".join(OPS_DATASETS)
            for group in ("snapshots", "metrics", "checkpoints", "calibration"):
                f.create_group(group)
            f.swmr_mode = True
            f.flush()
        except Exception as exc:
            with contextlib.suppress(Exception):
                f.close()
            p.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise StoreError(f"cannot create run file {str(p)!r}: {_cause(exc)}") from exc
            raise
        log.info("run file %s created", p)
        return cls(f, p, flush_interval)

    @classmethod
    def resume(cls, path: str | os.PathLike, flush_interval: float = 1.0) -> RunStore:
        """Reopen a run file to continue it from its last checkpoint.

        Everything written after that checkpoint (``/ops`` records, metric rows, snapshots) is
        removed, so the continued file equals an uninterrupted run's record for record; a row in
        ``/resumes`` marks the resume. A killed writer's open-for-write flags are cleared.

        Raises:
            RunFinishedError: the run is complete (nothing is changed).
            WriterAliveError: its writer is still running, or another process holds the file
                open (nothing is changed).
            StoreError: not a run file, or a newer schema.
        """
        p = Path(path)
        with open_run(p) as reader:
            status = str(reader.attrs.get("status", ""))
            writer = (reader.attrs.get("writer_host"), reader.attrs.get("writer_pid"), reader.attrs.get("heartbeat"))
            counts, serial = reader._checkpoint_counts()
        if status == "complete":
            raise RunFinishedError(f"run file {str(p)!r} is complete (status {status!r}); there is nothing to resume")
        flags = consistency_flags(p)
        if flags:
            _refuse_live_writer(p, *writer)
        with _exclusive_lock(p):
            if flags:
                log.warning("%s was not closed cleanly (writer killed?); clearing its open-for-write flags", p)
                try:
                    clear_consistency_flags(p)
                except ValueError as exc:
                    raise StoreError(f"cannot resume {str(p)!r}: {exc}") from exc
        try:
            f = h5py.File(p, "a", libver=LIBVER)
        except OSError as exc:
            raise WriterAliveError(f"cannot reopen run file {str(p)!r} for writing: {_cause(exc)}") from exc
        try:
            dropped = _truncate_to(f, counts)
            if "resumes" not in f:
                f.create_dataset("resumes", shape=(0,), maxshape=(None,), dtype=RESUME_DTYPE, chunks=(16,))
            r = f["resumes"]
            r.resize((r.shape[0] + 1,))
            r[-1] = (_now(), serial, socket.gethostname(), os.getpid(), dropped)
            f.attrs["status"] = "running"
            f.swmr_mode = True
            f.flush()
        except OSError as exc:
            with contextlib.suppress(Exception):
                f.close()
            raise StoreError(f"cannot resume run file {str(p)!r}: {_cause(exc)}") from exc
        log.info("%s resumed from checkpoint %d (%d records after it dropped)", p, serial, dropped)
        return cls(f, p, flush_interval)

    # ------------------------------------------------------------------ arrays
    def attach_array(self, name: str, array: CrossbarArray) -> None:
        """Register ``array`` in ``/arrays`` as ``name`` and log its operations with its id.

        Attaching a name that the file already holds (after a resume) reuses its id; the shape
        and technology must match.
        """
        with self._lock:
            aid = self._register_array(name, array)
            listener = lambda batch, aid=aid: self._append(batch, aid)  # noqa: E731
            self._listeners[id(array)] = (array, listener)
            array.add_listener(listener)

    def detach_array(self, array: CrossbarArray) -> None:
        """Stop logging ``array``'s operations (its row in ``/arrays`` stays)."""
        with self._lock:
            entry = self._listeners.pop(id(array), None)
            if entry is not None:
                array.remove_listener(entry[1])

    def _register_array(self, name: str, array: CrossbarArray) -> int:
        rows, cols = (int(v) for v in array.shape)
        tech = str(getattr(array.technology, "name", array.technology))
        ds = self._f["arrays"]
        if name in self._array_ids:
            aid = self._array_ids[name]
            row = ds[aid]
            if (int(row["rows"]), int(row["cols"]), _s(row["technology"])) != (rows, cols, tech):
                raise StoreError(f"{self.path}: array {name!r} is {int(row['rows'])}x{int(row['cols'])} "
                                 f"{_s(row['technology'])} in the file, not {rows}x{cols} {tech}")
            return aid
        aid = ds.shape[0]
        if aid > 65535:
            raise StoreError(f"{self.path}: at most 65536 arrays per run")
        try:
            ident = _json(array.identity())
        except Exception:  # noqa: BLE001 - an identity is a courtesy, not a requirement
            ident = "{}"
        with self._writing("the array table"):
            ds.resize((aid + 1,))
            ds[aid] = (aid, _name(name), rows, cols, tech, ident)
            self._f.flush()
        self._array_ids[name] = aid
        return aid

    # ------------------------------------------------------------------ writing
    def append_ops(self, batch: OpBatch | np.ndarray) -> None:
        """Buffer operation records (an :class:`OpBatch` or an OP_DTYPE-like record array).

        The array id is the batch's own (``batch.array``); :meth:`attach_array` sets it for an
        array's operations.
        """
        if not isinstance(batch, OpBatch):
            batch = OpBatch.from_records(np.asarray(batch))
        self._append(batch, batch.array)

    def _append(self, batch: OpBatch, aid: int) -> None:
        n = len(batch)
        if n == 0:
            return
        with self._lock:
            self._check_usable()
            brow = np.zeros(1, dtype=BATCH_DTYPE)
            brow["array"], brow["kind"], brow["start"], brow["n"] = aid, int(batch.kind), self._n_records, n
            brow["wall"] = time.time()
            varying = 0
            if batch.t_start is not None and batch.t_step is not None and batch._records is None:
                brow["t_start"], brow["t_step"] = batch.t_start, batch.t_step
            else:
                varying |= 1
                brow["t_start"], brow["t_step"] = np.nan, np.nan
                self._pending["time"].append(np.asarray(batch.times, dtype="<f8"))
            if batch._records is not None:  # mixed kinds: every field per record
                rec = batch.records
                values = {f: rec[f] for f in VALUE_FIELDS}
                kinds = np.unique(rec["kind"])
                if kinds.size > 1:
                    for k in kinds:  # one batch per kind keeps ``kind`` a batch field
                        sel = rec[rec["kind"] == k]
                        self._append(OpBatch.from_records(sel), aid)
                    return
            else:
                values = batch.fields
            for bit, f in enumerate(VALUE_FIELDS, start=1):
                v = values.get(f, np.nan)
                if np.ndim(v) == 0:
                    brow[f] = v
                    continue
                a = np.asarray(v, dtype="<f4")
                bits = a.view("<u4")
                if np.all(bits == bits[0]):
                    brow[f] = a[0]
                else:
                    varying |= 1 << bit
                    brow[f] = np.nan
                    self._pending[f].append(a)
            brow["varying"] = varying
            self._pending["batch"].append(brow)
            self._pending["row"].append(np.asarray(batch.rows, dtype="<u2"))
            self._pending["col"].append(np.asarray(batch.cols, dtype="<u2"))
            self._n_records += n
            self._pending_n += n
            if self._pending_n >= 4_000_000 or self.flush_interval <= 0:
                self._flush_locked()

    def snapshot(self, name: str, g_map: np.ndarray, time_s: float) -> None:
        """Append a conductance map (S, (rows, cols)) taken at bench time ``time_s`` (s)."""
        g_map = np.asarray(g_map, dtype=np.float64)
        if g_map.ndim != 2:
            raise ValueError(f"snapshot must be a 2-D conductance map, got shape {g_map.shape}")
        key = _name(name)
        with self._lock:
            self._check_usable()
            grp = self._f["snapshots"]
            with self._writing(f"snapshot {name!r}"):
                if key not in grp:
                    sg = grp.create_group(key)
                    sg.create_dataset("g", shape=(0, *g_map.shape), maxshape=(None, *g_map.shape),
                                      dtype="<f8", chunks=(1, *g_map.shape), compression="gzip", shuffle=True)
                    sg.create_dataset("time", shape=(0,), maxshape=(None,), dtype="<f8", chunks=(256,))
                sg = grp[key]
                g, t = sg["g"], sg["time"]
                if g.shape[1:] != g_map.shape:
                    raise ValueError(f"snapshot {name!r} holds maps of shape {g.shape[1:]}, got {g_map.shape}")
                n = g.shape[0]
                g.resize((n + 1, *g_map.shape))
                g[n] = g_map
                t.resize((n + 1,))
                t[n] = float(time_s)
                self._flush_locked()

    def metric(self, name: str, step: int, epoch: int, value: float) -> None:
        """Append one value of metric ``name`` at ``step`` / ``epoch``."""
        key = _name(name)
        with self._lock:
            self._check_usable()
            grp = self._f["metrics"]
            with self._writing(f"metric {name!r}"):
                if key not in grp:
                    grp.create_dataset(key, shape=(0,), maxshape=(None,), dtype=METRIC_DTYPE, chunks=(256,))
                ds = grp[key]
                n = ds.shape[0]
                ds.resize((n + 1,))
                ds[n] = (int(step), int(epoch), float(value))

    def checkpoint(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Write resume state into the older of two slots, then mark it complete.

        The slot records how long every appendable dataset was at this moment (its ``counts``
        attribute): :meth:`resume` truncates back to them. Arrays of 1024 values or more are
        stored compressed.

        Args:
            arrays: named numpy arrays (weights, optimiser state, conductance cache ...).
            meta: JSON-ready values (epoch, RNG states, ...).
        """
        meta_json = _json(meta)
        with self._lock:
            self._check_usable()
            self._flush_locked()
            with self._writing("a checkpoint"):
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
                    _write_checkpoint_array(sg, _name(name), np.asarray(arr))
                sg.create_dataset("meta", data=np.bytes_(meta_json))
                sg.attrs["counts"] = _json({k: int(d.shape[0]) for k, d in _appendables(self._f).items()})
                sg.attrs["serial"] = serial + 1
                self._f.flush()
                grp["index"][...] = np.array([slot, serial + 1], dtype="<i8")
                self._f.flush()

    def save_calibration(self, table: dict[str, np.ndarray], attrs: dict[str, Any] | None = None) -> None:
        """Copy the calibration table used by this run into ``/calibration``."""
        with self._lock:
            self._check_usable()
            with self._writing("the calibration table"):
                grp = self._f["calibration"]
                for name, arr in table.items():
                    if name in grp:
                        del grp[name]
                    grp.create_dataset(_name(name), data=np.asarray(arr))
                if attrs:
                    grp.attrs["table"] = _json(attrs)
                self._f.flush()

    def flush(self) -> None:
        """Write buffered operations, refresh the heartbeat and flush the file."""
        with self._lock:
            self._check_usable()
            self._flush_locked()

    def _flush_locked(self) -> None:
        with self._writing("operation records"):
            ops = self._f["ops"]
            extent = ops["extent"]
            lengths = extent[()].copy()
            for k, name in enumerate(OPS_DATASETS):
                chunks = self._pending[name]
                if chunks:
                    data = np.concatenate(chunks)
                    ds = ops[name]
                    n0 = ds.shape[0]
                    ds.resize((n0 + data.size,))
                    ds[n0:] = data
                    chunks.clear()
                lengths[k] = ops[name].shape[0]
            self._pending_n = 0
            self._f.attrs["heartbeat"] = time.time()
            self._f.flush()  # the records are on disk ...
            extent[...] = lengths  # ... before the extent that makes them records
            self._f.flush()
            self._last_flush = time.monotonic()

    def _flush_loop(self) -> None:
        """Timer thread: flush at least every ``flush_interval`` s, even without new writes."""
        while not self._stop.wait(self.flush_interval / 2):
            with self._lock:
                if self._closed or self._failed:
                    return
                if time.monotonic() - self._last_flush < self.flush_interval:
                    continue
                try:
                    self._flush_locked()
                except BaseException as exc:  # noqa: BLE001 - reported to the writing thread
                    self._thread_error = exc
                    return

    def _write_writer_info(self) -> None:
        with self._writing("the writer's identity"):
            self._f.attrs["writer_host"] = socket.gethostname()
            self._f.attrs["writer_pid"] = os.getpid()
            self._f.attrs["heartbeat"] = time.time()
            self._f.flush()

    @contextlib.contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """Turn an HDF5/OS write error into a :class:`StoreError` and stop writing to the file."""
        try:
            yield
        except (OSError, RuntimeError, KeyError) as exc:
            if isinstance(exc, StoreError):
                raise
            cause = _cause(exc)
            self._failed = f"writing {what} failed: {cause}"
            log.error("run file %s: %s", self.path, self._failed)
            raise StoreError(f"cannot write {what} to run file {str(self.path)!r}: {cause}") from exc

    def _check_usable(self) -> None:
        if self._closed:
            raise StoreError(f"run file {str(self.path)!r} is closed")
        if self._thread_error is not None:
            exc, self._thread_error = self._thread_error, None
            raise exc if isinstance(exc, StoreError) else StoreError(f"run file {str(self.path)!r}: {exc}")
        if self._failed:
            raise StoreError(f"run file {str(self.path)!r}: {self._failed}; nothing more is written")

    def close(self, status: str = "complete") -> None:
        """Flush, record the final ``status`` and close. Idempotent.

        After a write error the file is marked ``failed: write error`` if the disk still takes
        that, and closed; the records up to the last successful flush stay readable.
        """
        self._stop.set()
        if self._timer is not None and self._timer is not threading.current_thread():
            self._timer.join()
        with self._lock:
            if self._closed:
                return
            error: BaseException | None = None
            try:
                if self._thread_error is not None:
                    error, self._thread_error = self._thread_error, None
                if not self._failed:
                    try:
                        self._flush_locked()
                    except StoreError as exc:
                        error = error or exc
                if self._failed:
                    status = f"failed: write error: {self._failed}"
                with contextlib.suppress(Exception):
                    self._f.attrs["status"] = status
                    self._f.attrs["end_time"] = _now()
                    self._f.flush()
            finally:
                self._closed = True
                _close_file(self._f, self._failed is not None)
            if error is not None:
                raise error if isinstance(error, StoreError) else StoreError(str(error))

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close("complete")
        else:
            try:
                self.close(f"failed: {exc_type.__name__}")
            except StoreError:
                if not isinstance(exc, StoreError):
                    raise


def _write_checkpoint_array(group: h5py.Group, name: str, a: np.ndarray) -> None:
    """Store one checkpoint array: plain when small, else as zlib-compressed ``.npy`` bytes.

    HDF5 (2.0) cannot delete a *chunked* dataset while the file is in SWMR mode, and the
    double-buffered slots are deleted and rewritten, so compressed arrays are kept as contiguous
    byte datasets (attribute ``encoding = "npy+zlib"``; :func:`_read_checkpoint_array` decodes).
    """
    if a.size < 1024 or a.dtype.kind not in "biufc":
        group.create_dataset(name, data=a)
        return
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    ds = group.create_dataset(name, data=np.frombuffer(zlib.compress(buf.getvalue(), 1), dtype=np.uint8))
    ds.attrs["encoding"] = "npy+zlib"


def _read_checkpoint_array(ds: h5py.Dataset) -> np.ndarray:
    if _s(ds.attrs.get("encoding", "")) == "npy+zlib":
        return np.load(io.BytesIO(zlib.decompress(ds[()].tobytes())), allow_pickle=False)
    return ds[()]


def _close_file(f: h5py.File, after_error: bool) -> None:
    """Close the HDF5 file; after a write error, without letting a failing close take the process down."""
    try:
        f.close()
    except Exception as exc:  # noqa: BLE001
        log.error("closing %s after a write error: %s", f.filename if f else "?", exc)
        if not after_error:
            raise


def _name(name: str) -> str:
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"invalid object name {name!r}: must be non-empty, without '/'")
    return name


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _truncate_to(f: h5py.File, counts: dict[str, int]) -> int:
    """Shrink every appendable dataset to its checkpoint count; delete metric and snapshot series
    the checkpoint had not seen. Returns the number of ``/ops`` records dropped."""
    before = int(f["ops/row"].shape[0])
    for key, ds in _appendables(f).items():
        n = counts.get(key)
        if n is None and key.split("/")[0] in ("metrics", "snapshots"):
            parent = key.rsplit("/", 1)[0] if key.startswith("snapshots/") else key
            if parent in f:
                del f[parent]
            continue
        n = int(n or 0)
        if ds.shape[0] > n:
            ds.resize((n, *ds.shape[1:]))
    f["ops/extent"][...] = np.array([f["ops"][name].shape[0] for name in OPS_DATASETS], dtype="<i8")
    return before - int(f["ops/row"].shape[0])


def _refuse_live_writer(path: Path, host: Any, pid: Any, heartbeat: Any) -> None:
    """Raise :class:`WriterAliveError` when the writer recorded in the file may still be running."""
    if host is None or pid is None:
        return
    host, pid = _s(host), int(pid)
    if host == socket.gethostname():
        if _pid_alive(pid) and pid != os.getpid():
            raise WriterAliveError(f"run file {str(path)!r} is being written by process {pid} on this host; "
                                   "stop it first (or wait for it to finish)")
        return
    age = time.time() - float(heartbeat or 0.0)
    if age < 60.0:
        raise WriterAliveError(f"run file {str(path)!r} is being written on host {host!r} (pid {pid}, heartbeat "
                               f"{age:.0f} s ago); resume it there, or wait a minute after its writer stopped")


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (the lock HDF5 takes); refuse if a reader holds it."""
    with open(path, "rb+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise WriterAliveError(f"run file {str(path)!r} is open in another process (locked); close it "
                                   "there first — nothing was changed") from exc
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


# ---------------------------------------------------------------------- reading
_PROBE = (
    "import sys, h5py\n"
    "with h5py.File(sys.argv[1], 'r', swmr=True) as f:\n"
    "    list(f.attrs.keys()); list(f.keys())\n"
    "    [f[k].attrs.keys() for k in f]\n"
)


def _open_bounded(path: Path, timeout: float = OPEN_TIMEOUT) -> h5py.File:
    """Open ``path`` read-only without hanging on a corrupt or truncated file.

    A file whose consistency flags are clear opens without SWMR (HDF5 then fails fast on bad
    metadata). A file that says a writer is (or was) active needs SWMR, where HDF5 retries bad
    metadata reads; it is first opened in a child process with a time bound.
    """
    problem = superblock_problem(path)
    if problem:
        raise StoreError(f"cannot open run file {str(path)!r}: {problem}")
    flags = consistency_flags(path)
    if flags:
        try:
            probe = subprocess.run([sys.executable, "-c", _PROBE, str(path)], capture_output=True, text=True,
                                   timeout=timeout)
        except subprocess.TimeoutExpired:
            raise StoreError(f"cannot open run file {str(path)!r}: opening did not finish within {timeout:g} s "
                             "(a corrupt or truncated file whose writer did not close it)") from None
        if probe.returncode != 0:
            last = (probe.stderr.strip().splitlines() or ["unknown error"])[-1]
            raise StoreError(f"cannot open run file {str(path)!r}: {last}")
    try:
        return h5py.File(path, "r", swmr=bool(flags), locking=False)
    except OSError as exc:
        raise StoreError(f"cannot open run file {str(path)!r}: {_cause(exc)}") from exc


class RunReader:
    """Read-only view of a run file (works while it is being written, or after its writer died).

    Reads schema 1.x (one ``/ops`` table without an array column; records get array 0) and
    2.x; refuses newer major versions.
    """

    def __init__(self, path: str | os.PathLike, timeout: float = OPEN_TIMEOUT) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise StoreError(f"run file {str(self.path)!r} does not exist")
        self._f = _open_bounded(self.path, timeout)
        try:
            self._check_schema()
        except BaseException:
            self._f.close()
            raise

    def _check_schema(self) -> None:
        version = self._f.attrs.get("schema_version")
        if version is None or "ops" not in self._f:
            raise StoreError(f"{str(self.path)!r} is not a run file (no schema_version / no /ops)")
        version = _s(version)
        try:
            major = int(version.split(".")[0])
        except ValueError:
            raise StoreError(f"{str(self.path)!r}: unreadable schema version {version!r}") from None
        if major > SCHEMA_MAJOR:
            raise StoreError(f"{str(self.path)!r} has run-file schema {version}, newer than this package reads "
                             f"({SCHEMA_VERSION}, memristor-hil {__version__}); upgrade memristor-hil")
        self.schema_major = major

    # ------------------------------------------------------------------ attributes
    @property
    def attrs(self) -> dict[str, Any]:
        return {k: _s(v) if isinstance(v, bytes) else v for k, v in self._f.attrs.items()}

    @property
    def config(self) -> dict[str, Any]:
        return json.loads(self._f.attrs["config"])

    @property
    def instruments(self) -> dict[str, str]:
        return json.loads(self._f.attrs["instruments"])

    @property
    def status(self) -> str:
        return _s(self._f.attrs.get("status", ""))

    @property
    def arrays(self) -> list[dict[str, Any]]:
        """The run's arrays: id, name, rows, cols, technology, instrument (JSON identity)."""
        if "arrays" not in self._f:
            return []
        ds = self._f["arrays"]
        ds.refresh()
        return [{"id": int(r["id"]), "name": _s(r["name"]), "rows": int(r["rows"]), "cols": int(r["cols"]),
                 "technology": _s(r["technology"]), "instrument": _s(r["instrument"])} for r in ds[()]]

    def array_id(self, name: str | int) -> int:
        if isinstance(name, (int, np.integer)):
            return int(name)
        for a in self.arrays:
            if a["name"] == name:
                return a["id"]
        raise KeyError(f"{self.path}: no array {name!r}; arrays: {[a['name'] for a in self.arrays]}")

    # ------------------------------------------------------------------ operations
    def _extent(self) -> dict[str, int]:
        ops = self._f["ops"]
        ext = ops["extent"]
        ext.refresh()
        return dict(zip(OPS_DATASETS, (int(v) for v in ext[()])))

    def batches(self) -> np.ndarray:
        """The committed ``/ops/batch`` table (BATCH_DTYPE)."""
        if self.schema_major < 2:
            raise StoreError(f"{self.path}: schema {self.attrs.get('schema_version')} has no batch table")
        n = self._extent()["batch"]
        ds = self._f["ops/batch"]
        ds.refresh()
        return ds[:n]

    @property
    def n_ops(self) -> int:
        """Number of committed operation records."""
        if self.schema_major < 2:
            ds = self._f["ops"]
            ds.refresh()
            return int(ds.shape[0])
        return int(self.batches()["n"].sum())

    def ops_columns(self, *names: str, array: str | int | None = None) -> dict[str, np.ndarray]:
        """Columns of the expanded ``/ops`` records (names from :data:`OP_DTYPE`, default all), each
        shape (n,), in file order; ``array`` selects one array's records (by name or id).

        Expansion (``hil/SCHEMA.md``): batch fields are repeated over their ``n`` records; fields
        whose ``varying`` bit is set come from ``/ops/<field>`` in batch order; ``time`` is
        ``t_start + t_step * k`` (k = 1..n) for batches with uniform timing.
        """
        names = names or OP_DTYPE.names
        for nm in names:
            if nm not in OP_DTYPE.names:
                raise KeyError(f"no /ops column {nm!r}; columns: {list(OP_DTYPE.names)}")
        if self.schema_major < 2:
            ds = self._f["ops"]
            ds.refresh()
            rec = ds[()]
            out = {nm: (np.zeros(len(rec), "<u2") if nm == "array" else rec[nm]) for nm in names}
            if array is not None:
                keep = out.get("array", np.zeros(len(rec), "<u2")) == self.array_id(array)
                out = {k: v[keep] for k, v in out.items()}
            return out
        b = self.batches()
        ext = self._extent()
        ops = self._f["ops"]
        n = b["n"].astype(np.int64)
        total = int(n.sum())
        sel = None if array is None else np.repeat(b["array"] == self.array_id(array), n)
        out: dict[str, np.ndarray] = {}
        for nm in names:
            if nm in ("row", "col"):
                ds = ops[nm]
                ds.refresh()
                col = ds[:total]
            elif nm in ("array", "kind"):
                col = np.repeat(b[nm], n)
            else:
                bit = 1 << VARYING_FIELDS.index(nm)
                vary = (b["varying"] & bit) != 0
                if nm == "time":
                    k = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(n) - n, n) + 1
                    col = np.repeat(b["t_start"], n) + np.repeat(b["t_step"], n) * k
                else:
                    col = np.repeat(b[nm], n)
                if vary.any():
                    ds = ops[nm]
                    ds.refresh()
                    need = int(n[vary].sum())
                    col[np.repeat(vary, n)] = ds[:min(need, ext[nm])]
            out[nm] = col if sel is None else col[sel]
        return out

    @property
    def ops(self) -> np.ndarray:
        """All committed operation records as one OP_DTYPE table (see :meth:`ops_columns`)."""
        cols = self.ops_columns()
        rec = np.empty(len(cols["row"]), dtype=OP_DTYPE)
        for k, v in cols.items():
            rec[k] = v
        return rec

    def pulses_per_device(self, array: str | int | None = None) -> np.ndarray:
        """Programming pulses (FORM, SET, RESET) applied to each cell, int64 (rows, cols).

        ``array`` defaults to the only array of the run.
        """
        arrays = self.arrays
        if array is None:
            if len(arrays) != 1:
                raise ValueError(f"{self.path}: {len(arrays)} arrays; name one of {[a['name'] for a in arrays]}")
            array = arrays[0]["id"]
        aid = self.array_id(array)
        info = next(a for a in arrays if a["id"] == aid)
        b = self.batches()
        ops = self._f["ops"]
        keep = (b["array"] == aid) & (b["kind"] != int(OpKind.READ))
        counts = np.zeros(info["rows"] * info["cols"], dtype=np.int64)
        if not keep.any():
            return counts.reshape(info["rows"], info["cols"])
        total = int(b["n"].astype(np.int64).sum())
        mask = np.repeat(keep, b["n"].astype(np.int64))
        rows = ops["row"][:total][mask].astype(np.int64)
        cols = ops["col"][:total][mask].astype(np.int64)
        counts += np.bincount(rows * info["cols"] + cols, minlength=counts.size)
        return counts.reshape(info["rows"], info["cols"])

    # ------------------------------------------------------------------ snapshots, metrics
    def snapshot_names(self) -> list[str]:
        return sorted(self._f["snapshots"].keys())

    def snapshot(self, name: str, index: int = -1) -> tuple[np.ndarray, float]:
        """Conductance map (S, (rows, cols)) and its bench time (s); the latest by default."""
        grp = self._f["snapshots"][name]
        grp["g"].refresh()
        grp["time"].refresh()
        return grp["g"][index], float(grp["time"][index])

    def snapshot_series(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """All maps of a snapshot series, shape (n, rows, cols), and their bench times, s, shape (n,)."""
        grp = self._f["snapshots"][name]
        grp["g"].refresh()
        grp["time"].refresh()
        return grp["g"][()], grp["time"][()]

    def metric_names(self) -> list[str]:
        return sorted(self._f["metrics"].keys())

    def metric(self, name: str) -> np.ndarray:
        """Metric table (METRIC_DTYPE): step, epoch, value."""
        ds = self._f["metrics"][name]
        ds.refresh()
        return ds[()]

    def resumes(self) -> np.ndarray:
        """The resume markers (RESUME_DTYPE), empty for a run never resumed."""
        if "resumes" not in self._f:
            return np.zeros(0, dtype=RESUME_DTYPE)
        return self._f["resumes"][()]

    # ------------------------------------------------------------------ checkpoints
    def _slot(self) -> h5py.Group | None:
        grp = self._f["checkpoints"]
        if "index" not in grp:
            return None
        slot, _serial = (int(v) for v in grp["index"][()])
        return None if slot < 0 else grp[f"slot{slot}"]

    def load_checkpoint(self) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
        """The latest complete checkpoint as (arrays, meta), or None."""
        sg = self._slot()
        if sg is None:
            return None
        arrays = {k: _read_checkpoint_array(sg[k]) for k in sg if k != "meta"}
        return arrays, json.loads(sg["meta"][()].decode())

    def _checkpoint_counts(self) -> tuple[dict[str, int], int]:
        """(counts of every appendable dataset at the latest checkpoint, its serial); ({}, -1) without one."""
        sg = self._slot()
        if sg is None:
            return {}, -1
        if "counts" not in sg.attrs:
            raise StoreError(f"{self.path}: its checkpoint records no dataset counts (schema "
                             f"{self.attrs.get('schema_version')}); it cannot be resumed exactly")
        return json.loads(sg.attrs["counts"]), int(sg.attrs.get("serial", -1))

    def calibration(self) -> dict[str, np.ndarray]:
        grp = self._f["calibration"]
        return {k: grp[k][()] for k in grp}

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> RunReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_run(path: str | os.PathLike, timeout: float = OPEN_TIMEOUT) -> RunReader:
    """Open a run file for reading (live, finished, or left behind by a killed writer).

    Never hangs: a corrupt or truncated file fails within ``timeout`` s with a :class:`StoreError`.
    """
    return RunReader(path, timeout)
