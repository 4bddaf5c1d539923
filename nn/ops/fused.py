"""Fused numba kernels: convolution + bias + ReLU + max pooling, and linear + bias (+ ReLU).

Each fused kernel computes exactly what its layers compute one after the other, in one pass over
memory and without the intermediate arrays (no ``col`` matrix, no full-size ReLU mask):

* ``conv_relu_pool_forward``  = ``MaxPool2d(ReLU(Conv2d(x)))``, for a stride-1, unpadded convolution.
* ``conv_relu_pool_backward`` = the three backward passes in reverse order.
* ``linear_forward`` / ``linear_backward`` = ``Linear``, optionally followed by ``ReLU``.

The tests check every one of them against the unfused layers on the NumPy backend.

How the convolution is laid out ("wide rows")
---------------------------------------------
An image channel of H x W pixels is read as one flat row of H * W numbers. For a kernel tap
(i, j) and an output pixel (y, x), the input pixel is ``flat[(y + i) * W + (x + j)]``, which is
``flat[i * W + j + p]`` with ``p = y * W + x``. So if the output is also kept with rows W wide
(``p = y * W + x``; columns x >= out_w are computed but never read), every tap becomes one long,
contiguous loop over p::

    conv[o, p] += w[o, c, i, j] * flat[c, i * W + j + p]      for p in 0 .. L-1,
    L = (out_h - 1) * W + out_w

Long contiguous loops are what the compiler turns into SIMD instructions; the price is computing
the W - out_w throw-away columns of each row (4 of 28 for LeNet's C1, 4 of 12 for C3). The taps of
one kernel row are summed in one expression (``_add_kernel_row``), so the accumulator is loaded and
stored once per kernel row instead of once per tap.

Backward through ReLU and max pooling
-------------------------------------
Max pooling sends each window's gradient to the one conv output that won the window, and ReLU
lets it through only if that output was positive; since ``max(relu(v)) = relu(max(v))``, the
winner was positive exactly when the pooled output is. So the gradient of the conv output,
``dconv``, is zero except at the winners of windows with a positive output (a quarter of the
positions at most for 2x2 pooling), and it is known from ``argmax`` and the pooled output alone,
without a ReLU mask. For each such winner at position p of channel o, with window gradient g::

    dW[o, :, :, :] += g * (the input window at p)       db[o] += g
    dx[:, window at p] += g * W[o]                       (the full convolution of dconv)

Two ways to do those sums, chosen by how long one row of a window is (C * kw numbers):

* Long rows (LeNet's C3: 6 channels x 5 taps = 30): visit the winners only. In a channels-last
  copy of x, one kernel row of a window, all taps and channels, is one contiguous run, so each
  winner costs kh short SIMD loops, and the 3 in 4 zeros of dconv cost nothing (``_winner_*``).
* Short rows (C1: 1 x 5): runs of 5 are too short for SIMD and the per-winner overhead would
  dominate. Instead dconv is built in full, laid out channel-major over the whole batch
  (``dconv[o, lead + n * H*W + p]``, image after image, in wide rows), and the sums become long
  dense loops: ``dW[o, c, i, j] = sum_t dconv[o, t] * x[c, i * W + j + t]`` is one correlation
  over the whole batch per kernel row, and dx one full convolution per image (``_conv_*``).

Parallelism and reproducibility
-------------------------------
Kernels with a batch-parallel outer loop (``prange``) write only their own images' rows. The
weight gradients are sums over the batch; they are computed in parallel over output channels or
kernel rows, each sum running over the images in order on one thread, never split over images,
so the result does not depend on the number of threads or their timing: training is reproducible
bit for bit (a test compares one thread with all). Every kernel comes as a serial and a parallel
driver of the same per-item function: a small batch (one image, the server's case) runs on the
calling thread, with no thread start-up cost (``parallel.drive`` chooses). Parallel launches are
serialized by a lock, so concurrent callers never nest thread pools and never oversubscribe the
cores.

These kernels use no BLAS: the matrix products are small enough that compiled loops beat the
per-call overhead of BLAS, and keeping BLAS out of the hot path means numba's threads are the
only ones competing for the cores (see ``numba_ops``'s docstring for what happens otherwise).
"""

import numba
import numpy as np

from .parallel import drive

# ---------------------------------------------------------------------------------------------
# Inner loops shared by the kernels. ``fastmath`` "contract" lets a * b + c become one fused
# multiply-add; "reassoc" (only where a sum over p is reduced) lets the compiler split that sum
# into SIMD lanes. Both are fixed at compile time, so results stay deterministic. They are
# inlined into their callers (inline="always"): as separate calls, each row paid a call and the
# compiler lost the facts it needed to vectorize, about 2x slower.
# ---------------------------------------------------------------------------------------------

