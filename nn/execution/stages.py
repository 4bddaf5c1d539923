"""Stages: the runs of layers the numba backend computes in one compiled pass each.

A stage reads its layers' parameters and settings (``conv.weight``, ``conv.stride``, ...) and calls
the kernels of ``nn.ops``; it never calls a layer's ``forward``/``backward`` (except ``ModuleStage``,
which runs a module as the execution layer runs it alone). Its ``forward(x, training)`` returns
``(output, saved)``, ``saved`` being what its ``backward(dout, saved, need_input_grad)`` needs, None in
eval mode: a stage keeps nothing on itself but scratch arrays its training backward reuses, so one
plan serves every call and every thread in eval mode. Errors name the layer, as the layer's own would.
"""

import numpy as np

from ..checks import as_float_array, check_dout
from ..module import Module
from ..ops import conv_kernels, dropout_kernels, gemm_kernels, linear_kernels, norm_kernels, numba_ops


def grad_target(param):
    """Where a kernel accumulates ``param``'s gradient: ``param.grad``; None for a missing parameter
    (no bias); a throwaway array for a frozen one (``requires_grad`` False), whose grad must not change."""
    if param is None:
        return None
    return param.grad if param.requires_grad else np.zeros_like(param.grad)


class ModuleStage:
    """One module, run as the execution layer runs it alone: ``module(x)`` and ``module.backward``.

    That is its reference ``forward``/``backward`` (a layer of one's own, ``ReLU``, ``Flatten``), or
    its own plan (a nested ``Sequential``, a lone ``MaxPool2d``); the module keeps what it saved.
    """

    fused = False

    def __init__(self, module):
        self.layers = (module,)
        self.per_sample = module.per_sample

    def forward(self, x, training):
        return self.layers[0](x), None

    def backward(self, dout, saved, need_input_grad):
        return self.layers[0].backward(dout, need_input_grad=need_input_grad)


class ConvStage:
    """``Conv2d``, then optionally ``ReLU``, then optionally ``MaxPool2d``, in one pass (``nn.ops.conv_kernels``).

    The sums of ``Conv2d``'s docstring, computed directly from the image (no ``col`` matrix), with
    the bias, the ReLU and the pooling applied while each output row is still in the cache.
    """

    fused = per_sample = True

    def __init__(self, conv, relu=None, pool=None):
        self.conv, self.relu, self.pool = conv, relu, pool
        self.layers = tuple(m for m in (conv, relu, pool) if m is not None)
        # Arrays the backward kernels reuse from one training step to the next: scratch, not state
        # (no buffer of the layer, never saved), touched by training only.
        self.scratch = {}

    def forward(self, x, training):
        conv, pool = self.conv, self.pool
        x = as_float_array("Conv2d", x, conv.weight.dtype, ndim=4)
        out_h, out_w = conv.output_size(x.shape)
        pool_kernel, pool_stride = ((1, 1), (1, 1)) if pool is None else (pool.kernel_size, pool.stride)
        if pool is not None:
            pool.output_size((x.shape[0], conv.out_channels, out_h, out_w))
        bias = None if conv.bias is None else conv.bias.data
        out, argmax = conv_kernels.conv_forward(x, conv.weight.data, bias, conv.stride, conv.padding,
                                                self.relu is not None, pool_kernel, pool_stride, keep_argmax=training)
        if not training:
            return out, None
        return out, dict(x=x, out=out, argmax=argmax, pool_kernel=pool_kernel, pool_stride=pool_stride)

    def backward(self, dout, saved, need_input_grad):
        conv = self.conv
        dout = check_dout("Conv2d", dout, saved["out"].shape, conv.weight.dtype)
        return conv_kernels.conv_backward(
            dout, saved["x"], saved["out"], saved["argmax"], conv.weight.data, grad_target(conv.weight),
            grad_target(conv.bias), conv.stride, conv.padding, self.relu is not None, saved["pool_kernel"],
            saved["pool_stride"], need_input_grad=need_input_grad, buffers=self.scratch)


