"""Holding out a validation set from the training set."""

import numpy as np

VALIDATION_SIZE = 5000


def split_validation(images, labels, size=VALIDATION_SIZE):
    """Split off the last ``size`` samples as the validation set.

    MNIST's training set is in no particular order, so its tail is as good a sample as any, and
    a fixed tail makes the split identical on every run and machine without a seed.

    Args:
        images: array of N samples along axis 0, e.g. uint8 (N, 28, 28).
        labels: array (N,).
        size: how many samples to hold out, 0 < size < N.

    Returns:
        ((train_images, train_labels), (val_images, val_labels)): views of the first N - size and
        the last ``size`` samples (no copies).
    """
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim < 1 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"split_validation: expected images (N, ...) and labels (N,), got shapes "
                         f"{images.shape} and {labels.shape}")
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool):
        raise TypeError(f"split_validation: size must be an int, got {type(size).__name__}")
    n = labels.shape[0]
    if not 0 < size < n:
        raise ValueError(f"split_validation: size must be between 1 and {n - 1} (N - 1), got {size}")
    cut = n - size
    return (images[:cut], labels[:cut]), (images[cut:], labels[cut:])
