"""Random affine augmentation: exact on identity and whole-pixel shifts, geometry right (shear and
width too), seeded, in range; the pen augmentation and their composition seeded and in range."""

import numpy as np
import pytest

from data.augment import (Compose, RandomAffine, RandomPen, affine_maps, apply_affine, handwriting_augment,
                          rotate_scale_shift, shear, stretch_width)
from data.strokes import soften, stroke_width
from data.warp import DEFAULT_BACKEND, NUMBA_AVAILABLE, PARALLEL_MIN_IMAGES, warp, warp_numba, warp_numpy

BACKENDS = ["numpy", "numba"]
DTYPES = [np.uint8, np.float32, np.float64]


def random_images(seed, shape=(6, 28, 28), dtype=np.uint8):
    rng = np.random.default_rng(seed)
    if dtype == np.uint8:
        return rng.integers(0, 256, size=shape, dtype=np.uint8)
    return rng.uniform(-1.0, 3.0, size=shape).astype(dtype)


def identity(n):
    return np.zeros(n), np.ones(n), np.zeros((n, 2))


def point_image(size, y, x, dtype=np.float64):
    image = np.zeros((1, size, size), dtype=dtype)
    image[0, y, x] = 1
    return image


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(6, 28, 28), (3, 2, 28, 28), (2, 5, 9)])
def test_identity_parameters_give_back_the_input_exactly(backend, dtype, shape):
    images = random_images(0, shape, dtype)
    out = apply_affine(images, *identity(shape[0]), backend=backend)
    assert out.dtype == images.dtype and out.shape == images.shape
    np.testing.assert_array_equal(out, images)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dy, dx", [(0, 1), (1, 0), (0, -1), (-2, 2)])
