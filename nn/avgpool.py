"""2-D average pooling."""

import numbers

import numpy as np

from .checks import as_float_array, check_dout, pair
from .module import Module


def _window_slices(kernel_index, stride, count):
    """The rows (or columns) of the padded input that kernel offset ``kernel_index`` reads, one per output."""
    return slice(kernel_index, kernel_index + stride * (count - 1) + 1, stride)


def _pooled_size(size, kernel, stride, padding, ceil_mode):
    """Windows along one axis: ``floor`` (or ``ceil``) of ``(size + 2 padding - kernel) / stride``, plus 1.

    With ``ceil_mode`` a last, partial window is kept if it starts inside the input or its left
    padding (PyTorch's rule), so it may reach past the right padding.
    """
    span = size + 2 * padding - kernel
    count = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (count - 1) * stride >= size + padding:
        count -= 1
    return count


class AvgPool2d(Module):
    """``y[n, c, oy, ox] = (1 / d) * sum_{i < kh, j < kw} x_pad[n, c, oy*sh + i, ox*sw + j]``.

    ``x_pad`` is ``x`` with ``padding`` zeros on each side. The divisor ``d`` is, as in PyTorch:

    * ``count_include_pad=True`` (the default): the window's elements inside ``x_pad``, padded zeros
      included; ``kh * kw`` except for a ``ceil_mode`` window that reaches past the padding;
    * ``count_include_pad=False``: the window's elements inside ``x`` itself;
    * ``divisor_override``: that number, for every window.

    Shape:
        x (N, C, H, W) -> y (N, C, out_h, out_w), ``out_h = floor((H + 2 ph - kh) / sh) + 1`` and likewise
        ``out_w`` (``ceil`` with ``ceil_mode``; see ``_pooled_size``). ``stride`` defaults to
        ``kernel_size``; padding may be at most half the kernel, as in PyTorch. Input dtypes as ``MaxPool2d``.

    Gradient: every element of a window receives the same share of that window's gradient::

        dL/dx_pad[n, c, oy*sh + i, ox*sw + j] += dout[n, c, oy, ox] / d(oy, ox)   for each i < kh, j < kw

    then the padding's part is cropped away. With overlapping windows (stride < kernel) an element
    receives a share from each window that covers it.
    """

    per_sample = True

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        self.kernel_size = pair(kernel_size, "kernel_size", "AvgPool2d", minimum=1)
        self.stride = self.kernel_size if stride is None else pair(stride, "stride", "AvgPool2d", minimum=1)
        self.padding = pair(padding, "padding", "AvgPool2d", minimum=0)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(f"AvgPool2d: padding should be at most half of the kernel size, "
                             f"got padding {self.padding} for kernel_size {self.kernel_size}")
        if divisor_override is not None and (isinstance(divisor_override, bool) or not isinstance(
                divisor_override, numbers.Integral) or divisor_override == 0):
            raise ValueError(f"AvgPool2d: divisor_override must be a nonzero int or None, got {divisor_override!r}")
        self.ceil_mode, self.count_include_pad = bool(ceil_mode), bool(count_include_pad)
        self.divisor_override = divisor_override

    def _output_size(self, h, w):
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        if h + 2 * ph < kh or w + 2 * pw < kw:
            raise ValueError(f"AvgPool2d: input of spatial size {(h, w)} with padding {self.padding} is smaller "
                             f"than the kernel {self.kernel_size}")
        return _pooled_size(h, kh, sh, ph, self.ceil_mode), _pooled_size(w, kw, sw, pw, self.ceil_mode)

    def _padded_shape(self, h, w, out_h, out_w):
        """(rows, columns) of ``x_pad``: the padding on both sides, and room for a ``ceil_mode`` window past it."""
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return max(h + 2 * ph, (out_h - 1) * sh + kh), max(w + 2 * pw, (out_w - 1) * sw + kw)

    def _divisor(self, h, w, out_h, out_w, dtype):
        """``d`` per output position, (out_h, out_w), by the rules of the class docstring."""
        if self.divisor_override is not None:
            return np.full((out_h, out_w), self.divisor_override, dtype=dtype)
        (kh, kw), (ph, pw) = self.kernel_size, self.padding
        counted = np.zeros(self._padded_shape(h, w, out_h, out_w), dtype=dtype)
        if self.count_include_pad:
            counted[:h + 2 * ph, :w + 2 * pw] = 1
        else:
            counted[ph:ph + h, pw:pw + w] = 1
        return sum(counted[_window_slices(i, self.stride[0], out_h), _window_slices(j, self.stride[1], out_w)]
                   for i in range(kh) for j in range(kw))

    def forward(self, x):
        x = np.asarray(x)
        x = as_float_array("AvgPool2d", x, np.result_type(x.dtype, np.float32), ndim=4)
        h, w = x.shape[2:]
        out_h, out_w = self._output_size(h, w)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        x_pad = np.zeros(x.shape[:2] + self._padded_shape(h, w, out_h, out_w), dtype=x.dtype)
        x_pad[:, :, ph:ph + h, pw:pw + w] = x
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
        out_h, out_w = divisor.shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        dout = check_dout("AvgPool2d", dout, (n, c, out_h, out_w), saved["dtype"])
        share = dout / divisor
        dx_pad = np.zeros((n, c) + self._padded_shape(h, w, out_h, out_w), dtype=saved["dtype"])
        for i in range(kh):
            for j in range(kw):
                dx_pad[:, :, _window_slices(i, sh, out_h), _window_slices(j, sw, out_w)] += share
        return np.ascontiguousarray(dx_pad[:, :, ph:ph + h, pw:pw + w])

    def extra_repr(self):
        text = f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
        if self.ceil_mode:
            text += ", ceil_mode=True"
        if not self.count_include_pad:
            text += ", count_include_pad=False"
        if self.divisor_override is not None:
            text += f", divisor_override={self.divisor_override}"
        return text
