"""The Open Inference Protocol as real clients speak it, compressed bodies, and image files that fight back.

Binary tensor data (Triton's extension, tritonclient's default) is tested twice: with requests
built here byte by byte from the extension's definition (always run), and with tritonclient
itself where it is installed (``pip install "tritonclient[http]"``). Pictures: JPEG scan bombs
are refused before decoding, and phone photos are read upright (EXIF orientation).
"""

import gzip
import http.client
import io
import json
import math
import tracemalloc
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw

from benchmarks import hostile
from benchmarks.bodies import jpeg_scans, scan_bomb
from lenet.server import PredictionServer, serving_in_background
from lenet.server.httpd.encoding import MIN_COMPRESSED_RESPONSE, decode_body
from lenet.server.httpd.errors import HTTPError
from lenet.server.model_api.inference import DATATYPES, MAX_BATCH, MAX_ID_LENGTH, MAX_JSON_CONTAINERS, MAX_JSON_VALUES
from lenet.server.model_api.routes import MAX_INFER_BODY
from lenet.server.model_api.upload import (MAX_ASPECT, MAX_JPEG_BLOCK_SCANS, MAX_JPEG_SCANS, MAX_JPEG_SEGMENTS,
                                           MAX_SIDE, decode_image, jpeg_cost)

INFER = "/v2/models/lenet5/infer"


# -- fixtures and helpers -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(model):
    server = PredictionServer(model, port=0, log=None)
    with serving_in_background(server):
        yield server


def post(server, path, body, headers=None):
    """One POST on a new connection -> ``(status, headers dict, body bytes)``."""
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=30)
    try:
        connection.request("POST", path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def binary_request(tensor, name="images", outputs=None, parameters=None, datatype=None):
    """``(body, headers)`` of an infer request carrying ``tensor`` as binary data, built from the extension's text.

    The JSON header comes first; ``Inference-Header-Content-Length`` gives its length; the tensor
    follows as raw little-endian bytes, row-major, its length in the input's ``binary_data_size``.
    """
    datatype = datatype or next(k for k, v in DATATYPES.items() if np.dtype(v) == tensor.dtype)
    raw = tensor.astype(np.dtype(DATATYPES[datatype])).tobytes()
    document = {"inputs": [{"name": name, "shape": list(tensor.shape), "datatype": datatype,
                            "parameters": {"binary_data_size": len(raw)}}]}
    if outputs is not None:
        document["outputs"] = outputs
    if parameters is not None:
        document["parameters"] = parameters
    header = json.dumps(document).encode()
    return header + raw, {"Inference-Header-Content-Length": str(len(header)),
                          "Content-Type": "application/octet-stream"}


def json_request(tensor, datatype, name="images", **extra):
    body = json.dumps({"inputs": [{"name": name, "shape": list(tensor.shape), "datatype": datatype,
                                   "data": tensor.ravel().tolist()}], **extra}).encode()
    return body, {"Content-Type": "application/json"}


def read_infer_response(headers, body):
    """``(JSON document, probabilities)`` of an infer response, JSON or JSON header + binary output."""
    header_length = headers.get("Inference-Header-Content-Length")
    if header_length is None:
        document = json.loads(body)
        output = document["outputs"][0]
        return document, np.reshape(np.array(output["data"], dtype=np.float32), output["shape"])
    document = json.loads(body[:int(header_length)])
    output = document["outputs"][0]
    raw = body[int(header_length):]
    assert "data" not in output and output["parameters"]["binary_data_size"] == len(raw)
    return document, np.frombuffer(raw, dtype="<f4").reshape(output["shape"])


def random_pixels(count, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, 28, 28), dtype=np.uint8)


# -- the binary tensor data extension, hand-built requests ----------------------------------------
def test_server_metadata_lists_the_binary_tensor_data_extension(server):
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    connection.request("GET", "/v2")
    metadata = json.loads(connection.getresponse().read())
    connection.close()
    assert "binary_tensor_data" in metadata["extensions"]


