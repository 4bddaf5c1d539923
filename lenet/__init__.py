"""LeNet5 on MNIST, built from the ``nn`` layers, and the trained model shipped with the project.

Also the 1998 paper's LeNet-5 (``LeNet1998``), which ``load_model`` builds when a model's metadata names it.
"""

import math
import os

import nn

from .lenet1998 import LeNet1998
from .model import DEFAULT_NORMALIZATION, LeNet5

DEFAULT_WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights", "lenet5.npz")

# The classes a saved model's metadata may name as its "architecture".
ARCHITECTURES = {"LeNet5": LeNet5, "LeNet1998": LeNet1998}


def load_model(path=None):
    """Load a model saved by ``nn.save`` (the shipped LeNet5 by default), in eval mode.

    The class is the metadata's ``architecture`` (LeNet5 when there is none, e.g. a plain .npz of
    arrays). The model's ``metadata`` holds what training recorded (accuracy, normalization, ...),
    and its input normalization is taken from there.
    """
    path = DEFAULT_WEIGHTS if path is None else path
    state, metadata = nn.load(path)
    name = metadata.get("architecture", "LeNet5")
    if name not in ARCHITECTURES:
        raise ValueError(f"{path}: the metadata's architecture must be one of {', '.join(ARCHITECTURES)}, "
                         f"got {name!r}")
    architecture = ARCHITECTURES[name]
    normalization = metadata.get("normalization")  # None: the class's own default
    if normalization is not None and not (isinstance(normalization, dict) and _finite(normalization.get("mean"))
            and _finite(normalization.get("std")) and normalization["std"] > 0):
        raise ValueError(f"{path}: the metadata's normalization must be {{\"mean\": m, \"std\": s}} with "
                         f"finite numbers and s > 0, got {normalization!r}")
    model = architecture(seed=0, normalization=normalization)  # seed=0: the weights are replaced at once
    try:
        model.load_state_dict(state)
    except ValueError as exc:
        plain = "" if metadata else " (a plain .npz of arrays: it has no metadata from nn.save)"
        raise ValueError(f"{path} does not hold {name} weights{plain}: {exc}") from None
    model.metadata = metadata
    return model.eval()


def _finite(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


__all__ = ["ARCHITECTURES", "DEFAULT_NORMALIZATION", "DEFAULT_WEIGHTS", "LeNet1998", "LeNet5", "load_model"]
