"""RMSprop (Hinton's lecture 6e) with PyTorch's update rule: centered form and momentum optional."""

import numpy as np

from .optimizer import Optimizer, check_finite_at_least, check_fraction


class RMSprop(Optimizer):
    """Divide the gradient by a running root-mean-square of its recent values.

    For each parameter ``p`` with gradient ``g``, exactly as ``torch.optim.RMSprop``::

        g = -g                                   if maximize
        g = g + weight_decay * p
        s = alpha * s + (1 - alpha) * g * g                  (s starts at 0)
        a = a + (1 - alpha) * (g - a)            if centered (a starts at 0)
        d = sqrt(s - a * a) + eps  if centered  else  sqrt(s) + eps
        b = momentum * b + g / d,  p = p - lr * b            if momentum > 0 (b starts at 0)
        p = p - lr * g / d                                   otherwise

    Centered, ``s - a*a`` estimates the gradient's variance instead of its second moment.
    State per parameter: ``step``, ``square_avg`` (s), ``momentum_buffer`` (b, with momentum),
    ``grad_avg`` (a, when centered).
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, *,
                 maximize=False):
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps, "weight_decay": weight_decay,
                                  "momentum": momentum, "centered": centered, "maximize": maximize})

    def _check(self, group):
        super()._check(group)
        check_fraction(self._name, "alpha", group["alpha"])
        check_fraction(self._name, "momentum", group["momentum"])
        check_finite_at_least(self._name, "eps", group["eps"], 0.0)
        check_finite_at_least(self._name, "weight_decay", group["weight_decay"], 0.0)

    def _update(self, p, group, state):
        scalar = p.dtype.type
        alpha, momentum = group["alpha"], group["momentum"]
        grad = -p.grad if group["maximize"] else p.grad
        if group["weight_decay"]:
            grad = grad + scalar(group["weight_decay"]) * p.data
        if "step" not in state:
            state.update(step=0, square_avg=np.zeros_like(p.data))
            if momentum > 0:
                state["momentum_buffer"] = np.zeros_like(p.data)
            if group["centered"]:
                state["grad_avg"] = np.zeros_like(p.data)
        state["step"] += 1
        square_avg = state["square_avg"]
        square_avg *= scalar(alpha)
        square_avg += scalar(1 - alpha) * (grad * grad)
        if group["centered"]:
            grad_avg = state["grad_avg"]
            grad_avg += scalar(1 - alpha) * (grad - grad_avg)
            denom = np.sqrt(square_avg - grad_avg * grad_avg)
        else:
            denom = np.sqrt(square_avg)
        denom += scalar(group["eps"])
        if momentum > 0:
            buf = state["momentum_buffer"]
            buf *= scalar(momentum)
            buf += grad / denom
            p.data -= scalar(group["lr"]) * buf
        else:
            p.data -= scalar(group["lr"]) * (grad / denom)
