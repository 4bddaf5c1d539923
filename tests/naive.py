"""Naive float64 references for the tests, written straight from the definitions.

Nested Python loops over every output position: slow, obviously correct, and independent of the
im2col / argmax machinery in ``nn``. Only NumPy is used, so any test may import this file.
Keep the shapes small when calling these.
"""

import math

import numpy as np


def _pair(value):
    return (value, value) if np.isscalar(value) else tuple(value)


def _padded(x, padding):
    ph, pw = _pair(padding)
    return np.pad(np.asarray(x, dtype=np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))


def naive_conv2d_forward(x, w, b, stride, padding):
    """x (N, C, H, W), w (O, C, kh, kw), b (O,) or None -> y (N, O, out_h, out_w).

    ``y[n, o, oy, ox] = b[o] + sum(x_pad[n, :, oy*sh : oy*sh + kh, ox*sw : ox*sw + kw] * w[o])``.
    """
    sh, sw = _pair(stride)
    x_pad = _padded(x, padding)
    w = np.asarray(w, dtype=np.float64)
    n_images, out_channels = x_pad.shape[0], w.shape[0]
    kh, kw = w.shape[2:]
    out_h = (x_pad.shape[2] - kh) // sh + 1
    out_w = (x_pad.shape[3] - kw) // sw + 1
    y = np.zeros((n_images, out_channels, out_h, out_w))
    for n in range(n_images):
        for o in range(out_channels):
            for oy in range(out_h):
                for ox in range(out_w):
                    window = x_pad[n, :, oy * sh:oy * sh + kh, ox * sw:ox * sw + kw]
                    y[n, o, oy, ox] = np.sum(window * w[o]) + (0.0 if b is None else b[o])
    return y


def naive_conv2d_backward(x, w, dout, stride, padding):
    """Gradients of ``sum(naive_conv2d_forward(x, w, b, ...) * dout)``: returns (dx, dw, db).

    Each output element ``y[n, o, oy, ox]`` is a sum of ``window * w[o]`` plus ``b[o]``, so its
    upstream gradient ``g = dout[n, o, oy, ox]`` adds ``g * w[o]`` to the window of dx_pad,
    ``g * window`` to dw[o] and ``g`` to db[o]. The padding's share of dx_pad is cropped away.
    """
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    x_pad = _padded(x, padding)
    w = np.asarray(w, dtype=np.float64)
    dout = np.asarray(dout, dtype=np.float64)
    kh, kw = w.shape[2:]
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros_like(w)
    db = np.zeros(w.shape[0])
    n_images, out_channels, out_h, out_w = dout.shape
    for n in range(n_images):
        for o in range(out_channels):
            for oy in range(out_h):
                for ox in range(out_w):
                    g = dout[n, o, oy, ox]
                    rows, cols = slice(oy * sh, oy * sh + kh), slice(ox * sw, ox * sw + kw)
                    dx_pad[n, :, rows, cols] += g * w[o]
                    dw[o] += g * x_pad[n, :, rows, cols]
                    db[o] += g
    h, w_size = x_pad.shape[2] - 2 * ph, x_pad.shape[3] - 2 * pw
    return dx_pad[:, :, ph:ph + h, pw:pw + w_size], dw, db


def _first_max_position(window):
    """(i, j) of the first maximum of a 2-D window in row-major order (strict > keeps the first)."""
    best, best_position = window[0, 0], (0, 0)
    for i in range(window.shape[0]):
        for j in range(window.shape[1]):
            if window[i, j] > best:
                best, best_position = window[i, j], (i, j)
    return best_position


def naive_maxpool2d_forward(x, kernel_size, stride=None):
    """x (N, C, H, W) -> y (N, C, out_h, out_w), ``y[n, c, oy, ox]`` = max of window (oy, ox)."""
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(kernel_size if stride is None else stride)
    x = np.asarray(x, dtype=np.float64)
    n_images, channels, h, w = x.shape
    out_h, out_w = (h - kh) // sh + 1, (w - kw) // sw + 1
    y = np.zeros((n_images, channels, out_h, out_w))
    for n in range(n_images):
        for c in range(channels):
            for oy in range(out_h):
                for ox in range(out_w):
                    window = x[n, c, oy * sh:oy * sh + kh, ox * sw:ox * sw + kw]
                    i, j = _first_max_position(window)
                    y[n, c, oy, ox] = window[i, j]
    return y


