"""docs/study/07-sgd.md, checked against nn.optim.SGD."""

import numpy as np
import pytest

import nn
from tests.study.worked_examples import read_example, worked_example

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


def test_sgd_nesterov_stores_the_look_ahead_points_of_the_original_form(backend):
    """07-sgd.md § Worked example: the rewrite on f(p) = p²/2. φ = θ + μ·v of Nesterov's original form."""
    with worked_example(PAGE, "nesterov-rewrite") as page:
        lr, mu = page.scalar("lr"), page.scalar("mu")
        theta, velocity, thetas, lookaheads = page.scalar("theta0"), 0.0, [], []
        for _ in range(3):  # the original form, with f'(p) = p evaluated at the look-ahead point
            velocity = mu * velocity - lr * (theta + mu * velocity)
            theta += velocity
            thetas.append(theta)
            lookaheads.append(theta + mu * velocity)
        page.check("theta", thetas)
        parameter = nn.Parameter(np.array([page.scalar("theta0")], dtype=np.float64))
        optimizer = nn.optim.SGD([parameter], lr=lr, momentum=mu, nesterov=True)
        stored = []
        for _ in range(3):
            parameter.grad[...] = parameter.data  # f'(p) = p at the stored parameters
            optimizer.step()
            stored.append(parameter.data[0])
        page.check("lookahead", stored)
        np.testing.assert_allclose(stored, lookaheads, rtol=1e-14)
