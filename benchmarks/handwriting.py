"""How well a model reads handwriting that is not MNIST: the handwriting set, through the upload path.

    python -m benchmarks.handwriting                      # the shipped model
    python -m benchmarks.handwriting --model runs/exp/lenet5.npz --errors errors.png
    python -m benchmarks.handwriting --widths              # also: accuracy against the pen's width

Each digit of the set (``benchmarks.handwriting_set``: pen strokes on the page's canvas, small
soft scans, handwriting fonts) is a PNG file, and goes exactly where an upload to
``/api/predict`` goes: ``decode_image`` (the server's decoder), ``prepare_digit`` (MNIST-style
preprocessing), then the model. Printed: the accuracy overall and per source, per digit, and the
most frequent confusions (true -> read as). ``--widths`` draws fresh pen digits in bands of pen
width and prints the accuracy of each: how fast a model loses wide strokes.
"""

import argparse
import collections

import numpy as np

from data.preprocess import prepare_digit
from lenet import load_model
from lenet.server.model_api.upload import decode_image

from .handwriting_set import CANVAS, SET_PATH, SOURCES, draw_strokes, load, pen_strokes, png_bytes

# Pen widths as fractions of the digit's height: from a hairline to a marker.
WIDTH_BANDS = ((0.02, 0.05), (0.05, 0.10), (0.10, 0.20), (0.20, 0.30), (0.30, 0.40))


def prepared_digits(path=SET_PATH):
    """The set as the model sees it: (images uint8 (N, 28, 28), labels (N,), sources (N,), details (N,))."""
    files, labels, sources, details = load(path)
    images = np.stack([prepare_digit(decode_image(data)) for data in files])
    return images, labels.astype(np.intp), sources, details


def stroke_widths(images):
    """Each uint8 image's mean stroke width in pixels (N,): 2 x ink area / ink outline, ink above 127.

    A stroke of width w and length L covers w L pixels and has an outline of about 2 L. The
    outline counts pixel edges, so diagonal strokes read a little thin; MNIST's test digits give 2.1.
    """
    ink = (np.asarray(images) > 127).astype(np.int32)
    area = ink.sum(axis=(1, 2))
    outline = (np.abs(np.diff(np.pad(ink, ((0, 0), (1, 1), (0, 0))), axis=1)).sum(axis=(1, 2))
               + np.abs(np.diff(np.pad(ink, ((0, 0), (0, 0), (1, 1))), axis=2)).sum(axis=(1, 2)))
    return 2.0 * area / np.maximum(outline, 1)


def evaluate(model, images, labels, batch_size=500):
    """The model's predicted digit for each image (N,)."""
    return np.concatenate([model.predict(images[i:i + batch_size]).argmax(axis=1)
                           for i in range(0, len(images), batch_size)])


def summary(predicted, labels, sources):
    """Accuracy overall, per source and per digit, and the confusion pairs, most frequent first."""
    right = predicted == labels
    return {
        "accuracy": float(right.mean()),
        "count": int(len(labels)),
        "per_source": {s: float(right[sources == s].mean()) for s in SOURCES if (sources == s).any()},
        "per_digit": {d: float(right[labels == d].mean()) for d in range(10) if (labels == d).any()},
        "confusions": collections.Counter(zip(labels[~right].tolist(), predicted[~right].tolist())).most_common(),
    }


def width_sweep(model, per_digit=20, seed=7):
    """[(band, accuracy, mean stroke width after preprocessing)] for pen digits drawn in each ``WIDTH_BANDS``."""
    rows = []
    for low, high in WIDTH_BANDS:
        rng = np.random.default_rng(seed)  # the same digits in every band, only the pen differs
        images, labels = [], []
        for digit in range(10):
            for _ in range(per_digit):
                height = rng.uniform(90, 250)
                picture = draw_strokes(pen_strokes(digit, rng), CANVAS, height, height * rng.uniform(low, high), rng)
                images.append(prepare_digit(decode_image(png_bytes(picture))))
                labels.append(digit)
        images, labels = np.stack(images), np.array(labels)
        accuracy = float(np.mean(evaluate(model, images, labels) == labels))
        rows.append(((low, high), accuracy, float(stroke_widths(images).mean())))
    return rows


def report(result):
    lines = [f"Handwriting set: {100 * result['accuracy']:.1f}% of {result['count']} digits read right "
             f"({round((1 - result['accuracy']) * result['count'])} errors)",
             "  per source: " + ", ".join(f"{s} {100 * a:.1f}%" for s, a in result["per_source"].items()),
             "  per digit:  " + ", ".join(f"{d}: {100 * a:.0f}%" for d, a in result["per_digit"].items()),
             "  confusions (true -> read as, count): "
             + (", ".join(f"{t}->{p} {n}" for (t, p), n in result["confusions"][:12]) or "none")]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Accuracy of a LeNet5 on the handwriting set (not MNIST), "
                                                 "through the same decoding and preprocessing as uploads.")
    parser.add_argument("--model", default=None, help="model file (default: the shipped model)")
    parser.add_argument("--set", default=SET_PATH, help="the set's npz (default: %(default)s)")
    parser.add_argument("--widths", action="store_true", help="also the accuracy per band of pen width")
    parser.add_argument("--errors", metavar="PNG", default=None,
                        help="also draw the misclassified digits, as the model saw them, into PNG")
    args = parser.parse_args(argv)
    model = load_model(args.model)
    images, labels, sources, _ = prepared_digits(args.set)
    predicted = evaluate(model, images, labels)
    print(report(summary(predicted, labels, sources)))
    print(f"  mean stroke width after preprocessing: {stroke_widths(images).mean():.2f} pixels (MNIST test: 2.1)")
    if args.widths:
        print("Pen digits by pen width (fraction of the digit's height -> stroke width after preprocessing):")
        for (low, high), accuracy, width in width_sweep(model):
            print(f"  {low:.2f}-{high:.2f} ({width:.1f} px): {100 * accuracy:.1f}%")
    if args.errors:
        from lenet import plots
        wrong = predicted != labels
        plots.save_misclassified(images[wrong], labels[wrong], predicted[wrong], args.errors)
        print(f"misclassified digits -> {args.errors}")


if __name__ == "__main__":
    main()
