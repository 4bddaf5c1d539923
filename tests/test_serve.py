"""The prediction server over real HTTP on a loopback port: every route, every bad input, concurrency.

The server runs in a background thread of the test process with a LeNet5 built here (untrained:
the tests compare its answers with ``model.predict`` on the same input). Tests that need real
accuracy use the shipped trained model and skip while it does not exist.
"""

import http.client
import io
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw

import nn
from data.preprocess import prepare_digit
from lenet.server import PredictionServer, serving_in_background
from lenet.server.model_api.inference import MAX_BATCH

SHORT_TIMEOUT = 0.5  # seconds, for the server of the stalled-client tests (so they do not wait long)
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- fixtures and helpers -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def log_lines():
    return []


@pytest.fixture(scope="module")
def server(model, log_lines):
    server = PredictionServer(model, port=0, log=log_lines.append)
    with serving_in_background(server):
        yield server


@pytest.fixture(scope="module")
def impatient_server(model):
    """A server that gives clients only SHORT_TIMEOUT seconds to send a request."""
    server = PredictionServer(model, port=0, request_timeout=SHORT_TIMEOUT, log=None)
    with serving_in_background(server):
        yield server


def call(server, method, path, body=None, headers=None):
    """One request on a new connection -> ``(status, response, body bytes)``."""
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response, response.read()
    finally:
        connection.close()


def call_json(server, method, path, document=None, body=None, headers=None):
    """Like ``call``, sending ``document`` as JSON (or raw ``body``); returns ``(status, decoded JSON)``."""
    if document is not None:
        body = json.dumps(document).encode()
        headers = {"Content-Type": "application/json", **(headers or {})}
    status, response, data = call(server, method, path, body, headers)
    assert response.getheader("Content-Type") == "application/json", data[:200]
    return status, json.loads(data)


def raw_connection(server):
    return socket.create_connection(server.server_address[:2], timeout=10)


def read_until_closed(sock):
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def parse_raw_response(raw):
    """``(status, headers dict, JSON document)`` of one raw HTTP response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return status, headers, json.loads(body)


def ink_on_white_digit(rng):
    """A random scribble, dark ink on white, as the course app's canvas sends: 28x28 ints 0..255."""
    image = Image.new("L", (28, 28), 255)
    pen = ImageDraw.Draw(image)
    points = [tuple(int(v) for v in rng.integers(4, 24, 2)) for _ in range(4)]
    pen.line(points, fill=0, width=3)
    return np.asarray(image)


def png_bytes(array_or_image, fmt="PNG"):
    image = array_or_image if isinstance(array_or_image, Image.Image) else Image.fromarray(array_or_image)
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def png_claiming(width, height, rows=None):
    """A greyscale PNG of ``width`` x ``height`` zeros, compressed; with ``rows`` its data stops after that many rows.

    All-zero rows compress about a thousand to one: a decompression bomb is a small file.
    """
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * ((width + 1) * (height if rows is None else rows)), 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


# -- the page -----------------------------------------------------------------------------------
def test_page_is_served_with_security_headers(server):
    status, response, body = call(server, "GET", "/")
    assert status == 200
    assert response.getheader("Content-Type") == "text/html; charset=utf-8"
    assert b'id="canvas"' in body and b'id="prediction"' in body
    assert response.getheader("X-Content-Type-Options") == "nosniff"
    policy = response.getheader("Content-Security-Policy")
    assert "default-src 'self'" in policy
    assert "http" not in policy and "*" not in policy and "unsafe" not in policy


@pytest.mark.parametrize("path, content_type", [
    ("/static/app.js", "text/javascript; charset=utf-8"),
    ("/static/style.css", "text/css; charset=utf-8"),
    ("/static/index.html", "text/html; charset=utf-8"),
])
def test_static_files_are_served_with_their_types(server, path, content_type):
    status, response, body = call(server, "GET", path)
    assert status == 200 and response.getheader("Content-Type") == content_type and body


def test_page_fetches_nothing_from_other_hosts(server):
    for path in ("/", "/static/app.js", "/static/style.css"):
        body = call(server, "GET", path)[2].decode()
        assert not re.search(r"(https?:)?//[a-z0-9]", body, re.IGNORECASE), path


