"""IDX loader with payload checksums, data-directory resolution, bundled subsets (hil.datasets)."""

import gzip

import numpy as np
import pytest

from hil.datasets import (
    ENV_VAR,
    ChecksumError,
    DatasetNotFoundError,
    load_dataset,
    load_idx,
    permuted,
)
from hil.datasets.idx import encode_idx, parse_idx, sha256_hex


def test_idx_roundtrip_and_gzip_payload_checksum(tmp_path):
    data = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    payload = encode_idx(data)
    assert payload[:4] == bytes([0, 0, 0x08, 3])
    path = tmp_path / "x-idx3-ubyte.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(payload)
    out = load_idx(path, sha256_hex(payload))  # checksum of the uncompressed payload
    np.testing.assert_array_equal(out, data)
    # the .gz container's own hash is not what is checked
    with pytest.raises(ChecksumError, match="uncompressed payload"):
        load_idx(path, sha256_hex(path.read_bytes()))


def test_idx_rejects_bad_payload():
    with pytest.raises(ValueError, match="magic"):
        parse_idx(b"\x01\x02\x08\x01")
    with pytest.raises(ValueError, match="does not match"):
        parse_idx(encode_idx(np.zeros(4, np.uint8))[:-1])


def test_missing_directory_says_where_to_put_files(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("mnist", source="auto")
    msg = str(err.value)
    assert str(tmp_path / "mnist") in msg and "train-images-idx3-ubyte" in msg and ENV_VAR in msg
    monkeypatch.delenv(ENV_VAR)
    with pytest.raises(DatasetNotFoundError, match="no data directory given"):
        load_dataset("mnist", source="full")


def test_full_loader_verifies_checksum(tmp_path):
    d = tmp_path / "mnist"
    d.mkdir()
    for stem in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"):
        (d / stem).write_bytes(encode_idx(np.zeros((2, 28, 28), np.uint8)))
    for stem in ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
        (d / stem).write_bytes(encode_idx(np.zeros(2, np.uint8)))
    with pytest.raises(ChecksumError):
        load_dataset("mnist", data_dir=tmp_path)
    ds = load_dataset("mnist", data_dir=tmp_path, verify=False)
    assert ds.x_train.shape == (2, 28, 28)


def test_unknown_names_rejected():
    with pytest.raises(ValueError, match="dataset='cifar'"):
        load_dataset("cifar")
    with pytest.raises(ValueError, match="source='web'"):
        load_dataset("mnist", source="web")


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_bundled_subsets_are_stratified_and_verified(name, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    ds = load_dataset(name)  # auto without a data dir -> bundled
    assert ds.source.startswith("bundled")
    assert ds.x_train.shape == (4000, 28, 28) and ds.x_test.shape == (1000, 28, 28)
    np.testing.assert_array_equal(np.bincount(ds.y_train), np.full(10, 400))
    np.testing.assert_array_equal(np.bincount(ds.y_test), np.full(10, 100))
    x, y = ds.flat("train")
    assert x.dtype == np.float32 and x.shape == (4000, 784) and 0 <= x.min() and x.max() <= 1


def test_permuted_mnist_is_a_fixed_pixel_permutation():
    ds = load_dataset("mnist", source="bundled")
    p0, p1, p1b = permuted(ds, 5, 0), permuted(ds, 5, 1), permuted(ds, 5, 1)
    np.testing.assert_array_equal(p0.x_train, ds.x_train)
    np.testing.assert_array_equal(p1.x_train, p1b.x_train)
    assert not np.array_equal(p1.x_train, ds.x_train)
    flat, pflat = ds.x_train.reshape(4000, -1), p1.x_train.reshape(4000, -1)
    np.testing.assert_array_equal(np.sort(flat, axis=1), np.sort(pflat, axis=1))
