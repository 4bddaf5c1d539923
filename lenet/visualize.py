"""``python -m lenet.visualize``: see inside the trained LeNet5, as PNG files.

    python -m lenet.visualize                          # the latest run's model (else the shipped one), a drawn 7
    python -m lenet.visualize --image digit.png        # your own picture, preprocessed as the server does
    python -m lenet.visualize --mnist-index 3          # test digit 3 of MNIST
    python -m lenet.visualize --model runs/exp2 --out pictures   # a run folder or a model file

writes into ``--out`` (default ``runs/visualize``):

* ``filters_C1.png``: C1's 6 learned 5x5 filters; ``filters_C3.png``: C3's 16 filters, one column
  each, one row per input channel (6). Red is positive, blue negative, white 0; each filter is
  scaled to its own largest absolute weight.
* ``input.png``: the 28x28 digit the model reads (the 1998 LeNet-5 reads it in a 2-pixel border, 32x32;
  its C3 filters show its connection table as blank cells, its maps are after the scaled tanh).
* ``activations_C1.png`` ... ``activations_S4.png``: every channel's map after that stage (see
  ``lenet.activations``), black 0 to white the stage's largest value; ``activations_C5.png``,
  ``activations_F6.png``: the 120 and 84 values as rows of cells; ``activations_out.png``: the 10
  logits, the largest (the prediction) framed.

Every file is written atomically (a temporary file, then a rename).
"""

import argparse
import math
import os
import sys

import numpy as np
from PIL import Image, ImageDraw

from data.preprocess import BlankImageError, prepare_digit
from . import DEFAULT_WEIGHTS, load_model
from .activations import stage_activations
from . import drawing
from .drawing import FRAME, NEAREST, NEGATIVE, POSITIVE, TEXT, WHITE
from .lenet1998 import LeNet1998
from .training.runs import LATEST, RUNS_ROOT, latest_model_path, resolve_model_path

DEFAULT_OUT = os.path.join("runs", "visualize")
MARGIN = 10
GAP = 4
TITLE_SIZE = 14
LABEL_SIZE = 11
MAP_SIDE = 72               # pixels a feature map is drawn at, whatever its own size
FILTER_CELL = 10            # pixels per weight of a filter
VECTOR_CELL = 16           # pixels per value of a vector
VECTOR_ROW = {"C5": 20, "F6": 14, "out": 10}   # cells per row of the vector pictures


# -- colours -------------------------------------------------------------------------------------

def diverging_colours(values, scale):
    """``values`` (any shape) -> RGB uint8 (..., 3): -scale blue, 0 white, +scale red (clipped)."""
    t = np.clip(np.asarray(values, dtype=np.float64) / (scale if scale > 0 else 1.0), -1.0, 1.0)[..., None]
    white = np.array(WHITE, dtype=np.float64)
    ends = np.where(t < 0, np.array(NEGATIVE, dtype=np.float64), np.array(POSITIVE, dtype=np.float64))
    return np.rint(white + np.abs(t) * (ends - white)).astype(np.uint8)


def grey_pixels(values, scale):
    """``values`` >= 0 -> uint8 grey: 0 black, ``scale`` and above white."""
    t = np.clip(np.asarray(values, dtype=np.float64) / (scale if scale > 0 else 1.0), 0.0, 1.0)
    return np.rint(255 * t).astype(np.uint8)


# -- pictures --------------------------------------------------------------------------------------

def _titled(width, height, title):
    """A white picture with ``title`` written at its top; returns (image, draw, y where content starts)."""
    font = drawing.font(TITLE_SIZE)
    title_width = ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(title, font=font)
    image = Image.new("RGB", (int(max(width, title_width + 2 * MARGIN)), height + TITLE_SIZE + 2 * MARGIN), WHITE)
    draw = ImageDraw.Draw(image)
    draw.text((MARGIN, MARGIN), title, font=font, fill=TEXT)
    return image, draw, TITLE_SIZE + 2 * MARGIN - GAP


def _paste_scaled(image, pixels, x, y, side):
    """Paste the uint8 grey or RGB array ``pixels``, enlarged without smoothing to ``side`` pixels a side."""
    tile = Image.fromarray(pixels).convert("RGB").resize((side, round(side * pixels.shape[0] / pixels.shape[1])),
                                                         NEAREST)
    image.paste(tile, (x, y))


