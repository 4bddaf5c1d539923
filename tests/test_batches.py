"""Batching, normalization and the validation split."""

import numpy as np
import pytest

from data import mnist
from data.batches import epoch_rng, iterate, num_batches
from data.normalize import NORMALIZATION, normalization_table, normalize
from data.split import split_validation


def toy_data(n, seed=0):
    """n random uint8 images (n, 28, 28) and their labels, the sample's index mod 10."""
    images = np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    return images, (np.arange(n) % 10).astype(np.uint8)


def labels_seen(batches):
    return [y for _, y in batches]


@pytest.mark.parametrize("n, batch_size, drop_last, sizes", [
    (10, 4, False, [4, 4, 2]),
    (10, 4, True, [4, 4]),
    (12, 4, False, [4, 4, 4]),
    (12, 4, True, [4, 4, 4]),
    (3, 5, False, [3]),
    (3, 5, True, []),
])
def test_batch_sizes_and_drop_last(n, batch_size, drop_last, sizes):
    images, labels = toy_data(n)
    batches = list(iterate(images, labels, batch_size, rng=np.random.default_rng(0), drop_last=drop_last))
    assert [len(y) for _, y in batches] == sizes
    assert num_batches(n, batch_size, drop_last) == len(sizes)


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("n, batch_size", [(100, 7), (64, 64), (5, 1)])
def test_every_sample_is_visited_exactly_once_per_epoch(n, batch_size, shuffle):
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    labels = np.arange(n)  # the label is the sample's index, to recover which samples came
    seen = np.concatenate(labels_seen(iterate(images, labels, batch_size, rng=np.random.default_rng(1),
                                              shuffle=shuffle)))
    assert sorted(seen) == list(range(n))
    if not shuffle:
        assert list(seen) == list(range(n))


def test_images_stay_paired_with_their_labels():
    images, labels = toy_data(50)
    for x, y in iterate(images, labels, 8, rng=np.random.default_rng(2)):
        for sample, label in zip(x, y):
            matches = [i for i in range(50) if np.array_equal(normalize(images[i:i + 1])[0], sample)]
            assert [labels[i] for i in matches] == [label]


def test_batches_are_normalized_float32_nchw_with_int64_labels():
    images, labels = toy_data(10)
    x, y = next(iterate(images, labels, 4, shuffle=False))
    assert x.shape == (4, 1, 28, 28) and x.dtype == np.float32
    assert y.dtype == np.int64
    np.testing.assert_array_equal(x, normalize(images[:4]))


def test_the_same_seed_gives_the_same_batches():
    images, labels = toy_data(40)
    first = labels_seen(iterate(images, labels, 6, rng=np.random.default_rng(3)))
    second = labels_seen(iterate(images, labels, 6, rng=np.random.default_rng(3)))
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_each_epoch_gets_its_own_reproducible_order():
    n = 1000
    images, labels = np.zeros((n, 28, 28), np.uint8), np.arange(n)
    orders = {epoch: np.concatenate(labels_seen(iterate(images, labels, 100, rng=epoch_rng(5, epoch))))
              for epoch in range(3)}
    again = np.concatenate(labels_seen(iterate(images, labels, 100, rng=epoch_rng(5, 1))))
    np.testing.assert_array_equal(orders[1], again)
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])


def test_epoch_rng_does_not_confuse_seed_and_epoch():
    # seed + epoch would make these two the same stream.
    assert epoch_rng(0, 1).integers(2**62) != epoch_rng(1, 0).integers(2**62)


