"""Inverted dropout."""

import numbers

import numpy as np

from .checks import as_float_array, check_dout
from .init import make_rng
from .module import Module


class Dropout(Module):
    """In training, zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)``.

    ``y = x * mask``, ``mask = keep / (1 - p)`` with ``keep ~ Bernoulli(1 - p)`` drawn per element,
    so that ``E[y] = x``: the expected activation is the same in training and in eval, where the
    layer is the identity (*inverted* dropout: the scaling happens in training, nothing at test time).

    Shape: any; ``y`` has the shape of ``x``. Input dtypes as ``ReLU``.

    Gradient: ``dL/dx = dout * mask``, with the very mask of the forward pass (kept for backward).

    The mask comes from the layer's own generator ``rng`` (a ``numpy.random.Generator``, or an int
    seed), uniform float64 draws ``u`` with ``keep = u >= p``: the same seed gives the same masks in
    the same order, whatever the input dtype, the backend or the number of threads. ``p = 1`` zeros
    everything, ``p = 0`` keeps everything (PyTorch's limits).
    """

    per_sample = True  # read for eval mode only (nn.execution slices large eval batches), where dropout is the identity

    def __init__(self, p=0.5, rng=None):
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
            raise ValueError(f"Dropout: dropout probability has to be between 0 and 1, but got {p!r}")
        self.p = float(p)
        self.rng = make_rng(rng)

    def forward(self, x):
        x = as_float_array("Dropout", x, np.result_type(np.asarray(x).dtype, np.float32))
        if not self.training:
            return x
        keep = self.rng.random(x.shape) >= self.p
        scale = 0.0 if self.p == 1 else 1.0 / (1.0 - self.p)
        mask = (keep * scale).astype(x.dtype)
        self.save_for_backward(mask=mask)
        return x * mask

    def backward(self, dout, need_input_grad=True):
        mask = self.saved()["mask"]
        if not need_input_grad:
            return None
        return check_dout("Dropout", dout, mask.shape, mask.dtype) * mask

    def extra_repr(self):
        return f"p={self.p}"