@pytest.mark.parametrize("datatype", DATATYPES)
def test_binary_input_of_every_datatype_gives_the_models_answer(server, model, datatype):
    pixels = random_pixels(3, seed=1) // 2  # 0..127, within every datatype's range (INT8 too)
    tensor = (pixels / 255.0 if datatype.startswith("FP") else pixels).astype(DATATYPES[datatype])
    expected_input = tensor.astype(np.float32 if datatype.startswith("FP") else np.uint8)  # FP16 rounding included
    body, headers = binary_request(tensor, datatype=datatype)
    status, response_headers, answer = post(server, INFER, body, headers)
    assert status == 200, answer
    assert "Inference-Header-Content-Length" not in response_headers  # no binary output was asked for
    _, probabilities = read_infer_response(response_headers, answer)
    np.testing.assert_allclose(probabilities, model.predict(expected_input), atol=1e-5)


@pytest.mark.parametrize("shape", [[2, 28, 28], [2, 1, 28, 28], [2, 784]])
def test_binary_output_is_a_json_header_then_little_endian_fp32(server, model, shape):
    pixels = random_pixels(2, seed=2)
    body, headers = binary_request(pixels.reshape(shape), parameters={"binary_data_output": True})
    status, response_headers, answer = post(server, INFER, body, headers)
    assert status == 200
    header_length = int(response_headers["Inference-Header-Content-Length"])
    document = json.loads(answer[:header_length])
    (output,) = document["outputs"]
    assert output == {"name": "probabilities", "shape": [2, 10], "datatype": "FP32",
                      "parameters": {"binary_data_size": 2 * 10 * 4}}
    assert len(answer) == header_length + 80 and int(response_headers["Content-Length"]) == len(answer)
    probabilities = np.frombuffer(answer[header_length:], dtype="<f4").reshape(2, 10)
    np.testing.assert_allclose(probabilities, model.predict(pixels), atol=1e-6)


@pytest.mark.parametrize("request_parameters, output_parameters, binary", [
    (None, None, False),
    ({"binary_data_output": True}, None, True),
    ({"binary_data_output": False}, {"binary_data": True}, True),
    ({"binary_data_output": True}, {"binary_data": False}, False),
    (None, {"binary_data": True}, True),
])
def test_an_outputs_own_binary_data_parameter_overrides_the_requests(server, model, request_parameters,
                                                                     output_parameters, binary):
    pixels = random_pixels(1, seed=3)
    outputs = [{"name": "probabilities", **({"parameters": output_parameters} if output_parameters else {})}]
    body, headers = json_request(pixels, "UINT8", outputs=outputs,
                                 **({"parameters": request_parameters} if request_parameters else {}))
    status, response_headers, answer = post(server, INFER, body, headers)
    assert status == 200
    assert ("Inference-Header-Content-Length" in response_headers) == binary
    document, probabilities = read_infer_response(response_headers, answer)
    np.testing.assert_allclose(probabilities, model.predict(pixels), atol=1e-6)


def _with_header(body_and_headers, **header_changes):
    body, headers = body_and_headers
    return body, {**headers, **header_changes}


def _binary_body(**document_changes):
    """A 1-image binary request whose JSON header has ``document_changes`` merged into its input."""
    raw = bytes(784)
    tensor = {"name": "images", "shape": [1, 28, 28], "datatype": "UINT8", "parameters": {"binary_data_size": 784},
              **document_changes}
    header = json.dumps({"inputs": [tensor]}).encode()
    return header + raw, {"Inference-Header-Content-Length": str(len(header))}