def test_the_augmentation_hook_sees_uint8_batches_and_its_output_is_used():
    images, labels = toy_data(10)
    seen = []

    def invert(batch, rng):
        assert isinstance(rng, np.random.Generator)
        seen.append((batch.dtype, batch.shape))
        return 255 - batch

    x, _ = next(iterate(images, labels, 4, shuffle=False, rng=np.random.default_rng(0), augment=invert))
    assert seen == [(np.uint8, (4, 28, 28))]
    np.testing.assert_array_equal(x, normalize(255 - images[:4]))


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(batch_size=0), ValueError, "batch_size must be a positive int"),
    (dict(batch_size=2.5), ValueError, "batch_size must be a positive int"),
    (dict(batch_size=4, rng=None), TypeError, "need rng"),
    (dict(batch_size=4, images=np.zeros((10, 28, 28), np.float32)), TypeError, "expected uint8 images"),
    (dict(batch_size=4, labels=np.zeros(9, np.uint8)), ValueError, "expected 10 integer labels"),
    (dict(batch_size=4, augment=lambda b, r: b[:, :2]), ValueError, "augment must return"),
])
def test_bad_arguments_are_refused_at_the_call(kwargs, error, message):
    images, labels = toy_data(10)
    arguments = dict(images=images, labels=labels, rng=np.random.default_rng(0))
    arguments.update(kwargs)
    with pytest.raises(error, match=message):
        list(iterate(**arguments))


# --- normalization -----------------------------------------------------------------------------

def test_normalization_constants_are_the_mnist_statistics():
    assert NORMALIZATION == {"mean": 0.1307, "std": 0.3081}


@pytest.mark.parametrize("pixel", [0, 1, 128, 254, 255])
def test_normalize_applies_the_formula(pixel):
    x = normalize(np.full((1, 28, 28), pixel, dtype=np.uint8))
    expected = np.float32((pixel / 255 - 0.1307) / 0.3081)
    assert x.dtype == np.float32 and x.shape == (1, 1, 28, 28)
    assert np.all(x == expected)


def test_normalize_accepts_nchw_and_custom_statistics():
    images = toy_data(3)[0]
    np.testing.assert_array_equal(normalize(images[:, None]), normalize(images))
    np.testing.assert_allclose(normalize(images, mean=0.0, std=1.0)[:, 0], images / 255, rtol=1e-6)


def test_normalized_mnist_training_pixels_have_zero_mean_and_unit_std(mnist_dir):
    images, _ = mnist.load(mnist_dir, train=True)
    counts = np.bincount(images.ravel(), minlength=256)  # statistics from the histogram: no 188 MB array
    values = normalization_table(**NORMALIZATION).astype(np.float64)
    mean = np.average(values, weights=counts)
    std = np.sqrt(np.average((values - mean) ** 2, weights=counts))
    assert mean == pytest.approx(0.0, abs=1e-3) and std == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("images, error", [
    (np.zeros((2, 28, 28), np.float32), TypeError),
    ([[0, 1]], TypeError),
    (np.zeros((2, 3, 28, 28), np.uint8), ValueError),
    (np.zeros((28, 28), np.uint8), ValueError),
])
def test_normalize_refuses_what_is_not_uint8_images(images, error):
    with pytest.raises(error, match="normalize"):
        normalize(images)


def test_normalize_refuses_a_non_positive_std():
    with pytest.raises(ValueError, match="positive std"):
        normalize(np.zeros((1, 28, 28), np.uint8), std=0.0)


# --- validation split --------------------------------------------------------------------------

@pytest.mark.parametrize("n, size", [(60000, 5000), (10, 1), (10, 9)])
def test_the_validation_set_is_the_tail_of_the_training_set(n, size):
    images, labels = np.arange(n)[:, None] * np.ones((1, 3), int), np.arange(n)
    (train_x, train_y), (val_x, val_y) = split_validation(images, labels, size)
    np.testing.assert_array_equal(train_y, np.arange(n - size))
    np.testing.assert_array_equal(val_y, np.arange(n - size, n))
    np.testing.assert_array_equal(val_x[:, 0], val_y)
    assert len(train_x) == n - size and len(val_x) == size


@pytest.mark.parametrize("size, error", [(0, ValueError), (10, ValueError), (2.0, TypeError)])
def test_split_validation_refuses_impossible_sizes(size, error):
    with pytest.raises(error, match="size"):
        split_validation(np.zeros((10, 28, 28)), np.zeros(10), size)
