"""Build the handwriting set: digits that are not MNIST, as the picture files a person would upload.

    python -m benchmarks.handwriting_set            # rewrites benchmarks/handwriting_digits.npz

Three sources, each a different way real digits reach ``/api/predict``, every digit stored as
the PNG file a browser would send (grey, dark ink on a light background):

* ``pen``: digits drawn as strokes on the page's 280x280 canvas. Each digit has hand-designed
  stroke paths (several styles: 1 with a flag and a base, open and closed 4, 7 with a bar, 9 with
  a straight or curved tail, ...), jittered point by point, slanted, stretched, rotated, placed
  anywhere at any size and drawn with a round pen 10% to 30% of the digit's height wide.
* ``scan``: the same kind of strokes rendered small (digits 12 to 36 pixels tall, pens 10% to 30%
  of that wide), with a soft edge and a grey, slightly noisy paper: a photographed or low-resolution scanned digit.
* ``font``: the digits of handwriting-like fonts (Debian packages listed in ``FONTS``, all free
  licenses: SIL OFL, GPL), at several sizes, weights (Pillow's stroke around the glyph), small
  rotations and resolutions.

Once preprocessed, its strokes are 2.6 pixels wide on average (``handwriting.stroke_widths``;
MNIST's test digits 2.1; real handwriting measured 3.0), and 1s come plain, with a flag, or with
a flag and a base. The strokes and fonts are fixed by ``SEED``: rebuilding gives the same digits. The fonts are not
part of the project; the stored set is, so tests and benchmarks need no font installed.
"""

import argparse
import glob
import io
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from nn.atomic import atomic_output

SET_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "handwriting_digits.npz")
SEED = 2026
SOURCES = ("pen", "scan", "font")
PEN_PER_DIGIT = 30
SCAN_PER_DIGIT = 30
FONT_RENDERS = 2  # renders of each digit of each font
CANVAS = 280      # the page's drawing canvas, in pixels

# Handwriting-like fonts with readable digits, by file name, and the Debian package holding each.
FONTS = {
    "BecauseWeBuild-Regular.otf": "fonts-bwht", "BecauseWeConnect-Regular.otf": "fonts-bwht",
    "BecauseWeCreate-Regular.otf": "fonts-bwht", "BecauseWeLearn-Regular.otf": "fonts-bwht",
    "BecauseWeMentor-Regular.otf": "fonts-bwht", "BecauseWeOrganize-Regular.otf": "fonts-bwht",
    "ComicNeue-Bold.otf": "fonts-comic-neue", "ComicNeue-BoldItalic.otf": "fonts-comic-neue",
    "ComicNeue-Light.otf": "fonts-comic-neue", "ComicNeue-Regular.otf": "fonts-comic-neue",
    "KaushanScript-Regular.otf": "fonts-kaushanscript", "Breip.ttf": "fonts-breip",
    "dkg.ttf": "fonts-dkg-handwriting", "dkgBd.ttf": "fonts-dkg-handwriting", "dkgIt.ttf": "fonts-dkg-handwriting",
    "Humor-Sans.ttf": "fonts-humor-sans", "KleeOne-Regular.ttf": "fonts-klee", "KleeOne-SemiBold.ttf": "fonts-klee",
}
FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", os.path.expanduser("~/.fonts"))


# -- stroke paths --------------------------------------------------------------------------------
# Each style returns a list of strokes, each an (n, 2) array of (x, y) points in a box about 0.6
# wide and 1 tall, y downwards. ``j`` is the random jitter the style may use for its proportions.

def _arc(cx, cy, rx, ry, start_deg, end_deg, n=24):
    t = np.deg2rad(np.linspace(start_deg, end_deg, n))  # 0 deg = right, 90 deg = down (y grows down)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _line(*points, n=10):
    points = np.asarray(points, dtype=float)
    segments = [np.linspace(a, b, n, endpoint=False) for a, b in zip(points[:-1], points[1:])]
    return np.concatenate(segments + [points[-1:]])


