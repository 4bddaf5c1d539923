"""data.preprocess: any picture of a digit -> the MNIST-style 28x28 image, on synthetic drawings and real MNIST."""

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from data.preprocess import BOX, CENTER, SIZE, BlankImageError, prepare_digit


def draw_seven(width=200, height=200, box=(40, 30, 160, 170), stroke=16, ink=0, paper=255, mode="L"):
    """A '7' (a top bar and a diagonal) drawn with lines on a plain background."""
    image = Image.new(mode, (width, height), paper)
    pen = ImageDraw.Draw(image)
    left, top, right, bottom = box
    pen.line([(left, top), (right, top)], fill=ink, width=stroke)
    pen.line([(right, top), (left + (right - left) // 3, bottom)], fill=ink, width=stroke)
    return image


def center_of_mass(image):
    image = image.astype(np.float64)
    ys, xs = np.indices(image.shape)
    return (ys * image).sum() / image.sum(), (xs * image).sum() / image.sum()


def ink_extent(image):
    rows = np.flatnonzero(image.any(axis=1))
    cols = np.flatnonzero(image.any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def assert_mnist_like(digit):
    """What every MNIST digit satisfies: 28x28 uint8, full-strength ink within 20x20, mass at the center."""
    assert digit.shape == (SIZE, SIZE) and digit.dtype == np.uint8
    assert digit.max() == 255
    cy, cx = center_of_mass(digit)
    assert abs(cy - CENTER) <= 0.5 and abs(cx - CENTER) <= 0.5
    assert max(ink_extent(digit)) <= BOX + 1  # Lanczos may spill a faint pixel past the 20x20 box


def test_dark_ink_on_light_paper_becomes_white_ink_on_black_centered():
    digit = prepare_digit(draw_seven())
    assert_mnist_like(digit)
    assert max(ink_extent(digit)) >= BOX - 1


def test_off_center_drawing_is_moved_to_the_center():
    corner = prepare_digit(draw_seven(box=(5, 5, 60, 70), stroke=6))
    assert_mnist_like(corner)


def test_drawing_larger_than_the_box_is_shrunk_to_fit_20_pixels():
    huge = prepare_digit(draw_seven(width=900, height=900, box=(20, 20, 880, 880), stroke=60))
    assert_mnist_like(huge)
    assert max(ink_extent(huge)) >= BOX - 1


def test_very_large_picture_gives_the_digit_its_small_copy_gives():
    # Pictures over MAX_WORKING_SIDE pixels a side are averaged down first; the digit must not change.
    large = prepare_digit(draw_seven(width=3000, height=3000, box=(600, 450, 2400, 2550), stroke=240))
    small = prepare_digit(draw_seven(width=500, height=500, box=(100, 75, 400, 425), stroke=40))
    assert_mnist_like(large)
    assert np.abs(large.astype(int) - small).mean() < 4


def test_tiny_drawing_is_enlarged_to_fill_the_box():
    tiny = prepare_digit(draw_seven(width=100, height=100, box=(45, 44, 53, 56), stroke=2))
    assert_mnist_like(tiny)
    assert max(ink_extent(tiny)) >= BOX - 1


def test_thin_vertical_stroke_keeps_its_aspect_ratio():
    image = Image.new("L", (120, 240), 255)
    ImageDraw.Draw(image).line([(60, 20), (60, 220)], fill=0, width=1)
    digit = prepare_digit(image)
    assert_mnist_like(digit)
    height, width = ink_extent(digit)
    assert height >= BOX - 1 and width <= 3


def test_inverted_picture_gives_the_same_digit():
    dark_on_light = prepare_digit(draw_seven(ink=0, paper=255))
    light_on_dark = prepare_digit(draw_seven(ink=255, paper=0))
    np.testing.assert_array_equal(dark_on_light, light_on_dark)


def test_non_square_picture_keeps_the_digit_aspect_ratio():
    # A rectangle twice as tall as wide must come out about 20 tall and 10 wide.
    image = Image.new("L", (300, 120), 255)
    ImageDraw.Draw(image).rectangle([200, 10, 239, 89], outline=0, width=4)
    digit = prepare_digit(image)
    assert_mnist_like(digit)
    height, width = ink_extent(digit)
    assert abs(height - 20) <= 1 and abs(width - 10) <= 1


def test_rgba_strokes_on_a_transparent_background_read_like_ink_on_paper():
    on_paper = prepare_digit(draw_seven())
    black_on_clear = draw_seven(mode="RGBA", ink=(0, 0, 0, 255), paper=(0, 0, 0, 0))
    white_on_clear = draw_seven(mode="RGBA", ink=(255, 255, 255, 255), paper=(255, 255, 255, 0))
    np.testing.assert_array_equal(prepare_digit(black_on_clear), on_paper)
    np.testing.assert_array_equal(prepare_digit(white_on_clear), on_paper)


def test_coloured_ink_and_paper_are_read_by_their_brightness():
    blue_on_cream = draw_seven(mode="RGB", ink=(20, 40, 160), paper=(250, 245, 225))
    assert_mnist_like(prepare_digit(blue_on_cream))


def test_palette_and_16_bit_pictures_are_read():
    palette = draw_seven().convert("P")
    sixteen_bit = Image.fromarray(np.asarray(draw_seven(), dtype=np.uint16) * 257)
    assert sixteen_bit.mode.startswith("I;16")
    expected = prepare_digit(draw_seven())
    np.testing.assert_array_equal(prepare_digit(palette), expected)
    assert np.abs(prepare_digit(sixteen_bit).astype(int) - expected).max() <= 1


def test_jpeg_artifacts_do_not_move_the_digit():
    buffer = io.BytesIO()
    draw_seven().convert("RGB").save(buffer, "JPEG", quality=40)
    from_jpeg = prepare_digit(Image.open(io.BytesIO(buffer.getvalue())))
    assert_mnist_like(from_jpeg)
    assert np.abs(from_jpeg.astype(int) - prepare_digit(draw_seven())).mean() < 8


def test_lopsided_ink_is_not_pushed_off_the_image():
    # A long bar with a heavy blob at one end: centering its mass exactly would cut the bar.
    image = Image.new("L", (200, 200), 0)
    pen = ImageDraw.Draw(image)
    pen.line([(10, 100), (190, 100)], fill=255, width=4)
    pen.ellipse([150, 60, 190, 140], fill=255)
    digit = prepare_digit(image)
    assert digit[:, 0].max() == 0 or digit[:, -1].max() == 0
    assert int((digit > 0).sum()) >= int((prepare_digit(image.crop((0, 0, 200, 200))) > 0).sum())


@pytest.mark.parametrize("picture", [
    Image.new("L", (50, 50), 255),
    Image.new("L", (50, 50), 0),
    Image.new("RGB", (80, 40), (128, 128, 128)),
    Image.new("RGBA", (64, 64), (0, 0, 0, 0)),
    Image.fromarray(np.random.default_rng(0).integers(250, 256, (64, 64)).astype(np.uint8)),
], ids=["white", "black", "grey", "transparent", "faint-noise"])
def test_blank_pictures_are_refused_as_blank(picture):
    with pytest.raises(BlankImageError, match="blank"):
        prepare_digit(picture)


def test_array_of_grey_levels_is_accepted_like_a_picture():
    picture = draw_seven(width=28, height=28, box=(6, 5, 21, 23), stroke=3)
    from_array = prepare_digit(np.asarray(picture, dtype=np.float64))
    np.testing.assert_array_equal(from_array, prepare_digit(picture))


@pytest.mark.parametrize("array, message", [
    (np.zeros((28, 28, 3)), "2-D"),
    (np.full((28, 28), 256.0), "0..255"),
    (np.full((28, 28), -1), "0..255"),
    (np.full((28, 28), np.nan), "finite"),
    (np.array([["a"] * 28] * 28), "numbers"),
])
def test_arrays_that_are_not_grey_levels_are_refused_with_the_reason(array, message):
    with pytest.raises(ValueError, match=message):
        prepare_digit(array)


def test_real_mnist_digits_come_through_almost_unchanged(mnist_dir):
    """MNIST digits are already MNIST-style: as dark-on-light PNGs they must come back nearly as they were."""
    from data.mnist import load
    images, _ = load(mnist_dir, train=False)
    differences = []
    for image in images[:200]:
        buffer = io.BytesIO()
        Image.fromarray(255 - image).save(buffer, "PNG")
        again = prepare_digit(Image.open(io.BytesIO(buffer.getvalue())))
        differences.append(np.abs(again.astype(int) - image).mean())
    assert np.mean(differences) < 2.0  # grey levels out of 255, per pixel
