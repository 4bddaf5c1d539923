"""lenet.plots: the confusion-matrix counts, and the three PNG pictures written after training."""

import os

import numpy as np
import pytest
from PIL import Image

from lenet import plots

# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def synthetic_history(epochs, seed=0, with_train_accuracy=False):
    """Loss falling from 0.3 to 0.02 and accuracy rising from 97% to 99.4%, with a little noise."""
    rng = np.random.default_rng(seed)
    history = []
    for epoch in range(1, epochs + 1):
        t = (epoch - 1) / max(epochs - 1, 1)
        accuracy = 0.97 + 0.024 * t
        history.append({
            "epoch": epoch,
            "train_loss": 0.3 * (0.02 / 0.3) ** t,
            "val_loss": 0.25 * (0.03 / 0.25) ** t + 0.002 * rng.random(),
            "test_loss": 0.24 * (0.03 / 0.24) ** t + 0.002 * rng.random(),
            "train_accuracy": accuracy if with_train_accuracy else None,
            "val_accuracy": min(1.0, accuracy + 0.002 * rng.random()),
            "test_accuracy": min(1.0, accuracy + 0.002 * rng.random()),
        })
    return history


def open_png(path):
    """Open ``path``, check that it is a complete PNG, and return its pixels as an array."""
    with Image.open(path) as image:
        image.verify()                  # checks the file's structure and CRCs
    with Image.open(path) as image:     # verify() leaves the image unusable: open it again
        assert image.format == "PNG"
        assert image.mode == "RGB"
        return np.asarray(image.convert("RGB"))


def assert_not_blank(pixels):
    """Something was drawn: the picture is not one flat colour."""
    assert pixels.astype(np.float64).std() > 5.0


def contains_colour(pixels, colour, tolerance=12):
    """True if some pixel is within ``tolerance`` of ``colour`` in every channel."""
    distance = np.abs(pixels.astype(np.int64) - np.asarray(colour)).max(axis=-1)
    return bool(np.any(distance <= tolerance))


def loop_confusion_matrix(true_labels, predicted_labels, num_classes):
    """The definition, one sample at a time."""
    matrix = [[0] * num_classes for _ in range(num_classes)]
    for t, p in zip(true_labels, predicted_labels):
        matrix[t][p] += 1
    return np.array(matrix)


# --------------------------------------------------------------------------------------------
# confusion_matrix
# --------------------------------------------------------------------------------------------

def test_confusion_matrix_matches_a_hand_computed_example():
    true_labels = [0, 0, 1, 2, 2, 2]
    predicted = [0, 1, 1, 2, 0, 2]
    expected = np.array([[1, 1, 0],     # two 0s: one right, one taken for a 1
                         [0, 1, 0],     # one 1, right
                         [1, 0, 2]])    # three 2s: two right, one taken for a 0
    matrix = plots.confusion_matrix(true_labels, predicted, num_classes=3)
    np.testing.assert_array_equal(matrix, expected)
    assert matrix.dtype == np.int64


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("num_classes, count", [(2, 50), (10, 1000), (7, 3)])
def test_confusion_matrix_equals_counting_with_loops(seed, num_classes, count):
    rng = np.random.default_rng(seed)
    true_labels = rng.integers(0, num_classes, count)
    predicted = rng.integers(0, num_classes, count)
    matrix = plots.confusion_matrix(true_labels, predicted, num_classes)
    np.testing.assert_array_equal(matrix, loop_confusion_matrix(true_labels, predicted, num_classes))
    assert matrix.shape == (num_classes, num_classes)
    assert matrix.sum() == count
    np.testing.assert_array_equal(matrix.sum(axis=1), np.bincount(true_labels, minlength=num_classes))


def test_confusion_matrix_of_no_samples_is_all_zeros():
    matrix = plots.confusion_matrix([], [], num_classes=4)
    np.testing.assert_array_equal(matrix, np.zeros((4, 4)))
    assert matrix.dtype == np.int64


def test_confusion_matrix_accepts_whole_number_floats():
    matrix = plots.confusion_matrix(np.array([1.0, 0.0]), np.array([1.0, 1.0]), num_classes=2)
    np.testing.assert_array_equal(matrix, [[0, 1], [0, 1]])


