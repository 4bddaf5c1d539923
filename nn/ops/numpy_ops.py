"""The NumPy reference of the convolution and pooling loops: what the numba kernels must reproduce.

Layout conventions (shared with ``numba_ops``):

* Images are NCHW: ``x`` of shape (N, C, H, W).
* ``im2col`` returns ``col`` of shape (N * out_h * out_w, C * kh * kw): one row per output
  position, rows ordered (n, oy, ox); one column per kernel tap, ordered (c, i, j) exactly as
  ``weight.reshape(out_channels, C * kh * kw)`` orders them. A convolution is then one matrix
  product, ``col @ weight_matrix.T``, of shape (N * out_h * out_w, out_channels).
* Max pooling's ``argmax`` has the shape of its output (N, C, out_h, out_w) and holds, for each
  window, the row-major index ``i * kw + j`` of the chosen element inside that window.

The loops here run over the ``kh * kw`` kernel offsets only (a handful), never over the batch or
the pixels: each offset ``(i, j)`` is one strided slice of the image that every window shares.
"""

import numpy as np


def conv_out_size(size, kernel, stride, padding):
    """Number of window positions along one axis: ``floor((size + 2*padding - kernel) / stride) + 1``.

    A window of ``kernel`` pixels starts at 0, stride, 2*stride, ... and must end inside the padded
    input of ``size + 2*padding`` pixels; a remainder too short for one more window is dropped.
    """
    if size + 2 * padding < kernel:
        raise ValueError(f"conv_out_size: the padded input ({size} + 2*{padding} = {size + 2 * padding}) "
                         f"is smaller than the kernel ({kernel})")
    return (size + 2 * padding - kernel) // stride + 1


def im2col(x, kh, kw, sh, sw, ph, pw):
    """Unfold every (kh, kw) window of the zero-padded ``x`` into one row of a matrix.

    Shape: x (N, C, H, W) -> col (N * out_h * out_w, C * kh * kw), with
    ``col[(n * out_h + oy) * out_w + ox, (c * kh + i) * kw + j] = x_padded[n, c, oy*sh + i, ox*sw + j]``.
    """
    n, c, h, w = x.shape
    out_h = conv_out_size(h, kh, sh, ph)
    out_w = conv_out_size(w, kw, sw, pw)
    x_padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    # Allocated directly in the final (n, oy, ox, c, i, j) order so the reshape below is free.
    col = np.empty((n, out_h, out_w, c, kh, kw), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            # Offset (i, j) of every window at once: rows i, i+sh, ..., columns j, j+sw, ...
            taps = x_padded[:, :, i:i + sh * out_h:sh, j:j + sw * out_w:sw]  # (N, C, out_h, out_w)
            col[:, :, :, :, i, j] = taps.transpose(0, 2, 3, 1)
    return col.reshape(n * out_h * out_w, c * kh * kw)


def col2im_output_size(col, x_shape, kh, kw, sh, sw, ph, pw):
    """(out_h, out_w) of the convolution whose ``col`` this is, after checking ``col``'s shape fits ``x_shape``."""
    n, c, h, w = x_shape
    out_h = conv_out_size(h, kh, sh, ph)
    out_w = conv_out_size(w, kw, sw, pw)
    expected = (n * out_h * out_w, c * kh * kw)
    if col.shape != expected:
        raise ValueError(f"col2im: expected col of shape {expected} for x_shape {tuple(x_shape)}, got {col.shape}")
    return out_h, out_w


def col2im(col, x_shape, kh, kw, sh, sw, ph, pw):
    """The adjoint (transpose) of ``im2col``: add every row of ``col`` back onto its window.

    Shape: col (N * out_h * out_w, C * kh * kw) -> (N, C, H, W) with ``x_shape = (N, C, H, W)``.
    A pixel covered by several windows receives the sum of their entries, and entries that fell
    on the zero padding are discarded, so ``<im2col(x), col> == <x, col2im(col)>`` for all x, col.
    This is how the gradient of the loss flows from ``col`` back to the image.
    """
    n, c, h, w = x_shape
    out_h, out_w = col2im_output_size(col, x_shape, kh, kw, sh, sw, ph, pw)
    col = col.reshape(n, out_h, out_w, c, kh, kw)
    x_padded = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=col.dtype)
    for i in range(kh):
        for j in range(kw):
            # Within one offset the strided slice touches each pixel at most once, so += is safe;
            # overlapping windows meet across different offsets and add up there.
            x_padded[:, :, i:i + sh * out_h:sh, j:j + sw * out_w:sw] += col[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return x_padded[:, :, ph:ph + h, pw:pw + w].copy()


def maxpool2d_forward(x, kh, kw, sh, sw):
    """Max over every (kh, kw) window, and where it was found.

    Shape: x (N, C, H, W) -> out, argmax (N, C, out_h, out_w), ``out_h = floor((H - kh) / sh) + 1``.
    ``out[n, c, oy, ox] = max_{i, j} x[n, c, oy*sh + i, ox*sw + j]`` and ``argmax`` is the
    in-window index ``i * kw + j`` of the first maximum in row-major order (ties go to the first).
    """
    n, c, h, w = x.shape
    out_h = conv_out_size(h, kh, sh, 0)
    out_w = conv_out_size(w, kw, sw, 0)
    # windows[i * kw + j] is tap (i, j) of every window: (kh * kw, N, C, out_h, out_w).
    windows = np.empty((kh * kw, n, c, out_h, out_w), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            windows[i * kw + j] = x[:, :, i:i + sh * out_h:sh, j:j + sw * out_w:sw]
    argmax = np.argmax(windows, axis=0)  # np.argmax returns the first index on ties
    out = np.take_along_axis(windows, argmax[np.newaxis], axis=0)[0]
    return out, argmax


def maxpool2d_backward(dout, argmax, x_shape, kh, kw, sh, sw):
    """Route each window's gradient to the one element that won the max.

    Shape: dout, argmax (N, C, out_h, out_w) -> dx (N, C, H, W) with ``x_shape = (N, C, H, W)``.
    ``dx[n, c, y, x] = sum over windows (oy, ox) whose winner is (y, x) of dout[n, c, oy, ox]``;
    with overlapping windows (stride < kernel) one element may win several and gets their sum.
    """
    if dout.shape != argmax.shape:
        raise ValueError(f"maxpool2d_backward: expected dout of the argmax shape {argmax.shape}, got {dout.shape}")
    n, c, h, w = x_shape
    out_h, out_w = argmax.shape[2:]
    dx = np.zeros(x_shape, dtype=dout.dtype)
    for i in range(kh):
        for j in range(kw):
            won = argmax == i * kw + j  # windows whose maximum sits at tap (i, j)
            dx[:, :, i:i + sh * out_h:sh, j:j + sw * out_w:sw] += np.where(won, dout, 0)
    return dx
