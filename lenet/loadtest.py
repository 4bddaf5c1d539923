"""Load benchmark (a script, not a test): concurrent keep-alive clients against a running server.

    python serve.py &
    python -m lenet.loadtest [--url http://127.0.0.1:8000] [--clients 8] [--seconds 10] [--path /api/mnist]

Each client is a thread with one keep-alive ``http.client`` connection, sending the same valid
request again and again until the time (or ``--max-requests``) is up. Prints requests per second,
latency percentiles and the number of errors (non-200 answers, wrong answers and broken
connections). Only loopback addresses are accepted as targets.
"""

import argparse
import http.client
import io
import ipaddress
import json
import socket
import sys
import threading
import time
import urllib.parse

import numpy as np
from PIL import Image

PATHS = ("/api/mnist", "/api/predict", "/v2/models/lenet5/infer", "/ping")


def synthetic_digit():
    """A '0' drawn as a thick ring, white ink on black (uint8, 28x28): a fixed valid input."""
    ys, xs = np.indices((28, 28))
    radius = np.hypot((ys - 14) / 1.25, xs - 14)
    return np.where((radius > 5) & (radius < 8), 255, 0).astype(np.uint8)


def make_request(path, batch=1):
    """``(method, body, headers, check)`` for one valid request to ``path``.

    ``check(answer_bytes)`` is true for a well-formed answer; ``batch`` images go in each
    inference request (the other routes take one).
    """
    digit = synthetic_digit()
    if path == "/api/mnist":
        body = json.dumps((255 - digit).ravel().tolist()).encode()  # the course app sends ink on white
        return "POST", body, {"Content-Type": "application/json"}, lambda a: len(json.loads(a)["results"]) == 10
    if path == "/api/predict":
        buffer = io.BytesIO()
        Image.fromarray(255 - digit).save(buffer, "PNG")
        return ("POST", buffer.getvalue(), {"Content-Type": "image/png"},
                lambda a: len(json.loads(a)["probabilities"]) == 10)
    if path == "/v2/models/lenet5/infer":
        body = json.dumps({"inputs": [{"name": "images", "shape": [batch, 28, 28], "datatype": "UINT8",
                                       "data": digit.ravel().tolist() * batch}]}).encode()
        return ("POST", body, {"Content-Type": "application/json"},
                lambda a: len(json.loads(a)["outputs"][0]["data"]) == 10 * batch)
    if path == "/ping":
        return "GET", None, {}, lambda a: json.loads(a) == {"status": "Healthy"}
    raise ValueError(f"--path: expected one of {', '.join(PATHS)}, got {path!r}")


def loopback_target(url):
    """``(host, port)`` of ``url``, refusing anything but a loopback address."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"--url: expected http://HOST:PORT, got {url!r}")
    try:
        address = ipaddress.ip_address(socket.gethostbyname(parts.hostname))
    except OSError as exc:
        raise ValueError(f"--url: cannot resolve {parts.hostname!r}: {exc}") from None
    if not address.is_loopback:
        raise ValueError(f"--url: this benchmark only targets this machine (loopback), "
                         f"got {parts.hostname} = {address}")
    return parts.hostname, parts.port or 80


class Client(threading.Thread):
    """One keep-alive connection sending ``request`` to ``path`` until its deadline or ``max_requests``.

    The thread waits at ``start`` (a barrier); ``deadline`` is set just before the barrier opens.
    """

    def __init__(self, target, path, request, start, max_requests):
        super().__init__(daemon=True)
        self.target, self.path, self.request = target, path, request
        self.start_barrier, self.max_requests = start, max_requests
        self.deadline = None
        self.latencies, self.errors, self.first_error = [], 0, None

    def run(self):
        method, body, headers, check = self.request
        connection = None
        self.start_barrier.wait()
        while len(self.latencies) + self.errors < self.max_requests and time.perf_counter() < self.deadline:
            try:
                if connection is None:
                    connection = http.client.HTTPConnection(*self.target, timeout=10)
                began = time.perf_counter()
                connection.request(method, self.path, body, headers)
                response = connection.getresponse()
                answer = response.read()
                elapsed = time.perf_counter() - began
                if response.status == 200 and check(answer):
                    self.latencies.append(elapsed)
                else:
                    self._error(f"HTTP {response.status}: {answer[:200]!r}")
                if response.will_close:
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:
                self._error(f"{type(exc).__name__}: {exc}")
                if connection is not None:
                    connection.close()
                connection = None
        if connection is not None:
            connection.close()

    def _error(self, message):
        self.errors += 1
        if self.first_error is None:
            self.first_error = message


def run(url, clients, seconds, path, max_requests, batch=1):
    """Run the benchmark; return a dict of the figures."""
    target = loopback_target(url)
    request = make_request(path, batch)
    start = threading.Barrier(clients + 1)
    workers = [Client(target, path, request, start, max_requests) for _ in range(clients)]
    for worker in workers:
        worker.start()
    # Timing starts once every client thread is up and waiting, so thread start-up is not counted.
    began = time.perf_counter()
    for worker in workers:
        worker.deadline = began + seconds
    start.wait()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - began
    latencies = np.sort(np.concatenate([np.asarray(w.latencies) for w in workers])) * 1000.0
    errors = sum(w.errors for w in workers)
    first_error = next((w.first_error for w in workers if w.first_error), None)
    figures = {"requests": int(latencies.size) + errors, "errors": errors, "seconds": elapsed,
               "requests_per_second": latencies.size / elapsed, "first_error": first_error}
    for name, q in (("p50_ms", 50), ("p95_ms", 95), ("p99_ms", 99), ("max_ms", 100)):
        figures[name] = float(np.percentile(latencies, q)) if latencies.size else float("nan")
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m lenet.loadtest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the running server (loopback only)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent keep-alive connections (default 8)")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to run (default 10)")
    parser.add_argument("--path", default="/api/mnist", choices=PATHS, help="route to load (default /api/mnist)")
    parser.add_argument("--max-requests", type=int, default=1_000_000, help="per client, a bound besides time")
    parser.add_argument("--batch", type=int, default=1, help="images per request on /v2/models/lenet5/infer")
    args = parser.parse_args(argv)
    if args.clients < 1 or not 0 < args.seconds <= 3600 or args.max_requests < 1 or args.batch < 1:
        parser.error("--clients, --max-requests and --batch must be >= 1, --seconds in (0, 3600]")
    try:
        figures = run(args.url, args.clients, args.seconds, args.path, args.max_requests, args.batch)
    except ValueError as exc:
        parser.error(str(exc))
    per_request = f", {args.batch} images per request" if args.path.endswith("/infer") else ""
    print(f"{args.path} on {args.url}: {args.clients} clients, {figures['seconds']:.1f} s{per_request}")
    print(f"  requests      {figures['requests']}")
    first_error = f"  (first: {figures['first_error']})" if figures["errors"] else ""
    print(f"  errors        {figures['errors']}{first_error}")
    print(f"  requests/s    {figures['requests_per_second']:.0f}")
    print(f"  latency ms    p50 {figures['p50_ms']:.2f}   p95 {figures['p95_ms']:.2f}   "
          f"p99 {figures['p99_ms']:.2f}   max {figures['max_ms']:.2f}")
    return 1 if figures["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
