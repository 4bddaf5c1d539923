"""Which implementation of the hot loops runs: the NumPy reference or the numba kernels.

Select with ``nn.set_backend("numpy" | "numba")`` or the environment variable ``NN_BACKEND``
(read once, at import). numba is the default; without numba the NumPy backend is used, with a warning.
"""

import contextlib
import os
import warnings

ENV_VAR = "NN_BACKEND"
BACKENDS = ("numpy", "numba")

try:
    import numba  # noqa: F401  (only probing that it imports)
    NUMBA_AVAILABLE = True
except ImportError:  # pragma: no cover - exercised only on machines without numba
    NUMBA_AVAILABLE = False


def _validate(name):
    if name not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {name!r}")
    if name == "numba" and not NUMBA_AVAILABLE:
        warnings.warn("numba cannot be imported; using the NumPy backend", RuntimeWarning, stacklevel=3)
        return "numpy"
    return name


_current = _validate(os.environ.get(ENV_VAR, "numba").strip().lower() or "numba")


def set_backend(name):
    """Make ``name`` ("numpy" or "numba") the backend of every layer from now on."""
    global _current
    _current = _validate(name)


def get_backend():
    return _current


@contextlib.contextmanager
def use_backend(name):
    """Run a block under another backend, restoring the previous one afterwards."""
    previous = get_backend()
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)
