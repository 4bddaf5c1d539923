"""Small requests built to make the server compute for long (cost amplification), for the tests and the attack script.

``HOSTILE`` maps a name to a function returning ``(path, headers, body)``: each is a few bytes to a
couple of megabytes that an unbounded server would spend seconds or hundreds of megabytes on.
``NORMAL`` are requests the server must keep answering quickly (ordinary photos included).
"""

import gzip
import http.client
import io
import json
import os
import random
import struct
import time
import zlib

import numpy as np
from PIL import Image

MNIST = "/api/mnist"
PREDICT = "/api/predict"
INFER = "/v2/models/lenet5/infer"


def gzipped(body, level=9):
    return gzip.compress(body, level)


def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def flat_png(width, height, level=9, colour=False):
    """A PNG of ``width`` x ``height`` pixels of one grey with a dark stroke, written straight (Pillow
    would need the whole image in memory to write it)."""
    channels = 3 if colour else 1
    row = bytearray(b"\x00" + b"\xc8" * (width * channels))
    ink = bytes(b"\x00" + b"\x10" * (width * channels))
    compressor = zlib.compressobj(level)
    pieces = []
    for y in range(height):
        pieces.append(compressor.compress(ink if height // 3 < y < height // 3 + max(1, height // 20) else row))
    pieces.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 2 if colour else 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", b"".join(pieces))
            + _png_chunk(b"IEND", b""))


def digit_picture(side, colour=False, progressive=False, noise=True):
    """A photo-like picture of a '0' (dark ring on light paper, with noise), ``side`` pixels a side."""
    rng = np.random.default_rng(0)
    ys, xs = np.indices((side, side)) / side
    radius = np.hypot((ys - 0.5) / 1.25, xs - 0.5)
    grey = np.where((radius > 0.18) & (radius < 0.28), 40.0, 210.0)
    if noise:
        grey = grey + rng.normal(0, 12, grey.shape)
    grey = np.clip(grey, 0, 255).astype(np.uint8)
    image = Image.fromarray(grey)
    if colour:
        image = Image.merge("RGB", (image, image.point(lambda v: v * 0.9), image.point(lambda v: v * 0.8)))
    return image


def jpeg_bytes(image, **options):
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **options)
    return buffer.getvalue()


def png_bytes(image):
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _jpeg_segments(data):
    """A JPEG file -> (bytes before its last scan, its last scan: SOS segment and entropy-coded data)."""
    last_sos = data.rfind(b"\xff\xda")
    return data[:last_sos], data[last_sos:-2]


def repeated_scan_jpeg(scans, junk_after_app0=True, side=4096):
    """A flat progressive JPEG whose last scan is repeated ``scans`` times: each is decoded over the whole image.

    With ``junk_after_app0``, a stray byte follows the APP0 segment: libjpeg skips it (with a warning),
    so a scan counter that stops at it sees no scans at all.
    """
    data = jpeg_bytes(Image.new("L", (side, side), 200), progressive=True, quality=90)
    head, scan = _jpeg_segments(data)
    if junk_after_app0:
        app0_end = 4 + (head[4] << 8 | head[5])
        head = head[:app0_end] + b"\x00" + head[app0_end:]
    return head + scan * scans + b"\xff\xd9"


def filled_jpeg(scans):
    """Scans separated by fill bytes and restart markers (0xFF runs before each marker)."""
    data = jpeg_bytes(Image.new("L", (4096, 4096), 200), progressive=True, quality=90)
    head, scan = _jpeg_segments(data)
    return head + (b"\xff" * 7 + scan) * scans + b"\xff\xd9"


def _post(path, body, **headers):
    return path, {"Content-Type": "application/octet-stream", **headers}, body


def hostile_progressive_jpeg():
    return _post(PREDICT, gzipped(repeated_scan_jpeg(1200)), **{"Content-Encoding": "gzip", "Content-Type": "image/jpeg"})


def hostile_fill_byte_jpeg():
    return _post(PREDICT, gzipped(filled_jpeg(1200)), **{"Content-Encoding": "gzip", "Content-Type": "image/jpeg"})