def test_head_answers_the_headers_of_get_without_a_body(server):
    status, response, body = call(server, "HEAD", "/")
    assert status == 200 and body == b""
    assert int(response.getheader("Content-Length")) == len(call(server, "GET", "/")[2])


# -- health and metadata --------------------------------------------------------------------------
@pytest.mark.parametrize("path, expected", [
    ("/ping", {"status": "Healthy"}),
    ("/v2/health/live", {"live": True}),
    ("/v2/health/ready", {"ready": True}),
    ("/v2/models/lenet5/ready", {"name": "lenet5", "ready": True}),
])
def test_health_routes_answer_as_torchserve_and_the_v2_protocol_do(server, path, expected):
    assert call_json(server, "GET", path) == (200, expected)


def test_model_metadata_describes_inputs_outputs_and_test_accuracy(server):
    status, metadata = call_json(server, "GET", "/v2/models/lenet5")
    assert status == 200
    assert metadata["name"] == "lenet5" and metadata["versions"] == ["1"] and metadata["platform"]
    assert metadata["inputs"] == [{"name": "images", "datatype": "UINT8", "shape": [-1, 28, 28]}]
    assert metadata["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]
    assert metadata["test_accuracy"] == 0.5


# -- POST /api/mnist ------------------------------------------------------------------------------
def test_api_mnist_inverts_the_canvas_and_returns_the_models_probabilities(server, model):
    pixels = ink_on_white_digit(np.random.default_rng(1))
    status, answer = call_json(server, "POST", "/api/mnist", pixels.ravel().tolist())
    assert status == 200
    expected = model.predict((255 - pixels).astype(np.uint8))[0]
    np.testing.assert_array_equal(np.float32(answer["results"]), expected)  # exactly the model's answer
    assert abs(sum(answer["results"]) - 1) < 1e-5
    assert answer["prediction"] == int(np.argmax(expected))
    assert isinstance(answer["ms"], float) and answer["ms"] >= 0


def test_api_mnist_accepts_the_image_as_28_rows_of_28(server, model):
    pixels = ink_on_white_digit(np.random.default_rng(2))
    flat = call_json(server, "POST", "/api/mnist", pixels.ravel().tolist())[1]
    nested = call_json(server, "POST", "/api/mnist", pixels.tolist())[1]
    assert flat["results"] == nested["results"]


# -- POST /api/predict ----------------------------------------------------------------------------
def drawn_seven(size=(200, 160)):
    image = Image.new("L", size, 255)
    pen = ImageDraw.Draw(image)
    pen.line([(40, 30), (150, 30), (80, 140)], fill=0, width=14)
    return image


@pytest.mark.parametrize("fmt, content_type", [
    ("PNG", "image/png"), ("JPEG", "image/jpeg"), ("BMP", "image/bmp"), ("GIF", "image/gif"),
])
def test_api_predict_preprocesses_an_image_file_like_mnist(server, model, fmt, content_type):
    data = png_bytes(drawn_seven(), fmt)
    status, answer = call_json(server, "POST", "/api/predict", body=data, headers={"Content-Type": content_type})
    assert status == 200
    seen = prepare_digit(Image.open(io.BytesIO(data)))
    assert answer["image"] == seen.tolist()
    expected = model.predict(seen)[0]
    np.testing.assert_allclose(answer["probabilities"], expected, atol=1e-5)
    assert answer["prediction"] == int(np.argmax(expected)) and answer["ms"] >= 0


def test_api_predict_takes_a_json_image_too(server):
    pixels = np.asarray(drawn_seven().resize((28, 28)))
    status, from_json = call_json(server, "POST", "/api/predict", {"image": pixels.tolist()})
    from_png = call_json(server, "POST", "/api/predict", body=png_bytes(pixels),
                         headers={"Content-Type": "image/png"})[1]
    assert status == 200
    assert from_json["image"] == from_png["image"] == prepare_digit(pixels).tolist()
    assert from_json["probabilities"] == from_png["probabilities"]


# -- POST /v2/models/lenet5/infer -----------------------------------------------------------------
@pytest.mark.parametrize("shape", [[3, 28, 28], [3, 1, 28, 28], [3, 784]])
def test_v2_infer_answers_a_batch_with_n_by_10_probabilities(server, model, shape):
    images = np.random.default_rng(3).integers(0, 256, (3, 28, 28)).astype(np.uint8)
    request = {"id": "batch-7", "inputs": [{"name": "images", "shape": shape, "datatype": "UINT8",
                                            "data": images.ravel().tolist()}]}
    status, answer = call_json(server, "POST", "/v2/models/lenet5/infer", request)
    assert status == 200
    assert answer["model_name"] == "lenet5" and answer["id"] == "batch-7"
    (output,) = answer["outputs"]
    assert output["name"] == "probabilities" and output["datatype"] == "FP32" and output["shape"] == [3, 10]
    np.testing.assert_allclose(np.reshape(output["data"], (3, 10)), model.predict(images), atol=1e-5)


def test_v2_infer_takes_nested_data_and_fp32_intensities(server, model):
    images = np.random.default_rng(4).random((2, 28, 28)).astype(np.float32)
    request = {"inputs": [{"name": "images", "shape": [2, 28, 28], "datatype": "FP32", "data": images.tolist()}]}
    status, answer = call_json(server, "POST", "/v2/models/lenet5/infer", request)
    assert status == 200 and "id" not in answer
    np.testing.assert_allclose(np.reshape(answer["outputs"][0]["data"], (2, 10)), model.predict(images), atol=1e-5)


# -- bad input: 4xx with a message that says what was expected ------------------------------------
NUMBERS = [0] * 784

BAD_MNIST_BODIES = {
    "empty": (b"", "empty body"),
    "whitespace": (b"  \n", "empty body"),
    "malformed": (b"[1, 2,", "malformed JSON"),
    "not-utf8": (b"[\xff\xfe]", "UTF-8"),
    "object": (json.dumps({"pixels": NUMBERS}).encode(), "784"),
    "too-short": (json.dumps(NUMBERS[:783]).encode(), "got 783"),
    "too-long": (json.dumps(NUMBERS + [0]).encode(), "got 785"),
    "above-255": (json.dumps(NUMBERS[:-1] + [256]).encode(), "[0, 255]"),
    "negative": (json.dumps([-1] + NUMBERS[1:]).encode(), "[0, 255]"),
    "fraction": (json.dumps([0.5] + NUMBERS[1:]).encode(), "integers"),
    "nan": (("[NaN" + ",0" * 783 + "]").encode(), "NaN"),
    "infinity": (("[Infinity" + ",0" * 783 + "]").encode(), "Infinity"),
    "overflowing-float": (("[1e400" + ",0" * 783 + "]").encode(), "got the number inf"),
    "huge-integer": (("[" + "9" * 400 + ",0" * 783 + "]").encode(), "too large"),
    "too-many-digits": (("[" + "9" * 5000 + ",0" * 783 + "]").encode(), "invalid JSON value"),
    "string": (json.dumps(["0"] + NUMBERS[1:]).encode(), "the string '0'"),
    "null": (json.dumps([None] + NUMBERS[1:]).encode(), "null"),
    "boolean": (json.dumps([True] + NUMBERS[1:]).encode(), "true"),
    "nested-junk": (json.dumps([[0, [1]]] + NUMBERS[2:]).encode(), "shape"),
    "ragged-rows": (json.dumps([[0] * 28] * 27 + [[0] * 27]).encode(), "shape"),
}


@pytest.mark.parametrize("body, message", BAD_MNIST_BODIES.values(), ids=BAD_MNIST_BODIES.keys())
def test_api_mnist_refuses_bad_bodies_with_400_and_the_reason(server, body, message):
    status, answer = call_json(server, "POST", "/api/mnist", body=body, headers={"Content-Type": "application/json"})
    assert status == 400
    assert message in answer["error"]


# Decoding JSON costs by what it holds more than by its size: every JSON route counts values and
# containers in the raw bytes, before decoding, against what its largest sensible body holds.
OVER_JSON_CAPS = {
    "empty-arrays": b"[" + b"[]," * 300_000 + b"[]]",
    "deeply-nested": b"[" * 100_000 + b"]" * 100_000,
    "numbers": b"[" + b"0," * 300_000 + b"0]",
    "empty-objects": b"[" + b"{}," * 300_000 + b"{}]",
}


@pytest.mark.parametrize("path", ["/api/mnist", "/api/predict", "/api/activations", "/v2/models/lenet5/infer"])
@pytest.mark.parametrize("body", OVER_JSON_CAPS.values(), ids=OVER_JSON_CAPS.keys())
def test_every_json_route_refuses_more_values_or_containers_than_it_could_use_with_413(server, path, body):
    status, answer = call_json(server, "POST", path, body=body, headers={"Content-Type": "application/json"})
    assert status == 413
    assert re.search(r"more JSON (values|arrays and objects) than the limit of \d+", answer["error"])


BAD_IMAGES = {
    "not-an-image": (b"hello, this is text", 415, "PNG, JPEG, BMP or GIF"),
    "truncated-png": (png_bytes(np.full((64, 64), 200, np.uint8))[:60], 400, "PNG"),
    "bomb-over-server-limit": (png_claiming(5000, 5000), 413, "too large"),
    "bomb-over-pillow-limit": (png_claiming(20000, 20000, rows=10), 413, "bomb"),
    "blank": (png_bytes(np.full((64, 64), 255, np.uint8)), 422, "blank"),
    "json-without-image": (b'{"picture": []}', 400, '"image"'),
    "json-wrong-shape": (json.dumps({"image": [[0] * 28] * 27}).encode(), 400, "shape"),
}


@pytest.mark.parametrize("body, status, message", BAD_IMAGES.values(), ids=BAD_IMAGES.keys())
def test_api_predict_refuses_bad_images_with_4xx_and_the_reason(server, body, status, message):
    assert len(body) < 1024 * 1024  # a bomb is a small file
    content_type = "application/json" if body.startswith(b"{") else "application/octet-stream"
    answer = call_json(server, "POST", "/api/predict", body=body, headers={"Content-Type": content_type})
    assert answer[0] == status and message in answer[1]["error"]


def infer_request(**changes):
    tensor = {"name": "images", "shape": [1, 28, 28], "datatype": "UINT8", "data": NUMBERS}
    tensor.update(changes)
    return {"inputs": [tensor]}


BAD_INFER = {
    "not-an-object": ([1, 2], 400, "JSON object"),
    "no-inputs": ({"id": "x"}, 400, "exactly one input"),
    "two-inputs": ({"inputs": [infer_request()["inputs"][0]] * 2}, 400, "exactly one input"),
    "id-not-a-string": ({"id": 5, **infer_request()}, 400, '"id"'),
    "no-name": ({"inputs": [{"shape": [1, 784], "datatype": "UINT8", "data": NUMBERS}]}, 400, "name"),
    "bad-datatype": (infer_request(datatype="BYTES"), 400, "datatype"),
    "bad-shape": (infer_request(shape=[1, 32, 32]), 400, "[N, 28, 28]"),
    "zero-batch": (infer_request(shape=[0, 28, 28], data=[]), 400, "N >= 1"),
    "batch-over-limit": (infer_request(shape=[MAX_BATCH + 1, 28, 28]), 413, f"limit of {MAX_BATCH}"),
    "short-data": (infer_request(data=NUMBERS[:-1]), 400, "got 783"),
    "float-for-uint8": (infer_request(data=[0.5] + NUMBERS[1:]), 400, "integers"),
    "fp32-above-1": (infer_request(datatype="FP32", data=[2.0] + NUMBERS[1:]), 400, "[0.0, 1.0]"),
    "unknown-output": ({"outputs": [{"name": "logits"}], **infer_request()}, 400, "probabilities"),
}


@pytest.mark.parametrize("document, status, message", BAD_INFER.values(), ids=BAD_INFER.keys())
def test_v2_infer_refuses_bad_requests_with_4xx_and_the_reason(server, document, status, message):
    answer = call_json(server, "POST", "/v2/models/lenet5/infer", document)
    assert answer[0] == status and message in answer[1]["error"]


# -- paths and methods ----------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/nope", "/api", "/v2/models/lenet5/nope", "/static/", "/static/missing.js"])
def test_unknown_paths_are_404(server, path):
    status, answer = call_json(server, "GET", path)
    assert status == 404 and "no such path" in answer["error"]


@pytest.mark.parametrize("path", ["/v2/models/nope", "/v2/models/nope/ready", "/v2/models/other/versions/1/infer"])
def test_a_model_path_of_an_unknown_model_says_so_and_names_the_model_served(server, path):
    status, answer = call_json(server, "GET", path)
    model = path.split("/")[3]
    assert status == 404 and answer["error"] == f"unknown model {model!r}: this server serves 'lenet5' only"


@pytest.mark.parametrize("method, path, allowed", [
    ("GET", "/api/mnist", "POST"),
    ("DELETE", "/ping", "GET, HEAD"),
    ("POST", "/", "GET, HEAD"),
    ("PUT", "/v2/models/lenet5/infer", "POST"),
    ("BREW", "/api/predict", "POST"),
])
def test_wrong_methods_are_405_with_an_allow_header(server, method, path, allowed):
    status, response, body = call(server, method, path)
    assert status == 405 and response.getheader("Allow") == allowed
    assert method in json.loads(body)["error"]


@pytest.mark.parametrize("method, path", [("POST", "/nope"), ("POST", "/ping"), ("GET", "/nope")])
def test_a_body_left_unread_is_never_taken_for_a_second_request(server, method, path):
    # The body of a refused request is itself a valid request; answering it would let a client
    # smuggle requests past whatever inspected the first one.
    smuggled = b"GET /ping HTTP/1.1\r\nHost: localhost\r\n\r\n"
    with raw_connection(server) as sock:
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len(smuggled)}\r\n\r\n".encode()
                     + smuggled)
        raw = read_until_closed(sock)
    assert raw.count(b"HTTP/1.1 ") == 1, raw
    assert parse_raw_response(raw)[0] in (404, 405)


