"""numba kernels computing exactly what ``numpy_ops`` computes (same names, arguments, layouts).

Where NumPy loops over the kernel offsets and lets whole-array slices do the rest, these kernels
loop over every element explicitly, which numba compiles to machine code. Each kernel's outer
loop is a ``prange`` over the batch, or over (image, channel) pairs for pooling: every iteration
writes only its own slice of the output, so the iterations are independent and may run in parallel.

They run in parallel only if ``PARALLEL`` is True, and it is False on purpose. A convolution
alternates these kernels with NumPy's matrix products, and both thread pools (numba's OpenMP
threads and the BLAS threads) keep spinning for a while after their work is done, so each steals
the cores the other needs. On a 2-core machine, a LeNet-style conv/pool forward+backward on a
batch of 64 took 27 ms with parallel kernels against 12 ms with serial ones (NumPy backend: 30 ms).
Parallel kernels pay only once BLAS is single-threaded (``OPENBLAS_NUM_THREADS=1``: 8.6 ms) or
OpenMP waits passively (``OMP_WAIT_POLICY=passive``: 10.5 ms). With ``PARALLEL = False`` a
``prange`` is an ordinary ``range``.

These kernels serve ``MaxPool2d`` used on its own, and ``im2col``/``col2im`` for whoever calls
them; the numba backend's convolutions run ``conv_kernels`` instead, which need no ``col`` matrix.

Kernels are compiled on first use for each dtype (float32 and float64 both work) and cached on
disk (``cache=True``). The public wrappers make the inputs C-contiguous, allocate the outputs
and check shapes, so the kernels themselves stay plain loops.
"""

import numba
import numpy as np

from .numpy_ops import col2im_output_size, conv_out_size

PARALLEL = False  # see the module docstring: threads pay only when BLAS is not threaded too


@numba.njit(cache=True, parallel=PARALLEL)
def _im2col_kernel(x, col, kh, kw, sh, sw, ph, pw, out_h, out_w):
    n_images, channels, h, w = x.shape
    for n in numba.prange(n_images):
        for oy in range(out_h):
            for ox in range(out_w):
                row = (n * out_h + oy) * out_w + ox
                for c in range(channels):
                    for i in range(kh):
                        y = oy * sh + i - ph  # row in the unpadded image
                        for j in range(kw):
                            x_col = ox * sw + j - pw
                            inside = 0 <= y < h and 0 <= x_col < w
                            # Taps that fall on the padding read zero instead of a padded copy.
                            col[row, (c * kh + i) * kw + j] = x[n, c, y, x_col] if inside else 0


@numba.njit(cache=True, parallel=PARALLEL)
def _col2im_kernel(col, dx, kh, kw, sh, sw, ph, pw, out_h, out_w):
    n_images, channels, h, w = dx.shape
    for n in numba.prange(n_images):  # image n only receives its own rows: threads never collide
        for oy in range(out_h):
            for ox in range(out_w):
                row = (n * out_h + oy) * out_w + ox
                for c in range(channels):
                    for i in range(kh):
                        y = oy * sh + i - ph
                        if y < 0 or y >= h:
                            continue  # this tap was padding: its gradient goes nowhere
                        for j in range(kw):
                            x_col = ox * sw + j - pw
                            if 0 <= x_col < w:
                                dx[n, c, y, x_col] += col[row, (c * kh + i) * kw + j]


@numba.njit(cache=True, parallel=PARALLEL)
def _maxpool2d_forward_kernel(x, out, argmax, kh, kw, sh, sw):
    n_images, channels, out_h, out_w = out.shape
    for nc in numba.prange(n_images * channels):
        n, c = nc // channels, nc % channels
        for oy in range(out_h):
            for ox in range(out_w):
                best = x[n, c, oy * sh, ox * sw]
                best_index = 0
                for i in range(kh):
                    for j in range(kw):
                        value = x[n, c, oy * sh + i, ox * sw + j]
                        # Strictly greater keeps the first maximum on ties, as np.argmax does;
                        # the second test makes the first NaN win and stay, as np.argmax does too.
                        if value > best or (value != value and best == best):
                            best = value
                            best_index = i * kw + j
                out[n, c, oy, ox] = best
                argmax[n, c, oy, ox] = best_index


@numba.njit(cache=True, parallel=PARALLEL)
def _maxpool2d_backward_kernel(dout, argmax, dx, kw, sh, sw):
    n_images, channels, out_h, out_w = dout.shape
    for nc in numba.prange(n_images * channels):
        n, c = nc // channels, nc % channels
        for oy in range(out_h):
            for ox in range(out_w):
                i, j = argmax[n, c, oy, ox] // kw, argmax[n, c, oy, ox] % kw
                # += because overlapping windows (stride < kernel) may share their winner.
                dx[n, c, oy * sh + i, ox * sw + j] += dout[n, c, oy, ox]


def im2col(x, kh, kw, sh, sw, ph, pw):
    """x (N, C, H, W) -> col (N * out_h * out_w, C * kh * kw); see ``numpy_ops.im2col``."""
    x = np.ascontiguousarray(x)
    n, c, h, w = x.shape
    out_h = conv_out_size(h, kh, sh, ph)
    out_w = conv_out_size(w, kw, sw, pw)
    col = np.empty((n * out_h * out_w, c * kh * kw), dtype=x.dtype)
    _im2col_kernel(x, col, kh, kw, sh, sw, ph, pw, out_h, out_w)
    return col


def col2im(col, x_shape, kh, kw, sh, sw, ph, pw):
    """col (N * out_h * out_w, C * kh * kw) -> (N, C, H, W), the adjoint of im2col; see ``numpy_ops.col2im``."""
    n, c, h, w = x_shape
    out_h, out_w = col2im_output_size(col, x_shape, kh, kw, sh, sw, ph, pw)
    col = np.ascontiguousarray(col)
    dx = np.zeros((n, c, h, w), dtype=col.dtype)
    _col2im_kernel(col, dx, kh, kw, sh, sw, ph, pw, out_h, out_w)
    return dx


def maxpool2d_forward(x, kh, kw, sh, sw):
    """x (N, C, H, W) -> (out, argmax), both (N, C, out_h, out_w); see ``numpy_ops.maxpool2d_forward``."""
    x = np.ascontiguousarray(x)
    n, c, h, w = x.shape
    out_h = conv_out_size(h, kh, sh, 0)
    out_w = conv_out_size(w, kw, sw, 0)
    out = np.empty((n, c, out_h, out_w), dtype=x.dtype)
    argmax = np.empty((n, c, out_h, out_w), dtype=np.intp)  # the dtype np.argmax returns
    _maxpool2d_forward_kernel(x, out, argmax, kh, kw, sh, sw)
    return out, argmax


def maxpool2d_backward(dout, argmax, x_shape, kh, kw, sh, sw):
    """dout (N, C, out_h, out_w) -> dx (N, C, H, W); see ``numpy_ops.maxpool2d_backward``."""
    if dout.shape != argmax.shape:
        raise ValueError(f"maxpool2d_backward: expected dout of the argmax shape {argmax.shape}, got {dout.shape}")
    dx = np.zeros(x_shape, dtype=dout.dtype)
    _maxpool2d_backward_kernel(np.ascontiguousarray(dout), np.ascontiguousarray(argmax), dx, kw, sh, sw)
    return dx
