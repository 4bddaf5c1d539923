"""Pixel normalization: uint8 images to the float32 NCHW input the network is trained on.

``x = (pixel / 255 - mean) / std`` with the mean and standard deviation of the MNIST training
pixels (scaled to [0, 1]), so the network sees inputs of roughly zero mean and unit variance.
A model must be fed exactly the normalization it was trained with, so training records
``NORMALIZATION`` in the model's metadata and inference reads it back from there.
"""

import numpy as np

NORMALIZATION = {"mean": 0.1307, "std": 0.3081}


def normalization_table(mean, std):
    """float32 array of 256 entries: ``table[p] = (p / 255 - mean) / std`` for each pixel value p.

    Computed in float64 and rounded once, so every pixel maps to the nearest float32 of the
    exact formula.
    """
    if not (np.isfinite(mean) and np.isfinite(std) and std > 0):
        raise ValueError(f"normalize: expected a finite mean and a positive std, got mean={mean!r}, std={std!r}")
    return ((np.arange(256) / 255.0 - mean) / std).astype(np.float32)


def normalize(images, mean=NORMALIZATION["mean"], std=NORMALIZATION["std"]):
    """uint8 images (N, H, W) or (N, 1, H, W) -> float32 (N, 1, H, W), ``(pixel / 255 - mean) / std``.

    Raises:
        TypeError: ``images`` is not a uint8 array (the formula assumes pixels 0-255).
        ValueError: its shape is neither (N, H, W) nor (N, 1, H, W).
    """
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        got = images.dtype if isinstance(images, np.ndarray) else type(images).__name__
        raise TypeError(f"normalize: expected a uint8 array of pixels 0-255, got {got}")
    if images.ndim == 3:
        images = images[:, np.newaxis]
    elif not (images.ndim == 4 and images.shape[1] == 1):
        raise ValueError(f"normalize: expected images of shape (N, H, W) or (N, 1, H, W), got {images.shape}")
    # A 256-entry lookup is both exact (see normalization_table) and faster than the arithmetic.
    return normalization_table(mean, std)[images]
