"""What the activation maps add to a prediction (a benchmark script, not a test).

    python -m benchmarks.activation_maps [--blocks 20] [--per-block 10] [--model PATH]

Starts a server on a free loopback port in this process, then sends the same drawing (a PNG, as
the page sends it) to ``/api/predict`` and ``/api/activations`` over one keep-alive connection,
alternating blocks of requests so that both routes see the same machine load. Prints the median
server time (the answers' ``"ms"``) and client round trip of each route, their differences, and
the answers' sizes.
"""

import argparse
import http.client
import io
import json
import statistics
import time

from PIL import Image, ImageDraw

from lenet import load_model
from lenet.server import PredictionServer, serving_in_background

ROUTES = ("/api/predict", "/api/activations")


def drawing_png():
    """A 7 drawn dark on white on a 280x280 canvas, as the page sends a drawing."""
    canvas = Image.new("L", (280, 280), 255)
    ImageDraw.Draw(canvas).line([(60, 60), (220, 60), (130, 230)], fill=0, width=24)
    buffer = io.BytesIO()
    canvas.save(buffer, "PNG")
    return buffer.getvalue()


def measure(connection, path, body):
    """One request -> (server ms, client ms, answer bytes)."""
    started = time.perf_counter()
    connection.request("POST", path, body=body, headers={"Content-Type": "image/png"})
    response = connection.getresponse()
    data = response.read()
    client_ms = (time.perf_counter() - started) * 1000.0
    if response.status != 200:
        raise SystemExit(f"{path} answered {response.status}: {data[:200]!r}")
    return json.loads(data)["ms"], client_ms, len(data)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.activation_maps",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--blocks", type=int, default=20, help="blocks per route (default 20)")
    parser.add_argument("--per-block", type=int, default=10, help="requests per block (default 10)")
    parser.add_argument("--model", default=None, help="model file (default: the shipped one)")
    args = parser.parse_args(argv)
    body = drawing_png()
    server = PredictionServer(load_model(args.model), port=0, log=None)
    results = {path: [] for path in ROUTES}
    with serving_in_background(server):
        connection = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
        try:
            for path in ROUTES:  # first answers (compilation, caches) are not counted
                measure(connection, path, body)
            for block in range(args.blocks):
                for path in (ROUTES if block % 2 == 0 else ROUTES[::-1]):
                    results[path] += [measure(connection, path, body) for _ in range(args.per_block)]
        finally:
            connection.close()
    medians = {path: [statistics.median(r[k] for r in results[path]) for k in range(3)] for path in ROUTES}
    print(f"{'route':<18} {'server ms':>10} {'client ms':>10} {'bytes':>7}   (medians of {len(results[ROUTES[0]])})")
    for path in ROUTES:
        server_ms, client_ms, size = medians[path]
        print(f"{path:<18} {server_ms:10.3f} {client_ms:10.3f} {size:7.0f}")
    added = [medians[ROUTES[1]][k] - medians[ROUTES[0]][k] for k in range(3)]
    print(f"{'added by the maps':<18} {added[0]:10.3f} {added[1]:10.3f} {added[2]:7.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
