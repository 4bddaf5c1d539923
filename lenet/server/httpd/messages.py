"""What a route handler receives (``Request``) and returns (``Response``)."""

import json
import select
import socket
import time
from dataclasses import dataclass, field
from typing import Optional


@dataclass
class Request:
    """One parsed HTTP request: ``body`` is read in full (within the route's limit) before the handler runs."""

    method: str
    path: str
    query: str
    headers: object  # email.message.Message, as http.server parses it
    body: bytes
    started: float  # time.perf_counter() when the request line arrived
    connection: Optional[socket.socket] = None  # the client's, to notice when it leaves

    def client_gone(self):
        """Whether the client has closed its connection (so no answer can reach it), without waiting."""
        if self.connection is None:
            return False
        poller = select.poll()
        poller.register(self.connection, select.POLLIN)
        if not poller.poll(0):
            return False
        try:
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:  # reset
            return True

    def elapsed_ms(self):
        """Milliseconds since the request arrived: the server-side time reported to clients."""
        return round((time.perf_counter() - self.started) * 1000.0, 3)

    def content_type(self):
        """The media type of the body, lower case, without parameters ("" if none was sent)."""
        return (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str
    headers: dict = field(default_factory=dict)


def json_response(document, status=200, headers=None):
    """A JSON response; ``allow_nan=False`` guarantees the body is valid JSON."""
    body = json.dumps(document, allow_nan=False, separators=(",", ":")).encode("utf-8")
    return Response(status, body, "application/json", dict(headers or {}))


def error_response(status, message, headers=None):
    """The ``{"error": message}`` response every failure gets."""
    return json_response({"error": message}, status, headers)
