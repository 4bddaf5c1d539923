"""Conv2d: forward and backward against the naive loops, on both backends; parameters; errors."""

import numpy as np
import pytest

from nn.backend import NUMBA_AVAILABLE, use_backend
from nn.conv import Conv2d
from nn.module import BackwardBeforeForwardError
from tests.naive import naive_conv2d_backward, naive_conv2d_forward

BACKENDS = ["numpy", pytest.param("numba", marks=pytest.mark.skipif(not NUMBA_AVAILABLE, reason="numba not installed"))]

# (N, C_in, H, W), C_out, kernel_size, stride, padding
GEOMETRIES = [
    ((1, 1, 6, 6), 2, 3, 1, 0),                  # batch 1, one channel
    ((2, 3, 7, 5), 4, (3, 2), (2, 1), (1, 0)),   # non-square kernel, input, stride and padding
    ((3, 2, 8, 8), 3, 5, 1, 2),                  # "same" padding
    ((2, 4, 9, 6), 1, (2, 4), 3, (2, 1)),        # stride leaves rows and columns unused
    ((2, 2, 3, 3), 2, 5, 1, 1),                  # kernel larger than the input, covered by padding
    ((1, 3, 4, 5), 2, 1, 1, 0),                  # 1x1 kernel: a per-pixel linear map
]
TOLERANCE = {np.float32: 1e-4, np.float64: 1e-12}