@numba.njit(cache=True, inline="always", fastmath={"contract"})
def _add_kernel_row(acc, src, offset, w_row, n):
    """``acc[p] += sum_j w_row[j] * src[offset + j + p]`` for p < n: one kernel row, all positions."""
    # Indexing a slice with p + j (never negative) rather than src with offset + j + p lets the
    # compiler drop the negative-index wraparound check, which would otherwise block SIMD.
    s = src[offset:]
    if w_row.shape[0] == 5:  # LeNet's kernels: the five taps in one expression, one load/store of acc
        w0, w1, w2, w3, w4 = w_row[0], w_row[1], w_row[2], w_row[3], w_row[4]
        for p in range(n):
            acc[p] += w0 * s[p] + w1 * s[p + 1] + w2 * s[p + 2] + w3 * s[p + 3] + w4 * s[p + 4]
    else:
        for j in range(w_row.shape[0]):
            wj = w_row[j]
            for p in range(n):
                acc[p] += wj * s[p + j]


@numba.njit(cache=True, inline="always", fastmath={"contract"})
def _add_flipped_kernel_row(acc, src, offset, w_row, n):
    """``acc[q] += sum_j w_row[j] * src[offset - j + q]`` for q < n: the transpose of ``_add_kernel_row``."""
    last = w_row.shape[0] - 1
    s = src[offset - last:]  # s[q + last - j] is src[offset - j + q]
    if last == 4:
        w0, w1, w2, w3, w4 = w_row[0], w_row[1], w_row[2], w_row[3], w_row[4]
        for q in range(n):
            acc[q] += w0 * s[q + 4] + w1 * s[q + 3] + w2 * s[q + 2] + w3 * s[q + 1] + w4 * s[q]
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
    else:
        for j in range(dw_row.shape[0]):
            a = dw_row.dtype.type(0)
            for p in range(n):
                a += d[p] * s[p + j]
            dw_row[j] += a


# ---------------------------------------------------------------------------------------------
# Convolution + bias + ReLU + max pooling: forward
# ---------------------------------------------------------------------------------------------

@numba.njit(cache=True, inline="always")
def _relu_maxpool(conv, width, out, argmax, pkh, pkw, psh, psw, keep_argmax):
    """ReLU then max pooling of one channel kept in wide rows (pixel (y, x) at ``conv[y * width + x]``).

    ``out[py, px] = max(0, max_{i, j} conv[(py*psh + i) * width + px*psw + j])`` and ``argmax`` the
    index ``i * pkw + j`` of the first maximum of the ReLU'd window, as ``MaxPool2d(ReLU(.))``
    computes it: ReLU maps NaN to 0 (``np.where(x > 0, x, 0)``) and a window of zeros is won by
    its first element. Winners are chosen with selects, not branches: on real data they are
    unpredictable, and mispredicted branches would cost more than the convolution itself.
    """
    zero = out.dtype.type(0)
    ph, pw = out.shape
    for py in range(ph):
        if pkh == 2 and pkw == 2:  # LeNet's pooling, spelled out so the compiler can vectorize over px
            row0 = conv[py * psh * width:]
            row1 = conv[(py * psh + 1) * width:]
            for px in range(pw):
                left = px * psw
                best, index = zero, 0
                value = row0[left]
                index = 0 if value > best else index
                best = value if value > best else best
                value = row0[left + 1]
                index = 1 if value > best else index
                best = value if value > best else best
                value = row1[left]
                index = 2 if value > best else index
                best = value if value > best else best
                value = row1[left + 1]
                index = 3 if value > best else index
                best = value if value > best else best
                out[py, px] = best
                if keep_argmax:
                    argmax[py, px] = index
        else:
            for px in range(pw):
                best, index = zero, 0
                for i in range(pkh):
                    row = conv[(py * psh + i) * width + px * psw:]
                    for j in range(pkw):
                        value = row[j]
                        index = i * pkw + j if value > best else index
                        best = value if value > best else best
                out[py, px] = best
                if keep_argmax:
                    argmax[py, px] = index


