"""The Open Inference Protocol (v2, as KServe and Triton speak it) for the one model served.

A request carries one input tensor of N MNIST-convention images (white ink on black):
shape [N, 28, 28], [N, 1, 28, 28] or [N, 784]; an integer datatype means pixels 0..255, a
floating one intensities in [0, 1]; data flat (row-major) or nested as the shape says. The
answer is one output tensor, "probabilities", shape [N, 10], FP32, flat row-major.
"""

import numpy as np

from .arrays import json_type, number_array
from .errors import HTTPError

MODEL_NAME = "lenet5"
MODEL_VERSION = "1"
MAX_BATCH = 128  # images per request; larger batches are refused with 413

INTEGER_DATATYPES = ("UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64")
FLOAT_DATATYPES = ("FP16", "FP32", "FP64")
_IMAGE_SHAPES = ("[N, 28, 28]", "[N, 1, 28, 28]", "[N, 784]")


def model_metadata(model):
    """The model metadata document (``GET /v2/models/lenet5``), with the recorded test accuracy."""
    return {
        "name": MODEL_NAME,
        "versions": [MODEL_VERSION],
        "platform": "numpy_numba",
        "inputs": [{"name": "images", "datatype": "UINT8", "shape": [-1, 28, 28]}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}],
        "test_accuracy": model.metadata.get("test_accuracy"),
    }


def parse_infer_request(document):
    """An inference request document -> ``(request_id or None, images)``.

    ``images`` is (N, 28, 28): uint8 pixels for integer datatypes, float32 intensities otherwise.

    Raises:
        HTTPError(400): anything missing, of the wrong type, shape or range.
        HTTPError(413): more than ``MAX_BATCH`` images.
    """
    if not isinstance(document, dict):
        raise HTTPError(400, f'expected a JSON object {{"inputs": [...]}}, got {json_type(document)}')
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise HTTPError(400, f'"id": expected a string, got {json_type(request_id)}')
    _check_requested_outputs(document.get("outputs"))
    inputs = document.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1:
        got = json_type(inputs) if inputs is not None else "nothing"
        raise HTTPError(400, f'"inputs": expected an array of exactly one input tensor, got {got}')
    tensor = inputs[0]
    if not isinstance(tensor, dict):
        raise HTTPError(400, f'"inputs"[0]: expected an object with name, shape, datatype and data, '
                             f'got {json_type(tensor)}')
    name = tensor.get("name")
    if not isinstance(name, str):
        raise HTTPError(400, f'"inputs"[0].name: expected a string, got {json_type(name)}')
    shape = _check_shape(tensor.get("shape"))
    datatype = tensor.get("datatype")
    if datatype in INTEGER_DATATYPES:
        values = number_array(tensor.get("data"), shape, '"inputs"[0].data', 0, 255, integers_only=True)
        images = values.astype(np.uint8)
    elif datatype in FLOAT_DATATYPES:
        values = number_array(tensor.get("data"), shape, '"inputs"[0].data', 0.0, 1.0)
        images = values.astype(np.float32)
    else:
        raise HTTPError(400, f'"inputs"[0].datatype: expected one of {", ".join(INTEGER_DATATYPES + FLOAT_DATATYPES)} '
                             f'(integers are pixels 0..255, floats intensities 0..1), got {json_type(datatype)}')
    return request_id, images.reshape(shape[0], 28, 28)


def _check_shape(shape):
    expected = f'"inputs"[0].shape: expected one of {", ".join(_IMAGE_SHAPES)}'
    if not isinstance(shape, list) or not all(type(d) is int for d in shape):
        raise HTTPError(400, f"{expected}, got {json_type(shape)}")
    if shape[1:] not in ([28, 28], [1, 28, 28], [784]):
        raise HTTPError(400, f"{expected}, got {shape}")
    batch = shape[0]
    if batch < 1:
        raise HTTPError(400, f"{expected} with N >= 1, got N = {batch}")
    if batch > MAX_BATCH:
        raise HTTPError(413, f'"inputs"[0].shape: a batch of {batch} images exceeds the limit of {MAX_BATCH} '
                             f'per request')
    return shape


def _check_requested_outputs(outputs):
    """Clients may name the outputs they want; the only one there is, is "probabilities"."""
    if outputs is None:
        return
    if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
        raise HTTPError(400, f'"outputs": expected an array of objects like {{"name": "probabilities"}}, '
                             f'got {json_type(outputs)}')
    for requested in outputs:
        if requested.get("name") != "probabilities":
            raise HTTPError(400, f'"outputs": this model has one output, "probabilities"; '
                                 f'got a request for {json_type(requested.get("name"))}')


def infer_response(request_id, probabilities):
    """The inference response document for (N, 10) ``probabilities``."""
    response = {
        "model_name": MODEL_NAME,
        "model_version": MODEL_VERSION,
        "outputs": [{
            "name": "probabilities",
            "shape": list(probabilities.shape),
            "datatype": "FP32",
            "data": probabilities.astype(np.float32).ravel().tolist(),
        }],
    }
    if request_id is not None:
        response["id"] = request_id
    return response
