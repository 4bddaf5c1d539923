"""The numba backend's compiled stages against the NumPy layers run one by one (which test_conv,
test_pool and test_linear check against naive loops): kernels, fused stages, composed networks."""

import numpy as np
import pytest

import nn
from nn.activation import ReLU
from nn.backend import NUMBA_AVAILABLE
from nn.conv import Conv2d
from nn.flatten import Flatten
from nn.linear import Linear
from nn.pool import MaxPool2d
from nn.sequential import Sequential
from lenet.model import LeNet5
from nn.execution import planner
from nn.execution.stages import ConvStage, GemmConvStage, LinearStage

pytestmark = pytest.mark.skipif(not NUMBA_AVAILABLE, reason="numba not installed")
TOLERANCE = {np.float32: 1e-4, np.float64: 1e-12}

# (N, C, H, W), C_out, conv kernel, stride, padding, pool kernel, pool stride (None: no pooling).
# LeNet's two stages, non-5 kernels (the generic loops), strides and padding, overlapping pooling
# windows, non-square everything, leftover rows, batch 1, enough images for the parallel drivers,
# window rows (C * kw) on both sides of WINNER_MIN_ROW, so both backward paths are covered, and
# maps swept image by image and in chunks of images (conv_kernels.IMAGE_BY_IMAGE_JUNK).
CONV_STAGE_GEOMETRIES = [
    ((3, 1, 28, 28), 6, 5, 1, 0, 2, 2),
    ((5, 6, 12, 12), 16, 5, 1, 0, 2, 2),
    ((2, 2, 9, 9), 3, 3, 1, 0, 3, 1),
    ((4, 3, 10, 11), 4, (2, 4), 1, 0, (3, 2), (2, 1)),
    ((1, 2, 7, 8), 2, 5, 1, 0, 2, 2),
    ((9, 1, 8, 8), 2, 5, 1, 0, 1, 1),
    ((3, 8, 9, 9), 5, 3, 1, 0, 3, 1),
    ((2, 5, 10, 9), 3, (3, 4), 1, 0, 2, 2),
    ((3, 1, 12, 12), 4, 5, 1, 2, 2, 2),  # padding (LeNet's classic 32x32 geometry, smaller)
    ((2, 1, 11, 13), 3, 3, 2, 1, None, None),  # strided, padded, no pooling
    ((9, 16, 7, 7), 8, 3, 2, 1, None, None),  # the same with long rows (winners' path), parallel drivers
    ((2, 3, 12, 10), 4, (3, 2), (2, 3), (1, 2), 2, 1),  # strides and padding per axis, overlapping pool
    ((1, 8, 11, 11), 6, 3, (1, 2), 1, 3, 2),  # long rows, horizontal stride only, overlapping pool
    ((2, 1, 14, 14), 8, 5, 1, 0, 3, 2),  # MaxPool2d(3, stride=2) after a conv
    ((1, 32, 6, 6), 16, 3, 1, 1, 2, 2),  # wide channels
    # Junk rows under IMAGE_BY_IMAGE_JUNK: the forward sweeps chunks of several images (a last chunk of one).
    ((11, 2, 30, 12), 3, 3, 1, 0, (1, 2), (1, 2)),  # 3x3 kernels (all nine taps in one expression)
    ((11, 3, 30, 30), 4, 3, 2, 1, None, None),  # 3x3 stride 2: phases with 2x2 sub-kernels
]


def unfused_stage(conv, relu, pool, x, dout, need_input_grad=True):
    """The layers one by one on the NumPy backend: output, dx and (weight grad, bias grad)."""
    layers = [m for m in (conv, relu, pool) if m is not None]
    with nn.use_backend("numpy"):
        y = x
        for layer in layers:
            y = layer(y)
        d = dout
        for layer in reversed(layers[1:]):
            d = layer.backward(d)
        dx = conv.backward(d, need_input_grad=need_input_grad)
    grads = conv.weight.grad.copy(), conv.bias.grad.copy()
    conv.zero_grad()
    return y, dx, grads


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("with_relu", [True, False])
@pytest.mark.parametrize("x_shape, out_channels, kernel, stride, padding, pool_kernel, pool_stride",
                         CONV_STAGE_GEOMETRIES)
