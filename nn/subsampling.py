"""Trainable subsampling: average pooling, then one trainable coefficient and bias per channel."""

import numpy as np

from .avgpool import AvgPool2d
from .checks import as_float_array, check_dout
from .module import Module
from .parameter import Parameter


class Subsampling(Module):
    """``y[n, c] = weight[c] * avgpool(x)[n, c] + bias[c]``: the S2 and S4 layers of LeNet-5 (LeCun et al. 1998).

    The paper's unit sums its window and multiplies by a coefficient; the average times ``weight``
    is the same function with ``weight`` = window size × that coefficient. Not a PyTorch layer.

    Shape:
        x (N, C, H, W) -> y (N, C, out_h, out_w) as ``AvgPool2d(kernel_size, stride)``; weight (C,), bias (C,).
        ``weight`` starts at 1 and ``bias`` at 0 (plain average pooling) until a model sets its own init.

    Gradients, with ``p = avgpool(x)`` and upstream ``dout``::

        dL/dweight[c] = sum_{n, oy, ox} dout[n, c, oy, ox] * p[n, c, oy, ox]
        dL/dbias[c]   = sum_{n, oy, ox} dout[n, c, oy, ox]
        dL/dx         = avgpool's backward of (dout[n, c] * weight[c])
    """

    per_sample = True

    def __init__(self, num_channels, kernel_size=2, stride=None, dtype=np.float32):
        if not isinstance(num_channels, (int, np.integer)) or isinstance(num_channels, bool) or num_channels < 1:
            raise ValueError(f"Subsampling: num_channels must be a positive int, got {num_channels!r}")
        if not np.issubdtype(np.dtype(dtype), np.floating):
            raise TypeError(f"Subsampling: dtype must be a floating-point type, got {np.dtype(dtype)}")
        self.num_channels = int(num_channels)
        self.weight = Parameter(np.ones(self.num_channels, dtype=dtype))
        self.bias = Parameter(np.zeros(self.num_channels, dtype=dtype))
        self.pool = AvgPool2d(kernel_size, stride)

    def forward(self, x):
        x = as_float_array("Subsampling", x, self.weight.dtype, ndim=4)
        if x.shape[1] != self.num_channels:
            raise ValueError(f"Subsampling: expected input with {self.num_channels} channels "
                             f"(N, {self.num_channels}, H, W), got shape {x.shape}")
        pooled = self.pool(x)
        self.save_for_backward(pooled=pooled)
        return pooled * self.weight.data[:, None, None] + self.bias.data[:, None, None]

    def backward(self, dout, need_input_grad=True):
        pooled = self.saved()["pooled"]
        dout = check_dout("Subsampling", dout, pooled.shape, self.weight.dtype)
        if self.weight.requires_grad:
            self.weight.grad += np.einsum("nchw,nchw->c", dout, pooled)
        if self.bias.requires_grad:
            self.bias.grad += dout.sum(axis=(0, 2, 3))
        if not need_input_grad:
            return None
        return self.pool.backward(dout * self.weight.data[:, None, None])

    def extra_repr(self):
        return f"{self.num_channels}"
