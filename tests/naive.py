"""Naive float64 references for the tests, written straight from the definitions.

Nested Python loops over every output position: slow, obviously correct, and independent of the
im2col / argmax machinery in ``nn``. Only NumPy is used, so any test may import this file.
Keep the shapes small when calling these.
"""

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
