"""docs/study/02-relu.md, checked: the page's numbers are what nn.ReLU computes."""

import nn
from tests.study.worked_examples import worked_example


def test_relu_passes_the_gradient_where_the_input_was_positive(backend):
    """02-relu.md § Worked example: y = max(x, 0), dx = dout · [x > 0], and 0 at x = 0."""
    with worked_example("02-relu.md", "relu") as page:
        x = page.array("x")
        layer = nn.ReLU()
        page.check("y", layer(x))
        page.check("mask", x > 0)
        page.check("dx", layer.backward(page.array("dout")))
