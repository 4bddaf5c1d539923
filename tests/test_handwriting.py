"""The handwriting set (not MNIST): stored whole, read through the upload path, and read well by the shipped model."""

import io

import numpy as np
import pytest
from PIL import Image

from benchmarks import handwriting, handwriting_set
from data.preprocess import prepare_digit
from lenet import load_model

# The shipped model's figure on the set when it was built (97.7%, 22 errors of 960): a floor, so
# that a new model or a change in the upload path that reads real handwriting worse fails here.
SHIPPED_MODEL_FLOOR = 0.977


@pytest.fixture(scope="module")
def prepared():
    return handwriting.prepared_digits()


def test_the_stored_set_holds_every_digit_from_every_source():
    files, labels, sources, details = handwriting_set.load()
    per_digit = handwriting_set.PEN_PER_DIGIT + handwriting_set.SCAN_PER_DIGIT \
        + handwriting_set.FONT_RENDERS * len(handwriting_set.FONTS)
    assert len(files) == len(labels) == len(sources) == len(details) == 10 * per_digit
    assert np.bincount(labels, minlength=10).tolist() == [per_digit] * 10
    assert set(sources) == set(handwriting_set.SOURCES)
    assert set(details[sources == "font"]) == set(handwriting_set.FONTS)
    assert all(data.startswith(b"\x89PNG\r\n\x1a\n") for data in files)


def test_every_digit_goes_through_the_upload_preprocessing(prepared):
    images, labels, sources, _ = prepared
    assert images.shape == (len(labels), 28, 28) and images.dtype == np.uint8
    assert (images.max(axis=(1, 2)) == 255).all()  # preprocessing stretches every digit to full white


def test_the_shipped_model_reads_the_handwriting_set(prepared):
    images, labels, sources, _ = prepared
    predicted = handwriting.evaluate(load_model(), images, labels)
    result = handwriting.summary(predicted, labels, sources)
    assert result["accuracy"] >= SHIPPED_MODEL_FLOOR, handwriting.report(result)


def test_the_set_has_wider_strokes_than_mnist_as_real_handwriting_does(prepared):
    images = prepared[0]
    assert 2.4 < handwriting.stroke_widths(images).mean() < 3.2  # real handwriting 3.0, MNIST 2.1


@pytest.mark.parametrize("width", [1, 2, 4])
def test_a_bars_stroke_width_is_its_width_but_for_its_two_ends(width):
    bar = np.zeros((1, 28, 28), np.uint8)
    bar[0, 4:24, 10:10 + width] = 255
    expected = 2 * 20 * width / (2 * 20 + 2 * width)  # area 20 w, outline 2 (20 + w)
    assert handwriting.stroke_widths(bar)[0] == pytest.approx(expected)


def test_the_summary_counts_per_source_per_digit_and_confusions():
    labels = np.array([1, 1, 1, 4, 4, 7])
    predicted = np.array([1, 7, 7, 4, 9, 7])
    sources = np.array(["pen", "pen", "scan", "font", "font", "scan"])
    result = handwriting.summary(predicted, labels, sources)
    assert result["accuracy"] == pytest.approx(3 / 6)
    assert result["per_source"] == {"pen": 0.5, "scan": 0.5, "font": 0.5}
    assert result["per_digit"] == {1: pytest.approx(1 / 3), 4: 0.5, 7: 1.0}
    assert result["confusions"] == [((1, 7), 2), ((4, 9), 1)]
    assert "1->7 2, 4->9 1" in handwriting.report(result)


@pytest.mark.parametrize("make", [handwriting_set.pen_digit, handwriting_set.scan_digit])
@pytest.mark.parametrize("digit", range(10))
def test_drawn_digits_are_seeded_and_readable_by_the_preprocessing(make, digit):
    first = handwriting_set.png_bytes(make(digit, np.random.default_rng(digit)))
    assert first == handwriting_set.png_bytes(make(digit, np.random.default_rng(digit)))
    image = Image.open(io.BytesIO(first))
    assert image.mode == "L"
    grey = np.asarray(image)
    assert np.median(grey) > 150 and grey.min() < 100  # dark ink on a light background
    assert prepare_digit(image).max() == 255


def test_the_set_round_trips_through_its_file(tmp_path):
    files = [handwriting_set.png_bytes(handwriting_set.pen_digit(d, np.random.default_rng(d))) for d in (3, 8)]
    path = tmp_path / "set.npz"
    handwriting_set.save(path, files, np.array([3, 8], np.uint8), np.array(["pen", "pen"]), np.array(["a", "b"]))
    loaded = handwriting_set.load(path)
    assert loaded[0] == files and loaded[1].tolist() == [3, 8] and loaded[3].tolist() == ["a", "b"]


def test_missing_fonts_name_the_packages_to_install(tmp_path):
    with pytest.raises(SystemExit, match="install the Debian packages fonts-breip"):
        handwriting_set.find_fonts({"Breip.ttf": "fonts-breip"}, dirs=(str(tmp_path),))


def test_the_width_sweep_draws_wider_strokes_band_by_band():
    rows = handwriting.width_sweep(load_model(), per_digit=2)
    assert [band for band, _, _ in rows] == list(handwriting.WIDTH_BANDS)
    widths = [width for _, _, width in rows]
    assert widths == sorted(widths) and widths[0] < 1.5 < 4 < widths[-1]
    assert all(0 <= accuracy <= 1 for _, accuracy, _ in rows)
