"""The original LeNet-5 (LeCun et al. 1998): table I, the scaled tanh, trainable subsampling, C3's partial
connections, the paper's init, the 32x32 input; against the naive loops, finite differences and PyTorch."""

import numpy as np
import pytest

import nn
from lenet.lenet1998 import AMPLITUDE, C3_TABLE, SLOPE, LeNet1998, PartialConv2d, ScaledTanh
from nn.backend import NUMBA_AVAILABLE, use_backend
from nn.gradient_check import format_table
from tests.naive import (naive_avgpool2d_backward, naive_avgpool2d_forward, naive_conv2d_backward,
                         naive_conv2d_forward, naive_tanh_backward, naive_tanh_forward)

BACKENDS = ["numpy", pytest.param("numba", marks=pytest.mark.skipif(not NUMBA_AVAILABLE, reason="numba not installed"))]

KEYS = ["C1.weight", "C1.bias", "S2.weight", "S2.bias", "C3.weight", "C3.bias", "S4.weight", "S4.bias",
        "C5.weight", "C5.bias", "F6.weight", "F6.bias", "out.weight", "out.bias"]

# Table I as printed in the paper: one row per S2 map, an X under each C3 map (0..15) it feeds.
TABLE_I = [
    "X . . . X X X . . X X X X . X X",
    "X X . . . X X X . . X X X X . X",
    "X X X . . . X X X . . X . X X X",
    ". X X X . . X X X X . . X . X X",
    ". . X X X . . X X X X . X X . X",
    ". . . X X X . . X X X X . X X X",
]


def test_c3_table_is_the_papers_table_one():
    from_paper = np.array([[mark == "X" for mark in row.split()] for row in TABLE_I]).T  # (C3 map, S2 map)
    from_code = np.zeros((16, 6), dtype=bool)
    for o, inputs in enumerate(C3_TABLE):
        from_code[o, list(inputs)] = True
    np.testing.assert_array_equal(from_code, from_paper)
    assert from_paper.sum() == 60


def test_state_dict_keys_shapes_and_the_papers_parameter_counts():
    model = LeNet1998(seed=0)
    state = model.state_dict()
    assert list(state) == KEYS
    assert [v.shape for v in state.values()] == [(6, 1, 5, 5), (6,), (6,), (6,), (16, 6, 5, 5), (16,), (16,), (16,),
                                                 (120, 16, 5, 5), (120,), (84, 120), (84,), (10, 84), (10,)]
    # The paper's counts: C1 156, S2 12, C3 1,516, S4 32, C5 48,120, F6 10,164 (+ 850 for our linear output).
    trainable = {"C1": 156, "S2": 12, "C3": 1516, "S4": 32, "C5": 48120, "F6": 10164, "out": 850}
    for layer, count in trainable.items():
        weight, bias = state[f"{layer}.weight"], state[f"{layer}.bias"]
        assert np.count_nonzero(weight) + bias.size == count, layer
    assert np.count_nonzero(state["C3.weight"]) == 1500
    assert np.count_nonzero(state["C3.weight"][:, :, 0, 0]) == 60  # every connection of table I, and no other


@pytest.mark.parametrize("batch", [1, 3])
def test_forward_shapes_layer_by_layer(batch):
    model = LeNet1998(seed=0)
    x = np.random.default_rng(0).standard_normal((batch, 1, 32, 32)).astype(np.float32)
    expected = [(6, 28, 28)] * 2 + [(6, 14, 14)] * 2 + [(16, 10, 10)] * 2 + [(16, 5, 5)] * 2 + [(120, 1, 1)] * 2 + \
        [(120,), (84,), (84,), (10,)]
    for layer, shape in zip(model.children(), expected):
        x = layer(x)
        assert x.shape == (batch,) + shape and x.dtype == np.float32


def test_init_is_uniform_in_plus_minus_2_4_over_the_fan_in():
    model = LeNet1998(seed=0)
    bounds = {"C1": 2.4 / 25, "S2.weight": 2.4, "S2.bias": 2.4 / 4, "S4.weight": 2.4, "S4.bias": 2.4 / 4,
              "C5": 2.4 / 400, "F6": 2.4 / 120, "out": 2.4 / 84}
    for name, p in model.named_parameters():
        if name.startswith("C3"):
            continue
        bound = bounds.get(name, bounds.get(name.split(".")[0]))
        assert np.abs(p.data).max() <= bound, name
        if p.size >= 100:  # enough draws to come near the bound
            assert np.abs(p.data).max() > 0.9 * bound, name
    for o, inputs in enumerate(C3_TABLE):
        bound = 2.4 / (25 * len(inputs))
        assert np.abs(model.C3.weight.data[o]).max() <= bound
        assert np.abs(model.C3.weight.data[o, list(inputs)]).max() > 0.8 * bound
        assert abs(model.C3.bias.data[o]) <= bound


