"""Softmax cross-entropy against its definition, computed term by term in float64."""

import math

import numpy as np
import pytest

import nn


def naive_cross_entropy(z, labels, reduction="mean"):
    n, c = z.shape
    total = 0.0
    grad = np.zeros_like(z)
    for i in range(n):
        denom = sum(math.exp(z[i, j]) for j in range(c))
        total += -math.log(math.exp(z[i, labels[i]]) / denom)
        for j in range(c):
            grad[i, j] = math.exp(z[i, j]) / denom - (1.0 if j == labels[i] else 0.0)
    if reduction == "mean":
        return total / n, grad / n
    return total, grad


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("n,c,reduction", [(1, 2, "mean"), (5, 10, "mean"), (7, 3, "sum"), (64, 10, "mean")])
def test_loss_and_gradient_match_definition(n, c, reduction, backend):
    rng = np.random.default_rng(n + c)
    z = rng.standard_normal((n, c)) * 3
    labels = rng.integers(0, c, n)
    crit = nn.CrossEntropyLoss(reduction)
    with nn.use_backend(backend):
        loss = crit(z, labels)
        grad, scaled = crit.backward(), crit.backward(2.5)
    ref_loss, ref_grad = naive_cross_entropy(z, labels, reduction)
    assert np.ndim(loss) == 0
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(scaled, 2.5 * ref_grad, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_huge_logits_stay_finite(backend):
    crit = nn.CrossEntropyLoss()
    z = np.array([[1e3, 0.0, -1e3], [0.0, 1e3, 999.0]], dtype=np.float32)
    with nn.use_backend(backend):
        loss = crit(z, np.array([0, 2]))
        grad = crit.backward()
    assert np.isfinite(loss)
    assert loss == pytest.approx((0.0 + math.log1p(math.exp(-1.0)) + 1.0) / 2, rel=1e-5)
    assert np.all(np.isfinite(grad))
    assert np.all(np.isfinite(nn.softmax(z))) and np.all(np.isfinite(nn.log_softmax(z)))


def test_softmax_rows_sum_to_one_and_log_softmax_is_its_log():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((4, 10))
    p = nn.softmax(z)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(nn.log_softmax(z), np.log(p), rtol=1e-12)
    manual = np.exp(z[0]) / np.exp(z[0]).sum()
    np.testing.assert_allclose(p[0], manual, rtol=1e-12)


def test_float32_logits_give_float32_loss_and_gradient():
    crit = nn.CrossEntropyLoss()
    loss = crit(np.zeros((2, 3), dtype=np.float32), np.array([0, 1]))
    assert loss.dtype == np.float32 and crit.backward().dtype == np.float32
    assert loss == pytest.approx(math.log(3), rel=1e-6)


@pytest.mark.parametrize("labels,error,words", [
    (np.array([0, 3]), ValueError, "[0, 3)"),
    (np.array([-1, 0]), ValueError, "[0, 3)"),
    (np.array([0, 1, 2]), ValueError, "(2,)"),
    (np.array([0.0, 1.0]), TypeError, "integer"),
    (np.array([[0], [1]]), ValueError, "(2,)"),
])
def test_bad_labels_are_rejected_with_expected_and_actual(labels, error, words):
    with pytest.raises(error, match="CrossEntropyLoss") as info:
        nn.CrossEntropyLoss()(np.zeros((2, 3)), labels)
    assert words in str(info.value)


def test_bad_logits_and_call_order_are_rejected():
    crit = nn.CrossEntropyLoss()
    with pytest.raises(ValueError, match="before forward"):
        crit.backward()
    with pytest.raises(ValueError, match="2-D"):
        crit(np.zeros((2, 3, 4)), np.array([0, 1]))
    with pytest.raises(ValueError, match="N, C >= 1"):
        crit(np.zeros((0, 3)), np.array([], dtype=int))
    with pytest.raises(ValueError, match="reduction"):
        nn.CrossEntropyLoss("max")
