"""AvgPool2d: forward and backward against the naive loops and PyTorch, on both backends; padding; errors."""

import numpy as np
import pytest

import nn
from nn.backend import NUMBA_AVAILABLE, use_backend
from nn.module import BackwardBeforeForwardError
from tests.cross_check import torch_output_and_input_grad
from tests.naive import naive_avgpool2d_backward, naive_avgpool2d_forward

BACKENDS = ["numpy", pytest.param("numba", marks=pytest.mark.skipif(not NUMBA_AVAILABLE, reason="numba not installed"))]

# (N, C, H, W), kernel_size, stride, padding
GEOMETRIES = [
    ((1, 1, 4, 4), 2, None, 0),             # batch 1, LeNet-5's subsampling
    ((2, 3, 6, 6), 2, None, 0),             # several images and channels
    ((2, 2, 7, 5), 3, 1, 1),                # overlapping windows, padded: border windows hold zeros
    ((3, 2, 9, 8), (3, 2), (2, 1), (1, 0)), # non-square kernel, stride and padding
    ((2, 1, 7, 9), 2, 3, 1),                # gaps between windows, leftover rows and columns
    ((1, 2, 3, 5), (3, 5), None, 0),        # a single window covering the whole input
    ((2, 2, 7, 8), 2, None, 0),             # ceil_mode: a last row of half windows
    ((1, 2, 8, 7), 3, 2, 1),                # ceil_mode: last windows reaching past the padding
]


# PyTorch's options besides the geometry; ceil_mode keeps a last, partial window.
OPTIONS = [{}, {"count_include_pad": False}, {"ceil_mode": True}, {"ceil_mode": True, "count_include_pad": False},
           {"divisor_override": 3}]


def options_id(options):
    return ",".join(f"{k}={v}" for k, v in options.items()) or "default"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("options", OPTIONS, ids=options_id)
@pytest.mark.parametrize("x_shape, kernel_size, stride, padding", GEOMETRIES)
def test_forward_and_backward_match_the_naive_loops(backend, options, x_shape, kernel_size, stride, padding):
    rng = np.random.default_rng(0)
    pool = nn.AvgPool2d(kernel_size, stride, padding, **options)
    x = rng.standard_normal(x_shape)
    with use_backend(backend):
        y = pool(x)
        dout = rng.standard_normal(y.shape)
        dx = pool.backward(dout)
    assert dx.shape == x.shape and dx.flags.c_contiguous
    np.testing.assert_allclose(y, naive_avgpool2d_forward(x, kernel_size, stride, padding, **options),
                               rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(dx, naive_avgpool2d_backward(x_shape, dout, kernel_size, stride, padding, **options),
                               rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("options", OPTIONS, ids=options_id)
@pytest.mark.parametrize("x_shape, kernel_size, stride, padding", GEOMETRIES)
def test_matches_torch_avg_pool2d_in_float64(backend, options, x_shape, kernel_size, stride, padding):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    reference = torch.nn.AvgPool2d(kernel_size, stride, padding, **options)
    pool = nn.AvgPool2d(kernel_size, stride, padding, **options)
    x = rng.standard_normal(x_shape)
    with use_backend(backend):
        y = pool(x)
        dout = rng.standard_normal(y.shape)
        dx = pool.backward(dout)
    y_torch, dx_torch = torch_output_and_input_grad(reference, x, dout)
    np.testing.assert_allclose(y, y_torch, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(dx, dx_torch, rtol=1e-8, atol=1e-12)


def test_ceil_mode_keeps_a_partial_last_window():
    x = np.arange(1.0, 6.0).reshape(1, 1, 1, 5)  # 1 2 3 4 5, windows of 2: (1, 2), (3, 4) and (5) alone
    pool = nn.AvgPool2d((1, 2), ceil_mode=True)
    np.testing.assert_array_equal(pool(x)[0, 0, 0], [1.5, 3.5, 5.0])  # the partial window divides by what it holds
    np.testing.assert_array_equal(nn.AvgPool2d((1, 2))(x)[0, 0, 0], [1.5, 3.5])


def test_padding_counts_as_zeros_by_default_and_not_otherwise():
    x = np.ones((1, 1, 2, 2))
    # A 3x3 window at stride 1 with padding 1 around a 2x2 of ones: each window holds four ones.
    np.testing.assert_array_equal(nn.AvgPool2d(3, 1, 1)(x)[0, 0], np.full((2, 2), 4 / 9))
    np.testing.assert_array_equal(nn.AvgPool2d(3, 1, 1, count_include_pad=False)(x)[0, 0], np.ones((2, 2)))


@pytest.mark.parametrize("dtype, expected", [(np.float32, np.float32), (np.float64, np.float64),
                                             (np.uint8, np.float32), (np.int64, np.float64)])
def test_output_and_gradient_keep_the_float_input_dtype(dtype, expected):
    pool = nn.AvgPool2d(2, padding=1)
    y = pool(np.arange(16).reshape(1, 1, 4, 4).astype(dtype))
    dx = pool.backward(np.ones(y.shape, dtype=np.float64))
    assert y.dtype == dx.dtype == expected


def test_misuse_is_a_clear_error():
    with pytest.raises(ValueError, match=r"padding should be at most half of the kernel size, got padding \(2, 2\)"):
        nn.AvgPool2d(3, padding=2)
    with pytest.raises(ValueError, match="divisor_override must be a nonzero int or None, got 0"):
        nn.AvgPool2d(2, divisor_override=0)
    with pytest.raises(TypeError, match="kernel_size must be an int or a pair"):
        nn.AvgPool2d(2.5)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        nn.AvgPool2d(2, stride=0)
    pool = nn.AvgPool2d(3)
    with pytest.raises(ValueError, match=r"spatial size \(2, 5\) .* smaller than the kernel \(3, 3\)"):
        pool(np.ones((1, 1, 2, 5)))
    with pytest.raises(ValueError, match="expected a 4-D input"):
        pool(np.ones((3, 3)))
    with pytest.raises(BackwardBeforeForwardError):
        pool.backward(np.ones((1, 1, 1, 1)))
    pool(np.ones((1, 1, 6, 6)))
    with pytest.raises(ValueError, match=r"expected dout of shape \(1, 1, 2, 2\)"):
        pool.backward(np.ones((1, 1, 3, 3)))
    assert pool.backward(np.ones((1, 1, 2, 2)), need_input_grad=False) is None


def test_repr_names_every_setting():
    assert repr(nn.AvgPool2d(2)) == "AvgPool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))"
    assert repr(nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False, divisor_override=4)) == \
        ("AvgPool2d(kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), ceil_mode=True, count_include_pad=False, "
         "divisor_override=4)")