ONE_IMAGE = np.zeros((1, 28, 28), np.uint8)
BAD_BINARY = {
    "header-length-not-a-number": (_with_header(binary_request(ONE_IMAGE), **{"Inference-Header-Content-Length": "x"}),
                                   "Inference-Header-Content-Length"),
    "header-length-past-the-body": (_with_header(binary_request(ONE_IMAGE),
                                                 **{"Inference-Header-Content-Length": "99999"}), "only"),
    "size-not-the-shapes": (_binary_body(parameters={"binary_data_size": 783}), "takes 784 bytes"),
    "bytes-short-of-the-size": ((_binary_body()[0][:-1], _binary_body()[1]), "783 bytes of binary data"),
    "bytes-past-the-size": ((_binary_body()[0] + b"\0", _binary_body()[1]), "785 bytes of binary data"),
    "binary-without-size": (_binary_body(parameters={}), 'no "binary_data_size"'),
    "data-and-binary": (_binary_body(data=[0] * 784), "exclude each other"),
    "size-not-an-integer": (_binary_body(parameters={"binary_data_size": "784"}), "takes 784 bytes"),
    "fp32-nan": (binary_request(np.full((1, 28, 28), np.nan, np.float32)), "NaN"),
    "fp32-above-1": (binary_request(np.full((1, 28, 28), 1.5, np.float32)), "[0.0, 1.0]"),
    "fp16-negative": (binary_request(np.full((1, 28, 28), -0.5, np.float16)), "[0.0, 1.0]"),
    "int8-bytes-128-255": (binary_request(np.full((1, 28, 28), -56, np.int8)), "[0, 255]"),
    "int16-above-255": (binary_request(np.full((1, 28, 28), 300, np.int16)), "[0, 255]"),
    "shared-memory": (_binary_body(parameters={"shared_memory_region": "r", "binary_data_size": 784}),
                      "not supported"),
    "wrong-input-name": (binary_request(ONE_IMAGE, name="input__0"), 'named "images"'),
    "bool-datatype": (_binary_body(datatype="BOOL"), "datatype"),
    "binary-output-not-a-bool": (binary_request(ONE_IMAGE, parameters={"binary_data_output": 1}), "true or false"),
    "classification": (binary_request(ONE_IMAGE, outputs=[{"name": "probabilities",
                                                           "parameters": {"classification": 3}}]), "not supported"),
}


@pytest.mark.parametrize("request_, message", BAD_BINARY.values(), ids=BAD_BINARY.keys())
def test_bad_binary_requests_are_400_with_the_reason(server, request_, message):
    body, headers = request_
    status, _, answer = post(server, INFER, body, headers)
    assert status == 400
    assert message in json.loads(answer)["error"]


# -- datatypes and the input's name in JSON -------------------------------------------------------
@pytest.mark.parametrize("datatype, value, accepted", [
    ("INT8", 127, True), ("INT8", 128, False), ("INT8", 255, False),
    ("UINT8", 255, True), ("UINT8", 256, False),
    ("INT64", 255, True), ("INT64", -1, False), ("UINT16", 256, False),
    ("FP32", 1.0, True), ("FP32", 1.01, False), ("FP64", -0.01, False),
])
def test_json_values_must_fit_the_datatype_and_the_pixel_range(server, model, datatype, value, accepted):
    tensor = np.zeros((1, 28, 28), dtype=object)
    tensor[0, 10, 10] = value
    status, _, answer = post(server, INFER, *json_request(tensor, datatype))
    if accepted:
        assert status == 200
    else:
        assert status == 400
        error = json.loads(answer)["error"]
        assert datatype in error and "expected values in" in error
        if datatype == "INT8":
            assert "127" in error


def test_an_input_not_named_images_is_refused_naming_the_expected_name(server):
    status, _, answer = post(server, INFER, *json_request(ONE_IMAGE, "UINT8", name="input__0"))
    assert status == 400
    assert json.loads(answer)["error"] == '"inputs"[0].name: this model\'s input is named "images", ' \
                                          "got the string 'input__0'"


def test_model_config_describes_the_input_and_output_for_tritonclient(server):
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    connection.request("GET", "/v2/models/lenet5/config")
    config = json.loads(connection.getresponse().read())
    connection.close()
    assert config["max_batch_size"] == MAX_BATCH
    assert config["input"] == [{"name": "images", "data_type": "TYPE_UINT8", "dims": [28, 28]}]


