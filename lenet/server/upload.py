"""Uploaded image files -> decoded Pillow images, refusing anything that could exhaust the server."""

import io

from PIL import Image

from .errors import HTTPError

ALLOWED_FORMATS = ("PNG", "JPEG", "BMP", "GIF")

# A digit needs far fewer pixels than this; the limit keeps a small compressed file that claims
# an enormous size (a decompression bomb) from being decoded. Pillow's own guard
# (Image.MAX_IMAGE_PIXELS, about 89 million) is checked too but is far too generous for a server.
MAX_PIXELS = 4096 * 4096


def decode_image(data, max_pixels=MAX_PIXELS):
    """Decode a PNG, JPEG, BMP or GIF file (first frame) held in ``data``.

    The size in the file's header is checked before any pixel is decoded.

    Raises:
        HTTPError(400): empty or corrupt file.
        HTTPError(415): not an image of an allowed format.
        HTTPError(413): more than ``max_pixels`` pixels.
    """
    if not data:
        raise HTTPError(400, "empty body: expected an image file (PNG, JPEG, BMP or GIF)")
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
    return image
