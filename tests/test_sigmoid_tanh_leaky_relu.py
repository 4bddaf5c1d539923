"""Sigmoid, Tanh and LeakyReLU: forward and backward against the naive loops and PyTorch, on both backends."""

import numpy as np
import pytest

import nn
from nn.backend import NUMBA_AVAILABLE, use_backend
from nn.module import BackwardBeforeForwardError
from tests.cross_check import torch_output_and_input_grad
from tests.naive import (naive_leaky_relu_backward, naive_leaky_relu_forward, naive_sigmoid_backward,
                         naive_sigmoid_forward, naive_tanh_backward, naive_tanh_forward)

BACKENDS = ["numpy", pytest.param("numba", marks=pytest.mark.skipif(not NUMBA_AVAILABLE, reason="numba not installed"))]

# (layer factory, naive forward(x), naive backward(x, dout))
LAYERS = {
    "Sigmoid": (nn.Sigmoid, naive_sigmoid_forward, naive_sigmoid_backward),
    "Tanh": (nn.Tanh, naive_tanh_forward, naive_tanh_backward),
    "LeakyReLU": (nn.LeakyReLU, lambda x: naive_leaky_relu_forward(x, 0.01),
                  lambda x, dout: naive_leaky_relu_backward(x, dout, 0.01)),
    "LeakyReLU(0.2)": (lambda: nn.LeakyReLU(0.2), lambda x: naive_leaky_relu_forward(x, 0.2),
                       lambda x, dout: naive_leaky_relu_backward(x, dout, 0.2)),
    "LeakyReLU(-1.5)": (lambda: nn.LeakyReLU(-1.5), lambda x: naive_leaky_relu_forward(x, -1.5),
                        lambda x, dout: naive_leaky_relu_backward(x, dout, -1.5)),
}
SHAPES = [(1, 5), (3, 4, 2), (2, 3, 4, 4)]


def inputs(shape, seed=0):
    """Normal values, exact zeros (the kinks) and far tails (where exp could overflow)."""
    x = 3 * np.random.default_rng(seed).standard_normal(shape)
    flat = x.reshape(-1)
    flat[:3] = [0.0, -800.0, 800.0][:flat.size]
    return x


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", LAYERS)
def test_forward_and_backward_match_the_naive_loops(name, shape, backend):
    make, forward, backward = LAYERS[name]
    x = inputs(shape)
    dout = np.random.default_rng(1).standard_normal(shape)
    layer = make()
    with use_backend(backend):
        y = layer(x)
        dx = layer.backward(dout)
    assert y.shape == dx.shape == shape and y.dtype == dx.dtype == np.float64
    np.testing.assert_allclose(y, forward(x), rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(dx, backward(x, dout), rtol=1e-14, atol=1e-15)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", LAYERS)
def test_matches_torch_in_float64(name, backend):
    torch = pytest.importorskip("torch")
    make, _, _ = LAYERS[name]
    layer = make()
    reference = {"Sigmoid": torch.nn.Sigmoid(), "Tanh": torch.nn.Tanh()}.get(name) or \
        torch.nn.LeakyReLU(getattr(layer, "negative_slope", None))
    x = inputs((2, 3, 4, 4))
    dout = np.random.default_rng(1).standard_normal(x.shape)
    with use_backend(backend):
        y = layer(x)
        dx = layer.backward(dout)
    y_torch, dx_torch = torch_output_and_input_grad(reference, x, dout)
    np.testing.assert_allclose(y, y_torch, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(dx, dx_torch, rtol=1e-8, atol=1e-12)


def test_leaky_relu_slope_applies_at_zero_as_in_pytorch():
    layer = nn.LeakyReLU(0.25)
    layer(np.array([-2.0, 0.0, 3.0]))
    np.testing.assert_array_equal(layer.backward(np.ones(3)), [0.25, 0.25, 1.0])


def test_sigmoid_and_tanh_saturate_without_overflow_warnings():
    x = np.array([-1e4, -50.0, 0.0, 50.0, 1e4])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is the right answer
        np.testing.assert_array_equal(nn.Sigmoid()(x)[[0, 2, 4]], [0.0, 0.5, 1.0])
        np.testing.assert_array_equal(nn.Tanh()(x)[[0, 2, 4]], [-1.0, 0.0, 1.0])


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("dtype, expected", [(np.float32, np.float32), (np.float64, np.float64),
                                             (np.uint8, np.float32), (np.int64, np.float64)])
def test_output_and_gradient_keep_the_float_input_dtype(name, dtype, expected):
    layer = LAYERS[name][0]()
    y = layer(np.arange(6).reshape(2, 3).astype(dtype))
    dx = layer.backward(np.ones(y.shape, dtype=np.float64))
    assert y.dtype == dx.dtype == expected


@pytest.mark.parametrize("name", LAYERS)
def test_misuse_is_a_clear_error(name):
    layer = LAYERS[name][0]()
    with pytest.raises(BackwardBeforeForwardError, match="before forward"):
        layer.backward(np.ones((2, 3)))
    layer(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"expected dout of shape \(2, 3\)"):
        layer.backward(np.ones((3, 2)))
    assert layer.backward(np.ones((2, 3)), need_input_grad=False) is None
    with pytest.raises(TypeError, match="numeric array"):
        layer(np.array(["a"]))
    layer.eval()
    layer(np.ones((2, 3)))  # eval-mode forward keeps nothing for backward
    with pytest.raises(BackwardBeforeForwardError):
        layer.backward(np.ones((2, 3)))


def test_leaky_relu_rejects_a_slope_that_is_not_a_number():
    with pytest.raises(TypeError, match="negative_slope must be a number, got '0.1'"):
        nn.LeakyReLU("0.1")


@pytest.mark.parametrize("layer, text", [(nn.Sigmoid(), "Sigmoid()"), (nn.Tanh(), "Tanh()"),
                                         (nn.LeakyReLU(), "LeakyReLU(negative_slope=0.01)")])
def test_repr_reads_like_pytorch(layer, text):
    assert repr(layer) == text
