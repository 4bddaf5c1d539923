"""Fixtures shared by the test files, and skip reasons that say what to install or run."""

import os
import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

# What un-skips a test that skipped because an optional package is missing
# (pytest.importorskip says only "could not import 'torch': No module named 'torch'").
INSTALL_HINTS = {
    "torch": "pip install torch==2.13.0",  # the version the comparisons were written against
    "tritonclient": 'pip install "tritonclient[http]"',
    "selenium": 'pip install -e ".[test]"',
}


def mnist_folder():
    """Where the tests look for MNIST: ``$MNIST_DIR`` if set, else ``<repo>/mnist``."""
    return Path(os.environ.get("MNIST_DIR") or REPO_ROOT / "mnist")


def mnist_skip_reason():
    """Why the MNIST tests skip and how to un-skip them, or None if the four files are there."""
    folder = mnist_folder()
    missing = [name for name in MNIST_FILES
               if not (folder / name).is_file() and not (folder / f"{name}.gz").is_file()]
    if not missing:
        return None
    where = f"$MNIST_DIR={folder}" if os.environ.get("MNIST_DIR") else f"{folder} ($MNIST_DIR is not set)"
    return (f"MNIST not found in {where}: missing {', '.join(missing)}; run `python -m data.mnist` "
            "to fetch it into ./mnist, or set MNIST_DIR to a folder holding it")


@pytest.fixture(scope="session")
def mnist_dir():
    """The folder holding the four MNIST files; skips, saying how to get them, if absent.

    ``$MNIST_DIR`` if set (CI points it at a local copy), else ``<repo>/mnist``, where
    ``python train.py`` and ``python -m data.mnist`` fetch it by default.
    """
    reason = mnist_skip_reason()
    if reason:
        pytest.skip(reason)
    return mnist_folder()


@pytest.fixture(scope="module")
def model():
    """An untrained LeNet5 (seed 0) in eval mode, with the recorded accuracy a server shows: the
    server tests' model (a file may define its own ``model`` instead)."""
    import lenet  # here, not at the top: most test files never need it

    model = lenet.LeNet5(seed=0).eval()
    model.metadata = {"test_accuracy": 0.5}
    return model


@pytest.fixture(scope="module")
def shipped_server():
    """A server of the shipped trained model on a free loopback port, for tests of real accuracy."""
    import lenet
    from lenet.server import PredictionServer, serving_in_background

    if not os.path.isfile(lenet.DEFAULT_WEIGHTS):
        pytest.skip("shipped model not trained yet (lenet/weights/lenet5.npz)")
    with serving_in_background(PredictionServer(lenet.load_model(), port=0, log=None)) as server:
        yield server


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Append to an "import failed" skip reason the command that installs the package."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        path, line, reason = report.longrepr
        missing = re.search(r"could not import '([\w.]+)'", reason)
        hint = missing and INSTALL_HINTS.get(missing.group(1).split(".")[0])
        if hint and hint not in reason:
            report.longrepr = (path, line, f"{reason}; `{hint}` to run it")
