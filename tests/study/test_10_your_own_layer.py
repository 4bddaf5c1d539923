"""docs/study/10-your-own-layer.md, checked: the page's LeakyReLU is run as printed, on both backends."""

import re
from pathlib import Path

import numpy as np
import pytest

import nn
from tests.study.worked_examples import worked_example

PAGE = "10-your-own-layer.md"
CODE_MARKER = re.compile(r"<!--\s*layer code:\s*([\w-]+)\s*-->\s*```python\n(.*?)```", re.S)


def page_code(*names):
    """Run the page's code blocks ``names`` in order, in one namespace, and return it."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "study" / PAGE).read_text()
    blocks = dict(CODE_MARKER.findall(text))
    namespace = {}
    for name in names:
        assert name in blocks, f"docs/study/{PAGE}: no code block marked {name!r}; it has {sorted(blocks)}"
        exec(compile(blocks[name], f"docs/study/{PAGE} ({name})", "exec"), namespace)
    return namespace


def test_leaky_relu_passes_dout_where_x_is_positive_and_a_times_dout_elsewhere(backend):
    """10-your-own-layer.md § Worked example: y = x or a·x, dx = dout or a·dout (a at x = 0 too)."""
    LeakyReLU = page_code("leaky-relu")["LeakyReLU"]
    with worked_example(PAGE, "leaky-relu") as page:
        layer = LeakyReLU(page.scalar("negative_slope"))
        page.check("y", layer(page.array("x")))
        page.check("dx", layer.backward(page.array("dout")))


def test_leaky_relu_passes_the_gradient_check_and_a_forgotten_slope_fails_it(backend):
    """10-your-own-layer.md § Its gradient check: the page's check passes; ``return dout`` is caught."""
    namespace = page_code("leaky-relu", "gradcheck")
    assert all(r.passed for r in namespace["results"]) and namespace["results"][0].checked == 24

    class ForgetsTheSlope(namespace["LeakyReLU"]):
        def backward(self, dout):
            self.saved()
            return dout

    (result,) = nn.gradcheck(ForgetsTheSlope(0.1), namespace["x"])
    assert not result.passed and result.max_abs_err > 0.5


def test_leaky_relu_in_a_network_keeps_the_rest_compiled_and_gives_the_numpy_result():
    """10-your-own-layer.md § In a network: the stages on numba, and the same numbers as the NumPy backend."""
    namespace = page_code("leaky-relu", "network")
    model, LeakyReLU = namespace["model"], namespace["LeakyReLU"]
    with_relu = nn.Sequential(*[nn.ReLU() if isinstance(m, LeakyReLU) else m for m in model])
    with worked_example(PAGE, "stages") as page, nn.use_backend("numba"):
        assert [name for name, _ in model.named_stages()] == page.scalar("numba_stages")
        assert [name for name, _ in with_relu.named_stages()] == page.scalar("with_relu_stages")
    model.astype(np.float64)
    x = np.random.default_rng(2).standard_normal((3, 1, 28, 28))
    results = {}
    for backend in ("numpy", "numba"):
        model.zero_grad()
        with nn.use_backend(backend):
            y = model(x)
            dx = model.backward(np.ones_like(y))
        results[backend] = [y, dx] + [p.grad.copy() for p in model.parameters()]
    for numpy_result, numba_result in zip(*results.values()):
        np.testing.assert_allclose(numba_result, numpy_result, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_layer_of_ones_own_with_a_batch_statistic_gets_the_whole_batch(backend):
    """10-your-own-layer.md § In a network: without ``per_sample``, a layer sees the whole eval batch at once."""
    seen = []

    class BatchCentre(nn.Module):
        def forward(self, x):
            seen.append(len(x))
            return x - x.mean(axis=0)

    model = nn.Sequential(nn.Conv2d(1, 2, 3, stride=2, rng=0), BatchCentre(), nn.Flatten()).eval()
    with nn.use_backend(backend):
        model(np.zeros((200, 1, 9, 9), dtype=np.float32))
    assert seen == [200]
