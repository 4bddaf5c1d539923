"""The planner: how the numba backend runs a module, as a ``Plan`` of stages (``nn.execution.stages``).

``plan(modules)`` groups a sequence of layers, as ``Sequential`` holds them, into stages:

* ``Conv2d`` ``BatchNorm2d`` [``ReLU``] [``MaxPool2d``] -> one ``ConvBatchNormStage`` (in eval mode the
  batch norm folded into the convolution, in training ``nn.ops.norm_kernels``), without BLAS;
* ``Conv2d`` [``ReLU``] [``MaxPool2d``] -> one ``ConvStage`` (``nn.ops.conv_kernels``): the
  convolution, ReLU and pooling in one pass over memory, for any stride, padding, kernel, channel
  counts and pooling windows; in a network that runs on BLAS (``runs_on_blas``: its convolutions
  are all strided), ``Conv2d`` [``ReLU``] -> one ``GemmConvStage`` instead (im2col + one product,
  ``nn.ops.gemm_kernels``);
* ``Linear`` [``ReLU``] [``Dropout``] -> one ``LinearStage`` (``nn.ops.linear_kernels``), on BLAS in a network
  that runs on BLAS, on compiled loops otherwise;
* a ``MaxPool2d`` no convolution took -> a ``PoolStage`` (``nn.ops.numba_ops``);
* anything else (``Flatten``, a lone ``ReLU``, a nested ``Sequential``, a layer of your own) -> a
  ``ModuleStage``, which runs the module as the execution layer runs it alone.

Only these exact classes fuse (not subclasses, which may compute something else), and the stages
use the layers' own checks and ``Parameter`` objects, so error messages, results and state dict
keys are those of the layers run one by one. ``plan_of(module)`` is the plan of one module: its
children's stages for a ``Sequential``, a one-stage plan for a lone layer that has a compiled
stage, ``CrossEntropyPlan`` for the loss, None for the rest (and for everything on the NumPy
backend), which then runs its own ``forward``/``backward``.

To add a fused pattern or a compiled layer: a stage class in ``stages``, and a line in ``plan``.
"""

import numpy as np

from ..activation import ReLU
from ..backend import get_backend
from ..batchnorm import BatchNorm2d
from ..conv import Conv2d
from ..dropout import Dropout
from ..linear import Linear
from ..loss import CrossEntropyLoss
from ..module import PLAN_ATTRIBUTE
from ..pool import MaxPool2d
from ..sequential import Sequential
from .loss import CrossEntropyPlan
from .stages import ConvBatchNormStage, ConvStage, GemmConvStage, LinearStage, ModuleStage, PoolStage, StageModule

# Eval-mode forward of a large batch goes through the stages in slices of this many images, in
# networks that run their convolutions on BLAS. Measured on network E at batch 1000: slices of 16,
# 32, 64, 128 and 256 images, and none, gave 89,000, 98,000, 103,000, 103,000, 44,000 and 42,000
# img/s: past a few megabytes, every stage's arrays are fresh memory from the system, whose first
# touch costs more than the arithmetic.
EVAL_SLICE = 64


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
    """The stages computing ``modules`` in order on the numba backend (see the module docstring)."""
    blas = runs_on_blas(modules)
    stages, i = [], 0
    while i < len(modules):
        layer = modules[i]
        if type(layer) is Conv2d and blas:
            stage = GemmConvStage(layer, _next_if(modules, i + 1, ReLU))
        elif type(layer) is Conv2d:
            bn = _next_if(modules, i + 1, BatchNorm2d)
            relu = _next_if(modules, i + 1 + (bn is not None), ReLU)
            pool = _next_if(modules, i + 1 + (bn is not None) + (relu is not None), MaxPool2d)
            stage = ConvStage(layer, relu, pool) if bn is None else ConvBatchNormStage(layer, bn, relu, pool)
        elif type(layer) is Linear:
            relu = _next_if(modules, i + 1, ReLU)
            dropout = _next_if(modules, i + 1 + (relu is not None), Dropout)
            stage = LinearStage(layer, relu, blas, dropout)
        elif type(layer) is MaxPool2d:
            stage = PoolStage(layer)
        else:
            stage = ModuleStage(layer)
        stages.append(stage)
        i += len(stage.layers)
    for before, after in zip(stages, stages[1:]):
        if isinstance(before, GemmConvStage) and isinstance(after, GemmConvStage):
            before.channels_last_out = after.channels_last_in = True
    return stages


