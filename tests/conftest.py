"""Fixtures shared by the test files."""

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@pytest.fixture(scope="session")
def mnist_dir():
    """The folder holding the four MNIST files; skips if absent.

    ``$MNIST_DIR`` if set (CI points it at a local copy), else ``<repo>/mnist``, where
    ``python train.py`` and ``python -m data.mnist`` fetch it by default.
    """
    folder = Path(os.environ.get("MNIST_DIR") or REPO_ROOT / "mnist")
    missing = [name for name in MNIST_FILES
               if not (folder / name).is_file() and not (folder / f"{name}.gz").is_file()]
    if missing:
        pytest.skip(f"MNIST not found in {folder} (missing {', '.join(missing)}); set MNIST_DIR to a folder holding it")
    return folder
