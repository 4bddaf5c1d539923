"""Strict JSON request bodies: every way a body can fail to be JSON becomes a clear 400.

Decoding JSON holds the interpreter lock, and its cost depends on what the body holds more
than on its size: a megabyte of ``[],`` builds 350,000 lists and takes as long as 20 MB of
digits. Routes that know how many values a sensible body holds say so (``max_values``,
``max_containers``), and bodies with more are refused by counting bytes before decoding.
"""

import json

from .errors import HTTPError


def _reject_constant(name):
    # Python's json accepts NaN, Infinity and -Infinity, which are not JSON (RFC 8259).
    raise ValueError(f"{name} is not a JSON number")


def parse_json(body, expected, max_values=None, max_containers=None):
    """Decode a request body as JSON; ``expected`` describes the wanted document in error messages.

    ``max_values`` bounds the commas in the body (a document of n values has at most n - 1 of
    them), ``max_containers`` the ``[`` and ``{`` (arrays and objects). Both are counted in the
    raw bytes, strings included, so they may refuse a body whose strings are full of commas or
    brackets, never accept one that holds more values or containers than allowed.

    Raises:
        HTTPError(400): the body is empty, not UTF-8, not JSON, uses NaN/Infinity, or is nested
        so deeply that decoding it would exhaust the interpreter's recursion limit.
        HTTPError(413): more values or containers than allowed.
    """
    if not body.strip():
        raise HTTPError(400, f"empty body: expected {expected}")
    if max_values is not None and body.count(b",") >= max_values:
        raise HTTPError(413, f"the body holds more JSON values than the limit of {max_values} for this route: "
                             f"expected {expected}")
    if max_containers is not None and body.count(b"[") + body.count(b"{") > max_containers:
        raise HTTPError(413, f"the body holds more JSON arrays and objects than the limit of {max_containers} "
                             f"for this route: expected {expected}")
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
