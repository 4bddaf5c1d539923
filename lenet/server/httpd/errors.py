"""The one exception the request handlers raise to answer with an HTTP error."""


class HTTPError(Exception):
    """Answer the request with ``status`` and the JSON body ``{"error": message}``.

    ``headers`` are added to the response (e.g. ``Allow`` for a 405). ``close`` ends the
    connection after the answer: needed whenever the request body was not read to its end,
    since the next bytes on the connection would otherwise be taken for a new request.
    """

    def __init__(self, status, message, headers=None, close=False):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})
        self.close = close
