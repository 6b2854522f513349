"""hil export and the pandas / xarray API (skipped without the ``export`` extra)."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.oplog import OP_DTYPE
from drivers.sim_array import SimArray
from hil.cli import main
from hil.store import RunStore, open_run

pd = pytest.importorskip("pandas", reason="needs the export extra (pandas)")
xr = pytest.importorskip("xarray", reason="needs the export extra (xarray)")


@pytest.fixture
def run(tmp_path):
    path = tmp_path / "run.h5"
    a, b = SimArray((4, 5), "hfo2", seed=0), SimArray((3, 3), "siox", seed=1)
    with RunStore.create(path, config={}, seed=0, backend="sim") as store:
        store.attach_array("l0", a)
        store.attach_array("l1", b)
        a.form()
        b.form()
        a.set_pulse(None, v_gate=np.linspace(0.9, 1.2, 20).reshape(4, 5))
        a.read()
        store.metric("acc", 1, 1, 0.5)
        store.metric("acc", 2, 2, 0.75)
        store.metric("loss", 2, 2, 0.1)
    return path


def test_frames_and_dataset_hold_every_record(run):
    from hil.export import metrics_frame, ops_frame, to_xarray

    with open_run(run) as r:
        rec = r.ops
    df = ops_frame(run)
    assert len(df) == len(rec) == 20 + 9 + 20 + 20
    for name in OP_DTYPE.names:
        np.testing.assert_array_equal(df[name].to_numpy(), rec[name])
    assert list(df["array_name"].unique()) == ["l0", "l1"] and set(df["kind_name"]) == {"FORM", "SET", "READ"}
    assert len(ops_frame(run, array="l1")) == 9
    m = metrics_frame(run)
    assert m[m["name"] == "acc"]["value"].tolist() == [0.5, 0.75] and len(m) == 3
    ds = to_xarray(run)
    assert ds.sizes["op"] == len(rec) and ds["metric.acc.value"].values.tolist() == [0.5, 0.75]


@pytest.mark.parametrize("fmt", ["csv", "parquet", "netcdf"])
def test_hil_export_writes_files_that_read_back(run, tmp_path, fmt, capsys):
    if fmt == "parquet":
        pytest.importorskip("pyarrow", reason="parquet needs pyarrow (export extra)")
    if fmt == "netcdf":
        pytest.importorskip("h5netcdf", reason="netcdf needs h5netcdf (export extra)")
    before = run.read_bytes()
    out = tmp_path / "x"
    assert main(["export", str(run), "--to", fmt, "--out", str(out)]) == 0
    assert run.read_bytes() == before
    with open_run(run) as r:
        rec = r.ops
    if fmt == "csv":
        back = pd.read_csv(tmp_path / "x.ops.csv", float_precision="round_trip")
    elif fmt == "parquet":
        back = pd.read_parquet(tmp_path / "x.ops.parquet")
    else:
        back = xr.open_dataset(tmp_path / "x.nc", engine="h5netcdf")
        back = {k: back[f"ops.{k}"].values for k in OP_DTYPE.names}
    np.testing.assert_array_equal(np.asarray(back["time"]), rec["time"])
    np.testing.assert_array_equal(np.asarray(back["row"]), rec["row"])
    np.testing.assert_allclose(np.asarray(back["v_gate"], dtype=float), rec["v_gate"], rtol=1e-7)
    assert main(["export", str(run), "--to", fmt, "--out", str(out)]) == 2  # exists: refused
    assert "exists" in capsys.readouterr().err
