"""numba kernels for the cross-entropy loss: log-softmax and the negative log-likelihood in one pass."""

import numba
import numpy as np


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
