"""HTTP/1.1 on top of ``http.server``: strict heads, routing, bounded body reading, JSON errors, one log line each.

Every answer, errors included, is JSON with a Content-Length (so keep-alive connections stay in
step), except the page's own files. Whatever a client sends, the worst it gets is a 4xx for its
own request (or a 503 when the server is full): the head must come whole before one deadline and
within a size cap (head.py), the body is read only up to the route's limit, within the server's
memory budget and before a deadline scaled to its length, and a connection whose body was left
unread is closed after the answer.
"""

import email.utils
import re
import socket
import time
import traceback
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler

from .errors import HTTPError
from .head import Headers, read_head
from .messages import Request, error_response

MAX_REQUEST_LINE = 8192
MIN_BODY_RATE = 64 * 1024      # bytes per second: a body gets request_timeout + its length / this
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
_VERSION = re.compile(r"HTTP/[0-9]\.[0-9]")
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")
_SECURITY_LINES = "\r\n".join(f"{name}: {value}" for name, value in SECURITY_HEADERS.items())


def _phrase(status):
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


_date_cache = (None, "")


def _http_date():
    """The Date header's value (RFC 9110 5.6.7), formatted once a second."""
    global _date_cache
    second = int(time.time())
    if _date_cache[0] != second:
        _date_cache = (second, email.utils.formatdate(second, usegmt=True))
    return _date_cache[1]


