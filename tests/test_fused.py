"""The fused numba kernels against the unfused layers on the NumPy backend, forward and backward,
and LeNet5's fused path against its layer-by-layer path."""

import numpy as np
import pytest

import nn
from nn.activation import ReLU
from nn.backend import NUMBA_AVAILABLE
from nn.conv import Conv2d
from nn.linear import Linear
from nn.pool import MaxPool2d
from lenet.model import LeNet5

pytestmark = pytest.mark.skipif(not NUMBA_AVAILABLE, reason="numba not installed")
TOLERANCE = {np.float32: 1e-4, np.float64: 1e-12}

# (N, C, H, W), C_out, conv kernel, pool kernel, pool stride: LeNet's two stages, a non-5 kernel
# (the generic loops), overlapping pooling windows, non-square everything, and leftover rows.
CONV_POOL_GEOMETRIES = [
    ((3, 1, 28, 28), 6, 5, 2, 2),
    ((5, 6, 12, 12), 16, 5, 2, 2),
    ((2, 2, 9, 9), 3, 3, 3, 1),
    ((4, 3, 10, 11), 4, (2, 4), (3, 2), (2, 1)),
    ((1, 2, 7, 8), 2, 5, 2, 2),
    ((9, 1, 8, 8), 2, 5, 1, 1),  # enough images for the parallel drivers
    ((3, 8, 9, 9), 5, 3, 3, 1),  # window rows of 8 * 3 >= 16 numbers: the winners' path, overlapping windows
    ((2, 5, 10, 9), 3, (3, 4), 2, 2),  # the winners' path with channels padded from 5 to 8
]


def unfused_conv_relu_pool(conv, pool, x, dout, need_input_grad=True):
    relu = ReLU()
    with nn.use_backend("numpy"):
        y = pool(relu(conv(x)))
        dx = conv.backward(relu.backward(pool.backward(dout)), need_input_grad=need_input_grad)
    grads = conv.weight.grad.copy(), conv.bias.grad.copy()
    conv.zero_grad()
    return y, dx, grads


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, out_channels, kernel, pool_kernel, pool_stride", CONV_POOL_GEOMETRIES)
def test_conv_relu_pool_matches_the_three_layers(dtype, x_shape, out_channels, kernel, pool_kernel, pool_stride):
    from nn.ops import fused

    rng = np.random.default_rng(0)
    conv = Conv2d(x_shape[1], out_channels, kernel, dtype=dtype, rng=1)
    pool = MaxPool2d(pool_kernel, pool_stride)
    x = rng.standard_normal(x_shape).astype(dtype)
    out_shape = pool(ReLU()(conv(x))).shape
    dout = rng.standard_normal(out_shape).astype(dtype)
    expected_y, expected_dx, (expected_dw, expected_db) = unfused_conv_relu_pool(conv, pool, x, dout)

    y, argmax = fused.conv_relu_pool_forward(x, conv.weight.data, conv.bias.data, pool.kernel_size, pool.stride)
    dx = fused.conv_relu_pool_backward(dout, x, y, argmax, conv.weight.data, conv.weight.grad, conv.bias.grad,
                                       pool.kernel_size, pool.stride)
    tol = TOLERANCE[dtype]
    assert y.dtype == dx.dtype == dtype and y.shape == expected_y.shape and dx.shape == x.shape
    np.testing.assert_allclose(y, expected_y, rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, expected_dx, rtol=tol, atol=tol)
    np.testing.assert_allclose(conv.weight.grad, expected_dw, rtol=tol, atol=tol)
    np.testing.assert_allclose(conv.bias.grad, expected_db, rtol=tol, atol=tol)

    # Inference: the same output, no argmax kept; and the input gradient can be skipped.
    y_eval, no_argmax = fused.conv_relu_pool_forward(x, conv.weight.data, conv.bias.data, pool.kernel_size,
                                                     pool.stride, keep_argmax=False)
    assert no_argmax is None
    np.testing.assert_array_equal(y_eval, y)
    conv.zero_grad()
    assert fused.conv_relu_pool_backward(dout, x, y, argmax, conv.weight.data, conv.weight.grad, conv.bias.grad,
                                         pool.kernel_size, pool.stride, need_input_grad=False) is None
    np.testing.assert_allclose(conv.weight.grad, expected_dw, rtol=tol, atol=tol)