def _zero(j):
    return [_arc(0.3, 0.5, 0.28 + 0.04 * j[0], 0.48, -100 + 20 * j[1], 275 + 20 * j[2], 48)]


def _one_plain(j):
    return [_line((0.32 + 0.05 * j[0], 0.0), (0.3, 1.0))]


def _one_flag(j):
    return [_line((0.1 + 0.06 * j[0], 0.25 + 0.08 * j[1]), (0.33, 0.0), (0.33, 1.0))]


def _one_flag_base(j):
    return [_line((0.08 + 0.06 * j[0], 0.25 + 0.08 * j[1]), (0.33, 0.0), (0.33, 1.0)),
            _line((0.08 + 0.05 * j[2], 1.0), (0.58 + 0.05 * j[3], 1.0))]


def _two(j):
    return [np.concatenate([_arc(0.3, 0.28, 0.27, 0.27, 200, 380 + 15 * j[0], 20),
                            _line((0.57, 0.33), (0.02 + 0.04 * j[1], 1.0), (0.6 + 0.05 * j[2], 0.98))])]


def _two_loop(j):
    return [np.concatenate([_arc(0.3, 0.28, 0.27, 0.27, 200, 390, 20),
                            _line((0.55, 0.38), (0.05, 0.95)),
                            _arc(0.12, 0.88, 0.08, 0.08, 270, 90 - 360, 10)[::-1],
                            _line((0.15, 0.98), (0.62, 0.95))])]


def _three(j):
    return [np.concatenate([_arc(0.3, 0.26, 0.26, 0.24 + 0.03 * j[0], 210, 450, 20),
                            _arc(0.3, 0.74, 0.3, 0.26, 270, 510 + 10 * j[1], 24)])]


def _four_open(j):
    return [_line((0.38 + 0.05 * j[0], 0.0), (0.0, 0.62 + 0.06 * j[1]), (0.62, 0.62 + 0.06 * j[1])),
            _line((0.46 + 0.04 * j[2], 0.2 + 0.1 * j[3]), (0.46, 1.0))]


def _four_closed(j):
    return [_line((0.46, 1.0), (0.46, 0.0), (0.0, 0.65 + 0.05 * j[0]), (0.62 + 0.04 * j[1], 0.65 + 0.05 * j[0]))]


def _four_parallel(j):
    # Two near-vertical strokes and a bar, the way many people write 4 (and the 4 most often read as 6 or 9).
    return [_line((0.08 + 0.05 * j[0], 0.0), (0.05, 0.58), (0.62, 0.56 + 0.05 * j[1])),
            _line((0.5 + 0.04 * j[2], 0.0), (0.48, 1.0))]


def _five(j):
    return [_line((0.55 + 0.05 * j[0], 0.02), (0.1, 0.0), (0.06, 0.45 + 0.04 * j[1])),
            _arc(0.28, 0.7, 0.3, 0.28, 230, 485 + 15 * j[2], 24)]


def _six(j):
    return [np.concatenate([_line((0.5 + 0.05 * j[0], 0.0), (0.12, 0.5)),
                            _arc(0.3, 0.75, 0.25, 0.25, 180, 540, 30)])]


def _seven(j):
    return [_line((0.0, 0.02 + 0.04 * j[0]), (0.6, 0.0), (0.2 + 0.06 * j[1], 1.0))]


def _seven_bar(j):
    return [_line((0.0, 0.0), (0.6, 0.0), (0.22 + 0.05 * j[1], 1.0)),
            _line((0.14, 0.5 + 0.04 * j[2]), (0.52, 0.5 + 0.04 * j[2]))]


def _eight(j):
    t = np.linspace(0, 2 * np.pi, 60)
    top, bottom = 0.22 + 0.03 * j[0], 0.28
    y = 0.5 - 0.5 * np.cos(t)
    half_width = np.where(y < 0.45, top * np.sin(np.pi * y / 0.45), bottom * np.sin(np.pi * (y - 0.45) / 0.55))
    x = 0.3 + half_width * np.sign(np.sin(2 * t))  # the side flips at the top, waist and bottom: an 8
    return [np.stack([x, y], axis=1)]


