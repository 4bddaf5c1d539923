"""The module contract a layer of one's own relies on: each test here is a trap that once caught such a layer.

Buffers, containers (``ModuleList``, ``ModuleDict``, ``Sequential`` slicing), modules kept in plain
lists, ``backward(self, dout)`` without ``need_input_grad``, a module applied twice in one forward,
tied parameters, frozen parameters: on both backends where a backend could matter.
"""

from collections import OrderedDict

import numpy as np
import pytest

import nn

BACKENDS = ["numpy", "numba"]


class Scale(nn.Module):
    """``y = s * x`` with one trained scalar ``s``, written as the README's contract reads: ``backward(self, dout)``."""

    def __init__(self, value=2.0):
        self.s = nn.Parameter(np.array([value]))

    def forward(self, x):
        self.save_for_backward(x=x)
        return self.s.data[0] * x

    def backward(self, dout):
        x = self.saved()["x"]
        if self.s.requires_grad:
            self.s.grad += np.sum(dout * x)
        return self.s.data[0] * dout


class Counter(nn.Module):
    """Counts the images it has seen in a buffer, an int64 array, and keeps a float running mean."""

    def __init__(self, features):
        self.register_buffer("seen", np.zeros((), dtype=np.int64))
        self.register_buffer("running_mean", np.zeros(features))
        self.register_buffer("scratch", np.zeros(features), persistent=False)

    def forward(self, x):
        self.seen = self.seen + len(x)
        self.running_mean = 0.5 * self.running_mean + 0.5 * x.mean(axis=0)
        return x


def mlp(seed=0):
    return nn.Sequential(nn.Linear(4, 3, dtype=np.float64, rng=seed), nn.ReLU(),
                         nn.Linear(3, 2, dtype=np.float64, rng=seed + 1))


# -- backward(self, dout) -------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("need_input_grad", [True, False])
def test_a_layer_whose_backward_takes_only_dout_works_inside_sequential(backend, need_input_grad):
    x = np.random.default_rng(0).standard_normal((5, 4))
    model = nn.Sequential(mlp(), Scale(3.0))
    reference = mlp()
    with nn.use_backend(backend):
        out = model(x)
        dx = model.backward(np.ones_like(out), need_input_grad=need_input_grad)
        expected = 3.0 * reference(x)
        expected_dx = reference.backward(3.0 * np.ones_like(out))
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    np.testing.assert_allclose(model[1].s.grad, [np.sum(expected / 3.0)], rtol=1e-12)
    if need_input_grad:
        np.testing.assert_allclose(dx, expected_dx, rtol=1e-12)
    else:
        assert dx is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_layer_whose_backward_takes_only_dout_may_come_first(backend):
    model = nn.Sequential(Scale(3.0), nn.Linear(4, 2, dtype=np.float64, rng=0))
    with nn.use_backend(backend):
        model(np.ones((2, 4)))
        model.backward(np.ones((2, 2)), need_input_grad=False)  # Scale computes it anyway, and that is fine
    assert model[0].s.grad[0] != 0


# -- buffers ---------------------------------------------------------------------------------------

def test_buffers_are_state_but_not_parameters():
    counter = Counter(3)
    counter(np.ones((4, 3)))
    assert counter.parameters() == []
    assert [name for name, _ in counter.named_buffers()] == ["seen", "running_mean", "scratch"]
    assert list(counter.state_dict()) == ["seen", "running_mean"]  # persistent=False stays out
    assert counter.state_dict()["seen"] == 4 and counter.seen.dtype == np.int64
    np.testing.assert_allclose(counter.running_mean, 0.5)


def test_buffers_of_children_take_dotted_names_after_the_parameters():
    model = nn.Sequential(OrderedDict([("fc", nn.Linear(3, 3, rng=0)), ("count", Counter(3))]))
    assert list(model.state_dict()) == ["fc.weight", "fc.bias", "count.seen", "count.running_mean"]


def test_buffers_survive_save_and_load(tmp_path):
    counter = Counter(3)
    counter(np.arange(6.0).reshape(2, 3))
    nn.save(counter, tmp_path / "counter.npz")
    state, _ = nn.load(tmp_path / "counter.npz")
    fresh = Counter(3)
    fresh.load_state_dict(state)
    assert fresh.seen == 2 and fresh.seen.dtype == np.int64
    np.testing.assert_array_equal(fresh.running_mean, counter.running_mean)


