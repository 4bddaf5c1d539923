"""What a saved model records about the run that made it: recipe, scores, data, machine, date."""

import datetime
import importlib.metadata
import os
import platform
import time

import nn

from .options import run_definition


def machine_description():
    """The CPU and library versions training ran on: another CPU or version may round differently."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:  # Linux; platform.processor() says only "x86_64"
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    versions = {}
    for package in ("numpy", "numba"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "python": platform.python_version(), **versions}


def model_metadata(model, args, epoch, val, test, data_hashes, started):
    """The metadata saved with the best model; ``val`` and ``test`` are (loss, accuracy, ...) tuples.

    ``architecture`` names the class ``lenet.load_model`` builds; ``input`` gives the network's
    input shape and the digit ``model.preprocess`` takes (28x28, centred in a border of background
    when the network reads more).
    """
    return {
        "architecture": type(model).__name__,
        "input": {"shape": list(model.input_shape), "digit": list(model.digit_shape),
                  "pixels": "MNIST: white ink (255) on black (0)"},
        "normalization": dict(model.normalization),
        "epoch": epoch,
        "val_loss": val[0], "val_accuracy": val[1],
        "test_loss": test[0], "test_accuracy": test[1],
        "seed": args.seed,
        "hyperparameters": run_definition(args),
        "backend": nn.get_backend(),
        "machine": machine_description(),
        "data_sha256": data_hashes,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "train_seconds": round(time.monotonic() - started, 1),
    }