# -- JSON bodies: bounded work --------------------------------------------------------------------
@pytest.mark.parametrize("filler, count, message", [
    (b"[],", MAX_JSON_CONTAINERS, "arrays and objects"),
    (b"{},", MAX_JSON_CONTAINERS, "arrays and objects"),
    (b"0,", MAX_JSON_VALUES, "values"),
])
def test_infer_json_bodies_with_more_values_than_a_full_batch_are_refused_before_decoding(server, filler, count,
                                                                                           message):
    body = b'{"junk": [' + filler * count + b'0], "inputs": []}'  # one container or value too many
    status, _, answer = post(server, INFER, body, {"Content-Type": "application/json"})
    assert status == 413
    assert message in json.loads(answer)["error"]


def test_a_full_batch_of_long_json_floats_nested_four_deep_is_within_the_limits(server, model):
    intensities = np.random.default_rng(5).random((MAX_BATCH, 1, 28, 28))
    document = {"inputs": [{"name": "images", "shape": [MAX_BATCH, 1, 28, 28], "datatype": "FP64",
                            "data": intensities.tolist()}]}  # 17-digit floats: the longest a JSON writer emits
    body, headers = json.dumps(document, indent=1).encode(), {"Content-Type": "application/json"}
    assert len(body) < MAX_INFER_BODY
    status, response_headers, answer = post(server, INFER, body, headers)
    assert status == 200
    _, probabilities = read_infer_response(response_headers, answer)
    np.testing.assert_allclose(probabilities, model.predict(intensities.astype(np.float32).reshape(-1, 28, 28)),
                               atol=1e-5)


# -- Content-Encoding -----------------------------------------------------------------------------
def raw_deflate(data):
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)  # no zlib header or checksum
    return compressor.compress(data) + compressor.flush()


COMPRESSORS = {
    "gzip": ("gzip", gzip.compress),
    "deflate-zlib": ("deflate", zlib.compress),  # what HTTP's "deflate" means (RFC 9110)
    "deflate-raw": ("deflate", raw_deflate),  # what some clients send
    "gzip-two-members": ("gzip", lambda data: gzip.compress(data[:100]) + gzip.compress(data[100:])),
}


@pytest.mark.parametrize("encoding, compress", COMPRESSORS.values(), ids=COMPRESSORS.keys())
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_compressed_infer_requests_are_answered_like_plain_ones(server, model, encoding, compress, binary):
    pixels = random_pixels(2, seed=6)
    body, headers = binary_request(pixels) if binary else json_request(pixels, "UINT8")
    status, response_headers, answer = post(server, INFER, compress(body), {**headers, "Content-Encoding": encoding})
    assert status == 200, answer
    _, probabilities = read_infer_response(response_headers, answer)
    np.testing.assert_allclose(probabilities, model.predict(pixels), atol=1e-6)


def test_compressed_body_is_accepted_on_the_other_routes_too(server, model):
    pixels = random_pixels(1, seed=7)[0]
    body = gzip.compress(json.dumps(pixels.ravel().tolist()).encode())
    status, _, answer = post(server, "/api/mnist", body, {"Content-Type": "application/json",
                                                          "Content-Encoding": "gzip"})
    assert status == 200
    np.testing.assert_allclose(json.loads(answer)["results"], model.predict((255 - pixels)[None])[0], atol=1e-6)


def test_an_inflated_body_counts_against_the_servers_memory_budget(server, model):
    """Inflating reserves the route's whole limit from the budget first: a full budget is a 503, not more memory."""
    pixels = random_pixels(1, seed=8)
    body, headers = json_request(pixels, "UINT8")
    budget = server.body_memory
    with budget.hold(budget.large_total - len(body) - 1024):  # room for the compressed body, not its inflation
        status, response_headers, answer = post(server, INFER, gzip.compress(body), {**headers, "Content-Encoding": "gzip"})
        assert status == 503 and response_headers["Retry-After"] == "1", answer
        assert "memory budget" in json.loads(answer)["error"]
    status, response_headers, answer = post(server, INFER, gzip.compress(body), {**headers, "Content-Encoding": "gzip"})
    assert status == 200, answer


