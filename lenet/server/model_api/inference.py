"""The Open Inference Protocol (v2, as KServe and Triton speak it) for the one model served.

A request carries one input tensor named "images": N MNIST-convention images (white ink on
black, the opposite of ``/api/mnist``'s canvas), shape [N, 28, 28], [N, 1, 28, 28] or [N, 784].
An integer datatype means pixels 0..255 (INT8 can hold only 0..127 of them), a floating one
intensities in [0, 1]. The data is either JSON ("data": flat row-major, or nested as the shape
says) or, with the binary tensor data extension, raw little-endian bytes after the JSON header.
The answer is one output tensor, "probabilities", shape [N, 10], FP32, in JSON or, when the
request asks for it, as binary data after the JSON header.

Binary tensor data extension (Triton's, adopted by KServe): the request's JSON header is the
first ``Inference-Header-Content-Length`` bytes of the body; an input with the parameter
``binary_data_size`` takes its data from the bytes after the header. A requested output with
``"parameters": {"binary_data": true}``, or the request parameter ``binary_data_output``, asks
for the output in binary; the response then has its own ``Inference-Header-Content-Length``.
"""

import json
import math
from dataclasses import dataclass

import numpy as np

from ..httpd.errors import HTTPError
from ..httpd.messages import Response, json_response
from .arrays import json_type, number_array

MODEL_NAME = "lenet5"
MODEL_VERSION = "1"
INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"
MAX_BATCH = 128  # images per request; larger batches are refused with 413
MAX_ID_LENGTH = 256  # characters of a request's "id", which the answer echoes
EXTENSIONS = ["binary_tensor_data"]

# The datatypes accepted, as NumPy dtypes in the binary extension's byte order (little-endian).
INTEGER_DATATYPES = {"UINT8": "u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
                     "INT8": "i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8"}
FLOAT_DATATYPES = {"FP16": "<f2", "FP32": "<f4", "FP64": "<f8"}
DATATYPES = {**INTEGER_DATATYPES, **FLOAT_DATATYPES}
_IMAGE_SHAPES = ("[N, 28, 28]", "[N, 1, 28, 28]", "[N, 784]")
_UNSUPPORTED_PARAMETERS = ("shared_memory_region", "shared_memory_byte_size", "shared_memory_offset",
                           "classification")

# JSON bodies: how many values and containers the largest sensible request holds (MAX_BATCH
# images of 784 numbers, nested at most as [N, 1, 28, 28], plus the few fields around them).
MAX_JSON_VALUES = MAX_BATCH * 784 + 1024
MAX_JSON_CONTAINERS = MAX_BATCH * (1 + 1 + 28) + 64  # per image of [N, 1, 28, 28]: itself, its channel, 28 rows


@dataclass
class InferRequest:
    request_id: object  # a string, or None when the request has no "id"
    images: np.ndarray  # (N, 28, 28): uint8 pixels for integer datatypes, float32 intensities otherwise
    binary_output: bool  # answer with the output as binary data after the JSON header