def _nine_straight(j):
    return [np.concatenate([_arc(0.3, 0.28, 0.26, 0.27, -20 + 10 * j[0], -380, 30),
                            _line((0.55, 0.25), (0.52 + 0.05 * j[1], 1.0))])]


def _nine_curved(j):
    return [np.concatenate([_arc(0.3, 0.28, 0.26, 0.27, -20, -380, 30),
                            _line((0.55, 0.25), (0.5, 0.8)), _arc(0.32, 0.82, 0.18, 0.18, 0, 120 + 20 * j[2], 8)])]


STYLES = {
    0: (_zero,), 1: (_one_plain, _one_flag, _one_flag_base), 2: (_two, _two_loop), 3: (_three,),
    4: (_four_open, _four_closed, _four_parallel), 5: (_five,), 6: (_six,), 7: (_seven, _seven_bar),
    8: (_eight,), 9: (_nine_straight, _nine_curved),
}


def pen_strokes(digit, rng):
    """One random variant of ``digit``: strokes in unit-box coordinates, slanted, stretched and jittered."""
    styles = STYLES[digit]
    strokes = styles[rng.integers(len(styles))](rng.uniform(-1, 1, 4))
    slant = rng.uniform(-0.25, 0.3)   # people lean forward more often than back; many write upright
    aspect = rng.uniform(0.75, 1.3)
    angle = np.deg2rad(rng.uniform(-8, 8))
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    out = []
    for stroke in strokes:
        # A hand wobbles slowly along a stroke: a random walk over the points, pulled back to end
        # where the pen was aimed.
        wobble = np.cumsum(rng.normal(0, 0.008, stroke.shape), axis=0)
        wobble -= np.linspace(0, 1, len(stroke))[:, None] * wobble[-1]
        points = stroke + wobble
        points = np.stack([points[:, 0] * aspect - slant * (points[:, 1] - 0.5), points[:, 1]], axis=1)
        out.append(points @ rotation.T)
    return out


def draw_strokes(strokes, size, height, width_px, rng, supersample=1):
    """Strokes -> a (size x size) 'L' image, black ink on white, the digit ``height`` pixels tall."""
    points = np.concatenate(strokes)
    low, high = points.min(axis=0), points.max(axis=0)
    scale = height / max(high[1] - low[1], 1e-6)
    extent = (high - low) * scale
    room = np.maximum(size - extent - width_px, 0)
    offset = rng.uniform(0.15, 0.85, 2) * room + width_px / 2  # anywhere on the canvas, not only the middle
    big = size * supersample
    image = Image.new("L", (big, big), 255)
    draw = ImageDraw.Draw(image)
    radius = width_px * supersample / 2
    for stroke in strokes:
        xy = [tuple(p) for p in ((stroke - low) * scale + offset) * supersample]
        draw.line(xy, fill=0, width=max(1, int(round(width_px * supersample))), joint="curve")
        for x, y in (xy[0], xy[-1]):  # round pen ends
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=0)
    return image.resize((size, size), Image.BOX) if supersample > 1 else image


def pen_digit(digit, rng):
    """A digit drawn on the 280x280 canvas with a round pen, as the page sends it."""
    height = rng.uniform(90, 250)
    # Pens 10% to 30% of the digit's height wide: strokes about 3 pixels wide on average once the
    # digit is preprocessed, as measured on real handwriting (MNIST's: about 2; ``stroke_widths``).
    return draw_strokes(pen_strokes(digit, rng), CANVAS, height, height * rng.uniform(0.10, 0.30), rng)


def scan_digit(digit, rng):
    """A small, soft, grey-paper picture of a drawn digit: a low-resolution scan or photo."""
    height = rng.uniform(12, 36)
    size = int(height * rng.uniform(1.3, 2.0))
    image = draw_strokes(pen_strokes(digit, rng), size, height, height * rng.uniform(0.10, 0.30), rng, supersample=8)
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    return _on_paper(image, rng)


