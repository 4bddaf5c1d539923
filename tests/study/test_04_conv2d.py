"""docs/study/04-conv2d.md, checked against nn.Conv2d and its im2col/col2im (nn.ops, the NumPy reference)."""

import numpy as np

import nn
from nn import ops
from tests.study.worked_examples import read_example, worked_example

PAGE = "04-conv2d.md"
KERNEL = (2, 2, 1, 1, 0, 0)  # kh, kw, sh, sw, ph, pw of the page's examples


def conv_from_page(page):
    """A 1 -> 1 channel Conv2d holding the page's 2-D kernel W and bias b."""
    kernel = page.array("W")
    layer = nn.Conv2d(1, 1, kernel.shape, dtype=np.float64)
    layer.weight.data[0, 0] = kernel
    layer.bias.data[...] = page.scalar("b")
    return layer


def image(page, key):
    """The page's 2-D array as one NCHW image (1, 1, H, W)."""
    array = page.array(key)
    return array.reshape(1, 1, *array.shape)


def test_the_definition_slides_the_kernel_over_the_image(backend):
    """04-conv2d.md § Worked example: the definition. y[oy, ox] = b + Σ_ij W[i, j] x[oy + i, ox + j]."""
    with worked_example(PAGE, "conv2d-direct") as page:
        page.check("y", conv_from_page(page)(image(page, "x"))[0, 0])


def test_im2col_makes_the_convolution_one_matrix_product(backend):
    """04-conv2d.md § Worked example: im2col. One row per window; Y = col @ W2ᵀ + b is y again."""
    direct = read_example(PAGE, "conv2d-direct")
    with worked_example(PAGE, "im2col") as page:
        col = ops.im2col(image(direct, "x"), *KERNEL)
        page.check("col", col)
        page.check("Y", col @ page.array("W2").T + direct.scalar("b"))


def test_backward_is_dW_equals_dY_transposed_col_and_dx_equals_col2im(backend):
    """04-conv2d.md § Worked example: backward. dW = dYᵀ col, db = Σ dout, dcol = dY W2, dx = col2im(dcol)."""
    direct = read_example(PAGE, "conv2d-direct")
    layer = conv_from_page(direct)
    layer(image(direct, "x"))
    with worked_example(PAGE, "conv2d-backward") as page:
        dout = image(page, "dout")
        dx = layer.backward(dout)
        page.check("dW", layer.weight.grad[0, 0])
        page.check("db", layer.bias.grad[0])
        page.check("dcol", dout.reshape(-1, 1) @ layer.weight.data.reshape(1, -1))
        page.check("dx", dx[0, 0])


def test_col2im_sums_overlapping_windows_and_is_the_adjoint_of_im2col(backend):
    """04-conv2d.md § Worked example: col2im adds up, and is the adjoint. ⟨im2col(x), c⟩ = ⟨x, col2im(c)⟩."""
    direct = read_example(PAGE, "conv2d-direct")
    x = image(direct, "x")
    dcol = read_example(PAGE, "conv2d-backward").array("dcol")
    with worked_example(PAGE, "col2im") as page:
        ones = np.ones_like(ops.im2col(x, *KERNEL))
        page.check("windows_covering", ops.col2im(ones, x.shape, *KERNEL)[0, 0])
        page.check("im2col_x_dot_dcol", np.sum(ops.im2col(x, *KERNEL) * dcol))
        page.check("x_dot_col2im_dcol", np.sum(x * ops.col2im(dcol, x.shape, *KERNEL)))


STRIDED = (3, 3, 2, 2, 1, 1)  # kh, kw, sh, sw, ph, pw of the stride-and-padding example


def strided_conv(page):
    layer = nn.Conv2d(1, 1, 3, stride=2, padding=1, dtype=np.float64)
    layer.weight.data[0, 0] = page.array("W")
    return layer


def full_correlation(array, kernel, padding):
    """Cross-correlate a 2-D ``array`` with a 2-D ``kernel`` after zero-padding: a Conv2d, 1 channel, no bias."""
    layer = nn.Conv2d(1, 1, kernel.shape, padding=padding, bias=False, dtype=np.float64)
    layer.weight.data[0, 0] = kernel
    return layer(array.reshape(1, 1, *array.shape))[0, 0]


def test_col2im_with_stride_and_padding_drops_the_border_and_sums_overlaps(backend):
    """04-conv2d.md § Worked example: col2im with stride and padding. Pixel (r, c) gets dout·W from every window reading it."""
    with worked_example(PAGE, "col2im-stride-padding") as page:
        x = np.zeros((1, 1, 5, 5))
        layer = strided_conv(page)
        layer(x)
        page.check("dx", layer.backward(image(page, "dout"))[0, 0])
        ones = np.ones_like(ops.im2col(x, *STRIDED))
        page.check("windows_covering", ops.col2im(ones, x.shape, *STRIDED)[0, 0])


def test_dx_is_the_full_convolution_of_dout_with_the_rotated_kernel(backend):
    """04-conv2d.md § dx as a full convolution, stride 1: conv2d(pad(dout, k − 1), rot180(W)) = the layer's dx."""
    backward = read_example(PAGE, "conv2d-backward")
    with worked_example(PAGE, "full-convolution-stride-1") as page:
        kernel = read_example(PAGE, "conv2d-direct").array("W")
        page.check("W_rotated", kernel[::-1, ::-1])
        dout_padded = np.pad(backward.array("dout"), 1)
        page.check("dout_padded", dout_padded)
        dx = full_correlation(dout_padded, page.array("W_rotated"), padding=0)
        page.check("dx", dx)
        np.testing.assert_array_equal(dx, backward.array("dx"))  # the backward example's dx, by the other route


def test_a_strided_dx_is_the_full_convolution_of_the_dilated_dout(backend):
    """04-conv2d.md § dx as a full convolution, stride 2 and padding 1: dilate dout, full-correlate, crop the border."""
    strided = read_example(PAGE, "col2im-stride-padding")
    with worked_example(PAGE, "full-convolution-stride-2") as page:
        dilated = np.zeros((5, 5))
        dilated[::2, ::2] = strided.array("dout")  # s − 1 = 1 zero between neighbours
        page.check("dout_dilated", dilated)
        dx_padded = full_correlation(dilated, strided.array("W")[::-1, ::-1], padding=2)
        page.check("dx_padded", dx_padded)
        layer = strided_conv(strided)
        layer(np.zeros((1, 1, 5, 5)))
        np.testing.assert_array_equal(dx_padded[1:-1, 1:-1], layer.backward(image(strided, "dout"))[0, 0])
