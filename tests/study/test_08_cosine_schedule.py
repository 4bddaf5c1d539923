"""docs/study/08-cosine-schedule.md, checked against lenet.training.recipe.learning_rate and nn.optim.SGD."""

import numpy as np

import nn
from tests.study.worked_examples import read_example, worked_example
from lenet.training.recipe import learning_rate

PAGE = "08-cosine-schedule.md"


def test_the_cosine_schedule_over_eight_steps():
    """08-cosine-schedule.md § Worked example: eight steps. lr(t) = lr₀ (1 + cos(π t / T)) / 2 (no backend)."""
    with worked_example(PAGE, "cosine") as page:
        base_lr, total = page.scalar("base_lr"), page.scalar("total_steps")
        page.check("lr", [learning_rate("cosine", base_lr, step, total) for step in range(total)])


def test_the_schedule_drives_sgd_down_by_the_sum_of_the_rates(backend):
    """08-cosine-schedule.md § Worked example: the schedule driving SGD. p moves by −Σ lr(t)."""
    schedule = read_example(PAGE, "cosine")
    base_lr, total = schedule.scalar("base_lr"), schedule.scalar("total_steps")
    with worked_example(PAGE, "cosine-sgd") as page:
        parameter = nn.Parameter(np.array([page.scalar("p0")], dtype=np.float64))
        optimizer = nn.optim.SGD([parameter], lr=base_lr)
        trajectory = []
        for step in range(total):
            optimizer.lr = learning_rate("cosine", base_lr, step, total)
            parameter.grad[...] = page.scalar("g")
            optimizer.step()
            trajectory.append(parameter.data[0])
        page.check("p_after", trajectory)