GZIP_BOMB = gzip.compress(b"\0" * (64 * 1024 * 1024), 9)  # 64 MiB of zeros in about 64 kB


def test_gzip_bomb_is_refused_with_413(server):
    assert len(GZIP_BOMB) < 100_000
    status, _, answer = post(server, INFER, GZIP_BOMB, {"Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert status == 413 and "inflates to more than" in json.loads(answer)["error"]


def test_decode_body_never_holds_much_more_than_the_limit_while_refusing_a_bomb():
    limit = 1024 * 1024
    tracemalloc.start()
    try:
        with pytest.raises(HTTPError) as refused:
            decode_body(GZIP_BOMB, "gzip", limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert refused.value.status == 413
    assert peak < 2 * limit  # the limit, one chunk and bookkeeping; inflating it all would be 64 MiB


@pytest.mark.parametrize("encoding, status", [("br", 415), ("gzip, gzip", 415), ("compress", 415)])
def test_unsupported_content_encodings_are_415_listing_the_supported_ones(server, encoding, status):
    answer_status, headers, answer = post(server, INFER, b"{}", {"Content-Encoding": encoding})
    assert answer_status == status
    assert headers["Accept-Encoding"] == "gzip, deflate"
    assert "gzip" in json.loads(answer)["error"]


@pytest.mark.parametrize("limit, size, accepted", [(1000, 1000, True), (1000, 1001, False), (1, 0, True)])
@pytest.mark.parametrize("encoding, compress", list(COMPRESSORS.values())[:3], ids=list(COMPRESSORS)[:3])
def test_decode_body_inflates_up_to_exactly_the_limit(encoding, compress, limit, size, accepted):
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    if accepted:
        assert decode_body(compress(data), encoding, limit) == data
    else:
        with pytest.raises(HTTPError) as refused:
            decode_body(compress(data), encoding, limit)
        assert refused.value.status == 413


@pytest.mark.parametrize("body, message", [
    (gzip.compress(b"x" * 1000)[:-12], "cut short"),
    (gzip.compress(b"x" * 1000) + b"junk", "not valid gzip"),
    (b"plain text", "not valid gzip"),
])
def test_decode_body_refuses_corrupt_or_truncated_gzip_with_400(body, message):
    with pytest.raises(HTTPError) as refused:
        decode_body(body, "gzip", 10_000)
    assert refused.value.status == 400 and message in refused.value.message


def test_decode_body_refuses_bytes_after_a_deflate_stream():
    with pytest.raises(HTTPError) as refused:
        decode_body(zlib.compress(b"x" * 100) + b"more", "deflate", 10_000)
    assert refused.value.status == 400 and "follow the end" in refused.value.message


@pytest.mark.parametrize("accept_encoding, coding", [
    (None, None), ("identity", None), ("gzip", "gzip"), ("deflate", "deflate"), ("gzip;q=0, deflate", "deflate"),
    ("br, *", "gzip"), ("gzip;q=0, *;q=0", None), ("gzip;q=bogus", None), ("GZIP;Q=0.5", "gzip"),
])
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_infer_answers_are_compressed_when_the_client_accepts_it(server, model, accept_encoding, coding, binary):
    pixels = random_pixels(64, seed=9)  # answers under MIN_COMPRESSED_RESPONSE bytes are sent as they are
    body, headers = json_request(pixels, "UINT8", **({"parameters": {"binary_data_output": True}} if binary else {}))
    if accept_encoding is not None:
        headers["Accept-Encoding"] = accept_encoding
    status, response_headers, answer = post(server, INFER, body, headers)
    assert status == 200
    assert response_headers.get("Content-Encoding") == coding
    inflate = {None: bytes, "gzip": gzip.decompress, "deflate": zlib.decompress}[coding]
    _, probabilities = read_infer_response(response_headers, inflate(answer))
    np.testing.assert_allclose(probabilities, model.predict(pixels), atol=1e-6)


@pytest.mark.parametrize("length", [MAX_ID_LENGTH, MAX_ID_LENGTH + 1, 1_000_000])
def test_an_id_over_the_limit_is_refused_with_400_that_says_so_never_truncated(server, length):
    body, headers = json_request(random_pixels(1, seed=3), "UINT8")
    document = json.loads(body)
    document["id"] = "7" * length
    status, _, answer = post(server, INFER, gzip.compress(json.dumps(document).encode()),
                             {**headers, "Content-Encoding": "gzip"})
    if length <= MAX_ID_LENGTH:
        assert status == 200 and json.loads(answer)["id"] == document["id"]
    else:
        assert status == 400
        assert json.loads(answer)["error"] == f'"id": {length} characters, over the limit of {MAX_ID_LENGTH} (the answer echoes it)'


@pytest.mark.parametrize("images, compressed", [(1, False), (64, True)])
def test_only_answers_worth_compressing_are_compressed(server, images, compressed):
    body, headers = json_request(random_pixels(images, seed=9), "UINT8")
    status, response_headers, answer = post(server, INFER, body, {**headers, "Accept-Encoding": "gzip"})
    assert status == 200
    size = len(gzip.decompress(answer)) if compressed else len(answer)
    assert (response_headers.get("Content-Encoding") == "gzip") == compressed == (size >= MIN_COMPRESSED_RESPONSE)


# -- tritonclient, the real client, with its defaults ---------------------------------------------
@pytest.fixture(scope="module")
def triton(server):
    try:
        import tritonclient.http as httpclient
    except (ImportError, RuntimeError) as exc:  # RuntimeError: tritonclient installed without its http extra
        pytest.skip(f'tritonclient\'s HTTP client cannot be imported ({exc}): pip install "tritonclient[http]"')
    client = httpclient.InferenceServerClient(url=server.url.removeprefix("http://"))
    yield httpclient, client
    client.close()


def test_tritonclient_health_and_metadata_calls(triton):
    httpclient, client = triton
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("lenet5")
    assert client.is_model_ready("lenet5", model_version="1")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    metadata = client.get_model_metadata("lenet5")
    assert metadata["inputs"][0]["name"] == "images" and metadata["outputs"][0]["name"] == "probabilities"
    assert client.get_model_config("lenet5")["input"][0]["name"] == "images"


@pytest.mark.parametrize("compression", [None, "gzip", "deflate"])
@pytest.mark.parametrize("output_binary", [None, True, False], ids=["outputs-default", "binary-out", "json-out"])
@pytest.mark.parametrize("input_binary", [True, False], ids=["binary-in", "json-in"])
@pytest.mark.parametrize("datatype", ["UINT8", "FP32"])
def test_tritonclient_infer_gives_the_models_answer(triton, model, datatype, input_binary, output_binary,
                                                    compression):
    httpclient, client = triton
    pixels = random_pixels(4, seed=8)
    tensor = pixels if datatype == "UINT8" else (pixels / 255.0).astype(np.float32)
    images = httpclient.InferInput("images", list(tensor.shape), datatype)
    images.set_data_from_numpy(tensor, binary_data=input_binary)
    outputs = None if output_binary is None else [httpclient.InferRequestedOutput("probabilities",
                                                                                  binary_data=output_binary)]
    result = client.infer("lenet5", [images], outputs=outputs, request_id="r1",
                          request_compression_algorithm=compression, response_compression_algorithm=compression)
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (4, 10) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities, model.predict(tensor), atol=1e-6)
    sent_binary = "parameters" in result.get_output("probabilities")
    assert sent_binary == (output_binary is not False)  # tritonclient asks for binary unless told otherwise
    assert result.get_response()["id"] == "r1"


def test_tritonclient_sees_the_servers_reason_for_a_wrong_input_name(triton):
    httpclient, client = triton
    wrong = httpclient.InferInput("input__0", [1, 28, 28], "UINT8")
    wrong.set_data_from_numpy(ONE_IMAGE)
    with pytest.raises(Exception, match='named "images"'):
        client.infer("lenet5", [wrong])


# -- image files: JPEG scan bombs, EXIF orientation -----------------------------------------------
def jpeg_bytes(image, **options):
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **options)
    return buffer.getvalue()


@pytest.mark.parametrize("mode, options, scans", [
    ("L", {}, 1), ("RGB", {}, 1),
    ("L", {"progressive": True}, 6), ("RGB", {"progressive": True}, 10), ("CMYK", {"progressive": True}, 18),
])
def test_jpeg_scans_are_counted_as_libjpeg_writes_them(mode, options, scans):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, len(mode)), np.uint8).squeeze())
    data = jpeg_bytes(image.convert(mode), **options)
    assert jpeg_cost(data)[0] == scans == len(jpeg_scans(data)[1])


