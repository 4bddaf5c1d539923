"""Linear, ReLU and Flatten against definitions written with plain loops in float64."""

import numpy as np
import pytest

import nn


def naive_linear(x, w, b):
    n, fin = x.shape
    fout = w.shape[0]
    y = np.zeros((n, fout))
    for i in range(n):
        for o in range(fout):
            y[i, o] = sum(x[i, k] * w[o, k] for k in range(fin)) + (b[o] if b is not None else 0.0)
    return y


def naive_linear_backward(x, w, dout):
    n, fin = x.shape
    fout = w.shape[0]
    dx, dw, db = np.zeros_like(x), np.zeros_like(w), np.zeros(fout)
    for i in range(n):
        for o in range(fout):
            db[o] += dout[i, o]
            for k in range(fin):
                dw[o, k] += dout[i, o] * x[i, k]
                dx[i, k] += dout[i, o] * w[o, k]
    return dx, dw, db


@pytest.mark.parametrize("n,fin,fout,bias", [(1, 1, 1, True), (4, 7, 3, True), (2, 5, 9, False), (3, 256, 120, True)])
def test_linear_forward_and_backward_match_the_loop_definition(n, fin, fout, bias):
    rng = np.random.default_rng(n * 100 + fin)
    layer = nn.Linear(fin, fout, bias=bias, dtype=np.float64, rng=rng)
    x = rng.standard_normal((n, fin))
    dout = rng.standard_normal((n, fout))
    y = layer(x)
    assert y.shape == (n, fout) and y.dtype == np.float64
    b = layer.bias.data if bias else None
    np.testing.assert_allclose(y, naive_linear(x, layer.weight.data, b), rtol=1e-12, atol=1e-12)
    dx = layer.backward(dout)
    ref_dx, ref_dw, ref_db = naive_linear_backward(x, layer.weight.data, dout)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.weight.grad, ref_dw, rtol=1e-12, atol=1e-12)
    if bias:
        np.testing.assert_allclose(layer.bias.grad, ref_db, rtol=1e-12, atol=1e-12)
    else:
        assert layer.bias is None and [n for n, _ in layer.named_parameters()] == ["weight"]


def test_linear_float32_agrees_with_float64_definition():
    rng = np.random.default_rng(1)
    layer = nn.Linear(6, 4, rng=rng)
    x = rng.standard_normal((5, 6)).astype(np.float32)
    y = layer(x)
    assert y.dtype == np.float32
    ref = naive_linear(x.astype(np.float64), layer.weight.data.astype(np.float64), layer.bias.data.astype(np.float64))
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_linear_init_is_pytorch_default_uniform_and_seeded():
    a = nn.Linear(256, 120, rng=3)
    b = nn.Linear(256, 120, rng=3)
    bound = 1 / np.sqrt(256)
    assert a.weight.shape == (120, 256) and a.bias.shape == (120,)
    assert a.weight.dtype == np.float32
    assert np.abs(a.weight.data).max() <= bound and np.abs(a.bias.data).max() <= bound
    # Close to the bound at both ends: a uniform draw, not a narrower one.
    assert a.weight.data.max() > 0.95 * bound and a.weight.data.min() < -0.95 * bound
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    assert not np.array_equal(a.weight.data, nn.Linear(256, 120, rng=4).weight.data)


def test_gradients_accumulate_until_zero_grad():
    rng = np.random.default_rng(2)
    layer = nn.Linear(3, 2, dtype=np.float64, rng=rng)
    x, dout = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    layer(x)
    layer.backward(dout)
    once = layer.weight.grad.copy()
    layer(x)
    layer.backward(dout)
    np.testing.assert_allclose(layer.weight.grad, 2 * once)
    layer.zero_grad()
    assert not layer.weight.grad.any() and not layer.bias.grad.any()


@pytest.mark.parametrize("bad,error,words", [
    (np.zeros((2, 3, 1)), ValueError, "2-D"),
    (np.zeros((2, 4)), ValueError, "3 features"),
    (np.array([["a", "b", "c"]]), TypeError, "numeric"),
])
def test_linear_rejects_bad_input_naming_expected_and_actual(bad, error, words):
    with pytest.raises(error, match="Linear") as info:
        nn.Linear(3, 2)(bad)
    assert words in str(info.value)


def test_linear_rejects_wrong_dout_and_backward_before_forward():
    layer = nn.Linear(3, 2)
    with pytest.raises(ValueError, match="before forward"):
        layer.backward(np.zeros((1, 2)))
    layer(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"expected dout of shape \(4, 2\).*got \(4, 3\)"):
        layer.backward(np.zeros((4, 3)))


@pytest.mark.parametrize("shape", [(5,), (2, 3), (2, 3, 4, 5)])
def test_relu_matches_definition_with_zero_gradient_at_zero(shape):
    rng = np.random.default_rng(len(shape))
    x = rng.standard_normal(shape)
    x.reshape(-1)[0] = 0.0  # the kink itself
    dout = rng.standard_normal(shape)
    relu = nn.ReLU()
    y = relu(x)
    dx = relu.backward(dout)
    for i in np.ndindex(*shape):
        assert y[i] == (x[i] if x[i] > 0 else 0.0)
        assert dx[i] == (dout[i] if x[i] > 0 else 0.0)
    assert dx.reshape(-1)[0] == 0.0


def test_relu_keeps_float32_and_does_not_modify_its_input():
    x = np.array([-1.0, 2.0], dtype=np.float32)
    y = nn.ReLU()(x)
    assert y.dtype == np.float32 and x[0] == -1.0


def test_flatten_is_c_order_reshape_and_backward_restores_shape():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5)
    flat = nn.Flatten()
    y = flat(x)
    assert y.shape == (2, 60)
    assert y[1, 21] == x[1, 1, 0, 1]  # index 21 = 1*20 + 0*5 + 1
    dx = flat.backward(np.ones((2, 60)) * np.arange(60))
    assert dx.shape == x.shape and dx[1, 1, 0, 1] == 21
    with pytest.raises(ValueError, match=r"Flatten.*\(2, 60\)"):
        flat.backward(np.zeros((2, 59)))
