"""Weight initialization with PyTorch's names and formulas, drawn from a seeded ``numpy.random.Generator``.

Each ``*_`` function fills an array (or a ``Parameter``'s ``data``) in place and returns it, as
``torch.nn.init`` does; ``generator`` is a ``numpy.random.Generator``, an int seed, or None (fresh
entropy). Samples are drawn in float64 and rounded to the array's dtype.

Fans, for a weight of shape ``(out, in, *kernel)``: ``fan_in = in * prod(kernel)``,
``fan_out = out * prod(kernel)``. Why these variances (He et al. 2015; Glorot & Bengio 2010):
a layer ``y = W x`` with independent zero-mean weights of variance ``s^2`` gives
``Var(y) = fan_in * s^2 * E[x^2]``, so ``s^2 = gain^2 / fan_in`` keeps the scale of the activations
from layer to layer (``gain^2 = 2`` for ReLU, which halves ``E[x^2]``); Xavier compromises between
the forward pass (``fan_in``) and the backward pass (``fan_out``) with ``s^2 = 2 gain^2 / (fan_in + fan_out)``.
A uniform ``U(-b, b)`` has variance ``b^2 / 3``, hence ``b = sqrt(3) * s``.
"""

import math

import numpy as np

from .parameter import Parameter

_LINEAR_GAIN = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                "conv_transpose3d", "sigmoid")


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


def calculate_gain(nonlinearity, param=None):
    """The gain ``g`` by which the weights' standard deviation is scaled for ``nonlinearity``.

    1 for linear layers and sigmoid, 5/3 for tanh, sqrt(2) for ReLU, ``sqrt(2 / (1 + a^2))`` for
    leaky ReLU of negative slope ``a = param`` (default 0.01), 3/4 for SELU (PyTorch's table).
    """
    if nonlinearity in _LINEAR_GAIN:
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        if isinstance(slope, bool) or not isinstance(slope, (int, float)):
            raise ValueError(f"calculate_gain: negative_slope {slope!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}; expected one of "
                     f"{list(_LINEAR_GAIN) + ['tanh', 'relu', 'leaky_relu', 'selu']}")


def _array(tensor, name):
    array = tensor.data if isinstance(tensor, Parameter) else tensor
    if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"{name}: expected a floating-point numpy array or an nn.Parameter, got {type(tensor).__name__}"
                        + (f" of dtype {array.dtype}" if isinstance(array, np.ndarray) else ""))
    return array


def _calculate_fan_in_and_fan_out(array, name="init"):
    if array.ndim < 2:
        raise ValueError(f"{name}: fan in and fan out need a weight of 2 or more dimensions, got shape {array.shape}")
    receptive_field = math.prod(array.shape[2:])
    return array.shape[1] * receptive_field, array.shape[0] * receptive_field


def _fan(array, mode, name):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"{name}: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(array, name)
    return fan_in if mode == "fan_in" else fan_out


def _fill(tensor, array, values):
    array[...] = values
    return tensor


def _kaiming_std(array, a, mode, nonlinearity, name):
    return calculate_gain(nonlinearity, a) / math.sqrt(_fan(array, mode, name))


def _xavier_std(array, gain, name):
    fan_in, fan_out = _calculate_fan_in_and_fan_out(array, name)
    return gain * math.sqrt(2.0 / float(fan_in + fan_out))


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He uniform: ``U(-b, b)``, ``b = sqrt(3) * gain / sqrt(fan)``, gain from ``calculate_gain(nonlinearity, a)``.

    ``a = sqrt(5)`` gives ``b = 1 / sqrt(fan_in)``, the default of ``Linear`` and ``Conv2d``.
    """
    array = _array(tensor, "kaiming_uniform_")
    bound = math.sqrt(3.0) * _kaiming_std(array, a, mode, nonlinearity, "kaiming_uniform_")
    return _fill(tensor, array, make_rng(generator).uniform(-bound, bound, size=array.shape))


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He normal: ``N(0, std^2)``, ``std = gain / sqrt(fan)``, gain from ``calculate_gain(nonlinearity, a)``."""
    array = _array(tensor, "kaiming_normal_")
    std = _kaiming_std(array, a, mode, nonlinearity, "kaiming_normal_")
    return _fill(tensor, array, make_rng(generator).normal(0.0, std, size=array.shape))


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """Glorot uniform: ``U(-b, b)``, ``b = sqrt(3) * gain * sqrt(2 / (fan_in + fan_out))``."""
    array = _array(tensor, "xavier_uniform_")
    bound = math.sqrt(3.0) * _xavier_std(array, gain, "xavier_uniform_")
    return _fill(tensor, array, make_rng(generator).uniform(-bound, bound, size=array.shape))


def xavier_normal_(tensor, gain=1.0, generator=None):
    """Glorot normal: ``N(0, std^2)``, ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    array = _array(tensor, "xavier_normal_")
    std = _xavier_std(array, gain, "xavier_normal_")
    return _fill(tensor, array, make_rng(generator).normal(0.0, std, size=array.shape))


def zeros_(tensor):
    """Fill with 0 (biases, and BatchNorm's shift)."""
    return _fill(tensor, _array(tensor, "zeros_"), 0)


def ones_(tensor):
    """Fill with 1 (BatchNorm's scale)."""
    return _fill(tensor, _array(tensor, "ones_"), 1)
