"""docs/study/08-cosine-schedule.md, checked against lenet.training.recipe.learning_rate, nn.optim.SGD and its schedulers."""

import math

import numpy as np

import nn
from lenet.training.options import parse_args
from lenet.training.recipe import learning_rate
from tests.study.worked_examples import read_example, worked_example

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


MNIST_TRAINING_IMAGES = 60_000


def ulps_apart(a, b):
    return abs(a - b) / np.spacing(b)


def test_the_scheduler_gives_the_pages_eight_rates():
    """08-cosine-schedule.md § The same schedule as a scheduler object: CosineAnnealingLR, stepped per step."""
    page = read_example(PAGE, "cosine")
    optimizer = nn.optim.SGD([nn.Parameter(np.zeros(1))], lr=page.scalar("base_lr"))
    scheduler = nn.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=page.scalar("total_steps"))
    rates = []
    for _ in range(page.scalar("total_steps")):
        rates.append(optimizer.lr)
        scheduler.step()
    page.check("lr", rates)


def test_on_the_default_run_the_recursive_cosine_drifts_in_float64_but_not_in_float32():
    """08-cosine-schedule.md § Can train.py use the scheduler? The default run's 25,800 rates, in float64 and float32."""
    args = parse_args([])
    total = math.ceil((MNIST_TRAINING_IMAGES - args.validation_size) / args.batch_size) * args.epochs
    with worked_example(PAGE, "default-run-rates") as page:
        page.check("total_steps", total)
        page.check("base_lr", args.lr)
        cosine_gaps, float32_differing, multistep_differing = [], 0, 0
        cosine_optimizer = nn.optim.SGD([nn.Parameter(np.zeros(1))], lr=args.lr)
        step_optimizer = nn.optim.SGD([nn.Parameter(np.zeros(1))], lr=args.lr)
        cosine = nn.optim.lr_scheduler.CosineAnnealingLR(cosine_optimizer, T_max=total)
        multistep = nn.optim.lr_scheduler.MultiStepLR(step_optimizer, milestones=[total // 2, 3 * total // 4])
        for step in range(total):
            expected = learning_rate("cosine", args.lr, step, total)
            cosine_gaps.append(ulps_apart(cosine_optimizer.lr, expected))
            float32_differing += np.float32(cosine_optimizer.lr) != np.float32(expected)
            multistep_differing += step_optimizer.lr != learning_rate("step", args.lr, step, total)
            cosine.step()
            multistep.step()
        differing = np.flatnonzero(cosine_gaps)
        page.check("cosine_steps_differing", len(differing), atol=0)
        page.check("cosine_first_differing_step", differing[0], atol=0)
        page.check("cosine_max_ulps", max(cosine_gaps), atol=0)
        page.check("cosine_steps_differing_in_float32", float32_differing, atol=0)
        page.check("multistep_steps_differing", multistep_differing, atol=0)
