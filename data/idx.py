"""The IDX file format, in which MNIST is distributed.

Layout (all integers big-endian)::

    offset 0   2 bytes  zero
    offset 2   1 byte   dtype code (see DTYPE_CODES)
    offset 3   1 byte   number of dimensions, ndim
    offset 4   4*ndim   the size of each dimension, uint32
    then               prod(sizes) values of the dtype, big-endian, in C (row-major) order

For example ``train-images-idx3-ubyte`` starts ``00 00 08 03 | 60000 | 28 | 28``: uint8, three
dimensions, 60000 images of 28x28 pixels. A file ending in ``.gz`` is gzip-compressed; the format
describes its uncompressed content.
"""

import math
import struct

import numpy as np

from .storage import CorruptFileError, read_bytes, write_bytes_atomic

# dtype code -> big-endian NumPy dtype, as defined by the format.
DTYPE_CODES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_OF_KIND = {(dtype.kind, dtype.itemsize): code for code, dtype in DTYPE_CODES.items()}
_SUPPORTED = "uint8, int8, int16, int32, float32, float64"
_PREFIX = struct.Struct(">HBB")  # zero, dtype code, ndim


def encode(array):
    """Return the IDX bytes of ``array`` (header then big-endian data).

    Raises:
        TypeError: ``array`` is not an ndarray of a dtype IDX can hold.
        ValueError: it has no dimension, more than 255, or one of 2**32 or more.
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(f"IDX: expected a numpy.ndarray, got {type(array).__name__}")
    code = _CODE_OF_KIND.get((array.dtype.kind, array.dtype.itemsize))
    if code is None:
        raise TypeError(f"IDX: expected an array of dtype {_SUPPORTED}, got {array.dtype}")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"IDX: expected an array with 1 to 255 dimensions, got shape {array.shape}")
    if max(array.shape) >= 2**32:
        raise ValueError(f"IDX: every dimension must be below 2**32, got shape {array.shape}")
    header = _PREFIX.pack(0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=DTYPE_CODES[code]).tobytes()


def decode(buffer, name="<bytes>"):
    """Parse IDX bytes into a native-endian, writable ndarray.

    ``name`` (usually the file's path) appears in every error message. The header is checked
    against the data: a file whose size disagrees with its stated dimensions is truncated or has
    trailing bytes, and is rejected either way.

    Raises:
        CorruptFileError (a ValueError): bad magic number, unknown dtype code, truncated header
            or data, or trailing bytes after the data.
    """
    size = len(buffer)
    if size < _PREFIX.size:
        raise CorruptFileError(f"{name}: too short for an IDX header ({size} bytes)")
    zero, code, ndim = _PREFIX.unpack_from(buffer, 0)
    if zero != 0:
        raise CorruptFileError(f"{name}: not an IDX file (magic number starts with 0x{zero:04x}, expected 0x0000)")
    if code not in DTYPE_CODES:
        known = ", ".join(f"0x{c:02x}" for c in DTYPE_CODES)
        raise CorruptFileError(f"{name}: unknown IDX dtype code 0x{code:02x} (expected one of {known})")
    if ndim == 0:
        raise CorruptFileError(f"{name}: IDX header declares 0 dimensions")
    header_size = _PREFIX.size + 4 * ndim
    if size < header_size:
        raise CorruptFileError(f"{name}: truncated IDX header ({size} bytes, the {ndim} dimensions need {header_size})")
    shape = struct.unpack_from(f">{ndim}I", buffer, _PREFIX.size)
    dtype = DTYPE_CODES[code]
    expected = math.prod(shape) * dtype.itemsize  # Python ints: no overflow from absurd headers
    found = size - header_size
    if found < expected:
        raise CorruptFileError(f"{name}: truncated IDX data: shape {shape} of {dtype.name} needs {expected} bytes, "
                               f"found {found}")
    if found > expected:
        raise CorruptFileError(f"{name}: {found - expected} unexpected trailing bytes after the IDX data "
                               f"(shape {shape} of {dtype.name} needs {expected} bytes)")
    data = np.frombuffer(buffer, dtype=dtype, count=expected // dtype.itemsize, offset=header_size)
    # astype copies, which also makes the result writable and independent of ``buffer``.
    return data.reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path):
    """Read the IDX file ``path`` (gzip-compressed when it ends in ``.gz``) into an ndarray."""
    return decode(read_bytes(path), name=str(path))


def write_idx(path, array):
    """Write ``array`` to ``path`` in IDX format, gzip-compressed when it ends in ``.gz``, atomically."""
    write_bytes_atomic(path, encode(array))
