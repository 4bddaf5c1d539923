"""im2col and its adjoint with taps as rows, for convolutions computed as one BLAS product (serial).

``Conv2d.gemm_forward`` (the numba backend in a network that runs on BLAS, ``nn.fusion.plan``)
computes ``Y = col @ W2^T``. Here ``col`` is built transposed, ``taps`` = ``col^T`` of shape
(C * kh * kw, N * out_h * out_w): for one tap (c, i, j), one image and one output row, the
taps' row receives ``out_w`` consecutive values, a contiguous write the compiler can vectorize,
and the bounds of the padding are worked out once per row instead of once per element (the
element-by-element ``numba_ops.im2col`` cost more than the product itself). BLAS takes the
transposed operand as it is, without a copy.

Serial on purpose: these run beside BLAS's threads (see ``nn.ops.linear_kernels`` on the two
thread pools). Compiled per dtype on first use and cached on disk.
"""

import numba
import numpy as np


@numba.njit(cache=True)
def _valid_columns(j, sw, pw, w, out_w):
    """Output columns ox whose tap column ``ox*sw + j - pw`` lies inside ``[0, w)``: ``range(lo, hi)``."""
    lo = max(0, (pw - j + sw - 1) // sw)
    hi = min(out_w, (w - 1 + pw - j) // sw + 1)
    return lo, max(lo, hi)


@numba.njit(cache=True)
def _im2col_taps_kernel(x, taps, kh, kw, sh, sw, ph, pw, out_h, out_w):
    n_images, channels, h, w = x.shape
    for c in range(channels):
        for i in range(kh):
            for j in range(kw):
                tap = (c * kh + i) * kw + j
                lo, hi = _valid_columns(j, sw, pw, w, out_w)
                for n in range(n_images):
                    for oy in range(out_h):
                        start = (n * out_h + oy) * out_w
                        y = oy * sh + i - ph
                        if y < 0 or y >= h:  # the whole row of this tap falls on the padding
                            for ox in range(out_w):
                                taps[tap, start + ox] = 0
                            continue
                        for ox in range(lo):
                            taps[tap, start + ox] = 0
                        for ox in range(lo, hi):
                            taps[tap, start + ox] = x[n, c, y, ox * sw + j - pw]
                        for ox in range(hi, out_w):
                            taps[tap, start + ox] = 0


@numba.njit(cache=True)
def _col2im_taps_kernel(taps, dx, kh, kw, sh, sw, ph, pw, out_h, out_w):
    n_images, channels, h, w = dx.shape
    for c in range(channels):
        for i in range(kh):
            for j in range(kw):
                tap = (c * kh + i) * kw + j
                lo, hi = _valid_columns(j, sw, pw, w, out_w)
                for n in range(n_images):
                    for oy in range(out_h):
                        y = oy * sh + i - ph
                        if y < 0 or y >= h:
                            continue  # this tap was padding: its gradient goes nowhere
                        start = (n * out_h + oy) * out_w
                        for ox in range(lo, hi):
                            dx[n, c, y, ox * sw + j - pw] += taps[tap, start + ox]


@numba.njit(cache=True)
def _rows_to_output_kernel(product, bias, relu, out):
    n_images, channels, out_h, out_w = out.shape
    positions = out_h * out_w
    planes = out.reshape(n_images, channels, positions)
    for n in range(n_images):
        for p in range(positions):
            row = n * positions + p
            for o in range(channels):
                value = product[row, o] + bias[o]
                if relu and not value > 0:
                    value = 0  # as ReLU: max(value, 0), and 0 for NaN
                planes[n, o, p] = value


def rows_to_output(product, bias, relu, out_shape):
    """product (N * out_h * out_w, C_out), rows (n, oy, ox) -> out (N, C_out, out_h, out_w) =
    ``product + bias``, through ReLU if ``relu``, in one pass (bias None: no bias)."""
    if bias is None:
        bias = np.zeros(product.shape[1], dtype=product.dtype)
    out = np.empty(out_shape, dtype=product.dtype)
    _rows_to_output_kernel(product, bias, relu, out)
    return out


@numba.njit(cache=True)
def _output_gradient_rows_kernel(dout, out, relu, rows, bias_grad):
    n_images, channels, out_h, out_w = dout.shape
    positions = out_h * out_w
    dout_planes = dout.reshape(n_images, channels, positions)
    out_planes = out.reshape(n_images, channels, positions)
    for n in range(n_images):
        for p in range(positions):
            row = n * positions + p
            for o in range(channels):
                value = dout_planes[n, o, p]
                if relu and not out_planes[n, o, p] > 0:
                    value = 0
                rows[row, o] = value
                bias_grad[o] += value


def output_gradient_rows(dout, out, relu):
    """dout (N, C_out, out_h, out_w) -> (dY, db): dY (N * out_h * out_w, C_out) = dout in the rows of
    ``rows_to_output``'s product (times ``[out > 0]`` if ``relu``), db (C_out,) its column sums, in
    one pass (numpy's transpose, mask and ``sum(axis=0)`` over a few columns took longer than the
    products)."""
    dout = np.ascontiguousarray(dout)
    rows = np.empty((dout.shape[0] * dout.shape[2] * dout.shape[3], dout.shape[1]), dtype=dout.dtype)
    bias_grad = np.zeros(dout.shape[1], dtype=dout.dtype)
    _output_gradient_rows_kernel(dout, out, relu, rows, bias_grad)
    return rows, bias_grad


def im2col_taps(x, kh, kw, sh, sw, ph, pw, out_h, out_w):
    """x (N, C, H, W) -> taps (C * kh * kw, N * out_h * out_w) = ``numpy_ops.im2col(x, ...)^T``."""
    x = np.ascontiguousarray(x)
    n, c = x.shape[:2]
    taps = np.empty((c * kh * kw, n * out_h * out_w), dtype=x.dtype)
    _im2col_taps_kernel(x, taps, kh, kw, sh, sw, ph, pw, out_h, out_w)
    return taps


def col2im_taps(taps, x_shape, kh, kw, sh, sw, ph, pw, out_h, out_w):
    """taps (C * kh * kw, N * out_h * out_w) -> dx (N, C, H, W), the adjoint of ``im2col_taps``."""
    dx = np.zeros(x_shape, dtype=taps.dtype)
    _col2im_taps_kernel(np.ascontiguousarray(taps), dx, kh, kw, sh, sw, ph, pw, out_h, out_w)
    return dx
