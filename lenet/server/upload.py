"""Uploaded image files -> decoded Pillow images, refusing anything that could exhaust the server."""

import io
import re

from PIL import Image, ImageOps

from .errors import HTTPError

ALLOWED_FORMATS = ("PNG", "JPEG", "BMP", "GIF")

# A digit needs far fewer pixels than this; the limit keeps a small compressed file that claims
# an enormous size (a decompression bomb) from being decoded. Pillow's own guard
# (Image.MAX_IMAGE_PIXELS, about 89 million) is checked too but is far too generous for a server.
MAX_PIXELS = 4096 * 4096

# A progressive JPEG is decoded once per scan, over the whole image each time. Encoders write a
# handful (libjpeg: 6 for grey, 10 for colour, 18 for CMYK); a 1 MB file can repeat a tiny scan
# tens of thousands of times, and each costs about 1 ms at MAX_PIXELS (28,000 scans of a flat
# 4096x4096 picture took 30 s to decode here). The scans are counted before any decoding.
MAX_JPEG_SCANS = 64
# A real JPEG has a few dozen marker segments; a file made of 250,000 tiny ones is refused too.
MAX_JPEG_SEGMENTS = 1024

_SOS, _EOI = 0xDA, 0xD9
# The end of a scan's entropy-coded data: 0xFF followed by anything but a stuffed zero or a restart marker.
_NEXT_MARKER = re.compile(rb"\xff(?=[^\x00\xd0-\xd7])")


def decode_image(data, max_pixels=MAX_PIXELS):
    """Decode a PNG, JPEG, BMP or GIF file (first frame) held in ``data``.

    The size in the file's header, and a JPEG's number of scans and segments, are checked before any pixel is
    decoded. The image is turned upright as its EXIF Orientation says (as browsers show it).

    Raises:
        HTTPError(400): empty or corrupt file.
        HTTPError(415): not an image of an allowed format.
        HTTPError(413): more than ``max_pixels`` pixels, or a JPEG of more than ``MAX_JPEG_SCANS``
        scans or ``MAX_JPEG_SEGMENTS`` segments.
    """
    if not data:
        raise HTTPError(400, "empty body: expected an image file (PNG, JPEG, BMP or GIF)")
    if data.startswith(b"\xff\xd8"):
        _check_jpeg_structure(data)
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError as exc:
        raise HTTPError(413, f"image refused as a decompression bomb: {exc}") from None
    except Image.UnidentifiedImageError:
        raise HTTPError(415, f"cannot identify the body as an image: expected a PNG, JPEG, BMP or GIF file "
                             f"({len(data)} bytes starting {data[:8]!r})") from None
    except Exception as exc:  # Pillow's header parsers raise many kinds on corrupt files
        raise HTTPError(400, f"corrupt image file: {exc}") from None
    width, height = image.size
    if width * height > max_pixels:
        raise HTTPError(413, f"image too large: {width}x{height} = {width * height} pixels, "
                             f"the limit is {max_pixels} (a decompression bomb?)")
    if width == 0 or height == 0:
        raise HTTPError(400, f"image has no pixels ({width}x{height})")
    try:
        image.load()
    except Image.DecompressionBombError as exc:
        raise HTTPError(413, f"image refused as a decompression bomb: {exc}") from None
    except Exception as exc:  # truncated or corrupt pixel data: every decoder fails its own way
        raise HTTPError(400, f"cannot decode the {image.format} image: {exc}") from None
    try:
        ImageOps.exif_transpose(image, in_place=True)  # a phone photo's pixels are stored sideways
    except Exception:  # an unreadable EXIF block says nothing about the pixels: keep them as stored
        pass
    return image


def jpeg_scans_and_segments(data):
    """``(scans, marker segments)`` in the JPEG file ``data``; counting stops past either limit.

    Walks the marker segments by their lengths and skips each scan's entropy-coded data, so bytes
    inside an EXIF thumbnail, a profile or a comment are never taken for markers.
    """
    scans, segments, position = 0, 0, 2
    while position + 4 <= len(data) and scans <= MAX_JPEG_SCANS and segments <= MAX_JPEG_SEGMENTS:
        if data[position] != 0xFF:
            break  # corrupt: left for the decoder to report
        marker = data[position + 1]
        if marker == 0xFF:  # a fill byte before a marker
            position += 1
            continue
        if marker == _EOI:
            break
        segments += 1
        length = data[position + 2] << 8 | data[position + 3]
        if length < 2:
            break
        position += 2 + length
        if marker == _SOS:
            scans += 1
            end_of_scan = _NEXT_MARKER.search(data, position)
            if end_of_scan is None:
                break
            position = end_of_scan.start()
    return scans, segments


def _check_jpeg_structure(data):
    scans, segments = jpeg_scans_and_segments(data)
    if scans > MAX_JPEG_SCANS:
        raise HTTPError(413, f"JPEG refused: more than {MAX_JPEG_SCANS} scans (encoders write at most a few "
                             "dozen; each scan is decoded over the whole image, so this is a decoding bomb)")
    if segments > MAX_JPEG_SEGMENTS:
        raise HTTPError(413, f"JPEG refused: more than {MAX_JPEG_SEGMENTS} marker segments "
                             "(real files have a few dozen)")
