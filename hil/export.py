"""Run files as pandas / xarray objects, and export to NetCDF, Parquet or CSV.

Needs the optional extra ``memristor-hil[export]`` (pandas, xarray, pyarrow, h5netcdf); imported
lazily, so the rest of the package works without it.

* :func:`ops_frame` — every device operation, one row per record (columns of
  :data:`drivers.oplog.OP_DTYPE` plus the array's name), as a ``pandas.DataFrame``;
* :func:`metrics_frame` — every metric in long form (name, step, epoch, value);
* :func:`arrays_frame` — the run's arrays;
* :func:`to_xarray` — one ``xarray.Dataset``: ``/ops`` on dimension ``op``, each metric on its own
  dimension ``<metric>.row``, the run's root attributes as attributes;
* :func:`export_run` — files: ``netcdf`` (one ``.nc``), ``parquet`` / ``csv`` (``<stem>.ops``,
  ``<stem>.metrics``, ``<stem>.arrays``).
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hil.store import RunReader, StoreError, check_not_reading, check_writable, open_run

FORMATS = ("netcdf", "parquet", "csv")


def _need(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise StoreError(f"exporting needs {module}: pip install 'memristor-hil[export]' ({exc})") from None


@contextlib.contextmanager
def _opened(run: RunReader | str | os.PathLike) -> Iterator[RunReader]:
    """The reader given, or the run file opened for the call (and closed after it)."""
    if isinstance(run, RunReader):
        yield run
        return
    with open_run(run) as reader:
        yield reader


def ops_frame(run: RunReader | str | os.PathLike, array: str | int | None = None):
    """``/ops`` as a DataFrame: one row per operation record (``array`` restricts to one array)."""
    pd = _need("pandas")
    with _opened(run) as reader:
        cols = reader.ops_columns(array=array)
        df = pd.DataFrame(cols)
        names = {a["id"]: a["name"] for a in reader.arrays}
        df.insert(1, "array_name", df["array"].map(names).astype("string"))
        from drivers.oplog import OpKind
        df.insert(3, "kind_name", pd.Categorical.from_codes(df["kind"].astype("int64"), [k.name for k in OpKind]))
        return df


def metrics_frame(run: RunReader | str | os.PathLike):
    """Every metric in long form: columns name, step, epoch, value."""
    pd = _need("pandas")
    with _opened(run) as reader:
        parts = []
        for name in reader.metric_names():
            m = reader.metric(name)
            parts.append(pd.DataFrame({"name": name, "step": m["step"], "epoch": m["epoch"], "value": m["value"]}))
        if not parts:
            return pd.DataFrame({"name": pd.Series(dtype="string"), "step": pd.Series(dtype="int64"),
                                 "epoch": pd.Series(dtype="int64"), "value": pd.Series(dtype="float64")})
        return pd.concat(parts, ignore_index=True)


def arrays_frame(run: RunReader | str | os.PathLike):
    pd = _need("pandas")
    with _opened(run) as reader:
        return pd.DataFrame(reader.arrays, columns=["id", "name", "rows", "cols", "technology", "instrument"])


def to_xarray(run: RunReader | str | os.PathLike):
    """The run as one ``xarray.Dataset`` (ops on dimension ``op``; metric ``m`` on ``m.row``)."""
    xr = _need("xarray")
    with _opened(run) as reader:
        cols = reader.ops_columns()
        data = {f"ops.{k}": ("op", v) for k, v in cols.items()}
        for name in reader.metric_names():
            m = reader.metric(name)
            for field in ("step", "epoch", "value"):
                data[f"metric.{name}.{field}"] = (f"metric.{name}.row", m[field])
        attrs = {k: (v if isinstance(v, (str, int, float)) else str(v)) for k, v in reader.attrs.items()}
        attrs["arrays"] = str(reader.arrays)
        return xr.Dataset(data, attrs=attrs)


def export_run(path: str | os.PathLike, fmt: str, out: str | os.PathLike | None = None,
               overwrite: bool = False) -> list[Path]:
    """Write the run file ``path`` as ``fmt`` (:data:`FORMATS`); returns the files written.

    ``out``: the ``.nc`` file (netcdf) or the stem of the files (parquet/csv); default beside the
    run file. Nothing is written to the run file itself.
    """
    if fmt not in FORMATS:
        raise ValueError(f"--to {fmt!r}: choose one of {', '.join(FORMATS)}")
    src = Path(path)
    stem = Path(out) if out is not None else src.with_suffix("")
    if fmt == "netcdf":
        targets = [stem if stem.suffix == ".nc" else stem.with_name(stem.name + ".nc")]
    else:
        ext = ".parquet" if fmt == "parquet" else ".csv"
        targets = [stem.with_name(f"{stem.name}.{part}{ext}") for part in ("ops", "metrics", "arrays")]
    for t in targets:
        check_not_reading(t, src)
        check_writable(t, overwrite)
    if fmt == "parquet":
        _need("pyarrow")
    if fmt == "netcdf":
        _need("h5netcdf")
    with open_run(src) as reader:
        if fmt == "netcdf":
            ds = to_xarray(reader)
            ds.to_netcdf(targets[0], engine="h5netcdf")
            return targets
        frames = [ops_frame(reader), metrics_frame(reader), arrays_frame(reader)]
    for frame, target in zip(frames, targets):
        if fmt == "parquet":
            frame.to_parquet(target, index=False)
        else:
            frame.to_csv(target, index=False, float_format="%.17g")  # round-trips every float
    return targets
