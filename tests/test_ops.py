"""The convolution and pooling loops in nn.ops: the NumPy reference and the compiled pooling, against the definitions."""

import numpy as np
import pytest

from nn import ops
from nn.backend import NUMBA_AVAILABLE
from nn.ops import numpy_ops
from tests.naive import naive_maxpool2d_backward, naive_maxpool2d_forward

# The pooling loops exist twice: the NumPy reference, and numba kernels (nn.execution's PoolStage runs them).
POOLING = ["numpy", pytest.param("numba", marks=pytest.mark.skipif(not NUMBA_AVAILABLE, reason="numba not installed"))]


def pooling(name):
    if name == "numba":
        from nn.ops import numba_ops
        return numba_ops
    return numpy_ops

# (N, C, H, W), (kh, kw), (sh, sw), (ph, pw)
CONV_GEOMETRIES = [
    ((1, 1, 5, 5), (3, 3), (1, 1), (0, 0)),
    ((2, 3, 7, 6), (3, 2), (2, 1), (1, 0)),
    ((3, 2, 6, 9), (2, 4), (3, 2), (2, 1)),
    ((2, 1, 4, 4), (4, 4), (1, 1), (1, 1)),
    ((1, 4, 8, 5), (1, 1), (2, 2), (0, 0)),
]

# (N, C, H, W), (kh, kw), (sh, sw): non-overlapping, overlapping, leftover rows/cols, 1x1
POOL_GEOMETRIES = [
    ((2, 3, 8, 8), (2, 2), (2, 2)),
    ((1, 2, 7, 6), (3, 3), (1, 1)),
    ((2, 1, 9, 7), (3, 2), (2, 1)),
    ((3, 2, 5, 5), (2, 3), (3, 2)),
    ((1, 1, 4, 3), (1, 1), (1, 1)),
]


def brute_count_positions(size, kernel, stride, padding):
    """Count the window starts 0, stride, 2*stride, ... whose window fits the padded input."""
    return sum(1 for start in range(0, size + 2 * padding, stride) if start + kernel <= size + 2 * padding)


@pytest.mark.parametrize("size", [1, 4, 5, 12, 28])
@pytest.mark.parametrize("kernel", [1, 2, 3, 5])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("padding", [0, 1, 2])
def test_conv_out_size_counts_the_windows_that_fit(size, kernel, stride, padding):
    if size + 2 * padding < kernel:
        with pytest.raises(ValueError, match="conv_out_size"):
            ops.conv_out_size(size, kernel, stride, padding)
    else:
        assert ops.conv_out_size(size, kernel, stride, padding) == brute_count_positions(size, kernel, stride, padding)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, kernel, stride, padding", CONV_GEOMETRIES)
def test_im2col_row_holds_the_padded_window_of_its_output_position(dtype, x_shape, kernel, stride, padding):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(dtype)
    col = ops.im2col(x, *kernel, *stride, *padding)
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    x_padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    n_images, channels = x_shape[:2]
    out_h = (x_padded.shape[2] - kh) // sh + 1
    out_w = (x_padded.shape[3] - kw) // sw + 1
    assert col.shape == (n_images * out_h * out_w, channels * kh * kw)
    assert col.dtype == dtype
    row = 0
    for n in range(n_images):
        for oy in range(out_h):
            for ox in range(out_w):
                window = x_padded[n, :, oy * sh:oy * sh + kh, ox * sw:ox * sw + kw]
                np.testing.assert_array_equal(col[row], window.reshape(-1))  # (c, i, j) order
                row += 1


