"""Direct convolution kernels ("wide rows"), fused with bias, ReLU and max pooling, forward and backward.

``conv_forward`` computes ``MaxPool2d(ReLU(Conv2d(x)))`` in one pass over memory, or any prefix of
it: without ``relu``, and with 1 x 1 pooling windows (no pooling), it is ``Conv2d`` alone. Any
stride, padding, kernel and channel counts; ``conv_backward`` is the backward of the same stage.
Only the stage's output (and the pooling winners, in training) leave the kernel: no ``col``
matrix, no full-size convolution output, no ReLU mask.

How the convolution is laid out ("wide rows")
---------------------------------------------
A padded image channel of Hp x Wp pixels is read as one flat row of Hp * Wp numbers. For a kernel
tap (i, j) and a stride-1 output pixel (y, x), the input pixel is ``flat[(y + i) * Wp + (x + j)]``,
which is ``flat[i * Wp + j + p]`` with ``p = y * Wp + x``. So if the output is also kept with
rows Wp wide, every tap becomes one long, contiguous loop over p::

    conv[o, p] += w[o, c, i, j] * flat[c, i * Wp + j + p]      for p in 0 .. L-1

Long contiguous loops are what the compiler turns into SIMD instructions; the price is the
``kw - 1`` throw-away columns at the end of each row. The forward goes one step further and lays
a chunk of images end to end (``CHUNK_POSITIONS``), each channel one wide row over the chunk, so
a kernel row is one loop over the whole chunk: small maps (8 x 8 after a stride-2 convolution)
get loops as long as big ones instead of paying a loop start-up for every few dozen numbers.
Chunks also compute each image's last kh - 1 rows, which no output reads: where those are more
than ``IMAGE_BY_IMAGE_JUNK`` of an image (LeNet's 12 x 12 maps and 5 x 5 kernels: 36%), images are
swept one by one instead, in place. The taps of one kernel row are summed in one expression
(``_add_kernel_rows``, spelled out for 2, 3 and 5 taps), so the accumulator is loaded and stored
once per kernel row, not per tap. Pooling (and ReLU) then read the windows from that scratch
(``pool_kernels``).

A stride (sh, sw) > 1 is turned into stride 1 first: the convolution of the input's sh x sw
*phases* with the phases of the kernel (``_phases``), so no column is computed to be thrown away.

Backward through ReLU and max pooling
-------------------------------------
Max pooling sends each window's gradient to the one conv output that won the window, and ReLU
lets it through only if that output was positive, which is exactly when the pooled output is
(see ``pool_kernels``). So the gradient of the conv output, ``dconv``, is zero except at the
winners, known from ``argmax`` and the pooled output alone. For each winner at position p of
channel o, with window gradient g::

    dW[o, :, :, :] += g * (the input window at p)       db[o] += g
    dx[:, window at p] += g * W[o]                       (the full convolution of dconv)

Two ways to do those sums, chosen by how long one row of a window is (C * kw numbers):

* Long rows (C * kw >= ``WINNER_MIN_ROW``, e.g. LeNet's C3: 6 x 5): visit the winners only. In a
  channels-last copy of x, one kernel row of a window, all taps and channels, is one contiguous
  run, so each winner costs kh short SIMD loops, and the zeros of dconv cost nothing (``_winner_*``).
* Short rows (C1: 1 x 5): runs of 5 are too short for SIMD and the per-winner overhead would
  dominate. Instead dconv is built in full, in wide rows of the padded input, laid out
  channel-major over the whole batch (``dconv[o, lead + n * Hp*Wp + p]``), and the sums become
  long dense loops: ``dW[o, c, i, j] = sum_t dconv[o, t] * x[c, i * Wp + j + t]`` is one
  correlation over the whole batch per kernel row, and dx one full convolution per image (``_conv_*``).

Parallelism and reproducibility
-------------------------------
Kernels with a batch-parallel outer loop (``prange``) write only their own images' rows. The
weight gradients are sums over the batch; they are computed in parallel over output channels or
kernel rows, each sum running over the images in order on one thread, never split over images,
so the result does not depend on the number of threads or their timing: training is reproducible
bit for bit. Every kernel comes as a serial and a parallel driver of the same per-item function;
``parallel.drive`` picks one (a single image runs on the calling thread).

``fastmath`` "contract" lets a * b + c become one fused multiply-add; "reassoc" (only where a sum
over p is reduced) lets the compiler split that sum into SIMD lanes. Both are fixed at compile
time, so results stay deterministic. The inner loops are inlined into their callers
(inline="always"): as separate calls, each row paid a call and the compiler lost the facts it
needed to vectorize, about 2x slower.
"""

import numba
import numpy as np

from .parallel import drive
from .pool_kernels import pool_channel, scatter_channel

# Window rows of at least this many numbers (C * kw) go through the winners (see the module docstring).
# Measured at batch 64: 24 (8 channels x 3 taps) was 3.8x faster dense, 30 (6 x 5) 3.6x faster by
# the winners, and 80 to 96 1.3x to 3.4x faster by the winners.
WINNER_MIN_ROW = 30

