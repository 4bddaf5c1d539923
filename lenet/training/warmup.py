"""Compile, untimed, every kernel a run will call, so that no epoch's time includes compiling."""

import numpy as np

import nn
from .evaluation import evaluate
from .recipe import make_model, make_optimizer


def warm_up(args, train_images, train_labels, augment, eval_sets):
    """Call, untimed, every kernel the run will call, so that epoch timings exclude compilation.

    numba compiles a kernel (or loads it from its disk cache) at its first call, and picks a serial
    or a parallel variant by the size of the job: a training step at the real batch size and at the
    epoch's short last batch, and evaluations at every batch size evaluation will see, meet them
    all. They run on a throwaway model and optimizer, on the first images unshuffled, with a
    generator of their own, so the run's model, optimizer and random streams are untouched: a run
    is bit for bit the same with or without this (tested).

    ``eval_sets`` is a list of (normalized images, labels) that ``evaluate`` will be called on.
    """
    model, criterion = make_model(0, args.model), nn.CrossEntropyLoss()
    optimizer = make_optimizer(model, args)
    if augment:
        augment(train_images, np.random.default_rng(0))  # the size matters: it picks the variant
    n_train = len(train_images)
    for size in sorted({min(args.batch_size, n_train), n_train % args.batch_size} - {0}):
        criterion(model(model.preprocess(train_images[:size])), train_labels[:size].astype(np.int64))
        optimizer.zero_grad()
        model.backward(criterion.backward(), need_input_grad=False)
        optimizer.step()
    for images, labels in eval_sets:
        for size in sorted({min(args.test_batch_size, len(images)), len(images) % args.test_batch_size} - {0}):
            evaluate(model, images[:size], labels[:size], size)
