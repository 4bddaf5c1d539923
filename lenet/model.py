"""LeNet5 as in the original experiment, composed from ``nn`` layers."""

import numpy as np

from data.normalize import NORMALIZATION, normalize
from nn.activation import ReLU
from nn.backend import NUMBA_AVAILABLE, get_backend
from nn.checks import as_float_array, check_dout
from nn.conv import Conv2d
from nn.flatten import Flatten
from nn.init import make_rng
from nn.linear import Linear
from nn.loss import softmax
from nn.module import Module
from nn.pool import MaxPool2d

if NUMBA_AVAILABLE:  # without numba the backend is always "numpy" and the fused path is never taken
    from nn.ops import fused

# The normalization every shipped or trained model uses unless its metadata says otherwise:
# x = (pixel / 255 - mean) / std, the MNIST training-set statistics.
DEFAULT_NORMALIZATION = NORMALIZATION


class LeNet5(Module):
    """LeNet5 for 28x28 grey digits: two conv/pool stages, then three fully connected layers.

    Shape: x (N, 1, 28, 28) -> logits (N, 10)::

        C1  Conv 1->6, 5x5     (N, 6, 24, 24)  + ReLU
        S2  MaxPool 2          (N, 6, 12, 12)
        C3  Conv 6->16, 5x5    (N, 16, 8, 8)   + ReLU
        S4  MaxPool 2          (N, 16, 4, 4)   -> flatten (N, 256)
        C5  Linear 256->120    + ReLU
        F6  Linear 120->84     + ReLU
        out Linear 84->10      logits

    The attribute names make the state dict keys ``C1.weight``, ``C1.bias``, ..., ``out.bias``,
    the keys of a PyTorch model of the original code, so its weights load here by key.
    """

    def __init__(self, seed=None, dtype=np.float32, normalization=None):
        rng = make_rng(seed)
        self.C1 = Conv2d(1, 6, 5, dtype=dtype, rng=rng)
        self.relu1 = ReLU()
        self.S2 = MaxPool2d(2)
        self.C3 = Conv2d(6, 16, 5, dtype=dtype, rng=rng)
        self.relu3 = ReLU()
        self.S4 = MaxPool2d(2)
        self.flatten = Flatten()
        self.C5 = Linear(16 * 4 * 4, 120, dtype=dtype, rng=rng)
        self.relu5 = ReLU()
        self.F6 = Linear(120, 84, dtype=dtype, rng=rng)
        self.relu6 = ReLU()
        self.out = Linear(84, 10, dtype=dtype, rng=rng)
        self.normalization = dict(normalization or DEFAULT_NORMALIZATION)
        self.metadata = {}

    def _layers(self):
        return list(self.children())

    def forward(self, x):
        """x (N, 1, 28, 28) -> logits (N, 10): the layers above, in order.

        On the numba backend the same computation runs as five fused kernels (conv + ReLU + pool
        twice, then the three linear layers, each with its ReLU); on the NumPy backend layer by
        layer. The tests check that both give the same result.
        """
        if get_backend() != "numba" or not self._fusable():
            self._save_for_backward(fused=None)
            for layer in self._layers():
                x = layer(x)
            return x
        return self._forward_fused(x)

    def backward(self, dout, need_input_grad=True):
        """d loss / d logits (N, 10) -> d loss / d x (N, 1, 28, 28), accumulating every parameter's grad.

        ``need_input_grad=False`` skips the gradient with respect to the images, which training
        never uses (it is a full convolution through C1), and returns None.
        """
        saved = self._saved()["fused"]
        if saved is not None:
            return self._backward_fused(dout, saved, need_input_grad)
        for layer in reversed(self._layers()):
            if layer is self.C1:
                return layer.backward(dout, need_input_grad=need_input_grad)
            dout = layer.backward(dout)
        return dout

    # -- the fused path (numba backend) -------------------------------------------------------------
    def _fusable(self):
        """The fused kernels take stride-1, unpadded convolutions (LeNet5's, unless a layer was replaced)."""
        return all(conv.stride == (1, 1) and conv.padding == (0, 0) for conv in (self.C1, self.C3))

    def _forward_fused(self, x):
        x = as_float_array("LeNet5", x, self.C1.weight.dtype, ndim=4)
        training = self.training
        c1, c3, c5, f6, out = self.C1, self.C3, self.C5, self.F6, self.out
        bias = [None if layer.bias is None else layer.bias.data for layer in (c1, c3, c5, f6, out)]
        s2, s4 = self.S2, self.S4
        # Each stage checks its input with its layers' own checks and messages, as layer by layer:
        # the compiled kernels do no bounds checking.
        s2._check_size(*c1._output_size(x))
        p2, argmax2 = fused.conv_relu_pool_forward(x, c1.weight.data, bias[0], s2.kernel_size, s2.stride, training)
        s4._check_size(*c3._output_size(p2))
        p4, argmax4 = fused.conv_relu_pool_forward(p2, c3.weight.data, bias[1], s4.kernel_size, s4.stride, training)
        flat = p4.reshape(len(p4), -1)
        c5._check_features(flat)
        h5 = fused.linear_forward(flat, c5.weight.data, bias[2], relu=True)
        f6._check_features(h5)
        h6 = fused.linear_forward(h5, f6.weight.data, bias[3], relu=True)
        out._check_features(h6)
        logits = fused.linear_forward(h6, out.weight.data, bias[4])
        if training:
            for layer in self._layers():  # their own caches would be stale: backward goes through ours
                layer.__dict__.pop("_cache", None)
            self._save_for_backward(fused=dict(x=x, p2=p2, argmax2=argmax2, p4=p4, argmax4=argmax4,
                                               flat=flat, h5=h5, h6=h6, logits=logits))
        return logits

    def _backward_fused(self, dout, s, need_input_grad):
        dout = check_dout("LeNet5", dout, s["logits"].shape, self.C1.weight.dtype)
        buffers = self.__dict__.setdefault("_buffers", {"C1": {}, "C3": {}})  # scratch kept across steps
        c1, c3, c5, f6, out = self.C1, self.C3, self.C5, self.F6, self.out

        def grads(layer):
            return layer.weight.grad, None if layer.bias is None else layer.bias.grad

        d = fused.linear_backward(dout, s["h6"], s["logits"], out.weight.data, *grads(out))
        d = fused.linear_backward(d, s["h5"], s["h6"], f6.weight.data, *grads(f6), relu=True)
        d = fused.linear_backward(d, s["flat"], s["h5"], c5.weight.data, *grads(c5), relu=True)
        d = fused.conv_relu_pool_backward(d.reshape(s["p4"].shape), s["p2"], s["p4"], s["argmax4"], c3.weight.data,
                                          *grads(c3), self.S4.kernel_size, self.S4.stride, buffers=buffers["C3"])
        return fused.conv_relu_pool_backward(d, s["x"], s["p2"], s["argmax2"], c1.weight.data, *grads(c1),
                                             self.S2.kernel_size, self.S2.stride, need_input_grad=need_input_grad,
                                             buffers=buffers["C1"])

    def preprocess(self, images):
        """Raw pixels -> normalized float NCHW input, ``(pixel / 255 - mean) / std``.

        ``images``: (N, 28, 28), (N, 1, 28, 28) or one (28, 28) image; integer dtypes are pixel
        values 0..255, floating dtypes are intensities in [0, 1] (white ink on black, as MNIST).
        Integer pixels go through the same lookup table as in training, so a digit gets exactly
        the input it got there.
        """
        images = np.asarray(images)
        integer = np.issubdtype(images.dtype, np.integer)
        if images.dtype == bool or not (integer or np.issubdtype(images.dtype, np.floating)):
            raise TypeError(f"LeNet5.predict: expected numeric pixels, got dtype {images.dtype}")
        if images.shape == (28, 28) or (images.ndim == 3 and images.shape[1:] == (28, 28)):
            images = images.reshape(-1, 1, 28, 28)
        if images.ndim != 4 or images.shape[1:] != (1, 28, 28):
            raise ValueError(f"LeNet5.predict: expected images of shape (N, 28, 28), (N, 1, 28, 28) "
                             f"or (28, 28), got {images.shape}")
        mean, std = self.normalization["mean"], self.normalization["std"]
        if integer:
            if images.size and (images.min() < 0 or images.max() > 255):
                raise ValueError(f"LeNet5.predict: integer pixels must be in 0..255, "
                                 f"got values from {images.min()} to {images.max()}")
            x = normalize(images.astype(np.uint8, copy=False), mean, std)
        else:
            x = (images.astype(np.float64) - mean) / std
        return x.astype(self.C1.weight.dtype, copy=False)

    def predict(self, images):
        """Class probabilities (N, 10), rows summing to 1 (a real softmax).

        Runs in eval mode and stores nothing on the model, so threads may share one model.
        """
        if self.training:
            raise RuntimeError("LeNet5.predict: call model.eval() first (predict must not disturb training state)")
        return softmax(self.forward(self.preprocess(images)), axis=1)