def naive_maxpool2d_backward(x, dout, kernel_size, stride=None):
    """dx (N, C, H, W): each window adds its ``dout`` to its first maximum, and to nothing else."""
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(kernel_size if stride is None else stride)
    x = np.asarray(x, dtype=np.float64)
    dout = np.asarray(dout, dtype=np.float64)
    dx = np.zeros_like(x)
    n_images, channels, out_h, out_w = dout.shape
    for n in range(n_images):
        for c in range(channels):
            for oy in range(out_h):
                for ox in range(out_w):
                    window = x[n, c, oy * sh:oy * sh + kh, ox * sw:ox * sw + kw]
                    i, j = _first_max_position(window)
                    dx[n, c, oy * sh + i, ox * sw + j] += dout[n, c, oy, ox]
    return dx


# -- activations, average pooling, batch normalization, dropout ------------------------------------

def _elementwise(function, x):
    """``function`` applied to every element of ``x`` in turn, in float64 Python arithmetic."""
    x = np.asarray(x, dtype=np.float64)
    return np.array([function(float(v)) for v in x.reshape(-1)]).reshape(x.shape)


def naive_sigmoid_forward(x):
    """``1 / (1 + e^(-x))`` per element (``e^x / (1 + e^x)`` for negative x, where e^(-x) could overflow)."""
    return _elementwise(lambda v: 1 / (1 + math.exp(-v)) if v >= 0 else math.exp(v) / (1 + math.exp(v)), x)


def naive_sigmoid_backward(x, dout):
    """``dout * σ(x) (1 − σ(x))`` per element."""
    s = naive_sigmoid_forward(x)
    return np.asarray(dout, dtype=np.float64) * _elementwise(lambda v: v * (1 - v), s)


def naive_tanh_forward(x):
    """``(e^x − e^(−x)) / (e^x + e^(−x))`` per element, written through e^(−2|x|) so it cannot overflow."""
    def tanh(v):
        e = math.exp(-2 * abs(v))
        return math.copysign((1 - e) / (1 + e), v)
    return _elementwise(tanh, x)


def naive_tanh_backward(x, dout):
    """``dout * (1 − tanh(x)²)`` per element."""
    return np.asarray(dout, dtype=np.float64) * _elementwise(lambda v: 1 - v * v, naive_tanh_forward(x))


def naive_leaky_relu_forward(x, negative_slope):
    return _elementwise(lambda v: v if v > 0 else negative_slope * v, x)


def naive_leaky_relu_backward(x, dout, negative_slope):
    """``dout`` where x > 0, ``negative_slope * dout`` where x <= 0 (0 included, as PyTorch)."""
    return np.asarray(dout, dtype=np.float64) * _elementwise(lambda v: 1.0 if v > 0 else negative_slope, x)


def _pooled_count(size, kernel, stride, padding, ceil_mode):
    """Windows along one axis; with ``ceil_mode`` a partial last window counts if it starts before the right padding."""
    count = math.floor((size + 2 * padding - kernel) / stride) + 1
    if ceil_mode:
        count = math.ceil((size + 2 * padding - kernel) / stride) + 1
        if (count - 1) * stride >= size + padding:
            count -= 1
    return count


def _avgpool_windows(shape, kernel_size, stride, padding, ceil_mode):
    """((out_h, out_w), [(n, c, oy, ox, cells), ...]): ``cells`` the (y, x) of a window, unpadded coordinates."""
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(kernel_size if stride is None else stride)
    ph, pw = _pair(padding)
    n_images, channels, h, w = shape
    out_h, out_w = _pooled_count(h, kh, sh, ph, ceil_mode), _pooled_count(w, kw, sw, pw, ceil_mode)
    windows = [(n, c, oy, ox, [(oy * sh + i - ph, ox * sw + j - pw) for i in range(kh) for j in range(kw)])
               for n in range(n_images) for c in range(channels) for oy in range(out_h) for ox in range(out_w)]
    return (out_h, out_w), windows


def _avgpool_divisor(cells, shape, padding, count_include_pad, divisor_override):
    """The override; else the cells inside the padded input (``count_include_pad``) or inside the input."""
    if divisor_override is not None:
        return divisor_override
    h, w = shape[2:]
    ph, pw = _pair(padding) if count_include_pad else (0, 0)
    return sum(-ph <= y < h + ph and -pw <= x < w + pw for y, x in cells)


