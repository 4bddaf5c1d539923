"""The HTTP prediction server (standard library only): the page, the course app's API, the v2 protocol.

Routes (all answers JSON except the page; errors are ``{"error": "..."}`` with a 4xx status, or
503 with Retry-After when the server is full):

    GET  /                              the draw-a-digit page (its files under /static/)
    POST /api/mnist                     784 ints 0..255, ink on white -> {"results", "prediction", "ms"}
    POST /api/predict                   an image file, or {"image": 28x28}, MNIST-style preprocessed
                                        -> {"prediction", "probabilities", "ms", "image"}
    POST /api/activations               as /api/predict, plus every model stage's maps -> ..., "activations"
    GET  /ping                          {"status": "Healthy"}
    GET  /v2, /v2/health/live, /v2/health/ready, /v2/models/lenet5[/ready|/config]
    POST /v2/models/lenet5/infer        Open Inference Protocol v2 (JSON or binary tensor data, gzip/deflate
                                        bodies): N images, white ink on black -> N x 10 probabilities

Two packages: ``httpd``, the generic hardened HTTP/1.1 layer (parsing, limits, budgets, workers,
logging), and ``model_api``, what is served on it (routes, the Open Inference Protocol, uploads,
activation maps). Limits and cost bounds: docs/serving-limits.md.

Start it with ``python serve.py``; in code::

    server = PredictionServer(lenet.load_model(), port=0)
    with serving_in_background(server):
        ...  # requests to server.url
"""

from .httpd.server import (DEFAULT_BODY_MEMORY, DEFAULT_HOST, DEFAULT_PORT, DEFAULT_REQUEST_TIMEOUT,
                           MAX_DEFAULT_CONNECTIONS, RESERVED_DESCRIPTORS, raise_descriptor_limit, serving_in_background)
from .model_api.app import PredictionServer

__all__ = ["DEFAULT_BODY_MEMORY", "DEFAULT_HOST", "DEFAULT_PORT", "DEFAULT_REQUEST_TIMEOUT", "MAX_DEFAULT_CONNECTIONS",
           "RESERVED_DESCRIPTORS", "PredictionServer", "raise_descriptor_limit", "serving_in_background"]
