"""``serve.py --model`` with the 1998 paper's LeNet-5: every image route, its geometry in the metadata.

Clients send the 28x28 digit on every route, as for LeNet5; the model's own preprocessing centres it
in a 2-pixel border (32x32). The metadata says both. The file is saved with ``nn.save`` and the
metadata train.py writes, served by a real ``serve.py`` process, and called by real clients:
tritonclient's HTTP client and curl.
"""

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import lenet
import nn
from lenet.lenet1998 import PAPER_NORMALIZATION, LeNet1998
from lenet.server.model_api.inference import model_metadata
from tests.test_serve import REPO_ROOT

EXPECTED_SHAPES = {"C1": [6, 28, 28], "S2": [6, 14, 14], "C3": [16, 10, 10], "S4": [16, 5, 5],
                   "C5": [120], "F6": [84], "out": [10]}


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    model = LeNet1998(seed=3)
    path = tmp_path_factory.mktemp("lenet1998") / "model.npz"
    nn.save(model, path, metadata={"architecture": "LeNet1998", "normalization": PAPER_NORMALIZATION,
                                   "input": {"shape": [1, 32, 32], "digit": [28, 28]}, "test_accuracy": 0.25})
    return path


@pytest.fixture(scope="module")
def served(model_file):
    """``(url, model)``: a ``serve.py --model`` process on a free loopback port, and the model it loaded."""
    process = subprocess.Popen([sys.executable, "serve.py", "--model", str(model_file), "--host", "127.0.0.1",
                                "--port", "0"], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               stdin=subprocess.DEVNULL, text=True)
    try:
        banner = process.stdout.readline()
        match = re.search(r"(http://[0-9.]+:\d+)/", banner)
        assert match and "LeNet1998" in banner, banner + process.stderr.read() if not match else banner
        yield match.group(1), lenet.load_model(model_file)
    finally:
        process.terminate()
        process.communicate(timeout=30)


def digits(count, seed):
    return np.random.default_rng(seed).integers(0, 256, (count, 28, 28), dtype=np.uint8)


def test_load_model_builds_the_class_the_metadata_names_with_its_weights(model_file):
    model = lenet.load_model(model_file)
    assert type(model) is LeNet1998 and not model.training
    for (name, loaded), (_, saved) in zip(model.state_dict().items(), LeNet1998(seed=3).state_dict().items()):
        np.testing.assert_array_equal(loaded, saved, err_msg=name)
    assert model.normalization == PAPER_NORMALIZATION


def test_load_model_refuses_an_architecture_it_does_not_know(tmp_path):
    path = tmp_path / "other.npz"
    nn.save(LeNet1998(seed=0), path, metadata={"architecture": "AlexNet"})
    with pytest.raises(ValueError, match="architecture must be one of LeNet5, LeNet1998, got 'AlexNet'"):
        lenet.load_model(path)


def test_load_model_refuses_1998_weights_labelled_lenet5(tmp_path):
    path = tmp_path / "mislabelled.npz"
    nn.save(LeNet1998(seed=0), path, metadata={"architecture": "LeNet5"})
    with pytest.raises(ValueError, match="does not hold LeNet5 weights"):
        lenet.load_model(path)


@pytest.mark.parametrize("model, digit, model_input", [
    (LeNet1998(seed=0).eval(), [-1, 28, 28], [-1, 1, 32, 32]),
    (lenet.LeNet5(seed=0).eval(), [-1, 28, 28], [-1, 1, 28, 28]),
])
def test_the_metadata_gives_the_digit_clients_send_and_the_input_the_model_reads(model, digit, model_input):
    document = model_metadata(model)
    assert document["inputs"][0]["shape"] == digit and document["architecture"] == type(model).__name__
    assert document["model_input"]["shape"] == model_input
    assert document["model_input"]["padding"] == [(model_input[-1] - 28) // 2] * 2


def test_tritonclient_reads_the_geometry_and_gets_the_models_answer(served):
    httpclient = pytest.importorskip("tritonclient.http")
    url, model = served
    client = httpclient.InferenceServerClient(url=url.removeprefix("http://"))
    try:
        metadata = client.get_model_metadata("lenet5")
        assert metadata["architecture"] == "LeNet1998" and metadata["inputs"][0]["shape"] == [-1, 28, 28]
        assert metadata["model_input"]["shape"] == [-1, 1, 32, 32] and metadata["test_accuracy"] == 0.25
        pixels = digits(3, seed=5)
        images = httpclient.InferInput("images", list(pixels.shape), "UINT8")
        images.set_data_from_numpy(pixels, binary_data=True)
        result = client.infer("lenet5", [images])
        np.testing.assert_allclose(result.as_numpy("probabilities"), model.predict(pixels), rtol=1e-5, atol=1e-7)
    finally:
        client.close()


def curl_json(url, *arguments):
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    result = subprocess.run([curl, "-sS", "--max-time", "30", *arguments, url], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_curl_on_every_image_route_gets_the_models_answer(served):
    url, model = served
    digit = digits(1, seed=6)[0]
    expected = model.predict(digit[None])[0]
    infer = curl_json(f"{url}/v2/models/lenet5/infer", "-H", "Content-Type: application/json", "--data-binary",
                      json.dumps({"inputs": [{"name": "images", "shape": [1, 28, 28], "datatype": "UINT8",
                                              "data": digit.ravel().tolist()}]}))
    np.testing.assert_allclose(infer["outputs"][0]["data"], expected, rtol=1e-5, atol=1e-7)
    # /api/mnist takes the canvas convention (dark ink on white): the inverse of the MNIST digit.
    mnist = curl_json(f"{url}/api/mnist", "-H", "Content-Type: application/json", "--data-binary",
                      json.dumps((255 - digit).ravel().tolist()))
    predict = curl_json(f"{url}/api/predict", "-H", "Content-Type: application/json", "--data-binary",
                        json.dumps({"image": (255 - digit).tolist()}))
    activations = curl_json(f"{url}/api/activations", "-H", "Content-Type: application/json", "--data-binary",
                            json.dumps({"image": (255 - digit).tolist()}))
    np.testing.assert_allclose(mnist["results"], expected, rtol=1e-5, atol=1e-7)
    for answer in (predict, activations):  # /api/predict centres and scales the digit: compare with what it read
        seen = np.asarray(answer["image"], dtype=np.uint8)
        np.testing.assert_allclose(answer["probabilities"], model.predict(seen[None])[0], rtol=1e-5, atol=1e-7)
    assert {entry["stage"]: entry["shape"] for entry in activations["activations"]} == EXPECTED_SHAPES
