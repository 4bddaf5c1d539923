"""Reading one request head (the request line and the header lines) within a deadline and size caps.

``http.server`` reads the head with ``readline``: the socket timeout then bounds each ``recv``, not
the head, so a client sending a byte every few seconds holds its connection forever; its header
lines may be 64 KiB each; and a line it cannot parse silently ends the headers (the lines after it,
a ``Content-Length`` say, are then ignored). Here the whole head must arrive before one deadline,
within a byte and a line budget, and every header line must be ``name: value`` (RFC 9112).
"""

import re
import socket
import time

from .errors import HTTPError

# A field name is an RFC 9110 token: no whitespace, no separators (so "Name : value" is refused).
_FIELD_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def read_line(rfile, connection, deadline, limit):
    """One line from ``rfile`` (ending in LF), before ``deadline`` (``time.monotonic()``).

    At most ``limit + 1`` bytes are consumed: a result longer than ``limit`` means the line is.
    ``rfile.peek`` makes at most one ``recv`` per call, each allowed only the time left, so the
    deadline bounds the line however slowly it comes; bytes after the line stay buffered for the
    next read. Returns what arrived before the client closed (b"" if nothing).

    Raises:
        socket.timeout: the deadline passed first.
    """
    parts, size = [], 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("deadline passed")
        connection.settimeout(left)
        buffered = rfile.peek(1)
        if not buffered:
            return b"".join(parts)
        room = limit + 1 - size
        end = buffered.find(b"\n", 0, room)
        part = rfile.read(end + 1 if end >= 0 else min(len(buffered), room))
        parts.append(part)
        size += len(part)
        if end >= 0 or size > limit:
            return b"".join(parts)


class Headers:
    """A request's header fields by case-insensitive name; several fields of one name stay apart.

    The subset of ``email.message.Message`` that request handlers use (``get``, ``get_all``),
    without the cost of the email parser (a third of a small request's CPU).
    """

    __slots__ = ("_fields",)

    def __init__(self, lines=()):
        self._fields = {}
        for line in lines:
            name, _, value = line.partition(b":")
            self._fields.setdefault(name.decode("ascii").lower(), []).append(value.strip(b" \t\r\n").decode("latin-1"))

    def get(self, name, default=None):
        """The first field named ``name``, or ``default``."""
        values = self._fields.get(name.lower())
        return values[0] if values else default

    def get_all(self, name, default=None):
        """Every field named ``name`` in the order sent, or ``default`` if there is none."""
        values = self._fields.get(name.lower())
        return list(values) if values else default

    def __contains__(self, name):
        return name.lower() in self._fields


def read_head(rfile, connection, deadline, max_request_line, max_header_bytes, max_headers):
    """``(request line, header lines)`` of one request, or None if the client closed before its end.

    Each header line has been checked to be ``name: value``; it keeps its line end.

    Raises:
        socket.timeout: the head was not complete by ``deadline``.
        HTTPError: 414 (request line too long), 431 (headers over ``max_header_bytes`` in all or
            more than ``max_headers`` lines), 400 (a header line that is not ``name: value``, or
            a CR or NUL inside a line).
    """
    whole = _buffered_head(rfile, max_request_line, max_header_bytes, max_headers)
    if whole is not None:
        request_line, lines = whole
        if _has_cr_or_nul(request_line):
            raise HTTPError(400, "request line with a CR or NUL character inside it", close=True)
        for line in lines:
            _check_header_line(line)
        rfile.read(len(request_line) + sum(map(len, lines)) + 2)
        return request_line, lines
    request_line = read_line(rfile, connection, deadline, max_request_line)
    if len(request_line) > max_request_line:
        raise HTTPError(414, f"request line longer than {max_request_line} bytes", close=True)
    if not request_line.endswith(b"\n"):
        return None
    if _has_cr_or_nul(request_line):
        raise HTTPError(400, "request line with a CR or NUL character inside it", close=True)
    lines, size = [], 0
    while True:
        line = read_line(rfile, connection, deadline, max_header_bytes - size)
        size += len(line)
        if size > max_header_bytes:
            raise HTTPError(431, f"request headers longer than {max_header_bytes} bytes in all", close=True)
        if not line.endswith(b"\n"):
            return None
        if line in (b"\r\n", b"\n"):
            return request_line, lines
        if len(lines) == max_headers:
            raise HTTPError(431, f"more than {max_headers} header lines", close=True)
        _check_header_line(line)
        lines.append(line)


def _buffered_head(rfile, max_request_line, max_header_bytes, max_headers):
    """``(request line, header lines)`` when the whole head, CRLF line ends only and within every
    limit, is already in ``rfile``'s buffer (a request's usual case): split at once, without a read
    and a timeout per line. None otherwise (``read_head`` then reads it line by line). Consumes nothing."""
    buffered = rfile.peek(0)
    end = buffered.find(b"\r\n\r\n", 0, max_request_line + max_header_bytes + 4)
    if end < 0:
        return None
    head = buffered[:end + 2]
    if head.count(b"\n") != head.count(b"\r\n"):
        return None
    request_line, *lines = [line + b"\r\n" for line in head[:-2].split(b"\r\n")]
    if len(request_line) > max_request_line or len(lines) > max_headers or end + 4 - len(request_line) > max_header_bytes:
        return None
    return request_line, lines


def _has_cr_or_nul(line):
    content = line[:-2] if line.endswith(b"\r\n") else line[:-1]
    return b"\r" in content or b"\x00" in content


def _check_header_line(line):
    if _has_cr_or_nul(line):
        # Python's header parser takes a lone CR for a line end, so "X: a<CR>Content-Length: 5"
        # would be two headers here and one to a proxy in front (RFC 9110 5.5: reject it).
        raise HTTPError(400, "header line with a CR or NUL character inside it", close=True)
    if line[:1] in (b" ", b"\t"):
        raise HTTPError(400, "header line folded onto the previous one (obsolete line folding is not accepted)",
                        close=True)
    name, colon, _ = line.partition(b":")
    if not colon or not _FIELD_NAME.fullmatch(name):
        shown = line[:60].decode("latin-1").rstrip("\r\n").encode("unicode_escape").decode("ascii")
        raise HTTPError(400, f"malformed header line {shown!r}: expected 'Name: value' with no space before "
                             "the colon", close=True)
