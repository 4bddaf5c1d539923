"""MNIST-style preprocessing: a picture of one digit -> the 28x28 image a MNIST model expects.

LeCun, Cortes and Burges prepared MNIST this way: each digit was size-normalized to fit a 20x20
box keeping its aspect ratio (anti-aliased, hence grey levels), then placed in a 28x28 field so
that its center of mass sits at the center. A model trained on MNIST is only right on digits
that look like that, so any drawing or photo is brought to the same form first:

1. grey levels in [0, 1] (transparent pixels laid on a background that contrasts with the ink;
   pictures over ``MAX_WORKING_SIDE`` pixels a side averaged down by a whole factor first);
2. white ink on black: the background level is the median of the border pixels, and ink is how
   far a pixel is from it, towards the other side (so dark-on-light pictures are inverted),
   stretched so the strongest ink is 1;
3. crop to the bounding box of the pixels above ``INK_THRESHOLD``;
4. resize (Lanczos, which averages over the area when shrinking) so the longer side is 20, and
   stretch again so the strongest pixel is full white (shrinking thin strokes dims them; MNIST
   digits all reach 255);
5. paste in the middle of a 28x28 black image;
6. shift by ``round(14 - center of mass)`` along each axis, never pushing ink off the image.

The result is ``uint8`` pixels 0..255, as in the MNIST files.
"""

import numpy as np
from PIL import Image

SIZE = 28          # side of the output image
BOX = 20           # side of the box the digit is scaled to fit
CENTER = 14.0      # where the center of mass is put, in pixel-index coordinates
MIN_CONTRAST = 0.1  # ink must differ from the background by at least this much (of full scale)
INK_THRESHOLD = 0.1  # after stretching, pixels above this count towards the bounding box
MAX_WORKING_SIDE = 1024  # larger pictures are first reduced (box average) to at most this many pixels a side

_HIGH_DEPTH_MODES = ("I", "F", "I;16", "I;16L", "I;16B", "I;16N")


class BlankImageError(ValueError):
    """The picture holds no ink: nothing differs enough from its background to be a digit."""


def prepare_digit(image):
    """Return the MNIST-style (28, 28) uint8 image of ``image``: white ink on black, centered.

    ``image`` is a ``PIL.Image`` of any mode and size, or a 2-D array of grey levels 0..255.

    Raises:
        BlankImageError: the picture is blank (uniform, or nearly so).
        ValueError: the array is not 2-D, or holds values that are not finite grey levels 0..255.
    """
    ink = ink_on_black(grey_levels(image))
    top, bottom, left, right = ink_bounding_box(ink)
    digit = fit_in_box(ink[top:bottom, left:right], BOX)
    peak = float(digit.max())
    if peak <= 0:  # cannot happen with sane resampling, but never divide by zero
        raise BlankImageError("blank image: the ink vanished when scaled to fit 20x20")
    digit /= peak
    canvas = np.zeros((SIZE, SIZE), dtype=np.float32)
    height, width = digit.shape
    y0, x0 = (SIZE - height) // 2, (SIZE - width) // 2
    canvas[y0:y0 + height, x0:x0 + width] = digit
    centered = center_by_mass(canvas)
    return np.rint(centered * 255.0).astype(np.uint8)


def grey_levels(image):
    """``image`` -> float32 2-D grey levels in [0, 1] (0 black, 1 white)."""
    if isinstance(image, Image.Image):
        return _grey_from_pil(image)
    array = np.asarray(image)
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"expected a 2-D array of grey levels, got shape {array.shape}")
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"expected grey levels as numbers 0..255, got dtype {array.dtype}")
    array = array.astype(np.float32)
    if not np.all(np.isfinite(array)):
        raise ValueError("expected finite grey levels 0..255, got NaN or infinity")
    if array.min() < 0 or array.max() > 255:
        raise ValueError(f"expected grey levels 0..255, got values from {array.min():g} to {array.max():g}")
    return array / 255.0


