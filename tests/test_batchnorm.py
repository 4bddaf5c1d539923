"""BatchNorm1d and BatchNorm2d: against the naive graph-by-graph loops and PyTorch in float64 (forward, every
gradient, running statistics), on both backends; eval mode; nn.save/nn.load of the running statistics."""

import numpy as np
import pytest

import nn
from nn.backend import NUMBA_AVAILABLE, use_backend
from nn.module import BackwardBeforeForwardError
from tests.cross_check import on_one_thread_and_on_all, torch_output_and_input_grad
from tests.naive import naive_batchnorm_backward, naive_batchnorm_forward, naive_batchnorm_statistics

BACKENDS = ["numpy", pytest.param("numba", marks=pytest.mark.skipif(not NUMBA_AVAILABLE, reason="numba not installed"))]

# (layer class, input shape)
GEOMETRIES = [
    (nn.BatchNorm1d, (6, 3)),          # (N, C): a Linear's output
    (nn.BatchNorm1d, (4, 3, 7)),       # (N, C, L)
    (nn.BatchNorm2d, (4, 3, 5, 5)),    # (N, C, H, W): a convolution's output
    (nn.BatchNorm2d, (2, 2, 1, 1)),    # the smallest batch that has a variance: two values per channel
]
SETTINGS = [{}, {"momentum": None}, {"affine": False}, {"track_running_stats": False}, {"eps": 0.5, "momentum": 0.3}]


def geometry_id(geometry):
    cls, shape = geometry
    return f"{cls.__name__}{shape}"


def random_affine(layer, rng):
    """Weights and biases away from their 1 and 0 init, so a swapped or missing term shows."""
    if layer.affine:
        layer.weight.data[...] = rng.uniform(0.5, 2.0, layer.num_features) * rng.choice([-1, 1], layer.num_features)
        layer.bias.data[...] = rng.standard_normal(layer.num_features)
    return layer


def batches(shape, count, seed):
    rng = np.random.default_rng(seed)
    return [3 * rng.standard_normal(shape) + rng.standard_normal(shape[1]).reshape((1, -1) + (1,) * (len(shape) - 2))
            for _ in range(count)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=geometry_id)
