"""The pictures written at the end of training, drawn with Pillow alone (no plotting library).

Three PNG files, each saved atomically:

* :func:`save_curves` -- loss and accuracy per epoch, two panels side by side;
* :func:`save_confusion_matrix` -- a heat map of true class against predicted class, counts in the cells;
* :func:`save_misclassified` -- a grid of the test digits the model got wrong, captioned ``true -> predicted``.

and :func:`confusion_matrix`, which counts the (true, predicted) pairs.

How the drawing works. Pillow draws lines without anti-aliasing, so every picture is drawn on a
:class:`_Canvas` at ``SUPERSAMPLE`` times its saved size and shrunk at the end by averaging blocks of
pixels: diagonal lines and circles come out smooth. All layout numbers in this module are in *saved*
pixels; the canvas multiplies them. Text uses Pillow's built-in font, ``ImageFont.load_default``,
which is the scalable Aileron font when Pillow has FreeType (Pillow >= 10.1). That font has no arrow
glyph, so the arrow of the captions is drawn with lines. Only ASCII text is written for the same reason.
"""

import contextlib
import math
import numbers

import numpy as np
from PIL import Image, ImageDraw

from .drawing import FRAME, GRID, MUTED_TEXT, NEAREST, TEXT, WHITE, font, font_scales, save_png

# Colours (RGB), beyond the shared palette of ``drawing``. The line colours are the first three of
# the widely used "tab10" palette, chosen because they stay distinguishable for the common forms of
# colour blindness.
SERIES_COLOURS = {"train": (31, 119, 180), "val": (255, 127, 14), "test": (44, 160, 44)}
# A white-to-dark-blue ramp for the confusion matrix; a cell's colour is interpolated between these.
HEAT_RAMP = [(247, 251, 255), (198, 219, 239), (107, 174, 214), (33, 113, 181), (8, 48, 107)]
CELL_TEXT_ON_LIGHT = (0, 0, 0)
ZERO_COUNT_TEXT = (185, 185, 185)

# Font sizes in saved pixels.
TITLE_SIZE = 16
LABEL_SIZE = 13
TICK_SIZE = 12


# --------------------------------------------------------------------------------------------
# Canvas
# --------------------------------------------------------------------------------------------

# Supersampling only helps if the text can be drawn twice as large; the bitmap fallback font cannot.
SUPERSAMPLE = 2 if font_scales() else 1