@numba.njit(cache=True, fastmath={"contract"})
def _conv_relu_pool_image(x, w, b, out, argmax, conv, width, pkh, pkw, psh, psw, keep_argmax):
    """One image. x (C, H*W) flat; conv (O, L) scratch in wide rows; out, argmax (O, PH, PW)."""
    channels = x.shape[0]
    out_channels, _, kh, _ = w.shape
    length = conv.shape[1]
    for o in range(out_channels):
        acc = conv[o]
        acc[:] = b[o]
        for c in range(channels):
            for i in range(kh):
                _add_kernel_row(acc, x[c], i * width, w[o, c, i], length)
        _relu_maxpool(acc, width, out[o], argmax[o], pkh, pkw, psh, psw, keep_argmax)


@numba.njit(cache=True)
def _conv_relu_pool_forward_serial(x, w, b, out, argmax, width, out_h, out_w, pkh, pkw, psh, psw, keep_argmax,
                                   chunks):
    length = (out_h - 1) * width + out_w
    conv = np.empty((w.shape[0], length), dtype=x.dtype)  # one scratch for every image (chunks: unused)
    for n in range(x.shape[0]):
        _conv_relu_pool_image(x[n], w, b, out[n], argmax[n], conv, width,
                              pkh, pkw, psh, psw, keep_argmax)


