"""Every network of the zoo (benchmarks/networks.py): both backends agree, and match PyTorch.

For each network, a forward pass on a small seeded batch and a backward pass of a random
``dout`` give the logits, the gradient of the images and of every parameter. The numba and NumPy
backends must agree on all of them in float32 and float64; where PyTorch is importable, the
float64 ones must match PyTorch's autograd with the same weights to 1e-8 relative.

Errors are measured relative to the largest entry of the reference tensor (``max|a - b| /
max|b|``): entry by entry, a near-zero entry would make any rounding look large.
"""

import numpy as np
import pytest

import nn
from benchmarks.networks import NETWORKS, build_nn, build_torch, copy_weights, example_batch

BATCH = 3
# The backends differ in summation order only: measured, at most 5e-7 in float32 and 2e-15 in
# float64 (over sums of up to 4096 terms, the first Linear of D); the bounds leave a wide margin
# for other kernels' orders, yet catch any wrong index, which errs by the size of the values.
BACKEND_TOLERANCE = {np.float32: 1e-5, np.float64: 1e-12}
TORCH_TOLERANCE = 1e-8


def relative_error(actual, expected):
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape
    return float(np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1e-300))


def forward_and_gradients(model, x, dout):
    """{"logits": ..., "input": dL/dx, parameter name: dL/dparameter} for L = sum(model(x) * dout)."""
    model.zero_grad()
    logits = model(x)
    results = {"logits": np.array(logits), "input": np.array(model.backward(dout))}
    results.update((name, p.grad.copy()) for name, p in model.named_parameters())
    return results


def seeded_dout(network, dtype):
    return np.random.default_rng(1).standard_normal((BATCH, network.classes)).astype(dtype)


def with_our_dropout_masks(ours, reference):
    """Give each ``torch.nn.Dropout`` of ``reference`` the masks ``ours``'s will draw next (from a copy of its generator)."""
    import copy

    import torch
    for name, layer in ours.named_children():
        if type(layer) is nn.Dropout:
            rng, p = copy.deepcopy(layer.rng), layer.p

            def dropout(module, inputs, output, rng=rng, p=p):  # replaces torch's output
                keep = torch.from_numpy(rng.random(tuple(inputs[0].shape)) >= p)
                return inputs[0] * keep.to(inputs[0].dtype) / (1 - p)

            getattr(reference, name).register_forward_hook(dropout)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("key", list(NETWORKS))
def test_numba_and_numpy_backends_agree_on_every_output_and_gradient(key, dtype):
    network = NETWORKS[key]
    x, _ = example_batch(network, BATCH, dtype=dtype)
    dout = seeded_dout(network, dtype)
    results = {}
    for backend in ("numpy", "numba"):
        with nn.use_backend(backend):
            results[backend] = forward_and_gradients(build_nn(network, dtype=dtype, seed=0), x, dout)
    assert set(results["numba"]) == {"logits", "input"} | {name for name, _ in build_nn(network).named_parameters()}
    for name, expected in results["numpy"].items():
        assert results["numba"][name].dtype == dtype, name
        assert relative_error(results["numba"][name], expected) <= BACKEND_TOLERANCE[dtype], name


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("key", list(NETWORKS))
def test_every_network_matches_pytorch_in_float64(key, backend):
    torch = pytest.importorskip("torch", reason="PyTorch is the reference here: pip install torch==2.13.0")
    network = NETWORKS[key]
    ours = build_nn(network, dtype=np.float64, seed=0)
    reference = copy_weights(ours, build_torch(network, torch.float64))
    x, _ = example_batch(network, BATCH, dtype=np.float64)
    dout = seeded_dout(network, np.float64)

    with_our_dropout_masks(ours, reference)
    with nn.use_backend(backend):
        results = forward_and_gradients(ours, x, dout)
    tx = torch.tensor(x, requires_grad=True)
    logits = reference(tx)
    logits.backward(torch.tensor(dout))
    expected = {"logits": logits.detach().numpy(), "input": tx.grad.numpy()}
    expected.update((name, p.grad.numpy()) for name, p in reference.named_parameters())

    assert set(results) == set(expected)
    for name, value in expected.items():
        assert relative_error(results[name], value) <= TORCH_TOLERANCE, name


def test_network_a_is_lenet5_layer_for_layer():
    a, lenet5 = build_nn(NETWORKS["A"], seed=0), build_nn(NETWORKS["LeNet5"], seed=0)
    assert [type(m) for m in a.children()] == [type(m) for m in lenet5.children()]
    assert [p.shape for p in a.parameters()] == [p.shape for p in lenet5.parameters()]
    assert sum(p.size for p in a.parameters()) == 44_426
