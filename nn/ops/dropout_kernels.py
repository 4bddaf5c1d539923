"""numba kernel for training-mode dropout: the mask from given uniform draws, and its product, in one pass.

``mask = scale if u >= p else 0`` (``scale = 1 / (1 - p)``, 0 for ``p = 1``) in the input's dtype,
``y = x * mask``: exactly ``nn.Dropout``'s, given the same draws ``u`` (which the caller takes from
the layer's own generator, as the layer does). Elementwise, so the same bits at any thread count.
"""

import numba
import numpy as np


@numba.njit(cache=True)
def _dropout_kernel(x, u, p, scale, y, mask):
    s = x.dtype.type(scale)
    zero = x.dtype.type(0)
    for i in range(x.size):
        k = s if u[i] >= p else zero
        mask[i] = k
        y[i] = x[i] * k


def dropout_forward(x, u, p):
    """x, u (float64 uniform draws) of one shape -> (y, mask), both of x's shape and dtype."""
    x = np.ascontiguousarray(x)
    scale = 0.0 if p == 1 else 1.0 / (1.0 - p)
    y, mask = np.empty_like(x), np.empty_like(x)
    _dropout_kernel(x.reshape(-1), np.ascontiguousarray(u).reshape(-1), float(p), scale, y.reshape(-1),
                    mask.reshape(-1))
    return y, mask
