"""LeNet5 on MNIST, built from the ``nn`` layers, and the trained model shipped with the project."""

import math
import os

import nn

from .lenet1998 import LeNet1998
from .model import DEFAULT_NORMALIZATION, LeNet5

DEFAULT_WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights", "lenet5.npz")


def load_model(path=None):
    """Load a LeNet5 saved by ``nn.save`` (the shipped model by default), in eval mode.

    The model's ``metadata`` holds what training recorded (accuracy, normalization, ...), and its
    input normalization is taken from there.
    """
    path = DEFAULT_WEIGHTS if path is None else path
    state, metadata = nn.load(path)
    normalization = metadata.get("normalization", DEFAULT_NORMALIZATION)
    if not (isinstance(normalization, dict) and _finite(normalization.get("mean"))
            and _finite(normalization.get("std")) and normalization["std"] > 0):
        raise ValueError(f"{path}: the metadata's normalization must be {{\"mean\": m, \"std\": s}} with "
                         f"finite numbers and s > 0, got {normalization!r}")
    model = LeNet5(normalization=normalization)
    try:
        model.load_state_dict(state)
    except ValueError as exc:
        plain = "" if metadata else " (a plain .npz of arrays: it has no metadata from nn.save)"
        raise ValueError(f"{path} does not hold LeNet5 weights{plain}: {exc}") from None
    model.metadata = metadata
    return model.eval()


def _finite(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


__all__ = ["DEFAULT_NORMALIZATION", "DEFAULT_WEIGHTS", "LeNet1998", "LeNet5", "load_model"]