def test_same_seed_same_model_and_different_seed_different_model():
    a, b, c = LeNet1998(seed=7), LeNet1998(seed=7), LeNet1998(seed=8)
    for (key, va), vb, vc in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
        np.testing.assert_array_equal(va, vb)
        assert not np.array_equal(va, vc), key


@pytest.mark.parametrize("backend", BACKENDS)
def test_scaled_tanh_matches_the_naive_tanh_and_maps_plus_minus_one_to_itself(backend):
    x = 3 * np.random.default_rng(0).standard_normal((2, 3, 4))
    dout = np.random.default_rng(1).standard_normal(x.shape)
    layer = ScaledTanh()
    with use_backend(backend):
        y = layer(x)
        dx = layer.backward(dout)
    np.testing.assert_allclose(y, AMPLITUDE * naive_tanh_forward(SLOPE * x), rtol=1e-14)
    np.testing.assert_allclose(dx, AMPLITUDE * SLOPE * naive_tanh_backward(SLOPE * x, dout), rtol=1e-13)
    np.testing.assert_allclose(layer(np.array([-1.0, 1.0])), [-1.0, 1.0], atol=1e-4)  # the paper's choice of A, S


def partial_conv(seed=0, dtype=np.float64):
    return PartialConv2d(C3_TABLE, 6, 5, dtype=dtype, rng=seed)


def masked(weight):
    mask = np.zeros(weight.shape[:2])
    for o, inputs in enumerate(C3_TABLE):
        mask[o, list(inputs)] = 1
    return weight * mask[:, :, None, None]


@pytest.mark.parametrize("backend", BACKENDS)
def test_partial_conv_is_the_naive_convolution_with_the_masked_weight(backend):
    rng = np.random.default_rng(0)
    conv = partial_conv()
    conv.weight.data[...] = rng.standard_normal(conv.weight.shape)  # nonzero off the table too: the mask must act
    x = rng.standard_normal((2, 6, 9, 8))
    with use_backend(backend):
        y = conv(x)
        dout = rng.standard_normal(y.shape)
        dx = conv.backward(dout)
    w = masked(conv.weight.data)
    np.testing.assert_allclose(y, naive_conv2d_forward(x, w, conv.bias.data, 1, 0), rtol=1e-12, atol=1e-12)
    dx_ref, dw_ref, db_ref = naive_conv2d_backward(x, w, dout, 1, 0)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv.weight.grad, masked(dw_ref), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv.bias.grad, db_ref, rtol=1e-12, atol=1e-12)
    assert np.all(conv.weight.grad[masked(np.ones(w.shape)) == 0] == 0)  # exactly 0 off the table