def test_conv_stage_matches_the_layers_one_by_one(dtype, with_relu, x_shape, out_channels, kernel, stride, padding,
                                                  pool_kernel, pool_stride):
    rng = np.random.default_rng(0)
    conv = Conv2d(x_shape[1], out_channels, kernel, stride=stride, padding=padding, dtype=dtype, rng=1)
    relu = ReLU() if with_relu else None
    pool = None if pool_kernel is None else MaxPool2d(pool_kernel, pool_stride)
    x = rng.standard_normal(x_shape).astype(dtype)
    with nn.use_backend("numpy"):
        out_shape = Sequential(*[m for m in (conv, relu, pool) if m is not None])(x).shape
    dout = rng.standard_normal(out_shape).astype(dtype)
    expected_y, expected_dx, (expected_dw, expected_db) = unfused_stage(conv, relu, pool, x, dout)

    stage = ConvStage(conv, relu, pool)
    y, saved = stage.forward(x, training=True)
    dx = stage.backward(dout, saved, need_input_grad=True)
    tol = TOLERANCE[dtype]
    assert y.dtype == dx.dtype == dtype and y.shape == expected_y.shape and dx.shape == x.shape
    np.testing.assert_allclose(y, expected_y, rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, expected_dx, rtol=tol, atol=tol)
    np.testing.assert_allclose(conv.weight.grad, expected_dw, rtol=tol, atol=tol)
    np.testing.assert_allclose(conv.bias.grad, expected_db, rtol=tol, atol=tol)

    # Inference: the same output, nothing saved; and the input gradient can be skipped.
    y_eval, nothing = stage.forward(x, training=False)
    assert nothing is None
    np.testing.assert_array_equal(y_eval, y)
    conv.zero_grad()
    assert stage.backward(dout, saved, need_input_grad=False) is None
    np.testing.assert_allclose(conv.weight.grad, expected_dw, rtol=tol, atol=tol)


def test_conv_stage_ties_negatives_and_nan_choose_the_winner_the_layers_choose():
    """All-negative windows, exact ties and NaN: ReLU then first maximum, as MaxPool2d(ReLU(.))."""
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
    stage = ConvStage(conv, ReLU(), pool)
    y, saved = stage.forward(x, training=True)
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(y[0, 0, 0], [0.0, 3.0, 2.0])
    np.testing.assert_array_equal(saved["argmax"][0, 0, 0], [0, 0, 2])
    # The all-negative window passes no gradient; the others pass theirs to their winner.
    conv.zero_grad()
    dx = stage.backward(dout, saved, need_input_grad=True)
    np.testing.assert_array_equal(dx[0, 0], [[0, 0, 2, 0, 0, 0], [0, 0, 0, 0, 3, 0]])


def test_conv_stage_without_relu_lets_the_first_nan_win_as_max_pool_does():
    conv = Conv2d(1, 1, 1, dtype=np.float64, rng=0)
    conv.weight.data[...] = 1.0
    conv.bias.data[...] = 0.0
    pool = MaxPool2d(2)
    x = np.array([[[[-1.0, -2.0, 3.0, np.nan], [-3.0, -4.0, np.nan, 5.0]]]])
    with nn.use_backend("numpy"):
        expected = pool(conv(x))
        expected_argmax = pool.saved()["argmax"]
    y, saved = ConvStage(conv, None, pool).forward(x, training=True)
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(saved["argmax"], expected_argmax)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("path", ["compiled loops", "BLAS"])
@pytest.mark.parametrize("batch, in_features, out_features", [(1, 20, 7), (6, 256, 120), (13, 3, 5)])
def test_linear_stage_matches_the_layers(dtype, relu, path, batch, in_features, out_features):
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

    stage = LinearStage(linear, ReLU() if relu else None, blas=path == "BLAS")
    y, saved = stage.forward(x, training=True)
    dx = stage.backward(dout, saved, need_input_grad=True)
    tol = TOLERANCE[dtype]
    assert y.dtype == dx.dtype == dtype
    np.testing.assert_allclose(y, expected_y, rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, expected_dx, rtol=tol, atol=tol)
    np.testing.assert_allclose(linear.weight.grad, expected_dw, rtol=tol, atol=tol)
    np.testing.assert_allclose(linear.bias.grad, expected_db, rtol=tol, atol=tol)
    assert stage.backward(dout, saved, need_input_grad=False) is None


