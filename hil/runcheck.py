"""Verify a run file (``hil check``) and make a killed one readable everywhere (``hil repair``).

:func:`check_run` returns :class:`Finding` lines: the schema version, the status, the committed
``/ops`` extent against the datasets and the batch table, each array's bench clock (monotonic in
its records), the array ids against ``/arrays``, the metric and snapshot tables, and whether the
latest checkpoint loads and its counts fit the file. :func:`repair_run` clears a dead writer's
open-for-write flags (as ``h5clear -s`` does) and drops rows beyond the committed extent, but only
after everything else verifies.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from hil.h5recover import clear_consistency_flags, consistency_flags
from hil.store import (
    CODED_FIELDS,
    LIBVER,
    VARYING_FIELDS,
    OPS_DATASETS,
    SCHEMA_VERSION,
    StoreError,
    _exclusive_lock,
    _refuse_live_writer,
    _s,
    open_run,
)

log = logging.getLogger(__name__)


@dataclass
class Finding:
    """One line of a check: ``ok`` False marks a problem; ``note`` True an observation that is
    not a problem (e.g. a killed run that can be resumed)."""

    ok: bool
    text: str


def check_run(path: str | os.PathLike) -> list[Finding]:
    """Verify the run file ``path``; never raises for a bad file (the failure is a finding)."""
    p = Path(path)
    out: list[Finding] = []
    try:
        reader = open_run(p)
    except (StoreError, OSError, ValueError) as exc:
        return [Finding(False, f"cannot open: {exc}")]
    with reader:
        try:
            _check_open_file(reader, p, out)
        except Exception as exc:  # noqa: BLE001 - a broken file is reported, not raised
            out.append(Finding(False, f"unreadable: {type(exc).__name__}: {exc}"))
    return out


def _check_open_file(reader, p: Path, out: list[Finding]) -> None:
    attrs = reader.attrs
    out.append(Finding(True, f"schema {attrs.get('schema_version')} (this package writes {SCHEMA_VERSION})"))
    status = reader.status
    flags = consistency_flags(p)
    if status == "complete" and not flags:
        out.append(Finding(True, "status complete, closed cleanly"))
    elif status.startswith("failed"):
        out.append(Finding(False, f"status {status!r}"))
    elif flags:
        out.append(Finding(True, f"status {status!r}, open for write (writer pid {attrs.get('writer_pid')} on "
                                 f"{attrs.get('writer_host')}): live, or killed — 'hil repair' after it died"))
    else:
        out.append(Finding(True, f"status {status!r} (resumable)"))
    if reader.schema_major < 2:
        out.append(Finding(True, f"{reader.n_ops} operation records (schema 1: no array ids, not checked further)"))
        return
    f = reader._f
    ext = reader._extent()
    ops = f["ops"]
    lengths = {k: int(ops[k].shape[0]) for k in OPS_DATASETS}
    short = [k for k in OPS_DATASETS if lengths[k] < ext[k]]
    if short:
        out.append(Finding(False, f"/ops datasets shorter than their committed extent: {short}"))
        return
    extra = {k: lengths[k] - ext[k] for k in OPS_DATASETS if lengths[k] > ext[k]}
    if extra:
        out.append(Finding(True, f"uncommitted rows beyond /ops/extent (not records; 'hil repair' drops them): {extra}"))
    b = reader.batches(ext)
    n = b["n"].astype(np.int64)
    total = int(n.sum())
    starts_ok = np.array_equal(b["start"].astype(np.int64), np.cumsum(n) - n)
    stored_cells = int(n[(b["same"] & 1) == 0].sum())
    if stored_cells != ext["cell"] or not starts_ok:
        out.append(Finding(False, f"batch table needs {stored_cells} stored cells, /ops/cell has {ext['cell']}; "
                                  f"starts consistent: {starts_ok}"))
        return
    for bit, name in enumerate(VARYING_FIELDS):
        vary = (b["varying"] & (1 << bit)) != 0
        raw = (b["raw"] & (1 << bit)) != 0
        same = (b["same"] & (1 << bit)) != 0 if name in CODED_FIELDS[1:] else np.zeros(len(b), bool)
        expect = {name: int(n[vary & ~raw & ~same].sum())} if name in CODED_FIELDS else {name: int(n[vary].sum())}
        if name in CODED_FIELDS:
            expect[f"{name}_raw"] = int(n[vary & raw].sum())
        for ds_name, need in expect.items():
            if need != ext[ds_name]:
                out.append(Finding(False, f"/ops/{ds_name} has {ext[ds_name]} committed values, its batches need {need}"))
                return
        if name in CODED_FIELDS and ext[name]:
            codes = ops[name][:ext[name]]
            if int(codes.max()) >= ext[f"{name}_values"]:
                out.append(Finding(False, f"/ops/{name} codes beyond its {ext[f'{name}_values']} dictionary values"))
                return
    out.append(Finding(True, f"{total} operation records in {len(b)} batches; extent consistent"))
    arrays = reader.arrays
    ids = {a["id"] for a in arrays}
    used = set(np.unique(b["array"]).tolist())
    if arrays and not used <= ids:
        out.append(Finding(False, f"records of array ids {sorted(used - ids)} not in /arrays"))
    cols = reader.ops_columns("array", "time", "row", "col")
    bad_clock = []
    for aid in sorted(used):
        sel = cols["array"] == aid
        t = cols["time"][sel]
        back = int(np.count_nonzero(np.diff(t) < 0))
        if back:
            bad_clock.append(f"array {aid}: clock runs backwards {back} times")
        info = next((a for a in arrays if a["id"] == aid), None)
        if info is not None and sel.any():
            if int(cols["row"][sel].max()) >= info["rows"] or int(cols["col"][sel].max()) >= info["cols"]:
                bad_clock.append(f"array {aid} ({info['name']}): cell address outside {info['rows']}x{info['cols']}")
    if bad_clock:
        out.append(Finding(False, "; ".join(bad_clock)))
    else:
        names = ", ".join(f"{a['name']} {a['rows']}x{a['cols']} {a['technology']}" for a in arrays) or "none registered"
        out.append(Finding(True, f"bench clocks monotonic per array; arrays: {names}"))
    for name in reader.metric_names():
        reader.metric(name)
    for name in reader.snapshot_names():
        grp = f["snapshots"][name]
        if grp["g"].shape[0] != grp["time"].shape[0]:
            out.append(Finding(False, f"snapshot {name}: {grp['g'].shape[0]} maps, {grp['time'].shape[0]} times"))
    out.append(Finding(True, f"{len(reader.metric_names())} metrics, {len(reader.snapshot_names())} snapshot series"))
    ckpt = reader.load_checkpoint()
    if ckpt is None:
        out.append(Finding(True, "no checkpoint"))
        return
    counts, serial = reader._checkpoint_counts()
    current = {"ops/" + k: ext[k] for k in OPS_DATASETS}
    over = [k for k, v in counts.items() if k in current and v > current[k]]
    if over:
        out.append(Finding(False, f"checkpoint {serial} counts more rows than the file holds: {over}"))
    else:
        out.append(Finding(True, f"checkpoint {serial} loads ({len(ckpt[0])} arrays); its counts fit the file"))


def problems(findings: list[Finding]) -> list[Finding]:
    return [x for x in findings if not x.ok]


def repair_run(path: str | os.PathLike) -> list[str]:
    """Make a run file left by a killed writer open in any HDF5 reader. Returns what was done.

    Refuses (raising :class:`StoreError`, the file untouched) while its writer is alive, while
    another process holds it open, or when anything but the open-for-write state fails to verify.
    """
    p = Path(path)
    with open_run(p) as reader:
        attrs = reader.attrs
        status = reader.status
    flags = consistency_flags(p)
    done: list[str] = []
    if flags:
        _refuse_live_writer(p, attrs.get("writer_host"), attrs.get("writer_pid"), attrs.get("heartbeat"))
    findings = check_run(p)
    bad = problems(findings)
    if bad:
        raise StoreError(f"{p}: does not verify, not repairing: " + "; ".join(x.text for x in bad))
    with _exclusive_lock(p):
        if flags:
            clear_consistency_flags(p)
            done.append("cleared the open-for-write flags of the dead writer")
    try:
        f = h5py.File(p, "r+", libver=LIBVER)
    except OSError as exc:
        raise StoreError(f"{p}: cannot open for repair: {exc}") from exc
    try:
        ops = f["ops"]
        ext = ops["extent"][()]
        for name, n in zip(OPS_DATASETS, ext):
            ds = ops[name]
            if ds.shape[0] > n:
                done.append(f"dropped {ds.shape[0] - int(n)} uncommitted rows of /ops/{name}")
                ds.resize((int(n),))
        if status == "running":
            f.attrs["status"] = "interrupted"
            done.append("status running -> interrupted (resumable)")
    finally:
        with contextlib.suppress(Exception):
            f.close()
    return done or ["nothing to repair"]


__all__ = ["Finding", "check_run", "problems", "repair_run", "_s"]
