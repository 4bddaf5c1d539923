"""Numbers sent as JSON arrays -> validated NumPy arrays, with errors that say what was wrong."""

import math

import numpy as np

from ..httpd.errors import HTTPError

_NUMBER_TYPES = {int, float}  # exact types: bool is a subclass of int but true/false are not pixels


def json_type(value):
    """How a decoded JSON value is named in error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 20 else value[:20] + "..."
        return f"the string {shown!r}"
    if isinstance(value, list):
        return f"an array of {len(value)}"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def number_array(data, shape, what, low, high, integers_only=False):
    """Return ``data`` as a float64 array of ``shape``, every value a number in [low, high].

    ``data`` is either flat (``prod(shape)`` numbers, row-major) or nested arrays matching
    ``shape`` exactly. ``what`` names the field in error messages.

    Raises:
        HTTPError(400): wrong structure or length, a value that is not a number (strings, null,
        true/false, objects), not an integer when ``integers_only``, not finite, or out of range.
    """
    size = math.prod(shape)
    if not isinstance(data, list):
        raise HTTPError(400, f"{what}: expected an array of {size} numbers (shape {list(shape)}), "
                             f"got {json_type(data)}")
    if list in set(map(type, data)):  # a set of the item types is built at C speed; any() over 784 items is not
        leaves = _nested_leaves(data, shape, what)
    elif len(data) == size:
        leaves = data
    else:
        raise HTTPError(400, f"{what}: expected {size} numbers (shape {list(shape)}, row-major), got {len(data)}")
    _check_number_types(leaves, what, integers_only)
    try:
        values = np.array(leaves, dtype=np.float64).reshape(shape)
    except OverflowError:
        raise HTTPError(400, f"{what}: a value is too large to be a number in [{low}, {high}]") from None
    if not np.all(np.isfinite(values)):
        raise HTTPError(400, f"{what}: expected finite numbers in [{low}, {high}], got infinity")
    smallest, largest = float(values.min()), float(values.max())
    if smallest < low or largest > high:
        raise HTTPError(400, f"{what}: expected values in [{low}, {high}], got values from {smallest:g} to {largest:g}")
    return values


def _nested_leaves(data, shape, what):
    """The leaves of nested arrays that must match ``shape`` level by level, in row-major order."""
    level = [data]
    for depth, length in enumerate(shape):
        next_level = []
        for item in level:
            if not isinstance(item, list) or len(item) != length:
                raise HTTPError(400, f"{what}: expected nested arrays of shape {list(shape)} (or {math.prod(shape)} "
                                     f"numbers flat), but at depth {depth} found {json_type(item)} "
                                     f"where an array of {length} belongs")
            next_level.extend(item)
        level = next_level
    return level


def _check_number_types(values, what, integers_only):
    allowed = {int} if integers_only else _NUMBER_TYPES
    if set(map(type, values)) <= allowed:  # the common case, checked at C speed
        return
    kind = "integers" if integers_only else "numbers"
    for index, value in enumerate(values):
        if type(value) not in allowed:
            raise HTTPError(400, f"{what}: expected {kind}, got {json_type(value)} at index {index} (row-major)")