def composed_networks(dtype, seed=0):
    """Networks of every stage kind: LeNet5 itself, LeNet-like padded, strided (on BLAS) with and without pooling,
    overlapping pooling, wide channels, a bare MLP, lone ReLU/MaxPool2d, layers without bias, a
    nested Sequential."""
    def conv(*args, **kwargs):
        return Conv2d(*args, dtype=dtype, rng=seed, **kwargs)

    def linear(*args, **kwargs):
        return Linear(*args, dtype=dtype, rng=seed, **kwargs)

    return {
        "lenet5": ((1, 28, 28), LeNet5(seed=seed, dtype=dtype)),
        "lenet-padded": ((1, 16, 16), Sequential(
            conv(1, 4, 5, padding=2), ReLU(), MaxPool2d(2), conv(4, 6, 3), ReLU(), MaxPool2d(2),
            Flatten(), linear(54, 20), ReLU(), linear(20, 10))),
        "strided": ((1, 15, 15), Sequential(
            conv(1, 8, 3, stride=2, padding=1), ReLU(), conv(8, 16, 3, stride=2, padding=1), ReLU(),
            Flatten(), linear(256, 10))),
        "strided-pooled": ((1, 17, 12), Sequential(  # all strided: on BLAS, the pooling as itself
            conv(1, 4, 3, stride=(2, 1), padding=(1, 0)), ReLU(), MaxPool2d(2),
            conv(4, 6, (2, 3), stride=2, bias=False), Flatten(), linear(24, 10))),
        "overlapping-pool": ((2, 13, 11), Sequential(
            conv(2, 5, 3), ReLU(), MaxPool2d(3, stride=2), Flatten(), linear(5 * 5 * 4, 7))),
        "wide": ((3, 10, 10), Sequential(
            conv(3, 16, 3, padding=1), ReLU(), conv(16, 16, 3, padding=1), ReLU(), MaxPool2d(2),
            Flatten(), linear(400, 32), ReLU(), linear(32, 10))),
        "mlp": ((1, 8, 8), Sequential(Flatten(), linear(64, 48), ReLU(), linear(48, 10))),
        "odd-order": ((2, 9, 9), Sequential(
            ReLU(), conv(2, 3, 3, bias=False), MaxPool2d(2), ReLU(),
            Sequential(conv(3, 4, 2), ReLU()), MaxPool2d(2, 1), Flatten(), linear(4, 6, bias=False), ReLU())),
    }


def training_step(model, x, labels, backend, need_input_grad=True):
    with nn.use_backend(backend):
        model.train()
        model.zero_grad()
        criterion = nn.CrossEntropyLoss()
        loss = criterion(model(x), labels)
        dx = model.backward(criterion.backward(), need_input_grad=need_input_grad)
    return loss, dx, [p.grad.copy() for p in model.parameters()]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch", [1, 9])
@pytest.mark.parametrize("name", list(composed_networks(np.float32)))
def test_composed_network_on_numba_matches_the_numpy_layers(dtype, batch, name):
    shape, model = composed_networks(dtype)[name]
    rng = np.random.default_rng(4)
    x = rng.standard_normal((batch,) + shape).astype(dtype)
    with nn.use_backend("numpy"):
        classes = model.eval()(x).shape[1]
    labels = rng.integers(0, classes, batch)
    loss, dx, grads = training_step(model, x, labels, "numpy")
    fused_loss, fused_dx, fused_grads = training_step(model, x, labels, "numba")
    tol = TOLERANCE[dtype]
    assert fused_loss == pytest.approx(loss, rel=tol)
    np.testing.assert_allclose(fused_dx, dx, rtol=tol, atol=tol)
    for (param_name, _), got, want in zip(model.named_parameters(), fused_grads, grads):
        assert np.any(want != 0), param_name  # the comparison means something
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol, err_msg=param_name)
    _, nothing, skipped_grads = training_step(model, x, labels, "numba", need_input_grad=False)
    assert nothing is None
    for got, want in zip(skipped_grads, fused_grads):
        np.testing.assert_array_equal(got, want)
    model.eval()
    with nn.use_backend("numba"):
        fused_logits = model(x)
    with nn.use_backend("numpy"):
        logits = model(x)
    np.testing.assert_allclose(fused_logits, logits, rtol=tol, atol=tol)


