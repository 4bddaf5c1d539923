"""Fully connected layer."""

import numpy as np

from .checks import as_float_array, check_dout
from .init import make_rng, uniform_fan_in
from .module import Module
from .parameter import Parameter


class Linear(Module):
    """``y = x W^T + b``.

    Shape:
        x: (N, in_features) -> y: (N, out_features); weight (out_features, in_features), bias (out_features,).

    Gradients, for upstream ``dout = dL/dy`` of shape (N, out_features)::

        dL/dW = dout^T x        (out, in)
        dL/db = sum_n dout[n]   (out,)
        dL/dx = dout W          (N, in)

    This is the readable reference, which the NumPy backend runs; the numba backend computes the
    same products, with a following ReLU, in one compiled stage (``nn.execution``).
    """

    per_sample = True  # each row of the output depends on that row of the input alone

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32, rng=None):
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"Linear: {name} must be a positive int, got {v!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        rng = make_rng(rng)
        self.weight = Parameter(uniform_fan_in(rng, (out_features, in_features), in_features, dtype))
        self.bias = Parameter(uniform_fan_in(rng, (out_features,), in_features, dtype)) if bias else None

    def forward(self, x):
        x = as_float_array("Linear", x, self.weight.dtype, ndim=2)
        self.check_features(x.shape)
        out = x @ self.weight.data.T
        if self.bias is not None:
            out += self.bias.data
        self.save_for_backward(x=x)
        return out

    def check_features(self, shape):
        """Validate an input ``shape`` (N, in_features) against this layer."""
        if shape[1] != self.in_features:
            raise ValueError(f"Linear: expected input with {self.in_features} features (N, {self.in_features}), "
                             f"got shape {shape}")

    def backward(self, dout, need_input_grad=True):
        x = self.saved()["x"]
        dout = check_dout("Linear", dout, (x.shape[0], self.out_features), self.weight.dtype)
        if self.weight.requires_grad:
            self.weight.grad += dout.T @ x
        if self.bias is not None and self.bias.requires_grad:
            self.bias.grad += dout.sum(axis=0)
        return dout @ self.weight.data if need_input_grad else None

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
