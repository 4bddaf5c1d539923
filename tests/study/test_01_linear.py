"""docs/study/01-linear.md, checked: the page's numbers are what nn.Linear computes."""

import numpy as np

import nn
from tests.study.worked_examples import worked_example


def test_linear_forward_and_the_three_gradients_by_hand(backend):
    """01-linear.md § Worked example: y = x Wᵀ + b, dW = doutᵀ x, db = Σ_n dout, dx = dout W."""
    with worked_example("01-linear.md", "linear") as page:
        W = page.array("W")
        layer = nn.Linear(W.shape[1], W.shape[0], dtype=np.float64)
        layer.weight.data[...] = W
        layer.bias.data[...] = page.array("b")
        page.check("y", layer(page.array("x")))
        dx = layer.backward(page.array("dout"))
        page.check("dW", layer.weight.grad)
        page.check("db", layer.bias.grad)
        page.check("dx", dx)
