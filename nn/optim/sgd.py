"""Stochastic gradient descent with PyTorch's update rule."""

import re


from .optimizer import Optimizer, check_finite_at_least, check_fraction

# The checkpoint layout of SGD's momentum buffers before optimizers carried their hyper-parameters.
_BARE_BUFFER_KEY = re.compile(r"momentum_buffer\.(\d+)")


class SGD(Optimizer):
    """SGD with optional momentum, dampening, Nesterov momentum and L2 weight decay.

    For each parameter ``p`` with gradient ``g``, exactly as ``torch.optim.SGD``::

        g = -g                                   if maximize
        g = g + weight_decay * p
        b = g                                    (first step)
        b = momentum * b + (1 - dampening) * g   (later steps)        only when momentum > 0
        g = g + momentum * b  if nesterov  else  b                     only when momentum > 0
        p = p - lr * g

    State per parameter: ``momentum_buffer`` (only when momentum > 0).
    """

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, *,
                 maximize=False):
        super().__init__(params, {"lr": lr, "momentum": momentum, "dampening": dampening,
                                  "weight_decay": weight_decay, "nesterov": nesterov, "maximize": maximize})

    def _check(self, group):
        super()._check(group)
        check_fraction(self._name, "momentum", group["momentum"])
        check_finite_at_least(self._name, "weight_decay", group["weight_decay"], 0.0)
        check_finite_at_least(self._name, "dampening", group["dampening"], 0.0)
        if group["nesterov"] and (group["momentum"] == 0 or group["dampening"] != 0):
            raise ValueError(f"SGD: nesterov momentum needs momentum > 0 and dampening 0, got momentum "
                             f"{group['momentum']} and dampening {group['dampening']}")

    def _update(self, p, group, state):
        """The update rule, as written in the class docstring, in ``p``'s dtype."""
        scalar = p.dtype.type
        grad = -p.grad if group["maximize"] else p.grad
        if group["weight_decay"]:
            grad = grad + scalar(group["weight_decay"]) * p.data
        momentum = group["momentum"]
        if momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = grad.copy()
            else:
                buf *= scalar(momentum)
                buf += scalar(1 - group["dampening"]) * grad if group["dampening"] else grad
            grad = grad + scalar(momentum) * buf if group["nesterov"] else buf
        p.data -= scalar(group["lr"]) * grad

    def load_state_dict(self, state_dict):
        """As ``Optimizer.load_state_dict``; also takes the bare ``{"momentum_buffer.<i>": array}`` layout.

        That layout (older checkpoints) holds the buffers only: they are loaded and this optimizer's
        own hyper-parameters are kept.
        """
        bare = {key: _BARE_BUFFER_KEY.fullmatch(key) for key in state_dict}
        if all(bare.values()):
            converted = {f"state.{match.group(1)}.momentum_buffer": state_dict[key] for key, match in bare.items()}
            converted.update({key: value for key, value in super().state_dict().items()
                              if key.startswith("param_groups.")})
            state_dict = converted
        super().load_state_dict(state_dict)
