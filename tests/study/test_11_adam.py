"""docs/study/11-adam.md, checked against nn.optim.Adam and nn.optim.AdamW."""

import math

import numpy as np

import nn
from tests.study.worked_examples import worked_example

PAGE = "11-adam.md"


def run(optimizer, parameter, grads):
    """Feed ``grads`` one per step; the parameter and the optimizer's state after each step."""
    trajectory, states = [], []
    for g in grads:
        parameter.grad[...] = g
        optimizer.step()
        trajectory.append(parameter.data.copy())
        states.append({k: np.copy(v) for k, v in optimizer.state[parameter].items()})
    return np.array(trajectory), states


def test_a_constant_gradient_moves_every_coordinate_by_lr(backend):
    """11-adam.md § Worked example: a constant gradient moves every coordinate by lr (bias correction)."""
    with worked_example(PAGE, "adam-constant") as page:
        parameter = nn.Parameter(page.array("p0"))
        lr, g = page.scalar("lr"), page.array("g")
        trajectory, _ = run(nn.optim.Adam([parameter], lr=lr), parameter, [g] * 3)
        page.check("adam", trajectory)
        beta1, beta2 = 0.9, 0.999  # Adam's defaults: the first step without the division by 1 - beta**t
        m, v = (1 - beta1) * g, (1 - beta2) * g * g
        page.check("uncorrected_first_step", page.array("p0") - lr * m / (np.sqrt(v) + 1e-8))


def test_three_steps_with_every_moment_written_out(backend):
    """11-adam.md § Worked example: three steps, every moment written out (m, v, m̂, v̂ from the optimizer's state)."""
    with worked_example(PAGE, "adam-steps") as page:
        parameter = nn.Parameter(np.array([page.scalar("p0")], dtype=np.float64))
        optimizer = nn.optim.Adam([parameter], lr=page.scalar("lr"))
        beta1, beta2 = optimizer.param_groups[0]["betas"]
        trajectory, states = run(optimizer, parameter, [[g] for g in page.scalar("grads")])
        page.check("p", trajectory[:, 0])
        page.check("m", [s["exp_avg"][0] for s in states])
        page.check("v", [s["exp_avg_sq"][0] for s in states])
        page.check("m_hat", [s["exp_avg"][0] / (1 - beta1 ** s["step"]) for s in states])
        page.check("v_hat", [s["exp_avg_sq"][0] / (1 - beta2 ** s["step"]) for s in states])
        # The step of the page's last line, lr * m_hat / (sqrt(v_hat) + eps), is the optimizer's step.
        steps = -np.diff(np.concatenate([[page.scalar("p0")], trajectory[:, 0]]))
        expected = [page.scalar("lr") * s["exp_avg"][0] / (1 - beta1 ** s["step"])
                    / (math.sqrt(s["exp_avg_sq"][0] / (1 - beta2 ** s["step"])) + 1e-8) for s in states]
        np.testing.assert_allclose(steps, expected, rtol=1e-12)


def test_l2_decay_is_normalized_away_and_decoupled_decay_is_not(backend):
    """11-adam.md § Worked example: L2 decay against decoupled decay (Adam vs AdamW)."""
    with worked_example(PAGE, "adam-vs-adamw") as page:
        options = {"lr": page.scalar("lr"), "weight_decay": page.scalar("weight_decay")}
        grads = [[g] for g in page.scalar("grads")]
        for key, optimizer_class in (("adam_l2", nn.optim.Adam), ("adamw", nn.optim.AdamW)):
            parameter = nn.Parameter(np.array([page.scalar("p0")], dtype=np.float64))
            trajectory, _ = run(optimizer_class([parameter], **options), parameter, grads)
            page.check(key, trajectory[:, 0])
