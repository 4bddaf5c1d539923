"""Stroke width (grey dilation/erosion) and softness (blur): each against a naive loop of its definition."""

import numpy as np
import pytest

from data.strokes import BLUR_RADIUS, soften, soften_numpy, stroke_width, stroke_width_numpy
from data.warp import PARALLEL_MIN_IMAGES

BACKENDS = ["numpy", "numba"]
SQUARE = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
CROSS = [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)]


def round_half_up(value):
    return int(min(max(np.floor(value + 0.5), 0), 255))


def naive_stroke_width(images, amounts, dilation_window=SQUARE, erosion_window=CROSS):
    """The definition, pixel by pixel in float64: blend towards the window's max (a > 0) or min (a < 0)."""
    n, h, w = images.shape
    out = np.zeros_like(images)
    for i in range(n):
        a = float(amounts[i])
        window, pick = (dilation_window, max) if a > 0 else (erosion_window, min)
        for y in range(h):
            for x in range(w):
                neighbours = [float(images[i, y + dy, x + dx]) for dy, dx in window
                              if 0 <= y + dy < h and 0 <= x + dx < w]
                p = float(images[i, y, x])
                out[i, y, x] = round_half_up(p + abs(a) * (pick(neighbours) - p))
    return out


def naive_soften(images, sigmas):
    """The definition as one 2-D sum: Gaussian taps w_j w_k (each normalized), zeros outside, peak to 255."""
    n, h, w = images.shape
    out = np.zeros_like(images)
    taps = range(-BLUR_RADIUS, BLUR_RADIUS + 1)
    for i in range(n):
        weights = {k: np.exp(-k * k / (2 * sigmas[i] ** 2)) for k in taps}
        total = sum(weights.values())
        blurred = np.zeros((h, w))
        for y in range(h):
            for x in range(w):
                for j in taps:
                    for k in taps:
                        if 0 <= y + j < h and 0 <= x + k < w:
                            blurred[y, x] += weights[j] * weights[k] / total ** 2 * float(images[i, y + j, x + k])
        peak = blurred.max()
        for y in range(h):
            for x in range(w):
                out[i, y, x] = round_half_up(blurred[y, x] * 255 / peak) if peak > 0 else 0
    return out


def digits_like(seed, n=6, size=12):
    """Sparse images with grey edges, like scaled-down strokes: most pixels 0, some full, some grey."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, size, size)).astype(np.uint8)
    images[rng.random(images.shape) < 0.5] = 0
    return images


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("amounts", [[1.0, 0.5, 0.0, -0.3, -1.0, 0.25], [-0.7, 0.9, 1.0, -1.0, 0.1, -0.05]])
def test_stroke_width_matches_its_naive_definition(backend, amounts):
    images = digits_like(0)
    out = stroke_width(images, amounts, backend=backend)
    assert out.dtype == np.uint8 and out.shape == images.shape
    np.testing.assert_array_equal(out, naive_stroke_width(images, amounts))


def test_the_naive_check_tells_the_two_windows_apart():
    # The checker can fail: erosion by the square instead of the cross gives other pixels.
    images, amounts = digits_like(1), [-1.0] * 6
    assert not np.array_equal(stroke_width(images, amounts),
                              naive_stroke_width(images, amounts, erosion_window=SQUARE))


@pytest.mark.parametrize("n", [7, PARALLEL_MIN_IMAGES])  # the serial kernel, and the parallel one
def test_the_numba_kernels_match_the_numpy_references_bit_for_bit(n):
    pytest.importorskip("numba")
    rng = np.random.default_rng(2)
    images = digits_like(3, n, 28)
    amounts, sigmas = rng.uniform(-1, 1, n), rng.uniform(0.3, 2.0, n)
    np.testing.assert_array_equal(stroke_width(images, amounts, backend="numba"), stroke_width_numpy(images, amounts))
    np.testing.assert_array_equal(soften(images, sigmas, backend="numba"), soften_numpy(images, sigmas))


@pytest.mark.parametrize("backend", BACKENDS)
def test_full_dilation_widens_a_two_pixel_line_to_four_and_erosion_of_a_square_leaves_its_centre(backend):
    line = np.zeros((1, 9, 9), np.uint8)
    line[0, :, 3:5] = 255
    wide = stroke_width(line, [1.0], backend=backend)
    assert (wide[0] == 255).sum(axis=1).tolist() == [4] * 9
    half = stroke_width(line, [0.5], backend=backend)  # a grey rim: the soft wide stroke of a felt pen
    assert half[0, 4].tolist() == [0, 0, 128, 255, 255, 128, 0, 0, 0]
    block = np.zeros((1, 9, 9), np.uint8)
    block[0, 3:6, 3:6] = 200
    thin = stroke_width(block, [-1.0], backend=backend)
    assert np.argwhere(thin[0]).tolist() == [[4, 4]] and thin[0, 4, 4] == 200


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_amount_leaves_the_image_unchanged(backend):
    images = digits_like(4)
    np.testing.assert_array_equal(stroke_width(images, np.zeros(6), backend=backend), images)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sigmas", [[0.5, 1.0, 1.5], [0.3, 2.0, 0.8]])
def test_soften_matches_its_naive_definition(backend, sigmas):
    images = digits_like(5, 3)
    out = soften(images, sigmas, backend=backend)
    expected = naive_soften(images, sigmas)
    # The naive sum runs in another order: a value within rounding of a half may land one level off.
    assert out.dtype == np.uint8 and np.abs(out.astype(int) - expected).max() <= 1
    assert np.mean(out == expected) > 0.99


@pytest.mark.parametrize("backend", BACKENDS)
def test_soften_spreads_a_point_symmetrically_and_keeps_its_peak_full(backend):
    point = np.zeros((1, 11, 11), np.uint8)
    point[0, 5, 5] = 90
    out = soften(point, [1.0], backend=backend)[0]
    assert out[5, 5] == 255 and out.max() == 255
    np.testing.assert_array_equal(out, out[::-1])
    np.testing.assert_array_equal(out, out.T)
    assert 0 < out[5, 6] < 255 and out[5, 5 + BLUR_RADIUS + 1] == 0  # the kernel ends at BLUR_RADIUS
    assert not soften(np.zeros((1, 5, 5), np.uint8), [1.0], backend=backend).any()  # blank stays blank


@pytest.mark.parametrize("function", [stroke_width, soften])
@pytest.mark.parametrize("images, strengths, error, message", [
    (np.zeros((2, 5, 5), np.float32), [0.5, 0.5], TypeError, "expected uint8 images of shape"),
    (np.zeros((5, 5), np.uint8), [0.5], TypeError, "expected uint8 images of shape"),
    (np.zeros((2, 5, 5), np.uint8), [0.5], ValueError, "one strength per image"),
    (np.zeros((2, 5, 5), np.uint8), [0.5, np.nan], ValueError, "finite"),
])
def test_bad_input_is_refused_with_what_was_expected(function, images, strengths, error, message):
    with pytest.raises(error, match=message):
        function(images, strengths)


def test_out_of_range_strengths_are_refused():
    with pytest.raises(ValueError, match=r"amounts must be in \[-1, 1\]"):
        stroke_width(np.zeros((1, 5, 5), np.uint8), [1.5])
    with pytest.raises(ValueError, match="sigmas must be positive"):
        soften(np.zeros((1, 5, 5), np.uint8), [0.0])
    with pytest.raises(ValueError, match="backend must be 'numpy' or 'numba'"):
        soften(np.zeros((1, 5, 5), np.uint8), [1.0], backend="cuda")