# Positions (images x Hp x Wp) that the forward kernel sweeps per chunk of images: enough that
# each loop's start-up is amortized. Measured from 1 image to 65,536 positions on LeNet's C1 and
# C3 and networks C, D and E's convolutions: 4,096 was the fastest or within 5% of it for each.
CHUNK_POSITIONS = 4096
# ... in a number of chunks that is a multiple of this, when the batch allows, so the threads get
# even shares (a count that does not depend on the thread count keeps the results independent of it).
MIN_CHUNKS = 8
# Chunks compute the last rows of each image (the positions past ``tail``, which no output reads)
# as part of their long loops: when those junk positions are more than this share of an image,
# images are swept one by one instead. Measured at batch 64, one thread, chunks vs image by image:
# junk 0.4% (3x3 stride 2, as phases) 1.1-1.4x faster in chunks, 4.5% (8 -> 16, 3x3 on 24 x 24)
# 1.12x; 13% (32 -> 64, 3x3 on 14 x 14 padded; LeNet-5 padded) 0.93-0.95x, 15-36% (LeNet's C1, C3)
# 0.97-0.98x, 21% (16 -> 16, 5x5 on 20 x 20) 0.98x.
IMAGE_BY_IMAGE_JUNK = 0.10



@numba.njit(cache=True, inline="always", fastmath={"contract"})
def _add_kernel_rows(acc, xc, w_o, width, n):
    """``acc[p] += sum_{c, i, j} w_o[c, i, j] * xc[c, i * width + j + p]`` for p < n: one output channel, all positions.

    Each kernel row is one loop over p with its taps summed in one expression (spelled out for
    kernels 5, 3 and 2 wide), so acc is loaded and stored once per kernel row, not per tap. The
    test on the width stands outside the loops over channels and rows: inside them, it made the
    compiled 5-tap loop 2x slower on short rows.
    """
    channels, kh, kw = w_o.shape
    # Indexing a slice with p + j (never negative) rather than xc[c] with i * width + j + p lets the
    # compiler drop the negative-index wraparound check, which would otherwise block SIMD.
    if kw == 5:  # LeNet's kernels
        for c in range(channels):
            for i in range(kh):
                s = xc[c, i * width:]
                w0, w1, w2, w3, w4 = w_o[c, i, 0], w_o[c, i, 1], w_o[c, i, 2], w_o[c, i, 3], w_o[c, i, 4]
                for p in range(n):
                    acc[p] += w0 * s[p] + w1 * s[p + 1] + w2 * s[p + 2] + w3 * s[p + 3] + w4 * s[p + 4]
    elif kw == 3 and kh == 3:  # 3x3 kernels, the other common size: all nine taps in one expression
        for c in range(channels):
            s0, s1, s2 = xc[c], xc[c, width:], xc[c, 2 * width:]
            w0, w1, w2 = w_o[c, 0, 0], w_o[c, 0, 1], w_o[c, 0, 2]
            w3, w4, w5 = w_o[c, 1, 0], w_o[c, 1, 1], w_o[c, 1, 2]
            w6, w7, w8 = w_o[c, 2, 0], w_o[c, 2, 1], w_o[c, 2, 2]
            for p in range(n):
                acc[p] += (w0 * s0[p] + w1 * s0[p + 1] + w2 * s0[p + 2] + w3 * s1[p] + w4 * s1[p + 1]
                           + w5 * s1[p + 2] + w6 * s2[p] + w7 * s2[p + 1] + w8 * s2[p + 2])
    elif kw == 2 and kh == 2:  # the sub-kernels of 3x3 stride-2 convolutions (see ``_phases``), likewise
        for c in range(channels):
            s0, s1 = xc[c], xc[c, width:]
            w0, w1, w2, w3 = w_o[c, 0, 0], w_o[c, 0, 1], w_o[c, 1, 0], w_o[c, 1, 1]
            for p in range(n):
                acc[p] += w0 * s0[p] + w1 * s0[p + 1] + w2 * s1[p] + w3 * s1[p + 1]
    elif kw == 3:
        for c in range(channels):
            for i in range(kh):
                s = xc[c, i * width:]
                w0, w1, w2 = w_o[c, i, 0], w_o[c, i, 1], w_o[c, i, 2]
                for p in range(n):
                    acc[p] += w0 * s[p] + w1 * s[p + 1] + w2 * s[p + 2]
    elif kw == 2:  # the sub-kernels of 3x3 stride-2 convolutions (see ``_phases``)
        for c in range(channels):
            for i in range(kh):
                s = xc[c, i * width:]
                w0, w1 = w_o[c, i, 0], w_o[c, i, 1]
                for p in range(n):
                    acc[p] += w0 * s[p] + w1 * s[p + 1]
    else:
        for c in range(channels):
            for i in range(kh):
                s = xc[c, i * width:]
                for j in range(kw):
                    wj = w_o[c, i, j]
                    for p in range(n):
                        acc[p] += wj * s[p + j]


