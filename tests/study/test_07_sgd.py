"""docs/study/07-sgd.md, checked against nn.optim.SGD."""

import numpy as np
import pytest

import nn
from tests.study.worked_examples import read_example

PAGE = "07-sgd.md"
INPUTS = ("p0", "g", "lr")
VARIANTS = {
    "plain": {},
    "momentum": {"momentum": 0.9},
    "nesterov": {"momentum": 0.9, "nesterov": True},
    "weight_decay": {"weight_decay": 0.1},
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_three_sgd_steps_on_a_constant_gradient(backend, variant):
    """07-sgd.md § Worked example: three steps, four ways. p = p − lr·g with momentum b = μb + g, ..."""
    page = read_example(PAGE, "sgd")
    parameter = nn.Parameter(page.array("p0"))
    optimizer = nn.optim.SGD([parameter], lr=page.scalar("lr"), **VARIANTS[variant])
    steps = []
    for _ in range(3):
        parameter.grad[...] = page.array("g")
        optimizer.step()
        steps.append(parameter.data.copy())
    page.check(variant, np.array(steps))


def test_the_page_shows_exactly_the_variants_checked_here():
    """07-sgd.md § Worked example: every row of the block is an input or a variant checked above."""
    page = read_example(PAGE, "sgd")
    assert set(page.values) == set(INPUTS) | set(VARIANTS), (
        f"{page.where}: the block holds {sorted(page.values)}; the test checks {sorted(VARIANTS)} "
        f"from the inputs {list(INPUTS)}")