def test_sequential_groups_conv_relu_pool_and_linear_relu_into_stages():
    conv, relu, pool, flat, lin, relu2, lin2 = (Conv2d(1, 2, 3), ReLU(), MaxPool2d(2), Flatten(), Linear(2, 3),
                                                ReLU(), Linear(3, 4))
    stages = planner.plan([relu, conv, relu, pool, flat, lin, relu2, lin2, pool])
    assert [type(s).__name__ for s in stages] == ["ModuleStage", "ConvStage", "ModuleStage", "LinearStage",
                                                   "LinearStage", "PoolStage"]
    assert [s.layers for s in stages][1:4] == [(conv, relu, pool), (flat,), (lin, relu2)]
    model = Sequential(conv, relu, pool)
    with nn.use_backend("numpy"):
        assert planner.plan_of(model) is None  # the NumPy backend runs every layer's own forward
    with nn.use_backend("numba"):
        assert [type(s).__name__ for s in planner.plan_of(model).stages] == ["ConvStage"]


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_named_stages_run_one_by_one_compute_what_the_network_computes(backend):
    model = LeNet5(seed=2)
    x = np.random.default_rng(2).standard_normal((3, 1, 28, 28)).astype(np.float32)
    dout = np.random.default_rng(3).standard_normal((3, 10)).astype(np.float32)
    with nn.use_backend(backend):
        stages = list(model.named_stages())
        expected = {"numba": ["C1+relu1+S2", "C3+relu3+S4", "flatten", "C5+relu5", "F6+relu6", "out"],
                    "numpy": [name for name, _ in model.named_children()]}[backend]
        assert [name for name, _ in stages] == expected
        y = model(x)
        dx = model.backward(dout)
        grads = [p.grad.copy() for p in model.parameters()]
        model.zero_grad()
        h = x
        for _, stage in stages:
            h = stage(h)
        d = dout
        for _, stage in reversed(stages):
            d = stage.backward(d)
    np.testing.assert_array_equal(h, y)
    np.testing.assert_array_equal(d, dx)
    for got, want in zip(model.parameters(), grads):
        np.testing.assert_array_equal(got.grad, want)


def test_sequential_plans_again_when_a_child_is_replaced_or_removed():
    """The stage plan is saved on the model between calls; setting or deleting a child must renew it."""
    x = np.random.default_rng(4).standard_normal((2, 1, 4, 4)).astype(np.float32)
    model = Sequential(Conv2d(1, 2, 3, rng=0), ReLU(), Flatten(), Linear(8, 3, rng=1))
    with nn.use_backend("numba"):
        model(x)
        assert [name for name, _ in model.named_stages()] == ["0+1", "2", "3"]
        replacement = Linear(8, 3, rng=2)
        setattr(model, "3", replacement)
        fused = model(x)
        (_, last), = [(name, stage) for name, stage in model.named_stages() if name == "3"]
        assert last._stage.layers == (replacement,)
        delattr(model, "1")
        assert [name for name, _ in model.named_stages()] == ["0", "2", "3"]
        unfused = model(x)
    with nn.use_backend("numpy"):
        assert [name for name, _ in model.named_stages()] == ["0", "2", "3"]
        np.testing.assert_allclose(unfused, model(x), rtol=1e-5, atol=1e-6)
        setattr(model, "1", ReLU())  # appended after "3": runs last
        assert [name for name, _ in model.named_stages()] == ["0", "2", "3", "1"]
    np.testing.assert_allclose(fused, replacement(np.maximum(Conv2d(1, 2, 3, rng=0)(x), 0).reshape(2, 8)),
                               rtol=1e-5, atol=1e-6)


