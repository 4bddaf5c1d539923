"""What request bodies cost the server (a script, not a test): infer bodies, junk JSON, JPEG scan bombs.

    python -m benchmarks.bodies [--attack-seconds 5] [--decode-bomb]

Prints, measured in this process (the time each body holds the interpreter lock is the time
every other connection waits):

1. parsing one infer request of 128 FP32 images, JSON against binary tensor data;
2. refusing 4 MiB JSON bodies made of what is costliest to decode (``[]``, ``{}``, ``0``);
3. ``/ping`` latency while 8 clients send such bodies non-stop to a server on a loopback port;
4. refusing a 1 MB progressive JPEG of 4096x4096 pixels whose smallest scan is repeated to fill
   it, and with ``--decode-bomb`` what decoding it would have cost (minutes: 381 s once here).
"""

import argparse
import http.client
import io
import json
import threading
import time

import numpy as np
from PIL import Image

from benchmarks.timing import measure
from lenet.model import LeNet5
from lenet.server import PredictionServer, serving_in_background
from lenet.server.httpd.errors import HTTPError
from lenet.server.httpd.head import Headers
from lenet.server.httpd.messages import Request
from lenet.server.model_api.routes import infer
from lenet.server.model_api.upload import decode_image

JUNK_SIZE = 4 * 1024 * 1024


def jpeg_scans(data):
    """``(bytes before the first scan, [each scan: its SOS segment and entropy-coded data], the rest)``."""
    starts, position = [], 2
    while data[position + 1] != 0xD9:  # until End Of Image
        length = int.from_bytes(data[position + 2:position + 4], "big")
        is_scan = data[position + 1] == 0xDA
        if is_scan:
            starts.append(position)
        position += 2 + length
        while is_scan and not (data[position] == 0xFF and data[position + 1] not in (0x00, *range(0xD0, 0xD8))):
            position += 1  # entropy-coded data runs to the next marker other than a stuffed 0 or a restart
    bounds = starts + [position]
    return data[:starts[0]], [data[a:b] for a, b in zip(bounds, bounds[1:])], data[position:]


def scan_bomb(repeats=None, side=64, size=1_000_000):
    """A progressive JPEG of a flat ``side`` x ``side`` picture with its smallest scan repeated.

    ``repeats`` times, or (None) as often as fits in ``size`` bytes. Every copy is decoded over
    the whole picture, so the cost grows with repeats x pixels while the file stays small.
    """
    buffer = io.BytesIO()
    Image.new("L", (side, side), 128).save(buffer, "JPEG", progressive=True)
    head, scans, tail = jpeg_scans(buffer.getvalue())
    smallest = min(scans, key=len)
    if repeats is None:
        repeats = (size - len(buffer.getvalue())) // len(smallest)
    return head + b"".join(scans) + smallest * repeats + tail


def _median_ms(function):
    """Median milliseconds per call of ``function``, in blocks of about 0.05 s (see timing.py)."""
    return measure({"f": function}, repeats=5, seconds_per_block=0.05, warm_calls=1)["f"] * 1000.0


class _NoModel:
    """Answers zeros: the figures are the body's cost, not the model's."""

    @staticmethod
    def predict(images):
        return np.zeros((len(images), 10), np.float32)


def _infer_status(body, headers=None):
    message = Headers(f"{name}: {value}\r\n".encode("latin-1") for name, value in (headers or {}).items())
    try:
        return infer(_NoModel, Request("POST", "/v2/models/lenet5/infer", "", message, body, time.perf_counter())).status
    except HTTPError as exc:
        return exc.status


