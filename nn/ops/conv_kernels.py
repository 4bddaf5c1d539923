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
``kw - 1`` throw-away columns at the end of each row. A vertical stride ``sh > 1`` computes only
the rows it keeps, one segment per output row; a horizontal stride ``sw > 1`` computes every
column and keeps one in ``sw`` (so strided convolutions pay ``sw`` times the arithmetic; ``Conv2d``
sends them to im2col + BLAS when that is cheaper, see ``nn.conv``). Either way, conv output
(oy, ox) sits at ``oy * pitch + ox * sw`` in the scratch, and pooling reads its windows from
there (``pool_kernels``). The taps of one kernel row are summed in one expression
(``_add_kernel_row``), so the accumulator is loaded and stored once per kernel row, not per tap.

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
  dominate. Instead dconv is built in full on the stride-1 grid of the padded input, laid out
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
WINNER_MIN_ROW = 16


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
# Forward
# ---------------------------------------------------------------------------------------------

@numba.njit(cache=True, fastmath={"contract"})
def _conv_image(x, w, b, out, argmax, conv, width, pitch, rows, length, sh, sw, pool, relu, keep_argmax):
    """One image. x (C, Hp*Wp) padded and flat; conv (O, (rows-1)*pitch + length) scratch; out, argmax (O, PH, PW).

    ``rows`` segments of ``length`` stride-1 positions each: one long wide-row segment when
    ``sh == 1`` (``pitch = Wp``), else one per output row (``pitch = length``), row r reading input
    rows ``r * sh + i``. ``pool`` = (pkh, pkw, psh, psw).
    """
    channels = x.shape[0]
    out_channels, _, kh, _ = w.shape
    pkh, pkw, psh, psw = pool
    for o in range(out_channels):
        acc = conv[o]
        acc[:] = b[o]
        for c in range(channels):
            for i in range(kh):
                for r in range(rows):
                    _add_kernel_row(acc[r * pitch:], x[c], (r * sh + i) * width, w[o, c, i], length)
        pool_channel(acc, pitch, sw, out[o], argmax[o], pkh, pkw, psh, psw, relu, keep_argmax)


@numba.njit(cache=True)
def _forward_serial(x, w, b, out, argmax, width, pitch, rows, length, sh, sw, pool, relu, keep_argmax, chunks):
    # One scratch for every image (chunks: unused here).
    conv = np.empty((w.shape[0], (rows - 1) * pitch + length), dtype=x.dtype)
    for n in range(x.shape[0]):
        _conv_image(x[n], w, b, out[n], argmax[n], conv, width, pitch, rows, length, sh, sw, pool, relu,
                    keep_argmax)


