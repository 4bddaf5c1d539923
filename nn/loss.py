"""Softmax, log-softmax and the cross-entropy loss on integer labels."""

import numpy as np

from .checks import as_float_array
from .module import Module


def log_softmax(logits, axis=-1):
    """``log_softmax(z)_i = z_i - log(sum_j exp(z_j))``, computed stably.

    Subtracting ``max(z)`` first (the log-sum-exp trick) changes nothing mathematically but keeps
    ``exp`` from overflowing: logits of 1e3 give finite results.
    """
    z = np.asarray(logits)
    z = z.astype(np.result_type(z.dtype, np.float32), copy=False)
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def softmax(logits, axis=-1):
    """``softmax(z)_i = exp(z_i) / sum_j exp(z_j)``: probabilities that sum to 1 along ``axis``."""
    z = np.asarray(logits)
    z = z.astype(np.result_type(z.dtype, np.float32), copy=False)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


class CrossEntropyLoss(Module):
    """Softmax followed by the negative log-likelihood of the true class.

    ``loss = crit(logits, labels)``; ``crit.backward()`` returns ``dL/dlogits``.

    Shape:
        logits (N, C) float, labels (N,) integers in [0, C) -> a scalar.

    Forward, with p = softmax(z)::

        mean:  L = -(1/N) sum_n log p[n, y_n]          sum: without the 1/N

    Gradient::

        dL/dz[n, c] = (p[n, c] - [c == y_n]) / N       (times the upstream scalar ``dout``)
    """

    def __init__(self, reduction="mean"):
        if reduction not in ("mean", "sum"):
            raise ValueError(f"CrossEntropyLoss: reduction must be 'mean' or 'sum', got {reduction!r}")
        self.reduction = reduction

    def forward(self, logits, labels):
        z = np.asarray(logits)
        z = as_float_array("CrossEntropyLoss", z, np.result_type(z.dtype, np.float32), ndim=2, name="logits")
        n, classes = z.shape
        if n == 0 or classes == 0:
            raise ValueError(f"CrossEntropyLoss: expected logits of shape (N, C) with N, C >= 1, got {z.shape}")
        labels = self.check_labels(labels, n, classes)
        logp = log_softmax(z, axis=1)
        picked = logp[np.arange(n), labels]
        loss = 0.0 - picked.sum()  # not -sum: a perfect prediction gives 0.0, not -0.0
        if self.reduction == "mean":
            loss = loss / n
        self.save_for_backward(logp=logp, labels=labels)
        return loss.astype(z.dtype)

    def backward(self, dout=1.0, need_input_grad=True):
        """d loss / d logits (N, C), scaled by the upstream scalar ``dout``; None if not ``need_input_grad``."""
        saved = self.saved()
        if not need_input_grad:
            return None
        logp, labels = saved["logp"], saved["labels"]
        dout = np.asarray(dout, dtype=logp.dtype)
        if dout.size != 1:
            raise ValueError(f"CrossEntropyLoss.backward: expected a scalar dout (the loss is a scalar), "
                             f"got shape {dout.shape}")
        n = logp.shape[0]
        grad = np.exp(logp)
        grad[np.arange(n), labels] -= 1
        if self.reduction == "mean":
            grad /= n
        return grad * dout.reshape(())

    @staticmethod
    def check_labels(labels, n, classes):
        """``labels`` as (n,) integers in [0, classes), or a clear error."""
        labels = np.asarray(labels)
        if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
            raise TypeError(f"CrossEntropyLoss: expected integer class labels, got dtype {labels.dtype}")
        if labels.shape != (n,):
            raise ValueError(f"CrossEntropyLoss: expected labels of shape ({n},) to match the logits' batch, "
                             f"got {labels.shape}")
        if n and (labels.min() < 0 or labels.max() >= classes):
            bad = labels[(labels < 0) | (labels >= classes)][0]
            raise ValueError(f"CrossEntropyLoss: labels must be in [0, {classes}), got {bad}")
        return labels.astype(np.intp)

    def extra_repr(self):
        return f"reduction={self.reduction!r}"
