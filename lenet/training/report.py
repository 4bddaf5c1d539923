"""A run's first line and its ending: the pictures of the best model and where everything is."""

import os
import shlex

import nn

from .evaluation import evaluate


def startup_lines(model, n_train, n_val, n_test, model_path):
    """The lines a run prints before training: the model, the backend, the data and where it writes.

    More lines about the machine (e.g. cores found busy) belong in this list.
    """
    return [f"{type(model).__name__}: {sum(p.size for p in model.parameters()):,} parameters, backend {nn.get_backend()}; "
            f"{n_train:,} training, {n_val:,} validation, {n_test:,} test images -> "
            f"{os.path.dirname(model_path) or '.'}"]


def finish(paths, history, best, test_images, test_x, test_y, args):
    """Pictures of the run, drawn from the best model: curves, confusion matrix, misclassified digits."""
    from lenet import load_model, plots
    model = load_model(paths["model"])
    _, accuracy, probabilities = evaluate(model, test_x, test_y, args.test_batch_size)
    predicted = probabilities.argmax(axis=1)
    plots.save_curves(history, paths["curves"])
    plots.save_confusion_matrix(plots.confusion_matrix(test_y, predicted), paths["confusion"],
                                title=f"{type(model).__name__}, best epoch {best['epoch']} of {args.epochs}")
    wrong = predicted != test_y
    plots.save_misclassified(test_images[wrong], test_y[wrong], predicted[wrong], paths["misclassified"],
                             probabilities=probabilities[wrong])
    print(f"Best model: epoch {best['epoch']}, validation accuracy {100 * best['val_accuracy']:.2f}%, "
          f"test accuracy {100 * accuracy:.2f}% ({int(wrong.sum())} errors) -> {paths['model']}")
    print(f"Metrics: {paths['metrics']}; pictures: {paths['curves']}, {paths['confusion']}, "
          f"{paths['misclassified']}")
    print(f"Serve it: python serve.py --model {shlex.quote(paths['model'])}")
