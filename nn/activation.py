"""Rectified linear unit."""

import numpy as np

from .checks import as_float_array, check_dout
from .module import Module


class ReLU(Module):
    """``y = max(x, 0)``, elementwise, any shape.

    Gradient: ``dL/dx = dout * [x > 0]``. At exactly 0 the gradient is 0, as in PyTorch (the
    subgradient that agrees with the forward pass choosing 0 there).
    """

    per_sample = True

    def forward(self, x):
        x = as_float_array("ReLU", x, np.result_type(np.asarray(x).dtype, np.float32))
        mask = x > 0
        self.save_for_backward(mask=mask)
        return np.where(mask, x, 0).astype(x.dtype, copy=False)

    def backward(self, dout, need_input_grad=True):
        mask = self.saved()["mask"]
        if not need_input_grad:
            return None
        dout = np.asarray(dout)
        dout = check_dout("ReLU", dout, mask.shape, np.result_type(dout.dtype, np.float32))
        return dout * mask


class _Squashing(Module):
    """An elementwise function whose derivative is a function of its output: forward keeps ``y``, not ``x``.

    A subclass gives ``function(x)`` and ``derivative(y)``; ``dL/dx = dout * derivative(y)``.
    """

    per_sample = True

    def forward(self, x):
        x = as_float_array(type(self).__name__, x, np.result_type(np.asarray(x).dtype, np.float32))
        y = self.function(x)
        self.save_for_backward(y=y)
        return y

    def backward(self, dout, need_input_grad=True):
        y = self.saved()["y"]
        if not need_input_grad:
            return None
        return check_dout(type(self).__name__, dout, y.shape, y.dtype) * self.derivative(y)


class Sigmoid(_Squashing):
    """``y = σ(x) = 1 / (1 + exp(-x))``, elementwise, any shape; ``y`` in (0, 1).

    Gradient: ``dL/dx = dout * y * (1 - y)``, from ``σ'(x) = σ(x) (1 - σ(x))``.

    ``exp(-x)`` overflows for very negative ``x``; ``σ(x) = exp(x) / (1 + exp(x))`` there, so only
    ``exp`` of non-positive numbers is ever taken.
    """

    @staticmethod
    def function(x):
        e = np.exp(-np.abs(x))  # in (0, 1]: exp(-x) where x >= 0, exp(x) where x < 0
        return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)

    @staticmethod
    def derivative(y):
        return y * (1 - y)


class Tanh(_Squashing):
    """``y = tanh(x)``, elementwise, any shape; ``y`` in (-1, 1).

    Gradient: ``dL/dx = dout * (1 - y²)``, from ``tanh' = 1 - tanh²``.
    """

    @staticmethod
    def function(x):
        return np.tanh(x)

    @staticmethod
    def derivative(y):
        return 1 - y * y


class LeakyReLU(Module):
    """``y = x if x > 0 else negative_slope * x``, elementwise, any shape (PyTorch's default slope 0.01).

    Gradient: ``dL/dx = dout`` where ``x > 0``, ``negative_slope * dout`` elsewhere, 0 included
    (PyTorch's choice at the kink, as ReLU's).
    """

    per_sample = True

    def __init__(self, negative_slope=0.01):
        if isinstance(negative_slope, bool) or not isinstance(negative_slope, (int, float, np.integer, np.floating)):
            raise TypeError(f"LeakyReLU: negative_slope must be a number, got {negative_slope!r}")
        self.negative_slope = float(negative_slope)

    def forward(self, x):
        x = as_float_array("LeakyReLU", x, np.result_type(np.asarray(x).dtype, np.float32))
        positive = x > 0
        self.save_for_backward(positive=positive, dtype=x.dtype)
        return np.where(positive, x, x * x.dtype.type(self.negative_slope))

    def backward(self, dout, need_input_grad=True):
        saved = self.saved()
        if not need_input_grad:
            return None
        positive = saved["positive"]
        dout = check_dout("LeakyReLU", dout, positive.shape, saved["dtype"])
        return np.where(positive, dout, dout * dout.dtype.type(self.negative_slope))

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"
