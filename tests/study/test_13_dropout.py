"""docs/study/13-dropout.md, checked against nn.Dropout: its seeded mask, the scaling, backward and eval."""

import numpy as np

import nn
from tests.study.worked_examples import worked_example

PAGE = "13-dropout.md"


def test_one_mask_scales_the_kept_values_and_is_reused_by_backward(backend):
    """13-dropout.md § Worked example: one mask."""
    with worked_example(PAGE, "dropout-mask") as page:
        x, p, seed = page.array("x"), page.scalar("p"), page.scalar("seed")
        u = np.random.default_rng(seed).random(x.shape)
        page.check("u", u[0])
        layer = nn.Dropout(p, rng=seed)
        y = layer(x)
        page.check("keep", u >= p)
        page.check("y", y)
        page.check("dx", layer.backward(page.array("dout")))
        page.check("y_eval", layer.eval()(x))


def test_the_expected_activation_is_kept(backend):
    """13-dropout.md § Worked example: the expectation is kept."""
    with worked_example(PAGE, "dropout-expectation") as page:
        p = page.scalar("p")
        y = nn.Dropout(p, rng=page.scalar("seed"))(np.ones(page.scalar("size")))
        page.check("kept_fraction", np.count_nonzero(y) / y.size)
        page.check("kept_value", y.max())
        page.check("mean", y.mean())
