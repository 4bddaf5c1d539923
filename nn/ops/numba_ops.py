"""numba kernels for max pooling, computing exactly what ``numpy_ops`` computes (same names, arguments, layouts).

Where NumPy loops over the kernel offsets and lets whole-array slices do the rest, these kernels
loop over every element explicitly, which numba compiles to machine code. The outer loop is a
``prange`` over (image, channel) pairs: every iteration writes only its own slice of the output.

They run serially (``PARALLEL = False``, so a ``prange`` is an ordinary ``range``): they serve a
``MaxPool2d`` that no convolution fused (``nn.execution.stages.PoolStage``), in networks that run
their convolutions on BLAS, whose threads would fight numba's for the cores.

Kernels are compiled on first use for each dtype (float32 and float64 both work) and cached on
disk (``cache=True``). The public wrappers make the inputs C-contiguous, allocate the outputs
and check shapes, so the kernels themselves stay plain loops.
"""

import numba
import numpy as np

from .numpy_ops import conv_out_size

PARALLEL = False  # see the module docstring: BLAS has the threads


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
