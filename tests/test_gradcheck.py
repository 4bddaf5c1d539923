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


def test_a_one_percent_error_is_reported_with_the_worst_index_and_both_values():
    x = np.random.default_rng(0).standard_normal((2, 4))
    (_, weight, _) = nn.gradcheck(ScaledLinear(4, 3, rng=0), x)
    assert not weight.passed
    assert len(weight.worst_index) == 2 and weight.worst_index[0] < 3 and weight.worst_index[1] < 4
    assert weight.analytic == pytest.approx(1.01 * weight.numeric, rel=1e-6)
    report = weight.report()
    index = ", ".join(str(i) for i in weight.worst_index)
    assert f"weight FAIL: worst entry [{index}]" in report
    assert f"analytic {weight.analytic:.10g}, numeric {weight.numeric:.10g}" in report


class FlatInputGradient(nn.Linear):
    """Returns dL/dx with the right values but flattened to (N * in,): a wrong shape."""

    def backward(self, dout, need_input_grad=True):
        dx = super().backward(dout, need_input_grad=need_input_grad)
        return None if dx is None else dx.reshape(-1)


class TransposedInputGradient(nn.Linear):
    """Returns dL/dx transposed: the right number of entries in the wrong shape."""

    def backward(self, dout, need_input_grad=True):
        dx = super().backward(dout, need_input_grad=need_input_grad)
        return None if dx is None else dx.T.copy()


class Float32InputGradient(nn.Linear):
    """Returns dL/dx in float32 for a float64 input."""

    def backward(self, dout, need_input_grad=True):
        dx = super().backward(dout, need_input_grad=need_input_grad)
        return None if dx is None else dx.astype(np.float32)


@pytest.mark.parametrize("layer_class, found", [
    (FlatInputGradient, "gradient of shape (8,), expected the input's shape (2, 4)"),
    (TransposedInputGradient, "gradient of shape (4, 2), expected the input's shape (2, 4)"),
    (Float32InputGradient, "gradient of dtype float32, expected the input's dtype float64"),
])
def test_an_input_gradient_of_the_wrong_shape_or_dtype_is_reported(layer_class, found):
    x = np.random.default_rng(0).standard_normal((2, 4))
    (dx, weight, bias) = nn.gradcheck(layer_class(4, 3, rng=0), x)
    assert weight.passed and bias.passed
    assert not dx.passed and dx.tensor == "input" and found in dx.problems
    assert f"{layer_class.__name__}: input FAIL: {found}" in format_table([dx, weight, bias])


class AssigningLinear(nn.Linear):
    """Sets ``weight.grad = ...`` instead of adding to it: right after zero_grad, wrong on the second call."""

    def backward(self, dout, need_input_grad=True):
        x = self.saved()["x"]
        self.weight.grad = dout.T @ x
        self.bias.grad += dout.sum(axis=0)
        return dout @ self.weight.data if need_input_grad else None


def test_an_assignment_instead_of_accumulation_is_reported_with_the_tensor_and_index():
    x = np.random.default_rng(0).standard_normal((2, 4))
    (dx, weight, bias) = nn.gradcheck(AssigningLinear(4, 3, rng=0), x)
    assert dx.passed and bias.passed
    assert not weight.passed and weight.max_abs_err < 1e-8  # the first call's values are right
    (problem,) = weight.problems
    assert problem.startswith("gradients do not accumulate: after two backward calls weight.grad[")
    assert "expected twice the first call's" in problem


class InPlaceReLU(nn.ReLU):
    """A correct ReLU that reuses ``dout`` as its result (``dout *= mask``): legal, since dout is the caller's copy."""

    def backward(self, dout, need_input_grad=True):
        mask = self.saved()["mask"]
        if not need_input_grad:
            return None
        dout *= mask
        return dout


class ReluPlusIdentity(nn.Module):
    """``y = relu(x) + x`` whose backward reads ``dout`` after the in-place ReLU has overwritten it.

    The right gradient is ``dout * mask + dout``; this computes ``2 * dout * mask``: the bug of an
    in-place dout user whose caller still needs the original.
    """

    def __init__(self):
        self.relu = InPlaceReLU()

    def forward(self, x):
        return self.relu(x) + x

    def backward(self, dout, need_input_grad=True):
        if not need_input_grad:
            return None
        return self.relu.backward(dout) + dout


