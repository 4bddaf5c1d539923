"""Dropout, checked by its semantics (its random mask cannot match PyTorch's): zeros, kept values scaled by
1/(1 - p), the same mask in backward, the kept fraction, the identity in eval, and the seeded mask stream."""

import numpy as np
import pytest

import nn
from nn.backend import NUMBA_AVAILABLE, use_backend
from nn.module import BackwardBeforeForwardError
from tests.cross_check import on_one_thread_and_on_all
from tests.naive import naive_dropout_forward

BACKENDS = ["numpy", pytest.param("numba", marks=pytest.mark.skipif(not NUMBA_AVAILABLE, reason="numba not installed"))]


def documented_keep(seed, shape, p):
    """The mask stream the docstring promises: uniform float64 draws u of a fresh generator, keep = u >= p."""
    return np.random.default_rng(seed).random(shape) >= p


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("p", [0.0, 0.2, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("shape", [(4, 7), (2, 3, 5, 5)])
def test_forward_and_backward_match_the_naive_definition_with_the_documented_mask(backend, p, shape):
    x = np.random.default_rng(1).uniform(0.5, 2.0, shape)  # no zeros of its own: every 0 out is a drop
    dout = np.random.default_rng(2).standard_normal(shape)
    layer = nn.Dropout(p, rng=3)
    with use_backend(backend):
        y = layer(x)
        dx = layer.backward(dout)
    keep = documented_keep(3, shape, p)
    np.testing.assert_allclose(y, naive_dropout_forward(x, keep, p), rtol=1e-15, atol=0)
    # Backward multiplies by the very mask of the forward pass: the same zeros, the same scale.
    np.testing.assert_allclose(dx, naive_dropout_forward(dout, keep, p), rtol=1e-15, atol=0)
    assert y.shape == dx.shape == shape and y.dtype == dx.dtype == np.float64


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_zeros_and_kept_values_times_one_over_one_minus_p(p):
    x = np.random.default_rng(0).uniform(0.5, 2.0, (50, 40))
    layer = nn.Dropout(p, rng=1)
    y = layer(x)
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / (1 - p), rtol=1e-15)
    dx = layer.backward(np.ones_like(x))
    np.testing.assert_array_equal(dx != 0, kept)  # the same mask in backward
    np.testing.assert_allclose(dx[kept], 1 / (1 - p), rtol=1e-15)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_the_kept_fraction_is_one_minus_p(p):
    n = 200_000
    y = nn.Dropout(p, rng=4)(np.ones(n))
    kept = np.count_nonzero(y) / n
    sigma = np.sqrt(p * (1 - p) / n)  # binomial standard deviation of the fraction
    assert abs(kept - (1 - p)) < 5 * sigma
    assert abs(y.mean() - 1.0) < 5 * sigma / (1 - p)  # inverted dropout keeps the expectation


def test_eval_mode_is_the_identity_and_keeps_nothing():
    layer = nn.Dropout(0.5, rng=0).eval()
    x = np.random.default_rng(0).standard_normal((3, 4))
    np.testing.assert_array_equal(layer(x), x)
    with pytest.raises(BackwardBeforeForwardError):
        layer.backward(np.ones((3, 4)))
    # Eval draws nothing: back in training, the first mask is the seed's first.
    layer.train()
    np.testing.assert_array_equal(layer(np.ones((3, 4))) != 0, documented_keep(0, (3, 4), 0.5))


def test_each_forward_draws_a_new_mask_and_a_seed_repeats_the_sequence():
    x = np.ones((20, 20))
    a, b = nn.Dropout(0.5, rng=7), nn.Dropout(0.5, rng=7)
    first, second = a(x), a(x)
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(b(x), first)
    np.testing.assert_array_equal(b(x), second)


def test_the_mask_is_the_same_for_float32_and_float64():
    x = np.ones((6, 6))
    y32 = nn.Dropout(0.3, rng=5)(x.astype(np.float32))
    y64 = nn.Dropout(0.3, rng=5)(x)
    assert y32.dtype == np.float32
    np.testing.assert_array_equal(y32 != 0, y64 != 0)


@pytest.mark.skipif(not NUMBA_AVAILABLE, reason="numba not installed")
def test_masks_and_gradients_are_the_same_bits_on_one_thread_as_on_all():
    def run():
        rng = np.random.default_rng(0)
        model = nn.Sequential(nn.Linear(30, 50, rng=1), nn.ReLU(), nn.Dropout(0.4, rng=2), nn.Linear(50, 10, rng=3))
        x = rng.standard_normal((64, 30)).astype(np.float32)
        with use_backend("numba"):
            outs = [model(x) for _ in range(3)]
            dx = model.backward(np.ones((64, 10), dtype=np.float32))
        return outs + [dx] + [p.grad.copy() for p in model.parameters()]

    serial, parallel = on_one_thread_and_on_all(run)
    for got, want in zip(serial, parallel):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("p", [-0.1, 1.5, "0.5", True, None])
def test_a_probability_outside_zero_to_one_is_a_clear_error(p):
    with pytest.raises(ValueError, match=f"dropout probability has to be between 0 and 1, but got {p!r}"):
        nn.Dropout(p)


def test_backward_checks_dout_and_honours_need_input_grad():
    layer = nn.Dropout(0.5, rng=0)
    with pytest.raises(BackwardBeforeForwardError):
        layer.backward(np.ones((2, 3)))
    layer(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"expected dout of shape \(2, 3\)"):
        layer.backward(np.ones((3, 2)))
    assert layer.backward(np.ones((2, 3)), need_input_grad=False) is None


def test_repr_names_p():
    assert repr(nn.Dropout()) == "Dropout(p=0.5)"


def test_the_gradient_check_needs_the_same_mask_in_every_forward():
    """Without reseeding, each finite difference sees another mask and the check fails; with it, it passes."""
    from nn.gradient_check import SameMaskEveryForward
    x = np.random.default_rng(0).standard_normal((4, 6))
    (fresh_masks,) = nn.gradcheck(nn.Dropout(0.4, rng=0), x)
    (one_mask,) = nn.gradcheck(SameMaskEveryForward(nn.Dropout(0.4), seed=0), x)
    assert not fresh_masks.passed and one_mask.passed and one_mask.max_abs_err < 1e-8
