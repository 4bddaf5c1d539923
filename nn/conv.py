"""2-D convolution (strictly, cross-correlation, as in every deep-learning framework)."""

import numpy as np

from . import ops
from .checks import as_float_array, check_dout, pair
from .init import make_rng, uniform_fan_in
from .module import Module
from .parameter import Parameter


class Conv2d(Module):
    """``y[n, o, oy, ox] = b[o] + sum_{c, i, j} W[o, c, i, j] * x_pad[n, c, oy*sh + i, ox*sw + j]``.

    ``x_pad`` is ``x`` with ``padding`` zeros on each side of both spatial axes.

    Shape:
        x (N, C_in, H, W) -> y (N, C_out, out_h, out_w), with
        ``out_h = floor((H + 2*ph - kh) / sh) + 1`` and likewise ``out_w``;
        weight (C_out, C_in, kh, kw), bias (C_out,).

    Computed as one matrix product: ``col = im2col(x)`` has one row per output position
    (N * out_h * out_w rows) and one column per weight tap (C_in * kh * kw columns), so with
    ``W2 = W.reshape(C_out, C_in * kh * kw)``::

        Y = col @ W2^T + b          (N * out_h * out_w, C_out), then reshaped to NCHW

    Gradients, for upstream ``dout = dL/dy`` rearranged the same way into ``dY``
    (N * out_h * out_w, C_out)::

        dL/dW2  = dY^T @ col        (C_out, C_in * kh * kw), reshaped to the weight's shape
        dL/db   = sum of dY's rows  (C_out,)
        dL/dcol = dY @ W2           (N * out_h * out_w, C_in * kh * kw)
        dL/dx   = col2im(dL/dcol)   (N, C_in, H, W): each pixel sums the taps of every window covering it

    This is the readable reference, which the NumPy backend runs. The numba backend computes the
    same sums in compiled stages (``nn.execution``): directly, without ``col``, or as these products
    from a compiled ``col`` in a network that runs on BLAS.
    """

    per_sample = True  # each image's output depends on that image alone

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True,
                 dtype=np.float32, rng=None):
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"Conv2d: {name} must be a positive int, got {v!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = pair(kernel_size, "kernel_size", "Conv2d", minimum=1)
        self.stride = pair(stride, "stride", "Conv2d", minimum=1)
        self.padding = pair(padding, "padding", "Conv2d", minimum=0)
        if not np.issubdtype(np.dtype(dtype), np.floating):
            raise TypeError(f"Conv2d: dtype must be a floating-point type, got {np.dtype(dtype)}")
        kh, kw = self.kernel_size
        fan_in = self.in_channels * kh * kw
        rng = make_rng(rng)
        # Weight first, then bias, from the same generator: a given seed always gives the same layer.
        self.weight = Parameter(uniform_fan_in(rng, (self.out_channels, self.in_channels, kh, kw), fan_in, dtype))
        self.bias = Parameter(uniform_fan_in(rng, (self.out_channels,), fan_in, dtype)) if bias else None

    def output_size(self, shape):
        """Validate an NCHW input ``shape`` against this layer and return ``(out_h, out_w)``."""
        c, h, w = shape[1:]
        if c != self.in_channels:
            raise ValueError(f"Conv2d: expected input with {self.in_channels} channels (N, {self.in_channels}, H, W), "
                             f"got shape {shape}")
        (kh, kw), (ph, pw) = self.kernel_size, self.padding
        if h + 2 * ph < kh or w + 2 * pw < kw:
            raise ValueError(f"Conv2d: input of spatial size {(h, w)} with padding {self.padding} is smaller than "
                             f"the kernel {self.kernel_size}; expected H + 2*ph >= {kh} and W + 2*pw >= {kw}")
        return (ops.conv_out_size(h, kh, self.stride[0], ph), ops.conv_out_size(w, kw, self.stride[1], pw))

    def forward(self, x):
        x = as_float_array("Conv2d", x, self.weight.dtype, ndim=4)
        out_h, out_w = self.output_size(x.shape)
        col = ops.im2col(x, *self.kernel_size, *self.stride, *self.padding)
        weight_matrix = self.weight.data.reshape(self.out_channels, -1)
        out = col @ weight_matrix.T  # (N * out_h * out_w, C_out): one BLAS call does all the work
        if self.bias is not None:
            out += self.bias.data
        # Rows are ordered (n, oy, ox); NCHW wants the channel axis second.
        out = np.ascontiguousarray(out.reshape(x.shape[0], out_h, out_w, self.out_channels).transpose(0, 3, 1, 2))
        self.save_for_backward(col=col, x_shape=x.shape, out_shape=out.shape)
        return out

    def backward(self, dout, need_input_grad=True):
        """Accumulate dL/dW and dL/db; return dL/dx, or None if ``need_input_grad`` is False.

        The first layer of a network may pass ``need_input_grad=False``: nobody needs the gradient
        with respect to the images, and it is the costliest of the three (a col2im over the input).
        """
        saved = self.saved()
        col, x_shape = saved["col"], saved["x_shape"]
        dout = check_dout("Conv2d", dout, saved["out_shape"], self.weight.dtype)
        dout_matrix = dout.transpose(0, 2, 3, 1).reshape(-1, self.out_channels)  # rows (n, oy, ox), like col
        weight_matrix = self.weight.data.reshape(self.out_channels, -1)
        if self.weight.requires_grad:
            self.weight.grad += (dout_matrix.T @ col).reshape(self.weight.shape)
        if self.bias is not None and self.bias.requires_grad:
            self.bias.grad += dout_matrix.sum(axis=0)
        if not need_input_grad:
            return None
        dcol = dout_matrix @ weight_matrix
        return ops.col2im(dcol, x_shape, *self.kernel_size, *self.stride, *self.padding)

    def extra_repr(self):
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.bias is None:
            text += ", bias=False"
        return text