class ConvBatchNormStage:
    """``Conv2d``, ``BatchNorm2d``, then optionally ``ReLU``, then optionally ``MaxPool2d``, compiled.

    With running statistics (eval mode): the normalization is per channel ``y = a z + b`` with
    ``a = weight / sqrt(running_var + eps)``, ``b = bias - a running_mean``, which folds into the
    convolution (weight ``a W``, bias ``a conv_bias + b``): one ``ConvStage`` pass, the fold computed
    at every call from the current parameters and buffers (C_out numbers), so never stale.
    With the batch's statistics (training, or ``track_running_stats=False``): the convolution's
    pass, then ``nn.ops.norm_kernels`` (statistics, then normalization, affine, ReLU and pooling in
    one pass per channel); backward the same passes in reverse.
    A training pass with running statistics (a frozen batch norm), or with layers of different
    dtypes, runs the layers one by one, each as the execution layer runs it alone.
    """

    fused = True

    def __init__(self, conv, bn, relu=None, pool=None):
        self.conv, self.bn, self.relu, self.pool = conv, bn, relu, pool
        self.layers = tuple(m for m in (conv, bn, relu, pool) if m is not None)
        self.per_sample = bn.per_sample
        self.scratch = {}

    def _folded(self):
        """The convolution's (weight, bias) with the eval-mode batch norm folded in (see the class docstring)."""
        conv, bn = self.conv, self.bn
        dtype = conv.weight.dtype
        scale = 1 / np.sqrt(bn.running_var.astype(dtype) + dtype.type(bn.eps))
        if bn.affine:
            scale = bn.weight.data * scale
        shift = -bn.running_mean.astype(dtype) * scale
        if bn.affine:
            shift = shift + bn.bias.data
        conv_bias = 0 if conv.bias is None else conv.bias.data
        return conv.weight.data * scale.reshape(-1, 1, 1, 1), (conv_bias * scale + shift).astype(dtype)

    def _one_by_one(self, x, training):
        for layer in self.layers:
            x = layer(x)
        return x, ("one by one" if training else None)

    def forward(self, x, training):
        conv, bn, pool = self.conv, self.bn, self.pool
        batch_statistics = bn.training or not bn.track_running_stats
        same_dtype = bn.compute_dtype(conv.weight.data) == conv.weight.dtype  # its input is the convolution's output
        if not same_dtype or (training and not batch_statistics):
            return self._one_by_one(x, training)
        x = as_float_array("Conv2d", x, conv.weight.dtype, ndim=4)
        out_h, out_w = conv.output_size(x.shape)
        conv_shape = (x.shape[0], conv.out_channels, out_h, out_w)
        bn.check_input(np.broadcast_to(np.empty(1, x.dtype), conv_shape))  # its channel count, no memory
        pool_kernel, pool_stride = ((1, 1), (1, 1)) if pool is None else (pool.kernel_size, pool.stride)
        if pool is not None:
            pool.output_size(conv_shape)
        if not batch_statistics:
            weight, bias = self._folded()
            out, _ = conv_kernels.conv_forward(x, weight, bias, conv.stride, conv.padding, self.relu is not None,
                                               pool_kernel, pool_stride, keep_argmax=False)
            return out, None
        m = x.shape[0] * out_h * out_w
        if bn.training and m < 2:
            raise ValueError(f"BatchNorm2d: expected more than 1 value per channel when training, "
                             f"got input of shape {conv_shape}")
        conv_bias = None if conv.bias is None else conv.bias.data
        z, _ = conv_kernels.conv_forward(x, conv.weight.data, conv_bias, conv.stride, conv.padding, keep_argmax=False)
        dtype = z.dtype
        weight = bn.weight.data if bn.affine else np.ones(conv.out_channels, dtype=dtype)
        bias = bn.bias.data if bn.affine else np.zeros(conv.out_channels, dtype=dtype)
        pooling = {} if pool is None else dict(pool_kernel=pool.kernel_size, pool_stride=pool.stride)
        out, argmax, x_hat, mean, var, inv_std = norm_kernels.batchnorm_forward(z, bn.eps, weight, bias,
                                                                                self.relu is not None, **pooling)
        if bn.training and bn.track_running_stats:
            bn.update_running_statistics(mean.astype(dtype), var.astype(dtype), m)
        if not training:
            return out, None
        return out, dict(x=x, z=z, x_hat=x_hat, inv_std=inv_std, out=out, argmax=argmax, pooling=pooling)

    def backward(self, dout, saved, need_input_grad):
        conv, bn = self.conv, self.bn
        if saved == "one by one":
            for k in range(len(self.layers) - 1, -1, -1):
                dout = self.layers[k].backward(dout, need_input_grad=need_input_grad or k > 0)
            return dout
        dout = check_dout(type(self.layers[-1]).__name__, dout, saved["out"].shape, conv.weight.dtype)
        channels = conv.out_channels
        weight = bn.weight.data if bn.affine else np.ones(channels, dtype=dout.dtype)
        weight_grad = grad_target(bn.weight) if bn.affine else np.zeros(channels, dtype=dout.dtype)
        bias_grad = grad_target(bn.bias) if bn.affine else np.zeros(channels, dtype=dout.dtype)
        dz = norm_kernels.batchnorm_backward(dout, saved["out"], saved["argmax"], saved["x_hat"], saved["inv_std"],
                                             weight, weight_grad, bias_grad, self.relu is not None, **saved["pooling"])
        return conv_kernels.conv_backward(dz, saved["x"], saved["z"], None, conv.weight.data, grad_target(conv.weight),
                                          grad_target(conv.bias), conv.stride, conv.padding, False,
                                          need_input_grad=need_input_grad, buffers=self.scratch)