@numba.njit(cache=True, inline="always", fastmath={"contract"})
def _add_flipped_kernel_row(acc, src, offset, w_row, n):
    """``acc[q] += sum_j w_row[j] * src[offset - j + q]`` for q < n: the transpose of one kernel row of ``_add_kernel_rows``."""
    last = w_row.shape[0] - 1
    s = src[offset - last:]  # s[q + last - j] is src[offset - j + q]
    if last == 4:
        w0, w1, w2, w3, w4 = w_row[0], w_row[1], w_row[2], w_row[3], w_row[4]
        for q in range(n):
            acc[q] += w0 * s[q + 4] + w1 * s[q + 3] + w2 * s[q + 2] + w3 * s[q + 1] + w4 * s[q]
    elif last == 2:
        w0, w1, w2 = w_row[0], w_row[1], w_row[2]
        for q in range(n):
            acc[q] += w0 * s[q + 2] + w1 * s[q + 1] + w2 * s[q]
    else:
        for j in range(last + 1):
            wj = w_row[j]
            for q in range(n):
                acc[q] += wj * s[q + last - j]


@numba.njit(cache=True, inline="always", fastmath={"contract", "reassoc"})
def _correlate_kernel_row(dw_row, d, src, offset, n):
    """``dw_row[j] += sum_p d[p] * src[offset + j + p]`` for every tap j: one kernel row's weight gradient."""
    s = src[offset:]
    if dw_row.shape[0] == 5:
        a0 = a1 = a2 = a3 = a4 = dw_row.dtype.type(0)
        for p in range(n):
            g = d[p]
            a0 += g * s[p]
            a1 += g * s[p + 1]
            a2 += g * s[p + 2]
            a3 += g * s[p + 3]
            a4 += g * s[p + 4]
        dw_row[0] += a0
        dw_row[1] += a1
        dw_row[2] += a2
        dw_row[3] += a3
        dw_row[4] += a4
    elif dw_row.shape[0] == 3:
        a0 = a1 = a2 = dw_row.dtype.type(0)
        for p in range(n):
            g = d[p]
            a0 += g * s[p]
            a1 += g * s[p + 1]
            a2 += g * s[p + 2]
        dw_row[0] += a0
        dw_row[1] += a1
        dw_row[2] += a2
    else:
        for j in range(dw_row.shape[0]):
            a = dw_row.dtype.type(0)
            for p in range(n):
                a += d[p] * s[p + j]
            dw_row[j] += a


# ---------------------------------------------------------------------------------------------
# Forward
# ---------------------------------------------------------------------------------------------

@numba.njit(cache=True, fastmath={"contract"})
def _conv_chunk(x, w, b, out, argmax, xc, conv, first, count, width, tail, pool, relu, keep_argmax):
    """Images first .. first+count-1 at once. x (N, C, Hp*Wp) padded images; out, argmax (N, O, PH, PW);
    scratch: xc (C, >= count*Hp*Wp) and conv (O, >= count*Hp*Wp).

    The chunk's images are copied channel-major into xc, one wide row per channel (see the module
    docstring), so every kernel row is one loop over ``length = (count - 1)*Hp*Wp + tail``
    positions, ``tail = (oh - 1)*Wp + ow``: small images (8 x 8 after a stride-2 convolution) get
    loops as long as big ones, instead of paying a loop's start-up for every few dozen numbers.
    ``pool`` = (pkh, pkw, psh, psw).
    """
    channels, size = x.shape[1], x.shape[2]
    out_channels, _, kh, _ = w.shape
    pkh, pkw, psh, psw = pool
    length = (count - 1) * size + tail
    if count == 1:
        xc = x[first]  # one image is already one wide row per channel (the xc passed in goes unused)
    else:
        for c in range(channels):
            for k in range(count):
                xc[c, k * size:(k + 1) * size] = x[first + k, c]
    for o in range(out_channels):
        acc = conv[o]
        acc[:length] = b[o]
        _add_kernel_rows(acc, xc, w[o], width, length)
        for k in range(count):
            pool_channel(acc[k * size:], width, out[first + k, o], argmax[first + k, o], pkh, pkw, psh, psw, relu,
                         keep_argmax)


@numba.njit(cache=True)
def _images_serial(x, w, b, out, argmax, width, tail, chunks, pool, relu, keep_argmax):
    """Image by image: only each image's ``tail`` positions, read in place (``_conv_chunk`` of one image)."""
    conv = np.empty((w.shape[0], tail), dtype=x.dtype)  # one scratch for every image
    for n in range(x.shape[0]):
        _conv_chunk(x, w, b, out, argmax, conv, conv, n, 1, width, tail, pool, relu, keep_argmax)


