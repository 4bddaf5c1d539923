"""POST /api/activations over real HTTP on loopback: /api/predict's answer plus every stage's maps.

The route must answer exactly what /api/predict answers (same checks, same errors, same
prediction) and add maps that decode to the stage outputs of the digit it read.
"""

import base64
import json

import numpy as np
import pytest

from lenet.activations import STAGE_NAMES, stage_activations
from lenet.server import PredictionServer, serving_in_background
from lenet.server.model_api.activation_maps import quantized
from tests.test_serve import BAD_IMAGES, call, drawn_seven, png_bytes

MAX_ANSWER_BYTES = 16 * 1024  # ~8 kB of maps plus /api/predict's answer, whatever the digit
EXPECTED_SHAPES = {"C1": [6, 24, 24], "S2": [6, 12, 12], "C3": [16, 8, 8], "S4": [16, 4, 4],
                   "C5": [120], "F6": [84], "out": [10]}


@pytest.fixture(scope="module")
def server(model):
    with serving_in_background(PredictionServer(model, port=0, log=None)) as server:
        yield server


def post(server, path, body, content_type):
    status, _, data = call(server, "POST", path, body=body, headers={"Content-Type": content_type})
    return status, data


def decoded(entry):
    """One stage of the answer back to float values: low + level * (high - low) / 255."""
    levels = np.frombuffer(base64.b64decode(entry["data"]), dtype=np.uint8).reshape(entry["shape"])
    return entry["low"] + levels * ((entry["high"] - entry["low"]) / 255.0)


@pytest.mark.parametrize("body, content_type", [
    (png_bytes(drawn_seven()), "image/png"),
    (json.dumps({"image": np.asarray(drawn_seven().resize((28, 28))).tolist()}).encode(), "application/json"),
], ids=["png-file", "json-image"])
def test_the_answer_is_predicts_answer_plus_the_maps_of_the_digit_it_read(server, model, body, content_type):
    status, data = post(server, "/api/activations", body, content_type)
    predicted = json.loads(post(server, "/api/predict", body, content_type)[1])
    answer = json.loads(data)
    assert status == 200 and len(data) <= MAX_ANSWER_BYTES
    maps = answer.pop("activations")
    assert answer.pop("ms") >= 0 and predicted.pop("ms") >= 0
    assert answer == predicted  # prediction, probabilities and the image read: all the same
    assert [entry["stage"] for entry in maps] == list(STAGE_NAMES)
    assert {entry["stage"]: entry["shape"] for entry in maps} == EXPECTED_SHAPES
    digit = np.asarray(answer["image"], dtype=np.uint8)
    expected = stage_activations(model, model.preprocess(digit[None]))
    for entry in maps:
        truth = expected[entry["stage"]][0]
        step = (entry["high"] - entry["low"]) / 255.0
        assert entry["low"] == min(float(truth.min()), 0.0) and entry["high"] == pytest.approx(float(truth.max()))
        np.testing.assert_allclose(decoded(entry), truth, atol=step / 2 + 1e-6, err_msg=entry["stage"])


@pytest.mark.parametrize("body, status, message", BAD_IMAGES.values(), ids=BAD_IMAGES.keys())
def test_bad_bodies_get_exactly_the_answer_api_predict_gives(server, body, status, message):
    content_type = "application/json" if body.startswith(b"{") else "application/octet-stream"
    assert post(server, "/api/activations", body, content_type) == post(server, "/api/predict", body, content_type)
    assert post(server, "/api/activations", body, content_type)[0] == status


def test_only_post_is_allowed(server):
    status, response, _ = call(server, "GET", "/api/activations")
    assert status == 405 and response.getheader("Allow") == "POST"


@pytest.mark.parametrize("values, low, high, levels", [
    ([0.0, 1.0, 2.0], 0.0, 2.0, [0, 128, 255]),       # rectified: 0 is black, the largest white
    ([-2.0, 0.0, 2.0], -2.0, 2.0, [0, 128, 255]),     # logits may be negative: the smallest is black
    ([0.0, 0.0], 0.0, 1e-12, [0, 0]),                 # nothing reached the stage: all black, no division by 0
])
def test_quantizing_maps_the_range_onto_256_levels(values, low, high, levels):
    got_low, got_high, got_levels = quantized(np.array(values))
    assert (got_low, got_high, got_levels.tolist()) == (low, high, levels)


def test_the_benchmark_script_runs_and_prints_both_routes_and_the_difference(capsys):
    from benchmarks import activation_maps
    assert activation_maps.main(["--blocks", "2", "--per-block", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1:3]] == ["/api/predict", "/api/activations"]
    assert lines[3].startswith("added by the maps")
