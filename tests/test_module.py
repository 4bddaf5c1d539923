"""The Module contract: parameter discovery, modes, state dicts, dtypes."""

import numpy as np
import pytest

import nn


def small_net(dtype=np.float32, seed=0):
    return nn.Sequential(nn.Linear(4, 3, dtype=dtype, rng=seed), nn.ReLU(), nn.Linear(3, 2, dtype=dtype, rng=seed + 1))


def test_named_parameters_are_dotted_in_definition_order():
    names = [name for name, _ in small_net().named_parameters()]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert len(small_net().parameters()) == 4


def test_parameter_grad_starts_at_zero_with_the_same_shape_and_dtype():
    for p in small_net(np.float64).parameters():
        assert p.grad.shape == p.data.shape and p.grad.dtype == p.data.dtype == np.float64
        assert not p.grad.any()


def test_state_dict_round_trip_reproduces_outputs_and_is_a_copy():
    a, b = small_net(seed=0), small_net(seed=5)
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    state = a.state_dict()
    state["0.weight"][...] = 0  # a copy: changing it leaves the model alone
    assert a.state_dict()["0.weight"].any()
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a(x), b(x))


def test_load_state_dict_casts_to_the_parameters_dtype():
    net = small_net(np.float32)
    state = {k: v.astype(np.float64) + 1 for k, v in small_net(np.float64).state_dict().items()}
    net.load_state_dict(state)
    assert all(p.dtype == np.float32 for p in net.parameters())
    np.testing.assert_allclose(net.state_dict()["2.bias"], state["2.bias"], rtol=1e-6)


def test_load_state_dict_names_missing_unexpected_and_misshapen_keys_and_changes_nothing():
    net = small_net()
    before = net.state_dict()
    state = net.state_dict()
    del state["0.bias"]
    state["extra.weight"] = np.zeros(1)
    state["2.weight"] = np.zeros((5, 5))
    with pytest.raises(ValueError) as info:
        net.load_state_dict(state)
    message = str(info.value)
    assert "missing keys: ['0.bias']" in message and "unexpected keys: ['extra.weight']" in message
    assert "2.weight: expected shape (2, 3), got (5, 5)" in message
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_non_strict_load_reports_missing_and_unexpected():
    net = small_net()
    state = net.state_dict()
    del state["0.bias"]
    state["junk"] = np.zeros(2)
    result = net.load_state_dict(state, strict=False)
    assert result.missing_keys == ["0.bias"] and result.unexpected_keys == ["junk"]


def test_astype_converts_every_parameter_and_returns_self():
    net = small_net()
    assert net.astype(np.float64) is net
    assert all(p.data.dtype == p.grad.dtype == np.float64 for p in net.parameters())
    assert net(np.ones((1, 4))).dtype == np.float64
    with pytest.raises(TypeError, match="floating"):
        net.astype(np.int32)


def test_train_and_eval_set_the_mode_recursively():
    net = small_net()
    assert net.training and all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())


def test_eval_forward_keeps_no_state_and_so_cannot_be_differentiated():
    net = small_net().eval()
    net(np.ones((2, 4)))
    assert all("_saved_for_backward" not in vars(m) for m in net.modules())
    with pytest.raises(nn.BackwardBeforeForwardError, match="before forward"):
        net.backward(np.ones((2, 2)))


def test_sequential_backward_runs_layers_in_reverse():
    rng = np.random.default_rng(1)
    net = small_net(np.float64)
    x = rng.standard_normal((5, 4))
    dout = rng.standard_normal((5, 2))
    net(x)
    dx = net.backward(dout)
    # By hand: the chain rule through Linear -> ReLU -> Linear.
    w1, b1 = net[0].weight.data, net[0].bias.data
    w2 = net[2].weight.data
    h = x @ w1.T + b1
    dh = (dout @ w2) * (h > 0)
    np.testing.assert_allclose(dx, dh @ w1, rtol=1e-12)
    np.testing.assert_allclose(net[0].weight.grad, dh.T @ x, rtol=1e-12)


def test_repr_lists_children_readably():
    text = repr(small_net())
    assert text.splitlines()[0] == "Sequential("
    assert "(0): Linear(in_features=4, out_features=3, bias=True)" in text and "(1): ReLU()" in text


def test_sequential_rejects_non_modules():
    with pytest.raises(TypeError, match="argument 1 is a int"):
        nn.Sequential(nn.ReLU(), 3)


def test_sequential_lives_in_nn_sequential_only():
    from nn.sequential import Sequential

    assert Sequential is nn.Sequential
    with pytest.raises(ImportError):
        from nn.module import Sequential  # noqa: F401
