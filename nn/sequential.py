"""``Sequential``: modules applied in order, computed in fused stages on the numba backend."""

from collections import OrderedDict

from . import fusion
from .backend import get_backend
from .containers import ModuleSequence, _check_module
from .module import Module, forward_pass


class Sequential(ModuleSequence):
    """Modules applied in order; ``backward`` runs them in reverse.

    ``Sequential(a, b, c)`` names its children "0", "1", "2", so parameter names read ``"0.weight"``
    as in PyTorch; ``Sequential(OrderedDict([("conv", a), ...]))`` names them by key. A subclass may
    also set its children as attributes, in order, before its first forward. ``model[1:3]`` is a
    ``Sequential`` of those children, under the same names; ``append``, ``insert`` and ``del`` as in a list.

    On the numba backend, forward groups the children into stages (``nn.fusion.plan``): a
    ``Conv2d`` with the ``ReLU`` and ``MaxPool2d`` that follow it, a ``Linear`` with its ``ReLU``,
    each computed in one compiled pass, with the same ``Parameter`` objects, so the state dict is
    the same whatever the backend. The result is that of the layers run one by one (the tests
    check it); only the intermediate arrays are never made.
    """

    def __init__(self, *modules):
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            named = [(name, m, f"entry {name!r}") for name, m in modules[0].items()]
        else:
            named = [(str(i), m, f"argument {i}") for i, m in enumerate(modules)]
        for name, m, where in named:
            setattr(self, name, _check_module("Sequential", where, m))

    def __setattr__(self, name, value):
        # A child set, replaced or removed makes the remembered stage plan (``_stages``) stale.
        if isinstance(value, Module) or name in self.__dict__:
            self.__dict__.pop("_stages", None)
        super().__setattr__(name, value)

    def __delattr__(self, name):
        self.__dict__.pop("_stages", None)
        super().__delattr__(name)

    def _slice(self, named):
        return Sequential(OrderedDict(named))

    def _plan(self):
        """The stages of the current backend (``nn.fusion.plan``), planned once per backend and set of children.

        Kept on the model itself, so it lives and dies with it. A stage holds no state of its own
        (what a forward keeps is returned to the caller), so one plan serves every call and thread.
        Only this model's own children renew it: a layer added inside a nested module later does not
        (it is still run, by that module; only the plan's choice of BLAS for Linear may be stale).
        """
        backend = get_backend()
        remembered = self.__dict__.get("_stages")
        if remembered is None or remembered[0] != backend:
            modules = [m for _, m in self._entries()]
            remembered = self.__dict__["_stages"] = (backend, tuple(fusion.plan(modules)))
        return remembered[1]

    def named_stages(self):
        """``(name, module)`` per stage of the current backend, in forward order, for timing them one by one.

        The name joins the stage's children's names ("C1+relu1+S2"); the module runs that stage
        alone (``nn.fusion.StageModule``), with ``forward(x)`` and ``backward(dout, need_input_grad)``.
        """
        entries = self._entries_list()
        position = 0
        for stage in self._plan():
            names = [name for name, _ in entries[position:position + len(stage.layers)]]
            position += len(stage.layers)
            yield "+".join(names), fusion.StageModule(stage)

    def forward(self, x):
        """x -> the last child's output; in training mode each stage keeps what its backward needs.

        In eval mode, a large batch of a network whose layers all treat images independently
        (``nn.fusion.images_independent``) goes through in slices of ``fusion.EVAL_SLICE`` images,
        each slice through all stages: the intermediate arrays stay small enough to stay in the
        cache and be reused, instead of tens of megabytes of fresh memory per stage.
        """
        stages, training = self._plan(), self.training
        if not training and fusion.sliced_eval(stages, x):
            return fusion.forward_in_slices(stages, x)
        if training:
            # The layers a fused stage computes never see this forward: a record an earlier forward
            # left on them would be stale, so it goes (before any stage runs: one may reuse a layer).
            for stage in stages:
                if not isinstance(stage, fusion.LayerStage):
                    for layer in stage.layers:
                        layer.forget_saved()
        saved = []
        with forward_pass():  # a child that appears twice keeps a record per call, also under a bare .forward()
            for stage in stages:
                x, kept = stage.forward(x, training)
                saved.append(kept)
        self.save_for_backward(stages=list(zip(stages, saved)))
        return x

    def backward(self, dout, need_input_grad=True):
        """d loss / d output -> d loss / d input, through the stages in reverse.

        With ``need_input_grad=False`` the first stage skips its input gradient and None is returned.
        """
        stages = self.saved()["stages"]
        for k in range(len(stages) - 1, -1, -1):
            stage, kept = stages[k]
            dout = stage.backward(dout, kept, need_input_grad or k > 0)
        return dout
