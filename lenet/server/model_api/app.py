"""``PredictionServer``: a ``HardenedServer`` serving one model, the page and the JSON APIs."""

import numpy as np

from ... import load_model
from ..httpd.server import DEFAULT_HOST, DEFAULT_PORT, DEFAULT_REQUEST_TIMEOUT, HardenedServer, write_to_stderr
from .activation_maps import warm_up_activation_maps
from .routes import build_routes
from .static import STATIC_DIR, StaticFiles


class PredictionServer(HardenedServer):
    """Serve ``model`` (a ``lenet.LeNet5`` or ``lenet.LeNet1998``: ``predict(images) -> (N, 10)``, a
    ``metadata`` dict, ``digit_shape`` and ``input_shape``).

    One thread per connection; all threads share the model, which is fine because eval-mode
    ``predict`` stores nothing on it. The limits are ``HardenedServer``'s (keyword arguments).
    """

    def __init__(self, model, host=DEFAULT_HOST, port=DEFAULT_PORT, request_timeout=DEFAULT_REQUEST_TIMEOUT,
                 log=write_to_stderr, static_folder=STATIC_DIR, **limits):
        self.model = model
        # Compile and run the kernels once now, so the first client does not wait for it. Clients send
        # the digit (28x28); a model that reads more (LeNet1998: 32x32) pads it in its preprocess.
        self.predict(np.zeros((1, *model.digit_shape), dtype=np.uint8))
        warm_up_activation_maps(model)
        super().__init__(build_routes(StaticFiles(static_folder)), host, port, request_timeout, log, **limits)

    def predict(self, images):
        return self.model.predict(images)


def server_for_model_file(path, **options):
    """A ``PredictionServer`` of the model saved at ``path``: what each worker process starts (workers.py)."""
    return PredictionServer(load_model(path), **options)
