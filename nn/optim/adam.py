"""Adam (Kingma & Ba, 2015) with PyTorch's update rule, L2 or decoupled weight decay, and AMSGrad."""

import math

import numpy as np

from .optimizer import Optimizer, check_finite_at_least, check_fraction


class Adam(Optimizer):
    """Adam: a step of about ``lr`` per coordinate, scaled by running moments of the gradient.

    For each parameter ``p`` with gradient ``g``, at step ``t = 1, 2, ...``, exactly as ``torch.optim.Adam``::

        g = -g                               if maximize
        p = p * (1 - lr * weight_decay)      if decoupled_weight_decay (AdamW)
        g = g + weight_decay * p             otherwise (L2, folded into the gradient)
        m = m + (1 - beta1) * (g - m)        = beta1 * m + (1 - beta1) * g      (m, v start at 0)
        v = beta2 * v + (1 - beta2) * g * g
        v_max = max(v_max, v)                if amsgrad, and v_max stands for v below
        p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    The last line is ``p - lr * m_hat / (sqrt(v_hat) + eps)`` with the bias-corrected moments
    ``m_hat = m / (1 - beta1**t)``, ``v_hat = v / (1 - beta2**t)`` (docs/study/11-adam.md derives
    why dividing by ``1 - beta**t`` undoes the zero start). State per parameter: ``step`` (t),
    ``exp_avg`` (m), ``exp_avg_sq`` (v) and, with amsgrad, ``max_exp_avg_sq``.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, *,
                 maximize=False, decoupled_weight_decay=False):
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                                  "amsgrad": amsgrad, "maximize": maximize,
                                  "decoupled_weight_decay": decoupled_weight_decay})

    def _check(self, group):
        super()._check(group)
        betas = group["betas"]
        if len(betas) != 2:
            raise ValueError(f"{self._name}: betas must be a pair (beta1, beta2), got {betas!r}")
        group["betas"] = tuple(betas)
        check_fraction(self._name, "betas[0]", betas[0])
        check_fraction(self._name, "betas[1]", betas[1])
        check_finite_at_least(self._name, "eps", group["eps"], 0.0)
        check_finite_at_least(self._name, "weight_decay", group["weight_decay"], 0.0)

    def _update(self, p, group, state):
        scalar = p.dtype.type
        lr, (beta1, beta2), weight_decay = group["lr"], group["betas"], group["weight_decay"]
        grad = -p.grad if group["maximize"] else p.grad
        if weight_decay and group["decoupled_weight_decay"]:
            p.data *= scalar(1 - lr * weight_decay)
        elif weight_decay:
            grad = grad + scalar(weight_decay) * p.data
        if "step" not in state:
            state.update(step=0, exp_avg=np.zeros_like(p.data), exp_avg_sq=np.zeros_like(p.data))
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(p.data)
        state["step"] += 1
        step, exp_avg, exp_avg_sq = state["step"], state["exp_avg"], state["exp_avg_sq"]
        exp_avg += scalar(1 - beta1) * (grad - exp_avg)
        exp_avg_sq *= scalar(beta2)
        exp_avg_sq += scalar(1 - beta2) * (grad * grad)
        if group["amsgrad"]:
            exp_avg_sq = np.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
        step_size = lr / (1 - beta1 ** step)
        denom = np.sqrt(exp_avg_sq) / scalar(math.sqrt(1 - beta2 ** step)) + scalar(group["eps"])
        p.data -= scalar(step_size) * (exp_avg / denom)
