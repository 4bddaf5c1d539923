"""The cross-entropy loss on the numba backend: ``CrossEntropyLoss``'s formulas in one compiled pass each way.

The formulas are those of ``nn.loss.CrossEntropyLoss`` (log-softmax, the mean or summed negative
log-likelihood, ``(softmax - one_hot) / N``); ``nn.ops.loss_kernels`` computes them row by row
without NumPy's temporaries.
"""

import numpy as np

from ..checks import as_float_array
from ..ops import loss_kernels


class CrossEntropyPlan:
    """How the numba backend runs one ``CrossEntropyLoss``: ``forward(logits, labels, training)``, ``backward``."""

    fused_layers = ()  # the loss itself keeps what the plan saved

    def __init__(self, loss):
        self.loss = loss

    def forward(self, logits, labels, training):
        z = np.asarray(logits)
        z = as_float_array("CrossEntropyLoss", z, np.result_type(z.dtype, np.float32), ndim=2, name="logits")
        n, classes = z.shape
        if n == 0 or classes == 0:
            raise ValueError(f"CrossEntropyLoss: expected logits of shape (N, C) with N, C >= 1, got {z.shape}")
        labels = self.loss.check_labels(labels, n, classes)
        logp, total = loss_kernels.cross_entropy_forward(z, labels)
        loss = np.asarray(0.0 + total)  # 0.0 + so that a perfect prediction gives 0.0, not -0.0
        if self.loss.reduction == "mean":
            loss = loss / n
        return loss.astype(z.dtype), (dict(logp=logp, labels=labels) if training else None)

    def backward(self, saved, dout=1.0, need_input_grad=True):
        if not need_input_grad:
            return None
        logp = saved["logp"]
        dout = np.asarray(dout, dtype=logp.dtype)
        if dout.size != 1:
            raise ValueError(f"CrossEntropyLoss.backward: expected a scalar dout (the loss is a scalar), "
                             f"got shape {dout.shape}")
        scale = (1.0 / logp.shape[0] if self.loss.reduction == "mean" else 1.0) * float(dout.reshape(()))
        return loss_kernels.cross_entropy_backward(logp, saved["labels"], scale)
