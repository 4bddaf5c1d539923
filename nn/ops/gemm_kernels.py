"""im2col and its adjoint in channels-last order, for convolutions computed as one BLAS product (serial).

``nn.execution.stages.GemmConvStage`` (the numba backend in a network that runs on BLAS, see
``nn.execution.planner``) computes ``Y = col @ W2^T``, ``col`` of shape (N * out_h * out_w, kh * kw * C): a row per output
position (n, oy, ox), its columns in the order (i, j, c), tap row, tap column, channel; ``W2`` is
the weight in the same order, ``weight.transpose(0, 2, 3, 1)`` as (C_out, kh * kw * C).

Why that order: in a channels-last copy of the input (N, H, W, C), the kw taps of one kernel row
lie side by side for every channel, so for one output position and one kernel row, ``kw * C``
numbers are one contiguous run in the input and one in ``col`` (48 for a 3 x 3 kernel over 16
channels), a copy the compiler turns into SIMD. The input is first copied inside a border of
zeros, so no run ever tests for the padding. In NCHW order a run would be only ``out_w`` numbers
(7 for network E's second convolution), and that im2col measured 7 times slower than this one at
batch 64, 2.5 times the product it feeds.

Between two such convolutions the activation can stay channels-last (``rows_to_output`` and
``output_gradient_rows`` with ``channels_last``): the product's rows are that layout already, so
nothing moves to NCHW and back (``GemmConvStage.channels_last_in``/``_out``).

Serial on purpose: these run beside BLAS's threads (see ``nn.ops.linear_kernels`` on the two
thread pools). Compiled per dtype on first use and cached on disk.
"""

import numba
import numpy as np


@numba.njit(cache=True)
def _pad_rows_kernel(x_rows, padded, ph, pw, channels):
    """x_rows (N, H, W * C) -> padded (N, H + 2 ph, (W + 2 pw) * C): the image inside a border of zeros."""
    n_images, h, row_length = x_rows.shape
    for n in range(n_images):
        for y in range(padded.shape[1]):
            dst = padded[n, y]
            if y < ph or y >= h + ph:
                for t in range(dst.shape[0]):
                    dst[t] = 0
                continue
            src = x_rows[n, y - ph]
            for t in range(pw * channels):
                dst[t] = 0
            inside = dst[pw * channels:]
            for t in range(row_length):
                inside[t] = src[t]
            for t in range(pw * channels + row_length, dst.shape[0]):
                dst[t] = 0


@numba.njit(cache=True)
def _im2col_rows_kernel(padded, col, kh, kw, sh, sw, out_h, out_w, channels):
    """padded (N, Hp, Wp * C), channels-last rows with the padding in place -> col (module docstring)."""
    run = kw * channels  # one kernel row: all its taps and channels, contiguous in both
    for n in range(padded.shape[0]):
        for oy in range(out_h):
            for i in range(kh):
                src_row = padded[n, oy * sh + i]
                for ox in range(out_w):
                    dst = col[(n * out_h + oy) * out_w + ox, i * run:]
                    src = src_row[ox * sw * channels:]
                    for t in range(run):
                        dst[t] = src[t]


@numba.njit(cache=True)
def _col2im_rows_kernel(col, padded, kh, kw, sh, sw, out_h, out_w, channels):
    """The adjoint of ``_im2col_rows_kernel``: padded (N, Hp, Wp * C) += each run of col, where it came from."""
    run = kw * channels
    for n in range(padded.shape[0]):
        for oy in range(out_h):
            for i in range(kh):
                dst_row = padded[n, oy * sh + i]
                for ox in range(out_w):
                    src = col[(n * out_h + oy) * out_w + ox, i * run:]
                    dst = dst_row[ox * sw * channels:]
                    for t in range(run):
                        dst[t] += src[t]


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


@numba.njit(cache=True)
def _bias_relu_rows_kernel(product, bias, relu):
    for row in range(product.shape[0]):
        values = product[row]
        for o in range(values.shape[0]):
            value = values[o] + bias[o]
            if relu and not value > 0:
                value = 0
            values[o] = value


def rows_to_output(product, bias, relu, out_size, channels_last=False):
    """product (N * out_h * out_w, C_out), rows (n, oy, ox) -> ``product + bias``, through ReLU if
    ``relu``, in one pass (bias None: no bias); ``out_size`` is (N, out_h, out_w).

    The output is NCHW (N, C_out, out_h, out_w), or with ``channels_last`` the product itself,
    changed in place and seen as (N, out_h, out_w, C_out).
    """
    if bias is None:
        bias = np.zeros(product.shape[1], dtype=product.dtype)
    n, out_h, out_w = out_size
    if channels_last:
        _bias_relu_rows_kernel(product, bias, relu)
        return product.reshape(n, out_h, out_w, product.shape[1])
    out = np.empty((n, product.shape[1], out_h, out_w), dtype=product.dtype)
    _rows_to_output_kernel(product, bias, relu, out)
    return out


