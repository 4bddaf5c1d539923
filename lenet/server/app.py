"""``PredictionServer``: a ``ThreadingHTTPServer`` serving one model, the page and the JSON APIs."""

import contextlib
import sys
import threading
from http.server import ThreadingHTTPServer

import numpy as np

from .handler import RequestHandler
from .routes import build_routes
from .static import STATIC_DIR, StaticFiles

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_REQUEST_TIMEOUT = 10.0  # seconds a client may take to send a request (and may idle between requests)


def write_to_stderr(line):
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


class PredictionServer(ThreadingHTTPServer):
    """Serve ``model`` (anything with ``predict(images) -> (N, 10)`` and a ``metadata`` dict).

    One thread per connection; all threads share the model, which is fine because eval-mode
    ``predict`` stores nothing on it. ``port=0`` picks a free port (see ``url``). ``log`` is called
    with one line per request (default: written to stderr); pass ``None`` to keep quiet.
    """

    daemon_threads = True  # a stalled client's thread never keeps the process from exiting
    # Connections waiting to be accepted. socketserver's default of 5 is overrun when a few
    # clients connect at once, and each connection dropped then waits a second for the retry.
    request_queue_size = 128

    def __init__(self, model, host=DEFAULT_HOST, port=DEFAULT_PORT, request_timeout=DEFAULT_REQUEST_TIMEOUT,
                 log=write_to_stderr, static_folder=STATIC_DIR):
        self.model = model
        self.request_timeout = float(request_timeout)
        self._log_sink = log
        self._log_lock = threading.Lock()
        self._requests_in_progress = 0
        self._no_request_in_progress = threading.Condition()
        self.routes = build_routes(StaticFiles(static_folder))
        # Compile and run the kernels once now, so the first client does not wait for it.
        self.predict(np.zeros((1, 28, 28), dtype=np.uint8))
        super().__init__((host, port), RequestHandler)

    @property
    def url(self):
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def predict(self, images):
        return self.model.predict(images)

    @contextlib.contextmanager
    def request_in_progress(self):
        """Count a request as being answered for the duration of a ``with`` block."""
        with self._no_request_in_progress:
            self._requests_in_progress += 1
        try:
            yield
        finally:
            with self._no_request_in_progress:
                self._requests_in_progress -= 1
                if self._requests_in_progress == 0:
                    self._no_request_in_progress.notify_all()

    def wait_for_requests(self, timeout):
        """After ``shutdown()``: wait (at most ``timeout`` s) for the requests being answered to finish.

        Connection threads are daemons, so without this an exit would cut answers off midway.
        Idle keep-alive connections are not waited for. Returns True if none was left.
        """
        with self._no_request_in_progress:
            return self._no_request_in_progress.wait_for(lambda: self._requests_in_progress == 0, timeout)

    def log(self, line):
        if self._log_sink is not None:
            with self._log_lock:
                self._log_sink(line)


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
        server.wait_for_requests(timeout=5)
        server.server_close()
        thread.join()