def comment_segment(payload):
    return b"\xff\xfe" + (len(payload) + 2).to_bytes(2, "big") + payload  # a JPEG COM segment


def test_marker_bytes_inside_segments_are_not_counted_as_scans():
    """An APP or comment segment may hold anything, a whole JPEG thumbnail included; its markers are not scans."""
    thumbnail = jpeg_bytes(Image.new("L", (16, 16), 50), progressive=True)
    picture = jpeg_bytes(Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 40), np.uint8)))
    data = picture[:2] + comment_segment(b"\xff\xda" * 100 + thumbnail) + picture[2:]
    assert data.count(b"\xff\xda") > 100
    assert jpeg_cost(data)[0] == 1
    assert Image.open(io.BytesIO(data)).size == (40, 40)  # still a valid JPEG


@pytest.mark.parametrize("repeats, refused", [(MAX_JPEG_SCANS - 6, False), (MAX_JPEG_SCANS - 5, True), (5000, True)])
def test_progressive_jpeg_with_more_scans_than_encoders_write_is_refused_with_413(server, repeats, refused):
    bomb = scan_bomb(repeats)
    assert jpeg_cost(bomb)[0] == min(6 + repeats, MAX_JPEG_SCANS + 1)
    status, _, answer = post(server, "/api/predict", bomb, {"Content-Type": "image/jpeg"})
    if refused:
        assert status == 413 and f"more than {MAX_JPEG_SCANS} scans" in json.loads(answer)["error"]
    else:
        assert status == 422  # decoded: a flat grey picture holds no digit