@numba.njit(cache=True, parallel=True)
def _conv_relu_pool_forward_parallel(x, w, b, out, argmax, width, out_h, out_w, pkh, pkw, psh, psw, keep_argmax,
                                     chunks):
    length = (out_h - 1) * width + out_w
    n_images = x.shape[0]
    # A few chunks of consecutive images per thread, each with its own scratch: one allocation
    # per chunk rather than per image, and still enough chunks to even out the threads' loads.
    for chunk in numba.prange(chunks):
        conv = np.empty((w.shape[0], length), dtype=x.dtype)
        for n in range(chunk * n_images // chunks, (chunk + 1) * n_images // chunks):
            _conv_relu_pool_image(x[n], w, b, out[n], argmax[n], conv, width,
                                  pkh, pkw, psh, psw, keep_argmax)


# ---------------------------------------------------------------------------------------------
# Convolution + bias + ReLU + max pooling: backward
# ---------------------------------------------------------------------------------------------

@numba.njit(cache=True)
def _scatter_pool_grad_image(start, size, dout, out, argmax, dconv, width, tap_offset, psh, psw):
    """One image: ``dconv[:, start:start + size]`` <- each window's gradient at its winner, if its output is positive.

    ``tap_offset[i * pkw + j] = i * width + j`` turns an argmax into a wide-row offset without a division.
    """
    out_channels, ph, pw = dout.shape
    zero = dout.dtype.type(0)
    for o in range(out_channels):
        segment = dconv[o, start:start + size]
        segment[:] = 0
        for py in range(ph):
            for px in range(pw):
                # The ReLU mask at the winner (see the module docstring), as a select: a branch on
                # the sign of real activations would be mispredicted half of the time.
                g = dout[o, py, px] if out[o, py, px] > 0 else zero
                # += because overlapping windows (stride < kernel) may share their winner.
                segment[py * psh * width + px * psw + tap_offset[argmax[o, py, px]]] += g


@numba.njit(cache=True)
def _scatter_pool_grad_serial(dout, out, argmax, dconv, width, lead, tap_offset, psh, psw):
    size = (dconv.shape[1] - lead) // dout.shape[0]
    dconv[:, :lead] = 0
    for n in range(dout.shape[0]):
        _scatter_pool_grad_image(lead + n * size, size, dout[n], out[n], argmax[n], dconv, width, tap_offset,
                                 psh, psw)


@numba.njit(cache=True, parallel=True)
def _scatter_pool_grad_parallel(dout, out, argmax, dconv, width, lead, tap_offset, psh, psw):
    size = (dconv.shape[1] - lead) // dout.shape[0]
    dconv[:, :lead] = 0
    for n in numba.prange(dout.shape[0]):
        _scatter_pool_grad_image(lead + n * size, size, dout[n], out[n], argmax[n], dconv, width, tap_offset,
                                 psh, psw)


@numba.njit(cache=True, fastmath={"contract", "reassoc"})
def _conv_param_grad_row(oci, x, dconv, dw, db, width, lead, length):
    """Kernel row i of output channel o and input channel c (oci = (o * C + c) * kh + i), over the whole batch.

    x (C, N*H*W) and dconv (O, lead + N*H*W) hold all images one after the other, so the sum over
    images and positions is one long correlation (see the module docstring); ``db[o]`` is added
    once per o. Each (o, c, i) is written by one call only: calls may run in parallel.
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
def _conv_param_grad_serial(x, dconv, dw, db, width, lead, length):
    for oci in range(dw.shape[0] * dw.shape[1] * dw.shape[2]):
        _conv_param_grad_row(oci, x, dconv, dw, db, width, lead, length)


@numba.njit(cache=True, parallel=True)
def _conv_param_grad_parallel(x, dconv, dw, db, width, lead, length):
    for oci in numba.prange(dw.shape[0] * dw.shape[1] * dw.shape[2]):
        _conv_param_grad_row(oci, x, dconv, dw, db, width, lead, length)


@numba.njit(cache=True, fastmath={"contract"})
def _conv_input_grad_image(start, dconv, w, dx, width):
    """One image, whose dconv segment starts at ``start``: dx (C, H*W) <- the full convolution with the kernels.

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
def _conv_input_grad_serial(dconv, w, dx, width, lead):
    for n in range(dx.shape[0]):
        _conv_input_grad_image(lead + n * dx.shape[2], dconv, w, dx[n], width)


@numba.njit(cache=True, parallel=True)
def _conv_input_grad_parallel(dconv, w, dx, width, lead):
    for n in numba.prange(dx.shape[0]):
        _conv_input_grad_image(lead + n * dx.shape[2], dconv, w, dx[n], width)


# ---------------------------------------------------------------------------------------------
# Convolution + bias + ReLU + max pooling: backward visiting the winners only (many input channels)
# ---------------------------------------------------------------------------------------------

@numba.njit(cache=True)
def _to_channels_last_image(x, xh):
    """One image: x (C, H, W) -> xh (H, W, Cp), the channels Cp >= C padded with zeros."""
    channels, h, w = x.shape
    xh[:] = 0
    for y in range(h):
        for col in range(w):
            for c in range(channels):
                xh[y, col, c] = x[c, y, col]


@numba.njit(cache=True)
def _to_channels_last_serial(x, xh):
    for n in range(x.shape[0]):
        _to_channels_last_image(x[n], xh[n])


@numba.njit(cache=True, parallel=True)
def _to_channels_last_parallel(x, xh):
    for n in numba.prange(x.shape[0]):
        _to_channels_last_image(x[n], xh[n])


@numba.njit(cache=True, fastmath={"contract"})
def _winner_param_grad_channel(o, dout, out, argmax, xh, acc, db, cp, tap_row, tap_col, psh, psw):
    """Output channel o, images in order: acc (kh, kw*cp) <- sum over winners of g * window; db[o] += sum of g.

    xh (N, H, W*cp) is channels last, so one kernel row of a window (all its taps and channels)
    is one contiguous run of kw*cp numbers, and acc holds the kernel in the same (i, j, c) order.
    """
    kh, run = acc.shape
    acc[:] = 0
    total = db.dtype.type(0)
    for n in range(dout.shape[0]):
        for py in range(dout.shape[2]):
            for px in range(dout.shape[3]):
                if not out[n, o, py, px] > 0:  # the ReLU mask at the winner
                    continue
                g = dout[n, o, py, px]
                total += g
                a = argmax[n, o, py, px]
                y, start = py * psh + tap_row[a], (px * psw + tap_col[a]) * cp
                for i in range(kh):
                    src = xh[n, y + i, start:start + run]
                    dst = acc[i]
                    for k in range(run):
                        dst[k] += g * src[k]
    db[o] += total


@numba.njit(cache=True)
def _winner_param_grad_serial(dout, out, argmax, xh, acc, db, cp, tap_row, tap_col, psh, psw):
    for o in range(dout.shape[1]):
        _winner_param_grad_channel(o, dout, out, argmax, xh, acc[o], db, cp, tap_row, tap_col, psh, psw)


@numba.njit(cache=True, parallel=True)
def _winner_param_grad_parallel(dout, out, argmax, xh, acc, db, cp, tap_row, tap_col, psh, psw):
    for o in numba.prange(dout.shape[1]):
        _winner_param_grad_channel(o, dout, out, argmax, xh, acc[o], db, cp, tap_row, tap_col, psh, psw)


@numba.njit(cache=True, fastmath={"contract"})
def _winner_input_grad_image(dout, out, argmax, wh, dxh, cp, tap_row, tap_col, psh, psw):
    """One image: dxh (H, W*cp) channels last <- for every winner, g * its kernel (wh (O, kh, kw*cp)) on its window."""
    kh, run = wh.shape[1], wh.shape[2]
    dxh[:] = 0
    for o in range(dout.shape[0]):
        for py in range(dout.shape[1]):
            for px in range(dout.shape[2]):
                if not out[o, py, px] > 0:
                    continue
                g = dout[o, py, px]
                a = argmax[o, py, px]
                y, start = py * psh + tap_row[a], (px * psw + tap_col[a]) * cp
                for i in range(kh):
                    dst = dxh[y + i, start:start + run]
                    w_row = wh[o, i]
                    for k in range(run):
                        dst[k] += g * w_row[k]


@numba.njit(cache=True)
def _winner_input_grad_serial(dout, out, argmax, wh, dxh, cp, tap_row, tap_col, psh, psw):
    for n in range(dout.shape[0]):
        _winner_input_grad_image(dout[n], out[n], argmax[n], wh, dxh[n], cp, tap_row, tap_col, psh, psw)


@numba.njit(cache=True, parallel=True)
def _winner_input_grad_parallel(dout, out, argmax, wh, dxh, cp, tap_row, tap_col, psh, psw):
    for n in numba.prange(dout.shape[0]):
        _winner_input_grad_image(dout[n], out[n], argmax[n], wh, dxh[n], cp, tap_row, tap_col, psh, psw)


# ---------------------------------------------------------------------------------------------
# Linear (+ ReLU)
# ---------------------------------------------------------------------------------------------

@numba.njit(cache=True, fastmath={"contract", "reassoc"})
def _linear_row(x, w, b, y, relu):
    """One row: y[o] = b[o] + sum_k w[o, k] * x[k], then max(., 0) if relu."""
    zero = y.dtype.type(0)
    for o in range(w.shape[0]):
        total = zero
        for k in range(x.shape[0]):
            total += w[o, k] * x[k]
        total += b[o]
        y[o] = total if (total > 0 or not relu) else zero


@numba.njit(cache=True)
def _linear_forward_serial(x, w, b, y, relu):
    for n in range(x.shape[0]):
        _linear_row(x[n], w, b, y[n], relu)


@numba.njit(cache=True, parallel=True)
def _linear_forward_parallel(x, w, b, y, relu):
    for n in numba.prange(x.shape[0]):
        _linear_row(x[n], w, b, y[n], relu)


@numba.njit(cache=True, fastmath={"contract"})
def _linear_param_grad_row(o, x, dy, y, dw, db, relu):
    """Output o: dw[o] += sum_n g[n, o] * x[n] and db[o] += sum_n g[n, o], images in order.

    ``g = dy``, masked by ``y > 0`` when a ReLU followed (y is then the ReLU's output).
    """
    row = dw[o]
    total = db.dtype.type(0)
    for n in range(x.shape[0]):
        if relu and not y[n, o] > 0:
            continue
        g = dy[n, o]
        total += g
        xn = x[n]
        for k in range(row.shape[0]):
            row[k] += g * xn[k]
    db[o] += total


@numba.njit(cache=True)
def _linear_param_grad_serial(x, dy, y, dw, db, relu):
    for o in range(dw.shape[0]):
        _linear_param_grad_row(o, x, dy, y, dw, db, relu)


@numba.njit(cache=True, parallel=True)
def _linear_param_grad_parallel(x, dy, y, dw, db, relu):
    for o in numba.prange(dw.shape[0]):
        _linear_param_grad_row(o, x, dy, y, dw, db, relu)


@numba.njit(cache=True, fastmath={"contract"})
def _linear_input_grad_row(dy, y, w, dx, relu):
    """One row: dx[k] = sum_o g[o] * w[o, k], with g as in ``_linear_param_grad_row``."""
    dx[:] = 0
    for o in range(w.shape[0]):
        if relu and not y[o] > 0:
            continue
        g = dy[o]
        wo = w[o]
        for k in range(dx.shape[0]):
            dx[k] += g * wo[k]


@numba.njit(cache=True)
def _linear_input_grad_serial(dy, y, w, dx, relu):
    for n in range(dx.shape[0]):
        _linear_input_grad_row(dy[n], y[n], w, dx[n], relu)


@numba.njit(cache=True, parallel=True)
def _linear_input_grad_parallel(dy, y, w, dx, relu):
    for n in numba.prange(dx.shape[0]):
        _linear_input_grad_row(dy[n], y[n], w, dx[n], relu)


# ---------------------------------------------------------------------------------------------
# Python entry points: check and lay out the arrays, allocate outputs, pick a driver.
# ---------------------------------------------------------------------------------------------

def _buffer(buffers, name, shape, dtype):
    """An uninitialized array, reused from ``buffers`` (a dict the caller owns) when shape and dtype match."""
    if buffers is None:
        return np.empty(shape, dtype=dtype)
    array = buffers.get(name)
    if array is None or array.shape != shape or array.dtype != dtype:
        array = buffers[name] = np.empty(shape, dtype=dtype)
    return array


def _no_bias(weight):
    return np.zeros(weight.shape[0], dtype=weight.dtype)


def conv_relu_pool_forward(x, weight, bias, pool_kernel, pool_stride, keep_argmax=True):
    """``maxpool(relu(conv2d(x, weight, bias)))`` for a stride-1, unpadded convolution.

    Shapes: x (N, C, H, W), weight (O, C, kh, kw), bias (O,) or None ->
    out (N, O, PH, PW) with ``PH = (H - kh + 1 - pkh) // psh + 1`` (likewise PW), and
    argmax (N, O, PH, PW) int32, the in-window index ``i * pkw + j`` of each window's winner
    (after ReLU, first maximum on ties, exactly ``MaxPool2d``'s), or None if not ``keep_argmax``
    (inference needs no argmax and allocates none).
    """
    x = np.ascontiguousarray(x)
    n, channels, h, width = x.shape
    kh, kw = weight.shape[2:]
    out_h, out_w = h - kh + 1, width - kw + 1
    (pkh, pkw), (psh, psw) = pool_kernel, pool_stride
    # The kernels do no bounds checking: a mismatch must stop here, not read past the arrays.
    if weight.shape[1] != channels or out_h < pkh or out_w < pkw:
        raise ValueError(f"conv_relu_pool_forward: x {x.shape} does not fit weight {weight.shape} "
                         f"and pool kernel {tuple(pool_kernel)}")
    ph, pw = (out_h - pkh) // psh + 1, (out_w - pkw) // psw + 1
    out = np.empty((n, weight.shape[0], ph, pw), dtype=x.dtype)
    # Without keep_argmax the kernel never writes argmax: an empty (N, O, 0, 0) array stands in.
    argmax = np.empty(out.shape if keep_argmax else (n, weight.shape[0], 0, 0), dtype=np.int32)
    bias = _no_bias(weight) if bias is None else bias
    drive(_conv_relu_pool_forward_serial, _conv_relu_pool_forward_parallel, n, out_h * out_w * weight.size * n,
           x.reshape(n, channels, h * width), np.ascontiguousarray(weight), bias, out, argmax,
           width, out_h, out_w, pkh, pkw, psh, psw, keep_argmax, min(n, 4 * numba.get_num_threads()))
    return out, (argmax if keep_argmax else None)


def conv_relu_pool_backward(dout, x, out, argmax, weight, weight_grad, bias_grad, pool_kernel, pool_stride,
                            need_input_grad=True, buffers=None):
    """Backward of ``conv_relu_pool_forward``: accumulates into ``weight_grad`` and ``bias_grad``, returns dx.

    Shapes: dout, out, argmax (N, O, PH, PW); x (N, C, H, W) the forward input; weight and
    weight_grad (O, C, kh, kw); bias_grad (O,) or None. Returns dx (N, C, H, W), or None when
    ``need_input_grad`` is False (the first layer of a network: nobody needs d loss / d pixels).
    ``buffers``: a dict in which the large scratch arrays are kept from one call to the next.

    Two ways to the same sums, chosen by the length of one window row, ``C * kw``:

    * long rows (LeNet's C3: 6 * 5 = 30): visit only the windows' winners, each adding
      ``g * window`` to the weight gradient and ``g * kernel`` to dx, one contiguous run of
      numbers per kernel row in a channels-last copy of x (``_winner_*``);
    * short rows (C1: 1 * 5): those runs would be too short for SIMD, so build the sparse
      ``dconv`` and run dense, long correlations over it (``_conv_*``, see the module docstring).
    """
    x = np.ascontiguousarray(x)
    dout = np.ascontiguousarray(dout)
    n, channels, h, width = x.shape
    out_channels, _, kh, kw = weight.shape
    (pkh, pkw), (psh, psw) = pool_kernel, pool_stride
    db = _no_bias(weight) if bias_grad is None else bias_grad
    if channels * kw >= WINNER_MIN_ROW:
        return _backward_by_winners(dout, x, out, argmax, weight, weight_grad, db, pkh, pkw, psh, psw,
                                    need_input_grad, buffers)
    out_h, out_w = h - kh + 1, width - kw + 1
    length = (out_h - 1) * width + out_w  # wide rows, see the module docstring
    lead = (kh - 1) * width + (kw - 1)  # zeros before dconv, so the full convolution never reads before 0
    tap_offset = (np.arange(pkh)[:, None] * width + np.arange(pkw)).ravel()  # argmax -> wide-row offset
    # dconv and x hold the whole batch per channel, image after image (see the module docstring).
    dconv = _buffer(buffers, "dconv", (out_channels, lead + n * h * width), x.dtype)
    drive(_scatter_pool_grad_serial, _scatter_pool_grad_parallel, n, dconv.size,
           dout, out, argmax, dconv, width, lead, tap_offset, psh, psw)
    x_by_channel = np.ascontiguousarray(x.reshape(n, channels, h * width).transpose(1, 0, 2))  # no copy if C == 1
    drive(_conv_param_grad_serial, _conv_param_grad_parallel, out_channels * channels * kh,
           weight.size * (dconv.size // out_channels),
           x_by_channel.reshape(channels, n * h * width), dconv, weight_grad, db, width, lead,
           (n - 1) * h * width + length)
    if not need_input_grad:
        return None
    dx = np.empty((n, channels, h * width), dtype=x.dtype)
    drive(_conv_input_grad_serial, _conv_input_grad_parallel, n, weight.size * (dconv.size // out_channels),
           dconv, np.ascontiguousarray(weight), dx, width, lead)
    return dx.reshape(x.shape)


# Window rows of at least this many numbers (C * kw) go through the winners (see conv_relu_pool_backward).
WINNER_MIN_ROW = 16


def _backward_by_winners(dout, x, out, argmax, weight, weight_grad, db, pkh, pkw, psh, psw, need_input_grad,
                         buffers):
    n, channels, h, width = x.shape
    out_channels, _, kh, kw = weight.shape
    # Channels padded to a multiple of 8: a kernel row is then kw * cp >= 32 numbers, long enough
    # for the compiler's SIMD loop (with 30 it fell back to scalar code); the padding is zeros.
    cp = -(-channels // 8) * 8
    tap_row = np.repeat(np.arange(pkh), pkw)  # argmax = i * pkw + j -> (i, j)
    tap_col = np.tile(np.arange(pkw), pkh)
    winners = int(dout.size)  # an upper bound of the work: one kernel's worth per winner
    xh = _buffer(buffers, "x_channels_last", (n, h, width, cp), x.dtype)
    drive(_to_channels_last_serial, _to_channels_last_parallel, n, xh.size, x, xh)  # a copy: one op a number
    acc = _buffer(buffers, "weight_grad_channels_last", (out_channels, kh, kw * cp), x.dtype)
    drive(_winner_param_grad_serial, _winner_param_grad_parallel, out_channels, winners * kh * kw * cp,
           dout, out, argmax, xh.reshape(n, h, width * cp), acc, db, cp, tap_row, tap_col, psh, psw)
    weight_grad += acc.reshape(out_channels, kh, kw, cp)[..., :channels].transpose(0, 3, 1, 2)
    if not need_input_grad:
        return None
    wh = np.zeros((out_channels, kh, kw, cp), dtype=x.dtype)
    wh[..., :channels] = weight.transpose(0, 2, 3, 1)
    dxh = _buffer(buffers, "dx_channels_last", (n, h, width, cp), x.dtype)
    drive(_winner_input_grad_serial, _winner_input_grad_parallel, n, winners * kh * kw * cp,
           dout, out, argmax, wh.reshape(out_channels, kh, kw * cp), dxh.reshape(n, h, width * cp), cp,
           tap_row, tap_col, psh, psw)
    return np.ascontiguousarray(dxh[..., :channels].transpose(0, 3, 1, 2))


def linear_forward(x, weight, bias, relu=False):
    """``y = x @ weight.T + bias``, then ``max(y, 0)`` if ``relu``. x (N, in), weight (out, in) -> y (N, out)."""
    x = np.ascontiguousarray(x)
    if x.ndim != 2 or x.shape[1] != weight.shape[1]:  # the kernels do no bounds checking
        raise ValueError(f"linear_forward: x {x.shape} does not fit weight {weight.shape}")
    y = np.empty((x.shape[0], weight.shape[0]), dtype=x.dtype)
    bias = _no_bias(weight) if bias is None else bias
    drive(_linear_forward_serial, _linear_forward_parallel, x.shape[0], x.shape[0] * weight.size,
           x, weight, bias, y, relu)
    return y


def linear_backward(dy, x, y, weight, weight_grad, bias_grad, relu=False, need_input_grad=True):
    """Backward of ``linear_forward``: accumulates into ``weight_grad`` (out, in) and ``bias_grad`` (out,).

    dy, y (N, out): upstream gradient and the forward output (its sign is the ReLU mask when
    ``relu``); x (N, in) the forward input. Returns dx (N, in), or None if not ``need_input_grad``.
    """
    dy = np.ascontiguousarray(dy)
    db = _no_bias(weight) if bias_grad is None else bias_grad
    drive(_linear_param_grad_serial, _linear_param_grad_parallel, weight.shape[0], x.shape[0] * weight.size,
           x, dy, y, weight_grad, db,
           relu)
    if not need_input_grad:
        return None
    dx = np.empty(x.shape, dtype=x.dtype)
    drive(_linear_input_grad_serial, _linear_input_grad_parallel, x.shape[0], x.shape[0] * weight.size,
           dy, y, weight, dx, relu)
    return dx


# ---------------------------------------------------------------------------------------------
# Cross-entropy: log-softmax and the negative log-likelihood in one pass
# ---------------------------------------------------------------------------------------------

@numba.njit(cache=True)
def _cross_entropy_forward(z, labels, logp):
    """logp <- log_softmax(z) row by row (max subtracted first); returns -sum_n logp[n, labels[n]] in float64."""
    total = 0.0
    for n in range(z.shape[0]):
        row, out = z[n], logp[n]
        top = row[0]
        for c in range(1, row.shape[0]):
            top = max(top, row[c])
        norm = row.dtype.type(0)
        for c in range(row.shape[0]):
            out[c] = row[c] - top
            norm += np.exp(out[c])
        log_norm = np.log(norm)
        for c in range(row.shape[0]):
            out[c] -= log_norm
        total -= out[labels[n]]
    return total


@numba.njit(cache=True)
def _cross_entropy_backward(logp, labels, scale, grad):
    """grad[n, c] = (exp(logp[n, c]) - [c == labels[n]]) * scale."""
    for n in range(logp.shape[0]):
        for c in range(logp.shape[1]):
            grad[n, c] = np.exp(logp[n, c]) * scale
        grad[n, labels[n]] -= scale


def cross_entropy_forward(logits, labels):
    """(logp, loss_sum): ``log_softmax(logits)`` (N, C) and ``-sum_n logp[n, labels[n]]`` (a float).

    logits (N, C) float, labels (N,) intp in [0, C) (checked by the caller).
    """
    logits = np.ascontiguousarray(logits)
    logp = np.empty_like(logits)
    return logp, _cross_entropy_forward(logits, labels, logp)


def cross_entropy_backward(logp, labels, scale):
    """d loss / d logits = ``(softmax - one_hot(labels)) * scale`` (N, C), from the forward's ``logp``."""
    grad = np.empty_like(logp)
    _cross_entropy_backward(logp, labels, logp.dtype.type(scale), grad)
    return grad


# ---------------------------------------------------------------------------------------------
# SGD: PyTorch's update rule for one parameter, in one pass and without temporaries
# ---------------------------------------------------------------------------------------------

@numba.njit(cache=True)
def _sgd_update(data, grad, buf, lr, momentum, weight_decay, nesterov, first):
    # No fastmath: each operation rounds exactly as NumPy's whole-array version does, in the
    # same order, so this gives the same bits as nn.optim.SGD's NumPy code.
    for k in range(data.shape[0]):
        g = grad[k]
        if weight_decay != 0:
            g = g + weight_decay * data[k]
        if momentum != 0:
            b = g if first else momentum * buf[k] + g
            buf[k] = b
            g = g + momentum * b if nesterov else b
        data[k] = data[k] - lr * g


def sgd_update(data, grad, buffer, lr, momentum=0.0, weight_decay=0.0, nesterov=False, first=False):
    """One SGD step on one parameter, in place, exactly as ``torch.optim.SGD`` (dampening 0)::

        g = grad + weight_decay * data
        buffer = g (first step) or momentum * buffer + g      (only when momentum > 0)
        g = g + momentum * buffer if nesterov else buffer      (only when momentum > 0)
        data -= lr * g

    ``data``, ``grad`` and ``buffer`` are C-contiguous arrays of one shape and dtype (``buffer``
    is ignored without momentum; with ``first`` its old content is never read). The scalars are
    rounded to the arrays' dtype first, as NumPy does with ``dtype.type(value)``, so the result is
    bit for bit that of the whole-array NumPy expressions, without their five temporaries.
    """
    scalar = data.dtype.type
    _sgd_update(data.reshape(-1), grad.reshape(-1), buffer.reshape(-1), scalar(lr), scalar(momentum),
                scalar(weight_decay), bool(nesterov), bool(first))
