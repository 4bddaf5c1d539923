"""docs/study/05-maxpool2d.md, checked against nn.MaxPool2d and the backend's pooling kernels."""

import pytest

import nn
from nn import ops
from tests.study.worked_examples import worked_example

PAGE = "05-maxpool2d.md"


def image(page, key):
    array = page.array(key)
    return array.reshape(1, 1, *array.shape)


@pytest.mark.parametrize("example, kernel, stride", [
    ("pool-2x2", 2, 2),
    ("pool-tie", 2, 2),
    ("pool-overlap", 2, 1),
], ids=["routing-to-the-winner", "ties-go-to-the-first-maximum", "overlapping-windows-add-up"])
def test_the_gradient_goes_to_the_window_maximum(backend, example, kernel, stride):
    """05-maxpool2d.md § Worked example: 4×4, window 2, stride 2 / a tie / overlapping windows."""
    with worked_example(PAGE, example) as page:
        x = image(page, "x")
        layer = nn.MaxPool2d(kernel, stride=stride)
        page.check("y", layer(x)[0, 0])
        if "argmax" in page.values:
            page.check("argmax", ops.maxpool2d_forward(x, kernel, kernel, stride, stride)[1][0, 0])
        page.check("dx", layer.backward(image(page, "dout"))[0, 0])
