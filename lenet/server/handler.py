"""HTTP/1.1 on top of ``http.server``: routing, bounded body reading, JSON errors, one log line each.

Every answer, errors included, is JSON with a Content-Length (so keep-alive connections stay in
step), except the page's own files. Whatever a client sends, the worst it gets is a 4xx for its
own request: the body is read only up to the route's limit and only until a deadline, and a
connection whose body was left unread is closed after the answer.
"""

import re
import socket
import time
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler

from .errors import HTTPError
from .messages import Request, error_response

MAX_REQUEST_LINE = 8192
LINGER_SECONDS = 1.0            # how long unread input is drained before closing (see _drain_input)
LINGER_MAX_BYTES = 4 * 1024 * 1024

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    # Everything the page uses comes from this server: no inline script or style, no other host.
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
                                "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
                                "frame-ancestors 'none'"),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}

_DIGITS = re.compile(r"[0-9]{1,18}")
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


class RequestHandler(BaseHTTPRequestHandler):
    """Answers the requests of one connection, one after another (keep-alive)."""

    protocol_version = "HTTP/1.1"
    server_version = "lenet5-serve/0.1"
    # Buffer what is written and flush once per answer: headers and body leave in one send (and
    # without Nagle's algorithm, nothing waits for the client's acknowledgement before going out).
    wbufsize = -1
    disable_nagle_algorithm = True

    def handle_expect_100(self):
        """Answer ``Expect: 100-continue`` at once: with the buffered writer it would wait for the body."""
        result = super().handle_expect_100()
        self.wfile.flush()
        return result

    def version_string(self):
        """The Server header: this program's name only, not the Python version."""
        return self.server_version

    def setup(self):
        # A socket timeout per connection: a client that stalls (idle, or mid-request) is dropped
        # after request_timeout seconds; it only ever holds its own thread.
        self.timeout = self.server.request_timeout
        super().setup()

    # -- one request -----------------------------------------------------------------------------
    def handle_one_request(self):
        self.command, self.path, self.requestline, self.request_version = None, "", "", "HTTP/1.1"
        self._unread_body = False
        try:
            self.raw_requestline = self.rfile.readline(MAX_REQUEST_LINE + 1)
        except (socket.timeout, OSError):
            self.close_connection = True  # idle keep-alive connection timed out, or the client left
            return
        if not self.raw_requestline:
            self.close_connection = True
            return
        self._started = time.perf_counter()
        with self.server.request_in_progress():
            self._answer()

    def _answer(self):
        """Parse, route and answer the request whose first line has been read."""
        try:
            if len(self.raw_requestline) > MAX_REQUEST_LINE:
                raise HTTPError(414, f"request line longer than {MAX_REQUEST_LINE} bytes", close=True)
            if not self.parse_request():  # it has answered with send_error (JSON, below)
                return
            if self.request_version == "HTTP/0.9":
                raise HTTPError(505, "HTTP/0.9 is not supported: send HTTP/1.0 or HTTP/1.1", close=True)
            response = self._route()
        except HTTPError as exc:
            response = self._error(exc)
        except socket.timeout:
            response = self._error(HTTPError(408, f"timed out after {self.server.request_timeout:g} s "
                                                  "waiting for the request", close=True))
        except (ConnectionError, BrokenPipeError):
            self.close_connection = True
            return
        except Exception:  # a bug: answer 500, keep the server up, leave a trace in the log
            self.server.log(traceback.format_exc().rstrip())
            response = self._error(HTTPError(500, "internal server error", close=True))
        self._send(response)

    def _route(self):
        path, _, query = self.path.partition("?")
        methods = self.server.routes.get(path)
        if methods is None:
            self._no_body()  # a body sent anyway stays unread: it must never be parsed as a request
            raise HTTPError(404, f"no such path: {_printable(path)}")
        endpoint = methods.get("GET" if self.command == "HEAD" else self.command)
        if endpoint is None:
            self._no_body()
            allowed = sorted(set(methods) | ({"HEAD"} if "GET" in methods else set()))
            raise HTTPError(405, f"{self.command} is not allowed on {path}; allowed: {', '.join(allowed)}",
                            headers={"Allow": ", ".join(allowed)})
        body = self._read_body(endpoint.max_body) if endpoint.max_body is not None else self._no_body()
        request = Request(self.command, path, query, self.headers, body, self._started)
        return endpoint.handler(self.server, request)

    # -- the body --------------------------------------------------------------------------------
    def _read_body(self, limit):
        """Read exactly Content-Length bytes (at most ``limit``) before the request deadline."""
        self._unread_body = True  # until the body has been read in full
        body = self._read_exactly(self._declared_length(limit))
        self._unread_body = False
        return body

    def _declared_length(self, limit):
        if self.headers.get("Transfer-Encoding"):
            raise HTTPError(411, "chunked (Transfer-Encoding) bodies are not accepted: send a Content-Length",
                            close=True)
        declared = self.headers.get_all("Content-Length") or []
        if not declared:
            raise HTTPError(411, "a Content-Length header is required", close=True)
        if len(set(v.strip() for v in declared)) > 1:
            raise HTTPError(400, f"conflicting Content-Length headers: {declared}", close=True)
        value = declared[0].strip()
        if not _DIGITS.fullmatch(value):
            raise HTTPError(400, f"Content-Length must be a non-negative integer, got {_printable(value)!r}",
                            close=True)
        length = int(value)
        if length > limit:
            raise HTTPError(413, f"body of {length} bytes is over the limit of {limit} bytes for this route",
                            close=True)
        return length

    def _read_exactly(self, length):
        deadline = time.monotonic() + self.server.request_timeout
        chunks, received = [], 0
        try:
            while received < length:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise socket.timeout()
                self.connection.settimeout(left)  # the deadline bounds the whole body, not each read
                chunk = self.rfile.read1(min(length - received, 65536))
                if not chunk:
                    raise HTTPError(400, f"body ended after {received} bytes, but Content-Length "
                                         f"declared {length}", close=True)
                chunks.append(chunk)
                received += len(chunk)
        except socket.timeout:
            raise HTTPError(408, f"timed out after {self.server.request_timeout:g} s with {received} of the "
                                 f"{length} body bytes declared by Content-Length", close=True) from None
        self.connection.settimeout(self.server.request_timeout)
        return b"".join(chunks)

    def _no_body(self):
        """Requests whose body is not read (methods without one, unknown paths, wrong methods): a body
        sent anyway would be taken for the next request, so the connection is closed after the answer."""
        length = (self.headers.get("Content-Length") or "0").strip()
        if length != "0" or self.headers.get("Transfer-Encoding"):
            self._unread_body = True
            self.close_connection = True
        return b""

    # -- answers ---------------------------------------------------------------------------------
    def send_error(self, code, message=None, explain=None):
        """http.server's own errors (bad request line, bad headers) as JSON, like every other error."""
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "error"
        text = message or explain or phrase
        self._send(self._error(HTTPError(code, text, close=True)))

    def _error(self, exc):
        if exc.close:
            self.close_connection = True
        return error_response(exc.status, exc.message, exc.headers)

    def _send(self, response):
        if self.request_version == "HTTP/0.9":
            # http.server assumes HTTP/0.9 for an unreadable request line and would then send the
            # body without a status line; every answer here has one.
            self.request_version = "HTTP/1.0"
        try:
            self.send_response(response.status)
            for name, value in SECURITY_HEADERS.items():
                self.send_header(name, value)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            if response.content_type == "application/json":
                self.send_header("Cache-Control", "no-store")
            for name, value in response.headers.items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True  # the client went away; nothing left to tell it
        finally:
            self._log(response.status)
        if self._unread_body:
            self._drain_input()

    def _drain_input(self):
        """Read and drop what the client is still sending, briefly, then let the connection close.

        Closing a socket that has unread data makes the kernel answer with a reset, which can
        destroy the error response before the client reads it (a client uploading a too-large
        body would see "connection reset" instead of 413).
        """
        try:
            self.connection.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + LINGER_SECONDS
            drained = 0
            while drained < LINGER_MAX_BYTES:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.connection.settimeout(left)
                chunk = self.connection.recv(65536)
                if not chunk:
                    break
                drained += len(chunk)
        except OSError:
            pass  # includes the timeout: the connection is closed either way

    # -- logging ---------------------------------------------------------------------------------
    def log_request(self, code="-", size="-"):
        """Silenced: each request is logged once, with its time, when its answer is sent (_log)."""

    def log_message(self, format, *args):
        self.server.log(f"{self.client_address[0]} {format % args}")

    def _log(self, status):
        started = getattr(self, "_started", None)
        ms = (time.perf_counter() - started) * 1000.0 if started is not None else 0.0
        method = _printable(self.command or "-")
        self.server.log(f"{self.client_address[0]} {method} {_printable(self.path or '-')} {status} {ms:.1f} ms")


def _printable(text, limit=200):
    """``text`` made safe for one log line or message: control characters escaped, length capped."""
    text = _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text))
    return text if len(text) <= limit else text[:limit] + "..."