def test_astype_casts_floating_buffers_and_keeps_integer_ones():
    counter = Counter(3).astype(np.float32)
    assert counter.running_mean.dtype == np.float32 and counter.scratch.dtype == np.float32
    assert counter.seen.dtype == np.int64


def test_buffers_are_printed():
    assert "(running_mean): buffer(shape=(3,), dtype=float64)" in repr(Counter(3))


def test_a_buffer_is_an_array_and_its_name_is_new():
    counter = Counter(3)
    with pytest.raises(TypeError, match="buffer is a NumPy array"):
        counter.running_mean = [0.0, 0.0, 0.0]
    with pytest.raises(KeyError, match="already exists"):
        counter.register_buffer("training", np.zeros(1))


# -- containers ------------------------------------------------------------------------------------

def test_a_module_list_registers_its_modules():
    class Tower(nn.Module):
        def __init__(self):
            self.layers = nn.ModuleList([nn.Linear(2, 2, rng=i) for i in range(3)])

    tower = Tower()
    tower.layers.append(nn.Linear(2, 1, rng=3))
    assert [name for name, _ in tower.named_parameters()][::2] == [f"layers.{i}.weight" for i in range(4)]
    assert len(tower.layers) == 4 and isinstance(tower.layers[1:3], nn.ModuleList)
    assert "(layers): ModuleList(" in repr(tower) and "(3): Linear(in_features=2, out_features=1" in repr(tower)
    del tower.layers[0]
    assert [name for name, _ in tower.layers.named_children()] == ["0", "1", "2"]


def test_a_module_dict_registers_its_modules_by_key():
    heads = nn.ModuleDict({"digit": nn.Linear(4, 10, rng=0), "parity": nn.Linear(4, 2, rng=1)})
    assert heads.keys() == ["digit", "parity"] and "digit" in heads
    assert list(heads.state_dict()) == ["digit.weight", "digit.bias", "parity.weight", "parity.bias"]
    heads.pop("digit")
    assert heads.keys() == ["parity"]
    with pytest.raises(KeyError, match="name of a ModuleDict attribute"):
        heads["keys"] = nn.ReLU()


@pytest.mark.parametrize("holder", [list, tuple, lambda layers: dict(enumerate(layers))])
def test_modules_in_a_plain_list_or_dict_are_refused_naming_the_attribute(holder):
    class Hidden(nn.Module):
        def __init__(self):
            self.layers = holder([nn.Linear(2, 2, rng=0)])

    with pytest.raises(TypeError, match=r"Hidden\.layers: a plain .* invisible to parameters\(\)"):
        Hidden()


