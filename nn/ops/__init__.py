"""The hot loops of convolution and pooling, dispatched to the backend chosen at call time.

Each function here has the same name, arguments and result as its twin in ``numpy_ops`` (the
readable reference, documented there) and ``numba_ops`` (compiled kernels computing the same
thing). ``nn.backend.get_backend()`` is read on every call, so ``nn.use_backend("numpy")`` takes
effect immediately, even for layers built earlier.

The numba backend's layers run compiled kernels for whole stages instead (numba only, one concept
per module): ``conv_kernels`` (convolution + bias + ReLU + max pooling), ``pool_kernels`` (the
pooling inside them), ``linear_kernels`` (linear + ReLU), ``loss_kernels`` (cross-entropy),
``sgd_kernels`` (the optimizer's update), all driven serially or in parallel by ``parallel.drive``.
``nn.fusion`` decides which layers form a stage.
"""

from ..backend import NUMBA_AVAILABLE, get_backend
from . import numpy_ops
from .numpy_ops import conv_out_size

if NUMBA_AVAILABLE:
    from . import compile_notice  # noqa: F401  (announces a cold kernel cache on stderr)
    from . import numba_ops
else:  # pragma: no cover - only on machines without numba; get_backend() is then always "numpy"
    numba_ops = None

__all__ = ["col2im", "conv_out_size", "im2col", "maxpool2d_backward", "maxpool2d_forward"]


def _implementation():
    if get_backend() == "numba" and numba_ops is not None:
        return numba_ops
    return numpy_ops


def im2col(x, kh, kw, sh, sw, ph, pw):
    """x (N, C, H, W) -> col (N * out_h * out_w, C * kh * kw); see ``numpy_ops.im2col``."""
    return _implementation().im2col(x, kh, kw, sh, sw, ph, pw)


def col2im(col, x_shape, kh, kw, sh, sw, ph, pw):
    """col (N * out_h * out_w, C * kh * kw) -> (N, C, H, W), the adjoint of im2col; see ``numpy_ops.col2im``."""
    return _implementation().col2im(col, x_shape, kh, kw, sh, sw, ph, pw)


def maxpool2d_forward(x, kh, kw, sh, sw):
    """x (N, C, H, W) -> (out, argmax), both (N, C, out_h, out_w); see ``numpy_ops.maxpool2d_forward``."""
    return _implementation().maxpool2d_forward(x, kh, kw, sh, sw)


def maxpool2d_backward(dout, argmax, x_shape, kh, kw, sh, sw):
    """dout (N, C, out_h, out_w) -> dx (N, C, H, W); see ``numpy_ops.maxpool2d_backward``."""
    return _implementation().maxpool2d_backward(dout, argmax, x_shape, kh, kw, sh, sw)
