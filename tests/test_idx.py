"""The IDX format: exact round trips, and every kind of damaged file rejected with its name in the error."""

import gzip
import struct

import numpy as np
import pytest

from data import idx
from data.storage import CorruptFileError, atomic_output, read_bytes, sha256_of, write_bytes_atomic

DTYPES = ["uint8", "int8", "int16", "int32", "float32", "float64"]
SUFFIXES = ["", ".gz"]


def random_array(rng, dtype, shape):
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 28, 28), (2, 1, 3, 4)])
def test_write_then_read_gives_back_the_same_array(tmp_path, dtype, shape, suffix):
    array = random_array(np.random.default_rng(0), dtype, shape)
    path = tmp_path / f"array-idx{len(shape)}{suffix}"
    idx.write_idx(path, array)
    back = idx.read_idx(path)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)
    assert back.flags.writeable


@pytest.mark.parametrize("suffix, compressed", [("", False), (".gz", True)])
def test_the_gz_suffix_alone_decides_compression(tmp_path, suffix, compressed):
    path = tmp_path / f"labels{suffix}"
    idx.write_idx(path, np.arange(10, dtype=np.uint8))
    starts_like_gzip = path.read_bytes()[:2] == b"\x1f\x8b"
    assert starts_like_gzip == compressed


def test_encoding_follows_the_format_byte_for_byte():
    # Header 00 00 | 0B (int16) | 02 dims | 2 | 3, then big-endian data in C order.
    array = np.array([[1, 2, 3], [-1, 256, 0]], dtype="<i2")
    expected = bytes([0, 0, 0x0B, 2]) + struct.pack(">II", 2, 3) + struct.pack(">6h", 1, 2, 3, -1, 256, 0)
    assert idx.encode(array) == expected


def test_gzip_output_is_reproducible(tmp_path):
    array = random_array(np.random.default_rng(1), "uint8", (4, 28, 28))
    idx.write_idx(tmp_path / "a.gz", array)
    idx.write_idx(tmp_path / "b.gz", array)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


@pytest.mark.parametrize("array, error", [
    (np.zeros(3, dtype=np.uint16), TypeError),
    (np.zeros(3, dtype=np.int64), TypeError),
    (np.zeros(3, dtype=bool), TypeError),
    ([1, 2, 3], TypeError),
    (np.zeros((), dtype=np.uint8), ValueError),
])
def test_arrays_idx_cannot_hold_are_refused(array, error):
    with pytest.raises(error, match="IDX"):
        idx.encode(array)


def valid_bytes():
    return idx.encode(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))


@pytest.mark.parametrize("damage, message", [
    (lambda b: b"\x01" + b[1:], "magic number"),
    (lambda b: b[:2] + b"\x0A" + b[3:], "unknown IDX dtype code 0x0a"),
    (lambda b: b[:3] + b"\x00" + b[4:], "0 dimensions"),
    (lambda b: b[:2], "too short"),
    (lambda b: b[:10], "truncated IDX header"),
    (lambda b: b[:-1], "truncated IDX data"),
    (lambda b: b[:2] + b"\x0C" + b[3:], "truncated IDX data"),  # int32 needs 4x the bytes
    (lambda b: b + b"\x00\x00", "2 unexpected trailing bytes"),
])
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_damaged_files_are_rejected_naming_the_file(tmp_path, damage, message, suffix):
    path = tmp_path / f"damaged-idx3-ubyte{suffix}"
    write_bytes_atomic(path, damage(valid_bytes()))
    with pytest.raises(CorruptFileError, match=message) as caught:
        idx.read_idx(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("damage", [lambda b: b[: len(b) // 2], lambda b: b"not gzip at all" + b])
def test_a_broken_gzip_stream_is_rejected_naming_the_file(tmp_path, damage):
    path = tmp_path / "broken-idx3-ubyte.gz"
    path.write_bytes(damage(gzip.compress(valid_bytes())))
    with pytest.raises(CorruptFileError, match="not a valid gzip file") as caught:
        idx.read_idx(path)
    assert str(path) in str(caught.value)


def test_corrupt_file_error_is_a_value_error():
    assert issubclass(CorruptFileError, ValueError)


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    path = tmp_path / "kept-idx1-ubyte.gz"
    idx.write_idx(path, np.arange(5, dtype=np.uint8))
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="interrupted"):
        with atomic_output(path) as temp_path:
            temp_path.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_hashes_are_of_the_uncompressed_content(tmp_path):
    payload = valid_bytes()
    write_bytes_atomic(tmp_path / "x.gz", payload)
    write_bytes_atomic(tmp_path / "x", payload)
    assert sha256_of(tmp_path / "x.gz") == sha256_of(tmp_path / "x")
    assert read_bytes(tmp_path / "x.gz") == payload
