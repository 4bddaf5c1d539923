"""A small deep-learning framework written from scratch in NumPy, with numba kernels for the hot loops.

Every layer has a hand-written forward and backward pass; see each class's docstring for the
formulas. Names and array layouts follow PyTorch (NCHW, ``weight`` of shape (out, in, ...)).
"""

from . import optim
from .activation import LeakyReLU, ReLU, Sigmoid, Tanh
from .avgpool import AvgPool2d
from .backend import get_backend, set_backend, use_backend
from .batchnorm import BatchNorm1d, BatchNorm2d
from .containers import ModuleDict, ModuleList
from .conv import Conv2d
from .dropout import Dropout
from .flatten import Flatten
from .gradient_check import gradcheck
from .linear import Linear
from .loss import CrossEntropyLoss, log_softmax, softmax
from .module import BackwardBeforeForwardError, Module
from .parameter import Parameter
from .pool import MaxPool2d
from .sequential import Sequential
from .serialization import load, save
from .subsampling import Subsampling

__all__ = [
    "AvgPool2d", "BackwardBeforeForwardError", "BatchNorm1d", "BatchNorm2d", "Conv2d", "CrossEntropyLoss", "Dropout",
    "Flatten", "LeakyReLU", "Linear", "MaxPool2d", "Module", "ModuleDict", "ModuleList", "Parameter", "ReLU",
    "Sequential", "Sigmoid", "Subsampling", "Tanh", "get_backend", "gradcheck", "load", "log_softmax", "optim", "save",
    "set_backend", "softmax", "use_backend",
]