@pytest.mark.parametrize("path", [
    "/static/../serve.py", "/static/%2e%2e/serve.py", "/static/..%2fserve.py", "/static/%2e%2e%2fserve.py",
    "/../serve.py", "//etc/passwd", "/static//etc/passwd", "/static/..\\serve.py", "/static/C:\\Windows\\win.ini",
    "/static/app.js/..", "/static/./app.js",
])
def test_paths_that_try_to_leave_the_static_folder_are_404(server, path):
    with raw_connection(server) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        status, _, answer = parse_raw_response(read_until_closed(sock))
    assert status == 404 and "error" in answer


# -- the HTTP layer: lengths, limits, timeouts ----------------------------------------------------
def test_body_over_the_limit_is_413_without_being_read(server):
    with raw_connection(server) as sock:
        # Declares 5 MiB but sends only the start: an answer now proves the rest was not awaited.
        sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5242880\r\n\r\n" + b"\x89PNG" * 16)
        status, headers, answer = parse_raw_response(read_until_closed(sock))
    assert status == 413 and "limit" in answer["error"] and headers["Connection"] == "close"


@pytest.mark.parametrize("length_header, status, message", [
    ("", 411, "Content-Length header is required"),
    ("Content-Length: -5\r\n", 400, "non-negative integer, got '-5'"),
    ("Content-Length: ten\r\n", 400, "non-negative integer"),
    ("Content-Length: 10\r\nContent-Length: 12\r\n", 400, "conflicting"),
    ("Transfer-Encoding: chunked\r\n", 411, "chunked"),
])
def test_missing_or_invalid_content_length_is_refused(server, length_header, status, message):
    with raw_connection(server) as sock:
        sock.sendall(f"POST /api/mnist HTTP/1.1\r\nHost: localhost\r\n{length_header}\r\n[1, 2]".encode())
        answer = parse_raw_response(read_until_closed(sock))
    assert answer[0] == status and message in answer[2]["error"]


