"""Stages: the runs of layers that the numba backend computes in one compiled pass each.

``plan(modules)`` groups a sequence of layers, as ``Sequential`` holds them, into stages:

* ``Conv2d`` [``ReLU``] [``MaxPool2d``] -> one ``ConvStage`` (``nn.ops.conv_kernels``): the
  convolution, ReLU and pooling in one pass over memory, for any stride, padding, kernel, channel
  counts and pooling windows; in a network that runs on BLAS (``runs_on_blas``: its convolutions
  are all strided), ``Conv2d`` [``ReLU``] -> one ``GemmConvStage`` instead (im2col + one product,
  ``nn.ops.gemm_kernels``), and a ``MaxPool2d`` after it runs as itself;
* ``Linear`` [``ReLU``] -> one ``LinearStage`` (``nn.ops.linear_kernels``), on BLAS in a network
  that runs on BLAS, on compiled loops otherwise;
* anything else (``Flatten``, a lone ``ReLU`` or ``MaxPool2d``, a nested ``Sequential``, a layer
  of your own) -> a ``LayerStage``, which runs the module as it is.

On the NumPy backend every layer is its own ``LayerStage``: the readable reference, layer by layer.
Only these exact classes fuse (not subclasses, which may compute something else), and the stages
reuse the layers' own checks and ``Parameter`` objects, so error messages, results and state dict
keys are those of the layers run one by one.

A stage's ``forward(x, training)`` returns ``(output, kept)``; ``kept`` is what its
``backward(dout, kept, need_input_grad)`` needs, None in eval mode. A fused stage keeps its own
record and clears its layers' (a layer's record would be stale): backward goes through the stage.
"""

import numpy as np

from .activation import ReLU
from .backend import get_backend
from .conv import Conv2d
from .flatten import Flatten
from .linear import Linear
from .module import Module, accepts_need_input_grad
from .pool import MaxPool2d

# Eval-mode forward of a large batch goes through the stages in slices of this many images
# (``Sequential.forward``), in networks that run their convolutions on BLAS. Measured on network E
# at batch 1000: slices of 16, 32, 64, 128 and 256 images, and none, gave 89,000, 98,000, 103,000,
# 103,000, 44,000 and 42,000 img/s: past a few megabytes, every stage's arrays are fresh memory
# from the system, whose first touch costs more than the arithmetic.
EVAL_SLICE = 64


class LayerStage:
    """One module, run by its own ``forward`` and ``backward`` (which keep its own record)."""

    def __init__(self, module):
        self.layers = (module,)

    def forward(self, x, training):
        return self.layers[0](x), None

    def backward(self, dout, kept, need_input_grad):
        layer = self.layers[0]
        if accepts_need_input_grad(layer):
            return layer.backward(dout, need_input_grad=need_input_grad)
        return layer.backward(dout)


class ConvStage:
    """``Conv2d``, then optionally ``ReLU``, then optionally ``MaxPool2d``, in one pass."""

    def __init__(self, conv, relu=None, pool=None):
        self.conv, self.relu, self.pool = conv, relu, pool
        self.layers = tuple(m for m in (conv, relu, pool) if m is not None)

    def forward(self, x, training):
        out, kept = self.conv.fused_forward(x, relu=self.relu is not None, pool=self.pool, training=training)
        return out, kept

    def backward(self, dout, kept, need_input_grad):
        return self.conv.fused_backward(dout, kept, need_input_grad)


class GemmConvStage:
    """``Conv2d``, then optionally ``ReLU``, as im2col + one BLAS product (``Conv2d.gemm_forward``).

    For networks that run on BLAS (see ``plan``): its compiled helpers are serial, so BLAS's threads
    are the only ones running. A ``MaxPool2d`` after it runs as itself (serial compiled kernels too).
    """

    def __init__(self, conv, relu=None):
        self.conv, self.relu = conv, relu
        self.layers = tuple(m for m in (conv, relu) if m is not None)
        # Set by ``plan`` between two such stages: the array between them stays channels-last
        # (N, H, W, C), as the product leaves it and the next im2col reads it, instead of moving to
        # NCHW and back (and its gradient likewise).
        self.channels_last_in = self.channels_last_out = False

    def forward(self, x, training):
        out, kept = self.conv.gemm_forward(x, relu=self.relu is not None, training=training,
                                           channels_last_in=self.channels_last_in,
                                           channels_last_out=self.channels_last_out)
        return out, kept

    def backward(self, dout, kept, need_input_grad):
        return self.conv.gemm_backward(dout, kept, need_input_grad)