@numba.njit(cache=True)
def _output_gradient_rows_kernel(dout, out, relu, rows, bias_grad):
    n_images, channels, out_h, out_w = dout.shape
    positions = out_h * out_w
    dout_planes = dout.reshape(n_images, channels, positions)
    out_planes = out.reshape(n_images, channels, positions)
    for n in range(n_images):
        for o in range(channels):  # reading the planes in order: the strided writes land in the cache
            total = bias_grad[o] * 0  # a zero of the gradient's own dtype, as ``_masked_rows_kernel`` sums in
            for p in range(positions):
                value = dout_planes[n, o, p]
                if relu and not out_planes[n, o, p] > 0:
                    value = 0
                rows[n * positions + p, o] = value
                total += value
            bias_grad[o] += total


@numba.njit(cache=True)
def _masked_rows_kernel(dout_rows, out_rows, relu, rows, bias_grad):
    total = np.zeros_like(bias_grad)  # its own array: the compiler knows no row writes it
    for row in range(rows.shape[0]):
        for o in range(rows.shape[1]):
            # a select, not a branch around a store: the loop stays SIMD
            value = dout_rows[row, o] if not relu or out_rows[row, o] > 0 else 0
            rows[row, o] = value
            total[o] += value
    bias_grad += total


def output_gradient_rows(dout, out, relu, channels_last=False):
    """dout (N, C_out, out_h, out_w) -> (dY, db): dY (N * out_h * out_w, C_out) = dout in the rows of
    ``rows_to_output``'s product (times ``[out > 0]`` if ``relu``), db (C_out,) its column sums, in
    one pass (numpy's transpose, mask and ``sum(axis=0)`` over a few columns took longer than the
    products). With ``channels_last``, dout and out are (N, out_h, out_w, C_out): no transpose."""
    channels = dout.shape[3] if channels_last else dout.shape[1]
    bias_grad = np.zeros(channels, dtype=dout.dtype)
    if channels_last:
        rows = np.empty((dout.size // channels, channels), dtype=dout.dtype)
        _masked_rows_kernel(np.ascontiguousarray(dout).reshape(-1, channels), out.reshape(-1, channels), relu, rows,
                            bias_grad)
        return rows, bias_grad
    dout = np.ascontiguousarray(dout)
    rows = np.empty((dout.shape[0] * dout.shape[2] * dout.shape[3], channels), dtype=dout.dtype)
    _output_gradient_rows_kernel(dout, out, relu, rows, bias_grad)
    return rows, bias_grad


def im2col_rows(x, kh, kw, sh, sw, ph, pw, out_h, out_w, channels_last=False):
    """x (N, C, H, W) -> col (N * out_h * out_w, kh * kw * C), columns in the order (i, j, c).

    It is ``numpy_ops.im2col(x, ...)`` with each row's columns reordered from (c, i, j) to (i, j, c).
    With ``channels_last``, x is (N, H, W, C) (``rows_to_output``'s channels-last output).
    """
    if channels_last:
        n, h, w, c = x.shape
        x_rows = np.ascontiguousarray(x).reshape(n, h, w * c)
    else:
        n, c, h, w = x.shape
        x_rows = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).reshape(n, h, w * c)  # a view for one channel
    # A copy inside a border of zeros first: the runs of im2col then never test for the padding
    # (2.4x faster for 1 channel, where the runs are 3 numbers; 1.2x for 16).
    padded = np.empty((n, h + 2 * ph, (w + 2 * pw) * c), dtype=x.dtype)
    _pad_rows_kernel(x_rows, padded, ph, pw, c)
    col = np.empty((n * out_h * out_w, kh * kw * c), dtype=x.dtype)
    _im2col_rows_kernel(padded, col, kh, kw, sh, sw, out_h, out_w, c)
    return col


def col2im_rows(col, x_shape, kh, kw, sh, sw, ph, pw, out_h, out_w, channels_last=False):
    """col (N * out_h * out_w, kh * kw * C) in ``im2col_rows``'s order -> dx, its adjoint: (N, C, H, W),
    or with ``channels_last`` (N, H, W, C), ``x_shape`` being that of x in the same layout."""
    n, h, w, c = x_shape if channels_last else (x_shape[0], *x_shape[2:], x_shape[1])
    padded = np.zeros((n, h + 2 * ph, (w + 2 * pw) * c), dtype=col.dtype)
    _col2im_rows_kernel(np.ascontiguousarray(col), padded, kh, kw, sh, sw, out_h, out_w, c)
    dx = padded[:, ph:ph + h, pw * c:(pw + w) * c].reshape(n, h, w, c)  # the gradient on the padding goes nowhere
    return np.ascontiguousarray(dx if channels_last else dx.transpose(0, 3, 1, 2))