def test_body_shorter_than_content_length_times_out_with_408_while_others_are_served(impatient_server):
    with raw_connection(impatient_server) as liar:
        liar.sendall(b"POST /api/mnist HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4000\r\n\r\n[0, 0, 0")
        # While the server waits for the rest of that body, another client is answered.
        assert call_json(impatient_server, "GET", "/ping") == (200, {"status": "Healthy"})
        status, _, answer = parse_raw_response(read_until_closed(liar))
    assert status == 408 and "8 of the 4000 body bytes" in answer["error"]


def test_body_cut_short_by_the_client_closing_is_400(server):
    with raw_connection(server) as sock:
        sock.sendall(b"POST /api/mnist HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4000\r\n\r\n[0, 0, 0")
        sock.shutdown(socket.SHUT_WR)
        status, _, answer = parse_raw_response(read_until_closed(sock))
    assert status == 400 and "ended after 8 bytes" in answer["error"]


def test_client_stalling_in_its_headers_gets_408_and_blocks_no_one(impatient_server):
    with raw_connection(impatient_server) as staller:
        staller.sendall(b"POST /api/mnist HTTP/1.1\r\nHost: te")
        assert call_json(impatient_server, "GET", "/v2/health/live") == (200, {"live": True})
        status, _, answer = parse_raw_response(read_until_closed(staller))
    assert status == 408 and "timed out" in answer["error"]