class RequestHandler(BaseHTTPRequestHandler):
    """Answers the requests of one connection, one after another (keep-alive)."""

    protocol_version = "HTTP/1.1"
    server_version = "lenet5-serve/0.1"
    # Buffer what is written and flush once per answer: headers and body leave in one send (and
    # without Nagle's algorithm, nothing waits for the client's acknowledgement before going out).
    wbufsize = -1
    disable_nagle_algorithm = True

    def handle_expect_100(self):
        """Note ``Expect: 100-continue``; the 100 is sent only once the body is known to be wanted
        (right route, length within the limit and the memory budget: see ``_read_body``)."""
        self._expects_continue = True
        return True

    def setup(self):
        self.timeout = self.server.request_timeout
        super().setup()

    # -- one request -----------------------------------------------------------------------------
    def handle_one_request(self):
        self.command, self.path, self.requestline, self.request_version = None, "", "", "HTTP/1.1"
        self._unread_body = False
        self._expects_continue = False
        self._started = None
        if not self._request_arrives():
            self.close_connection = True  # idle keep-alive connection timed out, or the client left
            return
        self._started = time.perf_counter()
        try:
            head = read_head(self.rfile, self.connection, time.monotonic() + self.server.request_timeout,
                             MAX_REQUEST_LINE, self.server.max_header_bytes, self.server.max_headers)
        except HTTPError as exc:  # too long or malformed: the rest of what it sends is never read
            self._unread_body = True
            self._send(self._error(exc))
            return
        except socket.timeout:
            self._send(self._error(HTTPError(408, f"timed out after {self.server.request_timeout:g} s "
                                                  "waiting for the request head", close=True)))
            return
        except OSError:
            head = None
        if head is None:  # the client left mid-head
            self.close_connection = True
            return
        with self.server.request_in_progress():
            self._answer(*head)

    def _request_arrives(self):
        """Wait (at most request_timeout s, the idle timeout) for the first byte of a request."""
        try:
            self.connection.settimeout(self.server.request_timeout)
            return bool(self.rfile.peek(1))
        except OSError:  # includes the timeout
            return False

    def _answer(self, request_line, header_lines):
        """Parse, check, route and answer the request whose head has been read."""
        try:
            if not self._parse(request_line, header_lines):  # it has answered with send_error (JSON, below)
                return
            if self.request_version == "HTTP/0.9":
                raise HTTPError(505, "HTTP/0.9 is not supported: send HTTP/1.0 or HTTP/1.1", close=True)
            self._check_host()
            response = self._route()
        except HTTPError as exc:
            response = self._error(exc)
        except (ConnectionError, socket.timeout):  # the client left, or stopped reading (a 100 Continue)
            self.close_connection = True
            return
        except Exception:  # a bug: answer 500, keep the server up, leave a trace in the log
            self.server.log(traceback.format_exc().rstrip())
            response = self._error(HTTPError(500, "internal server error", close=True))
        self._send(response)

    def _parse(self, request_line, header_lines):
        """The request line and headers -> ``command``, ``path``, ``request_version``, ``headers``,
        and whether the connection stays open: what http.server's ``parse_request`` does, with the
        header lines already read and checked (see head.py).

        Returns False when it has answered the request with an error itself.
        """
        self.requestline = request_line.decode("iso-8859-1").rstrip("\r\n")
        words = self.requestline.split()
        if len(words) == 3:
            self.command, self.path, version = words
            if not _VERSION.fullmatch(version):
                self.send_error(400, f"Bad request version ({_printable(version)!r})")
                return False
            self.request_version = version
            if version >= "HTTP/2.0":
                self.send_error(505, f"Invalid HTTP version ({_printable(version)})")
                return False
            self.close_connection = version < "HTTP/1.1"
        elif len(words) == 2:  # HTTP/0.9: refused by the caller
            self.command, self.path = words
            self.request_version = "HTTP/0.9"
            self.close_connection = True
        else:
            self.send_error(400, f"Bad request syntax ({_printable(self.requestline)!r})")
            return False
        if self.path.startswith("//"):
            self.path = "/" + self.path.lstrip("/")  # not a scheme-relative URL (as http.server)
        self.headers = Headers(header_lines)
        connection = (self.headers.get("Connection") or "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive" and self.protocol_version >= "HTTP/1.1":
            self.close_connection = False
        expect = (self.headers.get("Expect") or "").lower()
        if expect == "100-continue" and self.request_version >= "HTTP/1.1":
            self.handle_expect_100()
        return True

    def _check_host(self):
        """HTTP/1.1 requires exactly one Host; an absolute-form target (``GET http://host/path``) names
        the host instead (RFC 9112 3.2.2), and is routed by its path."""
        hosts = self.headers.get_all("Host") or []
        if self.request_version >= "HTTP/1.1" and len(hosts) != 1:
            self._no_body()
            raise HTTPError(400, f"HTTP/1.1 requests need exactly one Host header, got {len(hosts)}")
        if self.path.startswith(("http://", "https://")):
            target = urllib.parse.urlsplit(self.path)
            if not target.netloc:
                self._no_body()
                raise HTTPError(400, f"absolute request target without a host: {_printable(self.path)}")
            self.path = "/" + (target.path + ("?" + target.query if target.query else "")).lstrip("/")
            hosts = [target.netloc]
        for host in hosts:
            if not self.server.host_check.allows(host):
                self._no_body()
                raise HTTPError(403, f"Host {_printable(host)!r} is not this server's name (it listens on "
                                     "loopback only); start it with --allow-host NAME to answer that name")

    def _route(self):
        path, _, query = self.path.partition("?")
        methods = self.server.routes.get(path)
        if methods is None:
            self._no_body()  # a body sent anyway stays unread: it must never be parsed as a request
            raise HTTPError(404, self.server.routes.not_found(_printable(path)))
        endpoint = methods.get("GET" if self.command == "HEAD" else self.command)
        if endpoint is None:
            self._no_body()
            allowed = sorted(set(methods) | ({"HEAD"} if "GET" in methods else set()))
            raise HTTPError(405, f"{self.command} is not allowed on {path}; allowed: {', '.join(allowed)}",
                            headers={"Allow": ", ".join(allowed)})
        if endpoint.max_body is None:
            request = Request(self.command, path, query, self.headers, self._no_body(), self._started, self.connection)
            return endpoint.handler(self.server, request)
        self._unread_body = True  # until the body has been read in full
        length = self._declared_length(endpoint.max_body)
        # The body is counted in the memory budget from before it is read until its answer is ready.
        with self.server.body_memory.hold(length):
            body = self._read_body(length)
            request = Request(self.command, path, query, self.headers, body, self._started, self.connection)
            return endpoint.handler(self.server, request)

    # -- the body --------------------------------------------------------------------------------
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

    def _read_body(self, length):
        """Read exactly ``length`` bytes before the body's deadline (after a 100 Continue if one was asked)."""
        if self._expects_continue:
            self.connection.settimeout(self.server.request_timeout)
            self.send_response_only(100)
            self.end_headers()
            self.wfile.flush()
        seconds = self.server.request_timeout + length / MIN_BODY_RATE
        deadline = time.monotonic() + seconds
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
            raise HTTPError(408, f"timed out after {seconds:.3g} s with {received} of the "
                                 f"{length} body bytes declared by Content-Length", close=True) from None
        self._unread_body = False
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
        text = message or explain or _phrase(code) or "error"
        self._send(self._error(HTTPError(code, text, close=True)))

    def _error(self, exc):
        if exc.close:
            self.close_connection = True
        return error_response(exc.status, exc.message, exc.headers)

    def _send(self, response):
        """Write ``response`` (status line, headers and body in one write), log it, and drain what
        the client is still sending if the request's body was not read."""
        head = [f"{self.protocol_version} {response.status} {_phrase(response.status)}",
                f"Server: {self.server_version}", f"Date: {_http_date()}", _SECURITY_LINES,
                f"Content-Type: {response.content_type}", f"Content-Length: {len(response.body)}"]
        if response.content_type == "application/json":
            head.append("Cache-Control: no-store")
        head.extend(f"{name}: {value}" for name, value in response.headers.items())
        if self.close_connection:
            head.append("Connection: close")
        head.append("\r\n")
        message = "\r\n".join(head).encode("latin-1")
        try:
            # The reads before left the timeout at whatever remained of their deadline.
            self.connection.settimeout(self.server.request_timeout)
            self.wfile.write(message if self.command == "HEAD" else message + response.body)
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