class InPlaceTanh(nn.Module):
    """A correct tanh whose backward multiplies ``dout`` in place by ``1 - y²`` and returns it."""

    def forward(self, x):
        y = np.tanh(x)
        self.save_for_backward(y=y)
        return y

    def backward(self, dout, need_input_grad=True):
        y = self.saved()["y"]
        if not need_input_grad:
            return None
        dout *= 1 - y * y
        return dout


@pytest.mark.parametrize("layer", [InPlaceReLU(), InPlaceTanh()], ids=["ReLU", "tanh"])
def test_a_layer_using_dout_in_place_passes(layer):
    # Were R itself handed to backward, the tanh would scale it by 1 - y² for every later
    # finite difference, and its check would fail.
    x = np.array([[-1.0, 2.0, -0.5, 0.3], [0.7, -0.2, 1.5, -2.0]])
    (result,) = nn.gradcheck(layer, x)
    assert result.passed and result.problems == () and result.max_abs_err < 1e-8


def test_an_in_place_dout_user_that_corrupts_its_caller_is_reported_with_the_index():
    x = np.array([[-1.0, 2.0, -0.5, 0.3], [0.7, -0.2, 1.5, -2.0]])
    (result,) = nn.gradcheck(ReluPlusIdentity(), x)
    assert not result.passed and result.tensor == "input"
    # Where x < 0 the right gradient is dout, the buggy one 0; where x > 0 it is 2 dout either way.
    assert x[result.worst_index] < 0
    assert result.analytic == 0.0 and abs(result.numeric) > 0.1
    assert "input FAIL: worst entry [" in result.report()


class ForgetsBiasWithoutInputGrad(nn.Linear):
    """With ``need_input_grad=False`` it returns early, before the bias gradient."""

    def backward(self, dout, need_input_grad=True):
        x = self.saved()["x"]
        self.weight.grad += dout.T @ x
        if not need_input_grad:
            return None
        self.bias.grad += dout.sum(axis=0)
        return dout @ self.weight.data


class IgnoresNeedInputGrad(nn.Linear):
    """Always returns dL/dx, even when asked not to."""

    def backward(self, dout, need_input_grad=True):
        return super().backward(dout, need_input_grad=True)


def test_need_input_grad_false_is_exercised():
    x = np.random.default_rng(0).standard_normal((2, 4))
    (dx, weight, bias) = nn.gradcheck(ForgetsBiasWithoutInputGrad(4, 3, rng=0), x)
    assert dx.passed and weight.passed and not bias.passed
    assert bias.problems[0].startswith("with need_input_grad=False, bias.grad[")
    (dx, weight, bias) = nn.gradcheck(IgnoresNeedInputGrad(4, 3, rng=0), x)
    assert weight.passed and bias.passed and not dx.passed
    assert dx.problems == ("backward(dout, need_input_grad=False) returned a gradient; expected None",)


def test_frozen_parameters_are_not_checked():
    layer = nn.Linear(4, 3, rng=0)
    layer.bias.requires_grad = False
    results = nn.gradcheck(layer, np.random.default_rng(0).standard_normal((2, 4)))
    assert [r.tensor for r in results] == ["input", "weight"] and all(r.passed for r in results)


def test_raise_exception_raises_with_every_failure_in_the_message():
    x = np.random.default_rng(0).standard_normal((2, 4))
    assert all(r.passed for r in nn.gradcheck(nn.Linear(4, 3, rng=0), x, raise_exception=True))
    with pytest.raises(nn.gradient_check.GradcheckError, match=r"ScaledLinear: weight FAIL: worst entry \[") as info:
        nn.gradcheck(ScaledLinear(4, 3, rng=0), x, raise_exception=True)
    assert [r.passed for r in info.value.results] == [True, False, True]


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
    for needle in ("Conv2d", "MaxPool2d", "Linear", "ReLU", "Flatten", "CrossEntropyLoss", "Sequential", "Sigmoid",
                   "Tanh", "LeakyReLU", "AvgPool2d", "Dropout", "Subsampling", "BatchNorm1d", "BatchNorm2d"):
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