class _Canvas:
    """A white RGB picture of ``width`` x ``height`` saved pixels, drawn ``SUPERSAMPLE`` times larger.

    Every method takes coordinates and sizes in saved pixels. :meth:`finish` returns the picture at
    its saved size, each saved pixel being the mean of a ``SUPERSAMPLE`` x ``SUPERSAMPLE`` block.
    """

    def __init__(self, width, height):
        self.width, self.height = int(math.ceil(width)), int(math.ceil(height))
        self.k = SUPERSAMPLE
        self.image = Image.new("RGB", (self.width * self.k, self.height * self.k), WHITE)
        self.draw = ImageDraw.Draw(self.image)

    def _xy(self, x, y):
        return (round(x * self.k), round(y * self.k))

    def _font(self, size):
        return font(size * self.k)

    def text_size(self, text, size):
        """(width, height) of ``text`` in saved pixels: the box its ink occupies."""
        left, top, right, bottom = self.draw.textbbox((0, 0), text, font=self._font(size))
        return (right - left) / self.k, (bottom - top) / self.k

    def text(self, x, y, text, size, fill=TEXT, anchor="lt"):
        """Write ``text`` so that the point of its ink box named by ``anchor`` lands on (x, y).

        ``anchor`` is two letters: horizontal ``l``/``m``/``r`` (left, middle, right), then vertical
        ``t``/``m``/``b`` (top, middle, bottom). Horizontally the ink box of ``text`` is used;
        vertically the ink box of a digit, from its top to the baseline, so that strings with and
        without descenders ("7", "predicted") line up on one baseline, and digits sit exactly in the
        middle of their cells. Works for bitmap fonts too, unlike Pillow's own anchors.
        """
        font = self._font(size)
        left, _, right, _ = self.draw.textbbox((0, 0), text, font=font)
        _, top, _, bottom = self.draw.textbbox((0, 0), "0", font=font)
        horizontal, vertical = anchor
        px, py = x * self.k, y * self.k
        px -= {"l": left, "m": (left + right) / 2, "r": right}[horizontal]
        py -= {"t": top, "m": (top + bottom) / 2, "b": bottom}[vertical]
        self.draw.text((round(px), round(py)), text, font=font, fill=fill)

    def vertical_text(self, x, y, text, size, fill=TEXT):
        """Write ``text`` turned a quarter left (reading bottom to top), its ink centred on (x, y)."""
        font = self._font(size)
        left, top, right, bottom = self.draw.textbbox((0, 0), text, font=font)
        label = Image.new("L", (right - left, bottom - top), 0)
        ImageDraw.Draw(label).text((-left, -top), text, font=font, fill=255)
        label = label.rotate(90, expand=True)
        colour = Image.new("RGB", label.size, fill)
        px = round(x * self.k - label.width / 2)
        py = round(y * self.k - label.height / 2)
        self.image.paste(colour, (px, py), mask=label)

    def line(self, points, fill, width=1.0):
        """A polyline through ``points`` [(x, y), ...]; ``width`` in saved pixels."""
        self.draw.line([self._xy(x, y) for x, y in points], fill=fill,
                       width=max(1, round(width * self.k)), joint="curve")

    def rectangle(self, x0, y0, x1, y1, fill=None, outline=None, width=1.0):
        self.draw.rectangle([self._xy(x0, y0), self._xy(x1, y1)], fill=fill, outline=outline,
                            width=max(1, round(width * self.k)))

    def circle(self, x, y, radius, fill, outline=WHITE):
        """A filled disc; the thin white rim keeps overlapping markers apart."""
        r = radius * self.k
        cx, cy = x * self.k, y * self.k
        self.draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill, outline=outline, width=max(1, self.k // 2))

    def polygon(self, points, fill):
        self.draw.polygon([self._xy(x, y) for x, y in points], fill=fill)

    def paste_pixels(self, pixels, x, y, scale):
        """Paste a grey-level uint8 array with its top-left at (x, y), each pixel ``scale`` saved pixels wide.

        Nearest-neighbour enlargement keeps the pixels square and sharp: that is what the network saw.
        """
        height, width = pixels.shape
        factor = scale * self.k
        tile = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8))
        tile = tile.resize((width * factor, height * factor), NEAREST).convert("RGB")
        # Whole saved pixels, so that the final block averaging never straddles a tile edge.
        self.image.paste(tile, (round(x) * self.k, round(y) * self.k))

    @contextlib.contextmanager
    def clipped_to(self, x0, y0, x1, y1):
        """Within the ``with`` block, drawing lands only inside the box (x0, y0) - (x1, y1).

        Pillow has no clipping region, so the block draws on a transparent layer, and only the box
        of that layer is pasted onto the picture: a line leaving the box is cut at its edge.
        """
        picture, picture_draw = self.image, self.draw
        self.image = Image.new("RGBA", picture.size, (0, 0, 0, 0))
        self.draw = ImageDraw.Draw(self.image)
        try:
            yield
        finally:
            layer, self.image, self.draw = self.image, picture, picture_draw
            left, top = self._xy(x0, y0)
            right, bottom = self._xy(x1, y1)
            region = layer.crop((left, top, right + 1, bottom + 1))
            picture.paste(region.convert("RGB"), (left, top), mask=region)

    def finish(self):
        """The picture at its saved size (block averaging: exact for the sharp digit tiles)."""
        return self.image.reduce(self.k) if self.k > 1 else self.image


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------

def _is_real_numeric(array):
    """True for integer and floating-point arrays (booleans, strings and objects are not numbers here)."""
    return array.dtype != bool and (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating))