def test_a_module_appended_to_a_plain_list_later_is_reported():
    class Hidden(nn.Module):
        def __init__(self):
            self.layers = []

    hidden = Hidden()
    hidden.layers.append(nn.Linear(2, 2, rng=0))
    with pytest.raises(TypeError, match=r"Hidden\.layers: .* use nn\.ModuleList"):
        hidden.parameters()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_slice_of_a_sequential_is_a_sequential_that_computes_those_layers(backend):
    model = mlp()
    head = model[0:2]
    assert type(head) is nn.Sequential and [name for name, _ in head.named_children()] == ["0", "1"]
    assert head[0] is model[0]
    x = np.random.default_rng(0).standard_normal((3, 4))
    with nn.use_backend(backend):
        np.testing.assert_allclose(model[2](head(x)), model(x), rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_append_insert_and_del_change_what_a_sequential_computes(backend):
    model = mlp()
    x = np.random.default_rng(0).standard_normal((3, 4))
    with nn.use_backend(backend):
        before = model(x)
        model.append(Scale(2.0))
        np.testing.assert_allclose(model(x), 2.0 * before, rtol=1e-12)
        del model[-1]
        np.testing.assert_allclose(model(x), before, rtol=1e-12)
        model.insert(0, Scale(0.0))
        np.testing.assert_allclose(model(x), mlp()(np.zeros_like(x)), rtol=1e-12)
    assert [name for name, _ in model.named_children()] == ["0", "1", "2", "3"]


# -- a module applied twice, tied parameters -------------------------------------------------------

class TwiceThrough(nn.Module):
    """``fc(relu(fc(x)))``: one Linear applied twice in one forward."""

    def __init__(self):
        self.fc = nn.Linear(3, 3, dtype=np.float64, rng=0)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.fc(self.relu(self.fc(x)))

    def backward(self, dout):
        return self.fc.backward(self.relu.backward(self.fc.backward(dout)))


def two_copies():
    """The same network with two separate Linears holding equal weights: the reference."""
    first, second = nn.Linear(3, 3, dtype=np.float64, rng=0), nn.Linear(3, 3, dtype=np.float64, rng=0)
    return nn.Sequential(first, nn.ReLU(), second)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("build", [TwiceThrough, lambda: (lambda fc: nn.Sequential(fc, nn.ReLU(), fc))(
    nn.Linear(3, 3, dtype=np.float64, rng=0))], ids=["custom-module", "sequential"])
def test_a_module_applied_twice_accumulates_both_gradients(backend, build):
    rng = np.random.default_rng(1)
    x, dout = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    model, reference = build(), two_copies()
    with nn.use_backend(backend):
        out = model(x)
        dx = model.backward(dout)
        expected = reference(x)
        expected_dx = reference.backward(dout)
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    np.testing.assert_allclose(dx, expected_dx, rtol=1e-12)
    (weight, bias) = model.parameters()
    np.testing.assert_allclose(weight.grad, reference[0].weight.grad + reference[2].weight.grad, rtol=1e-12)
    np.testing.assert_allclose(bias.grad, reference[0].bias.grad + reference[2].bias.grad, rtol=1e-12)


def test_a_module_called_by_bare_forward_keeps_what_one_call_saved():
    fc = nn.Linear(2, 2, rng=0)
    for _ in range(3):
        fc.forward(np.ones((1, 2)))
    assert len(vars(fc)["_saved_for_backward"]) == 1  # nothing piles up


def test_a_tied_parameter_is_listed_once_and_stepped_once():
    first, second = nn.Linear(3, 3, dtype=np.float64, rng=0), nn.Linear(3, 3, dtype=np.float64, rng=1)
    second.weight = first.weight  # tied, as an embedding and its output layer often are
    model = nn.Sequential(first, nn.ReLU(), second)
    assert [name for name, _ in model.named_parameters()] == ["0.weight", "0.bias", "2.bias"]
    model.zero_grad()
    model.parameters()[0].grad[...] = 1.0
    before = first.weight.data.copy()
    nn.optim.SGD(model.parameters(), lr=0.5).step()
    np.testing.assert_allclose(first.weight.data, before - 0.5)  # not - 1.0: one step, not two


# -- frozen parameters -----------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("build", [
    lambda: nn.Sequential(nn.Conv2d(1, 2, 3, dtype=np.float64, rng=0), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(8, 3, dtype=np.float64, rng=1)),
    lambda: nn.Sequential(nn.Conv2d(1, 2, 3, stride=2, dtype=np.float64, rng=0), nn.ReLU(), nn.Flatten(),
                          nn.Linear(8, 3, dtype=np.float64, rng=1)),
], ids=["direct", "blas"])
def test_a_frozen_parameter_accumulates_no_gradient_and_the_others_are_unchanged(backend, build):
    rng = np.random.default_rng(0)
    x, dout = rng.standard_normal((2, 1, 6, 6)), rng.standard_normal((2, 3))
    frozen, reference = build(), build()
    frozen[0].weight.requires_grad = False
    frozen[-1].bias.requires_grad = False
    with nn.use_backend(backend):
        for model in (frozen, reference):
            model(x)
            model.backward(dout)
    assert not frozen[0].weight.grad.any() and not frozen[-1].bias.grad.any()
    for (name, p), q in zip(frozen.named_parameters(), reference.parameters()):
        if p.requires_grad:
            np.testing.assert_allclose(p.grad, q.grad, rtol=1e-12, err_msg=name)


def test_a_frozen_parameter_is_never_stepped():
    model = mlp()
    model[0].weight.requires_grad = False
    before = model[0].weight.data.copy()
    model(np.ones((2, 4)))
    model.backward(np.ones((2, 2)))
    nn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1).step()
    np.testing.assert_array_equal(model[0].weight.data, before)


def test_requires_grad_underscore_freezes_a_whole_module():
    model = mlp()
    model[0].requires_grad_(False)
    assert [p.requires_grad for p in model.parameters()] == [False, False, True, True]
    assert "requires_grad=False" in repr(model[0].weight)
