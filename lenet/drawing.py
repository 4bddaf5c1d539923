"""What every picture of this package is drawn with: the font, the palette and the PNG writer.

Pillow alone, no plotting library. ``plots`` (the training pictures) and ``visualize`` (filters
and activation maps) both draw with these, so they look alike and save alike.
"""

import functools
import os

from PIL import Image, ImageFont

from nn.atomic import atomic_output

# The palette (RGB).
WHITE = (255, 255, 255)
TEXT = (34, 34, 34)
MUTED_TEXT = (110, 110, 110)
FRAME = (90, 90, 90)
GRID = (228, 228, 228)
# The ends of a blue-white-red ramp for signed values, readable for colour-blind eyes.
NEGATIVE = (33, 102, 172)
POSITIVE = (178, 24, 43)

# Pillow >= 9.1 names its resampling filters in an enum; older versions only as module constants.
NEAREST = getattr(Image, "Resampling", Image).NEAREST


@functools.lru_cache(maxsize=None)
def font(size):
    """Pillow's built-in font at ``size`` pixels (scalable Aileron with FreeType, Pillow >= 10.1),
    or its fixed-size bitmap font on older Pillow or without FreeType."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, AttributeError, OSError):
        return ImageFont.load_default()


def font_scales():
    """True when the built-in font can be drawn at any size (it is a FreeType font)."""
    return isinstance(font(20), ImageFont.FreeTypeFont)


def save_png(image, path):
    """Write ``image`` as a PNG at ``path`` atomically (readers never see half a file); -> ``path`` as a string.

    The folder is created if needed; the file is a temporary one until it is complete and synced,
    then renamed over ``path`` (see ``nn.atomic``).
    """
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_output(path) as temp_path, open(temp_path, "wb") as f:
        image.save(f, format="PNG", optimize=True)
        f.flush()
        os.fsync(f.fileno())
    return path