def naive_avgpool2d_forward(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                            divisor_override=None):
    """``y[n, c, oy, ox]`` = the sum of the window's elements inside x (padding adds zeros) / the divisor."""
    x = np.asarray(x, dtype=np.float64)
    h, w = x.shape[2:]
    out_shape, windows = _avgpool_windows(x.shape, kernel_size, stride, padding, ceil_mode)
    y = np.zeros(x.shape[:2] + out_shape)
    for n, c, oy, ox, cells in windows:
        total = sum(x[n, c, i, j] for i, j in cells if 0 <= i < h and 0 <= j < w)
        y[n, c, oy, ox] = total / _avgpool_divisor(cells, x.shape, padding, count_include_pad, divisor_override)
    return y


def naive_avgpool2d_backward(x_shape, dout, kernel_size, stride=None, padding=0, ceil_mode=False,
                             count_include_pad=True, divisor_override=None):
    """dx: each window gives every element of it inside x the share ``dout / divisor``."""
    dout = np.asarray(dout, dtype=np.float64)
    h, w = x_shape[2:]
    dx = np.zeros(x_shape)
    for n, c, oy, ox, cells in _avgpool_windows(x_shape, kernel_size, stride, padding, ceil_mode)[1]:
        share = dout[n, c, oy, ox] / _avgpool_divisor(cells, x_shape, padding, count_include_pad, divisor_override)
        for i, j in cells:
            if 0 <= i < h and 0 <= j < w:
                dx[n, c, i, j] += share
    return dx


def _channel_values(x, c):
    """Every element of channel ``c`` of x (N, C) or (N, C, L) or (N, C, H, W), as a flat list."""
    return list(np.asarray(x, dtype=np.float64)[:, c].reshape(-1))


def naive_batchnorm_statistics(x):
    """Per channel c: (mean, biased variance, unbiased variance) of its m = N * (spatial size) values."""
    x = np.asarray(x, dtype=np.float64)
    stats = []
    for c in range(x.shape[1]):
        values = _channel_values(x, c)
        m = len(values)
        mean = sum(values) / m
        squares = sum((v - mean) ** 2 for v in values)
        stats.append((mean, squares / m, squares / (m - 1)))
    return np.array(stats).T  # three rows: mean, biased variance, unbiased variance


def naive_batchnorm_forward(x, gamma, beta, eps, mean=None, var=None):
    """``y = γ (x − μ) / √(σ² + ε) + β`` per channel, with the batch's μ, σ² (biased) unless given."""
    x = np.asarray(x, dtype=np.float64)
    if mean is None:
        mean, var, _ = naive_batchnorm_statistics(x)
    y = np.empty_like(x)
    for c in range(x.shape[1]):
        y[:, c] = gamma[c] * (x[:, c] - mean[c]) / math.sqrt(var[c] + eps) + beta[c]
    return y


def naive_batchnorm_backward(x, dout, gamma, eps):
    """(dx, dγ, dβ) of training-mode batch norm, by the chain rule through the graph, node by node.

    Per channel, with m values: x̂ = (x − μ) · s, s = (σ² + ε)^(−1/2), σ² = (1/m) Σ (x − μ)².
    dx̂ = dout γ; dσ² = Σ dx̂ (x − μ) · (−1/2) s³; dμ = −s Σ dx̂ + dσ² · (−2/m) Σ (x − μ);
    dx = dx̂ s + dσ² · 2 (x − μ) / m + dμ / m; dγ = Σ dout x̂; dβ = Σ dout. The compact formula
    ``nn.BatchNorm2d`` uses is not used here: this is the graph, edge by edge, as the study page draws it.
    """
    x = np.asarray(x, dtype=np.float64)
    dout = np.asarray(dout, dtype=np.float64)
    dx, dgamma, dbeta = np.empty_like(x), np.zeros(x.shape[1]), np.zeros(x.shape[1])
    for c in range(x.shape[1]):
        xc, gc = x[:, c], dout[:, c]
        m = xc.size
        mean = sum(_channel_values(x, c)) / m
        centered = xc - mean
        var = sum(v * v for v in centered.reshape(-1)) / m
        s = 1 / math.sqrt(var + eps)
        x_hat = centered * s
        dx_hat = gc * gamma[c]
        dvar = np.sum(dx_hat * centered) * -0.5 * s ** 3
        dmean = -s * np.sum(dx_hat) + dvar * -2 / m * np.sum(centered)
        dx[:, c] = dx_hat * s + dvar * 2 * centered / m + dmean / m
        dgamma[c] = np.sum(gc * x_hat)
        dbeta[c] = np.sum(gc)
    return dx, dgamma, dbeta


