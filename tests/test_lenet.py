"""LeNet5: its shapes and key names, PyTorch weight import, predict, and thread-safe inference."""

import threading

import numpy as np
import pytest

import nn
from lenet import LeNet5, load_model

PYTORCH_KEYS = ["C1.weight", "C1.bias", "C3.weight", "C3.bias", "C5.weight", "C5.bias",
                "F6.weight", "F6.bias", "out.weight", "out.bias"]
PYTORCH_SHAPES = [(6, 1, 5, 5), (6,), (16, 6, 5, 5), (16,), (120, 256), (120,), (84, 120), (84,), (10, 84), (10,)]


def test_state_dict_keys_and_shapes_are_those_of_the_pytorch_original():
    state = LeNet5(seed=0).state_dict()
    assert list(state) == PYTORCH_KEYS
    assert [v.shape for v in state.values()] == PYTORCH_SHAPES
    assert sum(v.size for v in state.values()) == 44426


@pytest.mark.parametrize("batch", [1, 3])
def test_forward_shapes_layer_by_layer(batch):
    model = LeNet5(seed=0)
    x = np.random.default_rng(0).standard_normal((batch, 1, 28, 28)).astype(np.float32)
    expected = [(6, 24, 24), (6, 24, 24), (6, 12, 12), (16, 8, 8), (16, 8, 8), (16, 4, 4), (256,),
                (120,), (120,), (84,), (84,), (10,)]
    for layer, shape in zip(model.children(), expected):
        x = layer(x)
        assert x.shape == (batch,) + shape and x.dtype == np.float32
    model(np.zeros((batch, 1, 28, 28), dtype=np.float32))
    dx = model.backward(np.ones((batch, 10), dtype=np.float32))
    assert dx.shape == (batch, 1, 28, 28)


def test_same_seed_same_model_and_different_seed_different_model():
    a, b, c = LeNet5(seed=7), LeNet5(seed=7), LeNet5(seed=8)
    for (k, va), vb, vc in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
        np.testing.assert_array_equal(va, vb)
        assert not np.array_equal(va, vc), k


def test_predict_gives_probabilities_for_uint8_and_float_pixels():
    model = LeNet5(seed=0).eval()
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (4, 28, 28), dtype=np.uint8)
    p = model.predict(pixels)
    assert p.shape == (4, 10)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    assert np.all(p > 0)
    # Float input means intensities in [0, 1]: the same picture gives the same answer.
    np.testing.assert_allclose(model.predict(pixels / 255.0), p, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.predict(pixels[0]), p[:1], rtol=1e-6)
    np.testing.assert_allclose(model.predict(pixels[:, None]), p, rtol=1e-6)


def test_predict_rejects_bad_shapes_and_training_mode():
    model = LeNet5(seed=0)
    with pytest.raises(RuntimeError, match="eval"):
        model.predict(np.zeros((1, 28, 28)))
    model.eval()
    with pytest.raises(ValueError, match=r"\(N, 28, 28\).*got \(2, 27, 28\)"):
        model.predict(np.zeros((2, 27, 28)))
    with pytest.raises(TypeError, match="numeric"):
        model.predict(np.array([["x"] * 28] * 28))


def test_eight_threads_sharing_one_model_get_exactly_the_single_thread_results():
    model = LeNet5(seed=3).eval()
    rng = np.random.default_rng(3)
    inputs = [rng.integers(0, 256, (int(rng.integers(1, 6)), 28, 28), dtype=np.uint8) for _ in range(64)]
    expected = [model.predict(x) for x in inputs]
    results = [[None] * len(inputs) for _ in range(8)]
    barrier = threading.Barrier(8)

    def worker(t):
        barrier.wait()
        for i in range(len(inputs)):
            j = (i + 7 * t) % len(inputs)  # threads walk the inputs in different orders
            results[t][j] = model.predict(inputs[j])

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    for t in range(8):
        for got, want in zip(results[t], expected):
            np.testing.assert_array_equal(got, want)


def test_weights_from_a_pytorch_state_dict_saved_as_npz_load_by_key(tmp_path):
    # What the README tells a PyTorch user to run where torch is installed:
    #   np.savez("lenet5_torch.npz", **{k: v.numpy() for k, v in model.state_dict().items()})
    # Here the arrays are made directly, with the same keys, shapes and float32 dtype.
    rng = np.random.default_rng(5)
    torch_state = {k: rng.standard_normal(s).astype(np.float32) * 0.1 for k, s in zip(PYTORCH_KEYS, PYTORCH_SHAPES)}
    path = tmp_path / "lenet5_torch.npz"
    np.savez(path, **torch_state)
    model = load_model(path)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, torch_state[k])
    assert not model.training
    # And the network computes what those weights define: check the first layer by hand.
    x = rng.standard_normal((1, 1, 28, 28)).astype(np.float32)
    w, b = torch_state["C1.weight"].astype(np.float64), torch_state["C1.bias"].astype(np.float64)
    by_hand = sum(w[0, 0, i, j] * x[0, 0, 3 + i, 5 + j] for i in range(5) for j in range(5)) + b[0]
    assert model.C1(x)[0, 0, 3, 5] == pytest.approx(by_hand, rel=1e-4)


def test_load_model_rejects_files_that_are_not_lenet5(tmp_path):
    path = tmp_path / "other.npz"
    nn.save(nn.Linear(3, 2), path)
    with pytest.raises(ValueError, match="does not hold LeNet5 weights"):
        load_model(path)


def test_matches_pytorch_float64_when_available():
    torch = pytest.importorskip("torch")
    from benchmarks.networks import NETWORKS, build_torch

    reference = build_torch(NETWORKS["LeNet5"], torch.float64)
    ours = LeNet5(dtype=np.float64)
    ours.load_state_dict({k: v.detach().numpy() for k, v in reference.state_dict().items()})
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 1, 28, 28))
    labels = rng.integers(0, 10, 4)
    tx = torch.tensor(x, requires_grad=True)
    tloss = torch.nn.functional.cross_entropy(reference(tx), torch.tensor(labels))
    tloss.backward()
    crit = nn.CrossEntropyLoss()
    loss = crit(ours(x), labels)
    dx = ours.backward(crit.backward())
    assert loss == pytest.approx(tloss.item(), rel=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-9, atol=1e-12)
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad, dict(reference.named_parameters())[name].grad.numpy(),
                                   rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("size,words", [(32, "256 features"), (20, "256 features"), (12, "smaller than the kernel"),
                                        (5, "smaller than the kernel")])
def test_images_of_the_wrong_size_are_refused_on_both_backends(backend, size, words):
    model = LeNet5(seed=0)
    with nn.use_backend(backend), pytest.raises(ValueError, match=words):
        model(np.zeros((2, 1, size, size), dtype=np.float32))


@pytest.mark.parametrize("normalization", [{"mean": 0.1}, {"mean": 0.1, "std": 0}, {"mean": "x", "std": 1}, [0.1, 0.3]])
def test_load_model_rejects_a_broken_normalization_in_the_metadata(tmp_path, normalization):
    path = tmp_path / "m.npz"
    nn.save(LeNet5(seed=0), path, metadata={"normalization": normalization})
    with pytest.raises(ValueError, match="normalization must be"):
        load_model(path)
