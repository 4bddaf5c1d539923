"""Every study test runs once per backend: the NumPy reference and the numba kernels."""

import pytest

import nn


@pytest.fixture(params=["numpy", "numba"])
def backend(request):
    with nn.use_backend(request.param):
        yield request.param