@pytest.mark.parametrize("junk", [False, True], ids=["clean", "junk-after-app0"])
def test_stray_bytes_between_segments_do_not_hide_scans_from_the_count(junk):
    """libjpeg skips a stray byte before a marker (with a warning) and decodes on: the count must too."""
    data = hostile.repeated_scan_jpeg(3, junk_after_app0=junk, side=64)
    assert Image.open(io.BytesIO(data)).convert("L").size == (64, 64)  # still decoded, junk or not
    assert jpeg_cost(data)[0] == 6 - 1 + 3  # libjpeg's 6 grey scans, the last one 3 times


def test_fill_bytes_before_markers_do_not_hide_scans_from_the_count():
    assert jpeg_cost(hostile.filled_jpeg(10))[0] == 5 + 10


@pytest.mark.parametrize("scans, refused", [(16, False), (17, True)])
def test_the_block_budget_allows_16_scans_of_4096_pixels_a_side_not_17(scans, refused):
    data = hostile.repeated_scan_jpeg(scans - 5, junk_after_app0=False)  # 4096 x 4096 grey: 512 x 512 blocks a scan
    assert jpeg_cost(data)[0] == scans and 16 * 512 ** 2 == MAX_JPEG_BLOCK_SCANS
    if refused:
        with pytest.raises(HTTPError) as refusal:
            decode_image(data)
        assert refusal.value.status == 413 and "8x8 blocks" in refusal.value.message
    else:
        assert jpeg_cost(data)[2] == MAX_JPEG_BLOCK_SCANS
        assert decode_image(data).size == (1024, 1024)  # read, at the scale preprocessing works at


