"""Connections over the server's cap: a 503 at once, and a close that does not destroy it.

The accepting thread must never wait on a client, so it only sends the 503 (far smaller than a
socket's send buffer) without blocking. Closing at once would not do: if the client's request is
there unread, the kernel answers the close with a reset, and the client sees "connection reset"
(or a broken pipe while still sending) instead of the 503. So refused connections linger: what
their clients send is read (without blocking) and dropped each time the accepting thread comes
round, until the client closes or ``linger`` seconds pass. At most ``max_lingering`` linger at
once, so that refusals hold few descriptors; past that the oldest, whose client has had the most
time to read its 503, is closed first.
"""

import collections
import socket
import time

MAX_DRAIN_READS = 4  # reads of 64 KiB per lingering connection per round


class BusyRefusals:
    """``refuse(connection)`` and ``sweep()``, both for the accepting thread only; neither blocks."""

    def __init__(self, response, linger=0.5, max_lingering=64):
        self.response, self.linger, self.max_lingering = response, linger, max_lingering
        self._lingering = collections.deque()  # (connection, when to close it at the latest), oldest first

    def refuse(self, connection):
        """Send the 503 and start closing ``connection``."""
        try:
            connection.setblocking(False)
            connection.send(self.response)
            connection.shutdown(socket.SHUT_WR)
        except OSError:
            connection.close()
            return
        self._lingering.append((connection, time.monotonic() + self.linger))
        self.sweep()

    def sweep(self):
        """Close the lingering connections that are done, expired, or the oldest beyond the limit."""
        now, excess = time.monotonic(), len(self._lingering) - self.max_lingering
        kept = collections.deque()
        for connection, deadline in self._lingering:
            if _client_done(connection) or deadline <= now or excess > 0:
                connection.close()
                excess -= 1
            else:
                kept.append((connection, deadline))
        self._lingering = kept

    def close(self):
        for connection, _ in self._lingering:
            connection.close()
        self._lingering.clear()


def _client_done(connection):
    """Read and drop what the client has sent; True once it has closed its side (or reset)."""
    try:
        for _ in range(MAX_DRAIN_READS):
            if not connection.recv(65536):
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True
    return False
