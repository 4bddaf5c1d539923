"""docs/study/09-gradient-check.md, checked against nn.gradcheck and its central differences."""

import numpy as np

import nn
from nn.gradient_check import _numeric_grad
from tests.study.worked_examples import worked_example

PAGE = "09-gradient-check.md"


def central_difference_of_cube(x, eps, dtype):
    """The gradient check's own central difference, of f(x) = x³ computed in ``dtype``."""
    value = np.array([x], dtype=dtype)
    return _numeric_grad(lambda: float(value[0] ** 3), value, [0], eps)[0]


def test_central_differences_are_accurate_to_eps_squared():
    """09-gradient-check.md § Worked example: central against forward differences (pure arithmetic, no backend)."""
    with worked_example(PAGE, "central-difference") as page:
        x, eps = page.scalar("x"), page.scalar("eps")
        page.check("exact", 3 * x ** 2)
        page.check("central", central_difference_of_cube(x, eps, np.float64))
        page.check("forward", ((x + eps) ** 3 - x ** 3) / eps)


def test_float32_differences_drown_in_rounding_noise_and_float64_ones_do_not():
    """09-gradient-check.md § Worked example: float32 against float64 (pure arithmetic, no backend)."""
    with worked_example(PAGE, "float32-vs-float64") as page:
        epsilons = page.scalar("eps")
        for dtype in (np.float32, np.float64):
            page.check(np.dtype(dtype).name, [central_difference_of_cube(2.0, eps, dtype) for eps in epsilons])


class InputGradientOnePercentTooLarge(nn.Linear):
    """A deliberately wrong Linear: its dL/dx is 1.01 times the right one."""

    def backward(self, dout):
        return 1.01 * super().backward(dout)


def test_a_one_percent_error_in_one_gradient_fails_that_gradient_only(backend):
    """09-gradient-check.md § Worked example: what a failure looks like."""
    x = np.random.default_rng(1).standard_normal((2, 3))
    with worked_example(PAGE, "one-percent-wrong") as page:
        for key, layer in (("correct_layer", nn.Linear(3, 2, rng=0)),
                           ("wrong_input_gradient", InputGradientOnePercentTooLarge(3, 2, rng=0))):
            results = nn.gradcheck(layer, x)
            page.check("tensors", [r.tensor for r in results])
            page.check(key, ["PASS" if r.passed else "FAIL" for r in results])
        page.check("input_max_rel_err", results[0].max_rel_err, atol=1e-6)


def test_the_best_float32_step_and_the_error_it_gives():
    """09-gradient-check.md § Worked example: the best float32 step. ε* = (3u|f|/|f'''|)^(1/3), E(ε*) = ε*²|f'''|/2."""
    with worked_example(PAGE, "float32-step-size") as page:
        u = float(np.finfo(np.float32).eps) / 2  # unit roundoff 2⁻²⁴: half the gap between 1 and the next float32
        page.check("u", u, atol=0.005e-8)
        f, f3 = page.scalar("f"), page.scalar("f3")
        assert (f, f3) == (2.0 ** 3, 6)
        eps_star = (3 * u * f / f3) ** (1 / 3)
        page.check("eps_star", eps_star, atol=0.5e-4 * 0.1)
        page.check("error_bound", eps_star ** 2 * f3 / 2, atol=0.5e-6)
        measured = abs(central_difference_of_cube(2.0, eps_star, np.float32) - 12)
        page.check("measured_error", measured, atol=0.05e-5)
        assert measured <= eps_star ** 2 * f3 / 2
