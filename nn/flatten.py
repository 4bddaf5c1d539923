"""Flatten all but the batch dimension."""

import numpy as np

from .checks import as_float_array, check_dout
from .module import Module


class Flatten(Module):
    """(N, d1, d2, ...) -> (N, d1*d2*...) in C order, as ``torch.nn.Flatten()``; backward reshapes back."""

    per_sample = True

    def forward(self, x):
        x = np.asarray(x)
        x = as_float_array("Flatten", x, np.result_type(x.dtype, np.float32))
        if x.ndim < 1:
            raise ValueError("Flatten: expected at least a batch dimension, got a scalar")
        self.save_for_backward(shape=x.shape)
        return x.reshape(x.shape[0], -1)

    def backward(self, dout, need_input_grad=True):
        shape = self.saved()["shape"]
        if not need_input_grad:
            return None
        dout = np.asarray(dout)
        n = shape[0]
        flat = int(np.prod(shape[1:], dtype=np.int64))
        dout = check_dout("Flatten", dout, (n, flat), np.result_type(dout.dtype, np.float32))
        return dout.reshape(shape)