def _as_labels(values, name, function):
    """``values`` as a 1-D int64 array, refusing anything that is not made of whole numbers."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{function}: expected {name} as a 1-D array of class indices, "
                         f"got {array.ndim}-D with shape {array.shape}")
    if array.size == 0:
        return array.astype(np.int64)
    if not _is_real_numeric(array):
        raise ValueError(f"{function}: expected integer class indices in {name}, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.floating):
        whole = np.isfinite(array) & (array == np.round(array))
        if not np.all(whole):
            raise ValueError(f"{function}: expected whole-number class indices in {name}, got {array[~whole][0]}")
    return array.astype(np.int64)


def _check_num_classes(num_classes, function):
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1:
        raise ValueError(f"{function}: expected num_classes to be a positive int, got {num_classes!r}")
    return int(num_classes)


def _check_label_range(labels, name, num_classes, function):
    outside = (labels < 0) | (labels >= num_classes)
    if np.any(outside):
        position = int(np.flatnonzero(outside)[0])
        raise ValueError(f"{function}: expected {name} in 0..{num_classes - 1}, "
                         f"got {labels[position]} at position {position}")


# --------------------------------------------------------------------------------------------
# Confusion matrix
# --------------------------------------------------------------------------------------------

def confusion_matrix(true_labels, predicted_labels, num_classes=10):
    """Count how often each true class was predicted as each class.

    Returns an int64 array ``m`` of shape ``(num_classes, num_classes)`` where ``m[t, p]`` is the
    number of samples of true class ``t`` predicted as ``p``: rows are true classes, columns are
    predictions, the diagonal holds the correct answers and ``m.sum()`` is the number of samples.
    """
    function = "confusion_matrix"
    num_classes = _check_num_classes(num_classes, function)
    true_labels = _as_labels(true_labels, "true_labels", function)
    predicted_labels = _as_labels(predicted_labels, "predicted_labels", function)
    if true_labels.shape != predicted_labels.shape:
        raise ValueError(f"{function}: expected as many predictions as true labels, "
                         f"got {predicted_labels.shape[0]} predictions for {true_labels.shape[0]} labels")
    _check_label_range(true_labels, "true_labels", num_classes, function)
    _check_label_range(predicted_labels, "predicted_labels", num_classes, function)
    # Number each (true, predicted) pair as one cell index t * C + p, and count the indices at once.
    cells = true_labels * num_classes + predicted_labels
    counts = np.bincount(cells, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def _heat_colour(t):
    """The colour at position ``t`` in [0, 1] along ``HEAT_RAMP`` (linear between its stops)."""
    t = min(max(float(t), 0.0), 1.0) * (len(HEAT_RAMP) - 1)
    i = min(int(t), len(HEAT_RAMP) - 2)
    f = t - i
    return tuple(round(a + (b - a) * f) for a, b in zip(HEAT_RAMP[i], HEAT_RAMP[i + 1]))


def _relative_luminance(colour):
    """The WCAG 2 relative luminance of an sRGB colour: 0 for black, 1 for white."""
    def linear(channel):
        c = channel / 255.0
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (linear(c) for c in colour)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a, b):
    """The WCAG 2 contrast ratio of two colours, from 1 (identical) to 21 (black on white).

    4.5 is the usual minimum for normal-sized text to be comfortably readable.
    """
    darker, lighter = sorted((_relative_luminance(a), _relative_luminance(b)))
    return (lighter + 0.05) / (darker + 0.05)


def cell_text_colour(background):
    """Black or white, whichever contrasts more with ``background``: dark text on light cells,
    light text on dark ones. Black rather than the usual dark grey, because on the mid-blue cells
    grey text would fall short of a 4.5 contrast ratio either way."""
    return max((CELL_TEXT_ON_LIGHT, WHITE), key=lambda text: contrast_ratio(text, background))


def _percent(numerator, denominator, decimals=2):
    return "n/a" if denominator == 0 else f"{100.0 * numerator / denominator:.{decimals}f}%"


def save_confusion_matrix(matrix, path, title="Confusion matrix"):
    """Draw ``matrix`` (rows: true class, columns: predicted class) as a heat map and save it as a PNG.

    Each cell shows its count. The colour follows ``log(1 + count)`` rather than the count: the
    diagonal holds about a thousand digits per class and the mistakes a handful, and on a linear
    scale every mistake would be the same near-white. The title gives the overall accuracy
    (diagonal / total); the column on the right gives each true class's accuracy (its recall).
    Returns ``path``.
    """
    function = "save_confusion_matrix"
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(f"{function}: expected a square (num_classes, num_classes) matrix, got shape {matrix.shape}")
    if not _is_real_numeric(matrix):
        raise ValueError(f"{function}: expected counts (integers), got dtype {matrix.dtype}")
    if not np.all(np.isfinite(matrix)) or np.any(matrix < 0) or np.any(matrix != np.round(matrix)):
        raise ValueError(f"{function}: expected non-negative whole-number counts, got values from "
                         f"{matrix.min()} to {matrix.max()}")
    matrix = matrix.astype(np.int64)
    n = matrix.shape[0]
    total, correct = int(matrix.sum()), int(np.trace(matrix))
    row_totals = matrix.sum(axis=1)

    # Layout. Cells are square and wide enough for the longest count.
    probe = _Canvas(1, 1)
    widest_count = max(probe.text_size(str(int(v)), LABEL_SIZE)[0] for v in matrix.ravel())
    cell = max(40, math.ceil(widest_count) + 14)
    grid = cell * n
    margin = 16
    left = margin + 22 + 20          # axis title "true", then the row labels
    recall_width = max(58, math.ceil(probe.text_size("100.0%", TICK_SIZE)[0]) + 16)
    heading = f"{title}: accuracy {_percent(correct, total)}"
    subtitle = f"{correct:,} of {total:,} correct; colour = log(1 + count)"
    top = margin + 48                # title and subtitle
    width = max(left + grid + recall_width + margin,
                margin * 2 + probe.text_size(heading, TITLE_SIZE)[0],
                margin * 2 + probe.text_size(subtitle, LABEL_SIZE)[0])
    height = top + 22 + grid + 48 + margin   # column header row, grid, column labels and axis title

    canvas = _Canvas(width, height)
    canvas.text(width / 2, margin, heading, TITLE_SIZE, anchor="mt")
    canvas.text(width / 2, margin + 24, subtitle, LABEL_SIZE, fill=MUTED_TEXT, anchor="mt")
    grid_top = top + 22
    canvas.text(left + grid + recall_width / 2, grid_top - 8, "recall", TICK_SIZE, fill=MUTED_TEXT, anchor="mb")

    scale = math.log1p(matrix.max()) if matrix.max() > 0 else 1.0
    for t in range(n):
        y = grid_top + t * cell
        for p in range(n):
            x = left + p * cell
            count = int(matrix[t, p])
            colour = _heat_colour(math.log1p(count) / scale)
            canvas.rectangle(x, y, x + cell, y + cell, fill=colour, outline=GRID)
            # Zeros are the common case off the diagonal; greying them makes the mistakes stand out.
            ink = cell_text_colour(colour) if count else ZERO_COUNT_TEXT
            canvas.text(x + cell / 2, y + cell / 2, str(count), LABEL_SIZE, fill=ink, anchor="mm")
        canvas.text(left - 8, y + cell / 2, str(t), LABEL_SIZE, anchor="rm")
        canvas.text(left + grid + recall_width / 2, y + cell / 2,
                    _percent(matrix[t, t], row_totals[t], decimals=1), TICK_SIZE, fill=MUTED_TEXT, anchor="mm")
    canvas.rectangle(left, grid_top, left + grid, grid_top + grid, outline=FRAME)
    for p in range(n):
        canvas.text(left + p * cell + cell / 2, grid_top + grid + 8, str(p), LABEL_SIZE, anchor="mt")
    canvas.text(left + grid / 2, grid_top + grid + 30, "predicted", LABEL_SIZE, anchor="mt")
    canvas.vertical_text(margin + 8, grid_top + grid / 2, "true", LABEL_SIZE)
    return save_png(canvas.finish(), path)


# --------------------------------------------------------------------------------------------
# Training curves
# --------------------------------------------------------------------------------------------

def _nice_step(raw):
    """The smallest of 1, 2 or 5 times a power of ten that is at least ``raw`` (> 0).

    Tick spacings chosen this way give round tick labels: 0.05, 0.1, 0.2, 0.5, 1, 2, ...
    """
    power = 10.0 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 5, 10):
        if multiple * power >= raw * (1 - 1e-9):
            return multiple * power
    return 10 * power  # not reached; keeps the function total


def _ticks(low, step, high):
    """The multiples of ``step`` from ``low`` to ``high`` (both included), without float drift."""
    count = int(round((high - low) / step))
    return [round(low + i * step, 10) for i in range(count + 1)]


def _tick_label(value, step):
    """``value`` with as many decimals as the tick spacing needs (0.05 -> 2, 0.5 -> 1, 2 -> 0)."""
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return f"{value:.{decimals}f}"


def _loss_axis(values):
    """(low, high, step) for the loss: from 0 (or below, if a loss is negative) to a round top."""
    low, high = min(min(values), 0.0), max(max(values), 0.0)
    if high - low <= 0:
        high = low + 1.0
    step = _nice_step((high - low) / 6)
    return math.floor(low / step) * step, math.ceil(high / step - 1e-9) * step, step


def _accuracy_axis(percentages):
    """(low, high, step) for accuracies in %: from the lowest one, rounded down, to 100.

    Zoomed in, so that the interesting band (98% - 100% for LeNet5 on MNIST) fills the panel
    instead of being squashed against the top of a 0 - 100% axis. The range is at least 0.5
    percentage points wide, so 100% everywhere still gets an axis.
    """
    lowest = min(percentages)
    step = _nice_step(max(100.0 - lowest, 0.5) / 7)
    low = max(0.0, math.floor(lowest / step + 1e-9) * step)
    if low >= 100.0:
        low = 100.0 - step
    return low, 100.0, step


def _metric(entry, key, index, function, fraction=False):
    """One number from a history entry, or None if it is missing, None or not finite (a diverged loss)."""
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{function}: expected a number for {key!r} in history[{index}], got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        return None
    if fraction and not 0.0 <= value <= 1.0:
        raise ValueError(f"{function}: expected {key!r} as a fraction in [0, 1], got {value} in history[{index}]")
    return value


def _read_history(history, function):
    """Check ``history`` and return (epochs, {key: [value or None per epoch]})."""
    if isinstance(history, (str, bytes)) or not hasattr(history, "__len__"):
        raise ValueError(f"{function}: expected history as a list of per-epoch dicts, got {type(history).__name__}")
    if len(history) == 0:
        raise ValueError(f"{function}: expected at least one epoch in history, got an empty list")
    epochs = []
    columns = {key: [] for key in ("train_loss", "val_loss", "test_loss",
                                   "train_accuracy", "val_accuracy", "test_accuracy")}
    for index, entry in enumerate(history):
        if not hasattr(entry, "get"):
            raise ValueError(f"{function}: expected history[{index}] to be a dict, got {type(entry).__name__}")
        epoch = entry.get("epoch", index + 1)
        if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral):
            raise ValueError(f"{function}: expected an int 'epoch' in history[{index}], got {epoch!r}")
        epochs.append(int(epoch))
        for key, column in columns.items():
            column.append(_metric(entry, key, index, function, fraction=key.endswith("accuracy")))
    return epochs, columns


class _Panel:
    """One chart: a plot box with data ranges, mapping data coordinates to picture coordinates."""

    # Inner padding (saved pixels), so that markers at the ends of the ranges do not sit on the frame.
    PAD = 8

    def __init__(self, canvas, box, x_range, y_range):
        self.canvas = canvas
        self.left, self.top, self.right, self.bottom = box
        self.x_low, self.x_high = x_range
        self.y_low, self.y_high = y_range

    def x(self, value):
        span = (self.right - self.left - 2 * self.PAD)
        return self.left + self.PAD + (value - self.x_low) / (self.x_high - self.x_low) * span

    def y(self, value):
        span = (self.bottom - self.top - 2 * self.PAD)
        return self.bottom - self.PAD - (value - self.y_low) / (self.y_high - self.y_low) * span


def _draw_chart(canvas, box, title, series, x_ticks, x_range, y_axis, y_title, empty_message):
    """Draw one panel: title, legend, grid, frame, ticks, axis titles and the lines of ``series``.

    ``box`` is the panel's (left, top, right, bottom) on the canvas; ``series`` is a list of
    (name, colour, epochs, values, legend text); ``y_axis`` is (low, high, step) or None when there
    is nothing to plot, in which case ``empty_message`` is written in the plot box instead.
    """
    left, top, right, bottom = box
    plot = (left + 58, top + 58, right - 12, bottom - 46)   # room for tick labels and axis titles
    canvas.text((left + right) / 2, top + 6, title, TITLE_SIZE, anchor="mt")

    # Legend: one row under the title, outside the plot box, so it can never hide a line.
    entries = [(colour, text) for _, colour, _, values, text in series if any(v is not None for v in values)]
    widths = [30 + canvas.text_size(text, LABEL_SIZE)[0] for _, text in entries]
    x = (plot[0] + plot[2]) / 2 - (sum(widths) + 18 * max(len(widths) - 1, 0)) / 2
    for (colour, text), width in zip(entries, widths):
        y = top + 38
        canvas.line([(x, y), (x + 22, y)], fill=colour, width=2.5)
        canvas.circle(x + 11, y, 3.5, fill=colour)
        canvas.text(x + 28, y, text, LABEL_SIZE, anchor="lm")
        x += width + 18

    if y_axis is None:
        canvas.rectangle(*plot, outline=FRAME)
        canvas.text((plot[0] + plot[2]) / 2, (plot[1] + plot[3]) / 2, empty_message, LABEL_SIZE,
                    fill=MUTED_TEXT, anchor="mm")
        return
    y_low, y_high, y_step = y_axis
    panel = _Panel(canvas, plot, x_range, (y_low, y_high))

    for value in _ticks(y_low, y_step, y_high):
        y = panel.y(value)
        canvas.line([(plot[0], y), (plot[2], y)], fill=GRID)
        canvas.line([(plot[0] - 5, y), (plot[0], y)], fill=FRAME)
        canvas.text(plot[0] - 8, y, _tick_label(value, y_step), TICK_SIZE, anchor="rm")
    for epoch in x_ticks:
        x = panel.x(epoch)
        canvas.line([(x, plot[1]), (x, plot[3])], fill=GRID)
        canvas.line([(x, plot[3]), (x, plot[3] + 5)], fill=FRAME)
        canvas.text(x, plot[3] + 8, str(epoch), TICK_SIZE, anchor="mt")
    canvas.text((plot[0] + plot[2]) / 2, plot[3] + 28, "epoch", LABEL_SIZE, anchor="mt")
    canvas.vertical_text(left + 12, (plot[1] + plot[3]) / 2, y_title, LABEL_SIZE)

    # Clipped: a value outside the y range (a low first-epoch train accuracy under the zoomed
    # accuracy axis) leaves the box at its edge instead of running over the tick labels.
    with canvas.clipped_to(*plot):
        for _, colour, epochs, values, _ in series:
            points = [(panel.x(e), panel.y(v)) for e, v in zip(epochs, values) if v is not None]
            if len(points) > 1:
                canvas.line(points, fill=colour, width=2)
            # Markers show where the measurements are; past ~40 epochs they would merge into a thick line.
            if len(points) <= 40:
                for px, py in points:
                    canvas.circle(px, py, 3, fill=colour)
    canvas.rectangle(*plot, outline=FRAME)      # last, so the lines never cover the frame


def _epoch_ticks(first, last):
    """Whole-number epoch ticks, at most about eight, at round spacings (1, 2, 5, 10, ...)."""
    step = max(1, int(_nice_step(max(last - first, 1) / 8)))
    start = math.ceil(first / step) * step
    return list(range(start, last + 1, step)) or [first]


def save_curves(history, path):
    """Plot loss and accuracy per epoch from ``history`` and save the picture as a PNG at ``path``.

    ``history`` is a list with one dict per epoch, holding ``"epoch"`` (1-based) and any of
    ``train_loss``, ``val_loss``, ``test_loss`` and ``train_accuracy``, ``val_accuracy``,
    ``test_accuracy`` (fractions in [0, 1]). A missing or None value is simply not drawn, as is a
    non-finite loss. Left panel: the three losses. Right panel: the accuracies in percent, on an
    axis zoomed from the lowest validation or test accuracy (rounded down) to 100%; the train
    accuracy is drawn too when recorded, cut at the bottom edge where it is lower. The legend gives
    each line's last value.
    Returns ``path``.
    """
    function = "save_curves"
    epochs, columns = _read_history(history, function)
    first, last = min(epochs), max(epochs)
    # With a single epoch, centre its point instead of squeezing a zero-width axis.
    x_range = (first - 0.5, last + 0.5) if first == last else (first, last)
    x_ticks = _epoch_ticks(first, last)

    def last_value(values):
        present = [v for v in values if v is not None]
        return present[-1] if present else None

    loss_series, accuracy_series = [], []
    for split, colour in SERIES_COLOURS.items():
        losses = columns[f"{split}_loss"]
        final = last_value(losses)
        loss_series.append((split, colour, epochs, losses, f"{split} {final:.4f}" if final is not None else split))
        percentages = [None if v is None else 100.0 * v for v in columns[f"{split}_accuracy"]]
        final = last_value(percentages)
        accuracy_series.append((split, colour, epochs, percentages,
                                f"{split} {final:.2f}%" if final is not None else split))

    all_losses = [v for _, _, _, values, _ in loss_series for v in values if v is not None]
    # The accuracy axis zooms on the held-out accuracies (val, test). The train accuracy, a running
    # mean over the epoch, starts much lower after epoch 1 and would stretch the axis; it is drawn
    # clipped instead. Only when there is no held-out accuracy does the zoom follow it.
    held_out = [v for name, _, _, values, _ in accuracy_series if name != "train" for v in values if v is not None]
    all_percentages = held_out or [v for _, _, _, values, _ in accuracy_series for v in values if v is not None]

    panel_width, height = 500, 400
    canvas = _Canvas(2 * panel_width, height)
    _draw_chart(canvas, (0, 0, panel_width, height), "Loss", loss_series, x_ticks, x_range,
                _loss_axis(all_losses) if all_losses else None, "loss", "no loss recorded")
    _draw_chart(canvas, (panel_width, 0, 2 * panel_width, height), "Accuracy", accuracy_series, x_ticks, x_range,
                _accuracy_axis(all_percentages) if all_percentages else None, "accuracy (%)",
                "no accuracy recorded")
    return save_png(canvas.finish(), path)


# --------------------------------------------------------------------------------------------
# Misclassified digits
# --------------------------------------------------------------------------------------------

def _as_digit_images(images, function):
    """``images`` as uint8 (N, H, W), white digits on black as in MNIST.

    uint8 arrays are used as they are; a channel axis of size 1, (N, 1, H, W), is dropped; floats
    in [0, 1] are scaled to 0..255. Anything else (e.g. images already normalized to a mean of 0)
    is refused, because it would be drawn wrongly.
    """
    array = np.asarray(images)
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 3:
        raise ValueError(f"{function}: expected images of shape (N, H, W), got shape {array.shape}")
    if array.dtype == np.uint8:
        return array
    if not _is_real_numeric(array):
        raise ValueError(f"{function}: expected uint8 pixel values, got dtype {array.dtype}")
    if array.size and not np.all(np.isfinite(array)):
        raise ValueError(f"{function}: images contain NaN or infinite pixel values")
    low, high = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
    if np.issubdtype(array.dtype, np.floating) and 0.0 <= low and high <= 1.0:
        return np.round(array * 255.0).astype(np.uint8)
    if 0.0 <= low and high <= 255.0 and np.all(array == np.round(array)):
        return array.astype(np.uint8)
    raise ValueError(f"{function}: expected uint8 pixels in 0..255 (or floats in [0, 1]), "
                     f"got {array.dtype} values from {low} to {high}")


def _confidences(probabilities, predicted, count, function):
    """The probability the model gave its prediction, per image: (N,) as given, or (N, C) -> column."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim == 2 and probabilities.shape[0] == count:
        if np.any(predicted >= probabilities.shape[1]):
            raise ValueError(f"{function}: a predicted label is beyond the {probabilities.shape[1]} "
                             f"columns of probabilities")
        return probabilities[np.arange(count), predicted]
    if probabilities.ndim == 1 and probabilities.shape[0] == count:
        return probabilities
    raise ValueError(f"{function}: expected probabilities of shape ({count}, num_classes) or ({count},), "
                     f"got shape {probabilities.shape}")