def hostile_64_scan_jpeg():
    """The most a JPEG may cost and still be read: 4096x4096, 64 scans."""
    return _post(PREDICT, gzipped(repeated_scan_jpeg(64 - 6, junk_after_app0=False)),
                 **{"Content-Encoding": "gzip", "Content-Type": "image/jpeg"})


def infer_body(request_id=None):
    document = {"inputs": [{"name": "images", "shape": [1, 28, 28], "datatype": "UINT8", "data": [0] * 784}]}
    if request_id is not None:
        document["id"] = request_id
    return json.dumps(document).encode()


def hostile_gzip_members():
    """100,000 empty gzip members before the real one: copying the rest of the body at each is quadratic."""
    members = gzipped(b"") * 100_000 + gzipped(infer_body())
    return _post(INFER, members, **{"Content-Encoding": "gzip", "Content-Type": "application/json"})


def hostile_echoed_id():
    rng = random.Random(0)
    body = infer_body("".join(rng.choice("01") for _ in range(1_000_000)))
    return _post(INFER, gzipped(body), **{"Content-Encoding": "gzip", "Content-Type": "application/json",
                                          "Accept-Encoding": "gzip"})


def hostile_empty_arrays(path=MNIST):
    """1 MiB of ``[],`` (exactly the body limit once inflated) in 1 kB of gzip: 350,000 lists to build."""
    body = b"[" + b"[]," * ((1024 * 1024 - 4) // 3) + b"[]]"
    return _post(path, gzipped(body), **{"Content-Encoding": "gzip", "Content-Type": "application/json"})


def hostile_deep_nesting(path=INFER):
    body = b"[" * 500_000 + b"]" * 500_000
    return _post(path, gzipped(body), **{"Content-Encoding": "gzip", "Content-Type": "application/json"})


def hostile_long_numbers():
    body = (b"[" + b",".join([b"1" * 4000] * 200) + b"]")
    return _post(MNIST, gzipped(body), **{"Content-Encoding": "gzip", "Content-Type": "application/json"})


def hostile_thin_png():
    return _post(PREDICT, flat_png(16_777_216, 1), **{"Content-Type": "image/png"})


def hostile_tall_png():
    return _post(PREDICT, flat_png(1, 16_777_216), **{"Content-Type": "image/png"})


def hostile_big_flat_png():
    """The largest picture still read, 4096x4096 colour, in a few kB."""
    return _post(PREDICT, flat_png(4096, 4096, colour=True), **{"Content-Type": "image/png"})


def interlaced_png(width, height, colour=False):
    """An Adam7-interlaced PNG (the picture in 7 passes, each decoded apart) of one grey with a dark band."""
    image = np.full((height, width, 3 if colour else 1), 200, np.uint8)
    image[height // 3:height // 3 + max(1, height // 20), width // 4:3 * width // 4] = 20
    passes = []
    for x0, y0, dx, dy in [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]:
        rows = image[y0::dy, x0::dx].reshape(len(range(y0, height, dy)), -1)
        if rows.size:
            passes.append(np.hstack([np.zeros((len(rows), 1), np.uint8), rows]).tobytes())  # filter 0 each row
    header = struct.pack(">IIBBBBB", width, height, 8, 2 if colour else 0, 0, 0, 1)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(b"".join(passes), 9))
            + _png_chunk(b"IEND", b""))


def hostile_interlaced_png():
    """A 4096x4096 colour interlaced PNG: Adam7's seven passes cost more a pixel than plain rows."""
    return _post(PREDICT, interlaced_png(4096, 4096, colour=True), **{"Content-Type": "image/png"})


def hostile_png_chunks():
    """Hundreds of thousands of empty ancillary chunks before the pixels: each is a Python call in the reader."""
    image = png_bytes(digit_picture(64, noise=False))
    filler = _png_chunk(b"tEXt", b"a\x00") * 70_000
    return _post(PREDICT, image[:33] + filler + image[33:], **{"Content-Type": "image/png"})


