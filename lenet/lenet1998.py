"""The original LeNet-5 (LeCun, Bottou, Bengio and Haffner 1998, section II.B), composed from ``nn`` layers.

What differs from ``lenet.model.LeNet5`` (the modern variant with ReLU and max pooling):

* a 32x32 input: the 28x28 MNIST digit in a 2-pixel border, scaled so the background is -0.1
  and the ink 1.175 (mean about 0, variance about 1);
* the squashing function ``f(a) = 1.7159 tanh(2/3 a)`` after every layer but the last;
* trainable subsampling (S2, S4): the average of each 2x2 window, times one coefficient per map, plus
  one bias per map (``nn.Subsampling``);
* C3 connects each of its 16 maps to a subset of S2's 6 maps, by the paper's table I;
* C5 is a 5x5 convolution over S4's 16 maps of 5x5, so a full connection giving (N, 120, 1, 1);
* every weight and bias starts uniform in +-2.4 / F_i, F_i the fan-in of its unit;
* the output is a linear layer read through a softmax (the paper's Euclidean RBF units with
  fixed 7x12 bitmaps are left out, the common modern substitute).
"""

from collections import OrderedDict

import numpy as np

from data.normalize import normalization_table
from nn import ops
from nn.checks import as_float_array, check_dout
from nn.conv import Conv2d
from nn.flatten import Flatten
from nn.init import make_rng
from nn.linear import Linear
from nn.loss import softmax
from nn.module import Module
from nn.sequential import Sequential
from nn.subsampling import Subsampling

from .model import LeNet5

AMPLITUDE = 1.7159
SLOPE = 2 / 3

# x = (pixel / 255 - mean) / std maps pixel 0 to -0.1 and pixel 255 to 1.175 (the paper's levels).
PAPER_NORMALIZATION = {"mean": 0.1 / 1.275, "std": 1 / 1.275}

# Table I of the paper: the S2 maps each of C3's 16 maps takes as input.
C3_TABLE = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),                           # 3 contiguous
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),         # 4 contiguous
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),                                                   # 4, not contiguous
    (0, 1, 2, 3, 4, 5),                                                                          # all six
)

INIT_BOUND = 2.4  # every weight and bias starts uniform in +-INIT_BOUND / fan_in

# The stages ``lenet.activations.stage_activations`` shows: each named layer with its squashing function.
STAGES = (
    ("C1", ("C1", "squash1")),
    ("S2", ("S2", "squash2")),
    ("C3", ("C3", "squash3")),
    ("S4", ("S4", "squash4")),
    ("C5", ("C5", "squash5", "flatten")),
    ("F6", ("F6", "squash6")),
    ("out", ("out",)),
)


class ScaledTanh(Module):
    """The paper's squashing function ``y = A tanh(S x)``, ``A = 1.7159``, ``S = 2/3``, elementwise.

    ``A`` and ``S`` make ``f(1) = 1`` and ``f(-1) = -1``, the points where ``|f''|`` is largest (the curve
    bends most there), with a gain ``f'(0) = A S = 1.1439`` close to 1 around 0.

    Gradient: ``dL/dx = dout * A S (1 - t²)`` with ``t = tanh(S x)``, kept by forward.
    """

    per_sample = True

    def forward(self, x):
        x = as_float_array("ScaledTanh", x, np.result_type(np.asarray(x).dtype, np.float32))
        t = np.tanh(x * x.dtype.type(SLOPE))
        self.save_for_backward(t=t)
        return t * t.dtype.type(AMPLITUDE)

    def backward(self, dout, need_input_grad=True):
        t = self.saved()["t"]
        if not need_input_grad:
            return None
        dout = check_dout("ScaledTanh", dout, t.shape, t.dtype)
        return dout * ((1 - t * t) * t.dtype.type(AMPLITUDE * SLOPE))

    def extra_repr(self):
        return f"amplitude={AMPLITUDE}, slope={SLOPE:.6g}"


def connection_mask(table, in_channels):
    """(out_channels, in_channels) of 0/1: ``mask[o, c] = 1`` if output map o takes input map c."""
    mask = np.zeros((len(table), in_channels))
    for o, inputs in enumerate(table):
        mask[o, list(inputs)] = 1
    return mask


