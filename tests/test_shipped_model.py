"""The trained model shipped in lenet/weights/ is what its metadata says it is."""

import os

import numpy as np

import lenet
from data import mnist


def test_the_shipped_model_is_there_small_and_loads_in_eval_mode():
    assert os.path.isfile(lenet.DEFAULT_WEIGHTS), "the trained model must ship with the project"
    assert os.path.getsize(lenet.DEFAULT_WEIGHTS) < 1_000_000
    model = lenet.load_model()
    assert not model.training
    meta = model.metadata
    for key in ("architecture", "normalization", "epoch", "val_accuracy", "test_accuracy", "seed",
                "hyperparameters", "data_sha256", "date"):
        assert key in meta, key
    assert meta["architecture"] == "LeNet5"
    assert meta["data_sha256"] == mnist.SHA256
    assert 0.993 <= meta["test_accuracy"] <= 1 and 0 < meta["val_accuracy"] <= 1


def test_the_shipped_model_scores_its_recorded_accuracy_on_the_mnist_test_set(mnist_dir):
    model = lenet.load_model()
    images, labels = mnist.load(mnist_dir, train=False)
    predictions = np.concatenate([model.predict(images[i:i + 1000]).argmax(axis=1) for i in range(0, 10000, 1000)])
    accuracy = float(np.mean(predictions == labels))
    assert accuracy >= 0.993
    # The same weights and data give the same count; allow one digit of float32 summation-order slack.
    assert abs(accuracy - model.metadata["test_accuracy"]) <= 1e-4


def test_the_shipped_model_predicts_what_it_predicted_before_lenet5_became_a_sequential(mnist_dir):
    """tests/data/shipped_model_predictions.npz was written by the hand-wired LeNet5 (numba backend)
    before it became a plain ``nn.Sequential``: the class of every test digit and the probabilities
    of the first 500 must not move, on either backend."""
    import nn

    reference = np.load(os.path.join(os.path.dirname(__file__), "data", "shipped_model_predictions.npz"))
    model = lenet.load_model()
    images, _ = mnist.load(mnist_dir, train=False)
    for backend in ("numba", "numpy"):
        with nn.use_backend(backend):
            probabilities = np.concatenate([model.predict(images[i:i + 1000]) for i in range(0, 10000, 1000)])
        np.testing.assert_array_equal(probabilities.argmax(axis=1), reference["argmax"], err_msg=backend)
        np.testing.assert_allclose(probabilities[:500], reference["probabilities"], rtol=0, atol=1e-5,
                                   err_msg=backend)
