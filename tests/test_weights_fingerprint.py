"""The default ``python train.py`` run's bits: the SHA-256 of LeNet5's weights after its first 30 steps.

The steps are those of train.py's default run, written out here with its defaults (seed,
augmentation, shuffling, cosine learning-rate schedule, SGD with Nesterov momentum and weight
decay, cross-entropy loss), on real MNIST, on the numba backend. A change that is meant to
leave the trained model alone (a refactoring, a faster kernel computing the same sums in the same
order) must leave this hash alone, at any number of numba threads. A change that alters the
arithmetic on purpose updates ``EXPECTED`` and says why in its commit message.
"""

import hashlib
import math

import numba
import numpy as np
import pytest

import nn
from data import mnist
from data.augment import RandomAffine
from data.batches import epoch_rng, iterate
from data.split import VALIDATION_SIZE, split_validation
from lenet.model import LeNet5

STEPS = 30
# train.py's defaults.
SEED, EPOCHS, BATCH_SIZE, LR, MOMENTUM, WEIGHT_DECAY = 1, 30, 64, 0.05, 0.9, 5e-4
EXPECTED = "ae85e91d1d55ac81d88afa4d0c669da627b43ada402385f4f2ac7e8029e0ae27"


def weights_sha256(model):
    """SHA-256 over every state-dict entry's name, dtype, shape and bytes, in state-dict order."""
    digest = hashlib.sha256()
    for name, value in model.state_dict().items():
        digest.update(f"{name} {value.dtype.str} {value.shape}\n".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def train_default_run(mnist_dir, steps):
    """The first ``steps`` steps of ``python train.py`` with its defaults, as its loop takes them."""
    images, labels = mnist.load(mnist_dir, train=True)
    (images, labels), _ = split_validation(images, labels, VALIDATION_SIZE)
    model, criterion = LeNet5(seed=SEED), nn.CrossEntropyLoss()
    optimizer = nn.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, nesterov=True)
    total_steps = math.ceil(len(images) / BATCH_SIZE) * EPOCHS
    rng = epoch_rng(SEED, 1)
    augmented = RandomAffine(backend=nn.get_backend())(images, rng)
    for step, (x, y) in enumerate(iterate(augmented, labels, BATCH_SIZE, rng=rng)):
        if step == steps:
            break
        optimizer.lr = LR * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))  # the cosine schedule
        criterion(model(x), y)
        optimizer.zero_grad()
        model.backward(criterion.backward(), need_input_grad=False)
        optimizer.step()
    return model


@pytest.mark.slow
@pytest.mark.parametrize("threads", sorted({1, numba.config.NUMBA_NUM_THREADS}))
def test_the_default_run_gives_the_same_weights_bit_for_bit_at_any_thread_count(mnist_dir, threads):
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        with nn.use_backend("numba"):
            model = train_default_run(mnist_dir, STEPS)
    finally:
        numba.set_num_threads(previous)
    assert weights_sha256(model) == EXPECTED


def test_the_fingerprint_changes_when_one_weight_moves_by_one_ulp():
    model = LeNet5(seed=1)
    before = weights_sha256(model)
    weight = model.state_dict()["C1.weight"]
    weight.flat[0] = np.nextafter(weight.flat[0], np.float32(1))
    model.load_state_dict({**model.state_dict(), "C1.weight": weight})
    assert weights_sha256(model) != before
