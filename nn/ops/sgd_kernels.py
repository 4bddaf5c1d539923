"""numba kernel for the SGD update: PyTorch's rule for one parameter, in one pass and without temporaries."""

import numba


@numba.njit(cache=True)
def _sgd_update(data, grad, buf, lr, momentum, weight_decay, nesterov, first):
    # No fastmath: each operation rounds exactly as NumPy's whole-array version does, in the
    # same order, so this gives the same bits as nn.optim.SGD's NumPy code.
    for k in range(data.shape[0]):
        g = grad[k]
        if weight_decay != 0:
            g = g + weight_decay * data[k]
        if momentum != 0:
            b = g if first else momentum * buf[k] + g
            buf[k] = b
            g = g + momentum * b if nesterov else b
        data[k] = data[k] - lr * g


def sgd_update(data, grad, buffer, lr, momentum=0.0, weight_decay=0.0, nesterov=False, first=False):
    """One SGD step on one parameter, in place, exactly as ``torch.optim.SGD`` (dampening 0)::

        g = grad + weight_decay * data
        buffer = g (first step) or momentum * buffer + g      (only when momentum > 0)
        g = g + momentum * buffer if nesterov else buffer      (only when momentum > 0)
        data -= lr * g

    ``data``, ``grad`` and ``buffer`` are C-contiguous arrays of one shape and dtype (``buffer``
    is ignored without momentum; with ``first`` its old content is never read). The scalars are
    rounded to the arrays' dtype first, as NumPy does with ``dtype.type(value)``, so the result is
    bit for bit that of the whole-array NumPy expressions, without their five temporaries.
    """
    scalar = data.dtype.type
    _sgd_update(data.reshape(-1), grad.reshape(-1), buffer.reshape(-1), scalar(lr), scalar(momentum),
                scalar(weight_decay), bool(nesterov), bool(first))