@pytest.mark.parametrize("affine", [True, False])
def test_training_forward_and_backward_match_the_naive_graph(geometry, affine, backend):
    cls, shape = geometry
    rng = np.random.default_rng(0)
    layer = random_affine(cls(shape[1], affine=affine, dtype=np.float64), rng)
    (x,) = batches(shape, 1, seed=1)
    dout = rng.standard_normal(shape)
    with use_backend(backend):
        y = layer(x)
        dx = layer.backward(dout)
    gamma = layer.weight.data if affine else np.ones(shape[1])
    beta = layer.bias.data if affine else np.zeros(shape[1])
    dx_ref, dgamma_ref, dbeta_ref = naive_batchnorm_backward(x, dout, gamma, layer.eps)
    assert y.shape == dx.shape == shape
    np.testing.assert_allclose(y, naive_batchnorm_forward(x, gamma, beta, layer.eps), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-10, atol=1e-12)
    if affine:
        np.testing.assert_allclose(layer.weight.grad, dgamma_ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(layer.bias.grad, dbeta_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=geometry_id)
@pytest.mark.parametrize("momentum", [0.1, 0.7, None])
def test_running_statistics_follow_pytorchs_rule_with_the_unbiased_variance(geometry, momentum):
    cls, shape = geometry
    layer = cls(shape[1], momentum=momentum, dtype=np.float64)
    mean, var = np.zeros(shape[1]), np.ones(shape[1])
    for k, x in enumerate(batches(shape, 4, seed=2), start=1):
        layer(x)
        batch_mean, _, unbiased_var = naive_batchnorm_statistics(x)
        factor = 1 / k if momentum is None else momentum  # None: the cumulative average
        mean = (1 - factor) * mean + factor * batch_mean
        var = (1 - factor) * var + factor * unbiased_var
        np.testing.assert_allclose(layer.running_mean, mean, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(layer.running_var, var, rtol=1e-13, atol=1e-14)
        assert layer.num_batches_tracked == k and layer.num_batches_tracked.dtype == np.int64


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=geometry_id)
def test_eval_normalizes_with_the_running_statistics_and_changes_nothing(geometry, backend):
    cls, shape = geometry
    layer = random_affine(cls(shape[1], dtype=np.float64), np.random.default_rng(3))
    train_x, eval_x = batches(shape, 2, seed=3)
    with use_backend(backend):
        layer(train_x)
        layer.eval()
        state = {k: v.copy() for k, v in layer.state_dict().items()}
        y = layer(eval_x)
    expected = naive_batchnorm_forward(eval_x, layer.weight.data, layer.bias.data, layer.eps,
                                       mean=layer.running_mean, var=layer.running_var)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    for key, value in layer.state_dict().items():
        np.testing.assert_array_equal(value, state[key], err_msg=key)
    with pytest.raises(BackwardBeforeForwardError):
        layer.backward(np.ones(shape))


def test_without_running_statistics_eval_uses_the_batch_and_there_are_no_buffers():
    layer = nn.BatchNorm2d(2, track_running_stats=False, dtype=np.float64)
    x = batches((3, 2, 4, 4), 1, seed=4)[0]
    y_train = layer(x)
    np.testing.assert_array_equal(layer.eval()(x), y_train)
    assert list(layer.state_dict()) == ["weight", "bias"] and layer.running_mean is None


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=geometry_id)
@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()) or "default")
def test_matches_torch_in_float64(geometry, settings, backend):
    """Three training steps (output, dL/dx, dL/dweight, dL/dbias, the running statistics), then eval."""
    torch = pytest.importorskip("torch")
    cls, shape = geometry
    layer = random_affine(cls(shape[1], dtype=np.float64, **settings), np.random.default_rng(5))
    reference = getattr(torch.nn, cls.__name__)(shape[1], **settings).double()
    with torch.no_grad():
        for name, value in layer.state_dict().items():
            getattr(reference, name).copy_(torch.from_numpy(np.asarray(value)))
    rng = np.random.default_rng(6)
    *train, test = batches(shape, 4, seed=6)
    for x in train:
        dout = rng.standard_normal(shape)
        layer.zero_grad()
        reference.zero_grad()
        with use_backend(backend):
            y = layer(x)
            dx = layer.backward(dout)
        y_torch, dx_torch = torch_output_and_input_grad(reference, x, dout)
        np.testing.assert_allclose(y, y_torch, rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(dx, dx_torch, rtol=1e-8, atol=1e-12)
        for name, p in layer.named_parameters():
            np.testing.assert_allclose(p.grad, getattr(reference, name).grad.numpy(), rtol=1e-8, atol=1e-12)
        torch_state = reference.state_dict()
        assert list(layer.state_dict()) == list(torch_state)
        for name, value in layer.state_dict().items():
            np.testing.assert_allclose(value, torch_state[name].numpy(), rtol=1e-8, atol=1e-12, err_msg=name)
    layer.eval()
    reference.eval()
    with use_backend(backend):
        y = layer(test)
    np.testing.assert_allclose(y, reference(torch.from_numpy(test)).detach().numpy(), rtol=1e-8, atol=1e-12)


def test_running_statistics_survive_nn_save_and_nn_load(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 3, 3, rng=0), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                          nn.Linear(3 * 4 * 4, 5, rng=1), nn.BatchNorm1d(5))
    for x in batches((8, 1, 6, 6), 3, seed=7):
        model(x.astype(np.float32))
    nn.save(model, tmp_path / "bn.npz")
    state, _ = nn.load(tmp_path / "bn.npz")
    assert [k for k in state if k.startswith("1.")] == ["1.weight", "1.bias", "1.running_mean", "1.running_var",
                                                         "1.num_batches_tracked"]
    assert state["1.num_batches_tracked"].dtype == np.int64 and state["1.num_batches_tracked"] == 3
    fresh = nn.Sequential(nn.Conv2d(1, 3, 3, rng=2), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                          nn.Linear(3 * 4 * 4, 5, rng=3), nn.BatchNorm1d(5))
    fresh.load_state_dict(state)
    assert not np.all(fresh[1].running_mean == 0)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(fresh.state_dict()[key], value, err_msg=key)
    x = batches((4, 1, 6, 6), 1, seed=8)[0].astype(np.float32)
    np.testing.assert_array_equal(fresh.eval()(x), model.eval()(x))


