"""Serve the LeNet5 digit recognizer over HTTP: the draw-a-digit page and the JSON APIs.

    python serve.py [--model PATH] [--host 127.0.0.1] [--port 8000] [--timeout 10]

Loads the shipped model (lenet/weights/lenet5.npz) unless --model says otherwise, listens on
loopback unless --host says otherwise, logs one line per request to stderr, and stops cleanly
on Ctrl-C or SIGTERM. Routes: see lenet/server/routes.py and the README.
"""

import os

# One thread per request. The server's parallelism comes from answering requests at once; a BLAS
# or numba kernel that also fans each small batch out to every core makes the threads fight over
# them (measured on 2 busy cores: predict on 8 images took 24 ms with OpenBLAS threads and up to
# 40 ms with numba's parallel kernels, against 0.2 to 0.7 ms on one thread). Set before NumPy and
# numba are imported, which is when they read it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import argparse  # noqa: E402  (after the environment above, on purpose)
import signal  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402

import lenet  # noqa: E402
from lenet.server import DEFAULT_HOST, DEFAULT_PORT, DEFAULT_REQUEST_TIMEOUT, PredictionServer  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="serve.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", metavar="PATH", default=None,
                        help="model file written by nn.save (default: the shipped lenet/weights/lenet5.npz)")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"address to listen on (default {DEFAULT_HOST}: this machine only)")
    parser.add_argument("--port", type=_port, default=DEFAULT_PORT,
                        help=f"port to listen on, 0 for any free one (default {DEFAULT_PORT})")
    parser.add_argument("--timeout", type=_positive_seconds, default=DEFAULT_REQUEST_TIMEOUT,
                        help=f"seconds a client may take to send a request (default {DEFAULT_REQUEST_TIMEOUT:g})")
    return parser.parse_args(argv)


def _port(text):
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0..65535, got {text!r}")
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


def main(argv=None):
    args = parse_args(argv)
    path = args.model or lenet.DEFAULT_WEIGHTS
    try:
        model = lenet.load_model(path)
    except FileNotFoundError:
        return fail(f"no model file at {path} (train one with `python train.py`, or pass --model PATH)")
    except Exception as exc:  # corrupt, truncated or foreign file: whatever the reader raised
        return fail(f"cannot load the model from {path}: {exc}")
    try:
        server = PredictionServer(model, args.host, args.port, request_timeout=args.timeout)
    except OSError as exc:
        return fail(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")

    # shutdown() waits for serve_forever() to return, so it must run on another thread than
    # the one serving (the signal handler runs on the main thread, which is serving).
    signal.signal(signal.SIGTERM, lambda signum, frame: threading.Thread(target=server.shutdown).start())
    accuracy = model.metadata.get("test_accuracy")
    about = f" (test accuracy {accuracy})" if accuracy is not None else ""
    print(f"Serving LeNet5{about} at {server.url}/ - Ctrl-C to stop", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()  # no new connections from here on
        server.wait_for_requests(timeout=5)
    print("Stopped.", flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C while still loading
        sys.exit(130)