class GemmConvStage:
    """``Conv2d``, then optionally ``ReLU``, as im2col + one BLAS product (``nn.ops.gemm_kernels``).

    ``Y = relu(col @ W2^T + b)`` as in ``Conv2d``'s docstring, with ``col`` made by the serial
    compiled ``im2col_rows`` and ``col``'s and ``W2``'s columns in channels-last order (i, j, c).
    ``Y``'s rows are the output in channels-last order (N, out_h, out_w, C_out). For networks that
    run on BLAS (``planner.runs_on_blas``): the compiled helpers are serial, so BLAS's threads are
    the only ones running.
    """

    fused = per_sample = True

    def __init__(self, conv, relu=None):
        self.conv, self.relu = conv, relu
        self.layers = tuple(m for m in (conv, relu) if m is not None)
        # Set by the planner between two such stages: the array between them stays channels-last
        # (N, H, W, C), as the product leaves it and the next im2col reads it, instead of moving to
        # NCHW and back (and its gradient likewise).
        self.channels_last_in = self.channels_last_out = False

    def _weight_rows(self):
        """The weight as (C_out, kh * kw * C_in), columns in ``im2col_rows``'s order (i, j, c)."""
        conv = self.conv
        return conv.weight.data.transpose(0, 2, 3, 1).reshape(conv.out_channels, -1)

    def forward(self, x, training):
        conv = self.conv
        if self.channels_last_in:  # from the previous stage: (N, H, W, C), already checked
            n, h, w, c = x.shape
            out_h, out_w = conv.output_size((n, c, h, w))
        else:
            x = as_float_array("Conv2d", x, conv.weight.dtype, ndim=4)
            out_h, out_w = conv.output_size(x.shape)
        geometry = (*conv.kernel_size, *conv.stride, *conv.padding, out_h, out_w)
        col = gemm_kernels.im2col_rows(x, *geometry, channels_last=self.channels_last_in)
        product = col @ self._weight_rows().T
        out = gemm_kernels.rows_to_output(product, None if conv.bias is None else conv.bias.data,
                                          self.relu is not None, (x.shape[0], out_h, out_w), self.channels_last_out)
        if not training:
            return out, None
        return out, dict(col=col, out=out, x_shape=x.shape, geometry=geometry)

    def backward(self, dout, saved, need_input_grad):
        """``dY = dout * [out > 0]`` (with ReLU), then the three products of ``Conv2d``'s docstring in
        ``col``'s column order, and ``col2im_rows``; ``dout`` and dL/dx in the layouts of the forward's."""
        conv = self.conv
        dout = check_dout("Conv2d", dout, saved["out"].shape, conv.weight.dtype)
        dout_matrix, bias_grad = gemm_kernels.output_gradient_rows(dout, saved["out"], self.relu is not None,
                                                                   self.channels_last_out)
        out_channels, in_channels, kh, kw = conv.weight.shape
        if conv.weight.requires_grad:
            grad_rows = dout_matrix.T @ saved["col"]  # (C_out, kh * kw * C_in), in the order (i, j, c)
            conv.weight.grad += grad_rows.reshape(out_channels, kh, kw, in_channels).transpose(0, 3, 1, 2)
        if conv.bias is not None and conv.bias.requires_grad:
            conv.bias.grad += bias_grad
        if not need_input_grad:
            return None
        return gemm_kernels.col2im_rows(dout_matrix @ self._weight_rows(), saved["x_shape"], *saved["geometry"],
                                        channels_last=self.channels_last_in)