def test_conv_relu_pool_ties_negatives_and_nan_choose_the_winner_the_layers_choose():
    """All-negative windows, exact ties and NaN: ReLU then first maximum, as MaxPool2d(ReLU(.))."""
    from nn.ops import fused

    conv = Conv2d(1, 1, 1, dtype=np.float64, rng=0)
    conv.weight.data[...] = 1.0
    conv.bias.data[...] = 0.0
    pool = MaxPool2d(2)
    x = np.array([[[[-1.0, -2.0, 3.0, 3.0, np.nan, 1.0],
                    [-3.0, -4.0, 3.0, 0.0, 2.0, np.nan]]]])
    dout = np.array([[[[1.0, 2.0, 3.0]]]])
    with nn.use_backend("numpy"):
        relu = ReLU()
        expected = pool(relu(conv(x)))
        expected_argmax = pool._saved()["argmax"]
    y, argmax = fused.conv_relu_pool_forward(x, conv.weight.data, conv.bias.data, (2, 2), (2, 2))
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(argmax, expected_argmax)
    np.testing.assert_array_equal(y[0, 0, 0], [0.0, 3.0, 2.0])
    np.testing.assert_array_equal(argmax[0, 0, 0], [0, 0, 2])
    # The all-negative window passes no gradient; the others pass theirs to their winner.
    conv.zero_grad()
    dx = fused.conv_relu_pool_backward(dout, x, y, argmax, conv.weight.data, conv.weight.grad, conv.bias.grad,
                                       (2, 2), (2, 2))
    np.testing.assert_array_equal(dx[0, 0], [[0, 0, 2, 0, 0, 0], [0, 0, 0, 0, 3, 0]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("batch, in_features, out_features", [(1, 20, 7), (6, 256, 120), (13, 3, 5)])
def test_linear_matches_the_layers(dtype, relu, batch, in_features, out_features):
    from nn.ops import fused

    rng = np.random.default_rng(3)
    linear = Linear(in_features, out_features, dtype=dtype, rng=2)
    x = rng.standard_normal((batch, in_features)).astype(dtype)
    dout = rng.standard_normal((batch, out_features)).astype(dtype)
    with nn.use_backend("numpy"):
        layers = [linear, ReLU()] if relu else [linear]
        expected_y = x
        for layer in layers:
            expected_y = layer(expected_y)
        expected_dx = dout
        for layer in reversed(layers):
            expected_dx = layer.backward(expected_dx)
    expected_dw, expected_db = linear.weight.grad.copy(), linear.bias.grad.copy()
    linear.zero_grad()

    y = fused.linear_forward(x, linear.weight.data, linear.bias.data, relu=relu)
    dx = fused.linear_backward(dout, x, y, linear.weight.data, linear.weight.grad, linear.bias.grad, relu=relu)
    tol = TOLERANCE[dtype]
    assert y.dtype == dx.dtype == dtype
    np.testing.assert_allclose(y, expected_y, rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, expected_dx, rtol=tol, atol=tol)
    np.testing.assert_allclose(linear.weight.grad, expected_dw, rtol=tol, atol=tol)
    np.testing.assert_allclose(linear.bias.grad, expected_db, rtol=tol, atol=tol)


def lenet_step(model, x, labels, backend, need_input_grad=True):
    with nn.use_backend(backend):
        model.train()
        model.zero_grad()
        criterion = nn.CrossEntropyLoss()
        loss = criterion(model(x), labels)
        dx = model.backward(criterion.backward(), need_input_grad=need_input_grad)
    return loss, dx, [p.grad.copy() for p in model.parameters()]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch", [1, 7])
def test_lenet_fused_path_matches_the_layer_by_layer_path(dtype, batch):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((batch, 1, 28, 28)).astype(dtype)
    labels = rng.integers(0, 10, batch)
    model = LeNet5(seed=5, dtype=dtype)
    loss, dx, grads = lenet_step(model, x, labels, "numpy")
    fused_loss, fused_dx, fused_grads = lenet_step(model, x, labels, "numba")
    tol = TOLERANCE[dtype]
    assert fused_loss == pytest.approx(loss, rel=tol)
    np.testing.assert_allclose(fused_dx, dx, rtol=tol, atol=tol)
    for (name, _), got, want in zip(model.named_parameters(), fused_grads, grads):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol, err_msg=name)
    # Skipping the image gradient changes none of the parameter gradients.
    _, nothing, skipped_grads = lenet_step(model, x, labels, "numba", need_input_grad=False)
    assert nothing is None
    for got, want in zip(skipped_grads, fused_grads):
        np.testing.assert_array_equal(got, want)
    with nn.use_backend("numpy"):
        _, nothing, _ = lenet_step(model, x, labels, "numpy", need_input_grad=False)
    assert nothing is None
    model.eval()
    with nn.use_backend("numba"):
        fused_logits = model(x)
    with nn.use_backend("numpy"):
        logits = model(x)
    np.testing.assert_allclose(fused_logits, logits, rtol=tol, atol=tol)


def test_lenet_eval_forward_keeps_nothing_and_backward_then_fails():
    model = LeNet5(seed=0).eval()
    x = np.zeros((2, 1, 28, 28), dtype=np.float32)
    with nn.use_backend("numba"):
        before = {name: dict(vars(m)) for name, m in model.named_children()}
        model(x)
        assert "_cache" not in vars(model) and "_buffers" not in vars(model)
        assert {name: dict(vars(m)) for name, m in model.named_children()} == before
        with pytest.raises(nn.BackwardBeforeForwardError):
            model.backward(np.ones((2, 10), dtype=np.float32))


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_same_seed_same_training_bit_for_bit(backend):
    """Two runs of a few SGD steps with the same seed end with identical weights."""
    def run():
        model = LeNet5(seed=11)
        optimizer = nn.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
        rng = np.random.default_rng(12)
        criterion = nn.CrossEntropyLoss()
        with nn.use_backend(backend):
            for _ in range(3):
                x = rng.standard_normal((32, 1, 28, 28)).astype(np.float32)
                labels = rng.integers(0, 10, 32)
                criterion(model(x), labels)
                optimizer.zero_grad()
                model.backward(criterion.backward(), need_input_grad=False)
                optimizer.step()
        return model.state_dict()

    first, second = run(), run()
    for key in first:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_on_numba_matches_the_numpy_formulas(dtype, reduction):
    rng = np.random.default_rng(6)
    logits = (rng.standard_normal((9, 10)) * 5).astype(dtype)
    logits[0] = [1e3] + [0.0] * 9  # huge logits stay finite; a perfect prediction gives 0
    labels = rng.integers(0, 10, 9)
    labels[0] = 0
    results = {}
    for backend in ("numpy", "numba"):
        criterion = nn.CrossEntropyLoss(reduction)
        with nn.use_backend(backend):
            loss = criterion(logits, labels)
            grad = criterion.backward(np.asarray(2.0))
        results[backend] = loss, grad
    (loss, grad), (fused_loss, fused_grad) = results["numpy"], results["numba"]
    tol = TOLERANCE[dtype]
    assert fused_loss.dtype == fused_grad.dtype == dtype
    assert fused_loss == pytest.approx(loss, rel=tol)
    np.testing.assert_allclose(fused_grad, grad, rtol=tol, atol=tol)
    perfect = nn.CrossEntropyLoss()
    with nn.use_backend("numba"):
        zero = perfect(np.array([[1e3, 0.0]], dtype=dtype), np.array([0]))
    assert zero == 0.0 and not np.signbit(zero)


def test_training_gives_the_same_bits_on_one_thread_as_on_all():
    """Weight gradients are summed over images in a fixed order, whatever the threads: no dependence on them."""
    import numba

    rng = np.random.default_rng(7)
    x = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
    labels = rng.integers(0, 10, 64)
    parallel = lenet_step(LeNet5(seed=8), x, labels, "numba", need_input_grad=True)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)  # every kernel then takes its serial driver
    try:
        serial = lenet_step(LeNet5(seed=8), x, labels, "numba", need_input_grad=True)
    finally:
        numba.set_num_threads(threads)
    assert serial[0] == parallel[0]
    np.testing.assert_array_equal(serial[1], parallel[1])
    for got, want in zip(serial[2], parallel[2]):
        np.testing.assert_array_equal(got, want)


