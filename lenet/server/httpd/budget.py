"""A budget of memory for request bodies held at once, shared by all of a server's connections.

Each route's body limit bounds one request; without a total, many clients each sending a body
just under the limit (slowly) would together hold as much memory as they like. An eighth of the
budget is kept for small bodies (a drawn digit is 4 KB), so that clients holding large ones
cannot keep everyone else out.
"""

import contextlib
import threading

from .errors import HTTPError


SMALL_BODY = 64 * 1024  # bytes: bodies up to this size may use the whole budget


class MemoryBudget:
    """At most ``total`` bytes held at once across ``hold`` blocks; past it, new holds are refused.

    Holds larger than ``SMALL_BODY`` may only fill ``total - total // 8``.
    """

    def __init__(self, total):
        self.total = int(total)
        self.large_total = self.total - self.total // 8
        self.held = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def hold(self, nbytes, what="request body"):
        """Count ``nbytes`` as held for the duration of a ``with`` block.

        The request handler holds each body's declared length from before its first byte is read
        until its answer is ready; a route that makes more of a body (inflating a compressed one,
        say) holds what it makes the same way, before making it.

        Raises:
            HTTPError(503, Retry-After): the budget is taken by other requests for now.
            HTTPError(413): ``nbytes`` is more than the budget allows it, so could never be held.
        """
        nbytes = int(nbytes)
        ceiling = self.total if nbytes <= SMALL_BODY else self.large_total
        if nbytes > ceiling:
            raise HTTPError(413, f"{what} of {nbytes} bytes is over this server's memory budget of "
                                 f"{ceiling} bytes for request bodies", close=True)
        with self._lock:
            admitted = self.held + nbytes <= ceiling
            if admitted:
                self.held += nbytes
        if not admitted:
            raise HTTPError(503, f"the server is holding as many request bodies as its memory budget allows "
                                 f"({self.total} bytes); retry shortly", headers={"Retry-After": "1"}, close=True)
        try:
            yield
        finally:
            with self._lock:
                self.held -= nbytes