def filters_picture(weight, title):
    """Conv weights (C_out, C_in, kh, kw) -> one column per filter, one row per input channel."""
    c_out, c_in, kh, kw = weight.shape
    cell_w, cell_h = kw * FILTER_CELL, kh * FILTER_CELL
    width = MARGIN * 2 + c_out * (cell_w + GAP) - GAP
    label_height = LABEL_SIZE + GAP
    image, draw, top = _titled(width, label_height + c_in * (cell_h + GAP), title)
    font = drawing.font(LABEL_SIZE)
    for o in range(c_out):
        x = MARGIN + o * (cell_w + GAP)
        draw.text((x + cell_w / 2, top), str(o), font=font, fill=TEXT, anchor="mt")
        scale = float(np.abs(weight[o]).max())  # each filter on its own scale: its shape is what matters
        for c in range(c_in):
            _paste_scaled(image, diverging_colours(weight[o, c], scale), x, top + label_height + c * (cell_h + GAP),
                          cell_w)
    return image


def maps_picture(maps, title, columns=8):
    """Feature maps (C, H, W), all >= 0 -> a grid of grey pictures on one shared scale."""
    channels = len(maps)
    columns = min(columns, channels)
    rows = math.ceil(channels / columns)
    width = MARGIN * 2 + columns * (MAP_SIDE + GAP) - GAP
    image, draw, top = _titled(width, rows * (MAP_SIDE + GAP) - GAP + MARGIN, title)
    scale = float(maps.max())
    for k in range(channels):
        x = MARGIN + (k % columns) * (MAP_SIDE + GAP)
        y = top + (k // columns) * (MAP_SIDE + GAP)
        _paste_scaled(image, grey_pixels(maps[k], scale), x, y, MAP_SIDE)
        draw.rectangle([x - 1, y - 1, x + MAP_SIDE, y + MAP_SIDE], outline=FRAME)
    return image


def vector_picture(values, title, per_row, diverging=False, labels=False):
    """A vector -> rows of square cells; grey (values >= 0) or blue-white-red; ``labels`` numbers the cells."""
    size = len(values)
    rows = math.ceil(size / per_row)
    label_height = LABEL_SIZE + GAP if labels else 0
    width = MARGIN * 2 + per_row * VECTOR_CELL
    image, draw, top = _titled(width, rows * (VECTOR_CELL + label_height) + MARGIN, title)
    scale = float(np.abs(values).max())
    colours = diverging_colours(values, scale) if diverging else np.repeat(grey_pixels(values, scale)[:, None], 3, 1)
    font = drawing.font(LABEL_SIZE)
    for k in range(size):
        x = MARGIN + (k % per_row) * VECTOR_CELL
        y = top + (k // per_row) * (VECTOR_CELL + label_height)
        if labels:
            draw.text((x + VECTOR_CELL / 2, y), str(k), font=font, fill=TEXT, anchor="mt")
        box = [x, y + label_height, x + VECTOR_CELL - 1, y + label_height + VECTOR_CELL - 1]
        draw.rectangle(box, fill=tuple(int(v) for v in colours[k]), outline=FRAME)
    if labels:  # frame the largest: the prediction, for the logits
        k = int(np.argmax(values))
        x = MARGIN + (k % per_row) * VECTOR_CELL
        y = top + (k // per_row) * (VECTOR_CELL + label_height) + label_height
        draw.rectangle([x - 2, y - 2, x + VECTOR_CELL + 1, y + VECTOR_CELL + 1], outline=TEXT, width=2)
    return image


def _stage_title(model, stage, array):
    shape = "x".join(str(d) for d in array.shape)
    if stage == "out":
        kind = "logits"
    elif isinstance(model, LeNet1998):  # every stage but out ends in the scaled tanh
        kind = "subsampled, after tanh" if stage in ("S2", "S4") else "after tanh"
    else:
        kind = "after ReLU" if stage in ("C1", "C3", "C5", "F6") else "max-pooled"
    return f"{stage}: {shape} ({kind})"


def pictures(model, digit):
    """``{file name: PIL image}`` for ``model`` (eval mode) reading the uint8 28x28 ``digit``.

    LeNet1998 reads the digit in a 2-pixel border: ``input.png``'s title says so.
    """
    x = model.preprocess(digit[None])
    border = "" if x.shape[2:] == digit.shape else f" (read as {x.shape[2]}x{x.shape[3]}, in a border)"
    outputs = {name: array[0] for name, array in stage_activations(model, x).items()}
    result = {
        "filters_C1.png": filters_picture(model.C1.weight.data, "C1: 6 filters 5x5 (red +, blue -)"),
        "filters_C3.png": filters_picture(model.C3.weight.data, "C3: 16 filters (columns) x 6 input channels (rows)"),
        "input.png": maps_picture(digit[None].astype(np.float64), "input: 28x28" + border, columns=1),
    }
    for stage, array in outputs.items():
        title = _stage_title(model, stage, array)
        if array.ndim == 3:
            picture = maps_picture(array, title)
        else:
            picture = vector_picture(array, title, VECTOR_ROW[stage], diverging=stage == "out", labels=stage == "out")
        result[f"activations_{stage}.png"] = picture
    return result


# -- the digit to look at ---------------------------------------------------------------------------

BUILTIN_STROKE = [(60, 60), (220, 60), (130, 230)]  # a 7, on the page's 280x280 canvas


def builtin_digit():
    """A 7 drawn as the page draws (dark ink on white, 24-pixel brush), preprocessed as the server does."""
    canvas = Image.new("L", (280, 280), 255)
    ImageDraw.Draw(canvas).line(BUILTIN_STROKE, fill=0, width=24, joint="curve")
    return prepare_digit(canvas)


def read_digit(path):
    """A picture file -> the MNIST-style uint8 28x28 digit, preprocessed as ``POST /api/predict`` does."""
    try:
        with Image.open(path) as image:
            image.load()
            return prepare_digit(image)
    except BlankImageError as exc:
        raise ValueError(f"{path}: {exc}") from None
    except (OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"cannot read {path} as an image: {exc}") from None


def mnist_digit(index):
    """Test digit ``index`` of MNIST (found as ``python -m data.mnist`` finds it) and its label."""
    from data import mnist
    images, labels = mnist.load(train=False)
    if not 0 <= index < len(images):
        raise ValueError(f"--mnist-index must be in 0..{len(images) - 1}, got {index}")
    return images[index], int(labels[index])


def choose_model(path=None):
    """-> (the model file to show, why that one): ``path`` as given, else the latest run's, else the shipped one."""
    if path is not None:
        return resolve_model_path(path), "--model"
    latest = latest_model_path()
    if latest is not None:
        return latest, f"the latest run, {RUNS_ROOT}/{LATEST}; --model PATH shows another"
    return DEFAULT_WEIGHTS, f"the shipped model: no trained run in {RUNS_ROOT}/ yet; --model PATH shows another"


# -- command line -------------------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m lenet.visualize",
                                description="Write PNGs of LeNet5's (or LeNet1998's) learned filters and of one digit's "
                                            "activation maps at every stage.")
    p.add_argument("--model", default=None,
                   help="a model saved by train.py, or its run folder (default: the model of the run "
                        f"{RUNS_ROOT}/{LATEST} points to, if it has one, else the shipped lenet5.npz)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--image", default=None, help="a picture of one digit (PNG, JPEG, BMP, GIF), "
                                                     "preprocessed as the server does (default: a built-in 7)")
    source.add_argument("--mnist-index", type=int, default=None, help="use this MNIST test digit instead")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"folder to write the PNGs into (default: {DEFAULT_OUT})")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        path, which = choose_model(args.model)
        model = load_model(path)
        label = None
        if args.image is not None:
            digit = read_digit(args.image)
        elif args.mnist_index is not None:
            digit, label = mnist_digit(args.mnist_index)
        else:
            digit = builtin_digit()
    except (ValueError, OSError) as exc:
        print(f"lenet.visualize: {exc}", file=sys.stderr)
        return 2
    print(f"model: {path} ({which})")
    probabilities = model.predict(digit)[0]
    os.makedirs(args.out, exist_ok=True)
    written = []
    for name, image in pictures(model, digit).items():
        path = os.path.join(args.out, name)
        drawing.save_png(image, path)
        written.append(path)
    known = "" if label is None else f" (labelled {label})"
    prediction = int(np.argmax(probabilities))
    print(f"read as {prediction} with probability {probabilities[prediction]:.3f}{known}; wrote {len(written)} files:")
    for path in written:
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
