"""2-D convolution (strictly, cross-correlation, as in every deep-learning framework)."""

import numpy as np

from . import ops
from .backend import NUMBA_AVAILABLE, get_backend
from .checks import as_float_array, check_dout, pair
from .init import make_rng, uniform_fan_in
from .module import Module
from .parameter import Parameter, grad_target

if NUMBA_AVAILABLE:  # without numba the backend is always "numpy" and the compiled path is never taken
    from .ops import conv_kernels, gemm_kernels


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

    That is the NumPy backend, the readable reference. The numba backend computes the same sums
    directly, without ``col`` (``fused_forward``, ``nn.ops.conv_kernels``), except in a network
    that runs on BLAS (``nn.fusion.runs_on_blas``), where it computes these products from a
    compiled ``col`` (``gemm_forward``, ``nn.ops.gemm_kernels``).
    """

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

    def _output_size(self, shape):
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
        if get_backend() == "numba":
            out, kept = self.fused_forward(x, training=self.training)
            self.save_for_backward(fused=kept)
            return out
        x = as_float_array("Conv2d", x, self.weight.dtype, ndim=4)
        out_h, out_w = self._output_size(x.shape)
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
        if "fused" in saved:
            return self.fused_backward(dout, saved["fused"], need_input_grad)
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

    # -- the numba backend: this layer alone, or fused with the ReLU and MaxPool2d after it ---------
    def fused_forward(self, x, relu=False, pool=None, training=False):
        """``pool(relu(self(x)))`` in one compiled pass (numba backend): returns ``(out, kept)``.

        ``relu``: apply a ReLU; ``pool``: a ``MaxPool2d`` to apply, or None. ``kept`` is what
        ``fused_backward`` needs if ``training``, else None (nothing is stored anywhere: eval-mode
        forward stays thread-safe). x (N, C_in, H, W) -> out (N, C_out, PH, PW).
        """
        x = as_float_array("Conv2d", x, self.weight.dtype, ndim=4)
        out_h, out_w = self._output_size(x.shape)
        pool_kernel, pool_stride = ((1, 1), (1, 1)) if pool is None else (pool.kernel_size, pool.stride)
        if pool is not None:
            pool._check_size(out_h, out_w)
        bias = None if self.bias is None else self.bias.data
        out, argmax = conv_kernels.conv_forward(x, self.weight.data, bias, self.stride, self.padding, relu,
                                                pool_kernel, pool_stride, keep_argmax=training)
        if not training:
            return out, None
        return out, dict(x=x, out=out, argmax=argmax, relu=relu, pool_kernel=pool_kernel, pool_stride=pool_stride)

    def fused_backward(self, dout, kept, need_input_grad=True):
        """Backward of ``fused_forward`` from its ``kept``: accumulates the grads, returns dL/dx (or None)."""
        dout = check_dout("Conv2d", dout, kept["out"].shape, self.weight.dtype)
        # Scratch arrays reused from one training step to the next (training only: never in eval).
        buffers = self.__dict__.setdefault("_scratch", {})
        return conv_kernels.conv_backward(
            dout, kept["x"], kept["out"], kept["argmax"], self.weight.data, grad_target(self.weight),
            grad_target(self.bias), self.stride, self.padding, kept["relu"],
            kept["pool_kernel"], kept["pool_stride"], need_input_grad=need_input_grad, buffers=buffers)

    # -- the numba backend in a network that runs on BLAS (``nn.fusion.plan``): im2col + one product -----
    def gemm_forward(self, x, relu=False, training=False, channels_last_in=False, channels_last_out=False):
        """``relu(self(x))`` as the NumPy backend computes it, from the serial compiled ``im2col_rows``: ``(out, kept)``.

        ``Y = relu(col @ W2^T + b)``: one BLAS product (N * out_h * out_w, C_out), then bias and
        ReLU in one compiled pass. ``col`` and ``W2`` have their columns in channels-last order
        (i, j, c), see ``nn.ops.gemm_kernels``. ``Y``'s rows are the output in channels-last order
        (N, out_h, out_w, C_out): with ``channels_last_out`` it is returned so, for a next
        convolution that takes it with ``channels_last_in`` (``nn.fusion.GemmConvStage``), else it
        moves to NCHW in the same pass. ``kept`` (training only) holds ``col`` and the output.
        """
        if channels_last_in:  # from the previous stage's gemm_forward: (N, H, W, C), already checked
            n, h, w, c = x.shape
            out_h, out_w = self._output_size((n, c, h, w))
        else:
            x = as_float_array("Conv2d", x, self.weight.dtype, ndim=4)
            out_h, out_w = self._output_size(x.shape)
        geometry = (*self.kernel_size, *self.stride, *self.padding, out_h, out_w)
        col = gemm_kernels.im2col_rows(x, *geometry, channels_last=channels_last_in)
        product = col @ self._weight_rows().T
        out = gemm_kernels.rows_to_output(product, None if self.bias is None else self.bias.data, relu,
                                          (x.shape[0], out_h, out_w), channels_last_out)
        if not training:
            return out, None
        return out, dict(col=col, out=out, x_shape=x.shape, geometry=geometry, relu=relu,
                         channels_last=(channels_last_in, channels_last_out))

    def _weight_rows(self):
        """The weight as (C_out, kh * kw * C_in), columns in ``im2col_rows``'s order (i, j, c)."""
        return self.weight.data.transpose(0, 2, 3, 1).reshape(self.out_channels, -1)

    def gemm_backward(self, dout, kept, need_input_grad=True):
        """Backward of ``gemm_forward``: ``dY = dout * [out > 0]`` (with ReLU), then the three products of
        the class docstring in ``col``'s column order, and ``col2im_rows``; ``dout`` and the returned
        dL/dx in the layouts of the forward's output and input. Accumulates the grads."""
        channels_last_in, channels_last_out = kept["channels_last"]
        dout = check_dout("Conv2d", dout, kept["out"].shape, self.weight.dtype)
        dout_matrix, bias_grad = gemm_kernels.output_gradient_rows(dout, kept["out"], kept["relu"], channels_last_out)
        out_channels, in_channels, kh, kw = self.weight.shape
        if self.weight.requires_grad:
            grad_rows = dout_matrix.T @ kept["col"]  # (C_out, kh * kw * C_in), in the order (i, j, c)
            self.weight.grad += grad_rows.reshape(out_channels, kh, kw, in_channels).transpose(0, 3, 1, 2)
        if self.bias is not None and self.bias.requires_grad:
            self.bias.grad += bias_grad
        if not need_input_grad:
            return None
        return gemm_kernels.col2im_rows(dout_matrix @ self._weight_rows(), kept["x_shape"], *kept["geometry"],
                                        channels_last=channels_last_in)

    def extra_repr(self):
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.bias is None:
            text += ", bias=False"
        return text
