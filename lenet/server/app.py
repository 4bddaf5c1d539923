"""``PredictionServer``: a ``ThreadingHTTPServer`` serving one model, the page and the JSON APIs."""

import contextlib
import sys
import threading
from http.server import ThreadingHTTPServer

import numpy as np

try:
    import numba
except ImportError:  # the NumPy backend needs no thread settings
    numba = None

from .handler import RequestHandler
from .routes import build_routes
from .static import STATIC_DIR, StaticFiles

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_REQUEST_TIMEOUT = 10.0  # seconds a client may take to send a request (and may idle between requests)


class PredictionServer(ThreadingHTTPServer):
    """Serve ``model`` (anything with ``predict(images) -> (N, 10)`` and a ``metadata`` dict).

    One thread per connection; all threads share the model, which is fine because eval-mode
    ``predict`` stores nothing on it. ``port=0`` picks a free port (see ``url``). ``log`` receives
    one line per request; pass ``None`` to keep quiet.
    """

    daemon_threads = True  # a stalled client's thread never keeps the process from exiting

    def __init__(self, model, host=DEFAULT_HOST, port=DEFAULT_PORT, request_timeout=DEFAULT_REQUEST_TIMEOUT,
                 log="stderr", static_folder=STATIC_DIR):
        self.model = model
        self.request_timeout = float(request_timeout)
        self._log_sink = _stderr_line if log == "stderr" else log
        self._log_lock = threading.Lock()
        self.routes = build_routes(StaticFiles(static_folder))
        self.prepare_worker_thread()
        # Compile and run the kernels once now, so the first client does not wait for it.
        self.predict(np.zeros((1, 28, 28), dtype=np.uint8))
        super().__init__((host, port), RequestHandler)

    @property
    def url(self):
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def predict(self, images):
        return self.model.predict(images)

    def prepare_worker_thread(self):
        """Run each request's inference on its own thread only.

        numba's parallel kernels would otherwise fan every single-image predict out to all cores:
        for one image that costs more than it saves, and with many requests at once the fan-outs
        fight over the same two cores. Requests in parallel already keep the cores busy. numba's
        thread count is per calling thread, so each connection thread sets it.
        """
        if numba is not None:
            numba.set_num_threads(1)

    def log(self, line):
        if self._log_sink is not None:
            with self._log_lock:
                self._log_sink(line)


def _stderr_line(line):
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


@contextlib.contextmanager
def serving_in_background(server):
    """Run ``server`` in a daemon thread for the duration of a ``with`` block, then shut it down."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="prediction-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
