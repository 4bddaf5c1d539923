"""docs/study/12-batchnorm.md, checked against nn.BatchNorm1d: the forward, the running statistics, the graph's
backward node by node, the compact formula, and eval mode."""

import numpy as np

import nn
from tests.study.worked_examples import read_example, worked_example

PAGE = "12-batchnorm.md"


def layer_from_page(page):
    gamma = np.atleast_1d(page.array("gamma"))
    layer = nn.BatchNorm1d(gamma.size, dtype=np.float64)
    layer.weight.data[...] = gamma
    if "beta" in page.values:
        layer.bias.data[...] = page.array("beta")
    return layer


def test_forward_normalizes_each_channel_and_updates_the_running_statistics(backend):
    """12-batchnorm.md § Worked example: forward and running statistics."""
    with worked_example(PAGE, "batchnorm-forward") as page:
        x = page.array("x")
        layer = layer_from_page(page)
        y = layer(x)
        mean, var = x.mean(axis=0), x.var(axis=0)
        page.check("mean", mean)
        page.check("var", var)
        page.check("x_hat", (x - mean) / np.sqrt(var + layer.eps))
        page.check("y", y)
        page.check("running_mean", layer.running_mean)
        page.check("running_var", layer.running_var)
        page.check("num_batches_tracked", layer.num_batches_tracked)


def test_the_graph_and_the_compact_formula_give_the_same_gradient(backend):
    """12-batchnorm.md § Worked example: backward, both ways."""
    with worked_example(PAGE, "batchnorm-backward") as page:
        x, dout, gamma = page.array("x"), page.array("dout"), page.scalar("gamma")
        layer = layer_from_page(page)
        layer(x[:, None])
        dx = layer.backward(dout[:, None])[:, 0]
        # The graph, node by node, as the page writes it.
        m, eps = x.size, layer.eps
        centered = x - x.mean()
        s = 1 / np.sqrt(centered.var() + eps)
        dx_hat = dout * gamma
        dvar = -0.5 * s ** 3 * np.sum(dx_hat * centered)
        dmean = -s * np.sum(dx_hat) + dvar * (-2 / m) * np.sum(centered)
        page.check("s", s)
        page.check("dx_hat", dx_hat)
        page.check("dvar", dvar)
        page.check("dmean", dmean)
        page.check("direct", dx_hat * s)
        page.check("through_var", dvar * 2 * centered / m)
        page.check("through_mean", np.full(m, dmean / m))
        np.testing.assert_allclose(dx_hat * s + dvar * 2 * centered / m + dmean / m, dx, rtol=1e-12)
        # The layer computes the compact formula; the page's dx is the graph's sum.
        page.check("dx", dx)
        page.check("dgamma", layer.weight.grad[0])
        page.check("dbeta", layer.bias.grad[0])
        assert abs(dx.sum()) < 1e-12


def test_eval_mode_uses_the_running_statistics(backend):
    """12-batchnorm.md § Worked example: eval mode."""
    forward = read_example(PAGE, "batchnorm-forward")
    layer = layer_from_page(forward)
    layer(forward.array("x"))
    with worked_example(PAGE, "batchnorm-eval") as page:
        page.check("y", layer.eval()(page.array("x")))