def test_64_scans_of_2048_pixels_a_side_are_within_the_block_budget():
    photo = hostile.normal_photos()["2048-grey-64-scans.jpg"][1]
    assert jpeg_cost(photo)[0::2] == (64, 64 * (2048 // 8) ** 2) == (64, MAX_JPEG_BLOCK_SCANS)


@pytest.mark.parametrize("width, height, message", [
    (MAX_SIDE + 1, 16, "a side"), (16, MAX_SIDE + 1, "a side"), (MAX_SIDE, MAX_SIDE // MAX_ASPECT - 1, "elongated"),
    (MAX_SIDE, MAX_SIDE // MAX_ASPECT, None), (MAX_SIDE, MAX_SIDE, None),
])
def test_images_are_bounded_per_side_and_by_aspect_not_only_by_area(width, height, message):
    data = hostile.flat_png(width, height)
    if message is None:
        assert max(decode_image(data).size) == 1024
    else:
        with pytest.raises(HTTPError) as refused:
            decode_image(data)
        assert refused.value.status == 413 and message in refused.value.message


def test_jpeg_of_more_marker_segments_than_real_files_have_is_refused_with_413(server):
    picture = jpeg_bytes(Image.new("L", (40, 40), 128))
    flood = picture[:2] + comment_segment(b"") * (MAX_JPEG_SEGMENTS + 1) + picture[2:]
    assert Image.open(io.BytesIO(flood)).size == (40, 40)  # Pillow would read it
    status, _, answer = post(server, "/api/predict", flood, {"Content-Type": "image/jpeg"})
    assert status == 413 and "marker segments" in json.loads(answer)["error"]


def seven(side=280):
    """A hand-drawn 7, dark ink on white paper, upright."""
    image = Image.new("L", (side, side), 235)
    pen = ImageDraw.Draw(image)
    s = side / 28
    pen.line([(7 * s, 6 * s), (21 * s, 6 * s), (12 * s, 23 * s)], fill=20, width=int(2.5 * s), joint="curve")
    return image


# EXIF Orientation -> how the stored pixels are turned relative to the upright picture.
STORED_AS = {1: None, 3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270,
             2: Image.Transpose.FLIP_LEFT_RIGHT}


def stored_with_orientation(upright, orientation, fmt):
    """The file a camera writes: pixels as the sensor saw them, and the tag saying how to turn them upright."""
    transpose = STORED_AS[orientation]
    stored = upright.transpose(transpose) if transpose is not None else upright
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    stored.save(buffer, fmt, exif=exif.tobytes())
    return buffer.getvalue()


@pytest.mark.parametrize("orientation", STORED_AS)
def test_decode_image_turns_a_picture_upright_by_its_exif_orientation(orientation):
    upright = seven(56)
    decoded = decode_image(stored_with_orientation(upright, orientation, "PNG"))
    np.testing.assert_array_equal(np.asarray(decoded), np.asarray(upright))


def test_a_phone_photo_of_a_seven_tagged_orientation_6_is_read_as_7(shipped_server):
    upright = seven()
    photo = stored_with_orientation(upright, 6, "JPEG")
    assert Image.open(io.BytesIO(photo)).size == upright.size and Image.open(io.BytesIO(photo)).getexif()[0x0112] == 6
    answers = {}
    for name, body in [("upright", jpeg_bytes(upright)), ("tagged", photo),
                       ("untagged", jpeg_bytes(upright.transpose(Image.Transpose.ROTATE_90)))]:
        status, _, answer = post(shipped_server, "/api/predict", body, {"Content-Type": "image/jpeg"})
        assert status == 200
        answers[name] = json.loads(answer)
    assert answers["upright"]["prediction"] == 7  # the drawing is a 7 the model knows
    assert answers["untagged"]["prediction"] != 7  # sideways it is not: the test can fail
    assert answers["tagged"]["prediction"] == 7
    seen_tagged, seen_upright = (np.array(answers[k]["image"], dtype=float) for k in ("tagged", "upright"))
    assert math.isclose(np.abs(seen_tagged - seen_upright).mean(), 0, abs_tol=4)  # the same picture, up to JPEG