def test_idle_keep_alive_connection_is_closed_after_the_timeout(impatient_server):
    with raw_connection(impatient_server) as sock:
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: localhost\r\n\r\n")
        raw = read_until_closed(sock)  # returns only because the server closes the idle connection
    assert raw.startswith(b"HTTP/1.1 200") and raw.count(b"HTTP/1.1") == 1


def test_keep_alive_serves_many_requests_on_one_connection(server):
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    try:
        for path in ["/ping", "/v2/health/ready", "/", "/nope", "/ping"]:
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            assert response.status in (200, 404) and not response.will_close
        connection.request("POST", "/api/mnist", body=json.dumps(NUMBERS), headers={"Content-Type": "application/json"})
        assert connection.getresponse().status == 200
        assert connection.sock is not None  # still the first socket: http.client reconnects silently otherwise
    finally:
        connection.close()


@pytest.mark.parametrize("request_bytes, status", [
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414),
    (b"NONSENSE\r\n\r\n", 400),
    (b"GET /\r\n\r\n", 505),
    (b"GET / HTTP/9.9\r\n\r\n", 505),
    (b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n", 431),
])
def test_malformed_requests_get_json_errors(server, request_bytes, status):
    with raw_connection(server) as sock:
        sock.sendall(request_bytes)
        answer = parse_raw_response(read_until_closed(sock))
    assert answer[0] == status and answer[2]["error"]


