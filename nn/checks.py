"""Input validation shared by the layers: every error names the layer, what it expected and what came."""

import numpy as np


def as_float_array(layer, x, dtype, ndim=None, name="input"):
    """Return ``x`` as an array of ``dtype``, checking it is numeric with ``ndim`` dimensions.

    Integer input (e.g. uint8 pixels) is accepted and converted; anything non-numeric is a TypeError.
    """
    if type(x) is np.ndarray and x.dtype == dtype and (ndim is None or x.ndim == ndim):
        return x  # the common case between layers, checked in a few hundred nanoseconds
    if isinstance(x, np.ndarray):
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{layer}: expected a numeric array as {name}, got {type(x).__name__}: {exc}") from None
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{layer}: expected a real numeric array as {name}, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{layer}: expected a {ndim}-D {name}, got {arr.ndim}-D with shape {arr.shape}")
    return arr.astype(dtype, copy=False)


def check_dout(layer, dout, expected_shape, dtype):
    """Validate the upstream gradient of ``backward``: its shape must equal the forward output's."""
    dout = as_float_array(layer, dout, dtype, name="dout")
    if dout.shape != tuple(expected_shape):
        raise ValueError(f"{layer}.backward: expected dout of shape {tuple(expected_shape)} "
                         f"(the shape of the forward output), got {dout.shape}")
    return dout


def pair(value, name, layer, minimum):
    """Turn an int or an (h, w) pair into a tuple of two ints ``>= minimum``."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
        value = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f"{layer}: {name} must be an int or a pair of ints, got {value!r}")
    if min(value) < minimum:
        raise ValueError(f"{layer}: {name} must be >= {minimum}, got {value}")
    return value
