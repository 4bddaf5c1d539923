"""A trainable tensor: its value and the gradient of the loss with respect to it."""

import numpy as np


class Parameter:
    """A pair of arrays, ``data`` and ``grad``, of the same shape and dtype.

    ``grad`` starts at zero. Layers *accumulate* into it in ``backward`` (``grad += ...``), so
    gradients from several backward passes add up until ``zero_grad()``, as in PyTorch.

    ``requires_grad = False`` freezes the parameter: layers accumulate nothing into its ``grad``
    (which stays as it was) and optimizers leave it alone.
    """

    def __init__(self, data, requires_grad=True):
        data = np.array(data, copy=True)
        if not np.issubdtype(data.dtype, np.floating):
            raise TypeError(f"Parameter: expected a floating-point array, got dtype {data.dtype}")
        self.data = data
        self.grad = np.zeros_like(data)
        self.requires_grad = bool(requires_grad)

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self):
        return self.data.size

    def zero_grad(self):
        self.grad[...] = 0

    def astype(self, dtype):
        """Convert value and gradient to ``dtype`` in place of the old arrays."""
        self.data = self.data.astype(dtype)
        self.grad = self.grad.astype(dtype)
        return self

    def __repr__(self):
        frozen = "" if self.requires_grad else ", requires_grad=False"
        return f"Parameter(shape={self.shape}, dtype={self.dtype}{frozen})"