def test_each_request_is_logged_once_with_method_path_status_and_time(server, log_lines):
    call(server, "GET", "/ping?probe=log")
    call(server, "DELETE", "/ping?probe=log")
    # The server logs after the response has left, so the client may read it first: wait a little.
    deadline = time.monotonic() + 5
    while len([line for line in log_lines if "probe=log" in line]) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    lines = [line for line in log_lines if "probe=log" in line]
    assert len(lines) == 2
    assert re.fullmatch(r"127\.0\.0\.1 GET /ping\?probe=log 200 \d+\.\d ms", lines[0])
    assert re.fullmatch(r"127\.0\.0\.1 DELETE /ping\?probe=log 405 \d+\.\d ms", lines[1])


def test_a_failing_model_gives_500_and_the_server_keeps_serving(model):
    class FailingModel:
        metadata = {}
        failing = False

        def __getattr__(self, name):  # the layers, shapes and preprocess the server warms up with
            return getattr(model, name)

        def predict(self, images):
            if self.failing:
                raise RuntimeError("simulated bug")
            return model.predict(images)

    failing, lines = FailingModel(), []
    server = PredictionServer(failing, port=0, log=lines.append)
    failing.failing = True
    with serving_in_background(server):
        status, answer = call_json(server, "POST", "/api/mnist", NUMBERS)
        assert (status, answer) == (500, {"error": "internal server error"})
        assert call_json(server, "GET", "/ping") == (200, {"status": "Healthy"})
    assert any("simulated bug" in line for line in lines)  # the traceback goes to the log, not the client


