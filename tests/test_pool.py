"""MaxPool2d: forward and backward against the naive loops, on both backends; ties; errors."""

import numpy as np
import pytest

from nn.backend import NUMBA_AVAILABLE, use_backend
from nn.module import BackwardBeforeForwardError
from nn.pool import MaxPool2d
from tests.naive import naive_maxpool2d_backward, naive_maxpool2d_forward

BACKENDS = ["numpy", pytest.param("numba", marks=pytest.mark.skipif(not NUMBA_AVAILABLE, reason="numba not installed"))]

# (N, C, H, W), kernel_size, stride
GEOMETRIES = [
    ((1, 1, 4, 4), 2, None),          # batch 1, LeNet's pooling
    ((2, 3, 6, 6), 2, None),          # several images and channels
    ((2, 2, 7, 5), 3, 1),             # overlapping windows (stride < kernel)
    ((3, 2, 9, 8), (3, 2), (2, 1)),   # non-square kernel and stride, overlapping in one axis
    ((2, 1, 7, 9), 2, 3),             # gaps between windows, leftover rows and columns
    ((1, 2, 3, 5), (3, 5), None),     # a single window covering the whole input
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, kernel_size, stride", GEOMETRIES)
def test_forward_and_backward_match_the_naive_loops(backend, dtype, x_shape, kernel_size, stride):
    rng = np.random.default_rng(0)
    pool = MaxPool2d(kernel_size, stride)
    x = rng.standard_normal(x_shape).astype(dtype)
    with use_backend(backend):
        y = pool(x)
        dout = rng.standard_normal(y.shape).astype(dtype)
        dx = pool.backward(dout)
    assert y.dtype == dx.dtype == dtype
    assert dx.shape == x.shape
    np.testing.assert_array_equal(y, naive_maxpool2d_forward(x, kernel_size, stride).astype(dtype))
    tolerance = 1e-6 if dtype == np.float32 else 1e-14  # overlapping windows may add in another order
    np.testing.assert_allclose(dx, naive_maxpool2d_backward(x, dout, kernel_size, stride), rtol=tolerance,
                               atol=tolerance)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("x_shape, kernel_size, stride", GEOMETRIES)
@pytest.mark.parametrize("seed", [1, 2])
def test_ties_send_each_window_gradient_to_exactly_one_element_the_first(backend, x_shape, kernel_size, stride, seed):
    """Inputs drawn from {0, 1} tie in almost every window; the naive loops know who goes first."""
    rng = np.random.default_rng(seed)
    pool = MaxPool2d(kernel_size, stride)
    x = rng.integers(0, 2, size=x_shape).astype(np.float64)
    with use_backend(backend):
        y = pool(x)
        dx = pool.backward(np.ones(y.shape))
    assert dx.sum() == y.size  # one unit per window, none lost and none duplicated
    np.testing.assert_array_equal(dx, naive_maxpool2d_backward(x, np.ones(y.shape), kernel_size, stride))


@pytest.mark.parametrize("backend", BACKENDS)
def test_overlapping_windows_add_their_gradients_on_a_shared_winner(backend):
    x = np.zeros((1, 1, 3, 4))
    x[0, 0, 1, 1] = 1.0  # inside all four 2x2 windows that contain it at stride 1
    pool = MaxPool2d(2, stride=1)
    dout = np.arange(1.0, 7.0).reshape(1, 1, 2, 3)
    with use_backend(backend):
        pool(x)
        dx = pool.backward(dout)
    # Windows (0,0), (0,1), (1,0), (1,1) are won by x[1, 1]; the others, all zeros, go to their top-left.
    expected = np.array([[0, 0, 3, 0],
                         [0, 1 + 2 + 4 + 5, 6, 0],
                         [0, 0, 0, 0]], dtype=np.float64)
    np.testing.assert_array_equal(dx[0, 0], expected)


@pytest.mark.parametrize("dtype, expected", [(np.float32, np.float32), (np.float64, np.float64),
                                             (np.uint8, np.float32), (np.int64, np.float64)])
def test_output_and_gradient_keep_the_float_input_dtype(dtype, expected):
    pool = MaxPool2d(2)
    y = pool(np.arange(16).reshape(1, 1, 4, 4).astype(dtype))
    dx = pool.backward(np.ones(y.shape, dtype=np.float64))
    assert y.dtype == dx.dtype == expected
    np.testing.assert_array_equal(y[0, 0], [[5, 7], [13, 15]])


def test_stride_defaults_to_the_kernel_size():
    pool = MaxPool2d((3, 2))
    assert pool.stride == (3, 2)
    assert pool(np.zeros((1, 1, 9, 8))).shape == (1, 1, 3, 4)


def test_eval_mode_forward_keeps_nothing_and_backward_then_refuses():
    pool = MaxPool2d(2).eval()
    pool(np.zeros((1, 1, 4, 4)))
    assert "_saved_for_backward" not in vars(pool)
    with pytest.raises(BackwardBeforeForwardError, match="MaxPool2d"):
        pool.backward(np.zeros((1, 1, 2, 2)))


def test_backward_before_any_forward_raises_naming_the_layer():
    with pytest.raises(BackwardBeforeForwardError, match=r"MaxPool2d\.backward\(\) called before forward\(\)"):
        MaxPool2d(2).backward(np.zeros((1, 1, 2, 2)))


@pytest.mark.parametrize("x, message", [
    (np.zeros((4, 4)), r"MaxPool2d: expected a 4-D input, got 2-D"),
    (np.zeros((1, 4, 4)), r"MaxPool2d: expected a 4-D input, got 3-D"),
    (np.zeros((1, 1, 1, 4)), r"MaxPool2d: input of spatial size \(1, 4\) is smaller than the kernel \(2, 2\)"),
    (np.zeros((1, 1, 4, 1)), r"MaxPool2d: input of spatial size \(4, 1\) is smaller than the kernel \(2, 2\)"),
])
def test_forward_rejects_inputs_of_the_wrong_shape(x, message):
    with pytest.raises(ValueError, match=message):
        MaxPool2d(2)(x)


def test_forward_rejects_non_numeric_input_with_a_type_error():
    with pytest.raises(TypeError, match="MaxPool2d: expected a real numeric array as input"):
        MaxPool2d(2)(np.array([[[["a"]]]]))


@pytest.mark.parametrize("dout_shape", [(1, 2, 2, 3), (1, 2, 2), (2, 2, 2, 2)])
def test_backward_rejects_dout_not_shaped_like_the_output(dout_shape):
    pool = MaxPool2d(2)
    pool(np.zeros((1, 2, 4, 5)))
    with pytest.raises(ValueError, match=r"MaxPool2d\.backward: expected dout of shape \(1, 2, 2, 2\)"):
        pool.backward(np.zeros(dout_shape))


@pytest.mark.parametrize("kernel_size, stride, error, message", [
    (0, None, ValueError, r"MaxPool2d: kernel_size must be >= 1, got \(0, 0\)"),
    ((2, -1), None, ValueError, r"MaxPool2d: kernel_size must be >= 1, got \(2, -1\)"),
    (2, 0, ValueError, r"MaxPool2d: stride must be >= 1, got \(0, 0\)"),
    (2.0, None, TypeError, "MaxPool2d: kernel_size must be an int or a pair of ints, got 2.0"),
    (2, "1", TypeError, "MaxPool2d: stride must be an int or a pair of ints, got '1'"),
    (True, None, TypeError, "MaxPool2d: kernel_size must be an int or a pair of ints, got True"),
])
def test_constructor_rejects_bad_arguments(kernel_size, stride, error, message):
    with pytest.raises(error, match=message):
        MaxPool2d(kernel_size, stride)


def test_has_no_parameters_and_a_readable_repr():
    pool = MaxPool2d(2)
    assert pool.parameters() == []
    assert repr(pool) == "MaxPool2d(kernel_size=(2, 2), stride=(2, 2))"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("x_shape, kernel_size, stride", GEOMETRIES)
def test_matches_torch_max_pool2d_in_float64(backend, x_shape, kernel_size, stride):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    pool = MaxPool2d(kernel_size, stride)
    x = rng.standard_normal(x_shape)
    with use_backend(backend):
        y = pool(x)
        dout = rng.standard_normal(y.shape)
        dx = pool.backward(dout)
    x_torch = torch.from_numpy(x).requires_grad_()
    y_torch = torch.nn.functional.max_pool2d(x_torch, kernel_size, stride)
    y_torch.backward(torch.from_numpy(dout))
    np.testing.assert_array_equal(y, y_torch.detach().numpy())
    np.testing.assert_allclose(dx, x_torch.grad.numpy(), rtol=1e-14, atol=1e-14)
