"""Every optimizer and schedule against PyTorch in float64; skipped where PyTorch is not importable.

Optimizers: 5 steps on two parameters in two groups (the second with its own lr), with the same
gradients fed to both, on both backends. Schedules: 12 epochs, past T_max and across milestones,
and a run resumed from the state dicts half-way.
"""

import numpy as np
import pytest

import nn
from nn.optim import SGD, Adagrad, Adam, AdamW, RMSprop, lr_scheduler

torch = pytest.importorskip("torch")

TOLERANCE = 1e-8
STEPS = 5

CASES = [
    (SGD, {"lr": 0.1}),
    (SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.2, "weight_decay": 0.01}),
    (SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}),
    (SGD, {"lr": 0.05, "momentum": 0.5, "maximize": True}),
    (Adam, {}),
    (Adam, {"lr": 0.01, "betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.1, "amsgrad": True}),
    (Adam, {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True, "maximize": True}),
    (AdamW, {}),
    (AdamW, {"lr": 0.01, "weight_decay": 0.3, "amsgrad": True}),
    (RMSprop, {}),
    (RMSprop, {"lr": 0.01, "alpha": 0.9, "eps": 1e-6, "weight_decay": 0.1, "momentum": 0.8, "centered": True}),
    (Adagrad, {}),
    (Adagrad, {"lr": 0.1, "lr_decay": 0.3, "weight_decay": 0.1, "initial_accumulator_value": 0.5, "eps": 1e-8}),
]


def case_id(case):
    cls, options = case
    return cls.__name__ + "".join(f"-{k}={v}" for k, v in options.items())


def twin_runs(optimizer_class, options, steps, seed=0):
    """Our optimizer and PyTorch's, fed the same gradients; the parameters after each step, both sides."""
    rng = np.random.default_rng(seed)
    initial = [rng.standard_normal((3, 4)), rng.standard_normal(5)]
    ours = [nn.Parameter(a) for a in initial]
    theirs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in initial]
    groups = lambda params: [{"params": [params[0]]}, {"params": [params[1]], "lr": 0.03}]  # noqa: E731
    our_opt = optimizer_class(groups(ours), **options)
    their_opt = getattr(torch.optim, optimizer_class.__name__)(groups(theirs), **options)
    history = []
    for _ in range(steps):
        for p, t in zip(ours, theirs):
            g = rng.standard_normal(p.shape)
            p.grad[...] = g
            t.grad = torch.tensor(g, dtype=torch.float64)
        our_opt.step()
        their_opt.step()
        history.append(([p.data.copy() for p in ours], [t.detach().numpy().copy() for t in theirs]))
    return history, (our_opt, ours), (their_opt, theirs)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_five_steps_agree_with_pytorch_in_float64(case, backend):
    with nn.use_backend(backend):
        history, _, _ = twin_runs(*case, STEPS)
    for step, (ours, theirs) in enumerate(history, start=1):
        for a, b in zip(ours, theirs):
            assert np.max(np.abs(a - b)) <= TOLERANCE, f"step {step}: differs from PyTorch by {np.max(np.abs(a - b))}"


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_the_state_holds_pytorchs_buffers_under_pytorchs_names(case):
    _, (our_opt, ours), (their_opt, theirs) = twin_runs(*case, 2)
    for p, t in zip(ours, theirs):
        their_state = their_opt.state[t]
        assert set(our_opt.state[p]) == set(their_state)
        for name, value in their_state.items():
            np.testing.assert_allclose(np.asarray(our_opt.state[p][name]), value.detach().numpy(),
                                       rtol=0, atol=TOLERANCE, err_msg=name)
    their_groups = their_opt.state_dict()["param_groups"]
    for ours_group, their_group in zip(our_opt.param_groups, their_groups):
        for option, value in ours_group.items():
            if option != "params":
                assert their_group[option] == value, option


def test_the_agreement_check_can_fail():
    """PyTorch's Adam with another eps must be told apart at the tolerance used above."""
    history, _, _ = twin_runs(Adam, {"lr": 0.01, "eps": 1e-3}, STEPS)
    ours_eps_1e3 = history[-1][0][0]
    other, _, _ = twin_runs(Adam, {"lr": 0.01, "eps": 1e-3 * (1 + 1e-4)}, STEPS)
    assert np.max(np.abs(ours_eps_1e3 - other[-1][1][0])) > TOLERANCE


SCHEDULES = [
    ("StepLR", {"step_size": 3, "gamma": 0.5}),
    ("StepLR", {"step_size": 1}),
    ("MultiStepLR", {"milestones": [2, 5, 5, 9], "gamma": 0.3}),
    ("CosineAnnealingLR", {"T_max": 5}),
    ("CosineAnnealingLR", {"T_max": 7, "eta_min": 0.001}),
]
EPOCHS = 12


def schedule_twins(name, options):
    our_opt = SGD([{"params": [nn.Parameter(np.zeros(1))]}, {"params": [nn.Parameter(np.zeros(1))], "lr": 0.02}],
                  lr=0.1, momentum=0.9)
    their_opt = torch.optim.SGD([{"params": [torch.zeros(1, requires_grad=True)]},
                                 {"params": [torch.zeros(1, requires_grad=True)], "lr": 0.02}], lr=0.1, momentum=0.9)
    return (getattr(lr_scheduler, name)(our_opt, **options),
            getattr(torch.optim.lr_scheduler, name)(their_opt, **options))


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("name,options", SCHEDULES, ids=[f"{n}-{o}" for n, o in SCHEDULES])
def test_twelve_epochs_of_a_schedule_agree_with_pytorch(name, options, backend):
    with nn.use_backend(backend):
        check_twelve_epochs(*schedule_twins(name, options))


def check_twelve_epochs(ours, theirs):
    for epoch in range(EPOCHS):
        assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr(), rel=0, abs=TOLERANCE), f"epoch {epoch}"
        assert [g["lr"] for g in ours.optimizer.param_groups] == ours.get_last_lr()
        ours.optimizer.step()
        theirs.optimizer.step()
        ours.step()
        theirs.step()


@pytest.mark.parametrize("name,options", SCHEDULES, ids=[f"{n}-{o}" for n, o in SCHEDULES])
def test_a_schedule_resumed_from_state_dicts_continues_as_pytorchs_uninterrupted_one(name, options):
    ours, theirs = schedule_twins(name, options)
    for _ in range(6):
        theirs.optimizer.step()  # PyTorch warns when a schedule steps before its optimizer
        ours.step()
        theirs.step()
    saved_optimizer, saved_schedule = ours.optimizer.state_dict(), ours.state_dict()
    # A fresh run's optimizer and scheduler, built with other rates: the state dicts must set them.
    resumed_opt = SGD([{"params": [nn.Parameter(np.zeros(1))]}, {"params": [nn.Parameter(np.zeros(1))], "lr": 0.7}],
                      lr=0.5, momentum=0.9)
    resumed_opt.load_state_dict(saved_optimizer)
    resumed = getattr(lr_scheduler, name)(resumed_opt, **options)
    resumed.load_state_dict(saved_schedule)
    for epoch in range(6, EPOCHS):
        assert resumed.get_last_lr() == pytest.approx(theirs.get_last_lr(), rel=0, abs=TOLERANCE), f"epoch {epoch}"
        theirs.optimizer.step()
        resumed.step()
        theirs.step()
