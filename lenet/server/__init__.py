"""The HTTP prediction server (standard library only): page, course-app API, v2 inference protocol.

Start it with ``python serve.py``; in code::

    server = PredictionServer(lenet.load_model(), port=0)
    with serving_in_background(server):
        ...  # requests to server.url
"""

from .app import DEFAULT_HOST, DEFAULT_PORT, DEFAULT_REQUEST_TIMEOUT, PredictionServer, serving_in_background

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "DEFAULT_REQUEST_TIMEOUT", "PredictionServer", "serving_in_background"]
