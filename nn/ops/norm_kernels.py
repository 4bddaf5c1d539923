"""numba kernels for training-mode batch normalization of (N, C, H, W) maps, (ReLU) included, per channel.

Each channel is one job (``prange`` over channels): its N * H * W values are summed by one
thread in the order the compiled loop fixes (``reassoc`` lets the compiler split a sum into
vector lanes: the order is set at compile time, not by the threads), so the batch statistics,
and everything after them, are the same bits at any thread count. Sums accumulate in float64
whatever the dtype. With pooling, each image's map is pooled while in the cache
(``nn.ops.pool_kernels``, as the convolution's kernels pool) and never stored. Formulas as ``nn.BatchNorm2d``::

    mu = (1/m) sum z,  var = (1/m) sum (z - mu)²,  s = 1 / sqrt(var + eps)
    x_hat = (z - mu) s,  y = relu(weight x_hat + bias),  out = maxpool(y) (optional)
    backward, g = dy [y > 0] (dy from the pooling's scatter):  dbias = sum g,  dweight = sum g x_hat,
                               dz = (weight s / m) (m g - dbias - x_hat dweight)
"""

import numba
import numpy as np

from .parallel import drive
from .pool_kernels import pool_channel, scatter_channel


@numba.njit(cache=True, inline="always", fastmath={"reassoc"})
def _forward_channel(z, c, eps, weight, bias, relu, x_hat, y, mean, var, inv_std, width, pool, out, argmax):
    n, _, size = z.shape
    m = n * size
    total = 0.0
    for i in range(n):
        for k in range(size):
            total += z[i, c, k]
    mu = total / m
    squares = 0.0
    for i in range(n):  # a second pass over the centred values: no cancellation (as the reference)
        for k in range(size):
            d = z[i, c, k] - mu
            squares += d * d
    v = squares / m
    mean[c], var[c] = mu, v
    # s in the maps' dtype, as the reference's 1 / np.sqrt(var + eps) computes it.
    s = z.dtype.type(1) / np.sqrt(z.dtype.type(v) + z.dtype.type(eps))
    inv_std[c] = s
    mu_t = z.dtype.type(mu)
    zero = z.dtype.type(0)
    wc, bc = weight[c], bias[c]
    plane = np.empty(size if out.shape[0] else 0, dtype=z.dtype)  # one image's map, when pooled
    pkh, pkw, psh, psw = pool
    for i in range(n):
        if out.shape[0]:  # pooled: the map only passes through ``plane``, as the convolution's kernels pool
            for k in range(size):
                t = (z[i, c, k] - mu_t) * s
                x_hat[i, c, k] = t
                plane[k] = t * wc + bc
            pool_channel(plane, width, out[i, c], argmax[i, c], pkh, pkw, psh, psw, relu, True)
        else:
            for k in range(size):
                t = (z[i, c, k] - mu_t) * s
                x_hat[i, c, k] = t
                o = t * wc + bc
                y[i, c, k] = o if (o > zero or not relu) else zero


@numba.njit(cache=True)
def _forward_serial(z, eps, weight, bias, relu, x_hat, y, mean, var, inv_std, width, pool, out, argmax):
    for c in range(z.shape[1]):
        _forward_channel(z, c, eps, weight, bias, relu, x_hat, y, mean, var, inv_std, width, pool, out, argmax)


@numba.njit(cache=True, parallel=True)
def _forward_parallel(z, eps, weight, bias, relu, x_hat, y, mean, var, inv_std, width, pool, out, argmax):
    for c in numba.prange(z.shape[1]):
        _forward_channel(z, c, eps, weight, bias, relu, x_hat, y, mean, var, inv_std, width, pool, out, argmax)


@numba.njit(cache=True, inline="always", fastmath={"reassoc"})
def _backward_channel(dy, y, x_hat, c, inv_std, weight, relu, weight_grad, bias_grad, need_input_grad, dz,
                      width, pool, tap_offset, pooled_dout, out, argmax):
    n, _, size = x_hat.shape
    m = n * size
    zero = x_hat.dtype.type(0)
    g_sum = 0.0
    g_x_hat_sum = 0.0
    pooled = out.shape[0] > 0
    plane = np.empty(size if pooled else 0, dtype=x_hat.dtype)
    _, _, psh, psw = pool
    for i in range(n):
        if pooled:  # the pooled output's gradient, to each window's winner, through the ReLU
            plane[:] = zero
            scatter_channel(plane, pooled_dout[i, c], out[i, c], argmax[i, c], width, tap_offset, psh, psw, relu, True)
            for k in range(size):
                g = plane[k]
                g_sum += g
                g_x_hat_sum += g * x_hat[i, c, k]
                if need_input_grad:
                    dz[i, c, k] = g  # kept for the second pass, which overwrites it
            continue
        for k in range(size):
            g = dy[i, c, k]
            g = g if (y[i, c, k] > zero or not relu) else zero
            g_sum += g
            g_x_hat_sum += g * x_hat[i, c, k]
    bias_grad[c] += g_sum
    weight_grad[c] += g_x_hat_sum
    if need_input_grad:
        scale = weight[c] * inv_std[c] / m
        g_sum_t, g_x_hat_sum_t = x_hat.dtype.type(g_sum), x_hat.dtype.type(g_x_hat_sum)
        m_t = x_hat.dtype.type(m)
        for i in range(n):
            for k in range(size):
                if pooled:
                    g = dz[i, c, k]
                else:
                    g = dy[i, c, k]
                    g = g if (y[i, c, k] > zero or not relu) else zero
                dz[i, c, k] = scale * (m_t * g - g_sum_t - x_hat[i, c, k] * g_x_hat_sum_t)


