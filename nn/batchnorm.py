"""Batch normalization (Ioffe and Szegedy 2015): ``BatchNorm1d`` and ``BatchNorm2d``."""

import numbers

import numpy as np

from .checks import as_float_array, check_dout
from .module import Module
from .parameter import Parameter


class _BatchNorm(Module):
    """Per channel c, over the m values of the batch in that channel (every axis but the channel axis 1)::

        training:  mu = (1/m) sum x,   var = (1/m) sum (x - mu)²       (the biased variance)
        x_hat = (x - mu) / sqrt(var + eps),   y = weight * x_hat + bias

    and the running estimates are updated (PyTorch's rule; the *unbiased* variance, m / (m - 1) var)::

        running_mean = (1 - momentum) running_mean + momentum mu
        running_var  = (1 - momentum) running_var  + momentum var m / (m - 1)

    ``momentum=None`` takes the cumulative average instead (momentum = 1 / num_batches_tracked).
    In eval mode ``mu`` and ``var`` are ``running_mean`` and ``running_var``, and nothing changes;
    with ``track_running_stats=False`` there are no running estimates and the batch's are used always.

    Parameters ``weight`` (starts at 1) and ``bias`` (at 0), shape (C,), if ``affine``. Buffers
    ``running_mean`` (0), ``running_var`` (1), shape (C,), and ``num_batches_tracked`` (an int64
    scalar), in the state dict and so saved by ``nn.save``, if ``track_running_stats``.

    Gradient (training), with sums over the m values of a channel and ``s = 1 / sqrt(var + eps)``::

        dL/dbias   = sum dout
        dL/dweight = sum dout x_hat
        dL/dx      = (weight s / m) (m dout - sum dout - x_hat sum dout x_hat)

    The last line is the chain rule through the mean and the variance, collapsed; the study page
    (docs/study/12-batchnorm.md) derives it from the computational graph. Backward needs only
    ``x_hat`` and ``s``, which forward keeps.
    """

    _input_dims = ()  # the accepted numbers of dimensions, set by the subclasses

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 dtype=np.float32):
        name = type(self).__name__
        if not isinstance(num_features, (int, np.integer)) or isinstance(num_features, bool) or num_features < 1:
            raise ValueError(f"{name}: num_features must be a positive int, got {num_features!r}")
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0:
            raise ValueError(f"{name}: eps must be a positive number, got {eps!r}")
        if momentum is not None and (isinstance(momentum, bool) or not isinstance(momentum, numbers.Real)
                                     or not 0 <= momentum <= 1):
            raise ValueError(f"{name}: momentum must be a number in [0, 1] or None, got {momentum!r}")
        if not np.issubdtype(np.dtype(dtype), np.floating):
            raise TypeError(f"{name}: dtype must be a floating-point type, got {np.dtype(dtype)}")
        self.num_features, self.eps = int(num_features), float(eps)
        self.momentum = None if momentum is None else float(momentum)
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        self.weight = Parameter(np.ones(self.num_features, dtype=dtype)) if self.affine else None
        self.bias = Parameter(np.zeros(self.num_features, dtype=dtype)) if self.affine else None
        tracked = self.track_running_stats
        self.register_buffer("running_mean", np.zeros(self.num_features, dtype=dtype) if tracked else None)
        self.register_buffer("running_var", np.ones(self.num_features, dtype=dtype) if tracked else None)
        self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64) if tracked else None)

    @property
    def per_sample(self):
        """Each sample's output depends on that sample alone in eval mode, the only mode ``nn.execution`` asks
        about (it slices large eval batches), unless there are no running statistics to normalize with."""
        return self.track_running_stats

    def compute_dtype(self, x):
        """The dtype this layer computes in for input ``x``: its parameters' (buffers follow them through ``astype``),
        else its buffers', else the input's (at least float32)."""
        if self.affine:
            return self.weight.dtype
        if self.track_running_stats:
            return self.running_mean.dtype
        return np.result_type(np.asarray(x).dtype, np.float32)

    def check_input(self, x):
        """Raise a ValueError naming the layer unless ``x`` has an accepted number of dimensions and
        ``num_features`` channels on axis 1 (``nn.execution`` checks the output of a convolution with it)."""
        name = type(self).__name__
        if x.ndim not in self._input_dims:
            expected = " or ".join(f"{d}D" for d in self._input_dims)
            raise ValueError(f"{name}: expected {expected} input, got {x.ndim}D input of shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{name}: expected input with {self.num_features} channels on axis 1, "
                             f"got shape {x.shape}")

    def forward(self, x):
        x = as_float_array(type(self).__name__, x, self.compute_dtype(x))
        self.check_input(x)
        axes = (0,) + tuple(range(2, x.ndim))  # every axis but the channels'
        per_channel = (1, self.num_features) + (1,) * (x.ndim - 2)  # a (C,) vector broadcast against x
        m = x.size // self.num_features
        if self.training or not self.track_running_stats:
            if self.training and m < 2:
                raise ValueError(f"{type(self).__name__}: expected more than 1 value per channel when training, "
                                 f"got input of shape {x.shape}")
            mean = x.mean(axis=axes)
            var = np.square(x - mean.reshape(per_channel)).mean(axis=axes)  # two passes: no cancellation
            if self.training and self.track_running_stats:
                self.update_running_statistics(mean, var, m)
        else:
            mean, var = self.running_mean, self.running_var
        inv_std = 1 / np.sqrt(var + x.dtype.type(self.eps))
        x_hat = (x - mean.reshape(per_channel)) * inv_std.reshape(per_channel)
        self.save_for_backward(x_hat=x_hat, inv_std=inv_std)
        if not self.affine:
            return x_hat
        return x_hat * self.weight.data.reshape(per_channel) + self.bias.data.reshape(per_channel)

    def update_running_statistics(self, mean, var, m):
        """Fold one batch's ``mean`` and biased ``var`` (C,), over ``m`` values per channel, into the running
        estimates, and count the batch (the class docstring's rule)."""
        self.num_batches_tracked += 1
        factor = 1.0 / int(self.num_batches_tracked) if self.momentum is None else self.momentum
        self.running_mean[...] = (1 - factor) * self.running_mean + factor * mean
        self.running_var[...] = (1 - factor) * self.running_var + factor * var * (m / (m - 1))

    def backward(self, dout, need_input_grad=True):
        saved = self.saved()
        x_hat, inv_std = saved["x_hat"], saved["inv_std"]
        dout = check_dout(type(self).__name__, dout, x_hat.shape, x_hat.dtype)
        axes = (0,) + tuple(range(2, x_hat.ndim))
        per_channel = (1, self.num_features) + (1,) * (x_hat.ndim - 2)
        dout_sum = dout.sum(axis=axes)                # dL/dbias
        dout_x_hat_sum = (dout * x_hat).sum(axis=axes)  # dL/dweight
        if self.affine and self.bias.requires_grad:
            self.bias.grad += dout_sum
        if self.affine and self.weight.requires_grad:
            self.weight.grad += dout_x_hat_sum
        if not need_input_grad:
            return None
        m = x_hat.size // self.num_features
        scale = inv_std / m if not self.affine else self.weight.data * inv_std / m
        return scale.reshape(per_channel) * (m * dout - dout_sum.reshape(per_channel)
                                             - x_hat * dout_x_hat_sum.reshape(per_channel))

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalization of (N, C) or (N, C, L) input, per channel C (over N, or N and L); see ``_BatchNorm``.

    Shape: x (N, C) or (N, C, L) -> y of the same shape.
    """

    _input_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalization of (N, C, H, W) input, per channel C over N, H and W; see ``_BatchNorm``.

    Shape: x (N, C, H, W) -> y (N, C, H, W).
    """

    _input_dims = (4,)
