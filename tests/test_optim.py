"""SGD against its closed-form update, written out step by step."""

import numpy as np
import pytest

import nn
from nn.optim import SGD


def run_three_steps(lr, momentum, weight_decay, nesterov, dtype=np.float64):
    p = nn.Parameter(np.array([1.0, -2.0, 0.5], dtype=dtype))
    grads = [np.array([0.1, 0.2, -0.3]), np.array([-0.4, 0.0, 0.5]), np.array([0.3, -0.1, 0.2])]
    opt = SGD([p], lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    history = []
    for g in grads:
        opt.zero_grad()
        p.grad += g.astype(p.dtype)
        opt.step()
        history.append(p.data.copy())
    return grads, history


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("momentum,weight_decay,nesterov", [
    (0.0, 0.0, False), (0.9, 0.0, False), (0.9, 0.01, False), (0.9, 5e-4, True), (0.5, 0.1, True), (0.0, 0.1, False),
])
def test_three_steps_match_closed_form(momentum, weight_decay, nesterov, backend):
    lr = 0.1
    with nn.use_backend(backend):
        grads, history = run_three_steps(lr, momentum, weight_decay, nesterov)
    p = np.array([1.0, -2.0, 0.5])
    buf = None
    for g, got in zip(grads, history):
        d = g + weight_decay * p
        if momentum:
            buf = d.copy() if buf is None else momentum * buf + d
            d = d + momentum * buf if nesterov else buf
        p = p - lr * d
        np.testing.assert_allclose(got, p, rtol=1e-14)


def test_plain_sgd_first_step_by_hand():
    _, history = run_three_steps(0.1, 0.0, 0.0, False)
    np.testing.assert_allclose(history[0], [1.0 - 0.01, -2.0 - 0.02, 0.5 + 0.03])


def test_momentum_second_step_by_hand():
    # buf1 = g1 = 0.1; p1 = 1 - 0.01 = 0.99; buf2 = 0.9*0.1 + (-0.4) = -0.31; p2 = 0.99 + 0.031
    _, history = run_three_steps(0.1, 0.9, 0.0, False)
    assert history[1][0] == pytest.approx(1.021)


@pytest.mark.parametrize("kwargs,words", [
    ({"lr": 0.0}, "lr"), ({"lr": -1.0}, "lr"), ({"lr": float("nan")}, "lr"),
    ({"lr": 0.1, "momentum": 1.0}, "momentum"), ({"lr": 0.1, "momentum": -0.1}, "momentum"),
    ({"lr": 0.1, "nesterov": True}, "nesterov"), ({"lr": 0.1, "weight_decay": -1.0}, "weight_decay"),
])
def test_bad_hyperparameters_are_rejected(kwargs, words):
    with pytest.raises(ValueError, match=words):
        SGD([nn.Parameter(np.zeros(2))], **kwargs)


@pytest.mark.parametrize("momentum,weight_decay,nesterov", [(0.0, 0.0, False), (0.9, 5e-4, True), (0.9, 0.1, False)])
def test_compiled_update_equals_the_numpy_lines_bit_for_bit_in_float32(momentum, weight_decay, nesterov):
    runs = {}
    for backend in ("numpy", "numba"):
        with nn.use_backend(backend):
            runs[backend] = run_three_steps(0.05, momentum, weight_decay, nesterov, dtype=np.float32)[1]
    for a, b in zip(runs["numpy"], runs["numba"]):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)


def test_a_non_contiguous_parameter_is_still_updated_in_place():
    p = nn.Parameter(np.zeros((4, 4), dtype=np.float32))
    p.data = p.data.T  # a view in Fortran order: the compiled path must not update a copy
    p.grad = np.ones_like(p.data)
    with nn.use_backend("numba"):
        SGD([p], lr=0.5).step()
    np.testing.assert_array_equal(p.data, -0.5)


def test_state_dict_round_trip_continues_identically():
    def make():
        return nn.Parameter(np.array([1.0, 2.0])), np.array([0.5, -0.5])
    p1, g = make()
    opt1 = SGD([p1], lr=0.1, momentum=0.9)
    p1.grad[:] = g
    opt1.step()
    p2 = nn.Parameter(p1.data)
    opt2 = SGD([p2], lr=0.1, momentum=0.9)
    opt2.load_state_dict(opt1.state_dict())
    for p, opt in ((p1, opt1), (p2, opt2)):
        p.grad[:] = g
        opt.step()
    np.testing.assert_array_equal(p1.data, p2.data)
    with pytest.raises(ValueError, match="expected shape"):
        opt2.load_state_dict({"momentum_buffer.0": np.zeros(3)})
