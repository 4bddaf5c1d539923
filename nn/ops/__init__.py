"""The loops under the layers: the NumPy reference (``numpy_ops``) and the compiled kernels.

``im2col``, ``col2im``, ``maxpool2d_forward``, ``maxpool2d_backward`` and ``conv_out_size``, as
exported here, are the readable NumPy reference the layers compute with (``numpy_ops``).

The compiled kernels, one concept per module, are called by the execution layer's stages
(``nn.execution``) only, on the numba backend: ``conv_kernels`` (convolution + bias + ReLU + max
pooling), ``pool_kernels`` (the pooling inside them), ``gemm_kernels`` (im2col + BLAS convolution
helpers), ``linear_kernels`` (linear + ReLU), ``numba_ops`` (max pooling alone), ``loss_kernels``
(cross-entropy), ``sgd_kernels`` (the optimizer's update), all driven serially or in parallel by
``parallel.drive``.
"""

from ..backend import NUMBA_AVAILABLE
from .numpy_ops import col2im, conv_out_size, im2col, maxpool2d_backward, maxpool2d_forward

if NUMBA_AVAILABLE:
    from . import compile_notice  # noqa: F401  (announces a cold kernel cache on stderr)

__all__ = ["col2im", "conv_out_size", "im2col", "maxpool2d_backward", "maxpool2d_forward"]
