"""The run store: one HDF5 file per run, valid at every moment, watchable live (SWMR).

The layout, its version history and the recipe that expands ``/ops`` into one record per device
operation are documented in ``hil/SCHEMA.md`` (schema :data:`SCHEMA_VERSION`). In short::

    /                      attrs: schema_version, package_version, config (JSON), backend,
                                  instruments (JSON), seed, start_time, status, writer_host,
                                  writer_pid, heartbeat
    /arrays                one row per array of the run (id, name, rows, cols, technology, instrument)
    /ops/batch             one row per operation batch (array, kind, cells, timing, shared values)
    /ops/cell              the addressed cells (flat index, delta-coded within a batch), one per record
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
``flush_interval`` seconds by a flush thread (all HDF5 calls are serialised by one lock, so a
flush never falls inside a half-done write), which also refreshes the writer's heartbeat, and at
once when :data:`FLUSH_RECORDS` records are buffered: the flush takes the buffers and compresses
and writes them (h5py releases the GIL inside HDF5) while the caller goes on buffering new ones.

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
from hil import __version__, provenance
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
#: One row of ``/ops/batch``: ``n`` records starting at record ``start``. Bit k of ``varying``
#: set: field :data:`VARYING_FIELDS`\\[k] differs between the batch's records and is stored per
#: record (else the batch's own value applies to all of them); bit k of ``raw`` set as well: stored
#: as plain values in ``/ops/<field>_raw`` instead of dictionary codes. ``stride`` is the row
#: length used for the flat cell index. Bit 0 of ``same`` set: the batch addresses exactly the cells
#: of the previous batch of its array (e.g. the verify read after a pulse), not stored again; bit k
#: (k >= 2) set: field k's dictionary codes equal ``v_gate``'s codes in this batch (compliance follows
#: the gate voltage), not stored again. The row length (the array's columns; 65536 for an unregistered array).
#: ``wall`` is the host's Unix time, s.
BATCH_DTYPE = np.dtype([
    ("array", "<u2"), ("kind", "u1"), ("varying", "u1"), ("raw", "u1"), ("same", "u1"), ("start", "<u8"), ("n", "<u4"),
    ("stride", "<u4"), ("t_start", "<f8"), ("t_step", "<f8"), ("wall", "<f8"),
    ("v_gate", "<f4"), ("v_pulse", "<f4"), ("width", "<f4"), ("compliance", "<f4"), ("result", "<f4"),
])
VARYING_FIELDS = ("time", *VALUE_FIELDS)
#: Varying control values (few distinct values: gate and pulse ramps) are dictionary-coded: u4
#: codes in ``/ops/<field>`` index ``/ops/<field>_values``, up to :data:`DICT_LIMIT` distinct values
#: per run, then plain values in ``/ops/<field>_raw``. ``time`` and ``result`` are stored plain.
CODED_FIELDS = ("v_gate", "v_pulse", "width", "compliance")
DICT_LIMIT = 1 << 16
_RECORD_DTYPES = {"cell": "<u4", "time": "<f8", "result": "<f4",
                  **{f: "<u4" for f in CODED_FIELDS}, **{f"{f}_values": "<f4" for f in CODED_FIELDS},
                  **{f"{f}_raw": "<f4" for f in CODED_FIELDS}}
#: The ``/ops`` datasets in the order of ``/ops/extent``.
OPS_DATASETS = ("batch", *_RECORD_DTYPES)
RESUME_DTYPE = np.dtype([("time", _STR), ("checkpoint", "<i8"), ("host", _STR), ("pid", "<i8"),
                         ("records_dropped", "<i8")])
_OPS_CHUNK = 1 << 16
#: Buffered records that make the flush thread write at once, and that make the writing thread
#: itself wait for a flush (a bound on the memory of buffered records).
FLUSH_RECORDS = 1 << 18
FLUSH_RECORDS_MAX = 8 << 20
_BATCH_CHUNK = 4096
_GZIP_LEVEL = 1
#: ``/ops`` datasets deflated with zlib's ``Z_RLE`` strategy (see :class:`_ChunkAppender`).
_RLE_DATASETS = ("result",)
_GZIP = {"compression": "gzip", "compression_opts": _GZIP_LEVEL, "shuffle": True}
#: Bytes kept free on the disk for closing a run file and marking it failed.
DISK_RESERVE = 256 * 1024
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
        #: rewrite the file compactly after a clean close (:func:`compact`)
        self.compact_on_close = True
        self._lock = threading.RLock()  # every HDF5 call
        self._buffer = threading.Lock()  # the queued batches
        self._wake = threading.Event()  # many records buffered: flush now
        self._queued: list[tuple] = []  # batches not yet encoded and written (see _append)
        self._pending_n = 0
        batches = f["ops/batch"]
        self._n_records = int(batches["n"].astype(np.int64).sum()) if batches.shape[0] else 0
        self._dicts = {fld: _Dictionary(f["ops"][f"{fld}_values"][()]) for fld in CODED_FIELDS}
        self._appenders = {name: _ChunkAppender(f["ops"][name], rle=name in _RLE_DATASETS) for name in OPS_DATASETS}
        self._array_ids: dict[str, int] = {}
        self._last_cells: dict[int, np.ndarray] = {}  # flat cells of each array's last batch
        self._listeners: dict[int, tuple[Any, Any]] = {}
        self._last_flush = time.monotonic()
        self._closed = False
        self._failed: str | None = None
        self._thread_error: BaseException | None = None
        self._stop = threading.Event()
        self._strides: dict[int, int] = {}
        for row in f["arrays"][()]:
            self._array_ids[_s(row["name"])] = int(row["id"])
            self._strides[int(row["id"])] = int(row["cols"])
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
            "provenance": _json(provenance.collect(bench)),  # versions, BLAS, git, bench files (hil.provenance)
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
        self._strides[aid] = cols
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
        if batch._records is not None:  # built from records: mixed kinds go one batch per kind
            kinds = np.unique(batch.records["kind"])
            if kinds.size > 1:
                rec = batch.records
                for k in kinds:
                    self._append(OpBatch.from_records(rec[rec["kind"] == k]), aid)
                return
        self._check_usable()
        stride = self._strides.get(aid, 65536)
        if batch.cells is not None and batch.n_cols == stride:  # the array's own flat indices
            flat = np.array(batch.cells, dtype=np.int64)  # a copy: the caller may reuse its array
            if flat.min() < 0 or flat.max() >= 65536 * stride:
                raise ValueError(f"cell address outside the array ({stride} columns)")
        else:
            rows = np.asarray(batch.rows, dtype=np.int64)
            cols = np.asarray(batch.cols, dtype=np.int64)
            if rows.max() >= 65536 or cols.max() >= stride or rows.min() < 0 or cols.min() < 0:
                raise ValueError(f"cell address outside the array ({stride} columns)")
            flat = rows * stride + cols
        # Only copies here (the caller may reuse its arrays); the encoding runs in the flush,
        # off the experiment's thread (:meth:`_encode`).
        times = None if batch.t_start is not None and batch.t_step is not None else \
            np.array(batch.times, dtype="<f8")
        fields = {f: (v if isinstance(v, float) or np.ndim(v) == 0 else np.array(v, dtype="<f4"))
                  for f in VALUE_FIELDS if (v := batch.fields.get(f, np.nan)) is not None}
        with self._buffer:
            self._queued.append((aid, int(batch.kind), self._n_records, n, stride, flat, batch.t_start, batch.t_step,
                                 times, fields, time.time()))
            self._n_records += n
            self._pending_n += n
            pending_n = self._pending_n
        if self.flush_interval <= 0 or pending_n >= FLUSH_RECORDS_MAX:
            with self._lock:
                self._flush_locked()
        elif pending_n >= FLUSH_RECORDS:
            self._wake.set()  # the flush thread writes them while the caller goes on

    def snapshot(self, name: str, g_map: np.ndarray, time_s: float) -> None:
        """Append a conductance map (S, (rows, cols)) taken at bench time ``time_s`` (s)."""
        g_map = np.asarray(g_map, dtype=np.float64)
        if g_map.ndim != 2:
            raise ValueError(f"snapshot must be a 2-D conductance map, got shape {g_map.shape}")
        key = _name(name)
        with self._lock:
            self._check_usable()
            self._ensure_space(g_map.nbytes + 4096, f"snapshot {name!r}")
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
            self._ensure_space(sum(np.asarray(a).nbytes for a in arrays.values()) + len(meta_json) + 4096,
                               "a checkpoint")
            with self._writing("a checkpoint"):
                grp = self._f["checkpoints"]
                if "index" not in grp:
                    grp.create_dataset("index", data=np.array([-1, -1], dtype="<i8"))  # [slot, serial]
                slot_now, serial = (int(v) for v in grp["index"][()])
                slot = 1 - slot_now if slot_now in (0, 1) else 0
                key = f"slot{slot}"
                counts = {k: int(d.shape[0]) for k, d in _appendables(self._f).items()}
                blob = _pack_checkpoint(arrays, meta_json, {"counts": counts, "serial": serial + 1})
                if key not in grp:  # resized and overwritten in place: HDF5 (2.0) crashes deleting in SWMR mode
                    grp.create_dataset(key, shape=(0,), maxshape=(None,), dtype=np.uint8, chunks=(1 << 16,))
                ds = grp[key]
                ds.resize((blob.size,))
                ds[:] = blob
                if "encoding" not in ds.attrs:  # attributes are never rewritten in SWMR mode (HDF5 crashes)
                    ds.attrs["encoding"] = "hil-checkpoint-1 (hil/SCHEMA.md)"
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

    def _encode(self, queued: list[tuple]) -> dict[str, list[np.ndarray]]:
        """Encode queued batches in order (the flush holds :attr:`_lock`, the only user of the
        encoding state): dictionary codes, cell deltas, the ``/ops/batch`` rows."""
        pending: dict[str, list[np.ndarray]] = {k: [] for k in OPS_DATASETS}
        rows = []
        for aid, kind, first, n, stride, flat, t_start, t_step, times, fields, wall in queued:
            varying = raw = same = 0
            if times is not None:
                varying |= 1
                t_start = t_step = np.nan
                pending["time"].append(times)
            values = []
            vg_codes = None
            for bit, f in enumerate(VALUE_FIELDS, start=1):
                a = fields.get(f, np.nan)
                if isinstance(a, float) or np.ndim(a) == 0:  # one value for the whole batch
                    values.append(a)
                    continue
                bits = a.view("<u4")
                if (bits == bits[0]).all():
                    values.append(a[0])
                    continue
                varying |= 1 << bit
                values.append(np.nan)
                if f == "result":
                    pending[f].append(a)
                    continue
                d = self._dicts[f]
                if vg_codes is not None and d.holds(vg_codes, bits):  # codes equal v_gate's: not stored again
                    same |= 1 << bit
                    continue
                codes, new = d.encode(bits)
                if codes is None:
                    raw |= 1 << bit
                    pending[f"{f}_raw"].append(a)
                    continue
                if new.size:
                    pending[f"{f}_values"].append(new.view("<f4"))
                if f == "v_gate":
                    vg_codes = codes
                elif vg_codes is not None and np.array_equal(codes, vg_codes):
                    same |= 1 << bit
                    continue
                pending[f].append(codes)
            last = self._last_cells.get(aid)
            if last is not None and last.size == n and np.array_equal(last, flat):
                same |= 1
            else:
                delta = np.empty(n, dtype="<u4")  # modulo 2**32 (see _decode_cells)
                delta[0] = flat[0]
                np.subtract(flat[1:], flat[:-1], out=delta[1:], casting="unsafe")
                pending["cell"].append(delta)
            self._last_cells[aid] = flat
            rows.append((aid, kind, varying, raw, same, first, n, stride, t_start, t_step, wall, *values))
        if rows:
            pending["batch"] = [np.array(rows, dtype=BATCH_DTYPE)]
        return {k: v for k, v in pending.items() if v}

    def flush(self) -> None:
        """Write buffered operations, refresh the heartbeat and flush the file."""
        with self._lock:
            self._check_usable()
            self._flush_locked()

    def _ensure_space(self, nbytes: int, what: str) -> None:
        """Refuse a write that may not fit on the disk, before HDF5 starts it.

        HDF5 does not survive running out of space mid-write (h5py's close then crashes the
        process), so the store stops first: it needs room for ``nbytes`` (uncompressed, an upper
        bound) plus :data:`DISK_RESERVE` for closing the file and marking it failed.
        """
        try:
            st = os.statvfs(self.path.parent)
        except OSError:
            return
        free = st.f_bavail * st.f_frsize
        if free < nbytes + DISK_RESERVE:
            self._failed = (f"disk full: {free} bytes free on the file system of {str(self.path)!r}, "
                            f"writing {what} needs up to {nbytes} + {DISK_RESERVE} reserved")
            log.error("run file %s: %s", self.path, self._failed)
            raise StoreError(f"cannot write {what} to run file {str(self.path)!r}: {os.strerror(errno.ENOSPC)} "
                             f"({self._failed})")

    def _flush_locked(self) -> None:
        """Write the buffered records (the caller holds :attr:`_lock`). The buffers are taken
        at once, so records keep arriving while these are compressed and written."""
        with self._buffer:
            queued, self._queued = self._queued, []
            self._pending_n = 0
        self._wake.clear()
        pending = self._encode(queued)
        self._ensure_space(sum(a.nbytes for chunks in pending.values() for a in chunks), "operation records")
        with self._writing("operation records"):
            ops = self._f["ops"]
            extent = ops["extent"]
            lengths = extent[()].copy()
            for k, name in enumerate(OPS_DATASETS):
                chunks = pending.get(name)
                if chunks:
                    self._appenders[name].append(chunks[0] if len(chunks) == 1 else np.concatenate(chunks))
                lengths[k] = ops[name].shape[0]
            self._f.attrs["heartbeat"] = time.time()
            self._f.flush()  # the records are on disk ...
            extent[...] = lengths  # ... before the extent that makes them records
            self._f.flush()
            self._last_flush = time.monotonic()

    def _flush_loop(self) -> None:
        """Flush thread: at least every ``flush_interval`` s, even without new writes, and at
        once when many records are buffered (:data:`FLUSH_RECORDS`)."""
        while not self._stop.is_set():
            woken = self._wake.wait(self.flush_interval / 2)
            if self._stop.is_set():
                return
            with self._lock:
                if self._closed or self._failed:
                    return
                if not woken and time.monotonic() - self._last_flush < self.flush_interval:
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
        self._wake.set()
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
                worth = error is None and not self._failed and self.compact_on_close and _worth_compacting(self._f)
            finally:
                self._closed = True
                _close_file(self._f, self._failed is not None)
            if worth:
                saved = compact(self.path)
                log.info("%s compacted (%d bytes saved)", self.path, saved)
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


def _byte_shuffled(a: np.ndarray) -> np.ndarray:
    """The bytes of ``a`` grouped by byte position (byte 0 of every element, then byte 1, ...),
    as HDF5's shuffle filter does: a contiguous uint8 array of ``a.nbytes``. A numpy copy rather
    than ``tobytes`` of the transposed view, so that the GIL is released while it runs."""
    a = np.ascontiguousarray(a)
    return np.ascontiguousarray(a.reshape(-1).view(np.uint8).reshape(a.size, a.dtype.itemsize).T)


class _ChunkAppender:
    """Appends to a 1-D ``/ops`` dataset (chunked, shuffle + deflate) by writing whole chunks
    already filtered, with HDF5's direct chunk write.

    The chunks are byte-shuffled and deflated here, as HDF5's own shuffle and deflate filters
    would (the file is the same to every reader), because zlib releases the GIL and h5py's
    filtered writes do not: the flush thread compresses while the experiment goes on. With
    ``rle`` deflate runs with zlib's ``Z_RLE`` strategy (run-length matches only, still a standard
    deflate stream): on the shuffled read results (float32 noise) of a 128x128 program-and-verify
    it gave 2.11 MB against level 1's 2.16 MB in half the time (26 ms against 55 ms), and on the
    quickstart's 72.9 MB against 74.5 MB; on the cell deltas of the quickstart it gave 27.1 MB
    against 19.3 MB, so only the result column uses it (:data:`_RLE_DATASETS`). The
    last, partial chunk is kept in memory and written zero-padded (a full chunk, as HDF5 stores
    edge chunks); the next append rewrites it with more records.
    """

    def __init__(self, ds: h5py.Dataset, rle: bool = False) -> None:
        self.ds = ds
        self.strategy = zlib.Z_RLE if rle else zlib.Z_DEFAULT_STRATEGY
        self.chunk = int(ds.chunks[0])
        n = ds.shape[0]
        self.tail = ds[n - n % self.chunk:n] if n % self.chunk else np.empty(0, dtype=ds.dtype)

    def _filtered(self, piece: np.ndarray) -> bytes:
        if piece.size < self.chunk:
            full = np.zeros(self.chunk, dtype=piece.dtype)
            full[:piece.size] = piece
            piece = full
        z = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, 15, 8, self.strategy)
        return z.compress(_byte_shuffled(piece)) + z.flush()

    def append(self, data: np.ndarray) -> None:
        """Append ``data`` (the dataset's dtype) at the end of the dataset."""
        data = np.asarray(data, dtype=self.ds.dtype)
        n0 = self.ds.shape[0]
        start = n0 - self.tail.size
        buf = np.concatenate([self.tail, data]) if self.tail.size else data
        self.ds.resize((n0 + data.size,))
        for i in range(0, buf.size, self.chunk):
            self.ds.id.write_direct_chunk((start + i,), self._filtered(buf[i:i + self.chunk]))
        self.tail = buf[buf.size - buf.size % self.chunk:].copy()


class _Dictionary:
    """Codes of the distinct float32 values of one control field (by bit pattern, so exact).

    Codes are given in order of first appearance (the new values of one batch in increasing bit
    order). The lookup is a vectorised open-addressing hash table (Fibonacci hashing, linear
    probing, at most 1/8 full): a few array operations per batch and no sort of the batch, whose
    values are looked up in O(1) each.
    """

    _EMPTY = np.uint32(0xFFFFFFFF)
    _MULT = np.uint32(0x9E3779B1)

    def __init__(self, values: np.ndarray) -> None:
        self.size = 0
        self._by_code = np.zeros(1024, dtype="<u4")  # the values' bit patterns, by code
        self._alloc(10)
        for b in np.asarray(values, dtype="<f4").view("<u4").tolist():
            self._insert(b)

    def _alloc(self, log2: int) -> None:
        self._log2 = log2
        self._keys = np.zeros(1 << log2, dtype="<u4")
        self._codes = np.full(1 << log2, self._EMPTY, dtype="<u4")

    def _slots(self, bits: np.ndarray) -> np.ndarray:
        return (bits.astype("<u4", copy=False) * self._MULT) >> np.uint32(32 - self._log2)

    def _insert(self, b: int) -> None:
        """Give the (new) bit pattern ``b`` the next code."""
        if (self.size + 1) * 8 > self._codes.size:  # grow: rehash every value in code order
            keys, codes = self._keys[self._codes != self._EMPTY], self._codes[self._codes != self._EMPTY]
            self._alloc(self._log2 + 1)
            self.size = 0
            for k in keys[np.argsort(codes)].tolist():
                self._insert(k)
        mask = self._codes.size - 1
        slot = int(self._slots(np.array([b], dtype="<u4"))[0])
        while self._codes[slot] != self._EMPTY:
            slot = (slot + 1) & mask
        self._keys[slot], self._codes[slot] = b, self.size
        if self.size == self._by_code.size:
            self._by_code = np.concatenate([self._by_code, np.zeros_like(self._by_code)])
        self._by_code[self.size] = b
        self.size += 1

    def holds(self, codes: np.ndarray, bits: np.ndarray) -> bool:
        """True if ``bits`` are exactly the values of this dictionary's ``codes`` (e.g. the
        compliance that follows the gate voltage), without looking them up."""
        return bool(codes.size) and int(codes.max()) < self.size and np.array_equal(self._by_code[codes], bits)

    def _lookup(self, bits: np.ndarray) -> np.ndarray:
        """Code of each bit pattern, :attr:`_EMPTY` where unknown."""
        slot = self._slots(bits)
        codes = self._codes[slot]
        hit = self._keys[slot] == bits
        occupied = codes != self._EMPTY
        if np.all(hit & occupied):
            return codes
        rest = np.flatnonzero(~hit & occupied)  # the slot holds another value: probe on
        codes[~hit] = self._EMPTY
        mask = np.uint32(self._codes.size - 1)
        s = slot[rest]
        while rest.size:
            s = (s + np.uint32(1)) & mask
            c = self._codes[s]
            found = (self._keys[s] == bits[rest]) & (c != self._EMPTY)
            codes[rest[found]] = c[found]
            more = ~found & (c != self._EMPTY)
            rest, s = rest[more], s[more]
        return codes

    def encode(self, bits: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        """(codes of ``bits``, the new values' bit patterns in code order); (None, []) when the
        dictionary would exceed :data:`DICT_LIMIT`."""
        bits = np.asarray(bits, dtype="<u4")
        codes = self._lookup(bits)
        unknown = codes == self._EMPTY
        if not unknown.any():
            return codes, bits[:0]
        new = np.unique(bits[unknown])
        if self.size + new.size > DICT_LIMIT:
            return None, new[:0]
        for b in new.tolist():
            self._insert(b)
        codes[unknown] = self._lookup(bits[unknown])
        return codes, new


def _decode_cells(delta: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Flat cell indices from the per-batch delta code of ``/ops/cell`` (``n`` records per batch).

    Within a batch, record 0 holds the flat index and each later record the difference to the
    previous one, modulo 2**32. Decoded by one running sum modulo 2**32 (uint32 arithmetic) after
    subtracting, at each batch's first record, the sum of the previous batch's codes. Returns
    uint32, shape (sum(n),).
    """
    n = np.asarray(n, dtype=np.int64)
    d = np.array(delta, dtype=np.uint32)
    keep = n > 0
    starts = (np.cumsum(n) - n)[keep]
    if starts.size > 1:
        sums = np.add.reduceat(d, starts, dtype=np.uint32)  # each batch's codes, summed modulo 2**32
        d[starts[1:]] -= sums[:-1]
    return np.cumsum(d, dtype=np.uint32)


def _cell_sources(b: np.ndarray) -> np.ndarray:
    """For each batch of ``b``, the index of the batch whose stored cells it addresses: itself,
    or for a batch marked ``same`` bit 0 the latest earlier unmarked batch of its array, shape
    (len(b),), int64."""
    src = np.arange(len(b), dtype=np.int64)
    same = (b["same"] & 1) != 0
    if not same.any():
        return src
    for aid in np.unique(b["array"][same]):
        mine = np.flatnonzero(b["array"] == aid)
        own = np.where(same[mine], -1, np.arange(mine.size))
        last = np.maximum.accumulate(own)
        if last[0] < 0:
            raise StoreError(f"/ops/batch: batch {int(mine[0])} repeats the cells of a batch that does not exist")
        src[mine] = mine[last]
    return src


def _flat_cells(b: np.ndarray, read: Any) -> np.ndarray:
    """Flat cell index of every record of the batches ``b`` (``read(name, count)`` reads /ops data)."""
    n = b["n"].astype(np.int64)
    same = (b["same"] & 1) != 0
    stored_n = np.where(same, 0, n)
    flat_stored = _decode_cells(read("cell", int(stored_n.sum())), stored_n)
    if not same.any():
        return flat_stored
    src = _cell_sources(b)
    soff = np.cumsum(stored_n) - stored_n
    k = np.arange(int(n.sum()), dtype=np.int64) - np.repeat(np.cumsum(n) - n, n)
    return flat_stored[np.repeat(soff[src], n) + k]


def _pack_checkpoint(arrays: dict[str, np.ndarray], meta_json: str, extra: dict[str, Any]) -> np.ndarray:
    """One checkpoint as bytes: an 8-byte little-endian header length, a JSON header (meta and,
    per array: name, dtype, shape, offset, length, encoding) and the arrays' payloads. Arrays of
    1024 values or more are byte-shuffled (grouped by byte position, as HDF5's shuffle filter
    does) and deflated (``shuffle+zlib``); smaller ones are stored raw."""
    entries, payloads, offset = [], [], 0
    for name, arr in arrays.items():
        a = np.ascontiguousarray(np.asarray(arr))
        if a.dtype.kind == "O":
            raise ValueError(f"checkpoint array {name!r} has dtype object; only numeric / fixed-width arrays")
        raw = a.reshape(-1).view(np.uint8)
        if a.size >= 1024 and a.dtype.kind in "biufc":
            data, enc = zlib.compress(_byte_shuffled(a), 4), "shuffle+zlib"
        else:
            data, enc = raw.tobytes(), "raw"
        entries.append({"name": _name(name), "dtype": a.dtype.str, "shape": list(a.shape), "offset": offset,
                        "length": len(data), "encoding": enc})
        payloads.append(data)
        offset += len(data)
    header = json.dumps({"meta": meta_json, "arrays": entries, **extra}).encode()
    return np.frombuffer(len(header).to_bytes(8, "little") + header + b"".join(payloads), dtype=np.uint8)


def _checkpoint_header(blob: bytes) -> dict[str, Any]:
    n = int.from_bytes(blob[:8], "little")
    return json.loads(blob[8 : 8 + n])


def _unpack_checkpoint(blob: bytes) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + n])
    body = memoryview(blob)[8 + n :]
    arrays = {}
    for e in header["arrays"]:
        dt, shape = np.dtype(e["dtype"]), tuple(e["shape"])
        data = bytes(body[e["offset"] : e["offset"] + e["length"]])
        if e["encoding"] == "shuffle+zlib":
            planes = np.frombuffer(zlib.decompress(data), dtype=np.uint8)
            arrays[e["name"]] = planes.reshape(dt.itemsize, -1).T.copy().view(dt).reshape(shape)
        else:
            arrays[e["name"]] = np.frombuffer(data, dtype=dt).reshape(shape).copy()
    return arrays, json.loads(header["meta"])


#: A clean close rewrites the file when that saves at least this fraction of it (or when a
#: superseded checkpoint slot is to go).
COMPACT_MIN_SAVING = 0.10


def _worth_compacting(f: h5py.File) -> bool:
    """Whether :func:`compact` would save much: a superseded checkpoint slot, or space HDF5 could
    not reuse (the file's size beyond its datasets' storage) of :data:`COMPACT_MIN_SAVING` or more."""
    try:
        if sum(1 for k in f["checkpoints"] if k.startswith("slot")) > 1:
            return True
        stored = [0]

        def add(_name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset):
                stored[0] += obj.id.get_storage_size()
        f.visititems(add)
        size = f.id.get_filesize()
        return size - stored[0] >= COMPACT_MIN_SAVING * size
    except Exception:  # noqa: BLE001 - when in doubt, compact
        return True


def compact(path: Path) -> int:
    """Rewrite a closed run file without the space HDF5 could not reuse while it grew (rewritten
    partial chunks, replaced checkpoint slots) and without the checkpoint slot that the latest one
    superseded. Objects are copied as stored (H5Ocopy: compressed chunks are not re-encoded).

    Returns bytes saved; on any failure the original file is kept and 0 is returned.
    """
    tmp = path.with_name(path.name + ".compact")
    try:
        before = path.stat().st_size
        with h5py.File(path, "r") as src, h5py.File(tmp, "w", libver=LIBVER) as dst:
            dst.attrs.update(dict(src.attrs))
            for key in src:
                if key != "checkpoints":
                    src.copy(src[key], dst, name=key)
                    continue
                grp = dst.create_group("checkpoints")
                sc = src["checkpoints"]
                if "index" not in sc:
                    continue
                grp.create_dataset("index", data=sc["index"][()])
                slot = int(sc["index"][0])
                if slot >= 0:
                    src.copy(sc[f"slot{slot}"], grp, name=f"slot{slot}")
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return before - path.stat().st_size
    except Exception as exc:  # noqa: BLE001 - compaction is an optimisation; the original stays valid
        log.warning("could not compact %s (%s); it stays as written", path, exc)
        with contextlib.suppress(OSError):
            tmp.unlink()
        return 0


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
    before = int(f["ops/batch"]["n"].astype(np.int64).sum()) if f["ops/batch"].shape[0] else 0
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
    after = int(f["ops/batch"]["n"].astype(np.int64).sum()) if f["ops/batch"].shape[0] else 0
    return before - after


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
    if not flags:
        try:
            return h5py.File(path, "r", swmr=False)
        except OSError as exc:
            raise StoreError(f"cannot open run file {str(path)!r}: {_cause(exc)}") from exc
    bounded = _swmr_open_bounded_retries(path)
    if bounded is not None:
        return bounded
    try:  # no handle on the library's retry count: open once in a child process, with a time bound
        probe = subprocess.run([sys.executable, "-c", _PROBE, str(path)], capture_output=True, text=True,
                               timeout=timeout)
    except subprocess.TimeoutExpired:
        raise StoreError(f"cannot open run file {str(path)!r}: opening did not finish within {timeout:g} s "
                         "(a corrupt or truncated file whose writer did not close it)") from None
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise StoreError(f"cannot open run file {str(path)!r}: {last}")
    try:
        return h5py.File(path, "r", swmr=True)
    except OSError as exc:
        raise StoreError(f"cannot open run file {str(path)!r}: {_cause(exc)}") from exc


#: Metadata read attempts of a SWMR reader (HDF5's default, 100 with growing waits, looks like a
#: hang on a corrupt file; a live writer's half-flushed metadata needs only a few).
SWMR_READ_ATTEMPTS = 20


def _hdf5_library() -> Any:
    """The HDF5 C library h5py uses (ctypes handle), or None."""
    import ctypes

    try:
        with open("/proc/self/maps") as fh:
            libs = {line.split()[-1] for line in fh if "libhdf5" in line and "libhdf5_hl" not in line}
        libs = [p for p in libs if os.path.basename(p).startswith("libhdf5")]
        return ctypes.CDLL(sorted(libs)[0]) if libs else None
    except (OSError, IndexError):
        return None


def _swmr_open_bounded_retries(path: Path) -> h5py.File | None:
    """Open read-only in SWMR mode with :data:`SWMR_READ_ATTEMPTS` metadata read attempts (a
    corrupt file then fails within milliseconds). None if the library setting is out of reach."""
    import ctypes

    lib = _hdf5_library()
    if lib is None or not hasattr(lib, "H5Pset_metadata_read_attempts"):
        return None
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    if lib.H5Pset_metadata_read_attempts(ctypes.c_int64(fapl.id), ctypes.c_uint(SWMR_READ_ATTEMPTS)) < 0:
        return None
    try:
        fid = h5py.h5f.open(os.fsencode(path), h5py.h5f.ACC_RDONLY | h5py.h5f.ACC_SWMR_READ, fapl=fapl)
    except OSError as exc:
        raise StoreError(f"cannot open run file {str(path)!r}: {_cause(exc)}") from exc
    return h5py.File(fid)


def _reading(method):
    """Report a read failure of a damaged file as a :class:`StoreError` naming the file."""
    import functools

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except StoreError:
            raise
        except (OSError, RuntimeError, KeyError) as exc:
            raise StoreError(f"cannot read run file {str(self.path)!r} ({method.__name__}): {_cause(exc)}") from exc
    return wrapper


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
        except (OSError, KeyError, RuntimeError) as exc:
            self._f.close()
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"cannot read run file {str(self.path)!r}: {_cause(exc)}") from exc
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

    @_reading
    def batches(self, extent: dict[str, int] | None = None) -> np.ndarray:
        """The committed ``/ops/batch`` table (BATCH_DTYPE); ``extent``: as read by :meth:`_extent`
        (one consistent moment of a live file)."""
        if self.schema_major < 2:
            raise StoreError(f"{self.path}: schema {self.attrs.get('schema_version')} has no batch table")
        n = (extent or self._extent())["batch"]
        ds = self._f["ops/batch"]
        ds.refresh()
        return ds[:n]

    @property
    @_reading
    def n_ops(self) -> int:
        """Number of committed operation records."""
        if self.schema_major < 2:
            ds = self._f["ops"]
            ds.refresh()
            return int(ds.shape[0])
        return int(self.batches()["n"].sum())

    @_reading
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
        ext = self._extent()
        b = self.batches(ext)
        ops = self._f["ops"]
        n = b["n"].astype(np.int64)
        total = int(n.sum())
        sel = None if array is None else np.repeat(b["array"] == self.array_id(array), n)

        def read(name: str, count: int) -> np.ndarray:
            ds = ops[name]
            ds.refresh()
            return ds[:min(count, ext[name])]

        flat = None
        codes: dict[str, np.ndarray] = {}

        def field_codes(nm: str, coded: np.ndarray) -> np.ndarray:
            """Per-record dictionary codes of field ``nm`` (valid where ``coded``)."""
            if nm not in codes:
                c = np.zeros(total, dtype=np.int64)
                same = (b["same"] & (1 << VARYING_FIELDS.index(nm))) != 0 if nm != "v_gate" else np.zeros(len(b), bool)
                own = coded & ~same
                c[np.repeat(own, n)] = read(nm, int(n[own].sum()))
                if (coded & same).any():
                    vg = (b["varying"] & 2 != 0) & (b["raw"] & 2 == 0)
                    c[np.repeat(coded & same, n)] = field_codes("v_gate", vg)[np.repeat(coded & same, n)]
                codes[nm] = c
            return codes[nm]

        out: dict[str, np.ndarray] = {}
        for nm in names:
            if nm in ("row", "col"):
                if flat is None:
                    flat = _flat_cells(b, read)
                    stride = np.repeat(b["stride"].astype(np.int64), n)
                col = (flat // stride if nm == "row" else flat % stride).astype("<u2")
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
                if nm in CODED_FIELDS:
                    raw = (b["raw"] & bit) != 0
                    coded = vary & ~raw
                    if coded.any():
                        values = read(f"{nm}_values", DICT_LIMIT)
                        col[np.repeat(coded, n)] = values[field_codes(nm, coded)[np.repeat(coded, n)]]
                    if (vary & raw).any():
                        col[np.repeat(vary & raw, n)] = read(f"{nm}_raw", int(n[vary & raw].sum()))
                elif vary.any():
                    col[np.repeat(vary, n)] = read(nm, int(n[vary].sum()))
            out[nm] = col if sel is None else col[sel]
        return out

    @property
    @_reading
    def ops(self) -> np.ndarray:
        """All committed operation records as one OP_DTYPE table (see :meth:`ops_columns`)."""
        cols = self.ops_columns()
        rec = np.empty(len(cols["row"]), dtype=OP_DTYPE)
        for k, v in cols.items():
            rec[k] = v
        return rec

    @_reading
    def pulses_per_device(self, array: str | int | None = None) -> np.ndarray:
        """Programming pulses (FORM, SET, RESET) applied to each cell, int64 (rows, cols).

        ``array`` defaults to the only array of the run. Works on the stored (batched) columns
        without expanding the records: each programming batch adds one pulse to the cells it
        addresses, so the cells stored once are counted once, weighted by the number of
        programming batches that address them (``np.bincount`` with weights).
        """
        arrays = self.arrays
        if array is None:
            if len(arrays) != 1:
                raise ValueError(f"{self.path}: {len(arrays)} arrays; name one of {[a['name'] for a in arrays]}")
            array = arrays[0]["id"]
        aid = self.array_id(array)
        info = next((a for a in arrays if a["id"] == aid), None)
        if info is None:
            raise KeyError(f"{self.path}: no array with id {aid}; arrays: {[a['name'] for a in arrays]}")
        rows, cols = info["rows"], info["cols"]
        if self.schema_major < 2:
            c = self.ops_columns("kind", "row", "col", array=aid)
            prog = c["kind"] != int(OpKind.READ)
            flat = c["row"][prog].astype(np.int64) * cols + c["col"][prog]
            return np.bincount(flat, minlength=rows * cols).reshape(rows, cols)
        ext = self._extent()
        b = self.batches(ext)
        prog = (b["array"] == aid) & (b["kind"] != int(OpKind.READ))
        # programming batches that address the cells stored with each batch (itself or a later 'same' batch)
        weight = np.bincount(_cell_sources(b)[prog], minlength=len(b))
        if not weight.any():
            return np.zeros((rows, cols), dtype=np.int64)
        last = int(np.flatnonzero(weight)[-1]) + 1
        b, weight = b[:last], weight[:last]
        stored_n = np.where((b["same"] & 1) != 0, 0, b["n"].astype(np.int64))
        need = weight > 0
        delta = self._stored_cells(ext)[: int(stored_n.sum())]
        flat = _decode_cells(delta if need.all() else delta[np.repeat(need, stored_n)], stored_n[need])
        stride = b["stride"][need]
        if np.any(stride != cols):  # flat indices of another row length: re-index to this array's
            s = np.repeat(stride.astype(np.int64), stored_n[need])
            flat = flat // s * cols + flat % s
        if flat.size and (flat.min() < 0 or flat.max() >= rows * cols):
            raise StoreError(f"{str(self.path)!r}: /ops/cell holds a cell outside array {info['name']!r} "
                             f"({rows}x{cols})")
        counts = np.bincount(flat, minlength=rows * cols)  # one pulse for each stored cell ...
        w = weight[need]
        if np.any(w > 1):  # ... and the batches that repeat them (float64 weights: exact up to 2**53)
            more = np.repeat(w > 1, stored_n[need])
            extra = np.repeat((w - 1)[w > 1].astype(np.float64), stored_n[need][w > 1])
            counts += np.rint(np.bincount(flat[more], weights=extra, minlength=rows * cols)).astype(np.int64)
        return counts.reshape(rows, cols)

    def _stored_cells(self, ext: dict[str, int]) -> np.ndarray:
        """The committed ``/ops/cell`` column (delta codes), read once per extent and kept."""
        cached = getattr(self, "_cell_cache", None)
        if cached is None or cached[0] != ext["cell"]:
            ds = self._f["ops/cell"]
            ds.refresh()
            cached = (ext["cell"], ds[: ext["cell"]])
            self._cell_cache = cached
        return cached[1]

    # ------------------------------------------------------------------ snapshots, metrics
    def snapshot_names(self) -> list[str]:
        return sorted(self._f["snapshots"].keys())

    @_reading
    def snapshot(self, name: str, index: int = -1) -> tuple[np.ndarray, float]:
        """Conductance map (S, (rows, cols)) and its bench time (s); the latest by default."""
        grp = self._f["snapshots"][name]
        grp["g"].refresh()
        grp["time"].refresh()
        return grp["g"][index], float(grp["time"][index])

    @_reading
    def snapshot_series(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """All maps of a snapshot series, shape (n, rows, cols), and their bench times, s, shape (n,)."""
        grp = self._f["snapshots"][name]
        grp["g"].refresh()
        grp["time"].refresh()
        return grp["g"][()], grp["time"][()]

    def metric_names(self) -> list[str]:
        return sorted(self._f["metrics"].keys())

    @_reading
    def metric(self, name: str) -> np.ndarray:
        """Metric table (METRIC_DTYPE): step, epoch, value."""
        ds = self._f["metrics"][name]
        ds.refresh()
        return ds[()]

    @_reading
    def resumes(self) -> np.ndarray:
        """The resume markers (RESUME_DTYPE), empty for a run never resumed."""
        if "resumes" not in self._f:
            return np.zeros(0, dtype=RESUME_DTYPE)
        return self._f["resumes"][()]

    # ------------------------------------------------------------------ checkpoints
    def _slot(self) -> h5py.Dataset | h5py.Group | None:
        grp = self._f["checkpoints"]
        if "index" not in grp:
            return None
        slot, _serial = (int(v) for v in grp["index"][()])
        return None if slot < 0 else grp[f"slot{slot}"]

    @_reading
    def load_checkpoint(self) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
        """The latest complete checkpoint as (arrays, meta), or None."""
        sg = self._slot()
        if sg is None:
            return None
        if isinstance(sg, h5py.Group):  # written before the packed slots
            return {k: sg[k][()] for k in sg if k != "meta"}, json.loads(sg["meta"][()].decode())
        sg.refresh()
        return _unpack_checkpoint(sg[()].tobytes())

    @_reading
    def _checkpoint_counts(self) -> tuple[dict[str, int], int]:
        """(counts of every appendable dataset at the latest checkpoint, its serial); ({}, -1) without one."""
        sg = self._slot()
        if sg is None:
            return {}, -1
        if isinstance(sg, h5py.Dataset):
            sg.refresh()
            head = _checkpoint_header(sg[()].tobytes())
            return head["counts"], int(head["serial"])
        if "counts" not in sg.attrs:
            raise StoreError(f"{self.path}: its checkpoint records no dataset counts (schema "
                             f"{self.attrs.get('schema_version')}); it cannot be resumed exactly")
        return json.loads(sg.attrs["counts"]), int(sg.attrs.get("serial", -1))

    @_reading
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