def test_blas_runs_only_in_networks_whose_convolutions_are_all_strided():
    """BLAS's spinning threads and numba's parallel convolutions slow each other down: never both.
    A network with a stride-1 convolution runs the direct kernels; one whose convolutions are all
    strided (or that has none) runs on BLAS, its convolutions as im2col + one product."""
    def kinds(stages):
        return [(type(s).__name__, getattr(s, "blas", None)) for s in stages if type(s).__name__ != "ModuleStage"]

    mixed = planner.plan([Sequential(Conv2d(1, 2, 3, stride=2)), Conv2d(2, 2, 3), Flatten(), Linear(2, 3), ReLU(),
                          Linear(3, 4)])
    strided = planner.plan([Conv2d(1, 2, 3, stride=(1, 2)), ReLU(), MaxPool2d(2), Sequential(Conv2d(2, 2, 3, stride=2)),
                            Flatten(), Linear(2, 3)])
    mlp = planner.plan([Flatten(), Linear(2, 3), ReLU(), Linear(3, 4)])
    assert kinds(mixed) == [("ConvStage", None), ("LinearStage", False), ("LinearStage", False)]
    assert kinds(strided) == [("GemmConvStage", None), ("PoolStage", None), ("LinearStage", True)]
    assert [len(s.layers) for s in strided] == [2, 1, 1, 1, 1]  # conv+relu, then the pool as itself
    assert kinds(mlp) == [("LinearStage", True), ("LinearStage", True)]


GEMM_GEOMETRIES = [  # (N, C, H, W), C_out, kernel, stride, padding
    ((3, 1, 28, 28), 4, 3, 2, 1),
    ((1, 3, 11, 13), 5, 3, 2, 1),  # batch 1, non-square
    ((2, 4, 9, 10), 3, (2, 4), (2, 3), (1, 2)),  # everything per axis; padding wider than a stride
    ((2, 2, 8, 7), 6, (3, 1), (1, 2), (0, 0)),
    ((4, 16, 14, 14), 32, 3, 2, 1),  # network E's second convolution, smaller batch
    ((2, 2, 5, 5), 3, 5, 3, 2),  # kernel as large as the image: most taps on the padding
    ((2, 3, 6, 6), 2, 3, 1, 1),  # stride 1 works too (the plan does not pick it, the kernels allow it)
]


@pytest.mark.parametrize("x_shape, out_channels, kernel, stride, padding", GEMM_GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_im2col_rows_is_im2col_in_channels_last_order_and_col2im_rows_its_adjoint(x_shape, out_channels, kernel,
                                                                                   stride, padding, dtype):
    from nn.ops import gemm_kernels, numpy_ops

    (kh, kw), (sh, sw), (ph, pw) = (k if isinstance(k, tuple) else (k, k) for k in (kernel, stride, padding))
    channels = x_shape[1]
    rng = np.random.default_rng(5)
    x = rng.standard_normal(x_shape).astype(dtype)
    out_h, out_w = numpy_ops.conv_out_size(x_shape[2], kh, sh, ph), numpy_ops.conv_out_size(x_shape[3], kw, sw, pw)

    def channels_last(reference_col):  # columns (c, i, j) -> (i, j, c)
        return reference_col.reshape(-1, channels, kh, kw).transpose(0, 2, 3, 1).reshape(reference_col.shape)

    def channels_first(col):  # columns (i, j, c) -> (c, i, j)
        return col.reshape(-1, kh, kw, channels).transpose(0, 3, 1, 2).reshape(col.shape)

    col = gemm_kernels.im2col_rows(x, kh, kw, sh, sw, ph, pw, out_h, out_w)
    np.testing.assert_array_equal(col, channels_last(numpy_ops.im2col(x, kh, kw, sh, sw, ph, pw)))
    dcol = rng.standard_normal(col.shape).astype(dtype)
    dx = gemm_kernels.col2im_rows(dcol, x_shape, kh, kw, sh, sw, ph, pw, out_h, out_w)
    assert dx.dtype == dtype and dx.flags.c_contiguous
    np.testing.assert_allclose(dx, numpy_ops.col2im(channels_first(dcol), x_shape, kh, kw, sh, sw, ph, pw),
                               rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])