class LinearStage:
    """``Linear``, then optionally ``ReLU``, then optionally ``Dropout``, in one pass (``nn.ops.linear_kernels``);
    the product on BLAS if ``blas``, else on compiled loops.

    The dropout, in training, draws its uniform numbers from the layer's generator exactly as
    ``Dropout.forward`` does (so the same masks on every backend), and ``nn.ops.dropout_kernels``
    turns them into the mask and applies it in one pass; backward multiplies by that mask.
    """

    fused = per_sample = True

    def __init__(self, linear, relu=None, blas=True, dropout=None):
        self.linear, self.relu, self.blas, self.dropout = linear, relu, blas, dropout
        self.layers = tuple(m for m in (linear, relu, dropout) if m is not None)

    def forward(self, x, training):
        linear, dropout = self.linear, self.dropout
        x = as_float_array("Linear", x, linear.weight.dtype, ndim=2)
        linear.check_features(x.shape)
        bias = None if linear.bias is None else linear.bias.data
        out = linear_kernels.linear_forward(x, linear.weight.data, bias, self.relu is not None, self.blas)
        result, mask = out, None
        if dropout is not None and dropout.training:
            result, mask = dropout_kernels.dropout_forward(out, dropout.rng.random(out.shape), dropout.p)
        return result, (dict(x=x, out=out, mask=mask) if training else None)

    def backward(self, dout, saved, need_input_grad):
        linear = self.linear
        dout = check_dout(type(self.layers[-1]).__name__, dout, saved["out"].shape, linear.weight.dtype)
        if saved["mask"] is not None:
            dout = dout * saved["mask"]
        return linear_kernels.linear_backward(dout, saved["x"], saved["out"], linear.weight.data,
                                              grad_target(linear.weight), grad_target(linear.bias),
                                              self.relu is not None, need_input_grad, self.blas)


class PoolStage:
    """``MaxPool2d`` not fused into a convolution before it: the compiled loops of ``nn.ops.numba_ops``."""

    fused = per_sample = True

    def __init__(self, pool):
        self.pool = pool
        self.layers = (pool,)

    def forward(self, x, training):
        pool = self.pool
        x = np.asarray(x)
        x = as_float_array("MaxPool2d", x, np.result_type(x.dtype, np.float32), ndim=4)
        pool.output_size(x.shape)
        out, argmax = numba_ops.maxpool2d_forward(x, *pool.kernel_size, *pool.stride)
        return out, (dict(argmax=argmax, x_shape=x.shape, dtype=x.dtype) if training else None)

    def backward(self, dout, saved, need_input_grad):
        if not need_input_grad:
            return None
        pool, argmax = self.pool, saved["argmax"]
        dout = check_dout("MaxPool2d", dout, argmax.shape, saved["dtype"])
        return numba_ops.maxpool2d_backward(dout, argmax, saved["x_shape"], *pool.kernel_size, *pool.stride)


class StageModule(Module):
    """One stage as a ``Module`` of its own (``Sequential.named_stages``), e.g. to time stages one by one.

    Its forward saves what the stage's backward needs in training mode, as any layer does; its parameters are
    those of the stage's layers, which it does not own (``parameters()`` is empty).
    """

    def __init__(self, stage):
        self._stage = stage

    def forward(self, x):
        out, saved = self._stage.forward(x, self.training)
        self.save_for_backward(stage=saved)
        return out

    def backward(self, dout, need_input_grad=True):
        return self._stage.backward(dout, self.saved()["stage"], need_input_grad)
