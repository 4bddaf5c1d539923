"""The default training recipe: every choice that decides what the default run computes.

A change of recipe (another optimizer, another augmentation, another default) goes here: the
flags of ``options`` take their defaults from ``DEFAULTS``, and ``train.py``'s loop builds its
model, optimizer and augmentation with the functions below.
"""

import math

import nn
from data.augment import RandomAffine, handwriting_augment
from lenet.model import LeNet5

DEFAULTS = {
    "epochs": 30,
    "batch_size": 64,
    "lr": 0.05,
    "momentum": 0.9,
    "nesterov": True,
    "weight_decay": 5e-4,
    "lr_schedule": "cosine",
    "augment": True,
    "handwriting_augment": False,
    "seed": 1,
}
SCHEDULES = ("constant", "step", "cosine")


def make_model(seed):
    """LeNet5 initialized from ``seed`` (PyTorch's uniform ±1/sqrt(fan_in) from a seeded generator)."""
    return LeNet5(seed=seed)


def make_optimizer(model, args):
    """SGD with (Nesterov) momentum and L2 weight decay, as the flags say."""
    return nn.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                        weight_decay=args.weight_decay, nesterov=args.nesterov)


def make_augment(args):
    """Random shifts (±2 px), rotations (±10°) and scalings (0.9-1.1) of the training digits, or None.

    With ``--handwriting-augment``, strokes are also widened at random (``data.augment.handwriting_augment``).
    """
    if not args.augment:
        return None
    return (handwriting_augment if args.handwriting_augment else RandomAffine)(backend=nn.get_backend())


def learning_rate(schedule, base_lr, step, total_steps):
    """The learning rate at global step ``step`` of ``total_steps``.

    cosine: ``base_lr * (1 + cos(pi * step / total_steps)) / 2``, from base_lr down towards 0
    (never reaching it: the last step is ``total_steps - 1``);
    step: ``base_lr``, then x0.1 from 50% of the run and x0.01 from 75%; constant: ``base_lr``.
    """
    if schedule == "cosine":
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
    if schedule == "step":
        return base_lr * (0.1 ** ((step >= total_steps // 2) + (step >= 3 * total_steps // 4)))
    return base_lr
