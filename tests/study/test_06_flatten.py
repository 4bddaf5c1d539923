"""docs/study/06-flatten.md, checked against nn.Flatten."""

import nn
from tests.study.worked_examples import worked_example


def test_flatten_and_its_gradient_are_reshapes(backend):
    """06-flatten.md § Worked example: y = x.reshape(N, -1), dx = dout.reshape(x.shape)."""
    with worked_example("06-flatten.md", "flatten") as page:
        layer = nn.Flatten()
        page.check("y", layer(page.array("x")))
        page.check("dx", layer.backward(page.array("dout")))
