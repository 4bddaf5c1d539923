"""The numba backend's compiled batch norm and dropout stages (``nn.execution``) against the NumPy reference and PyTorch.

``Conv2d`` ``BatchNorm2d`` [``ReLU``] [``MaxPool2d``] runs as one ``ConvBatchNormStage``: in training
through ``nn.ops.norm_kernels``, in eval mode with the batch norm folded into the convolution. A
``Dropout`` after ``Linear`` [``ReLU``] runs inside the ``LinearStage``. Each test trains a few SGD
steps on both backends from the same seeds and compares every output, dL/dx, every gradient, the
running statistics and ``num_batches_tracked``, then the eval-mode output of the trained model (the
fold computed from the current parameters: never stale). In float64 the backends agree to 1e-12 and
match PyTorch to 1e-8; batch statistics and dropout masks are the same bits at 1 and 2 threads.
"""


import numpy as np
import pytest

import nn
from tests.cross_check import on_one_thread_and_on_all

STEPS = 3
BACKEND_TOLERANCE = 1e-12
TORCH_TOLERANCE = 1e-8


def relative_error(actual, expected):
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape
    return float(np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1e-300))


def conv_bn_model(affine=True, track_running_stats=True, relu=True, pool=True, momentum=0.1, dtype=np.float64,
                  conv_bias=False):
    """Conv2d, BatchNorm2d [ReLU] [MaxPool2d]. The convolution has no bias unless asked: in training the batch
    norm subtracts it again, and its gradient is 0 up to rounding, which no relative tolerance can compare."""
    rng = np.random.default_rng(0)
    layers = [nn.Conv2d(3, 6, 3, padding=1, bias=conv_bias, dtype=dtype, rng=rng),
              nn.BatchNorm2d(6, momentum=momentum, affine=affine, track_running_stats=track_running_stats, dtype=dtype)]
    layers += [nn.ReLU()] if relu else []
    layers += [nn.MaxPool2d(2)] if pool else []
    return nn.Sequential(*layers)


def dropout_model(p=0.5, dtype=np.float64):
    rng = np.random.default_rng(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(48, 32, dtype=dtype, rng=rng), nn.ReLU(), nn.Dropout(p, rng=5),
                         nn.Linear(32, 4, dtype=dtype, rng=rng))


def batch(shape, seed=1, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def train_and_record(model, backend, x, steps=STEPS):
    """Every step's output, dL/dx and gradients (L = sum(out * dout), a plain SGD step after each), then the state
    dict and the eval-mode output of the trained model: a dict of arrays keyed by what they are."""
    record = {}
    with nn.use_backend(backend):
        for step in range(steps):
            model.train()
            model.zero_grad()
            out = model(x)
            dout = batch(out.shape, seed=10 + step, dtype=out.dtype)
            record[f"{step}.out"] = np.array(out)
            record[f"{step}.dx"] = np.array(model.backward(dout))
            for name, p in model.named_parameters():
                record[f"{step}.{name}.grad"] = p.grad.copy()
                p.data -= 0.1 * p.grad
        record.update((f"state.{k}", np.array(v)) for k, v in model.state_dict().items())
        model.eval()
        record["eval"] = np.array(model(x))
    return record


def assert_same(actual, expected, tolerance):
    assert set(actual) == set(expected)
    for key, value in expected.items():
        if np.asarray(value).dtype.kind in "iu":  # num_batches_tracked: exact
            assert np.array_equal(actual[key], value), key
        else:
            assert relative_error(actual[key], value) <= tolerance, key


CONV_BN_CASES = [dict(), dict(relu=False), dict(pool=False), dict(relu=False, pool=False), dict(affine=False),
                 dict(track_running_stats=False), dict(affine=False, track_running_stats=False), dict(momentum=None)]
CASE_IDS = ["relu+pool", "pool", "relu", "bn-only", "affine=False", "track_running_stats=False", "neither",
            "momentum=None"]


def test_the_planner_fuses_conv_batchnorm_relu_pool_and_linear_relu_dropout():
    with nn.use_backend("numba"):
        assert [name for name, _ in conv_bn_model().named_stages()] == ["0+1+2+3"]
        assert [name for name, _ in dropout_model().named_stages()] == ["0", "1+2+3", "4"]


@pytest.mark.parametrize("case", CONV_BN_CASES, ids=CASE_IDS)
def test_conv_batchnorm_stage_matches_the_numpy_backend_through_training_and_eval(case):
    x = batch((4, 3, 8, 8))
    expected = train_and_record(conv_bn_model(**case), "numpy", x)
    actual = train_and_record(conv_bn_model(**case), "numba", x)
    assert_same(actual, expected, BACKEND_TOLERANCE)
    if case.get("track_running_stats", True):
        assert int(actual["state.1.num_batches_tracked"]) == STEPS


@pytest.mark.parametrize("case", CONV_BN_CASES, ids=CASE_IDS)
def test_conv_batchnorm_stage_matches_pytorch_in_float64(case):
    torch = pytest.importorskip("torch", reason="PyTorch is the reference here: pip install torch==2.13.0")
    model = conv_bn_model(**case)
    reference = torch.nn.Sequential(*[
        torch.nn.Conv2d(3, 6, 3, padding=1, bias=False), torch.nn.BatchNorm2d(6, momentum=case.get("momentum", 0.1),
                                                                   affine=case.get("affine", True),
                                                                   track_running_stats=case.get("track_running_stats",
                                                                                                True))]
        + ([torch.nn.ReLU()] if case.get("relu", True) else []) + ([torch.nn.MaxPool2d(2)] if case.get("pool", True)
                                                                   else [])).double()
    reference.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in model.state_dict().items()})
    x = batch((4, 3, 8, 8))
    actual = train_and_record(model, "numba", x)
    expected = {}
    tx = torch.from_numpy(x).requires_grad_()
    for step in range(STEPS):
        reference.train()
        reference.zero_grad()
        tx.grad = None
        out = reference(tx)
        out.backward(torch.from_numpy(batch(tuple(out.shape), seed=10 + step)))
        expected[f"{step}.out"], expected[f"{step}.dx"] = out.detach().numpy().copy(), tx.grad.numpy().copy()
        with torch.no_grad():
            for name, p in reference.named_parameters():
                expected[f"{step}.{name}.grad"] = p.grad.numpy().copy()
                p -= 0.1 * p.grad
    expected.update((f"state.{k}", v.numpy().copy()) for k, v in reference.state_dict().items())
    reference.eval()
    with torch.no_grad():
        expected["eval"] = reference(tx).numpy()
    assert_same(actual, expected, TORCH_TOLERANCE)


