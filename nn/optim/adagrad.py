"""Adagrad (Duchi, Hazan & Singer, 2011) with PyTorch's update rule and learning-rate decay."""

import numpy as np

from .optimizer import Optimizer, check_finite_at_least


class Adagrad(Optimizer):
    """Divide each coordinate's step by the root of the sum of all its squared gradients so far.

    For each parameter ``p`` with gradient ``g``, at step ``t = 1, 2, ...``, exactly as ``torch.optim.Adagrad``::

        g = -g                                    if maximize
        g = g + weight_decay * p
        clr = lr / (1 + (t - 1) * lr_decay)
        s = s + g * g                             (s starts at initial_accumulator_value)
        p = p - clr * g / (sqrt(s) + eps)

    State per parameter: ``step`` (t) and ``sum`` (s), created with the optimizer, as PyTorch does.
    """

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10, *,
                 maximize=False):
        super().__init__(params, {"lr": lr, "lr_decay": lr_decay, "weight_decay": weight_decay,
                                  "initial_accumulator_value": initial_accumulator_value, "eps": eps,
                                  "maximize": maximize})
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, group, self.state.setdefault(p, {}))

    @staticmethod
    def _init_state(p, group, state):
        state.update(step=0, sum=np.full_like(p.data, group["initial_accumulator_value"]))

    def _check(self, group):
        super()._check(group)
        for option in ("lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            check_finite_at_least(self._name, option, group[option], 0.0)

    def _update(self, p, group, state):
        scalar = p.dtype.type
        grad = -p.grad if group["maximize"] else p.grad
        if group["weight_decay"]:
            grad = grad + scalar(group["weight_decay"]) * p.data
        if not state:  # a group added after construction
            self._init_state(p, group, state)
        state["step"] += 1
        clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        state["sum"] += grad * grad
        p.data -= scalar(clr) * (grad / (np.sqrt(state["sum"]) + scalar(group["eps"])))