@numba.njit(cache=True)
def _backward_serial(dy, y, x_hat, inv_std, weight, relu, weight_grad, bias_grad, need_input_grad, dz,
                     width, pool, tap_offset, pooled_dout, out, argmax):
    for c in range(x_hat.shape[1]):
        _backward_channel(dy, y, x_hat, c, inv_std, weight, relu, weight_grad, bias_grad, need_input_grad, dz,
                          width, pool, tap_offset, pooled_dout, out, argmax)


@numba.njit(cache=True, parallel=True)
def _backward_parallel(dy, y, x_hat, inv_std, weight, relu, weight_grad, bias_grad, need_input_grad, dz,
                       width, pool, tap_offset, pooled_dout, out, argmax):
    for c in numba.prange(x_hat.shape[1]):
        _backward_channel(dy, y, x_hat, c, inv_std, weight, relu, weight_grad, bias_grad, need_input_grad, dz,
                          width, pool, tap_offset, pooled_dout, out, argmax)


def batchnorm_forward(z, eps, weight, bias, relu, pool_kernel=None, pool_stride=None):
    """Training-mode ``maxpool(relu(batchnorm2d(z)))`` (ReLU only if ``relu``, pooling only with a ``pool_kernel``)
    with the batch's statistics.

    z (N, C, H, W); weight, bias (C,) in z's dtype (ones and zeros for ``affine=False``) ->
    (out, argmax, x_hat, mean, var, inv_std): out (N, C, H, W), or (N, C, PH, PW) pooled with argmax
    (N, C, PH, PW) int32 as ``nn.ops.pool_kernels`` makes it (else None); x_hat (N, C, H, W); mean
    and var (C,) float64 (the biased variance); inv_std (C,) in z's dtype.
    """
    z = np.ascontiguousarray(z)
    n, channels, h, w = z.shape
    x_hat = np.empty_like(z)
    mean, var = np.empty(channels), np.empty(channels)
    inv_std = np.empty(channels, dtype=z.dtype)
    if pool_kernel is None:
        pool, y = (1, 1, 1, 1), np.empty_like(z)
        out, argmax = np.empty((0, 0, 0, 0), dtype=z.dtype), np.empty((0, 0, 0, 0), dtype=np.int32)
    else:
        pool, y = (*pool_kernel, *pool_stride), np.empty((0, 0, 0, 0), dtype=z.dtype)
        out_shape = (n, channels, (h - pool[0]) // pool[2] + 1, (w - pool[1]) // pool[3] + 1)
        out, argmax = np.empty(out_shape, dtype=z.dtype), np.empty(out_shape, dtype=np.int32)
    drive(_forward_serial, _forward_parallel, channels, 3 * z.size, _planes(z), float(eps), weight, bias,
          bool(relu), _planes(x_hat), _planes(y), mean, var, inv_std, w, pool, out, argmax)
    if pool_kernel is None:
        return y, None, x_hat, mean, var, inv_std
    return out, argmax, x_hat, mean, var, inv_std


def batchnorm_backward(dout, out, argmax, x_hat, inv_std, weight, weight_grad, bias_grad, relu, pool_kernel=None,
                       pool_stride=None, need_input_grad=True):
    """Backward of ``batchnorm_forward``: accumulates into ``weight_grad`` and ``bias_grad`` (C,) and returns
    dz (N, C, H, W), or None if not ``need_input_grad``. ``out`` and ``argmax`` are the forward's (the
    output's sign is the ReLU mask when ``relu``, as in ``nn.ops.pool_kernels``)."""
    dout = np.ascontiguousarray(dout)
    dz = np.empty_like(x_hat) if need_input_grad else np.empty((0, 0, 0, 0), dtype=x_hat.dtype)
    width = x_hat.shape[3]
    empty = np.empty((0, 0, 0, 0), dtype=x_hat.dtype)
    # The kernels take both forms, full-size planes (N, C, H * W) and pooled maps (N, C, PH, PW); one is empty.
    if pool_kernel is None:
        pool, tap_offset = (1, 1, 1, 1), np.zeros(1, dtype=np.int64)
        dy, y, pooled_dout, pooled_out = _planes(dout), _planes(out), empty, empty
        argmax = np.empty((0, 0, 0, 0), dtype=np.int32)
    else:
        pool = (*pool_kernel, *pool_stride)
        tap_offset = np.array([i * width + j for i in range(pool[0]) for j in range(pool[1])], dtype=np.int64)
        dy, y, pooled_dout, pooled_out = _planes(empty), _planes(empty), dout, out
    drive(_backward_serial, _backward_parallel, x_hat.shape[1], 3 * x_hat.size, dy, y, _planes(x_hat),
          inv_std, weight, bool(relu), weight_grad, bias_grad, bool(need_input_grad), _planes(dz),
          width, pool, tap_offset, pooled_dout, pooled_out, argmax)
    return dz if need_input_grad else None


def _planes(maps):
    """(N, C, H, W) -> the (N, C, H * W) view: each channel's plane as one contiguous run per image."""
    n, c, h, w = maps.shape
    return maps.reshape(n, c, h * w)
