"""Uploaded image files -> decoded Pillow images, refusing anything that could exhaust the server.

Pillow decodes a file in one C call that no thread can interrupt, so what a file may cost is
bounded before any pixel is decoded, from its structure read the way the decoder will read it:

- every image: at most ``MAX_SIDE`` pixels a side, ``MAX_PIXELS`` in all, and no more elongated
  than ``MAX_ASPECT`` to 1 (a 1 x 16,777,216 strip is within the area but costs as much as a
  4096 x 4096 picture and leaves nothing of a digit);
- JPEG: a progressive file is decoded once per scan, each scan visiting every 8x8 block of the
  components it covers. The blocks visited by all scans are counted (``jpeg_cost``) and bounded by
  ``MAX_JPEG_BLOCK_SCANS``; scans by ``MAX_JPEG_SCANS``, marker segments by ``MAX_JPEG_SEGMENTS``.
  The walk skips stray bytes between segments and fill bytes before markers as libjpeg does, so
  neither hides a scan from the count;
- PNG: every chunk is a call in Pillow's reader, and compressed text or profile chunks are
  inflated: at most ``MAX_PNG_CHUNKS`` chunks and ``MAX_PNG_COMPRESSED_CHUNKS`` of those.

Large pictures are then decoded small: a JPEG at a reduced scale by the decoder itself (DCT
scaling), any other picture averaged down at once, to at most ``MAX_WORKING_SIDE`` a side, the
size preprocessing works at anyway.
"""

import io
import re
import struct

from PIL import Image

from data.preprocess import MAX_WORKING_SIDE

from ..httpd.errors import HTTPError

ALLOWED_FORMATS = ("PNG", "JPEG", "BMP", "GIF")

# A digit needs far fewer pixels than these; they keep a small compressed file that claims an
# enormous size (a decompression bomb) from being decoded. Pillow's own guard
# (Image.MAX_IMAGE_PIXELS, about 89 million) is checked too but is far too generous for a server.
MAX_SIDE = 4096
MAX_PIXELS = MAX_SIDE * MAX_SIDE
MAX_ASPECT = 32
# Bytes of pixel data the decoder makes (a 16-bit PNG counts its 16 bits, an interlaced PNG half as
# much again: its seven passes cost 1.3-1.5 times as much a pixel): one 4096 x 4096 colour picture,
# about 0.15 s to decode and average down (PNG, measured on a 2-core machine).
MAX_DECODED_BYTES = MAX_SIDE * MAX_SIDE * 3