@pytest.mark.parametrize("x_shape, out_channels, kernel, stride, padding", GEMM_GEOMETRIES)
@pytest.mark.parametrize("with_relu", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_conv_stage_matches_the_layers_one_by_one(x_shape, out_channels, kernel, stride, padding, with_relu,
                                                       dtype):
    rng = np.random.default_rng(6)
    conv = Conv2d(x_shape[1], out_channels, kernel, stride=stride, padding=padding, dtype=dtype, rng=2)
    relu = ReLU() if with_relu else None
    x = rng.standard_normal(x_shape).astype(dtype)
    with nn.use_backend("numpy"):
        out_shape = conv(x).shape
    dout = rng.standard_normal(out_shape).astype(dtype)
    expected_y, expected_dx, (expected_dw, expected_db) = unfused_stage(conv, relu, None, x, dout)

    stage = GemmConvStage(conv, relu)
    y, saved = stage.forward(x, training=True)
    dx = stage.backward(dout, saved, need_input_grad=True)
    tol = TOLERANCE[dtype]
    assert y.dtype == dx.dtype == dtype and y.shape == expected_y.shape and dx.shape == x.shape
    assert np.any(expected_dx != 0) and np.any(expected_dw != 0)  # the comparison means something
    np.testing.assert_allclose(y, expected_y, rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, expected_dx, rtol=tol, atol=tol)
    np.testing.assert_allclose(conv.weight.grad, expected_dw, rtol=tol, atol=tol)
    np.testing.assert_allclose(conv.bias.grad, expected_db, rtol=tol, atol=tol)
    y_eval, nothing = stage.forward(x, training=False)
    assert nothing is None
    np.testing.assert_array_equal(y_eval, y)
    conv.zero_grad()
    assert stage.backward(dout, saved, need_input_grad=False) is None
    np.testing.assert_allclose(conv.weight.grad, expected_dw, rtol=tol, atol=tol)


STRIDED_PAIRS = [  # two strided convolutions in a row, the first with or without ReLU; (N, C, H, W) first
    ((3, 1, 28, 28), (Conv2d, dict(in_channels=1, out_channels=4, kernel_size=3, stride=2, padding=1)), True,
     dict(out_channels=6, kernel_size=3, stride=2, padding=1)),
    ((2, 3, 13, 11), (Conv2d, dict(in_channels=3, out_channels=5, kernel_size=(3, 2), stride=(2, 1), padding=(1, 0))),
     False, dict(out_channels=2, kernel_size=(2, 3), stride=(1, 2), padding=(0, 2))),
]


@pytest.mark.parametrize("x_shape, first, with_relu, second", STRIDED_PAIRS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_consecutive_blas_convolutions_hand_over_channels_last_and_match_the_numpy_backend(x_shape, first, with_relu,
                                                                                             second, dtype):
    """Between two ``GemmConvStage``s the activation and its gradient stay channels-last (N, H, W, C);
    what leaves the network is NCHW, and every result is that of the NumPy backend, layer by layer."""
    conv1 = Conv2d(**first[1], dtype=dtype, rng=3)
    conv2 = Conv2d(conv1.out_channels, **second, dtype=dtype, rng=4)
    model = Sequential(*([conv1, ReLU()] if with_relu else [conv1]), conv2, ReLU(), Flatten())
    rng = np.random.default_rng(7)
    x = rng.standard_normal(x_shape).astype(dtype)
    results = {}
    for backend in ("numpy", "numba"):
        model.zero_grad()
        with nn.use_backend(backend):
            y = model(x)
            dout = np.random.default_rng(8).standard_normal(y.shape).astype(dtype)
            dx = model.backward(dout)
            results[backend] = [y, dx] + [p.grad.copy() for p in model.parameters()]
            if backend == "numba":
                stages = [stage for stage in planner.plan_of(model).stages if isinstance(stage, GemmConvStage)]
                assert [(s.channels_last_in, s.channels_last_out) for s in stages] == [(False, True), (True, False)]
    tol = TOLERANCE[dtype]
    assert np.any(results["numpy"][1] != 0)
    for expected, got in zip(results["numpy"], results["numba"]):
        assert got.shape == expected.shape and got.dtype == dtype
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)


@pytest.fixture
def sliced_runs(monkeypatch):
    """The runs of stages the eval forwards went through in slices: (stage kinds, batch) per call."""
    calls, real = [], planner.forward_in_slices

    def spy(stages, x):
        calls.append(([type(s).__name__ for s in stages], len(x)))
        return real(stages, x)

    monkeypatch.setattr(planner, "forward_in_slices", spy)
    return calls


def strided_network(*middle):
    return Sequential(Conv2d(1, 4, 3, stride=2, padding=1, rng=0), ReLU(), Conv2d(4, 8, 3, stride=2, rng=1),
                      *middle, Flatten(), Linear(8 * 6 * 6, 10, rng=2)).eval()


def test_a_large_eval_batch_goes_in_slices_with_the_result_of_the_whole_batch(sliced_runs):
    model = strided_network()
    batch = planner.EVAL_SLICE * 2 + 5  # two whole slices and a short one
    x = np.random.default_rng(9).standard_normal((batch, 1, 28, 28)).astype(np.float32)
    with nn.use_backend("numpy"):
        expected = model(x)
    with nn.use_backend("numba"):
        np.testing.assert_allclose(model(x), expected, rtol=1e-4, atol=1e-5)
        assert sliced_runs == [(["GemmConvStage", "GemmConvStage", "ModuleStage", "LinearStage"], batch)]
        model(x[:planner.EVAL_SLICE])  # one slice: as it is
    assert len(sliced_runs) == 1


class BatchMean(nn.Module):
    """A layer of the user's own that mixes the images of a batch (it does not declare ``per_sample``)."""

    def forward(self, x):
        return x - x.mean(axis=0)


class Halve(nn.Module):
    """A layer of the user's own that treats each image alone, and says so."""

    per_sample = True

    def forward(self, x):
        return x / 2


@pytest.mark.parametrize("layer, expected_runs", [
    (BatchMean(), [["GemmConvStage", "GemmConvStage"]]),  # the layers after it have no convolution to slice
    (Halve(), [["GemmConvStage", "GemmConvStage", "ModuleStage", "ModuleStage", "LinearStage"]]),
])
def test_a_layer_of_ones_own_keeps_the_rest_of_the_network_fused_and_sliced_where_safe(sliced_runs, layer,
                                                                                         expected_runs):
    model = strided_network(layer)
    x = np.random.default_rng(9).standard_normal((planner.EVAL_SLICE * 3, 1, 28, 28)).astype(np.float32)
    with nn.use_backend("numpy"):
        whole = model(x)
    with nn.use_backend("numba"):
        stages = planner.plan_of(model).stages
        assert [type(s).__name__ for s in stages][:2] == ["GemmConvStage", "GemmConvStage"]
        np.testing.assert_allclose(model(x), whole, rtol=1e-4, atol=1e-5)
    assert [kinds for kinds, _ in sliced_runs] == expected_runs


def test_a_subclass_of_a_layer_is_run_as_itself_not_fused():
    class Doubled(Conv2d):
        def forward(self, x):
            return 2 * super().forward(x)

    stages = planner.plan([Doubled(1, 1, 1), ReLU()])
    assert [type(s).__name__ for s in stages] == ["ModuleStage", "ModuleStage"]
    with nn.use_backend("numba"):
        assert planner.plan_of(Doubled(1, 1, 1)) is None


def test_a_fused_stage_drops_what_its_layers_saved_earlier():
    """After a fused training forward, a layer's own backward would use stale data: it refuses instead."""
    model = Sequential(Conv2d(1, 2, 3, rng=0), ReLU(), MaxPool2d(2))
    x = np.zeros((2, 1, 6, 6), dtype=np.float32)
    with nn.use_backend("numpy"):
        model(x)  # every layer saves what its backward needs
    with nn.use_backend("numba"):
        model(x)
    for layer in model:
        with pytest.raises(nn.BackwardBeforeForwardError):
            layer.backward(np.zeros((2, 2, 4, 4), dtype=np.float32))


@pytest.mark.parametrize("module, x_shape", [
    (Conv2d(2, 3, 3, padding=1, rng=0), (2, 2, 5, 5)), (Linear(4, 3, rng=0), (2, 4)), (ReLU(), (2, 3)),
    (MaxPool2d(2), (2, 1, 4, 4)), (Flatten(), (2, 3, 2)),
    (Sequential(Conv2d(1, 2, 3, rng=0), ReLU(), Flatten(), Linear(8, 2, rng=0)), (2, 1, 4, 4)),
])
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_every_module_skips_the_input_gradient_on_request(module, x_shape, backend):
    x = np.random.default_rng(0).standard_normal(x_shape).astype(np.float32)
    with nn.use_backend(backend):
        module.train()
        y = module(x)
        module.zero_grad()
        assert module.backward(np.ones_like(y), need_input_grad=False) is None
        grads = [p.grad.copy() for p in module.parameters()]
        module.zero_grad()
        assert module.backward(np.ones_like(y)).shape == x.shape
        for p, g in zip(module.parameters(), grads):  # skipping dx changes no parameter gradient
            np.testing.assert_array_equal(p.grad, g)


def test_lenet_eval_forward_keeps_nothing_and_backward_then_fails():
    model = LeNet5(seed=0).eval()
    x = np.zeros((2, 1, 28, 28), dtype=np.float32)
    with nn.use_backend("numba"):
        before = {name: dict(vars(m)) for name, m in model.named_children()}
        model(x)
        assert "_saved_for_backward" not in vars(model)
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


@pytest.mark.parametrize("name", ["lenet5", "strided", "strided-pooled", "wide", "lenet-padded"])
def test_training_gives_the_same_bits_on_one_thread_as_on_all(name):
    """Weight gradients are summed over images in a fixed order, whatever the threads: no dependence on them."""
    import numba

    from nn.ops.parallel import set_policy

    def network():
        return composed_networks(np.float32, seed=8)[name]

    shape, _ = network()
    rng = np.random.default_rng(7)
    x = rng.standard_normal((64,) + shape).astype(np.float32)
    labels = rng.integers(0, 10, 64)
    previous = set_policy("parallel")  # on the pool even if the cores are busy (the adaptive choice would not)
    try:
        parallel = training_step(network()[1], x, labels, "numba", need_input_grad=True)
    finally:
        set_policy(previous)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)  # every kernel then takes its serial driver
    try:
        serial = training_step(network()[1], x, labels, "numba", need_input_grad=True)
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
    from nn.ops import sgd_kernels

    rng = np.random.default_rng(10)
    reference = nn.Parameter(rng.standard_normal((7, 5)).astype(dtype))
    optimizer = nn.optim.SGD([reference], lr=0.05, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    data, buffer = reference.data.copy(), np.empty_like(reference.data)
    for step in range(4):
        grad = rng.standard_normal((7, 5)).astype(dtype)
        reference.grad[...] = grad
        optimizer.step()
        sgd_kernels.sgd_update(data, grad, buffer, 0.05, momentum, weight_decay, nesterov, first=step == 0)
        np.testing.assert_array_equal(data, reference.data)
        if momentum:
            np.testing.assert_array_equal(buffer, optimizer.state[reference]["momentum_buffer"])


def test_gemm_conv_stage_relu_turns_nan_into_zero_as_the_relu_layer_does():
    conv = Conv2d(1, 2, 3, stride=2, padding=1, rng=3)
    x = np.random.default_rng(8).standard_normal((1, 1, 6, 6)).astype(np.float32)
    x[0, 0, 2, 2] = np.nan  # reaches several output positions of both channels
    with nn.use_backend("numpy"):
        expected = ReLU()(conv(x))
    y, _ = GemmConvStage(conv, ReLU()).forward(x, training=False)
    y_without_relu, _ = GemmConvStage(conv).forward(x, training=False)
    assert np.isnan(y_without_relu).any() and not np.isnan(y).any()
    assert np.array_equal(y == 0, expected == 0)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
