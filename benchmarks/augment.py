"""What each augmentation costs per training epoch: all 55,000 training images at once, as train.py does it.

    python -m benchmarks.augment                  # numba, numba's threads
    python -m benchmarks.augment --backend numpy --repeats 3

The contenders run in alternating blocks and the median block is reported (``benchmarks.timing``),
so the ratios to the plain affine hold on a busy machine even when the seconds do not.
"""

import argparse

import numpy as np

from data import mnist
from data.augment import RandomAffine, RandomPen, handwriting_augment
from data.strokes import soften, stroke_width

from .timing import measure, print_table

EPOCH_IMAGES = 55_000


def contenders(images, backend):
    n = len(images)
    amounts = np.random.default_rng(1).uniform(-0.3, 1.0, n)
    sigmas = np.random.default_rng(2).uniform(0.5, 1.0, n)
    affine, slanted = RandomAffine(backend=backend), RandomAffine(max_shear=0.3, aspect_range=(0.77, 1.3),
                                                                    backend=backend)
    pen, recipe = RandomPen(backend=backend), handwriting_augment(backend=backend)
    return {
        "RandomAffine (the default)": lambda: affine(images, np.random.default_rng(0)),
        "RandomAffine + shear, width": lambda: slanted(images, np.random.default_rng(0)),
        "stroke_width, every image": lambda: stroke_width(images, amounts, backend),
        "soften, every image": lambda: soften(images, sigmas, backend),
        "RandomPen": lambda: pen(images, np.random.default_rng(0)),
        "handwriting_augment (all of it)": lambda: recipe(images, np.random.default_rng(0)),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("numpy", "numba"), default="numba")
    parser.add_argument("--repeats", type=int, default=5, help="alternating rounds (default: %(default)s)")
    parser.add_argument("--data-dir", default=None, help=f"MNIST folder (default: ${mnist.ENV_VAR} or ./mnist)")
    args = parser.parse_args(argv)
    images, _ = mnist.load(mnist.resolve_root(args.data_dir), train=True)
    images = np.ascontiguousarray(images[:EPOCH_IMAGES])
    seconds = measure(contenders(images, args.backend), args.repeats, seconds_per_block=0.5, warm_calls=1)
    base = seconds["RandomAffine (the default)"]
    rows = [(name, f"{s:.3f}", f"{s / base:.2f}x") for name, s in seconds.items()]
    print_table(f"{EPOCH_IMAGES:,} images, backend {args.backend} (median of {args.repeats} alternating rounds)",
                rows, ("augmentation", "seconds", "vs affine"))


if __name__ == "__main__":
    main()