# libjpeg writes 6 scans for grey, 10 for colour, 18 for CMYK; a 1 MB file can repeat a tiny scan
# tens of thousands of times. Each scan costs about 36 ns per 8x8 block it covers (9.5 ms for a
# 4096 x 4096 grey scan, measured on a 2-core machine): the block budget allows 64 scans of a
# 2048 x 2048 picture, or 16 of a 4096 x 4096 one (libjpeg's 10 colour scans of one take 2.4
# million block scans), about 0.15 s of decoding.
MAX_JPEG_SCANS = 64
MAX_JPEG_BLOCK_SCANS = 64 * (2048 * 2048 // 64)
# A real JPEG has a few dozen marker segments; a file made of 250,000 tiny ones is refused too.
MAX_JPEG_SEGMENTS = 1024
# libpng writes 8 kB data chunks (a 1 MB file: ~130); a file of 80,000 empty chunks is refused.
MAX_PNG_CHUNKS = 4096
MAX_PNG_COMPRESSED_CHUNKS = 8  # zTXt, iTXt, iCCP: each may inflate to 1 MB in Pillow's reader

# EXIF Orientation -> the transposition that makes the stored pixels upright (as ImageOps.exif_transpose).
_ORIENTATION = 0x0112
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # C4 DHT, C8 reserved, CC DAC
_SOS, _EOI, _TEM = 0xDA, 0xD9, 0x01
_RST = range(0xD0, 0xD8)
# The end of a scan's entropy-coded data, as libjpeg reads it: a run of 0xFF, then a byte that is
# neither a stuffed zero nor a restart marker (0xFF 0x00 is a data byte; RSTn stay in the scan).
_END_OF_SCAN = re.compile(rb"\xff+[^\x00\xd0-\xd7\xff]")


def decode_image(data, max_pixels=MAX_PIXELS):
    """Decode a PNG, JPEG, BMP or GIF file (first frame) held in ``data``.

    The size in the file's header, and a JPEG's or PNG's structure, are checked before any pixel
    is decoded. The image is turned upright as its EXIF Orientation says (as browsers show it),
    and pictures over ``MAX_WORKING_SIDE`` a side come back reduced to it (by a whole factor).

    Raises:
        HTTPError(400): empty or corrupt file.
        HTTPError(415): not an image of an allowed format.
        HTTPError(413): over a size limit, or a JPEG or PNG whose structure is over its limits.
    """
    if not data:
        raise HTTPError(400, "empty body: expected an image file (PNG, JPEG, BMP or GIF)")
    if data.startswith(b"\xff\xd8"):
        _check_jpeg_structure(data)
    elif data.startswith(b"\x89PNG\r\n\x1a\n"):
        _check_png_structure(data)
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError as exc:
        raise HTTPError(413, f"image refused as a decompression bomb: {exc}") from None
    except Image.UnidentifiedImageError:
        raise HTTPError(415, f"cannot identify the body as an image: expected a PNG, JPEG, BMP or GIF file "
                             f"({len(data)} bytes starting {data[:8]!r})") from None
    except Exception as exc:  # Pillow's header parsers raise many kinds on corrupt files
        raise HTTPError(400, f"corrupt image file: {exc}") from None
    _check_size(*image.size, max_pixels)
    decoded = _decoded_bytes(image, data)
    if decoded > MAX_DECODED_BYTES:
        raise HTTPError(413, f"image too large: {image.size[0]}x{image.size[1]} {image.format} pixels would take "
                             f"{decoded} bytes to decode, the limit is {MAX_DECODED_BYTES} (a 4096x4096 colour picture)")
    if image.format == "JPEG" and image.mode in ("L", "RGB"):
        image.draft(image.mode, (MAX_WORKING_SIDE, MAX_WORKING_SIDE))  # decoded at 1/2, 1/4 or 1/8 scale
    try:
        image.load()
    except Image.DecompressionBombError as exc:
        raise HTTPError(413, f"image refused as a decompression bomb: {exc}") from None
    except Exception as exc:  # truncated or corrupt pixel data: every decoder fails its own way
        raise HTTPError(400, f"cannot decode the {image.format} image: {exc}") from None
    try:
        orientation = image.getexif().get(_ORIENTATION)
    except Exception:  # an unreadable EXIF block says nothing about the pixels: keep them as stored
        orientation = None
    image = _reduced(image)
    upright = _UPRIGHT.get(orientation)  # a phone photo's pixels are stored sideways
    return image.transpose(upright) if upright is not None else image


def _check_size(width, height, max_pixels):
    if width == 0 or height == 0:
        raise HTTPError(400, f"image has no pixels ({width}x{height})")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise HTTPError(413, f"image too large: {width}x{height}, the limit is {MAX_SIDE} pixels a side")
    if width * height > max_pixels:
        raise HTTPError(413, f"image too large: {width}x{height} = {width * height} pixels, "
                             f"the limit is {max_pixels} (a decompression bomb?)")
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise HTTPError(413, f"image too elongated: {width}x{height}, the limit is {MAX_ASPECT} to 1 "
                             "(a picture of a digit is not a strip)")


_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by colour type: grey, RGB, palette, grey + alpha, RGBA


def _decoded_bytes(image, data):
    """Bytes of pixel data the decoder makes for ``image`` (opened from ``data``, not decoded yet)."""
    width, height = image.size
    if image.format == "PNG" and len(data) >= 29:
        depth, colour_type, interlaced = data[24], data[25], data[28]
        decoded = width * height * _PNG_CHANNELS.get(colour_type, 4) * max(depth, 8) // 8
        return decoded * 3 // 2 if interlaced else decoded
    return width * height * len(image.getbands())


def _reduced(image):
    """``image`` averaged down by a whole factor until no side exceeds ``MAX_WORKING_SIDE``: what
    preprocessing does first anyway, done before the full-size picture is converted (and copied)."""
    factor = _ceil_div(max(image.size), MAX_WORKING_SIDE)
    if factor == 1 or image.mode not in ("L", "LA", "RGB", "RGBA"):
        return image
    if image.mode == "RGBA" and image.getchannel("A").getextrema()[0] == 255:
        image = image.convert("RGB")  # opaque anyway, and averaging RGBA costs 10 times as much as RGB
    reduced = image.reduce(factor)
    reduced.info = dict(image.info)  # transparency, among others
    return reduced


def _ceil_div(a, b):
    return -(-a // b)


# -- JPEG --------------------------------------------------------------------------------------------
def jpeg_cost(data):
    """``(scans, marker segments, block scans)`` of the JPEG file ``data``; counting stops past a limit.

    Walks the marker segments by their lengths (so bytes inside an EXIF thumbnail, a profile or a
    comment are never taken for markers) and each scan's entropy-coded data to its end, as libjpeg
    reads them: stray bytes between segments and 0xFF fill bytes are skipped. ``block scans`` is
    the sum over the scans of the 8x8 blocks of the components each covers.
    """
    scans = segments = block_scans = 0
    blocks = {}  # component id -> its 8x8 blocks, from the frame header
    position, size = 2, len(data)
    while position + 1 < size and scans <= MAX_JPEG_SCANS and segments <= MAX_JPEG_SEGMENTS \
            and block_scans <= MAX_JPEG_BLOCK_SCANS:
        if data[position] != 0xFF:  # libjpeg skips (with a warning) whatever precedes a marker
            position = data.find(b"\xff", position)
            if position < 0:
                break
            continue
        marker = data[position + 1]
        if marker == 0xFF:  # a fill byte before a marker
            position += 1
            continue
        if marker == _EOI:
            break
        if marker in _RST or marker == _TEM or marker == 0x00:  # markers without a segment
            position += 2
            continue
        if position + 4 > size:
            break
        segments += 1
        length = data[position + 2] << 8 | data[position + 3]
        segment = data[position + 4:position + 2 + length]
        position += 2 + length
        if marker in _SOF_MARKERS:
            blocks = _frame_blocks(segment) or blocks
        elif marker == _SOS:
            scans += 1
            # A scan names its components first; one that names none, or unknown ones, is charged for all.
            named = [segment[1 + 2 * i] for i in range(segment[0])] if segment and len(segment) > 2 * segment[0] else []
            covered = [blocks[c] for c in set(named) if c in blocks] or list(blocks.values())
            block_scans += sum(covered)
            end_of_scan = _END_OF_SCAN.search(data, position)
            if end_of_scan is None:
                break
            position = end_of_scan.end() - 2
    return scans, segments, block_scans


def _frame_blocks(segment):
    """A frame header (SOFn) -> {component id: its 8x8 blocks}, or None if it is too short."""
    if len(segment) < 6:
        return None
    height, width, count = struct.unpack_from(">HHB", segment, 1)
    if len(segment) < 6 + 3 * count or count == 0:
        return None
    sampling = [(segment[6 + 3 * i], segment[7 + 3 * i] >> 4, segment[7 + 3 * i] & 15) for i in range(count)]
    most_h = max(h for _, h, _ in sampling) or 1
    most_v = max(v for _, _, v in sampling) or 1
    height = height or MAX_SIDE  # 0: defined later by a DNL marker; charged at the most allowed
    return {ident: _ceil_div(_ceil_div(width * h, most_h), 8) * _ceil_div(_ceil_div(height * v, most_v), 8)
            for ident, h, v in sampling}


def _check_jpeg_structure(data):
    scans, segments, block_scans = jpeg_cost(data)
    if scans > MAX_JPEG_SCANS:
        raise HTTPError(413, f"JPEG refused: more than {MAX_JPEG_SCANS} scans, the limit (encoders write at most a "
                             "few dozen; each scan is decoded over the whole image, so this is a decoding bomb)")
    if segments > MAX_JPEG_SEGMENTS:
        raise HTTPError(413, f"JPEG refused: more than {MAX_JPEG_SEGMENTS} marker segments, the limit "
                             "(real files have a few dozen)")
    if block_scans > MAX_JPEG_BLOCK_SCANS:
        raise HTTPError(413, f"JPEG refused: its scans would visit more 8x8 blocks in all than the limit of "
                             f"{MAX_JPEG_BLOCK_SCANS} (64 scans of 2048x2048 pixels, or 16 of 4096x4096)")


# -- PNG ---------------------------------------------------------------------------------------------
def png_chunk_counts(data):
    """``(chunks, compressed text or profile chunks)`` of the PNG file ``data``, walked by their lengths;
    counting stops past ``MAX_PNG_CHUNKS``."""
    chunks = compressed = 0
    position = 8
    while position + 8 <= len(data) and chunks <= MAX_PNG_CHUNKS:
        length, kind = struct.unpack_from(">I4s", data, position)
        chunks += 1
        compressed += kind in (b"zTXt", b"iTXt", b"iCCP")
        if kind == b"IEND":
            break
        position += 12 + length
    return chunks, compressed


def _check_png_structure(data):
    chunks, compressed = png_chunk_counts(data)
    if chunks > MAX_PNG_CHUNKS:
        raise HTTPError(413, f"PNG refused: more than {MAX_PNG_CHUNKS} chunks, the limit (encoders write a few "
                             "hundred at most)")
    if compressed > MAX_PNG_COMPRESSED_CHUNKS:
        raise HTTPError(413, f"PNG refused: {compressed} compressed text or profile chunks, the limit is "
                             f"{MAX_PNG_COMPRESSED_CHUNKS} (each may inflate to a megabyte)")