def test_the_eval_fold_follows_parameters_and_statistics_changed_after_training():
    model = conv_bn_model(conv_bias=True)
    x = batch((4, 3, 8, 8))
    train_and_record(model, "numba", x)
    bn = model[1]
    bn.running_mean += 0.5
    bn.running_var *= 2.0
    bn.weight.data *= -1.0
    model[0].weight.data += 0.25
    model[0].bias.data -= 0.5
    with nn.use_backend("numba"):
        folded = model(x)
    with nn.use_backend("numpy"):
        reference = model(x)
    assert relative_error(folded, reference) <= BACKEND_TOLERANCE


def test_a_frozen_batchnorm_in_a_training_model_runs_as_its_layers_do_on_both_backends():
    """Forward with the running statistics, which stay; backward then fails as the layer's own does (an eval-mode
    forward keeps nothing for backward), on both backends alike."""
    records = {}
    for backend in ("numpy", "numba"):
        model = conv_bn_model(conv_bias=True)
        with nn.use_backend(backend):
            model.train()
            model[1].eval()
            out = model(batch((4, 3, 8, 8)))
            with pytest.raises(nn.module.BackwardBeforeForwardError, match="BatchNorm2d"):
                model.backward(batch(out.shape, seed=10))
        records[backend] = np.array(out), int(model[1].num_batches_tracked)
    assert records["numba"][1] == records["numpy"][1] == 0
    assert relative_error(records["numba"][0], records["numpy"][0]) <= BACKEND_TOLERANCE


def test_float32_conv_batchnorm_agrees_with_the_numpy_backend():
    x = batch((4, 3, 8, 8), dtype=np.float32)
    expected = train_and_record(conv_bn_model(dtype=np.float32), "numpy", x)
    actual = train_and_record(conv_bn_model(dtype=np.float32), "numba", x)
    assert all(v.dtype == expected[k].dtype for k, v in actual.items())
    assert_same(actual, expected, 1e-5)


@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_fused_dropout_draws_the_reference_masks_and_matches_the_numpy_backend(p):
    x = batch((5, 3, 4, 4))
    expected = train_and_record(dropout_model(p), "numpy", x)
    actual = train_and_record(dropout_model(p), "numba", x)
    assert_same(actual, expected, BACKEND_TOLERANCE)
    # The masks are exact: a hidden unit dropped by one backend is dropped by the other.
    for step in range(STEPS):
        dropped = {}
        for backend in ("numpy", "numba"):
            model = dropout_model(p)
            with nn.use_backend(backend):
                for _ in range(step + 1):
                    hidden = model[1](model[0](x))
                    out = model[3](model[2](hidden))
            dropped[backend] = (out == 0) & (hidden > 0)
        assert np.array_equal(dropped["numpy"], dropped["numba"])


def test_fused_dropout_is_the_identity_in_eval_mode():
    x = batch((5, 3, 4, 4))
    model = dropout_model(0.5).eval()
    with nn.use_backend("numba"):
        fused = model(x)
    with nn.use_backend("numpy"):
        assert np.array_equal(fused, model(x))


def test_batch_statistics_gradients_and_dropout_masks_are_the_same_bits_at_any_thread_count():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 3, 28, 28))  # large enough for the parallel kernels (nn.ops.parallel.drive)

    def run():
        model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, dtype=np.float64, rng=np.random.default_rng(0)),
                              nn.BatchNorm2d(16, dtype=np.float64), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                              nn.Linear(16 * 14 * 14, 64, dtype=np.float64, rng=np.random.default_rng(1)), nn.ReLU(),
                              nn.Dropout(0.5, rng=3), nn.Linear(64, 10, dtype=np.float64, rng=np.random.default_rng(2)))
        return train_and_record(model, "numba", x, steps=2)

    serial, parallel = on_one_thread_and_on_all(run)
    for key, value in serial.items():
        assert np.array_equal(value, parallel[key]), key


def test_the_stage_names_the_batchnorm_on_a_channel_mismatch_and_a_single_value_per_channel():
    model = nn.Sequential(nn.Conv2d(3, 6, 3, dtype=np.float64), nn.BatchNorm2d(5, dtype=np.float64))
    with nn.use_backend("numba"), pytest.raises(ValueError, match="BatchNorm2d: expected input with 5 channels"):
        model(batch((2, 3, 8, 8)))
    model = conv_bn_model(pool=False)
    with nn.use_backend("numba"), pytest.raises(ValueError, match="BatchNorm2d: expected more than 1 value"):
        model(batch((1, 3, 1, 1)))