@pytest.mark.parametrize("true_labels, predicted, num_classes, message", [
    ([0, 1, 2], [0, 1], 10, "2 predictions for 3 labels"),
    ([0, 10], [0, 1], 10, r"true_labels in 0\.\.9, got 10 at position 1"),
    ([0, 1], [-1, 1], 10, r"predicted_labels in 0\.\.9, got -1 at position 0"),
    ([0, 3], [0, 1], 3, r"true_labels in 0\.\.2, got 3"),
    ([[0, 1]], [[0, 1]], 10, r"1-D array .* got 2-D with shape \(1, 2\)"),
    ([0.5, 1], [0, 1], 10, "whole-number class indices in true_labels, got 0.5"),
    (["a"], [0], 10, "integer class indices"),
    ([0], [0], 0, "num_classes to be a positive int, got 0"),
])
def test_confusion_matrix_rejects_bad_labels_naming_the_problem(true_labels, predicted, num_classes, message):
    with pytest.raises(ValueError, match=message):
        plots.confusion_matrix(true_labels, predicted, num_classes)


# --------------------------------------------------------------------------------------------
# save_curves
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("epochs", [1, 2, 15, 60])
def test_curves_are_a_two_panel_png_with_every_line_colour(tmp_path, epochs):
    path = tmp_path / "curves.png"
    returned = plots.save_curves(synthetic_history(epochs), path)
    assert returned == str(path)
    pixels = open_png(path)
    height, width, _ = pixels.shape
    assert width >= 2 * height > 0          # two panels side by side
    assert_not_blank(pixels)
    for colour in plots.SERIES_COLOURS.values():   # train/val/test are all drawn, even as one point
        assert contains_colour(pixels, colour)


def test_curves_draw_train_accuracy_only_when_it_was_recorded(tmp_path):
    without = open_png(plots.save_curves(synthetic_history(5), tmp_path / "without.png"))
    with_train = open_png(plots.save_curves(synthetic_history(5, with_train_accuracy=True), tmp_path / "with.png"))
    half = without.shape[1] // 2            # the accuracy panel is the right half
    train_colour = plots.SERIES_COLOURS["train"]
    assert not contains_colour(without[:, half:], train_colour)
    assert contains_colour(with_train[:, half:], train_colour)


