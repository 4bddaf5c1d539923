"""Finite-difference gradient checks of every layer and of LeNet5, and proof that the checker can fail."""

import os
import subprocess
import sys

import numpy as np
import pytest

import nn
from lenet.model import LeNet5
from nn.gradient_check import builtin_cases, format_table

CASES = builtin_cases(seed=0)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_every_layer_passes_gradcheck(case, backend):
    name, module, inputs, max_entries = case
    with nn.use_backend(backend):
        results = nn.gradcheck(module, inputs, max_entries=max_entries, name=name)
    assert len(results) == 1 + len(module.parameters())  # every case has one floating input
    for r in results:
        assert r.passed, format_table(results)
        assert r.checked > 0 and r.max_abs_err < 1e-6


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_lenet5_passes_gradcheck(backend):
    model = LeNet5(seed=0)
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28))
    with nn.use_backend(backend):
        results = nn.gradcheck(model, x, max_entries=60, name="LeNet5")
    assert [r.tensor for r in results] == ["input"] + [name for name, _ in model.named_parameters()]
    for r in results:
        assert r.passed, format_table(results)
        assert r.checked > 0 and r.max_abs_err < 1e-6


class ScaledLinear(nn.Linear):
    """A Linear whose weight gradient is 1% too large: the kind of bug gradcheck must catch."""

    def backward(self, dout):
        dx = super().backward(dout)
        self.weight.grad *= 1.01
        return dx


class UnmaskedReLU(nn.ReLU):
    """A ReLU whose backward forgets the mask and passes dout straight through."""

    def backward(self, dout):
        self.saved()
        return np.asarray(dout)


def test_a_gradient_one_percent_off_is_caught():
    results = nn.gradcheck(ScaledLinear(4, 3, rng=0), np.random.default_rng(0).standard_normal((2, 4)))
    by_tensor = {r.tensor: r for r in results}
    assert not by_tensor["weight"].passed
    assert by_tensor["input"].passed and by_tensor["bias"].passed
    assert "FAIL" in format_table(results)


def test_a_missing_mask_is_caught():
    x = np.array([[-1.0, 2.0, -0.5, 0.3]])
    (result,) = nn.gradcheck(UnmaskedReLU(), x)
    assert not result.passed and result.max_abs_err > 0.1


def test_a_function_pair_can_be_checked():
    # f(x) = x**3 with its derivative; and a wrong derivative that must fail.
    state = {}

    def forward(x):
        state["x"] = x
        return x ** 3

    def good_backward(dout):
        return dout * 3 * state["x"] ** 2

    def bad_backward(dout):
        return dout * 2 * state["x"] ** 2

    x = np.array([0.5, -1.5, 2.0])
    assert all(r.passed for r in nn.gradcheck((forward, good_backward), x))
    assert not any(r.passed for r in nn.gradcheck((forward, bad_backward), x))


def test_gradcheck_leaves_the_module_untouched():
    layer = nn.Linear(3, 2, rng=0)
    before = layer.weight.data.copy()
    nn.gradcheck(layer, np.ones((1, 3)))
    assert layer.weight.dtype == np.float32
    np.testing.assert_array_equal(layer.weight.data, before)
    assert not layer.weight.grad.any()


def test_max_entries_checks_a_subset():
    (_, weight, _) = nn.gradcheck(nn.Linear(30, 20, rng=0), np.ones((1, 30)), max_entries=25)
    assert weight.checked == 25 and weight.shape == (20, 30)


def test_command_line_checks_everything_and_exits_zero():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-m", "nn.check_gradients"], cwd=root, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1] == f"{len(lines) - 4} passed, 0 failed"
    for needle in ("Conv2d", "MaxPool2d", "Linear", "ReLU", "Flatten", "CrossEntropyLoss", "Sequential"):
        assert needle in proc.stdout
    assert "FAIL" not in proc.stdout


def test_importing_the_command_line_module_leaves_the_gradcheck_function_in_place():
    # A fresh process: in this one, nn.check_gradients may already be imported.
    code = ("import inspect, nn, nn.check_gradients; "
            "assert inspect.isfunction(nn.gradcheck), nn.gradcheck; "
            "assert nn.gradcheck is nn.gradient_check.gradcheck")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