def model_metadata(model):
    """The model metadata document (``GET /v2/models/lenet5``), with the recorded test accuracy.

    ``inputs`` is what a client sends: the 28x28 digit (``model.digit_shape``), whatever the model.
    Two fields beyond the protocol's say what the network reads: ``architecture`` (LeNet5 or
    LeNet1998) and ``model_input``, the shape ``model.preprocess`` makes of the digit (LeNet1998:
    [-1, 1, 32, 32], the digit normalized and centred in a 2-pixel border of background).
    """
    padding = [(i - d) // 2 for i, d in zip(model.input_shape[1:], model.digit_shape)]
    return {
        "name": MODEL_NAME,
        "versions": [MODEL_VERSION],
        "platform": "numpy_numba",
        "inputs": [{"name": INPUT_NAME, "datatype": "UINT8", "shape": [-1, *model.digit_shape]}],
        "outputs": [{"name": OUTPUT_NAME, "datatype": "FP32", "shape": [-1, 10]}],
        "architecture": type(model).__name__,
        "model_input": {"shape": [-1, *model.input_shape], "padding": padding,
                        "normalization": dict(model.normalization)},
        "test_accuracy": model.metadata.get("test_accuracy"),
    }


def model_config():
    """Triton's model configuration document (``GET /v2/models/lenet5/config``, tritonclient's get_model_config)."""
    return {
        "name": MODEL_NAME,
        "platform": "numpy_numba",
        "max_batch_size": MAX_BATCH,
        "input": [{"name": INPUT_NAME, "data_type": "TYPE_UINT8", "dims": [28, 28]}],
        "output": [{"name": OUTPUT_NAME, "data_type": "TYPE_FP32", "dims": [10]}],
    }


def split_binary_body(body, header_length):
    """A request body -> ``(JSON header bytes, binary data bytes)``.

    ``header_length`` is the ``Inference-Header-Content-Length`` header's value: None when the
    whole body is JSON.

    Raises:
        HTTPError(400): the value is not a whole number of bytes within the body.
    """
    if header_length is None:
        return body, b""
    text = header_length.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        raise HTTPError(400, f"Inference-Header-Content-Length: expected the JSON header's length in bytes, "
                             f"got {text[:40]!r}")
    length = int(text)
    if length > len(body):
        raise HTTPError(400, f"Inference-Header-Content-Length: {length} bytes of JSON header declared, "
                             f"but the body has only {len(body)}")
    return body[:length], body[length:]


def parse_infer_request(document, binary_data=b""):
    """An inference request's JSON header (decoded) and binary data -> ``InferRequest``.

    Raises:
        HTTPError(400): anything missing, of the wrong type, shape, size or range.
        HTTPError(413): more than ``MAX_BATCH`` images.
    """
    if not isinstance(document, dict):
        raise HTTPError(400, f'expected a JSON object {{"inputs": [...]}}, got {json_type(document)}')
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise HTTPError(400, f'"id": expected a string, got {json_type(request_id)}')
    if request_id is not None and len(request_id) > MAX_ID_LENGTH:
        raise HTTPError(400, f'"id": {len(request_id)} characters, over the limit of {MAX_ID_LENGTH} '
                             "(the answer echoes it)")
    parameters = _parameters(document, '"parameters"')
    binary_output = _flag(parameters, "binary_data_output", '"parameters"', default=False)
    binary_output = _requested_output_is_binary(document.get("outputs"), binary_output)
    inputs = document.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1:
        got = json_type(inputs) if inputs is not None else "nothing"
        raise HTTPError(400, f'"inputs": expected an array of exactly one input tensor, got {got}')
    images = _input_images(inputs[0], binary_data)
    return InferRequest(request_id, images, binary_output)


def _input_images(tensor, binary_data):
    if not isinstance(tensor, dict):
        raise HTTPError(400, f'"inputs"[0]: expected an object with name, shape, datatype and data, '
                             f'got {json_type(tensor)}')
    name = tensor.get("name")
    if name != INPUT_NAME:
        raise HTTPError(400, f'"inputs"[0].name: this model\'s input is named "{INPUT_NAME}", got {json_type(name)}')
    shape = _check_shape(tensor.get("shape"))
    datatype = tensor.get("datatype")
    if datatype not in DATATYPES:
        raise HTTPError(400, f'"inputs"[0].datatype: expected one of {", ".join(DATATYPES)} (integers are '
                             f'pixels 0..255, floats intensities 0..1), got {json_type(datatype)}')
    parameters = _parameters(tensor, '"inputs"[0].parameters')
    binary_size = parameters.get("binary_data_size")
    if binary_size is None:
        if binary_data:
            raise HTTPError(400, f"{len(binary_data)} bytes of binary data follow the JSON header, but the input "
                                 f'has no "binary_data_size" parameter')
        values = _json_values(tensor.get("data"), shape, datatype)
    else:
        if "data" in tensor:
            raise HTTPError(400, '"inputs"[0]: "data" and the "binary_data_size" parameter exclude each other')
        values = _binary_values(binary_data, binary_size, shape, datatype)
    dtype = np.uint8 if datatype in INTEGER_DATATYPES else np.float32
    return values.astype(dtype).reshape(shape[0], 28, 28)


def _json_values(data, shape, datatype):
    if datatype in FLOAT_DATATYPES:
        return number_array(data, shape, f'"inputs"[0].data ({datatype} intensities)', 0.0, 1.0)
    largest = min(255, int(np.iinfo(INTEGER_DATATYPES[datatype]).max))  # INT8: 128..255 are not INT8 values
    note = "" if largest == 255 else f"; {datatype} values stop at {largest}"
    return number_array(data, shape, f'"inputs"[0].data ({datatype} pixels{note})', 0, largest, integers_only=True)


def _binary_values(binary_data, binary_size, shape, datatype):
    where = '"inputs"[0].parameters.binary_data_size'
    dtype = np.dtype(DATATYPES[datatype])
    expected = math.prod(shape) * dtype.itemsize
    if type(binary_size) is not int or binary_size != expected:
        raise HTTPError(400, f"{where}: a {datatype} tensor of shape {shape} takes {expected} bytes, "
                             f"got {json_type(binary_size)}")
    if len(binary_data) != binary_size:
        raise HTTPError(400, f"{where} is {binary_size}, but {len(binary_data)} bytes of binary data follow "
                             "the JSON header (see Inference-Header-Content-Length)")
    values = np.frombuffer(binary_data, dtype=dtype)
    if datatype in FLOAT_DATATYPES:
        if not np.all(np.isfinite(values)):
            raise HTTPError(400, f'"inputs"[0] ({datatype}, binary): expected finite intensities in [0, 1], '
                                 "got NaN or infinity")
        low, high, kind = 0.0, 1.0, "intensities"
    else:
        low, high, kind = 0, 255, "pixels"
    smallest, largest = values.min(), values.max()
    if smallest < low or largest > high:
        raise HTTPError(400, f'"inputs"[0] ({datatype}, binary): expected {kind} in [{low}, {high}], '
                             f"got values from {smallest} to {largest}")
    return values


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


def _parameters(holder, where):
    """The "parameters" object of a request, input or output ({} if absent), refusing what is not served."""
    parameters = holder.get("parameters", {})
    if not isinstance(parameters, dict):
        raise HTTPError(400, f"{where}: expected an object, got {json_type(parameters)}")
    for name in _UNSUPPORTED_PARAMETERS:
        if name in parameters:
            raise HTTPError(400, f'{where}: "{name}" is not supported by this server '
                                 "(it serves the binary_tensor_data extension only)")
    return parameters


def _flag(parameters, name, where, default):
    value = parameters.get(name, default)
    if not isinstance(value, bool):
        raise HTTPError(400, f'{where}.{name}: expected true or false, got {json_type(value)}')
    return value


def _requested_output_is_binary(outputs, default):
    """Clients may name the outputs they want; the only one there is, is "probabilities".

    Returns whether it is to be sent as binary data: its own "binary_data" parameter if given,
    else the request's ``binary_data_output`` (``default``).
    """
    if outputs is None:
        return default
    if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
        raise HTTPError(400, f'"outputs": expected an array of objects like {{"name": "{OUTPUT_NAME}"}}, '
                             f'got {json_type(outputs)}')
    binary = default
    for index, requested in enumerate(outputs):
        if requested.get("name") != OUTPUT_NAME:
            raise HTTPError(400, f'"outputs": this model has one output, "{OUTPUT_NAME}"; '
                                 f'got a request for {json_type(requested.get("name"))}')
        where = f'"outputs"[{index}].parameters'
        binary = _flag(_parameters(requested, where), "binary_data", where, default)
    return binary


def infer_response(request_id, probabilities, binary_output=False):
    """The inference response for (N, 10) ``probabilities``: all JSON, or a JSON header and binary data."""
    output = {"name": OUTPUT_NAME, "shape": list(probabilities.shape), "datatype": "FP32"}
    document = {"model_name": MODEL_NAME, "model_version": MODEL_VERSION, "outputs": [output]}
    if request_id is not None:
        document["id"] = request_id
    if not binary_output:
        output["data"] = probabilities.astype(np.float32).ravel().tolist()
        return json_response(document)
    data = np.ascontiguousarray(probabilities, dtype="<f4").tobytes()
    output["parameters"] = {"binary_data_size": len(data)}
    header = json.dumps(document, allow_nan=False, separators=(",", ":")).encode("utf-8")
    return Response(200, header + data, "application/octet-stream",
                    {"Inference-Header-Content-Length": str(len(header)), "Cache-Control": "no-store"})