def _grey_from_pil(image):
    if image.mode in _HIGH_DEPTH_MODES:
        # 16- and 32-bit pictures have no fixed white level: stretch their own range to [0, 1].
        # The steps after this one depend only on relative levels, so nothing is lost.
        values = np.asarray(_reduced(image.convert("F")), dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        return ((values - low) / (high - low) if high > low else np.zeros_like(values)).astype(np.float32)
    if _has_transparency(image):
        return _flatten_transparency(np.asarray(_reduced(image.convert("RGBA")), dtype=np.float32) / 255.0)
    try:
        grey = image.convert("L")
    except ValueError:  # modes with no direct conversion to grey (e.g. HSV) go through RGB
        grey = image.convert("RGB").convert("L")
    return np.asarray(_reduced(grey), dtype=np.float32) / 255.0


def _reduced(image):
    """``image`` averaged down by a whole factor until no side exceeds ``MAX_WORKING_SIDE``.

    The digit ends up 20 pixels tall anyway; working on millions of pixels would only cost time
    (a 70 kB PNG of 4000x4000 pixels took 1.4 s before this step, 0.1 s after).
    """
    factor = -(-max(image.size) // MAX_WORKING_SIDE)  # ceiling division
    return image.reduce(factor) if factor > 1 else image


def _has_transparency(image):
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def _flatten_transparency(rgba):
    """Lay a picture with transparency on a background that contrasts with its ink.

    A canvas drawing is often black strokes on a fully transparent (0, 0, 0, 0) background; read
    as plain grey it would be black on black. The opaque pixels are the ink: if they are dark on
    average they go on white, otherwise on black.
    """
    alpha = rgba[..., 3]
    luminance = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as Pillow's "L"
    opaque = float(alpha.sum())
    ink_level = float((luminance * alpha).sum()) / opaque if opaque > 0 else 0.0
    background = 1.0 if ink_level < 0.5 else 0.0
    return (luminance * alpha + background * (1.0 - alpha)).astype(np.float32)


def ink_on_black(grey):
    """Grey levels in [0, 1] -> ink intensity in [0, 1] on a 0 background, strongest ink 1.

    The background level is the median of the border pixels (a digit seldom touches all four
    sides). On a light background ink is darker than it, otherwise lighter; pixels on the wrong
    side of the background (paper texture, shadows) count as no ink.

    Raises:
        BlankImageError: no pixel differs from the background by ``MIN_CONTRAST`` or more.
    """
    border = np.concatenate([grey[0, :], grey[-1, :], grey[:, 0], grey[:, -1]])
    background = float(np.median(border))
    ink = background - grey if background > 0.5 else grey - background
    ink = np.clip(ink, 0.0, None)
    strongest = float(ink.max())
    if strongest < MIN_CONTRAST:
        raise BlankImageError(
            f"blank image: no pixel differs from the background by {MIN_CONTRAST:.0%} of full scale or more "
            f"(the strongest differs by {strongest:.1%}); draw or send a digit")
    return (ink / strongest).astype(np.float32)


def ink_bounding_box(ink):
    """``(top, bottom, left, right)`` of the pixels above ``INK_THRESHOLD`` (bottom/right exclusive)."""
    rows = np.flatnonzero((ink > INK_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((ink > INK_THRESHOLD).any(axis=0))
    if rows.size == 0:
        raise BlankImageError("blank image: no ink found")
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def fit_in_box(ink, box):
    """Resize ``ink`` so its longer side is ``box`` pixels, keeping the aspect ratio (float32 in [0, 1])."""
    height, width = ink.shape
    scale = box / max(height, width)
    new_width = min(box, max(1, int(round(width * scale))))
    new_height = min(box, max(1, int(round(height * scale))))
    resized = Image.fromarray(ink.astype(np.float32)).resize((new_width, new_height), Image.LANCZOS)
    # Lanczos rings a little around sharp edges: clip the under- and overshoot.
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def center_by_mass(image):
    """Shift ``image`` so its intensity-weighted center of mass lands on ``CENTER`` (to the pixel).

    The shift is limited so that no ink leaves the image (a lopsided digit may stay off center).
    """
    total = float(image.sum())
    if total <= 0:
        return image
    ys, xs = np.indices(image.shape)
    center_y = float((ys * image).sum()) / total
    center_x = float((xs * image).sum()) / total
    rows = np.flatnonzero(image.any(axis=1))
    cols = np.flatnonzero(image.any(axis=0))
    dy = _limited_shift(CENTER - center_y, rows[0], rows[-1], image.shape[0])
    dx = _limited_shift(CENTER - center_x, cols[0], cols[-1], image.shape[1])
    return _shift(image, dy, dx)


def _limited_shift(wanted, first, last, size):
    shift = int(np.floor(wanted + 0.5))  # round half up (Python's round() goes half to even)
    return max(-int(first), min(size - 1 - int(last), shift))


def _shift(image, dy, dx):
    """Move the content of ``image`` by (dy, dx) pixels, filling with zeros (no wrap-around)."""
    height, width = image.shape
    shifted = np.zeros_like(image)
    src_rows = slice(max(0, -dy), min(height, height - dy))
    dst_rows = slice(max(0, dy), min(height, height + dy))
    src_cols = slice(max(0, -dx), min(width, width - dx))
    dst_cols = slice(max(0, dx), min(width, width + dx))
    shifted[dst_rows, dst_cols] = image[src_rows, src_cols]
    return shifted
