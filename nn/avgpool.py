"""2-D average pooling."""

import numpy as np

from .checks import as_float_array, check_dout, pair
from .module import Module


def _window_slices(kernel_index, stride, count):
    """The rows (or columns) of the padded input that kernel offset ``kernel_index`` reads, one per output."""
    return slice(kernel_index, kernel_index + stride * (count - 1) + 1, stride)


class AvgPool2d(Module):
    """``y[n, c, oy, ox] = (1 / d) * sum_{i < kh, j < kw} x_pad[n, c, oy*sh + i, ox*sw + j]``.

    ``x_pad`` is ``x`` with ``padding`` zeros on each side. The divisor ``d`` is ``kh * kw`` with
    ``count_include_pad=True`` (PyTorch's default: the padded zeros count as values), else the number
    of window elements that lie inside ``x``.

    Shape:
        x (N, C, H, W) -> y (N, C, out_h, out_w), ``out_h = floor((H + 2 ph - kh) / sh) + 1`` and likewise
        ``out_w`` (PyTorch's ``ceil_mode=False``). ``stride`` defaults to ``kernel_size``; padding
        may be at most half the kernel, as in PyTorch. Input dtypes as ``MaxPool2d``.

    Gradient: every element of a window receives the same share of that window's gradient::

        dL/dx_pad[n, c, oy*sh + i, ox*sw + j] += dout[n, c, oy, ox] / d(oy, ox)   for each i < kh, j < kw

    then the padding's part is cropped away. With overlapping windows (stride < kernel) an element
    receives a share from each window that covers it.
    """

    per_sample = True

    def __init__(self, kernel_size, stride=None, padding=0, count_include_pad=True):
        self.kernel_size = pair(kernel_size, "kernel_size", "AvgPool2d", minimum=1)
        self.stride = self.kernel_size if stride is None else pair(stride, "stride", "AvgPool2d", minimum=1)
        self.padding = pair(padding, "padding", "AvgPool2d", minimum=0)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(f"AvgPool2d: padding should be at most half of the kernel size, "
                             f"got padding {self.padding} for kernel_size {self.kernel_size}")
        self.count_include_pad = bool(count_include_pad)

    def _output_size(self, h, w):
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        if h + 2 * ph < kh or w + 2 * pw < kw:
            raise ValueError(f"AvgPool2d: input of spatial size {(h, w)} with padding {self.padding} is smaller "
                             f"than the kernel {self.kernel_size}")
        return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1

    def _divisor(self, h, w, out_h, out_w, dtype):
        """``d`` per output position, (out_h, out_w): the window's size, or its count of real input elements."""
        (kh, kw), (ph, pw) = self.kernel_size, self.padding
        if self.count_include_pad:
            return np.full((out_h, out_w), kh * kw, dtype=dtype)
        inside = np.pad(np.ones((h, w), dtype=dtype), ((ph, ph), (pw, pw)))
        return sum(inside[_window_slices(i, self.stride[0], out_h), _window_slices(j, self.stride[1], out_w)]
                   for i in range(kh) for j in range(kw))

    def forward(self, x):
        x = np.asarray(x)
        x = as_float_array("AvgPool2d", x, np.result_type(x.dtype, np.float32), ndim=4)
        h, w = x.shape[2:]
        out_h, out_w = self._output_size(h, w)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        x_pad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        # One strided slice per kernel offset (i, j): kh * kw array additions instead of a loop per window.
        total = np.zeros(x.shape[:2] + (out_h, out_w), dtype=x.dtype)
        for i in range(kh):
            for j in range(kw):
                total += x_pad[:, :, _window_slices(i, sh, out_h), _window_slices(j, sw, out_w)]
        divisor = self._divisor(h, w, out_h, out_w, x.dtype)
        self.save_for_backward(x_shape=x.shape, divisor=divisor, dtype=x.dtype)
        return total / divisor

    def backward(self, dout, need_input_grad=True):
        saved = self.saved()
        if not need_input_grad:
            return None
        n, c, h, w = saved["x_shape"]
        divisor = saved["divisor"]
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        dout = check_dout("AvgPool2d", dout, (n, c) + divisor.shape, saved["dtype"])
        share = dout / divisor
        dx_pad = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=saved["dtype"])
        for i in range(kh):
            for j in range(kw):
                dx_pad[:, :, _window_slices(i, sh, divisor.shape[0]), _window_slices(j, sw, divisor.shape[1])] += share
        return np.ascontiguousarray(dx_pad[:, :, ph:ph + h, pw:pw + w])

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"count_include_pad={self.count_include_pad}")
