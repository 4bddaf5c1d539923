"""The URL paths the prediction server answers, and what each method on them does.

``build_routes`` returns the ``RouteTable`` (see httpd/routing.py) of the page, the course app's
API and the Open Inference Protocol.
"""

import contextlib
import dataclasses
import functools
import threading

import numpy as np

from data.preprocess import BlankImageError, prepare_digit

from ..httpd.encoding import compress_response, decode_body
from ..httpd.errors import HTTPError
from ..httpd.jsonbody import parse_json
from ..httpd.messages import Response, json_response
from ..httpd.routing import Endpoint, RouteTable
from .activation_maps import with_activations
from .arrays import json_type, number_array
from .inference import (EXTENSIONS, MAX_JSON_CONTAINERS, MAX_JSON_VALUES, MODEL_NAME, MODEL_VERSION,
                        infer_response, model_config, model_metadata, parse_infer_request, split_binary_body)
from .upload import decode_image

MAX_IMAGE_BODY = 1024 * 1024      # an image file or a 28x28 JSON array
MAX_INFER_BODY = 4 * 1024 * 1024  # MAX_BATCH images of 784 numbers written as long floats

# At most this many image files are decoded at once (each may take up to ~100 MB while it is). A
# request waits at most DECODING_WAIT_SECONDS for a slot, then gets a 503 with Retry-After: the
# page's own uploads never queue for long behind a burst of costly ones.
IMAGE_DECODING_SLOT_COUNT = 2
IMAGE_DECODING_SLOTS = threading.BoundedSemaphore(IMAGE_DECODING_SLOT_COUNT)
DECODING_WAIT_SECONDS = 1.0

# JSON bodies of the one-image routes: 784 numbers, nested at most as 28 rows, in an object.
MAX_IMAGE_JSON_VALUES = 784 + 64
MAX_IMAGE_JSON_CONTAINERS = 1 + 28 + 8

MNIST_BODY = "a JSON array of 784 integers 0..255 (a 28x28 image, row-major, dark ink on a white background)"
PREDICT_BODY = 'an image file (PNG, JPEG, BMP or GIF) or JSON {"image": <28x28 array of grey levels 0..255>}'
INFER_BODY = ('a JSON inference request {"inputs": [{"name": "images", "shape", "datatype", "data"}]} '
              "(or its JSON header, then binary tensor data)")


class ModelRouteTable(RouteTable):
    """The routes, and a 404 for a model path that names the model there is."""

    def not_found(self, path):
        parts = path.split("/")
        if len(parts) > 3 and parts[1:3] == ["v2", "models"] and parts[3] != MODEL_NAME:
            return f"unknown model {parts[3]!r}: this server serves {MODEL_NAME!r} only"
        return super().not_found(path)


def build_routes(static_files):
    """The route table, with every static file at its URL path."""
    model_paths = [f"/v2/models/{MODEL_NAME}", f"/v2/models/{MODEL_NAME}/versions/{MODEL_VERSION}"]
    routes = {
        "/ping": {"GET": Endpoint(ping)},
        "/favicon.ico": {"GET": Endpoint(no_content)},
        "/api/mnist": {"POST": Endpoint(api_mnist, MAX_IMAGE_BODY)},
        "/api/predict": {"POST": Endpoint(api_predict, MAX_IMAGE_BODY)},
        "/api/activations": {"POST": Endpoint(with_activations(api_predict), MAX_IMAGE_BODY)},
        "/v2": {"GET": Endpoint(server_metadata)},
        "/v2/health/live": {"GET": Endpoint(live)},
        "/v2/health/ready": {"GET": Endpoint(ready)},
    }
    for base in model_paths:
        routes[base] = {"GET": Endpoint(get_model_metadata)}
        routes[base + "/ready"] = {"GET": Endpoint(model_ready)}
        routes[base + "/config"] = {"GET": Endpoint(get_model_config)}
        routes[base + "/infer"] = {"POST": Endpoint(infer, MAX_INFER_BODY)}
    for path in static_files.paths():
        routes[path] = {"GET": Endpoint(_static_handler(static_files, path))}
    for methods in routes.values():
        for method, endpoint in methods.items():
            if endpoint.max_body is not None:
                methods[method] = dataclasses.replace(endpoint, handler=_decoding(endpoint.handler, endpoint.max_body))
    return ModelRouteTable(routes)


def _decoding(handler, limit):
    """``handler`` given the body as it was before ``Content-Encoding`` (gzip or deflate), at most ``limit`` bytes."""
    @functools.wraps(handler)
    def decoded(server, request):
        encoding = request.headers.get("Content-Encoding")
        if encoding is None:
            return handler(server, request)
        # The inflated body may reach ``limit`` bytes beside the compressed one the handler holds:
        # it counts against the same memory budget, reserved before inflating.
        with server.body_memory.hold(limit, what="inflated request body"):
            request = dataclasses.replace(request, body=decode_body(request.body, encoding, limit))
            return handler(server, request)
    return decoded