def hostile_png_text_bombs():
    """zTXt chunks, each 1 kB inflating to 1 MB of text."""
    image = png_bytes(digit_picture(64, noise=False))
    text = _png_chunk(b"zTXt", b"a\x00\x00" + zlib.compress(b" " * (1024 * 1024 - 64), 9))
    return _post(PREDICT, image[:33] + text * 60 + image[33:], **{"Content-Type": "image/png"})


def hostile_big_gif():
    image = Image.new("P", (4096, 4096), 1)
    buffer = io.BytesIO()
    image.save(buffer, "GIF")
    return _post(PREDICT, buffer.getvalue(), **{"Content-Type": "image/gif"})


HOSTILE = {
    "progressive-jpeg": hostile_progressive_jpeg,
    "fill-byte-jpeg": hostile_fill_byte_jpeg,
    "jpeg-64-scans": hostile_64_scan_jpeg,
    "gzip-members": hostile_gzip_members,
    "echoed-id": hostile_echoed_id,
    "empty-arrays-mnist": lambda: hostile_empty_arrays(MNIST),
    "empty-arrays-predict": lambda: hostile_empty_arrays(PREDICT),
    "empty-arrays-activations": lambda: hostile_empty_arrays("/api/activations"),
    "deep-nesting": hostile_deep_nesting,
    "long-numbers": hostile_long_numbers,
    "thin-png": hostile_thin_png,
    "tall-png": hostile_tall_png,
    "flat-4096-png": hostile_big_flat_png,
    "interlaced-4096-png": hostile_interlaced_png,
    "png-chunks": hostile_png_chunks,
    "png-text-bombs": hostile_png_text_bombs,
    "flat-4096-gif": hostile_big_gif,
}


def normal_photos():
    """Ordinary pictures the server must still read, all within the 1 MB body limit: ``{name: (content type, bytes)}``.

    Up to 4096 x 4096 pixels, grey or colour, baseline or progressive JPEG (up to 64 scans at 2048 x 2048), PNG.
    """
    photos = {}
    for side in (512, 4096):
        for colour in (False, True):
            kind = "colour" if colour else "grey"
            picture = digit_picture(side, colour=colour, noise=side <= 512)  # a noisy 4096 x 4096 JPEG is 5 MB
            photos[f"{side}-{kind}.jpg"] = ("image/jpeg", jpeg_bytes(picture, quality=85))
            photos[f"{side}-{kind}-progressive.jpg"] = ("image/jpeg", jpeg_bytes(picture, quality=85, progressive=True))
    head, scan = _jpeg_segments(jpeg_bytes(digit_picture(2048, noise=False), quality=85, progressive=True))
    photos["2048-grey-64-scans.jpg"] = ("image/jpeg", head + scan * (64 - 5) + b"\xff\xd9")
    photos["1024-grey.png"] = ("image/png", png_bytes(digit_picture(1024, noise=False)))
    photos["4096-colour.png"] = ("image/png", flat_png(4096, 4096, colour=True))
    return photos


# -- measuring a request's cost on a server process --------------------------------------------------
def cpu_seconds(pid):
    """User + system CPU seconds of process ``pid`` (all its threads) so far, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid, field="VmRSS"):
    """``VmRSS`` (resident now) or ``VmHWM`` (its peak) of process ``pid``, in MB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise ValueError(f"no {field} in /proc/{pid}/status")


def send(port, path, headers, body, timeout=60):
    """One ``POST`` on a new connection -> ``(status, headers dict, body)``, read to the end."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def request_cost(pid, port, request, settle=0.3):
    """Send ``request`` (path, headers, body) -> ``(status, answer, CPU seconds, peak RSS growth MB)``.

    The CPU is the server's over the exchange plus ``settle`` seconds after it (work that goes on
    after the answer counts too). CPU time, not wall time: robust on a loaded machine.
    """
    path, headers, body = request
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")  # VmHWM starts again from VmRSS
    before, rss_before = cpu_seconds(pid), memory_mb(pid)
    status, _, answer = send(port, path, headers, body)
    time.sleep(settle)
    return status, answer, cpu_seconds(pid) - before, memory_mb(pid, "VmHWM") - rss_before