def _on_paper(image, rng):
    """Dark ink on a light grey paper with a little sensor noise, as a camera or scanner gives."""
    ink = 1.0 - np.asarray(image, dtype=np.float64) / 255.0
    paper, ink_level = rng.uniform(0.75, 0.97), rng.uniform(0.05, 0.3)
    grey = paper - ink * (paper - ink_level) + rng.normal(0, 0.015, ink.shape)
    return Image.fromarray(np.clip(np.rint(grey * 255), 0, 255).astype(np.uint8), "L")


def font_digit(digit, font_path, rng):
    """``digit`` in the font at ``font_path``: some size, weight and tilt, at a high or a low resolution."""
    size = int(rng.choice([24, 40, 120]))
    font = ImageFont.truetype(font_path, size)
    weight = int(rng.integers(0, max(1, size // 18) + 1))  # Pillow's outline stroke: a bolder pen
    text = str(digit)
    left, top, right, bottom = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=font,
                                                                               stroke_width=weight)
    margin = size // 2
    image = Image.new("L", (right - left + 2 * margin, bottom - top + 2 * margin), 255)
    ImageDraw.Draw(image).text((margin - left, margin - top), text, font=font, fill=0,
                               stroke_width=weight, stroke_fill=0)
    image = image.rotate(rng.uniform(-6, 6), resample=Image.BILINEAR, fillcolor=255, expand=True)
    return _on_paper(image, rng) if size < 60 else image


def find_fonts(names=FONTS, dirs=FONT_DIRS):
    """The path of each font file in ``names``; SystemExit naming the packages to install if any is missing."""
    found = {}
    for folder in dirs:
        for path in glob.glob(os.path.join(folder, "**", "*.[ot]tf"), recursive=True):
            found.setdefault(os.path.basename(path), path)
    missing = sorted({names[name] for name in names if name not in found})
    if missing:
        raise SystemExit(f"handwriting_set: fonts missing; install the Debian packages {' '.join(missing)}")
    return {name: found[name] for name in names}


def png_bytes(image):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def build(fonts):
    """All digits: (list of PNG bytes, labels (N,), sources (N,), details (N,) such as the font's name)."""
    rng = np.random.default_rng(SEED)
    files, labels, sources, details = [], [], [], []

    def add(image, digit, source, detail):
        files.append(png_bytes(image))
        labels.append(digit)
        sources.append(source)
        details.append(detail)

    for digit in range(10):
        for _ in range(PEN_PER_DIGIT):
            add(pen_digit(digit, rng), digit, "pen", "canvas")
        for _ in range(SCAN_PER_DIGIT):
            add(scan_digit(digit, rng), digit, "scan", "small")
        for name, path in fonts.items():
            for _ in range(FONT_RENDERS):
                add(font_digit(digit, path, rng), digit, "font", name)
    return files, np.array(labels, dtype=np.uint8), np.array(sources), np.array(details)


def save(path, files, labels, sources, details):
    """One npz: the PNG files concatenated in ``png`` with their ``offsets``, and labels, sources, details."""
    offsets = np.cumsum([0] + [len(f) for f in files]).astype(np.int64)
    with atomic_output(path) as temp_path:
        with open(temp_path, "wb") as f:
            np.savez_compressed(f, png=np.frombuffer(b"".join(files), dtype=np.uint8), offsets=offsets,
                                labels=labels, sources=sources.astype("U8"), details=details.astype("U40"))


def load(path=SET_PATH):
    """The stored set: (list of PNG bytes, labels uint8 (N,), sources (N,) str, details (N,) str)."""
    with np.load(path, allow_pickle=False) as z:
        blob, offsets = z["png"].tobytes(), z["offsets"]
        files = [blob[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]
        return files, z["labels"], z["sources"], z["details"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=SET_PATH, help="where to write the set (default: %(default)s)")
    args = parser.parse_args(argv)
    files, labels, sources, details = build(find_fonts())
    save(args.out, files, labels, sources, details)
    counts = ", ".join(f"{s} {int((sources == s).sum())}" for s in SOURCES)
    print(f"{len(files)} digits ({counts}), {os.path.getsize(args.out) / 1024:.0f} KiB -> {args.out}")


if __name__ == "__main__":
    main()
