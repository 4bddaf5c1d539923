"""2-D max pooling."""

import numpy as np

from . import ops
from .checks import as_float_array, check_dout, pair
from .module import Module


class MaxPool2d(Module):
    """``y[n, c, oy, ox] = max_{i < kh, j < kw} x[n, c, oy*sh + i, ox*sw + j]``, no padding.

    Shape:
        x (N, C, H, W) -> y (N, C, out_h, out_w), ``out_h = floor((H - kh) / sh) + 1`` and likewise
        ``out_w``; rows or columns too few for one more window are dropped (PyTorch's ``ceil_mode=False``).
        The output has the input's dtype if it is float32 or float64; other input is promoted as NumPy
        promotes it with float32 (uint8 pixels -> float32, int64 -> float64), as ``ReLU`` does.

    Gradient: the max passes on the gradient of the one element that won it::

        dL/dx[n, c, y, x] = sum of dout[n, c, oy, ox] over the windows (oy, ox) won by (y, x)

    On ties the first maximum in row-major window order wins, so each window sends its gradient to
    exactly one element. With overlapping windows (stride < kernel) one element may win several
    windows and receives the sum of their gradients.
    """

    per_sample = True

    def __init__(self, kernel_size, stride=None):
        self.kernel_size = pair(kernel_size, "kernel_size", "MaxPool2d", minimum=1)
        self.stride = self.kernel_size if stride is None else pair(stride, "stride", "MaxPool2d", minimum=1)

    def forward(self, x):
        x = np.asarray(x)
        x = as_float_array("MaxPool2d", x, np.result_type(x.dtype, np.float32), ndim=4)
        self.output_size(x.shape)
        out, argmax = ops.maxpool2d_forward(x, *self.kernel_size, *self.stride)
        self.save_for_backward(argmax=argmax, x_shape=x.shape, dtype=x.dtype)
        return out

    def output_size(self, shape):
        """Validate an NCHW input ``shape`` against this layer and return ``(out_h, out_w)``."""
        h, w = shape[2:]
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        if h < kh or w < kw:
            raise ValueError(f"MaxPool2d: input of spatial size {(h, w)} is smaller than the kernel "
                             f"{self.kernel_size}; expected H >= {kh} and W >= {kw}")
        return ops.conv_out_size(h, kh, sh, 0), ops.conv_out_size(w, kw, sw, 0)

    def backward(self, dout, need_input_grad=True):
        saved = self.saved()
        if not need_input_grad:
            return None
        argmax = saved["argmax"]
        # The gradient takes the dtype of the forward input, like the output did.
        dout = check_dout("MaxPool2d", dout, argmax.shape, saved["dtype"])
        return ops.maxpool2d_backward(dout, argmax, saved["x_shape"], *self.kernel_size, *self.stride)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}"
