"""The route table a ``HardenedServer`` answers: ``{path: {method: Endpoint}}``.

Handlers take ``(server, request)`` and return a ``Response`` or raise ``HTTPError``. HEAD is
answered wherever GET is.
"""

from dataclasses import dataclass
from typing import Callable, Optional


@dataclass(frozen=True)
class Endpoint:
    handler: Callable
    max_body: Optional[int] = None  # bytes accepted in the body; None: the method takes no body


class RouteTable(dict):
    """``{path: {method: Endpoint}}``, and what a 404 says of a path not in it (``not_found``)."""

    def not_found(self, path):
        """The 404 message for ``path`` (already made printable)."""
        return f"no such path: {path}"
