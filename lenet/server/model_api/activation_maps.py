"""``POST /api/activations``: a prediction, plus what every stage of the model computed on the way.

The route is ``/api/predict`` wrapped (:func:`with_activations`): the same bodies are accepted,
checked and preprocessed by the very same code, and the answer holds everything ``/api/predict``
answers, plus::

    "activations": [{"stage": "C1", "shape": [6, 24, 24], "low": 0.0, "high": 3.71, "data": "<base64>"}, ...]

one entry per stage of the model (C1, S2, C3, S4, C5, F6, out; ``lenet.activations``), for the
28x28 digit the answer's ``"image"`` shows, as the model read it (LeNet1998: in a 2-pixel border,
so its maps are larger: C1 [6, 28, 28], S4 [16, 5, 5]). ``data`` is the stage's values, C order,
as one unsigned byte each: ``round(255 * (value - low) / (high - low))``, with ``low`` the
smallest value or 0 if none is negative and ``high`` the largest (above ``low``). Quantized so,
every answer has the same size, about 8 kB of maps whatever was sent, and a picture needs no more
than 256 grey levels. ``"ms"`` is the server time of the whole answer, maps included.
"""

import base64
import json

import numpy as np

from ...activations import stage_activations
from ..httpd.messages import json_response


def quantized(values):
    """A stage's float values -> ``(low, high, uint8 levels)``, levels ``round(255 (v - low) / (high - low))``."""
    low = min(float(values.min()), 0.0)
    high = max(float(values.max()), low + 1e-12)  # an all-zero stage (no ink reached it) stays black
    levels = np.rint((values - low) * (255.0 / (high - low)))
    return low, high, np.clip(levels, 0, 255).astype(np.uint8)


def activation_maps(model, digit):
    """The ``"activations"`` list of the answer for the uint8 (28, 28) MNIST-style ``digit``."""
    outputs = stage_activations(model, model.preprocess(digit[None]))
    maps = []
    for stage, values in outputs.items():
        low, high, levels = quantized(values[0])
        maps.append({"stage": stage, "shape": list(levels.shape), "low": low, "high": high,
                     "data": base64.b64encode(levels.tobytes()).decode("ascii")})
    return maps


def warm_up_activation_maps(model):
    """Run the stages once on a blank digit: they run layer by layer, on kernels that the fused
    prediction path never loads, and loading them now spares the first client the wait (about 15 ms)."""
    activation_maps(model, np.zeros(model.digit_shape, dtype=np.uint8))


def with_activations(predict_route):
    """The route ``predict_route`` (``/api/predict``'s handler) with the activation maps added to its answer.

    Every check, error and preprocessing step stays ``predict_route``'s own: an error answer is
    passed on unchanged, and the maps are computed from the ``"image"`` its answer returns, the
    digit the model read. ``PredictionServer`` warms the stages up (``warm_up_activation_maps``).
    """

    def api_activations(server, request):
        response = predict_route(server, request)
        if response.status != 200:
            return response
        document = json.loads(response.body)  # ~3 kB: cheaper than a second copy of predict's checks
        digit = np.asarray(document["image"], dtype=np.uint8)
        document["activations"] = activation_maps(server.model, digit)
        document["ms"] = request.elapsed_ms()
        return json_response(document, headers=response.headers)
    api_activations.__doc__ = (f"{predict_route.__name__}, plus every model stage's output for the digit read "
                               "(see lenet.server.activations).")
    return api_activations