# -- concurrency ----------------------------------------------------------------------------------
def test_concurrent_clients_all_get_their_own_correct_answers(server, model):
    threads_count, per_thread = 16, 50
    rng = np.random.default_rng(5)
    inputs = [[ink_on_white_digit(rng) for _ in range(per_thread)] for _ in range(threads_count)]
    answers = [[None] * per_thread for _ in range(threads_count)]
    failures = []

    def client(index):
        connection = http.client.HTTPConnection(*server.server_address[:2], timeout=30)
        try:
            for j, pixels in enumerate(inputs[index]):
                connection.request("POST", "/api/mnist", body=json.dumps(pixels.ravel().tolist()),
                                   headers={"Content-Type": "application/json"})
                response = connection.getresponse()
                answers[index][j] = (response.status, json.loads(response.read()))
        except Exception as exc:  # reported below, with the assertion
            failures.append(repr(exc))
        finally:
            connection.close()

    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads_count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert failures == []
    all_inputs = np.stack([255 - p for row in inputs for p in row]).astype(np.uint8)
    expected = model.predict(all_inputs)
    got = [answer for row in answers for answer in row]
    assert len(got) == threads_count * per_thread and all(status == 200 for status, _ in got)
    np.testing.assert_allclose(np.array([answer["results"] for _, answer in got]), expected, atol=1e-5)


# -- real accuracy, with the shipped trained model ------------------------------------------------
@pytest.fixture(scope="module")
def mnist_test_digits(mnist_dir):
    from data.mnist import load
    images, labels = load(mnist_dir, train=False)
    picked = np.random.default_rng(0).choice(len(images), 500, replace=False)
    return images[picked], labels[picked]


def test_real_mnist_digits_inverted_to_ink_on_white_are_recognized_via_api_mnist(shipped_server, mnist_test_digits):
    images, labels = mnist_test_digits
    predictions = [call_json(shipped_server, "POST", "/api/mnist", (255 - image).ravel().tolist())[1]["prediction"]
                   for image in images]
    accuracy = float(np.mean(np.array(predictions) == labels))
    print(f"\n/api/mnist accuracy on {len(labels)} MNIST test digits: {accuracy:.2%}")
    assert accuracy >= 0.98


def test_real_mnist_digits_as_png_files_are_recognized_via_api_predict(shipped_server, mnist_test_digits):
    images, labels = mnist_test_digits
    predictions = [call_json(shipped_server, "POST", "/api/predict", body=png_bytes(255 - image),
                             headers={"Content-Type": "image/png"})[1]["prediction"]
                   for image in images]
    accuracy = float(np.mean(np.array(predictions) == labels))
    print(f"\n/api/predict (PNG, preprocessed) accuracy on {len(labels)} MNIST test digits: {accuracy:.2%}")
    assert accuracy >= 0.95


# -- python serve.py ------------------------------------------------------------------------------
def run_serve(*args, timeout=60):
    return subprocess.run([sys.executable, "serve.py", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_serve_py_with_a_missing_model_says_so_in_one_line(tmp_path):
    result = run_serve("--model", str(tmp_path / "absent.npz"), "--port", "0")
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "no model file" in result.stderr


def test_serve_py_with_a_corrupt_model_says_so_in_one_line(tmp_path):
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 definitely not a zip archive")
    result = run_serve("--model", str(corrupt), "--port", "0")
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "cannot load the model" in result.stderr


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_serve_py_serves_and_stops_cleanly_on_a_signal(tmp_path, model, stop_signal):
    path = tmp_path / "model.npz"
    nn.save(model, path, metadata={"test_accuracy": 0.5, "normalization": model.normalization})
    process = subprocess.Popen([sys.executable, "serve.py", "--model", str(path), "--port", "0"], cwd=REPO_ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        banner = process.stdout.readline()
        host, port = re.search(r"http://([0-9.]+):(\d+)/", banner).groups()
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request("GET", "/ping")
        assert connection.getresponse().status == 200
        connection.close()
        process.send_signal(stop_signal)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    assert "Stopped." in stdout and "Traceback" not in stderr
    assert re.search(r"127\.0\.0\.1 GET /ping 200 \d+\.\d ms", stderr)


# -- the split: the HTTP layer knows nothing of the model API -------------------------------------
def test_the_http_layer_imports_nothing_of_the_model_api_the_model_or_numpy():
    import ast
    import pathlib

    layer = pathlib.Path(REPO_ROOT) / "lenet" / "server" / "httpd"
    imported = set()
    for path in layer.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                imported.add("." * node.level + (node.module or ""))
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    assert len(list(layer.glob("*.py"))) >= 12 and ".errors" in imported  # the check reads what it should
    outside = {name for name in imported if name.startswith("..") or name.split(".")[0] in
               ("lenet", "nn", "data", "numpy", "PIL")}
    assert not outside, outside
