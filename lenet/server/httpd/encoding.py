"""``Content-Encoding: gzip`` or ``deflate``: request bodies inflated within a bound, answers compressed on request.

A few kilobytes of gzip can inflate to gigabytes (a decompression bomb), so inflating stops
one byte past the route's limit: the server never holds more than ``limit + 1`` inflated bytes,
however small the compressed body was.
"""

import dataclasses
import gzip
import zlib

from .errors import HTTPError

SUPPORTED_ENCODINGS = ("gzip", "deflate", "identity")

# zlib's wbits: a gzip member; a zlib stream (what "deflate" means in HTTP, RFC 9110 8.4.1.2);
# a raw deflate stream (what some clients send as "deflate" anyway).
_GZIP, _ZLIB, _RAW_DEFLATE = 16 + zlib.MAX_WBITS, zlib.MAX_WBITS, -zlib.MAX_WBITS
_CHUNK = 64 * 1024
MAX_GZIP_MEMBERS = 16  # gzip allows concatenated members; HTTP clients send one

# Answers are compressed only when that saves something worth the CPU, and at a moderate level:
# level 9 spends its time searching for long matches (3 s on a 1 MB echoed string) and saves
# little over 1 on JSON numbers (nginx's gzip_comp_level defaults to 1 and gzip_min_length exists
# for the same reason).
MIN_COMPRESSED_RESPONSE = 1024
COMPRESSION_LEVEL = 1


def decode_body(body, content_encoding, limit):
    """``body`` as sent -> the bytes it encodes, at most ``limit`` of them.

    ``content_encoding`` is the header's value (None if absent); one coding is accepted.

    Raises:
        HTTPError(415): a coding other than gzip, deflate or identity, or several codings.
        HTTPError(413): the inflated body would exceed ``limit`` bytes.
        HTTPError(400): the body is not valid gzip/deflate data, or is cut short.
    """
    coding = (content_encoding or "identity").strip().lower()
    if coding == "identity":
        return body
    if coding not in SUPPORTED_ENCODINGS:
        raise HTTPError(415, f"Content-Encoding {coding[:40]!r} is not supported: send gzip, deflate or "
                             "an uncompressed body", headers={"Accept-Encoding": "gzip, deflate"})
    if coding == "gzip":
        wbits = _GZIP
    else:
        wbits = _ZLIB if _looks_like_zlib(body) else _RAW_DEFLATE
    return _inflate(body, wbits, coding, limit)


def _looks_like_zlib(data):
    """A zlib stream starts with a two-byte header: deflate method (8) and a multiple-of-31 check."""
    return len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0


def _inflate(data, wbits, coding, limit):
    """Inflate every member of ``data`` (gzip may concatenate several, at most ``MAX_GZIP_MEMBERS``), stopping past ``limit``.

    The input is fed in slices of a memoryview: no call copies the rest of the body, so the time
    is linear in its size however it is cut into members (copying the rest at each of 100,000
    empty members made a 2 MB body cost seconds).
    """
    view = memoryview(data)
    pieces, total, position, members = [], 0, 0, 0
    while True:
        members += 1
        if members > MAX_GZIP_MEMBERS:
            raise HTTPError(400, f"the {coding} body has more than {MAX_GZIP_MEMBERS} members (the limit; "
                                 "clients send one)")
        inflater = zlib.decompressobj(wbits)
        try:
            while not inflater.eof and position < len(view):
                chunk = view[position:position + _CHUNK]
                position += len(chunk)
                while chunk:
                    # max_length bounds what one call may produce; the input it leaves is in
                    # unconsumed_tail (a copy of at most one slice).
                    piece = inflater.decompress(chunk, min(_CHUNK, limit + 1 - total))
                    pieces.append(piece)
                    total += len(piece)
                    if total > limit:
                        raise HTTPError(413, f"the {coding} body inflates to more than the limit of {limit} "
                                             "bytes for this route")
                    chunk = inflater.unconsumed_tail
        except zlib.error as exc:
            raise HTTPError(400, f"the body is not valid {coding} data: {exc}") from None
        if not inflater.eof:
            raise HTTPError(400, f"the {coding} body is cut short: its compressed stream does not end")
        position -= len(inflater.unused_data)  # what the member left of the last slice
        if position == len(view):
            return b"".join(pieces)
        if wbits != _GZIP:
            raise HTTPError(400, f"{len(view) - position} bytes follow the end of the {coding} stream")


def compress_response(response, accept_encoding):
    """``response`` compressed with the first of gzip, deflate that ``accept_encoding`` allows (as is if
    none, or if its body is under ``MIN_COMPRESSED_RESPONSE`` bytes).

    ``accept_encoding`` is the request's ``Accept-Encoding`` value (None if absent); a coding
    with ``q=0`` is refused, ``*`` stands for any coding not named.
    """
    if len(response.body) < MIN_COMPRESSED_RESPONSE:
        return response
    accepted = _accepted_codings(accept_encoding or "")
    for coding, compress in (("gzip", gzip.compress), ("deflate", zlib.compress)):
        if accepted.get(coding, accepted.get("*", 0.0)) > 0:
            headers = {**response.headers, "Content-Encoding": coding, "Vary": "Accept-Encoding"}
            return dataclasses.replace(response, body=compress(response.body, COMPRESSION_LEVEL), headers=headers)
    return response


def _accepted_codings(value):
    """``"gzip;q=0.5, br"`` -> ``{"gzip": 0.5, "br": 1.0}`` (a malformed weight counts as 0: not accepted)."""
    accepted = {}
    for item in value.split(",")[:32]:
        coding, _, weight = item.partition(";")
        weight = weight.strip().lower()
        try:
            quality = float(weight[2:]) if weight.startswith("q=") else 1.0
        except ValueError:
            quality = 0.0
        accepted[coding.strip().lower()] = quality
    return accepted
