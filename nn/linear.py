"""Fully connected layer."""

import numpy as np

from .backend import NUMBA_AVAILABLE, get_backend
from .checks import as_float_array, check_dout
from .init import make_rng, uniform_fan_in
from .module import Module
from .parameter import Parameter, grad_target

if NUMBA_AVAILABLE:  # without numba the backend is always "numpy" and the compiled path is never taken
    from .ops import linear_kernels


class Linear(Module):
    """``y = x W^T + b``.

    Shape:
        x: (N, in_features) -> y: (N, out_features); weight (out_features, in_features), bias (out_features,).

    Gradients, for upstream ``dout = dL/dy`` of shape (N, out_features)::

        dL/dW = dout^T x        (out, in)
        dL/db = sum_n dout[n]   (out,)
        dL/dx = dout W          (N, in)
    """

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32, rng=None):
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"Linear: {name} must be a positive int, got {v!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        rng = make_rng(rng)
        self.weight = Parameter(uniform_fan_in(rng, (out_features, in_features), in_features, dtype))
        self.bias = Parameter(uniform_fan_in(rng, (out_features,), in_features, dtype)) if bias else None

    def forward(self, x):
        if get_backend() == "numba":
            out, kept = self.fused_forward(x, training=self.training)
            self.save_for_backward(fused=kept)
            return out
        x = as_float_array("Linear", x, self.weight.dtype, ndim=2)
        self._check_features(x)
        out = x @ self.weight.data.T
        if self.bias is not None:
            out += self.bias.data
        self.save_for_backward(x=x)
        return out

    def _check_features(self, x):
        if x.shape[1] != self.in_features:
            raise ValueError(f"Linear: expected input with {self.in_features} features (N, {self.in_features}), "
                             f"got shape {x.shape}")

    def backward(self, dout, need_input_grad=True):
        saved = self.saved()
        if "fused" in saved:
            return self.fused_backward(dout, saved["fused"], need_input_grad)
        x = saved["x"]
        dout = check_dout("Linear", dout, (x.shape[0], self.out_features), self.weight.dtype)
        if self.weight.requires_grad:
            self.weight.grad += dout.T @ x
        if self.bias is not None and self.bias.requires_grad:
            self.bias.grad += dout.sum(axis=0)
        return dout @ self.weight.data if need_input_grad else None

    # -- the numba backend: this layer alone, or fused with the ReLU after it ----------------------
    def fused_forward(self, x, relu=False, training=False, blas=True):
        """``relu(self(x))`` (ReLU only if ``relu``) in one compiled pass: returns ``(out, kept)``.

        ``kept`` is what ``fused_backward`` needs if ``training``, else None (nothing is stored).
        ``blas``: the product runs on BLAS, else on compiled loops (``nn.ops.linear_kernels``).
        """
        x = as_float_array("Linear", x, self.weight.dtype, ndim=2)
        self._check_features(x)
        out = linear_kernels.linear_forward(x, self.weight.data, None if self.bias is None else self.bias.data, relu,
                                            blas)
        return out, (dict(x=x, out=out, relu=relu, blas=blas) if training else None)

    def fused_backward(self, dout, kept, need_input_grad=True):
        """Backward of ``fused_forward`` from its ``kept``: accumulates the grads, returns dL/dx (or None)."""
        dout = check_dout("Linear", dout, kept["out"].shape, self.weight.dtype)
        return linear_kernels.linear_backward(dout, kept["x"], kept["out"], self.weight.data, grad_target(self.weight),
                                              grad_target(self.bias), kept["relu"],
                                              need_input_grad, kept["blas"])

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
