"""``HardenedServer``: a ``ThreadingHTTPServer`` answering a route table, within limits.

Every resource a client can make the server hold is bounded: a thread and a descriptor per
connection (``max_connections``; past it a fast 503), time (the head and the body each have one
deadline, idle connections a timeout), header bytes and lines, and memory for request bodies
held at once (``body_memory``; past it a 503). See the README's "Limits" and
docs/serving-limits.md. Nothing here knows what is served: the routes say (see routing.py).
"""

import _thread
import contextlib
import errno
import socket
import sys
import threading
import time
from http.server import ThreadingHTTPServer

from .budget import MemoryBudget
from .busy import BusyRefusals
from .handler import SECURITY_HEADERS, RequestHandler
from .hosts import HostCheck
from .logqueue import LogQueue
from .messages import error_response

try:
    import resource
except ImportError:  # not on Windows
    resource = None

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_REQUEST_TIMEOUT = 10.0  # seconds: idle between requests; for a whole head; a body's least
DEFAULT_MAX_HEADER_BYTES = 16 * 1024
DEFAULT_MAX_HEADERS = 100
DEFAULT_BODY_MEMORY = 64 * 1024 * 1024
# The default connection cap: one thread each, so not more than this however many descriptors
# the system allows, and RESERVED_DESCRIPTORS below the descriptor limit (the listening socket,
# standard streams, files opened while serving, connections being refused: busy.py) so that
# accept() never fails for want of one.
MAX_DEFAULT_CONNECTIONS = 1024
RESERVED_DESCRIPTORS = 128
ACCEPT_BACKOFF_SECONDS = 0.05  # after an accept() that failed for want of resources
_RESOURCE_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def write_to_stderr(line):
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def raise_descriptor_limit():
    """Raise this process's soft limit on open descriptors to its hard limit; return the soft limit.

    Many systems start programs with a soft limit of 1024 while allowing far more. Returns None
    where there is no such limit (Windows).
    """
    if resource is None:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != soft:
        with contextlib.suppress(ValueError, OSError):  # not allowed here: keep the soft limit
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def default_max_connections():
    """MAX_DEFAULT_CONNECTIONS, or fewer when the descriptor limit leaves fewer to spare."""
    if resource is None:
        return MAX_DEFAULT_CONNECTIONS
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return MAX_DEFAULT_CONNECTIONS
    return max(1, min(MAX_DEFAULT_CONNECTIONS, soft - RESERVED_DESCRIPTORS))


def _busy_response(max_connections):
    """The whole 503 sent to a connection over the cap (see busy.py)."""
    response = error_response(503, f"the server is serving as many connections as it allows "
                                   f"({max_connections}); retry shortly")
    head = ["HTTP/1.1 503 Service Unavailable", f"Server: {RequestHandler.server_version}",
            *(f"{name}: {value}" for name, value in SECURITY_HEADERS.items()),
            f"Content-Type: {response.content_type}", f"Content-Length: {len(response.body)}",
            "Cache-Control: no-store", "Retry-After: 1", "Connection: close"]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body