class LinearStage:
    """``Linear``, then optionally ``ReLU``, in one pass; its product on BLAS if ``blas``, else compiled loops."""

    def __init__(self, linear, relu=None, blas=True):
        self.linear, self.relu, self.blas = linear, relu, blas
        self.layers = tuple(m for m in (linear, relu) if m is not None)

    def forward(self, x, training):
        out, kept = self.linear.fused_forward(x, relu=self.relu is not None, training=training, blas=self.blas)
        return out, kept

    def backward(self, dout, kept, need_input_grad):
        return self.linear.fused_backward(dout, kept, need_input_grad)


def _next_if(modules, i, cls):
    """modules[i] if it exists and is exactly a ``cls``, else None."""
    return modules[i] if i < len(modules) and type(modules[i]) is cls else None


def runs_on_blas(modules):
    """True if every ``Conv2d`` in ``modules`` (at any depth) is strided, or there is none.

    BLAS's spinning worker threads and numba's parallel kernels slow each other down 2-3x on a
    machine with as many threads as cores (docs/performance.md): one or the other per network.
    The direct kernels compute a strided convolution as a stride-1 one on the input's phases
    (16 taps for a 3x3 kernel's 9, short loops on small maps), where im2col + BLAS measured
    faster; for stride 1 the direct kernels win. A network without convolutions (an MLP) is all
    products: BLAS.
    """
    return all(sub.stride != (1, 1) for m in modules for sub in m.modules() if type(sub) is Conv2d)


def plan(modules):
    """The stages computing ``modules`` in order (see the module docstring): a list of stage objects.

    ``Sequential`` plans once per backend and set of children and keeps the plan on itself
    (a global cache of plans would keep the models alive).
    """
    if get_backend() != "numba":
        return [LayerStage(m) for m in modules]
    blas = runs_on_blas(modules)
    stages, i = [], 0
    while i < len(modules):
        layer = modules[i]
        if type(layer) is Conv2d and blas:
            stage = GemmConvStage(layer, _next_if(modules, i + 1, ReLU))
        elif type(layer) is Conv2d:
            relu = _next_if(modules, i + 1, ReLU)
            pool = _next_if(modules, i + 1 + (relu is not None), MaxPool2d)
            stage = ConvStage(layer, relu, pool)
        elif type(layer) is Linear:
            stage = LinearStage(layer, _next_if(modules, i + 1, ReLU), blas)
        else:
            stage = LayerStage(layer)
        stages.append(stage)
        i += len(stage.layers)
    for before, after in zip(stages, stages[1:]):
        if isinstance(before, GemmConvStage) and isinstance(after, GemmConvStage):
            before.channels_last_out = after.channels_last_in = True
    return stages


def images_independent(stages):
    """True if every layer of ``stages`` computes each image from that image alone (this package's layers).

    A layer of the user's own may mix the images of a batch, so a batch cut into slices could
    change its result: such a network is never sliced.
    """
    return all(type(layer) in (Conv2d, ReLU, MaxPool2d, Flatten, Linear) for stage in stages for layer in stage.layers)


def sliced_eval(stages, x):
    """True if an eval-mode forward of ``x`` through ``stages`` should go in slices (``forward_in_slices``)."""
    return (isinstance(x, np.ndarray) and x.ndim >= 1 and x.shape[0] > EVAL_SLICE
            and any(isinstance(stage, GemmConvStage) for stage in stages) and images_independent(stages))


def forward_in_slices(stages, x):
    """The eval-mode forward of ``x`` through ``stages``, ``EVAL_SLICE`` images at a time, into one output."""
    out = None
    for start in range(0, x.shape[0], EVAL_SLICE):
        part = x[start:start + EVAL_SLICE]
        for stage in stages:
            part, _ = stage.forward(part, False)
        if out is None:
            out = np.empty((x.shape[0],) + part.shape[1:], dtype=part.dtype)
        out[start:start + part.shape[0]] = part
    return out


class StageModule(Module):
    """One stage as a ``Module`` of its own (``Sequential.named_stages``), e.g. to time stages one by one.

    Its forward keeps the stage's record in training mode, as any layer does; its parameters are
    those of the stage's layers, which it does not own (``parameters()`` is empty).
    """

    def __init__(self, stage):
        self._stage = stage

    def forward(self, x):
        out, kept = self._stage.forward(x, self.training)
        self.save_for_backward(kept=kept)
        return out

    def backward(self, dout, need_input_grad=True):
        return self._stage.backward(dout, self.saved()["kept"], need_input_grad)
