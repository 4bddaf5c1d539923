"""Rectified linear unit."""

import numpy as np

from .checks import as_float_array, check_dout
from .module import Module


class ReLU(Module):
    """``y = max(x, 0)``, elementwise, any shape.

    Gradient: ``dL/dx = dout * [x > 0]``. At exactly 0 the gradient is 0, as in PyTorch (the
    subgradient that agrees with the forward pass choosing 0 there).
    """

    per_sample = True

    def forward(self, x):
        x = as_float_array("ReLU", x, np.result_type(np.asarray(x).dtype, np.float32))
        mask = x > 0
        self.save_for_backward(mask=mask)
        return np.where(mask, x, 0).astype(x.dtype, copy=False)

    def backward(self, dout, need_input_grad=True):
        mask = self.saved()["mask"]
        if not need_input_grad:
            return None
        dout = np.asarray(dout)
        dout = check_dout("ReLU", dout, mask.shape, np.result_type(dout.dtype, np.float32))
        return dout * mask