def test_training_leaves_the_weights_off_the_table_at_zero():
    model = LeNet1998(seed=1)
    off_table = masked(np.ones(model.C3.weight.shape)) == 0
    optimizer = nn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    rng = np.random.default_rng(1)
    criterion = nn.CrossEntropyLoss()
    for _ in range(3):
        model.zero_grad()
        criterion(model(rng.standard_normal((4, 1, 32, 32)).astype(np.float32)), rng.integers(0, 10, 4))
        model.backward(criterion.backward())
        optimizer.step()
    assert np.all(model.C3.weight.data[off_table] == 0)
    assert np.all(model.C3.weight.data[~off_table] != 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_subsampling_is_the_naive_average_times_a_coefficient_plus_a_bias(backend):
    rng = np.random.default_rng(0)
    layer = nn.Subsampling(3, dtype=np.float64)
    layer.weight.data[...] = rng.standard_normal(3)
    layer.bias.data[...] = rng.standard_normal(3)
    x = rng.standard_normal((2, 3, 6, 4))
    with use_backend(backend):
        y = layer(x)
        dout = rng.standard_normal(y.shape)
        dx = layer.backward(dout)
    pooled = naive_avgpool2d_forward(x, 2)
    w, b = layer.weight.data[:, None, None], layer.bias.data[:, None, None]
    np.testing.assert_allclose(y, w * pooled + b, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(dx, naive_avgpool2d_backward(x.shape, dout * w, 2), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(layer.weight.grad, (dout * pooled).sum(axis=(0, 2, 3)), rtol=1e-13)
    np.testing.assert_allclose(layer.bias.grad, dout.sum(axis=(0, 2, 3)), rtol=1e-13)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_new_pieces_and_the_whole_model_pass_the_gradient_check(backend):
    rng = np.random.default_rng(0)
    cases = [("ScaledTanh", ScaledTanh(), 2 * rng.standard_normal((3, 4)), None),
             ("PartialConv2d(table I)", partial_conv(), rng.standard_normal((2, 6, 6, 7)), 200),
             ("LeNet1998", LeNet1998(seed=0), rng.standard_normal((2, 1, 32, 32)), 40)]
    for name, module, x, max_entries in cases:
        with use_backend(backend):
            results = nn.gradcheck(module, x, max_entries=max_entries, name=name)
        assert len(results) == 1 + len(module.parameters())
        for r in results:
            assert r.passed, format_table(results)
            assert r.checked > 0 and r.max_abs_err < 1e-6


def torch_reference(model, torch):
    """The same network in PyTorch float64, written with its functional ops and our parameters."""
    f = torch.nn.functional
    p = {k: torch.from_numpy(v.astype(np.float64)).requires_grad_() for k, v in model.state_dict().items()}
    mask = torch.from_numpy(masked(np.ones((16, 6, 5, 5))))

    def squash(a):
        return AMPLITUDE * torch.tanh(SLOPE * a)

    def subsample(a, name):
        return f.avg_pool2d(a, 2) * p[f"{name}.weight"][:, None, None] + p[f"{name}.bias"][:, None, None]

    def forward(x):
        a = squash(f.conv2d(x, p["C1.weight"], p["C1.bias"]))
        a = squash(subsample(a, "S2"))
        a = squash(f.conv2d(a, p["C3.weight"] * mask, p["C3.bias"]))
        a = squash(subsample(a, "S4"))
        a = squash(f.conv2d(a, p["C5.weight"], p["C5.bias"])).flatten(1)
        a = squash(f.linear(a, p["F6.weight"], p["F6.bias"]))
        return f.linear(a, p["out.weight"], p["out.bias"])

    return forward, p


@pytest.mark.parametrize("backend", BACKENDS)
def test_forward_and_every_gradient_match_torch_in_float64(backend):
    torch = pytest.importorskip("torch")
    model = LeNet1998(seed=3, dtype=np.float64)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 1, 32, 32))
    labels = rng.integers(0, 10, 4)
    criterion = nn.CrossEntropyLoss()
    with use_backend(backend):
        loss = criterion(model(x), labels)
        dx = model.backward(criterion.backward())
    forward, params = torch_reference(model, torch)
    x_torch = torch.from_numpy(x).requires_grad_()
    loss_torch = torch.nn.functional.cross_entropy(forward(x_torch), torch.from_numpy(labels))
    loss_torch.backward()
    np.testing.assert_allclose(loss, loss_torch.item(), rtol=1e-12)
    np.testing.assert_allclose(dx, x_torch.grad.numpy(), rtol=1e-8, atol=1e-12)
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, params[name].grad.numpy(), rtol=1e-8, atol=1e-12, err_msg=name)


def test_preprocess_pads_the_digit_into_a_32x32_background_of_minus_0_1():
    model = LeNet1998(seed=0)
    digit = np.zeros((28, 28), dtype=np.uint8)
    digit[10:18, 12:16] = 255
    x = model.preprocess(digit)
    assert x.shape == (1, 1, 32, 32) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, 0, 12:20, 14:18], 1.175, rtol=1e-6)  # ink, moved by the 2-pixel border
    assert np.count_nonzero(np.isclose(x, 1.175)) == 32
    np.testing.assert_allclose(x[np.isclose(x, 1.175) == 0], -0.1, rtol=1e-6)
    np.testing.assert_allclose(model.preprocess(digit / 255.0), x, rtol=1e-6)


def test_predict_gives_probabilities_and_refuses_training_mode():
    model = LeNet1998(seed=0)
    pixels = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    with pytest.raises(RuntimeError, match="eval"):
        model.predict(pixels)
    p = model.eval().predict(pixels)
    assert p.shape == (3, 10)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)


def test_save_and_load_round_trip_by_key(tmp_path):
    model = LeNet1998(seed=4)
    nn.save(model, tmp_path / "lenet1998.npz", metadata={"model": "lenet5-1998"})
    state, metadata = nn.load(tmp_path / "lenet1998.npz")
    other = LeNet1998(seed=5)
    other.load_state_dict(state)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(other.state_dict()[key], value)
    assert metadata == {"model": "lenet5-1998"}


def test_a_table_naming_a_missing_input_map_is_a_clear_error():
    with pytest.raises(ValueError, match=r"every table entry must name input maps in \[0, 6\)"):
        PartialConv2d([(0, 6)], 6, 5)