def _runs_as_sequential(module):
    return isinstance(module, Sequential) and all(
        getattr(type(module), name) is getattr(Sequential, name) for name in ("forward", "backward"))


COMPILED_LAYERS = (Conv2d, Linear, MaxPool2d)  # the layers ``plan`` has a compiled stage for


def _make_plan(module):
    if type(module) is CrossEntropyLoss:
        return CrossEntropyPlan(module)
    stages = plan(list(module) if _runs_as_sequential(module) else [module])
    return Plan(stages) if any(stage.fused for stage in stages) else None


def plan_of(module):
    """How ``module`` runs now: a plan (``forward(*inputs, training)`` -> ``(out, saved)``, ``backward(saved, dout,
    need_input_grad)``), or None for its own ``forward``/``backward``.

    Planned once per module and saved on it, so it lives and dies with the model; setting or
    removing a child plans again (``Module.__setattr__``). A layer added inside a nested module
    later does not (it is still run, by that module; only the choice of BLAS may be stale).
    """
    if get_backend() != "numba":
        return None
    if type(module) not in COMPILED_LAYERS and type(module) is not CrossEntropyLoss and not _runs_as_sequential(module):
        return None  # its own forward: nothing to plan, nothing saved on it
    remembered = module.__dict__.get(PLAN_ATTRIBUTE)
    if remembered is None:
        remembered = module.__dict__[PLAN_ATTRIBUTE] = (_make_plan(module),)
    return remembered[0]


def named_stages(sequential):
    """``(name, StageModule)`` per stage of ``sequential`` on the current backend ("C1+relu1+S2"); see
    ``Sequential.named_stages``. On the NumPy backend every child is a stage of its own."""
    chosen = plan_of(sequential)
    stages = chosen.stages if chosen is not None else [ModuleStage(m) for m in sequential]
    names = [name for name, _ in sequential.named_entries()]
    position = 0
    for stage in stages:
        yield "+".join(names[position:position + len(stage.layers)]), StageModule(stage)
        position += len(stage.layers)


def segments(stages):
    """The stages cut where eval may not slice: ``(run, sliced)`` pairs, in order.

    A run of stages that all treat each sample alone (``per_sample``) is sliced if it holds a
    ``GemmConvStage`` (whose large ``col`` matrices are what slicing keeps in the cache); a stage
    that may mix the samples of a batch (a layer of one's own that does not declare ``per_sample``)
    is a run of its own, given the whole batch.
    """
    run = []
    for stage in stages:
        if stage.per_sample:
            run.append(stage)
            continue
        if run:
            yield run, any(isinstance(s, GemmConvStage) for s in run)
            run = []
        yield [stage], False
    if run:
        yield run, any(isinstance(s, GemmConvStage) for s in run)


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


class Plan:
    """Stages run in order, the numba backend's way of computing a ``Sequential`` (or a lone layer)."""

    def __init__(self, stages):
        self.stages = tuple(stages)
        # The layers computed by compiled stages, which never see the forward (``dispatch.forward``).
        self.fused_layers = tuple(layer for stage in self.stages if stage.fused for layer in stage.layers)

    def forward(self, x, training):
        """x -> ``(output, saved)``; ``saved`` holds what each stage saved in training mode, None in eval mode.

        In eval mode, a large batch goes through each run of ``segments`` in slices of
        ``EVAL_SLICE`` images where that is safe: the intermediate arrays stay small enough to stay
        in the cache and be reused, instead of tens of megabytes of fresh memory per stage.
        """
        if not training:
            for run, sliced in segments(self.stages):
                if sliced and isinstance(x, np.ndarray) and x.ndim >= 1 and x.shape[0] > EVAL_SLICE:
                    x = forward_in_slices(run, x)
                else:
                    for stage in run:
                        x, _ = stage.forward(x, False)
            return x, None
        saved = []
        for stage in self.stages:
            x, stage_saved = stage.forward(x, True)
            saved.append(stage_saved)
        return x, saved

    def backward(self, saved, dout, need_input_grad=True):
        """d loss / d output -> d loss / d input, through the stages in reverse (the first skips dL/dx if asked)."""
        for k in range(len(self.stages) - 1, -1, -1):
            dout = self.stages[k].backward(dout, saved[k], need_input_grad or k > 0)
        return dout