def test_astype_converts_the_running_statistics_but_not_the_counter():
    layer = nn.BatchNorm1d(4)
    layer(batches((5, 4), 1, seed=9)[0])
    layer.astype(np.float64)
    assert layer.running_mean.dtype == layer.running_var.dtype == layer.weight.dtype == np.float64
    assert layer.num_batches_tracked.dtype == np.int64 and layer.num_batches_tracked == 1


def test_training_normalizes_each_channel_to_mean_0_and_variance_1():
    x = batches((16, 3, 4, 4), 1, seed=10)[0]
    y = nn.BatchNorm2d(3, eps=1e-12, dtype=np.float64)(x)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, rtol=1e-9)


@pytest.mark.skipif(not NUMBA_AVAILABLE, reason="numba not installed")
def test_statistics_and_gradients_are_the_same_bits_on_one_thread_as_on_all():
    def run():
        model = nn.Sequential(nn.Conv2d(2, 8, 3, rng=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                              nn.Linear(8 * 7 * 7, 10, rng=2), nn.BatchNorm1d(10))
        x = np.random.default_rng(0).standard_normal((64, 2, 16, 16)).astype(np.float32)
        with use_backend("numba"):
            out = model(x)
            dx = model.backward(np.ones((64, 10), dtype=np.float32))
        return [out, dx] + [p.grad.copy() for p in model.parameters()] + model.buffers()

    serial, parallel = on_one_thread_and_on_all(run)
    for got, want in zip(serial, parallel):
        np.testing.assert_array_equal(got, want)


def test_misuse_is_a_clear_error():
    with pytest.raises(ValueError, match="expected 4D input, got 2D input of shape"):
        nn.BatchNorm2d(3)(np.ones((2, 3)))
    with pytest.raises(ValueError, match="expected 2D or 3D input, got 4D"):
        nn.BatchNorm1d(3)(np.ones((2, 3, 1, 1)))
    with pytest.raises(ValueError, match=r"expected input with 3 channels on axis 1, got shape \(2, 4\)"):
        nn.BatchNorm1d(3)(np.ones((2, 4)))
    with pytest.raises(ValueError, match="expected more than 1 value per channel when training"):
        nn.BatchNorm1d(3)(np.ones((1, 3)))
    nn.BatchNorm1d(3).eval()(np.ones((1, 3)))  # one value per channel is fine in eval
    with pytest.raises(ValueError, match="num_features must be a positive int"):
        nn.BatchNorm2d(0)
    with pytest.raises(ValueError, match="momentum must be a number in"):
        nn.BatchNorm2d(3, momentum=1.5)
    with pytest.raises(ValueError, match="eps must be a positive number"):
        nn.BatchNorm2d(3, eps=0)
    layer = nn.BatchNorm1d(3)
    with pytest.raises(BackwardBeforeForwardError):
        layer.backward(np.ones((2, 3)))
    layer(np.arange(6.0).reshape(2, 3))
    with pytest.raises(ValueError, match=r"expected dout of shape \(2, 3\)"):
        layer.backward(np.ones((3, 2)))
    assert layer.backward(np.ones((2, 3)), need_input_grad=False) is None


def test_repr_reads_like_pytorch():
    assert repr(nn.BatchNorm2d(3)).splitlines()[0] == \
        "BatchNorm2d(3, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True"


@pytest.mark.skipif(not NUMBA_AVAILABLE, reason="numba not installed")
@pytest.mark.parametrize("track_running_stats", [True, False])
def test_a_large_eval_batch_gives_on_numba_what_the_numpy_reference_gives(track_running_stats):
    """Strided convolutions run on BLAS, where the execution layer slices eval batches of per-sample layers:
    without running statistics batch norm mixes the batch's samples and must get the whole batch."""
    model = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, rng=0),
                          nn.BatchNorm2d(4, track_running_stats=track_running_stats), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 7 * 7, 3, rng=1))
    x = np.random.default_rng(0).standard_normal((200, 1, 16, 16)).astype(np.float32)
    model(x)  # one training step of statistics
    model.eval()
    with use_backend("numpy"):
        expected = model(x)
    with use_backend("numba"):
        got = model(x)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
