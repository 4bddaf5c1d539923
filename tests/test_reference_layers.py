"""The batch norm, dropout, pooling, activation and subsampling layers and the 1998 model are NumPy reference
code: no backend branch, no kernel, no reaching into other objects' private attributes (the scanners of
tests/test_execution_layer.py, which that file shows can fail)."""

from pathlib import Path

import pytest

from tests.test_execution_layer import backend_code, private_reaches

ROOT = Path(__file__).resolve().parent.parent
FILES = ["nn/activation.py", "nn/avgpool.py", "nn/batchnorm.py", "nn/dropout.py", "nn/subsampling.py",
         "lenet/lenet1998.py"]


@pytest.mark.parametrize("name", FILES)
def test_the_file_holds_only_the_math_and_its_numpy_reference(name):
    source = (ROOT / name).read_text()
    assert backend_code(source) == [] and private_reaches(source) == []