class HardenedServer(ThreadingHTTPServer):
    """Answer the requests ``routes`` (a ``RouteTable``) describes, one thread per connection.

    ``port=0`` picks a free port (see ``url``). ``log`` is called with one line per request
    (default: written to stderr), from a thread of its own, never blocking a request (see
    ``LogQueue``); pass ``None`` to keep quiet.

    Limits (defaults in the module's DEFAULT_* constants):
        request_timeout: seconds a connection may idle between requests; seconds for a whole
            request head from its first byte; the least seconds for a body, which also gets one
            more second per ``MIN_BODY_RATE`` bytes (see handler.py).
        max_connections: connections served at once; others get a 503 with Retry-After at once.
            None: ``default_max_connections()``, from the descriptor limit.
        max_header_bytes, max_headers: the header lines of one request, in bytes and in count (431).
        body_memory: bytes of request bodies held at once by all connections (503 past it).
        allowed_hosts: names answered in ``Host`` besides this machine's, when bound to loopback.
        listener: an already listening socket to accept from (``host`` and ``port`` are then
            unused): how several worker processes share one port (see workers.py).
    """

    # Connections waiting to be accepted: with socketserver's 5 (or even 128), bursts of new
    # connections overflow the queue and the dropped ones wait seconds for their retry.
    request_queue_size = socket.SOMAXCONN

    def __init__(self, routes, host=DEFAULT_HOST, port=DEFAULT_PORT, request_timeout=DEFAULT_REQUEST_TIMEOUT,
                 log=write_to_stderr, *, max_connections=None, max_header_bytes=DEFAULT_MAX_HEADER_BYTES,
                 max_headers=DEFAULT_MAX_HEADERS, body_memory=DEFAULT_BODY_MEMORY, allowed_hosts=(),
                 log_queue_size=10_000, listener=None):
        self.routes = routes
        self.request_timeout = float(request_timeout)
        self.max_connections = default_max_connections() if max_connections is None else int(max_connections)
        self.max_header_bytes = int(max_header_bytes)
        self.max_headers = int(max_headers)
        self.body_memory = MemoryBudget(body_memory)
        self._log_queue = LogQueue(log, log_queue_size) if log is not None else None
        self._requests_in_progress = 0
        self._no_request_in_progress = threading.Condition()
        self._open_connections = 0
        self._connections_lock = threading.Lock()
        self.busy_refusals = BusyRefusals(_busy_response(self.max_connections))
        self._last_accept_failure_logged = -float("inf")
        if listener is None:
            super().__init__((host, port), RequestHandler)
        else:
            super().__init__(listener.getsockname(), RequestHandler, bind_and_activate=False)
            self.socket.close()
            self.socket = listener
            # Shared with other processes: one of them may take a connection this one was woken
            # for, and a blocking accept() would then wait (and keep shutdown() waiting).
            listener.setblocking(False)
        self.host_check = HostCheck(self.server_address[0], allowed_hosts)

    @property
    def url(self):
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    # -- connections -----------------------------------------------------------------------------
    def get_request(self):
        try:
            return super().get_request()
        except OSError as exc:
            if exc.errno in _RESOURCE_ERRORS:
                # The connection stays queued, so the listening socket stays readable: without a
                # pause the loop would retry at once, forever, at full CPU.
                now = time.monotonic()
                if now - self._last_accept_failure_logged > 10:
                    self._last_accept_failure_logged = now
                    self.log(f"cannot accept connections: {exc.strerror}; retrying every "
                             f"{ACCEPT_BACKOFF_SECONDS:g} s")
                time.sleep(ACCEPT_BACKOFF_SECONDS)
            raise

    def process_request(self, request, client_address):
        with self._connections_lock:
            admitted = self._open_connections < self.max_connections
            if admitted:
                self._open_connections += 1
        if not admitted:
            self.busy_refusals.refuse(request)
            return
        try:
            # The low-level start: threading.Thread.start() waits until the new thread runs, which
            # under a burst of connections (with hundreds of threads wanting the GIL) made the
            # accepting thread, and every client queued behind the burst, wait 2-4 times longer.
            # Like the daemon threads socketserver would start, these never delay an exit.
            _thread.start_new_thread(self.process_request_thread, (request, client_address))
        except BaseException:  # no thread started: it will not count the connection closed
            self._connection_closed()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._connection_closed()

    def service_actions(self):
        """Called by serve_forever() every poll interval: finish closing refused connections."""
        self.busy_refusals.sweep()

    def server_close(self):
        super().server_close()
        self.busy_refusals.close()

    def _connection_closed(self):
        with self._connections_lock:
            self._open_connections -= 1

    # -- requests --------------------------------------------------------------------------------
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
        Idle keep-alive connections and clients still sending a head are not waited for.
        Returns True if none was left.
        """
        with self._no_request_in_progress:
            return self._no_request_in_progress.wait_for(lambda: self._requests_in_progress == 0, timeout)

    def stop(self, timeout=5.0):
        """After ``shutdown()``: stop listening, let the answers being written finish, write the log out."""
        self.server_close()
        self.wait_for_requests(timeout)
        if self._log_queue is not None:
            self._log_queue.close(timeout=1.0)

    def log(self, line):
        if self._log_queue is not None:
            self._log_queue.put(line)


@contextlib.contextmanager
def serving_in_background(server):
    """Run ``server`` in a daemon thread for the duration of a ``with`` block, then shut it down."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="http-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.stop()
        thread.join()
