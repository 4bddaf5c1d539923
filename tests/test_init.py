"""nn.init: PyTorch's formulas (bounds, standard deviations, gains, fans), seeded, in place."""

import math

import numpy as np
import pytest

import nn
from nn import init

UNIFORM = {"kaiming_uniform_": init.kaiming_uniform_, "xavier_uniform_": init.xavier_uniform_}
NORMAL = {"kaiming_normal_": init.kaiming_normal_, "xavier_normal_": init.xavier_normal_}
SHAPE = (64, 32, 5, 5)  # fan_in 800, fan_out 1600


def expected_std(name, shape, **options):
    """The standard deviation each rule asks for, written out from the papers' formulas."""
    fan_in, fan_out = shape[1] * math.prod(shape[2:]), shape[0] * math.prod(shape[2:])
    if name.startswith("xavier"):
        return options.get("gain", 1.0) * math.sqrt(2 / (fan_in + fan_out))
    slope = options.get("a", 0)
    fan = fan_in if options.get("mode", "fan_in") == "fan_in" else fan_out
    return math.sqrt(2 / (1 + slope ** 2)) / math.sqrt(fan)


@pytest.mark.parametrize("name,options", [
    ("kaiming_uniform_", {}), ("kaiming_uniform_", {"a": math.sqrt(5)}), ("kaiming_uniform_", {"mode": "fan_out"}),
    ("kaiming_normal_", {}), ("kaiming_normal_", {"a": 0.2, "mode": "fan_out"}),
    ("xavier_uniform_", {}), ("xavier_uniform_", {"gain": 5 / 3}), ("xavier_normal_", {"gain": 2.0}),
])
def test_samples_have_the_rules_spread(name, options):
    w = init.__dict__[name](np.empty(SHAPE), **options, generator=0)
    std = expected_std(name, SHAPE, **options)
    assert w.std() == pytest.approx(std, rel=0.01)  # 2.6e6 samples: the sample std is within ~0.05%
    assert abs(w.mean()) < 0.01 * std
    if name in UNIFORM:  # U(-b, b) with b = sqrt(3) std: the extremes reach b, never beyond
        assert np.abs(w).max() <= math.sqrt(3) * std
        assert np.abs(w).max() > 0.999 * math.sqrt(3) * std


def test_the_spread_check_can_fail():
    """Xavier's std is not He's: the check above tells them apart."""
    w = init.xavier_uniform_(np.empty(SHAPE), generator=0)
    assert w.std() != pytest.approx(expected_std("kaiming_uniform_", SHAPE), rel=0.01)


def test_kaiming_uniform_with_a_sqrt5_is_the_default_linear_and_conv_draw():
    """PyTorch's Linear/Conv2d default, U(±1/sqrt(fan_in)), is kaiming_uniform_(a=sqrt(5)): same draws."""
    w = init.kaiming_uniform_(np.empty((3, 4)), a=math.sqrt(5), generator=7)
    np.testing.assert_allclose(w, init.uniform_fan_in(np.random.default_rng(7), (3, 4), 4, np.float64), rtol=1e-15)


@pytest.mark.parametrize("name", [*UNIFORM, *NORMAL])
def test_a_seed_gives_the_same_weights_and_another_seed_others(name):
    fill = init.__dict__[name]
    a, b, c = (fill(np.empty((4, 3)), generator=seed) for seed in (1, 1, 2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fills_a_parameter_in_place_in_its_dtype_and_returns_it(dtype):
    p = nn.Parameter(np.zeros((6, 5), dtype=dtype))
    data = p.data
    assert init.kaiming_normal_(p, generator=3) is p
    assert p.data is data and p.dtype == dtype and np.all(p.data != 0)
    assert init.zeros_(p) is p and np.all(p.data == 0)
    assert init.ones_(p) is p and np.all(p.data == 1)


@pytest.mark.parametrize("nonlinearity,param,gain", [
    ("linear", None, 1), ("conv2d", None, 1), ("sigmoid", None, 1), ("tanh", None, 5 / 3),
    ("relu", None, math.sqrt(2)), ("leaky_relu", None, math.sqrt(2 / (1 + 0.01 ** 2))),
    ("leaky_relu", 0.2, math.sqrt(2 / 1.04)), ("selu", None, 0.75),
])
def test_calculate_gain_follows_pytorchs_table(nonlinearity, param, gain):
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(gain, rel=1e-15)


@pytest.mark.parametrize("call,error,words", [
    (lambda: init.kaiming_uniform_(np.empty(5)), ValueError, "2 or more dimensions"),
    (lambda: init.xavier_normal_(np.empty(5)), ValueError, "2 or more dimensions"),
    (lambda: init.kaiming_normal_(np.empty((2, 2)), mode="fan_avg"), ValueError, "mode"),
    (lambda: init.kaiming_normal_(np.empty((2, 2)), nonlinearity="gelu"), ValueError, "unsupported nonlinearity"),
    (lambda: init.zeros_(np.zeros(3, dtype=np.int64)), TypeError, "floating-point"),
    (lambda: init.ones_([1.0, 2.0]), TypeError, "numpy array or an nn.Parameter"),
])
def test_bad_input_is_refused_naming_what_was_expected(call, error, words):
    with pytest.raises(error, match=words):
        call()


def test_the_spread_and_the_gains_agree_with_pytorch():
    torch = pytest.importorskip("torch")
    generator = torch.Generator().manual_seed(0)
    for name, options in [("kaiming_uniform_", {"a": 0.3, "mode": "fan_out", "nonlinearity": "leaky_relu"}),
                          ("kaiming_normal_", {"nonlinearity": "relu"}), ("xavier_uniform_", {"gain": 0.5}),
                          ("xavier_normal_", {})]:
        theirs = getattr(torch.nn.init, name)(torch.empty(SHAPE, dtype=torch.float64), **options,
                                              generator=generator).numpy()
        ours = init.__dict__[name](np.empty(SHAPE), **options, generator=0)
        assert ours.std() == pytest.approx(theirs.std(), rel=0.01), name
        if name in UNIFORM:
            assert np.abs(ours).max() == pytest.approx(np.abs(theirs).max(), rel=1e-3), name
    for nonlinearity, param in [("tanh", None), ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.3),
                                ("selu", None)]:
        assert init.calculate_gain(nonlinearity, param) == torch.nn.init.calculate_gain(nonlinearity, param)
    w = np.empty((7, 3, 2, 5))
    assert init._calculate_fan_in_and_fan_out(w) == torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(w.shape))
