"""Mini-batches for training and evaluation: seeded shuffling, optional augmentation, normalization.

One epoch visits every sample exactly once (or every full batch's worth, with ``drop_last``).
Randomness comes only from the ``numpy.random.Generator`` passed in, so the same generator state
gives the same batches. For a different but reproducible order every epoch, give each epoch its
own generator::

    for epoch in range(epochs):
        for x, y in iterate(images, labels, 64, rng=epoch_rng(seed, epoch)):
            ...
"""

import math

import numpy as np

from .normalize import NORMALIZATION, normalize


def epoch_rng(seed, epoch):
    """The generator of epoch ``epoch`` of a run seeded with ``seed``.

    ``default_rng([seed, epoch])`` mixes both numbers into one independent stream; unlike
    ``seed + epoch`` it does not make epoch 1 of seed 0 replay epoch 0 of seed 1.
    """
    return np.random.default_rng([seed, epoch])


def num_batches(n_samples, batch_size, drop_last=False):
    """Batches per epoch: ``ceil(n / batch_size)``, or ``floor`` when the short last batch is dropped."""
    return n_samples // batch_size if drop_last else math.ceil(n_samples / batch_size)


def iterate(images, labels, batch_size, rng=None, shuffle=True, drop_last=False, augment=None,
            mean=NORMALIZATION["mean"], std=NORMALIZATION["std"]):
    """Yield one epoch of ``(x, y)`` batches.

    Args:
        images: uint8 (N, H, W) pixels 0-255.
        labels: integer (N,).
        batch_size: samples per batch; the last batch is shorter unless ``drop_last``.
        rng: a ``numpy.random.Generator`` (or an int seed); required when shuffling or augmenting.
        shuffle: visit the samples in a random permutation instead of in order.
        drop_last: skip the final batch if it has fewer than ``batch_size`` samples.
        augment: optional ``augment(images_uint8 (B, H, W), rng) -> uint8 (B, H, W)``, applied to
            each batch before normalization, e.g. ``augment.RandomAffine()``.
        mean, std: the normalization, see ``normalize.normalize``.

    Yields:
        x: float32 (B, 1, H, W), normalized; y: int64 (B,).
    """
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise TypeError(f"iterate: expected uint8 images of shape (N, H, W), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0] or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"iterate: expected {images.shape[0]} integer labels (N,), got {labels.dtype} {labels.shape}")
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"iterate: batch_size must be a positive int, got {batch_size!r}")
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        rng = np.random.default_rng(rng)
    if (shuffle or augment is not None) and not isinstance(rng, np.random.Generator):
        raise TypeError(f"iterate: shuffling and augmentation need rng, a numpy.random.Generator or an int seed, "
                        f"got {type(rng).__name__}")
    n = labels.shape[0]
    order = rng.permutation(n) if shuffle else np.arange(n)
    # The checks above run at the call; a generator body would defer them to the first next().
    return _batches(images, labels, order, num_batches(n, batch_size, drop_last), batch_size, rng, augment,
                    mean, std)


def _batches(images, labels, order, count, batch_size, rng, augment, mean, std):
    for start in range(0, count * batch_size, batch_size):
        picked = order[start:start + batch_size]
        batch = images[picked]
        if augment is not None:
            augmented = augment(batch, rng)
            if augmented.shape != batch.shape or augmented.dtype != batch.dtype:
                raise ValueError(f"iterate: augment must return {batch.dtype} {batch.shape}, "
                                 f"got {augmented.dtype} {augmented.shape}")
            batch = augmented
        yield normalize(batch, mean, std), labels[picked].astype(np.int64)
