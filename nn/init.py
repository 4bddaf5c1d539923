"""Weight initialization, PyTorch's defaults, drawn from a seeded ``numpy.random.Generator``."""

import numpy as np


def make_rng(rng):
    """Return a ``numpy.random.Generator`` from a Generator, an int seed or None (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng: expected a numpy.random.Generator, an int seed or None, got {type(rng).__name__}")


def uniform_fan_in(rng, shape, fan_in, dtype):
    """U(-1/sqrt(fan_in), +1/sqrt(fan_in)).

    This is what PyTorch's ``Conv2d`` and ``Linear`` draw by default: ``kaiming_uniform_`` with
    ``a=sqrt(5)`` gives the bound ``sqrt(6 / ((1 + 5) * fan_in)) = 1/sqrt(fan_in)`` for the weight,
    and the bias uses the same bound.
    """
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(dtype)