def test_concurrent_batch_inference_on_shared_model_matches_one_thread():
    """Batches big enough for the parallel kernels, from four threads at once (launches take turns)."""
    import threading

    model = LeNet5(seed=9).eval()
    rng = np.random.default_rng(9)
    batches = [rng.standard_normal((int(rng.integers(20, 80)), 1, 28, 28)).astype(np.float32) for _ in range(8)]
    expected = [model(b) for b in batches]  # the backend is global, not per thread: all use the default
    results = {}

    def worker(t):
        for i in range(len(batches)):
            j = (i + 3 * t) % len(batches)
            results[t, j] = model(batches[j])

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert len(results) == 4 * len(batches)
    for (t, j), got in results.items():
        np.testing.assert_array_equal(got, expected[j])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("momentum, weight_decay, nesterov",
                         [(0.0, 0.0, False), (0.9, 0.0, False), (0.9, 5e-4, True), (0.5, 1e-2, False), (0.0, 1e-3, False)])
def test_sgd_update_gives_the_bits_of_nn_optim_sgd(dtype, momentum, weight_decay, nesterov):
    from nn.ops import fused

    rng = np.random.default_rng(10)
    reference = nn.Parameter(rng.standard_normal((7, 5)).astype(dtype))
    optimizer = nn.optim.SGD([reference], lr=0.05, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    data, buffer = reference.data.copy(), np.empty_like(reference.data)
    for step in range(4):
        grad = rng.standard_normal((7, 5)).astype(dtype)
        reference.grad[...] = grad
        optimizer.step()
        fused.sgd_update(data, grad, buffer, 0.05, momentum, weight_decay, nesterov, first=step == 0)
        np.testing.assert_array_equal(data, reference.data)
        if momentum:
            np.testing.assert_array_equal(buffer, optimizer.momentum_buffers[0])
