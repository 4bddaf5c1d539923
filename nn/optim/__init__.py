"""Optimizers and learning-rate schedules with PyTorch's names, defaults and update rules.

Each optimizer's ``_update`` is the NumPy reference of its rule; ``nn/execution/optimizer.py``
decides whether a compiled kernel runs it instead on the current backend.
"""

from . import lr_scheduler
from .adagrad import Adagrad
from .adam import Adam
from .adamw import AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop", "SGD", "lr_scheduler"]