def _static_handler(static_files, path):
    content, content_type = static_files.get(path)

    def serve_file(server, request):
        return Response(200, content, content_type, {"Cache-Control": "no-cache"})
    serve_file.__doc__ = f"The static file {path}."
    return serve_file


def no_content(server, request):
    """Browsers ask for a favicon; there is none, and saying so with 204 keeps their consoles clean."""
    return Response(204, b"", "application/json")


def ping(server, request):
    """TorchServe's health check."""
    return json_response({"status": "Healthy"})


def live(server, request):
    return json_response({"live": True})


def ready(server, request):
    # The model is loaded and warmed up before the server accepts connections.
    return json_response({"ready": True})


def server_metadata(server, request):
    return json_response({"name": "lenet5-scratch", "version": "0.1.0", "extensions": EXTENSIONS})


def get_model_metadata(server, request):
    return json_response(model_metadata(server.model))


def get_model_config(server, request):
    return json_response(model_config())


def model_ready(server, request):
    return json_response({"name": MODEL_NAME, "ready": True})


def api_mnist(server, request):
    """The original course app's API: 784 pixels of dark ink on white -> the ten probabilities."""
    document = parse_json(request.body, MNIST_BODY, MAX_IMAGE_JSON_VALUES, MAX_IMAGE_JSON_CONTAINERS)
    pixels = number_array(document, (28, 28), "image", 0, 255, integers_only=True)
    # The canvas sent dark ink on white; MNIST (and the model) is white ink on black. As uint8
    # the pixels take exactly the path training's did (the same normalization table).
    probabilities = server.predict((255 - pixels).astype(np.uint8)[None])[0]
    return json_response({
        "results": probabilities.tolist(),
        "prediction": int(np.argmax(probabilities)),
        "ms": request.elapsed_ms(),
    })


def api_predict(server, request):
    """Any picture of a digit -> MNIST-style preprocessing -> prediction, probabilities, the image seen."""
    if request.content_type() == "application/json" or request.body.lstrip()[:1] == b"{":
        document = parse_json(request.body, PREDICT_BODY, MAX_IMAGE_JSON_VALUES, MAX_IMAGE_JSON_CONTAINERS)
        if not isinstance(document, dict) or "image" not in document:
            raise HTTPError(400, f"expected {PREDICT_BODY}, got {json_type(document)} without an \"image\" field")
        source = number_array(document["image"], (28, 28), '"image"', 0, 255)
        digit = _prepare(source)
    else:
        if not request.body:
            raise HTTPError(400, f"empty body: expected {PREDICT_BODY}")
        with decoding_slot(request):
            digit = _prepare(decode_image(request.body))
    probabilities = server.predict(digit[None])[0]
    return json_response({
        "prediction": int(np.argmax(probabilities)),
        "probabilities": probabilities.tolist(),
        "ms": request.elapsed_ms(),
        "image": digit.tolist(),
    })


@contextlib.contextmanager
def decoding_slot(request):
    """Hold one of the ``IMAGE_DECODING_SLOTS`` for a ``with`` block.

    One thread per connection: without the slots, many clients together could exhaust memory.

    Raises:
        HTTPError(503, Retry-After): no slot came free within ``DECODING_WAIT_SECONDS``.
        ConnectionError: the client closed its connection while waiting (nothing is decoded for it).
    """
    if not IMAGE_DECODING_SLOTS.acquire(timeout=DECODING_WAIT_SECONDS):
        raise HTTPError(503, f"the server is decoding as many images as it allows ({IMAGE_DECODING_SLOT_COUNT}) and none "
                             f"finished within {DECODING_WAIT_SECONDS:g} s; retry shortly",
                        headers={"Retry-After": "1"})
    try:
        if request.client_gone():
            raise ConnectionError("the client closed its connection before its image was decoded")
        yield
    finally:
        IMAGE_DECODING_SLOTS.release()


def _prepare(source):
    try:
        return prepare_digit(source)
    except BlankImageError as exc:
        raise HTTPError(422, str(exc)) from None


def infer(server, request):
    """Open Inference Protocol v2: a batch of MNIST-convention images -> (N, 10) probabilities.

    JSON, or a JSON header and binary tensor data (the binary_tensor_data extension) both ways.
    """
    header, binary_data = split_binary_body(request.body, request.headers.get("Inference-Header-Content-Length"))
    document = parse_json(header, INFER_BODY, MAX_JSON_VALUES, MAX_JSON_CONTAINERS)
    parsed = parse_infer_request(document, binary_data)
    response = infer_response(parsed.request_id, server.predict(parsed.images), parsed.binary_output)
    return compress_response(response, request.headers.get("Accept-Encoding"))
