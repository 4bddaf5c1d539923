"""``Sequential``: modules applied in order."""

from collections import OrderedDict

from .containers import ModuleSequence, _check_module


class Sequential(ModuleSequence):
    """Modules applied in order; ``backward`` runs them in reverse.

    ``Sequential(a, b, c)`` names its children "0", "1", "2", so parameter names read ``"0.weight"``
    as in PyTorch; ``Sequential(OrderedDict([("conv", a), ...]))`` names them by key. A subclass may
    also set its children as attributes, in order. ``model[1:3]`` is a ``Sequential`` of those
    children, under the same names; ``append``, ``insert`` and ``del`` work as on a list.

    ``forward`` and ``backward`` below are the reference. On the numba backend the execution layer
    runs a ``Sequential`` as a plan of compiled stages instead (``nn.execution.planner``): a
    ``Conv2d`` with the ``ReLU`` and ``MaxPool2d`` that follow it in one pass, a ``Linear`` with its
    ``ReLU``, ..., with the same ``Parameter`` objects and the result of the layers run one by one.
    """

    def __init__(self, *modules):
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            named = [(name, m, f"entry {name!r}") for name, m in modules[0].items()]
        else:
            named = [(str(i), m, f"argument {i}") for i, m in enumerate(modules)]
        for name, m, where in named:
            setattr(self, name, _check_module("Sequential", where, m))

    @property
    def per_sample(self):
        return all(m.per_sample for m in self)

    def _slice(self, named):
        return Sequential(OrderedDict(named))

    def named_stages(self):
        """``(name, module)`` per stage the current backend runs, in forward order, to time them one by one.

        The name joins the stage's children's names ("C1+relu1+S2"); the module runs that stage
        alone, with ``forward(x)`` and ``backward(dout, need_input_grad)``.
        """
        from .execution import planner  # here, not at the top: the execution layer imports the layers

        return planner.named_stages(self)

    def forward(self, x):
        """x -> the last child's output, each child applied to the previous one's."""
        for module in self:
            x = module(x)
        self.save_for_backward()  # nothing of its own: marks that backward has a forward to follow
        return x

    def backward(self, dout, need_input_grad=True):
        """d loss / d output -> d loss / d input, through the children in reverse.

        With ``need_input_grad=False`` the first child skips its input gradient and None is returned.
        """
        self.saved()
        modules = list(self)
        for k in range(len(modules) - 1, -1, -1):
            dout = modules[k].backward(dout, need_input_grad=need_input_grad or k > 0)
        return dout
