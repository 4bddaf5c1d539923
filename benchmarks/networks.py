"""The zoo: small image classifiers, each defined once and built both in ``nn`` and in PyTorch.

A network is a tuple of layer specs ``(name, layer class name, positional args, keyword args)``.
The class names, arguments and layouts are the same in ``nn`` and ``torch.nn`` (``Conv2d``,
``ReLU``, ``MaxPool2d``, ``Flatten``, ``Linear``, ``BatchNorm2d``, ``Dropout``), so one table builds both, and the two models
have the same state-dict keys: ``"0.weight"``, ... for an ``nn.Sequential``, ``"C1.weight"``, ...
for LeNet5. ``copy_weights`` gives the PyTorch model the ``nn`` model's weights.

Networks A-H are typical small image classifiers, as a user would compose them with ``nn.Sequential``; "LeNet5"
is ``lenet.LeNet5`` itself (on the PyTorch side, the same layers under the same names).

PyTorch is imported only inside ``build_torch`` and ``copy_weights``: everything else works without it.
"""

from dataclasses import dataclass

import numpy as np

PARAMETRIZED = ("Conv2d", "Linear")  # the layers that take ``dtype`` and ``rng`` in nn
TYPED = ("BatchNorm2d",)  # the layers that take ``dtype`` only
RANDOM = ("Dropout",)  # the layers that take ``rng`` only (their own generator, seeded from the network's)
# How the benchmarks train every network: train.py's optimizer, the same keywords in nn.optim.SGD
# and torch.optim.SGD.
SGD_SETTINGS = {"lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}


def _layer(kind, *args, **kwargs):
    return (None, kind, args, kwargs)  # unnamed: the position names it, as in a Sequential


def conv(in_channels, out_channels, kernel_size, **kwargs):
    return _layer("Conv2d", in_channels, out_channels, kernel_size, **kwargs)


def relu():
    return _layer("ReLU")


def pool(kernel_size, stride=None):
    return _layer("MaxPool2d", kernel_size, **({} if stride is None else {"stride": stride}))


def batchnorm(num_features):
    return _layer("BatchNorm2d", num_features)


def dropout(p=0.5):
    return _layer("Dropout", p)


def flatten():
    return _layer("Flatten")


def linear(in_features, out_features):
    return _layer("Linear", in_features, out_features)


@dataclass(frozen=True)
class Network:
    key: str             # "A" ... "H", or "LeNet5"
    description: str     # one line, for tables
    input_shape: tuple   # (C, H, W) of one image
    layers: tuple        # layer specs, see the module docstring
    classes: int = 10


LENET5_NAMES = ("C1", "relu1", "S2", "C3", "relu3", "S4", "flatten", "C5", "relu5", "F6", "relu6", "out")


def _lenet5_layers(first_padding=0, names=(None,) * len(LENET5_NAMES)):
    """LeNet5's layers; with ``first_padding=2`` the classic 32x32 geometry, whose C3 ends at 5x5 (not 4x4)."""
    side = ((28 + 2 * first_padding - 4) // 2 - 4) // 2
    specs = (conv(1, 6, 5, padding=first_padding), relu(), pool(2), conv(6, 16, 5), relu(), pool(2), flatten(),
             linear(16 * side * side, 120), relu(), linear(120, 84), relu(), linear(84, 10))
    return tuple((name,) + spec[1:] for name, spec in zip(names, specs))


NETWORKS = {n.key: n for n in (
    Network("A", "LeNet5 as nn.Sequential", (1, 28, 28), _lenet5_layers()),
    Network("B", "LeNet-5, Conv2d(1,6,5,padding=2)", (1, 28, 28), _lenet5_layers(first_padding=2)),
    Network("C", "conv32-pool-conv64-pool-fc128", (1, 28, 28), (
        conv(1, 32, 3, padding=1), relu(), pool(2), conv(32, 64, 3, padding=1), relu(), pool(2), flatten(),
        linear(3136, 128), relu(), linear(128, 10))),
    Network("D", "3x32x32: conv32-conv32-pool-conv64-pool-fc256", (3, 32, 32), (
        conv(3, 32, 3, padding=1), relu(), conv(32, 32, 3, padding=1), relu(), pool(2),
        conv(32, 64, 3, padding=1), relu(), pool(2), flatten(), linear(4096, 256), relu(), linear(256, 10))),
    Network("E", "two stride-2 convs, fc", (1, 28, 28), (
        conv(1, 16, 3, stride=2, padding=1), relu(), conv(16, 32, 3, stride=2, padding=1), relu(), flatten(),
        linear(1568, 10))),
    Network("F", "MLP 784-512-256-10", (1, 28, 28), (
        flatten(), linear(784, 512), relu(), linear(512, 256), relu(), linear(256, 10))),
    Network("G", "conv8 k5, overlapping MaxPool2d(3, stride=2)", (1, 28, 28), (
        conv(1, 8, 5), relu(), pool(3, stride=2), flatten(), linear(968, 10))),
    Network("H", "C with BatchNorm2d after each conv, Dropout before the last Linear", (1, 28, 28), (
        # No convolution bias: the batch norm after it subtracts it again (its gradient is 0 up to rounding).
        conv(1, 32, 3, padding=1, bias=False), batchnorm(32), relu(), pool(2),
        conv(32, 64, 3, padding=1, bias=False), batchnorm(64), relu(), pool(2), flatten(), linear(3136, 128), relu(), dropout(0.5), linear(128, 10))),
    Network("LeNet5", "lenet.LeNet5 itself", (1, 28, 28), _lenet5_layers(names=LENET5_NAMES)),
)}


def build_nn(network, dtype=np.float32, seed=0):
    """The ``nn`` model of ``network``: ``lenet.LeNet5`` for "LeNet5", otherwise an ``nn.Sequential``."""
    if network.key == "LeNet5":
        from lenet.model import LeNet5
        return LeNet5(seed=seed, dtype=dtype)
    import nn
    rng = np.random.default_rng(seed)
    layers = []
    for _, kind, args, kwargs in network.layers:
        extra = ({"dtype": dtype, "rng": rng} if kind in PARAMETRIZED else {"dtype": dtype} if kind in TYPED
                 else {"rng": int(rng.integers(2**63))} if kind in RANDOM else {})
        layers.append(getattr(nn, kind)(*args, **kwargs, **extra))
    return nn.Sequential(*layers)


def build_torch(network, dtype=None):
    """The same network in PyTorch, as a ``torch.nn.Sequential`` whose state-dict keys match ``build_nn``'s."""
    from collections import OrderedDict

    import torch
    layers = OrderedDict()
    for i, (name, kind, args, kwargs) in enumerate(network.layers):
        layers[name or str(i)] = getattr(torch.nn, kind)(*args, **kwargs)
    model = torch.nn.Sequential(layers)
    return model.to(dtype) if dtype is not None else model


def copy_weights(nn_model, torch_model):
    """Give ``torch_model`` the weights of ``nn_model`` (same keys), in the torch model's dtype."""
    import torch
    dtype = next(torch_model.parameters()).dtype
    state = {k: torch.tensor(np.asarray(v), dtype=dtype) for k, v in nn_model.state_dict().items()}
    torch_model.load_state_dict(state)
    return torch_model


def example_batch(network, batch, dtype=np.float32, seed=0):
    """Seeded random images (batch, C, H, W) and labels (batch,) for ``network``."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch,) + tuple(network.input_shape)).astype(dtype)
    return x, rng.integers(0, network.classes, batch)
