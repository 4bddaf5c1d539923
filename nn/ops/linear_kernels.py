"""Linear (+ ReLU), forward and backward: compiled dot-product loops for small layers, BLAS for large ones.

* ``linear_forward``  = ``Linear`` then, if ``relu``, ``ReLU``: y (N, out) from x (N, in).
* ``linear_backward`` = their backward passes, the ReLU mask read from the saved output's sign.

The compiled loops: a dot product per image and output in the forward pass and for the input
gradient, a sum over the images per output row for the weight gradient (each sum over the batch
in image order on one thread, so the result does not depend on the thread count).

Measured alone, BLAS is faster at every size (1.3x at LeNet's 256 -> 120, batch 64; 2x for an
MLP's 784 -> 512). But OpenBLAS's worker threads keep spinning for a while after each call, and
on a machine with as many threads as cores they then hold the core that numba's parallel
convolution kernels need next: a network mixing both trained 2 to 3 times slower (docs/performance.md).
So the caller says whether BLAS runs (``blas``): ``nn.execution.planner`` has every product of a network
without convolutions go to BLAS (then BLAS's threads are the only ones: even the small products go
there, as numba's threads beside them would cost more than BLAS's call overhead), and none of a
network with convolutions.
"""

import numba
import numpy as np

from .parallel import drive

@numba.njit(cache=True, fastmath={"contract", "reassoc"})
def _linear_row(x, w, b, y, relu):
    """One row: y[o] = b[o] + sum_k w[o, k] * x[k], then max(., 0) if relu."""
    zero = y.dtype.type(0)
    for o in range(w.shape[0]):
        total = zero
        for k in range(x.shape[0]):
            total += w[o, k] * x[k]
        total += b[o]
        y[o] = total if (total > 0 or not relu) else zero


@numba.njit(cache=True)
def _linear_forward_serial(x, w, b, y, relu):
    for n in range(x.shape[0]):
        _linear_row(x[n], w, b, y[n], relu)


@numba.njit(cache=True, parallel=True)
def _linear_forward_parallel(x, w, b, y, relu):
    for n in numba.prange(x.shape[0]):
        _linear_row(x[n], w, b, y[n], relu)


@numba.njit(cache=True, fastmath={"contract"})
def _linear_param_grad_row(o, x, dy, y, dw, db, relu):
    """Output o: dw[o] += sum_n g[n, o] * x[n] and db[o] += sum_n g[n, o], images in order.

    ``g = dy``, masked by ``y > 0`` when a ReLU followed (y is then the ReLU's output).
    """
    row = dw[o]
    total = db.dtype.type(0)
    for n in range(x.shape[0]):
        if relu and not y[n, o] > 0:
            continue
        g = dy[n, o]
        total += g
        xn = x[n]
        for k in range(row.shape[0]):
            row[k] += g * xn[k]
    db[o] += total


@numba.njit(cache=True)
def _linear_param_grad_serial(x, dy, y, dw, db, relu):
    for o in range(dw.shape[0]):
        _linear_param_grad_row(o, x, dy, y, dw, db, relu)


@numba.njit(cache=True, parallel=True)
def _linear_param_grad_parallel(x, dy, y, dw, db, relu):
    for o in numba.prange(dw.shape[0]):
        _linear_param_grad_row(o, x, dy, y, dw, db, relu)


@numba.njit(cache=True, fastmath={"contract"})
def _linear_input_grad_row(dy, y, w, dx, relu):
    """One row: dx[k] = sum_o g[o] * w[o, k], with g as in ``_linear_param_grad_row``."""
    dx[:] = 0
    for o in range(w.shape[0]):
        if relu and not y[o] > 0:
            continue
        g = dy[o]
        wo = w[o]
        for k in range(dx.shape[0]):
            dx[k] += g * wo[k]


@numba.njit(cache=True)
def _linear_input_grad_serial(dy, y, w, dx, relu):
    for n in range(dx.shape[0]):
        _linear_input_grad_row(dy[n], y[n], w, dx[n], relu)


@numba.njit(cache=True, parallel=True)
def _linear_input_grad_parallel(dy, y, w, dx, relu):
    for n in numba.prange(dx.shape[0]):
        _linear_input_grad_row(dy[n], y[n], w, dx[n], relu)


@numba.njit(cache=True)
def _bias_relu(y, b, relu):
    """In place, row by row: y[n] += b, then max(., 0) if relu (NaN -> 0, as ``ReLU``)."""
    zero = y.dtype.type(0)
    for n in range(y.shape[0]):
        row = y[n]
        for o in range(row.shape[0]):
            total = row[o] + b[o]
            row[o] = total if (total > 0 or not relu) else zero


@numba.njit(cache=True)
def _masked_grad(dy, y, g, db, relu):
    """g <- dy masked by ``y > 0`` if relu, and db += the column sums of g, images in order."""
    zero = dy.dtype.type(0)
    for n in range(dy.shape[0]):
        for o in range(dy.shape[1]):
            value = dy[n, o] if (not relu or y[n, o] > 0) else zero
            g[n, o] = value
            db[o] += value


def _no_bias(weight):
    return np.zeros(weight.shape[0], dtype=weight.dtype)


def linear_forward(x, weight, bias, relu=False, blas=False):
    """``y = x @ weight.T + bias``, then ``max(y, 0)`` if ``relu``. x (N, in), weight (out, in) -> y (N, out).

    ``blas``: compute the product with BLAS, else with the compiled loops (see the module docstring).
    """
    x = np.ascontiguousarray(x)
    if x.ndim != 2 or x.shape[1] != weight.shape[1]:  # the kernels do no bounds checking
        raise ValueError(f"linear_forward: x {x.shape} does not fit weight {weight.shape}")
    bias = _no_bias(weight) if bias is None else bias
    if blas:
        y = x @ weight.T
        _bias_relu(y, bias, relu)
        return y
    y = np.empty((x.shape[0], weight.shape[0]), dtype=x.dtype)
    drive(_linear_forward_serial, _linear_forward_parallel, x.shape[0], x.shape[0] * weight.size,
          x, weight, bias, y, relu)
    return y


def linear_backward(dy, x, y, weight, weight_grad, bias_grad, relu=False, need_input_grad=True, blas=False):
    """Backward of ``linear_forward``: accumulates into ``weight_grad`` (out, in) and ``bias_grad`` (out,).

    dy, y (N, out): upstream gradient and the forward output (its sign is the ReLU mask when
    ``relu``); x (N, in) the forward input. Returns dx (N, in), or None if not ``need_input_grad``.
    ``blas`` as in ``linear_forward``.
    """
    dy = np.ascontiguousarray(dy)
    db = _no_bias(weight) if bias_grad is None else bias_grad
    if blas:
        g = np.empty_like(dy)
        _masked_grad(dy, y, g, db, relu)
        weight_grad += g.T @ x
        return g @ weight if need_input_grad else None
    drive(_linear_param_grad_serial, _linear_param_grad_parallel, weight.shape[0], x.shape[0] * weight.size,
          x, dy, y, weight_grad, db, relu)
    if not need_input_grad:
        return None
    dx = np.empty(x.shape, dtype=x.dtype)
    drive(_linear_input_grad_serial, _linear_input_grad_parallel, x.shape[0], x.shape[0] * weight.size,
          dy, y, weight, dx, relu)
    return dx
