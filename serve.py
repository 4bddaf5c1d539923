"""Serve the LeNet5 digit recognizer over HTTP: the draw-a-digit page and the JSON APIs.

    python serve.py [--model PATH] [--host 127.0.0.1] [--port 8000] [--workers 1] [--timeout 10] ...

Loads the shipped model (lenet/weights/lenet5.npz) unless --model says otherwise, listens on
loopback unless --host says otherwise, logs one line per request to stderr, and stops cleanly
on Ctrl-C or SIGTERM. Routes: see lenet/server/model_api/routes.py; limits: lenet/server/httpd/server.py,
the README and docs/serving-limits.md.
"""

import os

# One thread per request. The server's parallelism comes from answering requests at once; a BLAS
# or numba kernel that also fans each small batch out to every core makes the threads fight over
# them (measured on 2 busy cores: predict on 8 images took 24 ms with OpenBLAS threads and up to
# 40 ms with numba's parallel kernels, against 0.2 to 0.7 ms on one thread). Set before NumPy and
# numba are imported, which is when they read it; only when run as the server, so that a process
# importing this module (the tests) keeps its own thread counts, which numba cannot change once
# its threads run.
if __name__ == "__main__":
    for variable in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(variable, "1")

import argparse  # noqa: E402  (after the environment above, on purpose)
import errno  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402

import lenet  # noqa: E402
from lenet.server import (DEFAULT_BODY_MEMORY, DEFAULT_HOST, DEFAULT_PORT, DEFAULT_REQUEST_TIMEOUT,  # noqa: E402
                          MAX_DEFAULT_CONNECTIONS, RESERVED_DESCRIPTORS, PredictionServer, raise_descriptor_limit)
from lenet.server.httpd.hosts import LOOPBACK_NAMES  # noqa: E402
from lenet.server.httpd.workers import Workers, listening_socket  # noqa: E402
from lenet.server.model_api.app import server_for_model_file  # noqa: E402
from lenet.training.runs import resolve_model_path  # noqa: E402

MIB = 1024 * 1024


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="serve.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", metavar="PATH", default=None,
                        help="model file written by nn.save (default: the shipped lenet/weights/lenet5.npz)")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"address to listen on (default: {DEFAULT_HOST}, this machine only)")
    parser.add_argument("--port", type=_port, default=DEFAULT_PORT,
                        help=f"port to listen on, 0 for any free one (default: {DEFAULT_PORT})")
    parser.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                        help="server processes answering on the port, each with the model loaded once; "
                             "up to one per core is useful (default: 1)")
    parser.add_argument("--timeout", type=_positive_seconds, default=DEFAULT_REQUEST_TIMEOUT, metavar="SECONDS",
                        help="seconds a connection may idle between requests, and a client may take to send "
                             "a request's headers; a body gets this plus 1 s per 64 KiB "
                             f"(default: {DEFAULT_REQUEST_TIMEOUT:g})")
    parser.add_argument("--max-connections", type=_positive_int, default=None, metavar="N",
                        help="connections served at once per worker; more get 503 with Retry-After (default: "
                             f"{MAX_DEFAULT_CONNECTIONS}, or {RESERVED_DESCRIPTORS} below the open-file limit "
                             "if that is lower)")
    parser.add_argument("--body-memory", type=_positive_int, default=DEFAULT_BODY_MEMORY // MIB, metavar="MIB",
                        help="MiB of request bodies held at once per worker; more get 503 with Retry-After "
                             f"(default: {DEFAULT_BODY_MEMORY // MIB})")
    parser.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="when listening on loopback, also answer requests whose Host header names NAME; "
                             "repeatable (default: none, only " + ", ".join(LOOPBACK_NAMES) + ")")
    return parser.parse_args(argv)


def _port(text):
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0..65535, got {text!r}")
    return int(text)


def _positive_int(text):
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def _positive_seconds(text):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def fail(message):
    """A one-line error and exit status 1: a start-up problem is the user's to fix, not a bug."""
    print(f"serve.py: error: {message}", file=sys.stderr)
    return 1


def bind_error(host, port, exc):
    """The one line that says why the server cannot listen on ``host:port`` and what to do."""
    where = f"cannot listen on {host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return f"{where}: the address is already in use (is another server running?); choose another port with --port"
    if exc.errno == errno.EACCES and 0 < port < 1024:
        return f"{where}: ports below 1024 need administrator rights; choose another with --port (e.g. --port 8000)"
    return f"{where}: {exc.strerror or exc}"


def main(argv=None):
    args = parse_args(argv)
    raise_descriptor_limit()  # before any connection: the connection cap is derived from it
    path = args.model or lenet.DEFAULT_WEIGHTS
    try:
        path = resolve_model_path(path)  # a run folder names its model; a checkpoint is refused naming it
        model = lenet.load_model(path)
    except FileNotFoundError as exc:
        return fail(str(exc))
    except Exception as exc:  # corrupt, truncated or foreign file: whatever the reader raised
        return fail(f"cannot load the model from {path}: {exc}")
    options = {"request_timeout": args.timeout, "max_connections": args.max_connections,
               "body_memory": args.body_memory * MIB, "allowed_hosts": tuple(args.allow_host)}
    accuracy = model.metadata.get("test_accuracy")
    about = f"{type(model).__name__} from {path}" + (f" (test accuracy {accuracy})" if accuracy is not None else "")
    if args.workers == 1:
        return serve_in_this_process(model, about, args, options)
    return serve_with_workers(path, about, args, options)


def serve_in_this_process(model, about, args, options):
    try:
        server = PredictionServer(model, args.host, args.port, **options)
    except OSError as exc:
        return fail(bind_error(args.host, args.port, exc))
    # shutdown() waits for serve_forever() to return, so it must run on another thread than
    # the one serving (the signal handler runs on the main thread, which is serving).
    signal.signal(signal.SIGTERM, lambda signum, frame: threading.Thread(target=server.shutdown).start())
    print(f"Serving {about} at {server.url}/ - Ctrl-C to stop", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop(timeout=5)
    print("Stopped.", flush=True)
    return 0


def _log_to_stderr(line):
    print(line, file=sys.stderr, flush=True)


def serve_with_workers(path, about, args, options):
    try:
        listener = listening_socket(args.host, args.port)
    except OSError as exc:
        return fail(bind_error(args.host, args.port, exc))
    stop_requested = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop_requested.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stop_requested.set())
    host, port = listener.getsockname()[:2]
    workers = Workers(args.workers, listener, server_for_model_file, (path,), options, log=_log_to_stderr)
    try:
        if not workers.wait_until_ready():
            return fail("a worker process did not start (see its error above)")
        print(f"Serving {about} at http://{host}:{port}/ with {args.workers} worker processes - Ctrl-C to stop",
              flush=True)
        workers.supervise(stop_requested)
    finally:
        workers.stop()
        listener.close()
    print("Stopped.", flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C while still loading
        sys.exit(130)