def random_input(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, out_channels, kernel_size, stride, padding", GEOMETRIES)
def test_forward_and_backward_match_the_naive_loops(backend, dtype, x_shape, out_channels, kernel_size, stride,
                                                    padding):
    rng = np.random.default_rng(0)
    conv = Conv2d(x_shape[1], out_channels, kernel_size, stride, padding, dtype=dtype, rng=1)
    x = random_input(rng, x_shape, dtype)
    with use_backend(backend):
        y = conv(x)
        dout = random_input(rng, y.shape, dtype)
        dx = conv.backward(dout)
    expected_y = naive_conv2d_forward(x, conv.weight.data, conv.bias.data, stride, padding)
    expected_dx, expected_dw, expected_db = naive_conv2d_backward(x, conv.weight.data, dout, stride, padding)
    tol = TOLERANCE[dtype]
    assert y.shape == expected_y.shape and dx.shape == x.shape
    assert y.dtype == dx.dtype == conv.weight.grad.dtype == conv.bias.grad.dtype == dtype
    np.testing.assert_allclose(y, expected_y, rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, expected_dx, rtol=tol, atol=tol)
    np.testing.assert_allclose(conv.weight.grad, expected_dw, rtol=tol, atol=tol)
    np.testing.assert_allclose(conv.bias.grad, expected_db, rtol=tol, atol=tol)


@pytest.mark.parametrize("backend", BACKENDS)
def test_without_bias_the_layer_has_only_a_weight_and_adds_nothing(backend):
    rng = np.random.default_rng(2)
    conv = Conv2d(2, 3, 3, stride=2, padding=1, bias=False, dtype=np.float64, rng=3)
    x = random_input(rng, (2, 2, 5, 6), np.float64)
    with use_backend(backend):
        y = conv(x)
        dout = random_input(rng, y.shape, np.float64)
        dx = conv.backward(dout)
    expected_dx, expected_dw, _ = naive_conv2d_backward(x, conv.weight.data, dout, 2, 1)
    assert [name for name, _ in conv.named_parameters()] == ["weight"]
    np.testing.assert_allclose(y, naive_conv2d_forward(x, conv.weight.data, None, 2, 1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, expected_dx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv.weight.grad, expected_dw, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("in_channels, out_channels, kernel_size", [(1, 6, 5), (6, 16, 5), (3, 2, (2, 4))])
def test_weight_then_bias_are_drawn_uniform_within_one_over_sqrt_fan_in(in_channels, out_channels, kernel_size):
    conv = Conv2d(in_channels, out_channels, kernel_size, rng=7)
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    bound = 1 / np.sqrt(in_channels * kh * kw)
    assert [name for name, _ in conv.named_parameters()] == ["weight", "bias"]
    assert conv.weight.shape == (out_channels, in_channels, kh, kw)
    assert conv.bias.shape == (out_channels,)
    assert conv.weight.dtype == conv.bias.dtype == np.float32
    # The same generator drawn by hand, weight first and bias second.
    rng = np.random.default_rng(7)
    expected_weight = rng.uniform(-bound, bound, size=(out_channels, in_channels, kh, kw)).astype(np.float32)
    expected_bias = rng.uniform(-bound, bound, size=(out_channels,)).astype(np.float32)
    np.testing.assert_array_equal(conv.weight.data, expected_weight)
    np.testing.assert_array_equal(conv.bias.data, expected_bias)
    assert np.all(np.abs(conv.weight.data) <= bound) and np.all(np.abs(conv.bias.data) <= bound)
    assert not conv.weight.grad.any() and not conv.bias.grad.any()


@pytest.mark.parametrize("backend", BACKENDS)
def test_float64_runs_end_to_end_in_float64(backend):
    rng = np.random.default_rng(4)
    conv = Conv2d(2, 3, 3, rng=5).astype(np.float64)
    with use_backend(backend):
        y = conv(rng.standard_normal((2, 2, 6, 6)).astype(np.float32))  # input is cast to the weight dtype
        dx = conv.backward(np.ones(y.shape, dtype=np.float32))
    assert y.dtype == dx.dtype == conv.weight.grad.dtype == conv.bias.grad.dtype == np.float64


def test_integer_pixels_are_accepted_and_converted_to_the_weight_dtype():
    conv = Conv2d(1, 2, 3, dtype=np.float64, rng=0)
    pixels = np.arange(25, dtype=np.uint8).reshape(1, 1, 5, 5)
    y = conv(pixels)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, naive_conv2d_forward(pixels, conv.weight.data, conv.bias.data, 1, 0), rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradients_accumulate_over_two_backward_calls(backend):
    rng = np.random.default_rng(6)
    conv = Conv2d(2, 2, (2, 3), stride=(1, 2), padding=1, dtype=np.float64, rng=8)
    x = random_input(rng, (2, 2, 5, 5), np.float64)
    with use_backend(backend):
        y = conv(x)
        dout = random_input(rng, y.shape, np.float64)
        first_dx = conv.backward(dout)
        second_dx = conv.backward(dout)
    _, expected_dw, expected_db = naive_conv2d_backward(x, conv.weight.data, dout, (1, 2), 1)
    np.testing.assert_allclose(conv.weight.grad, 2 * expected_dw, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv.bias.grad, 2 * expected_db, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(first_dx, second_dx)  # dx is returned, never accumulated


def test_eval_mode_forward_keeps_nothing_and_backward_then_refuses():
    conv = Conv2d(1, 2, 3, rng=0).eval()
    conv(np.zeros((1, 1, 5, 5)))
    assert "_saved_for_backward" not in vars(conv)
    with pytest.raises(BackwardBeforeForwardError, match="Conv2d"):
        conv.backward(np.zeros((1, 2, 3, 3)))


def test_backward_before_any_forward_raises_naming_the_layer():
    with pytest.raises(BackwardBeforeForwardError, match=r"Conv2d\.backward\(\) called before forward\(\)"):
        Conv2d(1, 2, 3).backward(np.zeros((1, 2, 3, 3)))


@pytest.mark.parametrize("x, message", [
    (np.zeros((2, 5, 5)), r"Conv2d: expected a 4-D input, got 3-D"),
    (np.zeros((1, 2, 3, 5, 5)), r"Conv2d: expected a 4-D input, got 5-D"),
    (np.zeros((1, 2, 5, 5)), r"Conv2d: expected input with 3 channels \(N, 3, H, W\), got shape \(1, 2, 5, 5\)"),
    (np.zeros((1, 3, 2, 5)), r"Conv2d: input of spatial size \(2, 5\) with padding \(0, 0\) is smaller than the kernel"),
    (np.zeros((1, 3, 5, 1)), r"Conv2d: input of spatial size \(5, 1\) with padding \(0, 0\) is smaller than the kernel"),
])
def test_forward_rejects_inputs_of_the_wrong_shape(x, message):
    with pytest.raises(ValueError, match=message):
        Conv2d(3, 4, 3)(x)


def test_forward_accepts_an_input_that_only_fits_thanks_to_padding():
    assert Conv2d(1, 1, 5, padding=2)(np.zeros((1, 1, 1, 1))).shape == (1, 1, 1, 1)


@pytest.mark.parametrize("x", [np.array([["a"]]), np.zeros((1, 1, 3, 3), dtype=bool), np.zeros((1, 1, 3, 3), complex)])
def test_forward_rejects_non_real_input_with_a_type_error(x):
    with pytest.raises(TypeError, match="Conv2d: expected a real numeric array as input"):
        Conv2d(1, 1, 3)(x)


@pytest.mark.parametrize("dout_shape", [(2, 4, 3, 2), (2, 4, 3), (1, 4, 3, 3), (2, 3, 3, 3)])
def test_backward_rejects_dout_not_shaped_like_the_output(dout_shape):
    conv = Conv2d(3, 4, 3)
    conv(np.zeros((2, 3, 5, 5)))
    with pytest.raises(ValueError, match=r"Conv2d\.backward: expected dout of shape \(2, 4, 3, 3\)"):
        conv.backward(np.zeros(dout_shape))


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(in_channels=0), ValueError, "Conv2d: in_channels must be a positive int, got 0"),
    (dict(out_channels=2.5), ValueError, "Conv2d: out_channels must be a positive int, got 2.5"),
    (dict(kernel_size=0), ValueError, r"Conv2d: kernel_size must be >= 1, got \(0, 0\)"),
    (dict(kernel_size=(3, 3, 3)), TypeError, "Conv2d: kernel_size must be an int or a pair of ints"),
    (dict(kernel_size="3"), TypeError, "Conv2d: kernel_size must be an int or a pair of ints"),
    (dict(stride=(1, 0)), ValueError, r"Conv2d: stride must be >= 1, got \(1, 0\)"),
    (dict(padding=-1), ValueError, r"Conv2d: padding must be >= 0, got \(-1, -1\)"),
    (dict(dtype=np.int32), TypeError, "Conv2d: dtype must be a floating-point type, got int32"),
])
def test_constructor_rejects_bad_arguments(kwargs, error, message):
    arguments = dict(in_channels=1, out_channels=2, kernel_size=3) | kwargs
    with pytest.raises(error, match=message):
        Conv2d(**arguments)


@pytest.mark.parametrize("conv, text", [
    (Conv2d(1, 6, 5), "Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1))"),
    (Conv2d(6, 16, (3, 2), stride=2, padding=(1, 0), bias=False),
     "Conv2d(6, 16, kernel_size=(3, 2), stride=(2, 2), padding=(1, 0), bias=False)"),
])
def test_repr_reads_like_pytorch(conv, text):
    assert repr(conv) == text


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("x_shape, out_channels, kernel_size, stride, padding", GEOMETRIES[:4])
def test_matches_torch_conv2d_in_float64(backend, x_shape, out_channels, kernel_size, stride, padding):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    conv = Conv2d(x_shape[1], out_channels, kernel_size, stride, padding, dtype=np.float64, rng=10)
    reference = torch.nn.Conv2d(x_shape[1], out_channels, kernel_size, stride, padding).double()
    with torch.no_grad():
        for name, value in conv.state_dict().items():  # same keys and layouts as PyTorch
            reference.get_parameter(name).copy_(torch.from_numpy(value))
    x = rng.standard_normal(x_shape)
    with use_backend(backend):
        y = conv(x)
        dout = rng.standard_normal(y.shape)
        dx = conv.backward(dout)
    x_torch = torch.from_numpy(x).requires_grad_()
    y_torch = reference(x_torch)
    y_torch.backward(torch.from_numpy(dout))
    np.testing.assert_allclose(y, y_torch.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, x_torch.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv.weight.grad, reference.weight.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv.bias.grad, reference.bias.grad.numpy(), rtol=1e-12, atol=1e-12)