class PartialConv2d(Conv2d):
    """A ``Conv2d`` whose output map ``o`` sees only the input maps ``table[o]``: C3 of LeNet-5.

    ``y = conv2d(x, W * M) + b`` with the fixed 0/1 mask ``M[o, c, :, :] = [c in table[o]]``.
    Weights off the table stay 0 from the start, and since the mask multiplies their gradient too,
    training leaves them at 0: C3 has 60 x 25 = 1,500 trainable weights and 16 biases (the paper's
    1,516 parameters). The state dict keeps PyTorch's full (C_out, C_in, kh, kw) weight.

    Computed as page 4 of the study path does: one im2col, one product with the masked weight::

        Y = col @ (W * M)2^T + b;   dL/dW = (dY^T @ col) * M;   dL/dx = col2im(dY @ (W * M)2)
    """

    def __init__(self, table, in_channels, kernel_size, dtype=np.float32, rng=None):
        super().__init__(in_channels, len(table), kernel_size, dtype=dtype, rng=rng)
        if any(not inputs or min(inputs) < 0 or max(inputs) >= in_channels for inputs in table):
            raise ValueError(f"PartialConv2d: every table entry must name input maps in [0, {in_channels}), "
                             f"got {table}")
        self.table = tuple(tuple(int(c) for c in inputs) for inputs in table)
        # A constant of the architecture: not in the state dict, but converted by astype with the weight.
        self.register_buffer("mask", connection_mask(self.table, in_channels)[:, :, None, None].astype(dtype),
                             persistent=False)
        self.weight.data *= self.mask

    def _masked_weight_rows(self):
        return (self.weight.data * self.mask).reshape(self.out_channels, -1)

    def forward(self, x):
        x = as_float_array("PartialConv2d", x, self.weight.dtype, ndim=4)
        out_h, out_w = self.output_size(x.shape)
        col = ops.im2col(x, *self.kernel_size, *self.stride, *self.padding)
        out = col @ self._masked_weight_rows().T + self.bias.data
        out = np.ascontiguousarray(out.reshape(x.shape[0], out_h, out_w, self.out_channels).transpose(0, 3, 1, 2))
        self.save_for_backward(col=col, x_shape=x.shape, out_shape=out.shape)
        return out

    def backward(self, dout, need_input_grad=True):
        saved = self.saved()
        col = saved["col"]
        dout = check_dout("PartialConv2d", dout, saved["out_shape"], self.weight.dtype)
        dout_rows = dout.transpose(0, 2, 3, 1).reshape(-1, self.out_channels)
        if self.weight.requires_grad:
            self.weight.grad += (dout_rows.T @ col).reshape(self.weight.shape) * self.mask
        if self.bias.requires_grad:
            self.bias.grad += dout_rows.sum(axis=0)
        if not need_input_grad:
            return None
        return ops.col2im(dout_rows @ self._masked_weight_rows(), saved["x_shape"], *self.kernel_size, *self.stride,
                          *self.padding)

    def extra_repr(self):
        return f"{super().extra_repr()}, connections={int(self.mask.sum())}"