def infer_bodies():
    images = np.random.default_rng(0).random((128, 28, 28)).astype(np.float32)
    tensor = {"name": "images", "shape": [128, 28, 28], "datatype": "FP32"}
    as_json = json.dumps({"inputs": [{**tensor, "data": [float(v) for v in images.ravel()]}]}).encode()
    raw = images.tobytes()
    header = json.dumps({"inputs": [{**tensor, "parameters": {"binary_data_size": len(raw)}}]}).encode()
    print("1. one infer request of 128 FP32 images, parsed (median of 5 blocks):")
    for name, body, headers in [("JSON", as_json, None),
                                ("binary", header + raw, {"Inference-Header-Content-Length": str(len(header))})]:
        status = _infer_status(body, headers)
        print(f"   {name:6s} {len(body) / 1e6:5.2f} MB -> {status}  {_median_ms(lambda: _infer_status(body, headers)):7.2f} ms")


def junk_bodies():
    print("2. 4 MiB JSON infer bodies of junk, refused (median of 5 blocks):")
    for filler in (b"[],", b"{},", b"0,"):
        body = b'{"x": [' + filler * (JUNK_SIZE // len(filler) - 8) + b'0], "inputs": []}'
        status = _infer_status(body)
        print(f"   {filler.decode()!r:6s} x {JUNK_SIZE // len(filler)} -> {status}  "
              f"{_median_ms(lambda: _infer_status(body)):7.2f} ms")


def junk_attack(seconds):
    junk = b'{"x": [' + b"[]," * (JUNK_SIZE // 3 - 8) + b'0], "inputs": []}'
    server = PredictionServer(LeNet5(seed=0).eval(), port=0, log=None)
    stop = time.monotonic() + seconds
    answered = []

    def attacker():
        count = 0
        while time.monotonic() < stop:
            connection = http.client.HTTPConnection(*server.server_address[:2], timeout=60)
            connection.request("POST", "/v2/models/lenet5/infer", body=junk, headers={"Content-Type": "application/json"})
            connection.getresponse().read()
            connection.close()
            count += 1
        answered.append(count)

    latencies = []
    with serving_in_background(server):
        attackers = [threading.Thread(target=attacker, daemon=True) for _ in range(8)]
        for thread in attackers:
            thread.start()
        connection = http.client.HTTPConnection(*server.server_address[:2], timeout=60)
        while time.monotonic() < stop:
            started = time.perf_counter()
            connection.request("GET", "/ping")
            connection.getresponse().read()
            latencies.append((time.perf_counter() - started) * 1000.0)
            time.sleep(0.01)
        connection.close()
        for thread in attackers:
            thread.join()
    p50, p99 = np.percentile(latencies, [50, 99])
    print(f"3. /ping while 8 clients post 4 MiB of [] for {seconds:g} s: {len(latencies)} pings, p50 {p50:.1f} ms, "
          f"p99 {p99:.0f} ms, max {max(latencies):.0f} ms; {sum(answered)} junk bodies answered")


def jpeg_bomb(decode):
    bomb = scan_bomb(side=4096)
    scans = len(jpeg_scans(bomb)[1])

    def refuse():
        try:
            decode_image(bomb)
        except HTTPError as exc:
            return exc.status
        return 200
    print(f"4. a {len(bomb) / 1e6:.2f} MB progressive JPEG, 4096x4096, {scans} scans: decode_image -> {refuse()} "
          f"in {_median_ms(refuse):.2f} ms")
    if decode:
        started = time.perf_counter()
        with Image.open(io.BytesIO(bomb)) as image:
            image.load()
        print(f"   Pillow decoding it in full: {time.perf_counter() - started:.1f} s")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bodies", description=__doc__.split("\n\n")[0])
    parser.add_argument("--attack-seconds", type=float, default=5.0, help="length of part 3 (default 5; 0 skips it)")
    parser.add_argument("--decode-bomb", action="store_true", help="also decode the JPEG bomb in full (takes minutes)")
    args = parser.parse_args(argv)
    infer_bodies()
    junk_bodies()
    if args.attack_seconds > 0:
        junk_attack(min(args.attack_seconds, 600.0))
    jpeg_bomb(args.decode_bomb)


if __name__ == "__main__":
    main()
