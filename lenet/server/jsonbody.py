"""Strict JSON request bodies: every way a body can fail to be JSON becomes a clear 400."""

import json

from .errors import HTTPError


def _reject_constant(name):
    # Python's json accepts NaN, Infinity and -Infinity, which are not JSON (RFC 8259).
    raise ValueError(f"{name} is not a JSON number")


def parse_json(body, expected):
    """Decode a request body as JSON; ``expected`` describes the wanted document in error messages.

    Raises:
        HTTPError(400): the body is empty, not UTF-8, not JSON, uses NaN/Infinity, or is nested
        so deeply that decoding it would exhaust the interpreter's recursion limit.
    """
    if not body.strip():
        raise HTTPError(400, f"empty body: expected {expected}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPError(400, f"body is not UTF-8 text (byte {exc.start}): expected {expected}") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise HTTPError(400, f"malformed JSON ({exc.msg} at line {exc.lineno} column {exc.colno}): "
                             f"expected {expected}") from None
    except RecursionError:
        raise HTTPError(400, f"JSON nested too deeply: expected {expected}") from None
    except ValueError as exc:  # NaN/Infinity, or an integer with too many digits to convert
        raise HTTPError(400, f"invalid JSON value ({exc}): expected {expected}") from None