def test_a_low_train_accuracy_is_cut_at_the_zoomed_axis_not_drawn_over_the_labels(tmp_path):
    # Train accuracy 10% at epoch 1, far below the zoomed 97% - 100% axis of val/test.
    history = synthetic_history(6, with_train_accuracy=True)
    history[0]["train_accuracy"] = 0.10
    pixels = open_png(plots.save_curves(history, tmp_path / "curves.png"))
    height, width, _ = pixels.shape
    accuracy_panel = pixels[:, width // 2:]
    train_colour = plots.SERIES_COLOURS["train"]
    assert contains_colour(accuracy_panel, train_colour)                 # the line is drawn...
    assert not contains_colour(accuracy_panel[height - 40:], train_colour)   # ...but not under the box


def test_curves_tolerate_missing_values_and_a_diverged_loss(tmp_path):
    history = [{"epoch": 1, "train_loss": 0.5},
               {"epoch": 2, "train_loss": float("nan"), "val_loss": 0.4, "val_accuracy": 0.9},
               {"epoch": 3, "train_loss": 0.2, "val_loss": None, "test_accuracy": 0.95}]
    assert_not_blank(open_png(plots.save_curves(history, tmp_path / "curves.png")))


def test_curves_without_any_accuracy_still_draw_the_loss(tmp_path):
    history = [{"epoch": e, "train_loss": 1.0 / e} for e in range(1, 4)]
    pixels = open_png(plots.save_curves(history, tmp_path / "curves.png"))
    assert contains_colour(pixels, plots.SERIES_COLOURS["train"])


@pytest.mark.parametrize("history, message", [
    ([], "at least one epoch"),
    ("history", "list of per-epoch dicts"),
    ([0.5], r"history\[0\] to be a dict"),
    ([{"epoch": 1, "val_accuracy": 99.2}], r"fraction in \[0, 1\], got 99.2"),
    ([{"epoch": 1, "train_loss": "low"}], "a number for 'train_loss'"),
    ([{"epoch": "one", "train_loss": 0.1}], "an int 'epoch'"),
])
def test_curves_reject_bad_history_naming_the_problem(tmp_path, history, message):
    with pytest.raises(ValueError, match=message):
        plots.save_curves(history, tmp_path / "curves.png")
    assert not (tmp_path / "curves.png").exists()


# --------------------------------------------------------------------------------------------
# save_confusion_matrix
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("num_classes", [2, 10])
def test_confusion_matrix_picture_is_a_heat_map_png(tmp_path, num_classes):
    rng = np.random.default_rng(num_classes)
    true_labels = rng.integers(0, num_classes, 2000)
    predicted = np.where(rng.random(2000) < 0.95, true_labels, rng.integers(0, num_classes, 2000))
    matrix = plots.confusion_matrix(true_labels, predicted, num_classes)
    path = plots.save_confusion_matrix(matrix, tmp_path / "confusion.png", title="Test set")
    pixels = open_png(path)
    assert pixels.shape[0] >= 40 * num_classes and pixels.shape[1] >= 40 * num_classes
    assert_not_blank(pixels)
    # The fullest cells get the dark end of the colour ramp, the empty ones its light end.
    assert contains_colour(pixels, plots.HEAT_RAMP[-1], tolerance=4)


def test_confusion_matrix_picture_of_nothing_is_still_drawn(tmp_path):
    pixels = open_png(plots.save_confusion_matrix(np.zeros((3, 3), dtype=int), tmp_path / "empty.png"))
    assert_not_blank(pixels)


@pytest.mark.parametrize("matrix, message", [
    (np.zeros((3, 4)), r"square .* got shape \(3, 4\)"),
    (np.zeros(5), r"got shape \(5,\)"),
    (np.array([[1, -1], [0, 2]]), "non-negative whole-number counts"),
    (np.array([[1.5, 0], [0, 2]]), "non-negative whole-number counts"),
])
def test_confusion_matrix_picture_rejects_a_bad_matrix(tmp_path, matrix, message):
    with pytest.raises(ValueError, match=message):
        plots.save_confusion_matrix(matrix, tmp_path / "confusion.png")


@pytest.mark.parametrize("position", np.linspace(0.0, 1.0, 41))
def test_cell_counts_are_readable_on_every_cell_colour(position):
    cell = plots._heat_colour(position)
    assert plots.contrast_ratio(plots.cell_text_colour(cell), cell) >= 4.5


@pytest.mark.parametrize("colour_a, colour_b, expected", [
    ((0, 0, 0), (255, 255, 255), 21.0), ((255, 255, 255), (0, 0, 0), 21.0), ((90, 90, 90), (90, 90, 90), 1.0)])
def test_contrast_ratio_spans_one_to_twenty_one(colour_a, colour_b, expected):
    assert plots.contrast_ratio(colour_a, colour_b) == pytest.approx(expected)


def test_light_cells_get_dark_text_and_dark_cells_light_text():
    assert plots.cell_text_colour(plots.HEAT_RAMP[0]) == plots.CELL_TEXT_ON_LIGHT
    assert plots.cell_text_colour(plots.HEAT_RAMP[-1]) == plots.WHITE


# --------------------------------------------------------------------------------------------
# save_misclassified
# --------------------------------------------------------------------------------------------

TILE = 28 * 3      # a digit enlarged three times


def black_digits_with_mistakes(count, wrong, seed=0):
    """``count`` all-black images, labels, and predictions wrong at ``wrong`` random positions."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 28, 28), dtype=np.uint8)
    true_labels = rng.integers(0, 10, count)
    predicted = true_labels.copy()
    positions = rng.choice(count, wrong, replace=False)
    predicted[positions] = (true_labels[positions] + rng.integers(1, 10, wrong)) % 10
    return images, true_labels, predicted


@pytest.mark.parametrize("wrong, max_images, shown", [(1, 100, 1), (7, 100, 7), (30, 100, 30), (130, 100, 100),
                                                      (30, 12, 12)])
def test_misclassified_draws_one_enlarged_tile_per_shown_mistake(tmp_path, wrong, max_images, shown):
    images, true_labels, predicted = black_digits_with_mistakes(300, wrong)
    path = plots.save_misclassified(images, true_labels, predicted, tmp_path / "wrong.png", max_images=max_images)
    pixels = open_png(path)
    assert_not_blank(pixels)
    # Only the (black) digit tiles are pure black: counting those pixels counts the 84 x 84 tiles.
    black = int(np.all(pixels == 0, axis=-1).sum())
    assert black == shown * TILE * TILE


def test_misclassified_with_no_mistake_writes_a_no_errors_picture(tmp_path):
    images, true_labels, _ = black_digits_with_mistakes(20, 0)
    pixels = open_png(plots.save_misclassified(images, true_labels, true_labels, tmp_path / "wrong.png"))
    assert_not_blank(pixels)                     # the message is written
    assert not np.any(np.all(pixels == 0, axis=-1))   # and no digit tile


def test_misclassified_shows_the_most_confident_mistakes_first(tmp_path):
    # Each wrong digit is a flat grey of its own, so its tile can be found in the picture.
    count = 12
    greys = np.arange(63, 63 + 10 * count, 10)   # none of them a colour of the text or frame
    images = np.repeat(greys.astype(np.uint8), 28 * 28).reshape(count, 28, 28)
    true_labels = np.zeros(count, dtype=int)
    predicted = np.ones(count, dtype=int)
    confidence = np.random.default_rng(3).permutation(count) / count
    path = plots.save_misclassified(images, true_labels, predicted, tmp_path / "wrong.png",
                                    probabilities=confidence)
    pixels = open_png(path)
    positions = []
    for grey in greys:
        # The tile's top-left corner: the first row and column holding a full tile side of its grey
        # (stray anti-aliased text pixels of the same grey never fill that many).
        mask = np.all(pixels == grey, axis=-1)
        top = np.flatnonzero(mask.sum(axis=1) >= TILE).min()
        left = np.flatnonzero(mask.sum(axis=0) >= TILE).min()
        positions.append((top, left))
    reading_order = sorted(range(count), key=lambda i: positions[i])
    assert reading_order == list(np.argsort(-confidence, kind="stable"))


def test_misclassified_accepts_floats_in_unit_range_and_a_channel_axis(tmp_path):
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, (10, 28, 28)).astype(np.uint8)
    true_labels = np.arange(10)
    predicted = (true_labels + 1) % 10
    reference = open_png(plots.save_misclassified(images, true_labels, predicted, tmp_path / "uint8.png"))
    as_floats = open_png(plots.save_misclassified(images[:, None] / 255.0, true_labels, predicted,
                                                  tmp_path / "float.png"))
    np.testing.assert_array_equal(as_floats, reference)


@pytest.mark.parametrize("confidence, expected", [(None, ""), (0.004, "<1%"), (0.5, "50%"), (0.834, "83%"),
                                                  (0.997, ">99%")])
def test_caption_confidence_never_rounds_to_certainty(confidence, expected):
    assert plots._caption_parts(7, 2, confidence) == ("7", "2", expected)


@pytest.mark.parametrize("change, message", [
    ({"images": np.zeros((5, 28), dtype=np.uint8)}, r"\(N, H, W\), got shape \(5, 28\)"),
    ({"images": np.full((5, 28, 28), -0.4)}, "uint8 pixels in 0..255"),
    ({"true_labels": np.zeros(4, dtype=int)}, "got 4 true and 5 predicted"),
    ({"max_images": 0}, "max_images to be a positive int, got 0"),
    ({"probabilities": np.ones((5, 3, 2))}, r"probabilities of shape \(5, num_classes\) or \(5,\)"),
    ({"probabilities": np.ones((4, 10))}, r"got shape \(4, 10\)"),
])
def test_misclassified_rejects_bad_input_naming_the_problem(tmp_path, change, message):
    arguments = {"images": np.zeros((5, 28, 28), dtype=np.uint8), "true_labels": np.arange(5),
                 "predicted_labels": np.arange(5)[::-1], "path": tmp_path / "wrong.png", "max_images": 100,
                 "probabilities": None}
    arguments.update(change)
    with pytest.raises(ValueError, match=message):
        plots.save_misclassified(**arguments)


# --------------------------------------------------------------------------------------------
# Writing the files
# --------------------------------------------------------------------------------------------

def write_each_picture(folder):
    images, true_labels, predicted = black_digits_with_mistakes(40, 5)
    return [
        plots.save_curves(synthetic_history(3), folder / "curves.png"),
        plots.save_confusion_matrix(plots.confusion_matrix(true_labels, predicted), folder / "confusion.png"),
        plots.save_misclassified(images, true_labels, predicted, folder / "wrong.png"),
    ]


def test_pictures_create_missing_folders_and_leave_no_temporary_files(tmp_path):
    folder = tmp_path / "run" / "figures"
    paths = write_each_picture(folder)
    assert sorted(os.listdir(folder)) == ["confusion.png", "curves.png", "wrong.png"]
    for path in paths:
        open_png(path)


def test_overwriting_a_picture_replaces_it_without_leftovers(tmp_path):
    path = tmp_path / "curves.png"
    plots.save_curves(synthetic_history(2), path)
    first = path.read_bytes()
    plots.save_curves(synthetic_history(9), path)
    assert path.read_bytes() != first
    assert os.listdir(tmp_path) == ["curves.png"]


def test_a_failed_write_keeps_the_old_picture_and_removes_the_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "curves.png"
    plots.save_curves(synthetic_history(2), path)
    before = path.read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(Image.Image, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        plots.save_curves(synthetic_history(9), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["curves.png"]
