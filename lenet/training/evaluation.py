"""Evaluation of a model in eval mode, batch by batch."""

import numpy as np

import nn


def evaluate(model, images, labels, batch_size):
    """Mean cross-entropy, accuracy and predicted probabilities (N, 10) of ``model`` on normalized ``images``."""
    was_training = model.training
    model.eval()
    logits = np.concatenate([model(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])
    model.train(was_training)
    loss = float(nn.CrossEntropyLoss().eval()(logits, labels))  # eval: the loss keeps nothing either
    accuracy = float(np.mean(logits.argmax(axis=1) == labels))
    return loss, accuracy, nn.softmax(logits, axis=1)