class LeNet1998(Sequential):
    """LeNet-5 as the 1998 paper describes it, for 32x32 inputs (MNIST's 28x28 in a 2-pixel border).

    Shape: x (N, 1, 32, 32) -> logits (N, 10)::

        C1  Conv 1->6, 5x5              (N, 6, 28, 28)   + squash
        S2  Subsampling 2x2, 6 maps     (N, 6, 14, 14)   + squash
        C3  Conv 6->16, 5x5, table I    (N, 16, 10, 10)  + squash
        S4  Subsampling 2x2, 16 maps    (N, 16, 5, 5)    + squash
        C5  Conv 16->120, 5x5           (N, 120, 1, 1)   + squash  -> flatten (N, 120)
        F6  Linear 120->84              + squash
        out Linear 84->10               logits (softmax in the loss, or in ``predict``)

    ``squash`` is ``ScaledTanh``. State dict keys: ``C1.weight``, ``C1.bias``, ``S2.weight``, ...,
    ``out.bias``: 60,850 trainable parameters (C3's 900 off-table weights are stored as zeros).

    Init: uniform in +-2.4 / F_i, F_i the number of inputs of the unit the weight or bias feeds:
    25 for C1, 25 x |table[o]| for C3's map o, 400 for C5, 120 for F6, 84 for out, and 4 for S2 and
    S4 (a window of four, summed in the paper: ``Subsampling`` averages, so its weight is four times
    the paper's coefficient, uniform in +-2.4).
    """

    digit_shape = (28, 28)    # what ``preprocess`` takes: one MNIST digit
    input_shape = (1, 32, 32)  # what the network reads: the digit in a 2-pixel border
    stages = STAGES

    def __init__(self, seed=None, dtype=np.float32, normalization=None):
        # rng=0: the layers' own init is replaced by the paper's, drawn from ``seed`` below.
        super().__init__(OrderedDict([
            ("C1", Conv2d(1, 6, 5, dtype=dtype, rng=0)),
            ("squash1", ScaledTanh()),
            ("S2", Subsampling(6, 2, dtype=dtype)),
            ("squash2", ScaledTanh()),
            ("C3", PartialConv2d(C3_TABLE, 6, 5, dtype=dtype, rng=0)),
            ("squash3", ScaledTanh()),
            ("S4", Subsampling(16, 2, dtype=dtype)),
            ("squash4", ScaledTanh()),
            ("C5", Conv2d(16, 120, 5, dtype=dtype, rng=0)),
            ("squash5", ScaledTanh()),
            ("flatten", Flatten()),
            ("F6", Linear(120, 84, dtype=dtype, rng=0)),
            ("squash6", ScaledTanh()),
            ("out", Linear(84, 10, dtype=dtype, rng=0)),
        ]))
        self._paper_init(make_rng(seed))
        self.normalization = dict(normalization or PAPER_NORMALIZATION)
        self.metadata = {}

    def fan_ins(self):
        """``{parameter name: F_i}``, the fan-in of the unit each weight and bias feeds (an array for C3)."""
        c3_fan_in = 25.0 * np.array([len(inputs) for inputs in C3_TABLE])
        fan_in = {"C1": 25, "S2": 4, "C3": c3_fan_in, "S4": 4, "C5": 400, "F6": 120, "out": 84}
        return {name: fan_in[name.split(".")[0]] for name, _ in self.named_parameters()}

    def _paper_init(self, rng):
        """Every parameter uniform in +-2.4 / F_i, drawn in state-dict order from ``rng``."""
        fan_ins = self.fan_ins()
        for name, p in self.named_parameters():
            layer = name.split(".")[0]
            bound = INIT_BOUND / np.asarray(fan_ins[name], dtype=np.float64)
            if layer == "C3" and name.endswith("weight"):
                bound = bound[:, None, None, None] * self.C3.mask
            elif layer in ("S2", "S4") and name.endswith("weight"):
                bound = bound * 4  # the average's coefficient is four times the sum's
            p.data[...] = rng.uniform(-1, 1, size=p.shape) * bound

    def preprocess(self, images):
        """Raw pixels -> the paper's input (N, 1, 32, 32): normalized, then a 2-pixel border of background.

        ``images``: (N, 28, 28), (N, 1, 28, 28) or one (28, 28) image; integer dtypes are pixels
        0..255, floating dtypes intensities in [0, 1] (white ink on black, as MNIST). The border
        takes the value of a 0 pixel, -0.1 with the paper's normalization.
        """
        # LeNet5's checks and normalization (it reads only self.normalization and C1's dtype), then the border.
        x = LeNet5.preprocess(self, images)
        background = normalization_table(self.normalization["mean"], self.normalization["std"])[0]
        return np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)), constant_values=background)

    def predict(self, images):
        """Class probabilities (N, 10), rows summing to 1; eval mode only, as ``LeNet5.predict``."""
        if self.training:
            raise RuntimeError("LeNet1998.predict: call model.eval() first (predict must not disturb training state)")
        return softmax(self.forward(self.preprocess(images)), axis=1)
