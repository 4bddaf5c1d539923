"""Load benchmark (a script, not a test): concurrent keep-alive clients against a running server.

    python serve.py &
    python -m benchmarks.loadtest [--url http://127.0.0.1:8000] [--clients 8] [--seconds 10] [--path /api/mnist]

Each client is a process with one keep-alive connection (a raw socket: the client shares the
cores with the server, so it is kept cheap), sending the same valid HTTP/1.1 request again and
again and reading each whole response, until the time (or ``--max-requests``) is up. Prints requests per second,
latency percentiles and the number of errors (non-200 answers, wrong answers and broken
connections). Only loopback addresses are accepted as targets.
"""

import argparse
import io
import ipaddress
import json
import multiprocessing
import socket
import sys
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


def encode_request(target, path, request):
    """The bytes of one HTTP/1.1 request (keep-alive) for ``request`` = (method, body, headers, check)."""
    method, body, headers, _ = request
    body = body or b""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {target[0]}:{target[1]}", *(f"{k}: {v}" for k, v in headers.items())]
    if method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def read_response(sock, buffer):
    """One response from ``sock`` -> ``(status, body, closes, rest)``; ``buffer`` holds bytes already received."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection mid-response")
        buffer += chunk
    head, _, buffer = buffer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    fields = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    length = int(fields.get("content-length", "0"))
    while len(buffer) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection mid-body")
        buffer += chunk
    return status, buffer[:length], fields.get("connection", "").lower() == "close", buffer[length:]


def client(target, path, request, start_at, deadline, max_requests, results):
    """One client process: a keep-alive connection, requests one after another until ``deadline``.

    Sends ``(latencies, errors, first error)`` to the ``results`` pipe. A raw socket, not
    ``http.client``: the client shares the cores with the server, so its own cost is kept small.
    """
    check = request[3]
    message = encode_request(target, path, request)
    latencies, errors, first_error = [], 0, None
    sock, buffer = None, b""
    time.sleep(max(0.0, start_at - time.time()))
    while len(latencies) + errors < max_requests and time.time() < deadline:
        try:
            if sock is None:
                sock = socket.create_connection(target, timeout=10)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                buffer = b""
            began = time.perf_counter()
            sock.sendall(message)
            status, answer, closes, buffer = read_response(sock, buffer)
            elapsed = time.perf_counter() - began
            if status == 200 and check(answer):
                latencies.append(elapsed)
            else:
                errors += 1
                first_error = first_error or f"HTTP {status}: {answer[:200]!r}"
            if closes:
                sock.close()
                sock = None
        except (OSError, ValueError, KeyError, IndexError) as exc:
            errors += 1
            first_error = first_error or f"{type(exc).__name__}: {exc}"
            if sock is not None:
                sock.close()
            sock = None
    if sock is not None:
        sock.close()
    results.send((latencies, errors, first_error))
    results.close()


def run(url, clients, seconds, path, max_requests, batch=1):
    """Run the benchmark (one process per client); return a dict of the figures."""
    target = loopback_target(url)
    request = make_request(path, batch)
    context = multiprocessing.get_context("fork")  # the request's check is a closure: not picklable
    # Every client starts at the same moment, once all are running, so process start-up is not counted.
    start_at = time.time() + 0.5 + 0.05 * clients
    pipes, processes = [], []
    for _ in range(clients):
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(target=client, args=(target, path, request, start_at, start_at + seconds,
                                                        max_requests, sender), daemon=True)
        process.start()
        sender.close()
        pipes.append(receiver)
        processes.append(process)
    outcomes = [receiver.recv() for receiver in pipes]
    elapsed = time.time() - start_at
    for process in processes:
        process.join()
    latencies = np.sort(np.concatenate([np.asarray(o[0]) for o in outcomes])) * 1000.0
    errors = sum(o[1] for o in outcomes)
    first_error = next((o[2] for o in outcomes if o[2]), None)
    figures = {"requests": int(latencies.size) + errors, "errors": errors, "seconds": elapsed,
               "requests_per_second": latencies.size / elapsed, "first_error": first_error}
    for name, q in (("p50_ms", 50), ("p95_ms", 95), ("p99_ms", 99), ("max_ms", 100)):
        figures[name] = float(np.percentile(latencies, q)) if latencies.size else float("nan")
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loadtest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the running server (loopback only)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent keep-alive connections, one process each (default 8)")
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