def _caption_parts(true_label, predicted_label, confidence):
    """The three pieces of a caption: true label, predicted label, confidence ("" when unknown).

    The confidence is rounded to a whole percent, except that it never rounds to 0% or 100%: a
    mistake made with 99.7% confidence is shown as ">99%", not as a certainty.
    """
    if confidence is None:
        suffix = ""
    elif confidence < 0.01:
        suffix = "<1%"
    elif confidence > 0.99:
        suffix = ">99%"
    else:
        suffix = f"{100.0 * confidence:.0f}%"
    return str(true_label), str(predicted_label), suffix


# Caption geometry (saved pixels): the drawn arrow, and the spaces around it and before the confidence.
ARROW_LENGTH = 12
ARROW_GAP = 4
SUFFIX_GAP = 5


def _caption_width(canvas, parts, size):
    left, right, suffix = parts
    width = canvas.text_size(left, size)[0] + 2 * ARROW_GAP + ARROW_LENGTH + canvas.text_size(right, size)[0]
    if suffix:
        width += SUFFIX_GAP + canvas.text_size(suffix, size)[0]
    return width


def _draw_caption(canvas, x, y, parts, size):
    """Write ``true -> predicted [confidence]`` centred on (x, y), with a drawn arrow.

    The arrow is drawn with a line and a triangle because the built-in font has no arrow glyph.
    """
    left, right, suffix = parts
    x -= _caption_width(canvas, parts, size) / 2
    head = canvas.text_size("0", size)[1] * 0.28
    canvas.text(x, y, left, size, anchor="lm")
    x += canvas.text_size(left, size)[0] + ARROW_GAP
    canvas.line([(x, y), (x + ARROW_LENGTH - 4, y)], fill=TEXT, width=1.3)
    canvas.polygon([(x + ARROW_LENGTH, y), (x + ARROW_LENGTH - 5, y - head), (x + ARROW_LENGTH - 5, y + head)],
                   fill=TEXT)
    x += ARROW_LENGTH + ARROW_GAP
    # The prediction in red: it is the wrong answer, and the eye should find it first.
    canvas.text(x, y, right, size, fill=(200, 30, 30), anchor="lm")
    if suffix:
        x += canvas.text_size(right, size)[0] + SUFFIX_GAP
        canvas.text(x, y, suffix, size, fill=MUTED_TEXT, anchor="lm")


