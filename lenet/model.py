"""LeNet5 as in the original experiment, composed from ``nn`` layers."""

from collections import OrderedDict

import numpy as np

from data.normalize import NORMALIZATION, normalize
from nn.activation import ReLU
from nn.conv import Conv2d
from nn.flatten import Flatten
from nn.init import make_rng
from nn.linear import Linear
from nn.loss import softmax
from nn.pool import MaxPool2d
from nn.sequential import Sequential

# The normalization every shipped or trained model uses unless its metadata says otherwise:
# x = (pixel / 255 - mean) / std, the MNIST training-set statistics.
DEFAULT_NORMALIZATION = NORMALIZATION


class LeNet5(Sequential):
    """LeNet5 for 28x28 grey digits: two conv/pool stages, then three fully connected layers.

    Shape: x (N, 1, 28, 28) -> logits (N, 10)::

        C1  Conv 1->6, 5x5     (N, 6, 24, 24)  + ReLU
        S2  MaxPool 2          (N, 6, 12, 12)
        C3  Conv 6->16, 5x5    (N, 16, 8, 8)   + ReLU
        S4  MaxPool 2          (N, 16, 4, 4)   -> flatten (N, 256)
        C5  Linear 256->120    + ReLU
        F6  Linear 120->84     + ReLU
        out Linear 84->10      logits

    A plain ``nn.Sequential`` of those layers: forward, backward (with ``need_input_grad``) and,
    on the numba backend, the fused stages (C1+relu1+S2, C3+relu3+S4, C5+relu5, F6+relu6, out)
    all come from there. The child names make the state dict keys ``C1.weight``, ``C1.bias``, ...,
    ``out.bias``, the keys of a PyTorch model of the original code, so its weights load here by key.
    """

    # What ``preprocess`` takes (one MNIST digit) and what the network reads; metadata and the server report both.
    digit_shape = (28, 28)
    input_shape = (1, 28, 28)

    def __init__(self, seed=None, dtype=np.float32, normalization=None):
        rng = make_rng(seed)
        # Built in this order from one generator: a given seed always gives the same weights.
        super().__init__(OrderedDict([
            ("C1", Conv2d(1, 6, 5, dtype=dtype, rng=rng)),
            ("relu1", ReLU()),
            ("S2", MaxPool2d(2)),
            ("C3", Conv2d(6, 16, 5, dtype=dtype, rng=rng)),
            ("relu3", ReLU()),
            ("S4", MaxPool2d(2)),
            ("flatten", Flatten()),
            ("C5", Linear(16 * 4 * 4, 120, dtype=dtype, rng=rng)),
            ("relu5", ReLU()),
            ("F6", Linear(120, 84, dtype=dtype, rng=rng)),
            ("relu6", ReLU()),
            ("out", Linear(84, 10, dtype=dtype, rng=rng)),
        ]))
        self.normalization = dict(normalization or DEFAULT_NORMALIZATION)
        self.metadata = {}

    def preprocess(self, images):
        """Raw pixels -> normalized float NCHW input, ``(pixel / 255 - mean) / std``.

        ``images``: (N, 28, 28), (N, 1, 28, 28) or one (28, 28) image; integer dtypes are pixel
        values 0..255, floating dtypes are intensities in [0, 1] (white ink on black, as MNIST).
        Integer pixels go through the same lookup table as in training, so a digit gets exactly
        the input it got there.
        """
        images = np.asarray(images)
        integer = np.issubdtype(images.dtype, np.integer)
        if images.dtype == bool or not (integer or np.issubdtype(images.dtype, np.floating)):
            raise TypeError(f"LeNet5.predict: expected numeric pixels, got dtype {images.dtype}")
        if images.shape == (28, 28) or (images.ndim == 3 and images.shape[1:] == (28, 28)):
            images = images.reshape(-1, 1, 28, 28)
        if images.ndim != 4 or images.shape[1:] != (1, 28, 28):
            raise ValueError(f"LeNet5.predict: expected images of shape (N, 28, 28), (N, 1, 28, 28) "
                             f"or (28, 28), got {images.shape}")
        mean, std = self.normalization["mean"], self.normalization["std"]
        if integer:
            if images.size and (images.min() < 0 or images.max() > 255):
                raise ValueError(f"LeNet5.predict: integer pixels must be in 0..255, "
                                 f"got values from {images.min()} to {images.max()}")
            x = normalize(images.astype(np.uint8, copy=False), mean, std)
        else:
            x = (images.astype(np.float64) - mean) / std
        return x.astype(self.C1.weight.dtype, copy=False)

    def predict(self, images):
        """Class probabilities (N, 10), rows summing to 1 (a real softmax).

        Runs in eval mode and stores nothing on the model, so threads may share one model.
        """
        if self.training:
            raise RuntimeError("LeNet5.predict: call model.eval() first (predict must not disturb training state)")
        return softmax(self.forward(self.preprocess(images)), axis=1)