@numba.njit(cache=True, parallel=True)
def _forward_parallel(x, w, b, out, argmax, width, pitch, rows, length, sh, sw, pool, relu, keep_argmax, chunks):
    n_images = x.shape[0]
    # A few chunks of consecutive images per thread, each with its own scratch: one allocation
    # per chunk rather than per image, and still enough chunks to even out the threads' loads.
    for chunk in numba.prange(chunks):
        conv = np.empty((w.shape[0], (rows - 1) * pitch + length), dtype=x.dtype)
        for n in range(chunk * n_images // chunks, (chunk + 1) * n_images // chunks):
            _conv_image(x[n], w, b, out[n], argmax[n], conv, width, pitch, rows, length, sh, sw, pool, relu,
                        keep_argmax)


# ---------------------------------------------------------------------------------------------
# Backward, dense (short window rows): dconv over the whole batch, correlations and full convolutions
# ---------------------------------------------------------------------------------------------

@numba.njit(cache=True)
def _scatter_image(start, size, dout, out, argmax, dconv, pitch, step, tap_offset, psh, psw, relu, pooled):
    """One image: ``dconv[:, start:start + size]`` <- each window's gradient at its winner (``scatter_channel``)."""
    for o in range(dout.shape[0]):
        segment = dconv[o, start:start + size]
        segment[:] = 0
        scatter_channel(segment, dout[o], out[o], argmax[o], pitch, step, tap_offset, psh, psw, relu, pooled)


@numba.njit(cache=True)
def _scatter_serial(dout, out, argmax, dconv, lead, pitch, step, tap_offset, psh, psw, relu, pooled):
    size = (dconv.shape[1] - lead) // dout.shape[0]
    dconv[:, :lead] = 0
    for n in range(dout.shape[0]):
        _scatter_image(lead + n * size, size, dout[n], out[n], argmax[n], dconv, pitch, step, tap_offset,
                       psh, psw, relu, pooled)


@numba.njit(cache=True, parallel=True)
def _scatter_parallel(dout, out, argmax, dconv, lead, pitch, step, tap_offset, psh, psw, relu, pooled):
    size = (dconv.shape[1] - lead) // dout.shape[0]
    dconv[:, :lead] = 0
    for n in numba.prange(dout.shape[0]):
        _scatter_image(lead + n * size, size, dout[n], out[n], argmax[n], dconv, pitch, step, tap_offset,
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


@numba.njit(cache=True, inline="always")
def _winner_corner(py, px, a, tap_row, tap_col, steps, pooled):
    """(row, column) in the padded input where the window of the winner of pooling window (py, px) starts.

    ``steps`` = (pool stride * conv stride, vertically and horizontally); ``tap_row``/``tap_col``
    map an argmax to its tap, already times the conv stride.
    """
    y, x = py * steps[0], px * steps[1]
    if pooled:
        y += tap_row[a]
        x += tap_col[a]
    return y, x


@numba.njit(cache=True, fastmath={"contract"})
def _winner_param_grad_channel(o, dout, out, argmax, xh, acc, db, cp, tap_row, tap_col, steps, relu, pooled):
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
                a = argmax[n, o, py, px] if pooled else 0
                y, x = _winner_corner(py, px, a, tap_row, tap_col, steps, pooled)
                start = x * cp
                for i in range(kh):
                    src = xh[n, y + i, start:start + run]
                    dst = acc[i]
                    for k in range(run):
                        dst[k] += g * src[k]
    db[o] += total


@numba.njit(cache=True)
def _winner_param_grad_serial(dout, out, argmax, xh, acc, db, cp, tap_row, tap_col, steps, relu, pooled):
    for o in range(dout.shape[1]):
        _winner_param_grad_channel(o, dout, out, argmax, xh, acc[o], db, cp, tap_row, tap_col, steps, relu, pooled)


@numba.njit(cache=True, parallel=True)
def _winner_param_grad_parallel(dout, out, argmax, xh, acc, db, cp, tap_row, tap_col, steps, relu, pooled):
    for o in numba.prange(dout.shape[1]):
        _winner_param_grad_channel(o, dout, out, argmax, xh, acc[o], db, cp, tap_row, tap_col, steps, relu, pooled)


@numba.njit(cache=True, fastmath={"contract"})
def _winner_input_grad_image(dout, out, argmax, wh, dxh, cp, tap_row, tap_col, steps, relu, pooled):
    """One image: dxh (Hp, Wp*cp) channels last <- for every winner, g * its kernel (wh (O, kh, kw*cp)) there."""
    kh, run = wh.shape[1], wh.shape[2]
    dxh[:] = 0
    for o in range(dout.shape[0]):
        for py in range(dout.shape[1]):
            for px in range(dout.shape[2]):
                if relu and not out[o, py, px] > 0:
                    continue
                g = dout[o, py, px]
                a = argmax[o, py, px] if pooled else 0
                y, x = _winner_corner(py, px, a, tap_row, tap_col, steps, pooled)
                start = x * cp
                for i in range(kh):
                    dst = dxh[y + i, start:start + run]
                    w_row = wh[o, i]
                    for k in range(run):
                        dst[k] += g * w_row[k]


@numba.njit(cache=True)
def _winner_input_grad_serial(dout, out, argmax, wh, dxh, cp, tap_row, tap_col, steps, relu, pooled):
    for n in range(dout.shape[0]):
        _winner_input_grad_image(dout[n], out[n], argmax[n], wh, dxh[n], cp, tap_row, tap_col, steps, relu, pooled)


@numba.njit(cache=True, parallel=True)
def _winner_input_grad_parallel(dout, out, argmax, wh, dxh, cp, tap_row, tap_col, steps, relu, pooled):
    for n in numba.prange(dout.shape[0]):
        _winner_input_grad_image(dout[n], out[n], argmax[n], wh, dxh[n], cp, tap_row, tap_col, steps, relu, pooled)


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


def conv_forward(x, weight, bias, stride=(1, 1), padding=(0, 0), relu=False, pool_kernel=(1, 1), pool_stride=(1, 1),
                 keep_argmax=True):
    """``maxpool(relu(conv2d(x, weight, bias, stride, padding)))``; ReLU only if ``relu``, 1 x 1 windows = no pool.

    Shapes: x (N, C, H, W), weight (O, C, kh, kw), bias (O,) or None -> out (N, O, PH, PW) (see
    ``stage_shape``) and argmax (N, O, PH, PW) int32, the in-window index ``i * pkw + j`` of each
    window's winner (after ReLU, first maximum on ties, exactly ``MaxPool2d``'s), or None if not
    ``keep_argmax`` or without pooling (inference and 1 x 1 windows need none).
    """
    n = x.shape[0]
    out_channels, _, kh, kw = weight.shape
    (hp, wp), (oh, ow), (ph_, pw_) = stage_shape(x.shape, weight.shape, stride, padding, pool_kernel, pool_stride)
    (sh, sw), (pkh, pkw) = stride, pool_kernel
    keep_argmax = keep_argmax and pkh * pkw > 1
    xp = _pad(x, padding)
    if sh == 1:  # one long wide-row segment
        rows, length, pitch = 1, (oh - 1) * wp + (ow - 1) * sw + 1, wp
    else:  # one segment per output row: the rows between them are never computed
        rows, length = oh, (ow - 1) * sw + 1
        pitch = length
    out = np.empty((n, out_channels, ph_, pw_), dtype=x.dtype)
    argmax = np.empty(out.shape if keep_argmax else (n, out_channels, 0, 0), dtype=np.int32)
    bias = _no_bias(weight) if bias is None else bias
    drive(_forward_serial, _forward_parallel, n, rows * length * weight.size * n,
          xp.reshape(n, xp.shape[1], hp * wp), np.ascontiguousarray(weight), bias, out, argmax, wp, pitch, rows,
          length, sh, sw, (pkh, pkw, *pool_stride), bool(relu), keep_argmax, min(n, 4 * numba.get_num_threads()))
    return out, (argmax if keep_argmax else None)


def conv_backward(dout, x, out, argmax, weight, weight_grad, bias_grad, stride=(1, 1), padding=(0, 0), relu=False,
                  pool_kernel=(1, 1), pool_stride=(1, 1), need_input_grad=True, buffers=None):
    """Backward of ``conv_forward``: accumulates into ``weight_grad`` and ``bias_grad``, returns dx.

    Shapes: dout, out (N, O, PH, PW) and argmax (the forward's, None without pooling); x (N, C, H, W)
    the forward input; weight and weight_grad (O, C, kh, kw); bias_grad (O,) or None. Returns dx
    (N, C, H, W), or None when ``need_input_grad`` is False (the first layer of a network: nobody
    needs d loss / d pixels). ``buffers``: a dict in which the large scratch arrays are kept from
    one call to the next. Long window rows (C * kw >= ``WINNER_MIN_ROW``) visit the winners only,
    short ones build the dense ``dconv`` (see the module docstring).
    """
    dout = np.ascontiguousarray(dout)
    n, channels, h, w = x.shape
    out_channels, _, kh, kw = weight.shape
    (hp, wp), (oh, ow), pooled_shape = stage_shape(x.shape, weight.shape, stride, padding, pool_kernel, pool_stride)
    if dout.shape != out.shape or out.shape != (n, out_channels) + pooled_shape:
        raise ValueError(f"conv_backward: expected dout and out of shape {(n, out_channels) + pooled_shape}, "
                         f"got {dout.shape} and {out.shape}")
    (sh, sw), (ph, pw), (pkh, pkw), (psh, psw) = stride, padding, pool_kernel, pool_stride
    pooled = pkh * pkw > 1
    if argmax is None:
        if pooled:
            raise ValueError("conv_backward: a pooled stage needs the forward's argmax")
        argmax = np.empty((n, out_channels, 0, 0), dtype=np.int32)
    db = _no_bias(weight) if bias_grad is None else bias_grad
    relu = bool(relu)
    if channels * kw >= WINNER_MIN_ROW:
        # Channels padded to a multiple of 8: a kernel row is then kw * cp >= 32 numbers, long enough
        # for the compiler's SIMD loop (with 30 it fell back to scalar code); the padding is zeros.
        cp = -(-channels // 8) * 8
        tap_row = np.repeat(np.arange(pkh), pkw) * sh  # argmax = i * pkw + j -> (i * sh, j * sw)
        tap_col = np.tile(np.arange(pkw), pkh) * sw
        steps = (psh * sh, psw * sw)
        work = int(dout.size) * kh * kw * cp  # an upper bound: one kernel's worth per winner
        xh = buffer(buffers, "x_channels_last", (n, hp, wp, cp), x.dtype)
        drive(_to_channels_last_serial, _to_channels_last_parallel, n, xh.size, np.ascontiguousarray(x), xh, ph, pw)
        acc = buffer(buffers, "weight_grad_channels_last", (out_channels, kh, kw * cp), x.dtype)
        drive(_winner_param_grad_serial, _winner_param_grad_parallel, out_channels, work,
              dout, out, argmax, xh.reshape(n, hp, wp * cp), acc, db, cp, tap_row, tap_col, steps, relu, pooled)
        weight_grad += acc.reshape(out_channels, kh, kw, cp)[..., :channels].transpose(0, 3, 1, 2)
        if not need_input_grad:
            return None
        wh = np.zeros((out_channels, kh, kw, cp), dtype=x.dtype)
        wh[..., :channels] = weight.transpose(0, 2, 3, 1)
        dxh = buffer(buffers, "dx_channels_last", (n, hp, wp, cp), x.dtype)
        drive(_winner_input_grad_serial, _winner_input_grad_parallel, n, work,
              dout, out, argmax, wh.reshape(out_channels, kh, kw * cp), dxh.reshape(n, hp, wp * cp), cp,
              tap_row, tap_col, steps, relu, pooled)
        return np.ascontiguousarray(dxh[:, ph:ph + h, pw:pw + w, :channels].transpose(0, 3, 1, 2))

    size = hp * wp
    lead = (kh - 1) * wp + (kw - 1)  # zeros before dconv, so the full convolution never reads before 0
    # Conv output (oy, ox) sits at oy * sh * wp + ox * sw of the stride-1 grid (zeros in between).
    tap_offset = (np.arange(pkh)[:, None] * sh * wp + np.arange(pkw) * sw).ravel()  # argmax -> offset
    dconv = buffer(buffers, "dconv", (out_channels, lead + n * size), x.dtype)
    drive(_scatter_serial, _scatter_parallel, n, dconv.size,
          dout, out, argmax, dconv, lead, sh * wp, sw, tap_offset, psh, psw, relu, pooled)
    # x and dconv hold the whole batch per channel, image after image (see the module docstring).
    if channels == 1 and ph == pw == 0:
        x_by_channel = np.ascontiguousarray(x).reshape(1, n * size)
    else:
        x_by_channel = buffer(buffers, "x_by_channel", (channels, n, hp, wp), x.dtype)
        if ph or pw:
            x_by_channel[...] = 0
        x_by_channel[:, :, ph:ph + h, pw:pw + w] = x.transpose(1, 0, 2, 3)
        x_by_channel = x_by_channel.reshape(channels, n * size)
    length = (n - 1) * size + (oh - 1) * sh * wp + (ow - 1) * sw + 1
    drive(_param_grad_serial, _param_grad_parallel, out_channels * channels * kh, weight.size * length,
          x_by_channel, dconv, weight_grad, db, wp, lead, length)
    if not need_input_grad:
        return None
    dx = np.empty((n, channels, size), dtype=x.dtype)
    drive(_input_grad_serial, _input_grad_parallel, n, weight.size * n * size,
          dconv, np.ascontiguousarray(weight), dx, wp, lead)
    dx = dx.reshape(n, channels, hp, wp)
    return dx if ph == pw == 0 else np.ascontiguousarray(dx[:, :, ph:ph + h, pw:pw + w])