@pytest.mark.parametrize("x_shape, kernel, stride, padding", CONV_GEOMETRIES)
def test_col2im_is_the_adjoint_of_im2col(x_shape, kernel, stride, padding):
    """<im2col(x), c> == <x, col2im(c)> for random x and c: col2im is exactly im2col transposed."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(x_shape)
    col_shape = ops.im2col(x, *kernel, *stride, *padding).shape
    c = rng.standard_normal(col_shape)
    lhs = np.sum(ops.im2col(x, *kernel, *stride, *padding) * c)
    rhs = np.sum(x * ops.col2im(c, x_shape, *kernel, *stride, *padding))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12)


def test_col2im_counts_how_many_windows_cover_each_pixel():
    """col2im of all ones: a 4x4 input, 3x3 kernel, stride 1, no padding -> coverage counts."""
    counts = ops.col2im(np.ones((4, 9)), (1, 1, 4, 4), 3, 3, 1, 1, 0, 0)
    expected = np.array([[1, 2, 2, 1],
                         [2, 4, 4, 2],
                         [2, 4, 4, 2],
                         [1, 2, 2, 1]], dtype=np.float64)
    np.testing.assert_array_equal(counts[0, 0], expected)


def test_col2im_rejects_a_col_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"col2im: expected col of shape \(4, 9\)"):
        ops.col2im(np.ones((4, 8)), (1, 1, 4, 4), 3, 3, 1, 1, 0, 0)


@pytest.mark.parametrize("backend", POOLING)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, kernel, stride", POOL_GEOMETRIES)
def test_maxpool_forward_and_backward_match_the_naive_loops(backend, dtype, x_shape, kernel, stride):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(x_shape).astype(dtype)
    out, argmax = pooling(backend).maxpool2d_forward(x, *kernel, *stride)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = pooling(backend).maxpool2d_backward(dout, argmax, x.shape, *kernel, *stride)
    assert out.dtype == dtype and dx.dtype == dtype
    np.testing.assert_array_equal(out, naive_maxpool2d_forward(x, kernel, stride).astype(dtype))
    tolerance = 1e-6 if dtype == np.float32 else 1e-14  # overlapping windows add in another order
    np.testing.assert_allclose(dx, naive_maxpool2d_backward(x, dout, kernel, stride), rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("backend", POOLING)
def test_maxpool_argmax_is_the_row_major_index_of_the_first_maximum(backend):
    x = np.array([[[[1, 5, 5, 0],
                    [5, 2, 3, 3],
                    [0, 0, 7, 1],
                    [0, 0, 1, 7]]]], dtype=np.float32)
    out, argmax = pooling(backend).maxpool2d_forward(x, 2, 2, 2, 2)
    np.testing.assert_array_equal(out[0, 0], [[5, 5], [0, 7]])
    # window (0,0): 5 at taps 1 and 2 -> 1; window (0,1): 5 first at tap 0; all zeros -> 0; 7 twice -> 0
    np.testing.assert_array_equal(argmax[0, 0], [[1, 0], [0, 0]])


@pytest.mark.parametrize("backend", POOLING)
@pytest.mark.parametrize("x_shape, kernel, stride", POOL_GEOMETRIES)
def test_maxpool_on_a_constant_input_sends_each_window_gradient_to_its_top_left(backend, x_shape, kernel, stride):
    """Every element ties, so every window's gradient goes to its first element, exactly once."""
    x = np.full(x_shape, 3.0)
    (kh, kw), (sh, sw) = kernel, stride
    out, argmax = pooling(backend).maxpool2d_forward(x, kh, kw, sh, sw)
    dx = pooling(backend).maxpool2d_backward(np.ones(out.shape), argmax, x.shape, kh, kw, sh, sw)
    out_h, out_w = out.shape[2:]
    expected = np.zeros(x_shape)
    expected[:, :, 0:sh * out_h:sh, 0:sw * out_w:sw] = 1.0
    np.testing.assert_array_equal(dx, expected)


@pytest.mark.parametrize("backend", POOLING)
def test_maxpool_backward_adds_up_when_overlapping_windows_share_a_winner(backend):
    """3x3 windows with stride 1 over a 4x4 input whose centre-ish 9 wins all four windows."""
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 1, 2] = 9.0
    out, argmax = pooling(backend).maxpool2d_forward(x, 3, 3, 1, 1)
    dx = pooling(backend).maxpool2d_backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), argmax, x.shape, 3, 3, 1, 1)
    np.testing.assert_array_equal(out[0, 0], [[9, 9], [9, 9]])
    expected = np.zeros((4, 4))
    expected[1, 2] = 1 + 2 + 3 + 4
    np.testing.assert_array_equal(dx[0, 0], expected)


@pytest.mark.skipif(not NUMBA_AVAILABLE, reason="numba not installed")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_numba_pooling_computes_what_the_numpy_reference_computes(dtype, seed):
    from nn.ops import numba_ops

    rng = np.random.default_rng(seed)
    n, c = rng.integers(1, 4, size=2)
    h, w = rng.integers(4, 11, size=2)
    kh, kw = rng.integers(1, 4, size=2)
    sh, sw = rng.integers(1, 3, size=2)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    tolerance = 1e-6 if dtype == np.float32 else 1e-14

    out, argmax = numba_ops.maxpool2d_forward(x, kh, kw, sh, sw)
    reference_out, reference_argmax = numpy_ops.maxpool2d_forward(x, kh, kw, sh, sw)
    np.testing.assert_array_equal(out, reference_out)
    np.testing.assert_array_equal(argmax, reference_argmax)
    dout = rng.standard_normal(out.shape).astype(dtype)
    np.testing.assert_allclose(numba_ops.maxpool2d_backward(dout, argmax, x.shape, kh, kw, sh, sw),
                               numpy_ops.maxpool2d_backward(dout, argmax, x.shape, kh, kw, sh, sw),
                               rtol=tolerance, atol=tolerance)
    assert out.dtype == dtype


@pytest.mark.parametrize("backend", POOLING)
def test_maxpool_picks_the_first_nan_like_numpy_argmax(backend):
    x = np.array([[[[1.0, np.nan], [np.nan, 5.0]]]])
    out, argmax = pooling(backend).maxpool2d_forward(x, 2, 2, 2, 2)
    assert np.isnan(out[0, 0, 0, 0])
    assert argmax[0, 0, 0, 0] == 1

