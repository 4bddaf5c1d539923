"""Learning-rate schedules with PyTorch's names and arithmetic: StepLR, MultiStepLR, CosineAnnealingLR.

A scheduler wraps an optimizer and sets each parameter group's ``lr``. It counts *epochs*
(``last_epoch``), but an epoch is whatever the loop calls ``step()`` after: once per epoch or
once per optimizer step. The loop is PyTorch's::

    scheduler = CosineAnnealingLR(optimizer, T_max=100)     # sets lr for epoch 0 (the base lr)
    for epoch in range(100):
        train_one_epoch(optimizer)                          # optimizer.step() inside
        scheduler.step()                                    # lr for the next epoch

Like PyTorch's, ``step()`` computes the new rate from the group's *current* ``lr`` (the
"chainable" form: StepLR multiplies by gamma at each boundary, CosineAnnealingLR multiplies by a
ratio of cosines), so the rates it produces can differ in the last bits from the closed forms
``_get_closed_form_lr`` gives; docs/study/08-cosine-schedule.md measures by how much.

``state_dict()`` is a JSON-able dict (numbers and lists), so a checkpoint can keep it in its
metadata; with the optimizer's own state dict (which holds each group's current ``lr`` and
``initial_lr``) a resumed run continues its schedule exactly.
"""

import math
from bisect import bisect_right
from collections import Counter

from .optimizer import Optimizer, check_finite_at_least


class LRScheduler:
    """Base class: ``base_lrs`` (each group's ``initial_lr``), ``last_epoch``, ``step()``, ``get_last_lr()``."""

    def __init__(self, optimizer, last_epoch=-1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected an nn.optim optimizer, got {type(optimizer).__name__}")
        if not isinstance(last_epoch, int) or last_epoch < -1:
            raise ValueError(f"{type(self).__name__}: last_epoch must be an int >= -1, got {last_epoch!r}")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for g, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"{type(self).__name__}: param_groups[{g}] has no 'initial_lr', which resuming "
                                   f"with last_epoch={last_epoch} needs: load the optimizer's state dict first")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._step_count = 0
        self._is_initial = True
        self.step()
        self._is_initial = False

    def get_lr(self):
        """The rates for epoch ``last_epoch``, one per group, from the groups' current ``lr``."""
        raise NotImplementedError

    def step(self):
        """Advance one epoch and set every group's ``lr`` for it."""
        self._step_count += 1
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr(), strict=True):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self):
        """The rates the last ``step()`` set, one per group."""
        return list(self._last_lr)

    def _current_lrs(self):
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self):
        """Everything but the optimizer, as JSON-able values (PyTorch's ``__dict__`` minus ``optimizer``)."""
        return {key: list(value) if isinstance(value, list) else value
                for key, value in self.__dict__.items() if key not in ("optimizer", "_is_initial")}

    def load_state_dict(self, state_dict):
        """Restore ``state_dict()``'s values; the keys must be exactly this scheduler's."""
        expected = set(self.state_dict())
        if set(state_dict) != expected:
            raise ValueError(f"{type(self).__name__}.load_state_dict: expected the keys {sorted(expected)}, "
                             f"got {sorted(state_dict)}")
        self.__dict__.update({key: list(value) if isinstance(value, (list, tuple)) else value
                              for key, value in state_dict.items()})


def _check_positive_int(name, option, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name}: {option} must be an int > 0, got {value!r}")


class StepLR(LRScheduler):
    """Multiply the rate by ``gamma`` every ``step_size`` epochs: ``lr = base_lr * gamma ** (epoch // step_size)``.

    ``step()`` multiplies the current rate by ``gamma`` when ``epoch`` is a multiple of ``step_size``.
    """

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        _check_positive_int("StepLR", "step_size", step_size)
        check_finite_at_least("StepLR", "gamma", gamma, 0.0)
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._current_lrs()
        return [lr * self.gamma for lr in self._current_lrs()]

    def _get_closed_form_lr(self):
        return [base_lr * self.gamma ** (self.last_epoch // self.step_size) for base_lr in self.base_lrs]


class MultiStepLR(LRScheduler):
    """Multiply the rate by ``gamma`` at each milestone: ``lr = base_lr * gamma ** (milestones passed)``.

    A milestone listed twice multiplies by ``gamma**2`` there. ``milestones`` is kept as a sorted
    list (PyTorch keeps a ``Counter``; a list is the same multiset and stays JSON-able).
    """

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        milestones = list(milestones)
        for m in milestones:
            if isinstance(m, bool) or not isinstance(m, int):
                raise ValueError(f"MultiStepLR: milestones must be ints, got {m!r}")
        check_finite_at_least("MultiStepLR", "gamma", gamma, 0.0)
        self.milestones, self.gamma = sorted(milestones), gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        count = Counter(self.milestones)[self.last_epoch]
        if not count:
            return self._current_lrs()
        return [lr * self.gamma ** count for lr in self._current_lrs()]

    def _get_closed_form_lr(self):
        return [base_lr * self.gamma ** bisect_right(self.milestones, self.last_epoch) for base_lr in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Half a cosine from ``base_lr`` down to ``eta_min`` over ``T_max`` epochs (SGDR without restarts).

    Closed form: ``lr(e) = eta_min + (base_lr - eta_min) * (1 + cos(pi * e / T_max)) / 2``.
    ``step()`` uses PyTorch's recursive form, the closed form's ratio between consecutive epochs::

        lr(e) = eta_min + (lr(e-1) - eta_min) * (1 + cos(pi * e / T_max)) / (1 + cos(pi * (e-1) / T_max))

    At ``e = T_max + 1`` (mod ``2 T_max``) the denominator is 0, so that epoch adds
    ``(base_lr - eta_min) * (1 - cos(pi / T_max)) / 2`` instead: past ``T_max`` the rate climbs
    back up along the cosine, as in PyTorch.
    """

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        _check_positive_int("CosineAnnealingLR", "T_max", T_max)
        check_finite_at_least("CosineAnnealingLR", "eta_min", eta_min, 0.0)
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        e, T, eta_min = self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return self._current_lrs()
        if self._step_count == 1 and e > 0:
            return [eta_min + (base_lr - eta_min) * (1 + math.cos(e * math.pi / T)) / 2 for base_lr in self.base_lrs]
        if (e - 1 - T) % (2 * T) == 0:
            return [lr + (base_lr - eta_min) * (1 - math.cos(math.pi / T)) / 2
                    for base_lr, lr in zip(self.base_lrs, self._current_lrs())]
        return [(1 + math.cos(math.pi * e / T)) / (1 + math.cos(math.pi * (e - 1) / T)) * (lr - eta_min) + eta_min
                for lr in self._current_lrs()]

    def _get_closed_form_lr(self):
        return [self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
                for base_lr in self.base_lrs]