def naive_dropout_forward(x, keep, p):
    """``x / (1 − p)`` where ``keep`` is True, 0 elsewhere (every element dropped if p = 1)."""
    x = np.asarray(x, dtype=np.float64)
    return np.array([v / (1 - p) if k and p < 1 else 0.0 for v, k in zip(x.reshape(-1), np.reshape(keep, -1))]
                    ).reshape(x.shape)
# Optimizers and schedules, one coordinate at a time, written from each paper's formulas with Python
# floats: the bias-corrected moments of Adam are formed explicitly, as the paper writes them.

def naive_sgd(p0, grads, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    """Parameter after each step of SGD (PyTorch's rule, dampening included), for a flat ``p0``."""
    p, buf, history = [float(v) for v in np.ravel(p0)], [None] * np.size(p0), []
    for grad in grads:
        for k, g in enumerate(np.ravel(grad)):
            d = g + weight_decay * p[k]
            if momentum:
                buf[k] = d if buf[k] is None else momentum * buf[k] + (1 - dampening) * d
                d = d + momentum * buf[k] if nesterov else buf[k]
            p[k] -= lr * d
        history.append(np.reshape(p, np.shape(p0)))
    return history


def naive_adam(p0, grads, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, decoupled=False):
    """Adam (Kingma & Ba, Algorithm 1): m_hat = m / (1 - beta1^t), v_hat = v / (1 - beta2^t),
    p -= lr * m_hat / (sqrt(v_hat) + eps); AdamW first shrinks p by (1 - lr * weight_decay)."""
    beta1, beta2 = betas
    n = np.size(p0)
    p, m, v, v_max, history = [float(x) for x in np.ravel(p0)], [0.0] * n, [0.0] * n, [0.0] * n, []
    for t, grad in enumerate(grads, start=1):
        for k, g in enumerate(np.ravel(grad)):
            if decoupled:
                p[k] *= 1 - lr * weight_decay
            else:
                g = g + weight_decay * p[k]
            m[k] = beta1 * m[k] + (1 - beta1) * g
            v[k] = beta2 * v[k] + (1 - beta2) * g * g
            v_max[k] = max(v_max[k], v[k])
            m_hat = m[k] / (1 - beta1 ** t)
            v_hat = (v_max[k] if amsgrad else v[k]) / (1 - beta2 ** t)
            p[k] -= lr * m_hat / (v_hat ** 0.5 + eps)
        history.append(np.reshape(p, np.shape(p0)))
    return history


def naive_rmsprop(p0, grads, lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
    """RMSprop: s = alpha s + (1 - alpha) g^2, p -= lr g / (sqrt(s) + eps); centered, s minus the squared mean g."""
    n = np.size(p0)
    p, s, a, b, history = [float(x) for x in np.ravel(p0)], [0.0] * n, [0.0] * n, [0.0] * n, []
    for grad in grads:
        for k, g in enumerate(np.ravel(grad)):
            g = g + weight_decay * p[k]
            s[k] = alpha * s[k] + (1 - alpha) * g * g
            a[k] = alpha * a[k] + (1 - alpha) * g
            denom = ((s[k] - a[k] ** 2) if centered else s[k]) ** 0.5 + eps
            if momentum:
                b[k] = momentum * b[k] + g / denom
                p[k] -= lr * b[k]
            else:
                p[k] -= lr * g / denom
        history.append(np.reshape(p, np.shape(p0)))
    return history


def naive_adagrad(p0, grads, lr, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10):
    """Adagrad: s += g^2, p -= lr / (1 + (t - 1) lr_decay) * g / (sqrt(s) + eps)."""
    p, s, history = [float(x) for x in np.ravel(p0)], [initial_accumulator_value] * np.size(p0), []
    for t, grad in enumerate(grads, start=1):
        for k, g in enumerate(np.ravel(grad)):
            g = g + weight_decay * p[k]
            s[k] += g * g
            p[k] -= lr / (1 + (t - 1) * lr_decay) * g / (s[k] ** 0.5 + eps)
        history.append(np.reshape(p, np.shape(p0)))
    return history


def naive_step_lr(base_lr, epochs, milestones, gamma):
    """lr of each epoch: base_lr times gamma once per milestone already reached (StepLR: every k-th epoch)."""
    return [base_lr * gamma ** sum(1 for m in milestones if m <= e) for e in range(epochs)]


def naive_cosine_lr(base_lr, epochs, T_max, eta_min=0.0):
    """lr of each epoch on the cosine: eta_min + (base_lr - eta_min) (1 + cos(pi e / T_max)) / 2."""
    return [eta_min + (base_lr - eta_min) * (1 + np.cos(np.pi * e / T_max)) / 2 for e in range(epochs)]
