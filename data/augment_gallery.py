"""Draw MNIST digits under each augmentation, one column per transformation: see what training shows the network.

    python -m data.augment_gallery                       # docs/images/augment.png
    python -m data.augment_gallery --out gallery.png --digits 6 --seed 3

Columns: the digit as stored; ``RandomAffine``'s shift, rotation and scaling; a forward and a
backward slant (``shear``); narrower and wider (``stretch_width``); thinner and wider strokes
(``strokes.stroke_width``); softer (``strokes.soften``); two random draws of ``RandomPen()``
(widths from thinner to wider, some blurred); then two of ``handwriting_augment``, the recipe
``train.py --handwriting-augment`` trains with. Pillow only (``data`` does not depend on ``nn`` or ``lenet``).
"""

import argparse
import os

import numpy as np
from PIL import Image, ImageDraw

from . import mnist
from .augment import RandomAffine, RandomPen, handwriting_augment, rotate_scale_shift, shear, stretch_width
from .strokes import soften, stroke_width

DEFAULT_OUT = os.path.join("docs", "images", "augment.png")
ZOOM = 3        # pixels per MNIST pixel in the picture
GAP = 4
CAPTION = 28    # height of the caption band above the columns


def columns(digits, rng):
    """(caption, images (N, 28, 28) uint8) for each column of the gallery."""
    n = len(digits)
    full = np.ones(n)
    pen, recipe = RandomPen(backend="numpy"), handwriting_augment(backend="numpy")
    return [
        ("MNIST", digits),
        ("shift/rot/scale", RandomAffine(backend="numpy")(digits, rng)),
        ("rotate 10", rotate_scale_shift(digits, 10 * full, full, np.zeros((n, 2)))),
        ("shear +0.3", shear(digits, 0.3 * full)),
        ("shear -0.3", shear(digits, -0.3 * full)),
        ("width /1.3", stretch_width(digits, full / 1.3)),
        ("width x1.3", stretch_width(digits, 1.3 * full)),
        ("thinner -0.6", stroke_width(digits, -0.6 * full)),
        ("wider +0.5", stroke_width(digits, 0.5 * full)),
        ("wider +1", stroke_width(digits, full)),
        ("soft 0.8", soften(digits, 0.8 * full)),
        ("soft+wide", soften(stroke_width(digits, full), 0.8 * full)),
        ("RandomPen #1", pen(digits, rng)),
        ("RandomPen #2", pen(digits, rng)),
        ("recipe #1", recipe(digits, rng)),
        ("recipe #2", recipe(digits, rng)),
    ]


def draw(cols):
    """The gallery as an 'L' Pillow image: black digits on white, as the page shows them."""
    n = len(cols[0][1])
    cell = 28 * ZOOM + GAP
    width = max(len(cols) * cell, 1)
    image = Image.new("L", (width + GAP, CAPTION + n * cell + GAP), 255)
    pen = ImageDraw.Draw(image)
    for c, (caption, images) in enumerate(cols):
        x = GAP + c * cell
        words = caption.split(" ")
        pen.text((x, 2), words[0], fill=0)
        pen.text((x, 14), " ".join(words[1:]), fill=0)
        for r, digit in enumerate(images):
            big = np.kron(255 - digit, np.ones((ZOOM, ZOOM), dtype=np.uint8))
            image.paste(Image.fromarray(big, "L"), (x, CAPTION + r * cell))
    return image


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help="PNG to write (default: %(default)s)")
    parser.add_argument("--digits", type=int, default=5, help="rows: test digits shown (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="picks the digits and the random draws (default: 0)")
    parser.add_argument("--data-dir", default=None, help=f"MNIST folder (default: ${mnist.ENV_VAR} or ./mnist)")
    args = parser.parse_args(argv)
    if args.digits < 1:
        parser.error(f"--digits must be >= 1, got {args.digits}")
    images, labels = mnist.load(mnist.resolve_root(args.data_dir), train=False)
    rng = np.random.default_rng(args.seed)
    # Different digits, one of each until ten: 1, 4 and 7 first, the ones real handwriting trips on.
    order = [1, 4, 7, 2, 8, 0, 3, 5, 6, 9]
    picks = [rng.choice(np.flatnonzero(labels == order[i % 10])) for i in range(args.digits)]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    draw(columns(images[picks], rng)).save(args.out)
    print(f"{args.digits} digits under {len(columns(images[picks[:1]], rng))} augmentations -> {args.out}")


if __name__ == "__main__":
    main()
