"""The schedules against their closed forms (tests/naive.py), their state dicts, and bad input."""

import json

import numpy as np
import pytest

import nn
from nn.optim import SGD
from nn.optim.lr_scheduler import CosineAnnealingLR, MultiStepLR, StepLR
from tests.naive import naive_cosine_lr, naive_step_lr

EPOCHS = 25


def optimizer(lr=0.1):
    return SGD([nn.Parameter(np.zeros(2))], lr=lr, momentum=0.9)


def rates(scheduler, epochs=EPOCHS):
    """The lr of epochs 0 .. epochs-1, as the loop sees it (optimizer steps, then the scheduler steps)."""
    seen = []
    for _ in range(epochs):
        seen.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.optimizer.step()
        scheduler.step()
    return seen


@pytest.mark.parametrize("make,reference", [
    (lambda o: StepLR(o, step_size=4, gamma=0.5), lambda: naive_step_lr(0.1, EPOCHS, range(4, EPOCHS, 4), 0.5)),
    (lambda o: MultiStepLR(o, milestones=[12, 3, 3, 20]), lambda: naive_step_lr(0.1, EPOCHS, [3, 3, 12, 20], 0.1)),
    (lambda o: CosineAnnealingLR(o, T_max=10), lambda: naive_cosine_lr(0.1, EPOCHS, 10)),
    (lambda o: CosineAnnealingLR(o, T_max=7, eta_min=0.01), lambda: naive_cosine_lr(0.1, EPOCHS, 7, 0.01)),
], ids=["step", "multistep-repeated-milestone", "cosine-past-T_max", "cosine-eta_min"])
def test_the_recursive_rates_follow_the_closed_form(make, reference):
    np.testing.assert_allclose(rates(make(optimizer())), reference(), rtol=1e-12, atol=1e-15)


def test_the_closed_form_comparison_can_fail():
    """A cosine with T_max off by one is told apart by the comparison above."""
    assert not np.allclose(rates(CosineAnnealingLR(optimizer(), T_max=10)), naive_cosine_lr(0.1, EPOCHS, 11),
                           rtol=1e-12, atol=1e-15)


def test_every_group_follows_its_own_base_rate():
    a, b = nn.Parameter(np.zeros(1)), nn.Parameter(np.zeros(1))
    opt = SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1)
    scheduler = StepLR(opt, step_size=1, gamma=0.5)
    scheduler.step()
    scheduler.step()
    assert scheduler.get_last_lr() == [0.025, 0.25] == [g["lr"] for g in opt.param_groups]
    assert scheduler.base_lrs == [0.1, 1.0] and [g["initial_lr"] for g in opt.param_groups] == [0.1, 1.0]


@pytest.mark.parametrize("make", [
    lambda o: StepLR(o, 3), lambda o: MultiStepLR(o, [2, 5]), lambda o: CosineAnnealingLR(o, 6, eta_min=0.001),
], ids=["step", "multistep", "cosine"])
def test_a_run_resumed_from_json_state_dicts_continues_bit_for_bit(make, tmp_path):
    straight = rates(make(optimizer()), 12)
    first = make(optimizer())
    head = rates(first, 5)
    nn.save(first.optimizer.state_dict(), tmp_path / "optimizer.npz")
    saved_schedule = json.loads(json.dumps(first.state_dict()))  # a checkpoint keeps it in its JSON metadata
    resumed_optimizer = optimizer(lr=0.7)
    resumed_optimizer.load_state_dict(nn.load(tmp_path / "optimizer.npz")[0])
    resumed = make(resumed_optimizer)
    resumed.load_state_dict(saved_schedule)
    assert head + rates(resumed, 7) == straight


def test_a_state_dict_of_another_schedule_is_refused():
    with pytest.raises(ValueError, match="expected the keys"):
        StepLR(optimizer(), 3).load_state_dict(CosineAnnealingLR(optimizer(), 5).state_dict())


def test_resuming_by_last_epoch_needs_the_optimizers_initial_lr():
    with pytest.raises(KeyError, match="initial_lr"):
        CosineAnnealingLR(optimizer(), T_max=5, last_epoch=3)


@pytest.mark.parametrize("make,words", [
    (lambda o: StepLR(o, step_size=0), "step_size"), (lambda o: StepLR(o, step_size=2.5), "step_size"),
    (lambda o: MultiStepLR(o, milestones=[1.5]), "milestones"), (lambda o: StepLR(o, 2, gamma=-1.0), "gamma"),
    (lambda o: CosineAnnealingLR(o, T_max=0), "T_max"), (lambda o: CosineAnnealingLR(o, 5, eta_min=-1.0), "eta_min"),
    (lambda o: StepLR(o, 2, last_epoch=-2), "last_epoch"),
])
def test_bad_options_are_rejected(make, words):
    with pytest.raises(ValueError, match=words):
        make(optimizer())


def test_a_scheduler_needs_one_of_our_optimizers():
    with pytest.raises(TypeError, match="expected an nn.optim optimizer"):
        StepLR(object(), 3)
