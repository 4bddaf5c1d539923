"""Stochastic gradient descent with PyTorch's update rule."""

import numpy as np

from .backend import NUMBA_AVAILABLE, get_backend
from .parameter import Parameter

if NUMBA_AVAILABLE:
    from .ops import sgd_kernels


class SGD:
    """SGD with optional momentum, Nesterov momentum and L2 weight decay.

    For each parameter ``p`` with gradient ``g``, exactly as ``torch.optim.SGD`` (dampening 0)::

        g = g + weight_decay * p
        b = g                       (first step)
        b = momentum * b + g        (later steps)
        g = g + momentum * b        if nesterov else b       (only when momentum > 0)
        p = p - lr * g
    """

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
        self.params = list(params)
        if not self.params:
            raise ValueError("SGD: got an empty parameter list")
        for i, p in enumerate(self.params):
            if not isinstance(p, Parameter):
                raise TypeError(f"SGD: parameter {i} is a {type(p).__name__}, not an nn.Parameter")
        self.lr = lr
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"SGD: momentum must be in [0, 1), got {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"SGD: weight_decay must be >= 0, got {weight_decay}")
        if nesterov and momentum == 0.0:
            raise ValueError("SGD: nesterov momentum needs momentum > 0")
        self.momentum, self.weight_decay, self.nesterov = float(momentum), float(weight_decay), bool(nesterov)
        self.momentum_buffers = [None] * len(self.params)

    @property
    def lr(self):
        return self._lr

    @lr.setter
    def lr(self, value):
        # A schedule sets lr every epoch; a bad value must fail there, not silently train nothing.
        if not (isinstance(value, (int, float, np.floating)) and np.isfinite(value) and value > 0):
            raise ValueError(f"SGD: lr must be a finite number > 0, got {value!r}")
        self._lr = float(value)

    def zero_grad(self):
        for p in self.params:
            p.zero_grad()

    def step(self):
        use_kernel = get_backend() == "numba"
        for i, p in enumerate(self.params):
            if use_kernel and p.data.flags.c_contiguous and p.grad.flags.c_contiguous:
                self._update_compiled(i, p)
            else:
                self._update(i, p)

    def _update(self, i, p):
        """The update rule, as written in the class docstring."""
        grad = p.grad
        if self.weight_decay:
            grad = grad + p.data.dtype.type(self.weight_decay) * p.data
        if self.momentum:
            buf = self.momentum_buffers[i]
            if buf is None:
                buf = self.momentum_buffers[i] = grad.copy()
            else:
                buf *= p.data.dtype.type(self.momentum)
                buf += grad
            grad = grad + p.data.dtype.type(self.momentum) * buf if self.nesterov else buf
        p.data -= p.data.dtype.type(self.lr) * grad

    def _update_compiled(self, i, p):
        """The same update, bit for bit, in one compiled pass without ``_update``'s temporaries."""
        first = self.momentum_buffers[i] is None
        if self.momentum and first:
            self.momentum_buffers[i] = np.empty_like(p.data)
        buffer = self.momentum_buffers[i] if self.momentum else p.grad  # not touched without momentum
        sgd_kernels.sgd_update(p.data, p.grad, buffer, self.lr, self.momentum, self.weight_decay, self.nesterov, first)

    def state_dict(self):
        """The momentum buffers as ``{"momentum_buffer.<i>": array}``, for checkpoints (``nn.save``-able)."""
        return {f"momentum_buffer.{i}": buf.copy() for i, buf in enumerate(self.momentum_buffers) if buf is not None}

    def load_state_dict(self, state):
        buffers = [None] * len(self.params)
        for key, value in state.items():
            prefix, _, index = key.partition(".")
            if prefix != "momentum_buffer" or not index.isdigit() or int(index) >= len(self.params):
                raise ValueError(f"SGD.load_state_dict: unexpected key {key!r}")
            p = self.params[int(index)]
            if np.shape(value) != p.shape:
                raise ValueError(f"SGD.load_state_dict: {key}: expected shape {p.shape}, got {np.shape(value)}")
            buffers[int(index)] = np.array(value, dtype=p.dtype)
        self.momentum_buffers = buffers

    def __repr__(self):
        return (f"SGD(lr={self.lr}, momentum={self.momentum}, weight_decay={self.weight_decay}, "
                f"nesterov={self.nesterov})")