def test_a_whole_pixel_shift_moves_the_image_and_fills_the_gap(backend, dtype, dy, dx):
    images = random_images(1, (4, 28, 28), dtype)
    fill = 7
    out = apply_affine(images, np.zeros(4), np.ones(4), np.tile([dy, dx], (4, 1)), fill=fill, backend=backend)
    expected = np.full_like(images, fill)
    h, w = images.shape[1:]
    # +dy moves content down, +dx moves it right: out[y, x] = in[y - dy, x - dx].
    expected[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        images[:, max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_quarter_turn_takes_right_of_centre_to_below_centre(backend):
    # 29 x 29 has a pixel at its exact centre (14, 14); the point sits 5 pixels to its right.
    out = apply_affine(point_image(29, 14, 19), [90.0], [1.0], [[0, 0]], backend=backend)
    np.testing.assert_allclose(out, point_image(29, 19, 14), atol=1e-9)  # clockwise as displayed


@pytest.mark.parametrize("backend", BACKENDS)
def test_scaling_moves_pixels_away_from_the_centre_in_proportion(backend):
    out = apply_affine(point_image(29, 14, 17), [0.0], [2.0], [[0, 0]], backend=backend)
    # 3 pixels right of centre become 6; scaling up by 2 also spreads the point over its neighbours.
    assert np.unravel_index(np.argmax(out[0]), out[0].shape) == (14, 20)
    assert out[0, 14, 20] == 1.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_half_pixel_shift_averages_neighbours(backend):
    image = np.zeros((1, 3, 4))
    image[0, 1] = [0.0, 2.0, 4.0, 6.0]
    out = apply_affine(image, [0.0], [1.0], [[0.0, 0.5]], backend=backend)
    np.testing.assert_allclose(out[0, 1], [0.0, 1.0, 3.0, 5.0])  # the leftmost blends with fill 0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_random_augmentation_keeps_shape_dtype_and_value_range(backend, dtype):
    images = random_images(2, (32, 28, 28), dtype)
    augment = RandomAffine(max_rotation=30.0, scale_range=(0.7, 1.3), fill=0, backend=backend)
    out = augment(images, np.random.default_rng(0))
    assert out.shape == images.shape and out.dtype == images.dtype
    low, high = min(images.min(), 0), max(images.max(), 0)
    assert low <= out.min() and out.max() <= high
    assert not np.array_equal(out, images)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_same_seed_gives_the_same_augmentation(backend):
    images = random_images(3, (16, 28, 28))
    augment = RandomAffine(backend=backend)
    first = augment(images, np.random.default_rng(42))
    np.testing.assert_array_equal(first, augment(images, np.random.default_rng(42)))
    assert not np.array_equal(first, augment(images, np.random.default_rng(43)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [50, PARALLEL_MIN_IMAGES])  # the serial kernel, and the parallel one
def test_numba_kernel_matches_the_numpy_reference_bit_for_bit(dtype, n):
    images = random_images(4, (n, 28, 28), dtype)
    params = RandomAffine(max_rotation=45.0, scale_range=(0.5, 1.5), max_shear=0.3, aspect_range=(0.8, 1.3)).sample(
        np.random.default_rng(5), n)
    params["shifts"] = params["shifts"] + np.random.default_rng(6).uniform(-0.5, 0.5, (n, 2))
    maps = affine_maps(shape=(28, 28), **params)
    np.testing.assert_array_equal(warp_numba(images, maps, fill=-0.3), warp_numpy(images, maps, fill=-0.3))


def test_sampled_parameters_stay_within_the_configured_bounds():
    params = RandomAffine(max_shift=2, max_rotation=10.0, scale_range=(0.9, 1.1), max_shear=0.3,
                          aspect_range=(1 / 1.3, 1.3)).sample(np.random.default_rng(7), 10000)
    angles, scales, shifts = params["angles_deg"], params["scales"], params["shifts"]
    assert np.all(np.abs(angles) <= 10.0) and np.all((0.9 <= scales) & (scales <= 1.1))
    assert shifts.dtype.kind == "i" and set(np.unique(shifts)) == {-2, -1, 0, 1, 2}
    aspects = params["aspects"]
    assert np.all(np.abs(params["shears"]) <= 0.3) and np.all((1 / 1.3 <= aspects) & (aspects <= 1.3))
    # Log-uniform widths: as many narrower digits as wider ones.
    assert abs(np.mean(aspects < 1) - 0.5) < 0.02


def test_without_shear_or_width_change_the_draws_are_the_plain_affines():
    # The default augmentation draws angles, scales and shifts, in that order, and nothing more:
    # the default training run's images depend on it.
    images = random_images(9, (8, 28, 28))
    rng = np.random.default_rng(11)
    angles, scales = rng.uniform(-10, 10, 8), rng.uniform(0.9, 1.1, 8)
    shifts = rng.integers(-2, 2, size=(8, 2), endpoint=True)
    expected = apply_affine(images, angles, scales, shifts)
    generator = np.random.default_rng(11)
    assert set(RandomAffine().sample(np.random.default_rng(11), 8)) == {"angles_deg", "scales", "shifts"}
    np.testing.assert_array_equal(RandomAffine()(images, generator), expected)
    assert generator.bit_generator.state == rng.bit_generator.state  # no extra draws


def forward_matrix(angle_deg, scale, shear_, aspect):
    """The forward 2x2 matrix on (x, y), rows downwards: scale * R(angle) * [[aspect, -shear], [0, 1]]."""
    a = np.deg2rad(angle_deg)
    rotation = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])  # clockwise as displayed
    return scale * rotation @ np.array([[aspect, -shear_], [0.0, 1.0]])


@pytest.mark.parametrize("angle, scale, shear_, aspect, shift", [
    (0.0, 1.0, 0.3, 1.0, (0, 0)), (0.0, 1.0, 0.0, 1.3, (1, -2)), (20.0, 0.9, -0.2, 0.8, (2, 1)),
    (-10.0, 1.1, 0.25, 1.2, (0.5, -0.5))])
def test_the_inverse_maps_invert_the_forward_transform(angle, scale, shear_, aspect, shift):
    shape = (28, 30)
    c = np.array([(shape[1] - 1) / 2, (shape[0] - 1) / 2])  # (cx, cy)
    maps = affine_maps([angle], [scale], [shift], shape, shears=[shear_], aspects=[aspect])[0]
    points = np.random.default_rng(0).uniform(0, 28, (20, 2))  # input (x, y)
    forward = c + (points - c) @ forward_matrix(angle, scale, shear_, aspect).T + np.array(shift)[::-1]
    back = forward @ maps[:, :2].T + maps[:, 2]
    np.testing.assert_allclose(back, points, atol=1e-9)


def test_zero_shear_and_unit_width_give_the_plain_maps():
    args = ([12.0, -5.0], [1.1, 0.9], [[1, -1], [0, 2]], (28, 28))
    np.testing.assert_allclose(affine_maps(*args, shears=[0.0, 0.0], aspects=[1.0, 1.0]), affine_maps(*args),
                               atol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_shear_moves_a_point_above_the_centre_to_the_right(backend):
    # 5 rows above the centre (14, 14) of a 29 x 29 image, shear 0.4: 2 pixels to the right.
    out = shear(point_image(29, 9, 14), [0.4], backend=backend)
    np.testing.assert_allclose(out, point_image(29, 9, 16), atol=1e-9)
    below = shear(point_image(29, 19, 14), [0.4], backend=backend)
    np.testing.assert_allclose(below, point_image(29, 19, 12), atol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_stretching_the_width_moves_points_sideways_only(backend):
    out = stretch_width(point_image(29, 10, 19), [1.4], backend=backend)[0]  # 5 right of centre -> 7
    # Widening also spreads the point over its left and right neighbours, never up or down.
    assert np.unravel_index(np.argmax(out), out.shape) == (10, 21) and out[10, 21] == 1.0
    assert out.sum() == out[10].sum()


def test_rotate_scale_shift_is_the_plain_affine():
    images = random_images(12, (3, 28, 28))
    args = ([5.0, 0.0, -7.0], [1.0, 1.1, 0.9], [[0, 1], [1, 0], [0, 0]])
    np.testing.assert_array_equal(rotate_scale_shift(images, *args), apply_affine(images, *args))


@pytest.mark.parametrize("kwargs", [dict(max_shift=-1), dict(max_shift=1.5), dict(max_rotation=200.0),
                                    dict(scale_range=(1.1, 0.9)), dict(scale_range=(0.0, 1.0)),
                                    dict(max_shear=-0.1), dict(max_shear=2.0), dict(aspect_range=(1.3, 0.8)),
                                    dict(aspect_range=(0.0, 1.2))])
def test_impossible_settings_are_refused(kwargs):
    with pytest.raises(ValueError, match="RandomAffine"):
        RandomAffine(**kwargs)


def test_augmenting_needs_a_generator():
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        RandomAffine()(random_images(0), 42)


@pytest.mark.parametrize("images, maps, error", [
    (np.zeros((2, 28, 28), np.uint8), np.zeros((3, 2, 3)), ValueError),
    (np.zeros((2, 28, 28), np.int32), np.zeros((2, 2, 3)), TypeError),
    (np.zeros((28, 28), np.uint8), np.zeros((1, 2, 3)), ValueError),
    (np.zeros((1, 28, 28), np.uint8), np.full((1, 2, 3), np.nan), ValueError),
])
@pytest.mark.parametrize("backend", BACKENDS)
def test_warp_refuses_mismatched_or_unsupported_input(images, maps, error, backend):
    with pytest.raises(error, match="warp"):
        warp(images, maps, backend=backend)


def test_apply_affine_refuses_a_parameter_count_that_does_not_match():
    with pytest.raises(ValueError, match="2 images but 3"):
        apply_affine(random_images(0, (2, 28, 28)), *identity(3))


def test_warp_refuses_an_unknown_backend():
    with pytest.raises(ValueError, match="backend must be 'numpy' or 'numba', got 'cuda'"):
        warp(random_images(0), np.tile(np.eye(2, 3), (6, 1, 1)), backend="cuda")


def test_without_a_backend_named_the_warp_uses_numba_when_importable():
    assert DEFAULT_BACKEND == ("numba" if NUMBA_AVAILABLE else "numpy")
    assert RandomAffine().backend is None  # so it follows DEFAULT_BACKEND


class CountingLock:
    """A stand-in for a caller's launch lock that counts how often it is held."""

    def __init__(self):
        self.held = 0

    def __enter__(self):
        self.held += 1

    def __exit__(self, *exc_info):
        return False


@pytest.mark.parametrize("n, launches", [(50, 0), (PARALLEL_MIN_IMAGES, 1)])
def test_the_parallel_kernel_launches_under_the_callers_lock(n, launches):
    numba = pytest.importorskip("numba")
    if numba.get_num_threads() < 2:
        pytest.skip("numba has one thread: every job runs serially")
    lock = CountingLock()
    augment = RandomAffine(backend="numba", launch_lock=lock)
    images = random_images(8, (n, 28, 28))
    out = augment(images, np.random.default_rng(0))
    assert lock.held == launches
    np.testing.assert_array_equal(out, RandomAffine(backend="numpy")(images, np.random.default_rng(0)))


@pytest.mark.parametrize("kwargs", [dict(width_range=(0.5, -0.5)), dict(width_range=(-1.5, 0.0)),
                                    dict(soften_probability=1.5), dict(sigma_range=(0.0, 1.0)),
                                    dict(sigma_range=(1.0, 0.5))])
def test_impossible_pen_settings_are_refused(kwargs):
    with pytest.raises(ValueError, match="RandomPen"):
        RandomPen(**kwargs)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_pen_is_seeded_and_keeps_shape_dtype_and_range(backend):
    images = random_images(13, (40, 28, 28))
    pen = RandomPen(backend=backend)
    first = pen(images, np.random.default_rng(3))
    assert first.shape == images.shape and first.dtype == np.uint8
    np.testing.assert_array_equal(first, pen(images, np.random.default_rng(3)))
    assert not np.array_equal(first, pen(images, np.random.default_rng(4)))
    assert not np.array_equal(first, images)


def test_the_pen_softens_exactly_the_drawn_images():
    images = random_images(14, (30, 28, 28))
    pen = RandomPen(soften_probability=0.5)
    amounts, softened, sigmas = pen.sample(np.random.default_rng(5), 30)
    assert 0 < softened.sum() < 30
    widened = stroke_width(images, amounts)
    expected = widened.copy()
    expected[softened] = soften(widened[softened], sigmas[softened])
    np.testing.assert_array_equal(pen(images, np.random.default_rng(5)), expected)


def test_compose_runs_its_steps_in_order_on_one_generator():
    images = random_images(15, (10, 28, 28))
    steps = (RandomAffine(max_shear=0.3), RandomPen())
    rng = np.random.default_rng(6)
    expected = steps[1](steps[0](images, rng), rng)
    np.testing.assert_array_equal(Compose(steps)(images, np.random.default_rng(6)), expected)
    reversed_order = Compose(steps[::-1])(images, np.random.default_rng(6))
    assert not np.array_equal(reversed_order, expected)


def test_the_handwriting_augment_widens_pens_after_the_default_geometry():
    recipe = handwriting_augment(backend="numpy")
    affine, pen = recipe.steps
    assert affine == RandomAffine(backend="numpy")
    assert pen == RandomPen(width_range=(0.0, 0.6), soften_probability=0.0, backend="numpy")
    images = random_images(16, (12, 28, 28))
    np.testing.assert_array_equal(recipe(images, np.random.default_rng(1)), recipe(images, np.random.default_rng(1)))
