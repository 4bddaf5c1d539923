"""docs/study/14-sigmoid-tanh-avgpool.md, checked against nn.Sigmoid, nn.Tanh, nn.LeakyReLU, nn.AvgPool2d,
nn.Subsampling and lenet.lenet1998 (the scaled tanh, C3's table I, the parameter counts)."""

import numpy as np

import nn
from lenet.lenet1998 import C3_TABLE, LeNet1998, ScaledTanh
from tests.study.worked_examples import worked_example

PAGE = "14-sigmoid-tanh-avgpool.md"


def image(page, key):
    array = page.array(key)
    return array.reshape(1, 1, *array.shape)


def test_sigmoid_tanh_and_leaky_relu_and_their_derivatives(backend):
    """14-sigmoid-tanh-avgpool.md § Sigmoid and tanh: the derivative from the output."""
    with worked_example(PAGE, "activations") as page:
        x, dout = page.array("x"), page.array("dout")
        for key, layer in (("sigmoid", nn.Sigmoid()), ("tanh", nn.Tanh()),
                           ("leaky_relu", nn.LeakyReLU(page.scalar("negative_slope")))):
            page.check(key, layer(x))
            page.check(f"{key}_dx", layer.backward(dout))


def test_average_pooling_shares_each_window_gradient_equally(backend):
    """14-sigmoid-tanh-avgpool.md § Average pooling (worked example avgpool-2x2)."""
    with worked_example(PAGE, "avgpool-2x2") as page:
        layer = nn.AvgPool2d(2)
        page.check("y", layer(image(page, "x"))[0, 0])
        page.check("dx", layer.backward(image(page, "dout"))[0, 0])


def test_padding_counts_as_zeros_unless_told_otherwise(backend):
    """14-sigmoid-tanh-avgpool.md § Average pooling (worked example avgpool-padding)."""
    with worked_example(PAGE, "avgpool-padding") as page:
        x = image(page, "x")
        for suffix, count_include_pad in (("count_include_pad", True), ("exclude_pad", False)):
            layer = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=count_include_pad)
            page.check(f"y_{suffix}", layer(x)[0, 0])
            page.check(f"dx_{suffix}", layer.backward(np.ones((1, 1, 2, 2)))[0, 0])


def test_the_scaled_tanh_maps_one_to_one(backend):
    """14-sigmoid-tanh-avgpool.md § The LeNet-5 of 1998 (worked example scaled-tanh)."""
    with worked_example(PAGE, "scaled-tanh") as page:
        layer = ScaledTanh()
        page.check("f", layer(page.array("a")))
        page.check("df", layer.backward(np.ones(3)))


def test_subsampling_is_a_one_weight_linear_layer_per_map_over_the_average(backend):
    """14-sigmoid-tanh-avgpool.md § The LeNet-5 of 1998 (worked example subsampling)."""
    with worked_example(PAGE, "subsampling") as page:
        layer = nn.Subsampling(1, dtype=np.float64)
        layer.weight.data[...] = page.scalar("weight")
        layer.bias.data[...] = page.scalar("bias")
        page.check("y", layer(image(page, "x"))[0, 0])
        page.check("dx", layer.backward(image(page, "dout"))[0, 0])
        page.check("dweight", layer.weight.grad[0])
        page.check("dbias", layer.bias.grad[0])


def test_c3_connects_by_table_one_with_the_papers_parameter_count():
    """14-sigmoid-tanh-avgpool.md § The LeNet-5 of 1998 (worked example c3-table)."""
    model = LeNet1998(seed=0)
    with worked_example(PAGE, "c3-table") as page:
        page.check("inputs_per_map", [len(inputs) for inputs in C3_TABLE])
        page.check("connections", int(model.C3.mask.sum()))
        page.check("trainable_weights", np.count_nonzero(model.C3.weight.data))
        page.check("parameters", np.count_nonzero(model.C3.weight.data) + model.C3.bias.size)
        page.check("total_trainable", sum(np.count_nonzero(p.data) for p in model.parameters()))
