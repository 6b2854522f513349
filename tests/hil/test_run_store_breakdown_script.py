"""benchmarks/run_store_breakdown.py: its switched-off variants really switch the store's work
off (and restore it), so the split it prints measures what it says."""

from __future__ import annotations

import h5py

from script_loader import load_benchmark
from hil import store as store_mod
from hil.store import RunStore, open_run


def test_variants_switch_off_encoding_and_writing_and_restore_them(tmp_path):
    b = load_benchmark("run_store_breakdown")
    encode, append = RunStore._encode, store_mod._ChunkAppender.append
    nothing = (store_mod._ChunkAppender, "append", lambda self, data: None)
    calls = []
    spy = (RunStore, "_encode", lambda self, queued: calls.append(len(queued)) or {})
    array, targets = b.fresh(1)
    with b.patched(nothing, spy):
        with RunStore.create(tmp_path / "off.h5", config={}, seed=1, backend="sim") as store:
            store.attach_array("array", array)
            b.program_verify(array, targets)
    assert calls and RunStore._encode is encode and store_mod._ChunkAppender.append is append
    with h5py.File(tmp_path / "off.h5", "r") as f:
        assert f["ops/result"].shape[0] == 0  # nothing written while switched off
    work, total = b.logged(1)  # restored: the full store
    assert 0 < work < total
    array, targets = b.fresh(1)
    with RunStore.create(tmp_path / "on.h5", config={}, seed=1, backend="sim") as store:
        store.attach_array("array", array)
        b.program_verify(array, targets)
    with open_run(tmp_path / "on.h5") as r:
        assert r.n_ops > 1_000_000
    assert b.plain(1) > 0 and b.beside_deflate(1) > 0


def test_no_deflate_variant_writes_the_same_records_uncompressed(tmp_path):
    b = load_benchmark("run_store_breakdown")
    level = store_mod._GZIP_LEVEL
    paths = {}
    for name, pairs in (("stored", [b.NO_DEFLATE]), ("deflated", [])):
        array, targets = b.fresh(1)
        paths[name] = tmp_path / f"{name}.h5"
        with b.patched(*pairs):
            with RunStore.create(paths[name], config={}, seed=1, backend="sim") as store:
                store.attach_array("array", array)
                b.program_verify(array, targets)
    assert store_mod._GZIP_LEVEL == level
    with h5py.File(paths["stored"], "r") as s, h5py.File(paths["deflated"], "r") as d:
        for name in ("cell", "result", "v_gate"):
            assert (s["ops"][name][()] == d["ops"][name][()]).all()  # plain h5py decodes both alike
        raw = s["ops/result"].size * 4
        assert s["ops/result"].id.get_storage_size() >= raw > d["ops/result"].id.get_storage_size()
