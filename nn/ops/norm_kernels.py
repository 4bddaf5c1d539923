"""numba kernels for training-mode batch normalization of (N, C, H, W) maps, (ReLU) included, per channel.

Each channel is one job (``prange`` over channels): its N * H * W values are summed by one
thread in the order the compiled loop fixes (``reassoc`` lets the compiler split a sum into
vector lanes: the order is set at compile time, not by the threads), so the batch statistics,
and everything after them, are the same bits at any thread count. Sums accumulate in float64
whatever the dtype. Formulas as ``nn.BatchNorm2d``::

    mu = (1/m) sum z,  var = (1/m) sum (z - mu)²,  s = 1 / sqrt(var + eps)
    x_hat = (z - mu) s,  y = relu(weight x_hat + bias)
    backward, g = dy [y > 0]:  dbias = sum g,  dweight = sum g x_hat,
                               dz = (weight s / m) (m g - dbias - x_hat dweight)
"""

import numba
import numpy as np

from .parallel import drive


@numba.njit(cache=True, inline="always", fastmath={"reassoc"})
def _forward_channel(z, c, eps, weight, bias, relu, x_hat, y, mean, var, inv_std):
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
    for i in range(n):
        for k in range(size):
            t = (z[i, c, k] - mu_t) * s
            x_hat[i, c, k] = t
            o = t * wc + bc
            y[i, c, k] = o if (o > zero or not relu) else zero


@numba.njit(cache=True)
def _forward_serial(z, eps, weight, bias, relu, x_hat, y, mean, var, inv_std):
    for c in range(z.shape[1]):
        _forward_channel(z, c, eps, weight, bias, relu, x_hat, y, mean, var, inv_std)


@numba.njit(cache=True, parallel=True)
def _forward_parallel(z, eps, weight, bias, relu, x_hat, y, mean, var, inv_std):
    for c in numba.prange(z.shape[1]):
        _forward_channel(z, c, eps, weight, bias, relu, x_hat, y, mean, var, inv_std)


@numba.njit(cache=True, inline="always", fastmath={"reassoc"})
def _backward_channel(dy, y, x_hat, c, inv_std, weight, relu, weight_grad, bias_grad, need_input_grad, dz):
    n, _, size = dy.shape
    m = n * size
    zero = dy.dtype.type(0)
    g_sum = 0.0
    g_x_hat_sum = 0.0
    for i in range(n):
        for k in range(size):
            g = dy[i, c, k]
            g = g if (y[i, c, k] > zero or not relu) else zero
            g_sum += g
            g_x_hat_sum += g * x_hat[i, c, k]
    bias_grad[c] += g_sum
    weight_grad[c] += g_x_hat_sum
    if need_input_grad:
        scale = weight[c] * inv_std[c] / m
        g_sum_t, g_x_hat_sum_t = dy.dtype.type(g_sum), dy.dtype.type(g_x_hat_sum)
        m_t = dy.dtype.type(m)
        for i in range(n):
            for k in range(size):
                g = dy[i, c, k]
                g = g if (y[i, c, k] > zero or not relu) else zero
                dz[i, c, k] = scale * (m_t * g - g_sum_t - x_hat[i, c, k] * g_x_hat_sum_t)


@numba.njit(cache=True)
def _backward_serial(dy, y, x_hat, inv_std, weight, relu, weight_grad, bias_grad, need_input_grad, dz):
    for c in range(dy.shape[1]):
        _backward_channel(dy, y, x_hat, c, inv_std, weight, relu, weight_grad, bias_grad, need_input_grad, dz)


@numba.njit(cache=True, parallel=True)
def _backward_parallel(dy, y, x_hat, inv_std, weight, relu, weight_grad, bias_grad, need_input_grad, dz):
    for c in numba.prange(dy.shape[1]):
        _backward_channel(dy, y, x_hat, c, inv_std, weight, relu, weight_grad, bias_grad, need_input_grad, dz)


def batchnorm_forward(z, eps, weight, bias, relu):
    """Training-mode ``relu(batchnorm2d(z))`` (ReLU only if ``relu``) with the batch's statistics.

    z (N, C, H, W); weight, bias (C,) in z's dtype (ones and zeros for ``affine=False``) ->
    (y, x_hat, mean, var, inv_std): y and x_hat (N, C, H, W), mean and var (C,) float64 (the
    biased variance), inv_std (C,) in z's dtype.
    """
    z = np.ascontiguousarray(z)
    channels = z.shape[1]
    x_hat, y = np.empty_like(z), np.empty_like(z)
    mean, var = np.empty(channels), np.empty(channels)
    inv_std = np.empty(channels, dtype=z.dtype)
    drive(_forward_serial, _forward_parallel, channels, 3 * z.size, _planes(z), float(eps), weight, bias,
          bool(relu), _planes(x_hat), _planes(y), mean, var, inv_std)
    return y, x_hat, mean, var, inv_std


def batchnorm_backward(dy, y, x_hat, inv_std, weight, weight_grad, bias_grad, relu, need_input_grad=True):
    """Backward of ``batchnorm_forward``: accumulates into ``weight_grad`` and ``bias_grad`` (C,) and
    returns dz (N, C, H, W), or None if not ``need_input_grad``. ``y`` is the forward output (its sign
    is the ReLU mask when ``relu``)."""
    dy = np.ascontiguousarray(dy)
    dz = np.empty_like(dy) if need_input_grad else np.empty((0, 0, 0), dtype=dy.dtype)
    drive(_backward_serial, _backward_parallel, dy.shape[1], 3 * dy.size, _planes(dy), _planes(y), _planes(x_hat),
          inv_std, weight, bool(relu), weight_grad, bias_grad, bool(need_input_grad),
          _planes(dz) if need_input_grad else dz)
    return dz if need_input_grad else None


def _planes(maps):
    """(N, C, H, W) -> the (N, C, H * W) view: each channel's plane as one contiguous run per image."""
    return maps.reshape(maps.shape[0], maps.shape[1], -1)
