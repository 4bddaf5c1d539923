"""The default training recipe: every choice that decides what the default run computes.

A change of recipe (another optimizer, another augmentation, another default) goes here: the
flags of ``options`` take their defaults from ``DEFAULTS``, and ``train.py``'s loop builds its
model, optimizer and augmentation with the functions below.
"""

import math

import numpy as np

import nn
from data.augment import RandomAffine, handwriting_augment
from lenet.lenet1998 import LeNet1998
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
    "model": "lenet5",
    "optimizer": "sgd",
}
# --model: the modern LeNet5 (ReLU, max pooling, 28x28) or the 1998 paper's (scaled tanh, trainable
# subsampling, C3's table, 32x32).
MODELS = {"lenet5": LeNet5, "lenet5-1998": LeNet1998}
# Where a model's defaults differ from DEFAULTS. With the paper's initialization (uniform +-2.4/F_i)
# the 1998 model's signal fades layer by layer (its spread across digits: 0.35 at the input, 0.002
# at C5) and its first layers' gradients are about 1e-5: plain SGD stays at chance at the rates
# tried, 0.002 to 0.05 (docs/training.md). The paper trained it with stochastic diagonal
# Levenberg-Marquardt, a step size per parameter from a running estimate of the diagonal of the
# Hessian; Adam, a step size per parameter from running gradient moments, is the diagonal
# rescaling this framework has.
MODEL_DEFAULTS = {"lenet5": {}, "lenet5-1998": {"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0}}
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "step", "cosine", "paper")
# The paper's learning rates over its 20 passes (0.0005 for 2, 0.0002 for 3, 0.0001 for 3, 0.00005
# for 4, then 0.00001), relative to the first: "paper" stretches them over the run, whatever its length.
PAPER_SCHEDULE = (1, 1, 0.4, 0.4, 0.4, 0.2, 0.2, 0.2, 0.1, 0.1, 0.1, 0.1) + (0.02,) * 8


def defaults_for(model_name):
    """The flags' defaults for ``--model model_name``: ``DEFAULTS`` with the model's own (``MODEL_DEFAULTS``)."""
    return {**DEFAULTS, **MODEL_DEFAULTS[model_name]}


def make_model(seed, name=DEFAULTS["model"]):
    """The model ``MODELS[name]`` initialized from ``seed``.

    LeNet5: PyTorch's uniform ±1/sqrt(fan_in) from a seeded generator; LeNet1998: the paper's
    uniform ±2.4/fan_in.
    """
    return MODELS[name](seed=seed)


def input_pixels(model, images):
    """uint8 digits (N, 28, 28) -> uint8 (N, H, W) of the model's input size, centred in a border of 0 pixels.

    Padding the pixels before normalization gives the border the background's value, as
    ``model.preprocess`` does after it: the training batches are bit for bit what ``preprocess``
    makes. A model that reads 28x28 gets ``images`` itself.
    """
    (height, width), (_, input_height, input_width) = images.shape[1:], model.input_shape
    top, left = (input_height - height) // 2, (input_width - width) // 2
    if (top, left) == (0, 0):
        return images
    return np.pad(images, ((0, 0), (top, input_height - height - top), (left, input_width - width - left)))


def make_optimizer(model, args):
    """SGD with (Nesterov) momentum, or Adam (PyTorch's betas and eps), with L2 weight decay, as the flags say."""
    if args.optimizer == "adam":
        return nn.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
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
    step: ``base_lr``, then x0.1 from 50% of the run and x0.01 from 75%; constant: ``base_lr``;
    paper: ``base_lr * PAPER_SCHEDULE[floor(20 * step / total_steps)]``, the 1998 paper's 20 passes'
    decreasing rates spread over the run.
    """
    if schedule == "cosine":
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
    if schedule == "paper":
        return base_lr * PAPER_SCHEDULE[len(PAPER_SCHEDULE) * step // total_steps]
    if schedule == "step":
        return base_lr * (0.1 ** ((step >= total_steps // 2) + (step >= 3 * total_steps // 4)))
    return base_lr