def save_misclassified(images, true_labels, predicted_labels, path, max_images=100, probabilities=None):
    """Draw the digits whose prediction differs from the true label, in a captioned grid, as a PNG.

    ``images`` are uint8 (N, 28, 28), white on black (floats in [0, 1] are accepted too);
    ``true_labels`` and ``predicted_labels`` have N class indices. Each wrong digit is enlarged three
    times (nearest neighbour, so the pixels stay sharp) and captioned ``true -> predicted``. With
    ``probabilities`` -- (N, num_classes), or (N,) holding the probability of each prediction -- the
    caption adds the model's confidence, and the most confident mistakes come first; otherwise the
    digits keep the order of the test set. At most ``max_images`` are drawn; with no mistake at all
    the picture says so. Returns ``path``.
    """
    function = "save_misclassified"
    images = _as_digit_images(images, function)
    true_labels = _as_labels(true_labels, "true_labels", function)
    predicted_labels = _as_labels(predicted_labels, "predicted_labels", function)
    count = images.shape[0]
    if true_labels.shape[0] != count or predicted_labels.shape[0] != count:
        raise ValueError(f"{function}: expected one true and one predicted label per image ({count} images), "
                         f"got {true_labels.shape[0]} true and {predicted_labels.shape[0]} predicted labels")
    if isinstance(max_images, bool) or not isinstance(max_images, numbers.Integral) or max_images < 1:
        raise ValueError(f"{function}: expected max_images to be a positive int, got {max_images!r}")
    for name, labels in (("true_labels", true_labels), ("predicted_labels", predicted_labels)):
        if np.any(labels < 0):
            raise ValueError(f"{function}: expected non-negative class indices in {name}, got {labels.min()}")
    confidences = None if probabilities is None else _confidences(probabilities, predicted_labels, count, function)

    wrong = np.flatnonzero(true_labels != predicted_labels)
    if confidences is not None:
        # Most confident first; a stable sort keeps the test-set order among equal confidences.
        wrong = wrong[np.argsort(-confidences[wrong], kind="stable")]
    shown = wrong[:int(max_images)]

    margin, scale, gap, caption_height = 14, 3, 10, 22
    # Callers may pass every test digit or only the wrong ones; "of N" only says something in the first case.
    title = f"Misclassified: {len(wrong):,} digit{'s' if len(wrong) != 1 else ''}"
    if count > len(wrong):
        title += f" of {count:,}"
    if len(shown) < len(wrong):
        title += f" (the {len(shown)} most confident shown)" if confidences is not None \
            else f" (the first {len(shown)} shown)"
    probe = _Canvas(1, 1)
    legend_parts = ("true", "predicted", "confidence" if confidences is not None else "")
    header = margin + 24 + 22       # title, then the caption legend

    if len(shown) == 0:
        message = "no errors: every digit was classified correctly"
        width = margin * 2 + max(probe.text_size(title, TITLE_SIZE)[0], probe.text_size(message, LABEL_SIZE)[0])
        canvas = _Canvas(max(width, 360), margin + 24 + 60)
        canvas.text(canvas.width / 2, margin, title, TITLE_SIZE, anchor="mt")
        canvas.text(canvas.width / 2, margin + 24 + 30, message, LABEL_SIZE, fill=(44, 130, 44), anchor="mm")
        return save_png(canvas.finish(), path)

    tile_h, tile_w = images.shape[1] * scale, images.shape[2] * scale
    columns = min(10, len(shown))
    rows = math.ceil(len(shown) / columns)
    cell_w = max(tile_w, 60) + gap
    cell_h = tile_h + caption_height + gap
    width = max(margin * 2 + columns * cell_w - gap,
                margin * 2 + probe.text_size(title, TITLE_SIZE)[0],
                margin * 2 + _caption_width(probe, legend_parts, LABEL_SIZE))
    height = header + 8 + rows * cell_h - gap + margin

    canvas = _Canvas(width, height)
    canvas.text(width / 2, margin, title, TITLE_SIZE, anchor="mt")
    _draw_caption(canvas, width / 2, margin + 24 + 9, legend_parts, LABEL_SIZE)
    grid_left = (width - (columns * cell_w - gap)) / 2
    for position, index in enumerate(shown):
        row, column = divmod(position, columns)
        x = grid_left + column * cell_w + (cell_w - gap - tile_w) / 2
        y = header + 8 + row * cell_h
        canvas.paste_pixels(images[index], x, y, scale)
        confidence = None if confidences is None else float(confidences[index])
        parts = _caption_parts(int(true_labels[index]), int(predicted_labels[index]), confidence)
        _draw_caption(canvas, x + tile_w / 2, y + tile_h + caption_height / 2 + 1, parts, TICK_SIZE)
    return save_png(canvas.finish(), path)


__all__ = ["confusion_matrix", "save_confusion_matrix", "save_curves", "save_misclassified"]