@numba.njit(cache=True, parallel=True)
def _images_parallel(x, w, b, out, argmax, width, tail, chunks, pool, relu, keep_argmax):
    n_images = x.shape[0]
    # Consecutive images per chunk, one scratch per chunk rather than per image.
    for chunk in numba.prange(chunks):
        conv = np.empty((w.shape[0], tail), dtype=x.dtype)
        for n in range(chunk * n_images // chunks, (chunk + 1) * n_images // chunks):
            _conv_chunk(x, w, b, out, argmax, conv, conv, n, 1, width, tail, pool, relu, keep_argmax)


@numba.njit(cache=True)
def _forward_serial(x, w, b, out, argmax, width, tail, per_chunk, pool, relu, keep_argmax):
    n_images, channels, size = x.shape
    xc = np.empty((channels, per_chunk * size), dtype=x.dtype)  # one scratch for every chunk
    conv = np.empty((w.shape[0], per_chunk * size), dtype=x.dtype)
    for first in range(0, n_images, per_chunk):
        _conv_chunk(x, w, b, out, argmax, xc, conv, first, min(per_chunk, n_images - first), width, tail, pool,
                    relu, keep_argmax)


@numba.njit(cache=True, parallel=True)
def _forward_parallel(x, w, b, out, argmax, width, tail, per_chunk, pool, relu, keep_argmax):
    n_images, channels, size = x.shape
    for chunk in numba.prange((n_images + per_chunk - 1) // per_chunk):
        first = chunk * per_chunk
        count = min(per_chunk, n_images - first)
        xc = np.empty((channels, count * size), dtype=x.dtype)
        conv = np.empty((w.shape[0], count * size), dtype=x.dtype)
        _conv_chunk(x, w, b, out, argmax, xc, conv, first, count, width, tail, pool, relu, keep_argmax)


# ---------------------------------------------------------------------------------------------
# Backward, dense (short window rows): dconv over the whole batch, correlations and full convolutions
# ---------------------------------------------------------------------------------------------

@numba.njit(cache=True)
def _scatter_image(start, size, dout, out, argmax, dconv, width, tap_offset, psh, psw, relu, pooled):
    """One image: ``dconv[:, start:start + size]`` <- each window's gradient at its winner (``scatter_channel``)."""
    for o in range(dout.shape[0]):
        segment = dconv[o, start:start + size]
        segment[:] = 0
        scatter_channel(segment, dout[o], out[o], argmax[o], width, tap_offset, psh, psw, relu, pooled)


@numba.njit(cache=True)
def _scatter_serial(dout, out, argmax, dconv, lead, width, tap_offset, psh, psw, relu, pooled):
    size = (dconv.shape[1] - lead) // dout.shape[0]
    dconv[:, :lead] = 0
    for n in range(dout.shape[0]):
        _scatter_image(lead + n * size, size, dout[n], out[n], argmax[n], dconv, width, tap_offset,
                       psh, psw, relu, pooled)


@numba.njit(cache=True, parallel=True)
def _scatter_parallel(dout, out, argmax, dconv, lead, width, tap_offset, psh, psw, relu, pooled):
    size = (dconv.shape[1] - lead) // dout.shape[0]
    dconv[:, :lead] = 0
    for n in numba.prange(dout.shape[0]):
        _scatter_image(lead + n * size, size, dout[n], out[n], argmax[n], dconv, width, tap_offset,
                       psh, psw, relu, pooled)


@numba.njit(cache=True, fastmath={"contract", "reassoc"})
def _param_grad_row(oci, x, dconv, dw, db, width, lead, length):
    """Kernel row i of output channel o and input channel c (oci = (o * C + c) * kh + i), over the whole batch.

    x (C, N*Hp*Wp) and dconv (O, lead + N*Hp*Wp) hold all images one after the other, so the sum
    over images and positions is one long correlation (see the module docstring); ``db[o]`` is
    added once per o. Each (o, c, i) is written by one call only: calls may run in parallel.
    """
    kh = dw.shape[2]
    o, c, i = oci // (x.shape[0] * kh), (oci // kh) % x.shape[0], oci % kh
    d = dconv[o, lead:lead + length]
    _correlate_kernel_row(dw[o, c, i], d, x[c], i * width, length)
    if c == 0 and i == 0:
        total = db.dtype.type(0)
        for p in range(length):
            total += d[p]
        db[o] += total


@numba.njit(cache=True)
def _param_grad_serial(x, dconv, dw, db, width, lead, length):
    for oci in range(dw.shape[0] * dw.shape[1] * dw.shape[2]):
        _param_grad_row(oci, x, dconv, dw, db, width, lead, length)


@numba.njit(cache=True, parallel=True)
def _param_grad_parallel(x, dconv, dw, db, width, lead, length):
    for oci in numba.prange(dw.shape[0] * dw.shape[1] * dw.shape[2]):
        _param_grad_row(oci, x, dconv, dw, db, width, lead, length)


@numba.njit(cache=True, fastmath={"contract"})
def _input_grad_image(start, dconv, w, dx, width):
    """One image, whose dconv segment starts at ``start``: dx (C, Hp*Wp) <- the full convolution with the kernels.

    Reading up to ``lead`` entries before the segment is safe: they are the previous image's
    never-written wide-row columns, or the leading zeros before the first image, all zero.
    """
    out_channels, channels, kh, _ = w.shape
    size = dx.shape[1]
    dx[:] = 0
    for c in range(channels):
        for o in range(out_channels):
            for i in range(kh):
                _add_flipped_kernel_row(dx[c], dconv[o], start - i * width, w[o, c, i], size)


@numba.njit(cache=True)
def _input_grad_serial(dconv, w, dx, width, lead):
    for n in range(dx.shape[0]):
        _input_grad_image(lead + n * dx.shape[2], dconv, w, dx[n], width)


@numba.njit(cache=True, parallel=True)
def _input_grad_parallel(dconv, w, dx, width, lead):
    for n in numba.prange(dx.shape[0]):
        _input_grad_image(lead + n * dx.shape[2], dconv, w, dx[n], width)


# ---------------------------------------------------------------------------------------------
# Backward visiting the winners only (long window rows)
# ---------------------------------------------------------------------------------------------

@numba.njit(cache=True)
def _to_channels_last_image(x, xh, ph, pw):
    """One image: x (C, H, W) -> xh (Hp, Wp, Cp), placed at (ph, pw); padding and channels Cp >= C are zeros."""
    channels, h, w = x.shape
    xh[:] = 0
    for y in range(h):
        for col in range(w):
            for c in range(channels):
                xh[y + ph, col + pw, c] = x[c, y, col]


@numba.njit(cache=True)
def _to_channels_last_serial(x, xh, ph, pw):
    for n in range(x.shape[0]):
        _to_channels_last_image(x[n], xh[n], ph, pw)


@numba.njit(cache=True, parallel=True)
def _to_channels_last_parallel(x, xh, ph, pw):
    for n in numba.prange(x.shape[0]):
        _to_channels_last_image(x[n], xh[n], ph, pw)


@numba.njit(cache=True, fastmath={"contract"})
def _winner_param_grad_channel(o, dout, out, argmax, xh, acc, db, cp, tap_row, tap_col, psh, psw, relu, pooled):
    """Output channel o, images in order: acc (kh, kw*cp) <- sum over winners of g * window; db[o] += sum of g.

    xh (N, Hp, Wp*cp) is channels last, so one kernel row of a window (all its taps and channels)
    is one contiguous run of kw*cp numbers, and acc holds the kernel in the same (i, j, c) order.
    """
    kh, run = acc.shape
    acc[:] = 0
    total = db.dtype.type(0)
    for n in range(dout.shape[0]):
        for py in range(dout.shape[2]):
            for px in range(dout.shape[3]):
                if relu and not out[n, o, py, px] > 0:  # the ReLU mask at the winner
                    continue
                g = dout[n, o, py, px]
                total += g
                y, start = py * psh, px * psw * cp
                if pooled:  # 1 x 1 windows keep no argmax: the winner is the window
                    a = argmax[n, o, py, px]
                    y, start = y + tap_row[a], start + tap_col[a] * cp
                for i in range(kh):
                    src = xh[n, y + i, start:start + run]
                    dst = acc[i]
                    for k in range(run):
                        dst[k] += g * src[k]
    db[o] += total


@numba.njit(cache=True)
def _winner_param_grad_serial(dout, out, argmax, xh, acc, db, cp, tap_row, tap_col, psh, psw, relu, pooled):
    for o in range(dout.shape[1]):
        _winner_param_grad_channel(o, dout, out, argmax, xh, acc[o], db, cp, tap_row, tap_col, psh, psw, relu, pooled)


@numba.njit(cache=True, parallel=True)
def _winner_param_grad_parallel(dout, out, argmax, xh, acc, db, cp, tap_row, tap_col, psh, psw, relu, pooled):
    for o in numba.prange(dout.shape[1]):
        _winner_param_grad_channel(o, dout, out, argmax, xh, acc[o], db, cp, tap_row, tap_col, psh, psw, relu, pooled)


@numba.njit(cache=True, fastmath={"contract"})
def _winner_input_grad_image(dout, out, argmax, wh, dxh, cp, tap_row, tap_col, psh, psw, relu, pooled):
    """One image: dxh (Hp, Wp*cp) channels last <- for every winner, g * its kernel (wh (O, kh, kw*cp)) there."""
    kh, run = wh.shape[1], wh.shape[2]
    dxh[:] = 0
    for o in range(dout.shape[0]):
        for py in range(dout.shape[1]):
            for px in range(dout.shape[2]):
                if relu and not out[o, py, px] > 0:
                    continue
                g = dout[o, py, px]
                y, start = py * psh, px * psw * cp
                if pooled:
                    a = argmax[o, py, px]
                    y, start = y + tap_row[a], start + tap_col[a] * cp
                for i in range(kh):
                    dst = dxh[y + i, start:start + run]
                    w_row = wh[o, i]
                    for k in range(run):
                        dst[k] += g * w_row[k]


@numba.njit(cache=True)
def _winner_input_grad_serial(dout, out, argmax, wh, dxh, cp, tap_row, tap_col, psh, psw, relu, pooled):
    for n in range(dout.shape[0]):
        _winner_input_grad_image(dout[n], out[n], argmax[n], wh, dxh[n], cp, tap_row, tap_col, psh, psw, relu, pooled)


@numba.njit(cache=True, parallel=True)
def _winner_input_grad_parallel(dout, out, argmax, wh, dxh, cp, tap_row, tap_col, psh, psw, relu, pooled):
    for n in numba.prange(dout.shape[0]):
        _winner_input_grad_image(dout[n], out[n], argmax[n], wh, dxh[n], cp, tap_row, tap_col, psh, psw, relu, pooled)


# ---------------------------------------------------------------------------------------------
# Python entry points: check and lay out the arrays, allocate outputs, pick a driver.
# ---------------------------------------------------------------------------------------------

def buffer(buffers, name, shape, dtype):
    """An uninitialized array, reused from ``buffers`` (a dict the caller owns) when shape and dtype match."""
    if buffers is None:
        return np.empty(shape, dtype=dtype)
    array = buffers.get(name)
    if array is None or array.shape != shape or array.dtype != dtype:
        array = buffers[name] = np.empty(shape, dtype=dtype)
    return array


def stage_shape(x_shape, weight_shape, stride, padding, pool_kernel=(1, 1), pool_stride=(1, 1)):
    """(padded (Hp, Wp), conv output (oh, ow), pooled output (PH, PW)) of a stage, or ValueError if it does not fit."""
    _, channels, h, w = x_shape
    _, in_channels, kh, kw = weight_shape
    (sh, sw), (ph, pw), (pkh, pkw), (psh, psw) = stride, padding, pool_kernel, pool_stride
    hp, wp = h + 2 * ph, w + 2 * pw
    # The kernels do no bounds checking: a mismatch must stop here, not read past the arrays.
    if channels != in_channels or hp < kh or wp < kw:
        raise ValueError(f"conv_forward: x {tuple(x_shape)} with padding {tuple(padding)} does not fit "
                         f"weight {tuple(weight_shape)}")
    oh, ow = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    if oh < pkh or ow < pkw:
        raise ValueError(f"conv_forward: the convolution's output {(oh, ow)} is smaller than the pool kernel "
                         f"{tuple(pool_kernel)}")
    return (hp, wp), (oh, ow), ((oh - pkh) // psh + 1, (ow - pkw) // psw + 1)


def _pad(x, padding):
    """x (N, C, H, W) with ``padding`` zeros around each image (x itself, contiguous, without padding)."""
    ph, pw = padding
    if ph == 0 and pw == 0:
        return np.ascontiguousarray(x)
    n, c, h, w = x.shape
    padded = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=x.dtype)
    padded[:, :, ph:ph + h, pw:pw + w] = x
    return padded


def _no_bias(weight):
    return np.zeros(weight.shape[0], dtype=weight.dtype)


def _phases(xp, stride):
    """Padded images (N, C, Hp, Wp) -> (N, C*sh*sw, Hq, Wq): channel (c, a, b) is ``xp[:, c, a::sh, b::sw]``,
    with zeros past the image (``Hq = ceil(Hp / sh)``, ``Wq = ceil(Wp / sw)``).

    A stride-(sh, sw) convolution of ``xp`` is the stride-1 convolution of these phases with the
    phases of the weight (O, C, kh, kw) -> (O, C*sh*sw, ceil(kh/sh), ceil(kw/sw)), the same
    rearrangement: ``w[c, i, j] * xp[oy*sh + i, ox*sw + j]`` with ``i = i'*sh + a`` and
    ``j = j'*sw + b`` reads phase (c, a, b) at (oy + i', ox + j'). So the direct kernels never
    compute a column they throw away; the price is the zero taps of the sub-kernels (16 for 9 at
    3x3, stride 2).
    """
    sh, sw = stride
    n, c, hp, wp = xp.shape
    hq, wq = -(-hp // sh), -(-wp // sw)
    grid = np.zeros((n, c, hq * sh, wq * sw), dtype=xp.dtype)
    grid[:, :, :hp, :wp] = xp
    return np.ascontiguousarray(grid.reshape(n, c, hq, sh, wq, sw).transpose(0, 1, 3, 5, 2, 4)).reshape(
        n, c * sh * sw, hq, wq)


def _unphase(phased, stride, size):
    """The adjoint of ``_phases``: (N, C*sh*sw, Hq, Wq) -> (N, C, Hq*sh, Wq*sw) cut to ``size`` (Hp, Wp)."""
    sh, sw = stride
    n, cq, hq, wq = phased.shape
    grid = phased.reshape(n, cq // (sh * sw), sh, sw, hq, wq).transpose(0, 1, 4, 2, 5, 3)
    return grid.reshape(n, cq // (sh * sw), hq * sh, wq * sw)[:, :, :size[0], :size[1]]


def conv_forward(x, weight, bias, stride=(1, 1), padding=(0, 0), relu=False, pool_kernel=(1, 1), pool_stride=(1, 1),
                 keep_argmax=True):
    """``maxpool(relu(conv2d(x, weight, bias, stride, padding)))``; ReLU only if ``relu``, 1 x 1 windows = no pool.

    Shapes: x (N, C, H, W), weight (O, C, kh, kw), bias (O,) or None -> out (N, O, PH, PW) (see
    ``stage_shape``) and argmax (N, O, PH, PW) int32, the in-window index ``i * pkw + j`` of each
    window's winner (after ReLU, first maximum on ties, exactly ``MaxPool2d``'s), or None if not
    ``keep_argmax`` or without pooling (inference and 1 x 1 windows need none).
    """
    n = x.shape[0]
    out_channels = weight.shape[0]
    _, (oh, ow), (ph_, pw_) = stage_shape(x.shape, weight.shape, stride, padding, pool_kernel, pool_stride)
    (pkh, pkw) = pool_kernel
    keep_argmax = keep_argmax and pkh * pkw > 1
    out = np.empty((n, out_channels, ph_, pw_), dtype=x.dtype)
    argmax = np.empty(out.shape if keep_argmax else (n, out_channels, 0, 0), dtype=np.int32)
    bias = _no_bias(weight) if bias is None else bias
    weight = np.ascontiguousarray(weight)
    xp = _pad(x, padding)
    if stride != (1, 1):
        xp, weight = _phases(xp, stride), _phases(weight, stride)
    channels, hp, wp = xp.shape[1:]
    size = hp * wp
    tail = (oh - 1) * wp + ow
    args = (xp.reshape(n, channels, size), weight, bias, out, argmax, wp, tail)
    rest = ((pkh, pkw, *pool_stride), bool(relu), keep_argmax)
    work = size * weight.size * n
    if size - tail > IMAGE_BY_IMAGE_JUNK * size:
        # Image by image: chunks would compute the junk rows between images.
        drive(_images_serial, _images_parallel, n, work, *args, min(n, MIN_CHUNKS), *rest)
        return out, (argmax if keep_argmax else None)
    # Chunks of about CHUNK_POSITIONS positions, their count rounded up to a multiple of MIN_CHUNKS.
    chunks = -(-max(n * size // CHUNK_POSITIONS, 1) // MIN_CHUNKS) * MIN_CHUNKS
    per_chunk = -(-n // min(n, chunks))
    drive(_forward_serial, _forward_parallel, -(-n // per_chunk), work, *args, per_chunk, *rest)
    return out, (argmax if keep_argmax else None)


def conv_backward(dout, x, out, argmax, weight, weight_grad, bias_grad, stride=(1, 1), padding=(0, 0), relu=False,
                  pool_kernel=(1, 1), pool_stride=(1, 1), need_input_grad=True, buffers=None):
    """Backward of ``conv_forward``: accumulates into ``weight_grad`` and ``bias_grad``, returns dx.

    Shapes: dout, out (N, O, PH, PW) and argmax (the forward's, None without pooling); x (N, C, H, W)
    the forward input; weight and weight_grad (O, C, kh, kw); bias_grad (O,) or None. Returns dx
    (N, C, H, W), or None when ``need_input_grad`` is False (the first layer of a network: nobody
    needs d loss / d pixels). ``buffers``: a dict in which the large scratch arrays are kept from
    one call to the next.
    """
    dout = np.ascontiguousarray(dout)
    n, _, h, w = x.shape
    out_channels, _, kh, kw = weight.shape
    (hp, wp), conv_shape, pooled_shape = stage_shape(x.shape, weight.shape, stride, padding, pool_kernel,
                                                      pool_stride)
    if dout.shape != out.shape or out.shape != (n, out_channels) + pooled_shape:
        raise ValueError(f"conv_backward: expected dout and out of shape {(n, out_channels) + pooled_shape}, "
                         f"got {dout.shape} and {out.shape}")
    if argmax is None:
        if pool_kernel != (1, 1):
            raise ValueError("conv_backward: a pooled stage needs the forward's argmax")
        argmax = np.empty((n, out_channels, 0, 0), dtype=np.int32)
    db = _no_bias(weight) if bias_grad is None else bias_grad
    stage = (bool(relu), pool_kernel, pool_stride)
    x, weight = np.ascontiguousarray(x), np.ascontiguousarray(weight)
    if stride == (1, 1):
        return _direct_backward(dout, x, padding, out, argmax, weight, weight_grad, db, conv_shape, stage,
                                need_input_grad, buffers)
    # Strided: the stride-1 convolution of the phases (see ``_phases``), then back to x's and weight's shapes.
    phased_weight = _phases(weight, stride)
    phased_grad = np.zeros_like(phased_weight)
    dxq = _direct_backward(dout, _phases(_pad(x, padding), stride), (0, 0), out, argmax, phased_weight, phased_grad,
                           db, conv_shape, stage, need_input_grad, buffers)
    weight_grad += _unphase(phased_grad, stride, (kh, kw))
    if dxq is None:
        return None
    (ph, pw) = padding
    return np.ascontiguousarray(_unphase(dxq, stride, (hp, wp))[:, :, ph:ph + h, pw:pw + w])


def _direct_backward(dout, x, padding, out, argmax, weight, weight_grad, db, conv_shape, stage, need_input_grad,
                     buffers):
    """``conv_backward`` of a stride-1 convolution of output size ``conv_shape`` by the direct kernels.

    Long window rows (C * kw >= ``WINNER_MIN_ROW``) visit the winners only, short ones build the
    dense ``dconv`` (see the module docstring).
    """
    n, channels, h, w = x.shape
    out_channels, _, kh, kw = weight.shape
    (ph, pw), (oh, ow) = padding, conv_shape
    hp, wp = h + 2 * ph, w + 2 * pw
    relu, (pkh, pkw), (psh, psw) = stage
    pooled = pkh * pkw > 1
    if channels * kw >= WINNER_MIN_ROW:
        # Channels padded to a multiple of 8 with kw * cp >= 32 numbers a kernel row: long enough for
        # the compiler's SIMD loop (with 30 or 24 it fell back to scalar code); the padding is zeros.
        cp = max(-(-channels // 8), -(-32 // (8 * kw))) * 8
        tap_row = np.repeat(np.arange(pkh), pkw)  # argmax = i * pkw + j -> (i, j)
        tap_col = np.tile(np.arange(pkw), pkh)
        work = int(dout.size) * kh * kw * cp  # an upper bound: one kernel's worth per winner
        xh = buffer(buffers, "x_channels_last", (n, hp, wp, cp), x.dtype)
        drive(_to_channels_last_serial, _to_channels_last_parallel, n, xh.size, x, xh, ph, pw)
        acc = buffer(buffers, "weight_grad_channels_last", (out_channels, kh, kw * cp), x.dtype)
        drive(_winner_param_grad_serial, _winner_param_grad_parallel, out_channels, work,
              dout, out, argmax, xh.reshape(n, hp, wp * cp), acc, db, cp, tap_row, tap_col, psh, psw, relu, pooled)
        weight_grad += acc.reshape(out_channels, kh, kw, cp)[..., :channels].transpose(0, 3, 1, 2)
        if not need_input_grad:
            return None
        wh = np.zeros((out_channels, kh, kw, cp), dtype=x.dtype)
        wh[..., :channels] = weight.transpose(0, 2, 3, 1)
        dxh = buffer(buffers, "dx_channels_last", (n, hp, wp, cp), x.dtype)
        drive(_winner_input_grad_serial, _winner_input_grad_parallel, n, work,
              dout, out, argmax, wh.reshape(out_channels, kh, kw * cp), dxh.reshape(n, hp, wp * cp), cp,
              tap_row, tap_col, psh, psw, relu, pooled)
        return np.ascontiguousarray(dxh[:, ph:ph + h, pw:pw + w, :channels].transpose(0, 3, 1, 2))

    size = hp * wp
    lead = (kh - 1) * wp + (kw - 1)  # zeros before dconv, so the full convolution never reads before 0
    tap_offset = (np.arange(pkh)[:, None] * wp + np.arange(pkw)).ravel()  # argmax -> wide-row offset
    dconv = buffer(buffers, "dconv", (out_channels, lead + n * size), x.dtype)
    drive(_scatter_serial, _scatter_parallel, n, dconv.size,
          dout, out, argmax, dconv, lead, wp, tap_offset, psh, psw, relu, pooled)
    # x and dconv hold the whole batch per channel, image after image (see the module docstring).
    if channels == 1 and ph == pw == 0:
        x_by_channel = x.reshape(1, n * size)
    else:
        x_by_channel = buffer(buffers, "x_by_channel", (channels, n, hp, wp), x.dtype)
        if ph or pw:
            x_by_channel[...] = 0
        x_by_channel[:, :, ph:ph + h, pw:pw + w] = x.transpose(1, 0, 2, 3)
        x_by_channel = x_by_channel.reshape(channels, n * size)
    length = (n - 1) * size + (oh - 1) * wp + ow
    drive(_param_grad_serial, _param_grad_parallel, out_channels * channels * kh, weight.size * length,
          x_by_channel, dconv, weight_grad, db, wp, lead, length)
    if not need_input_grad:
        return None
    dx = np.empty((n, channels, size), dtype=x.dtype)
    drive(_input_grad_serial, _input_grad_parallel, n, weight.size * n * size, dconv, weight, dx, wp, lead)
    dx = dx.reshape(n, channels, hp, wp)
    return dx if ph == pw == 0 else np.ascontiguousarray(dx[:, :, ph:ph + h, pw:pw + w])
