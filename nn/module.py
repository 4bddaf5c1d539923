"""``Module``, the base of every layer and network (``Sequential`` lives in ``nn.sequential``).

The contract every layer follows (as in micrograd and Chainer):

* ``forward(x)`` computes the output and, in training mode only, keeps what ``backward`` needs.
  In eval mode it stores nothing on the module, so many threads may share one model for inference.
* ``backward(dout, need_input_grad=True)`` takes d loss / d output, *accumulates* d loss / d
  parameter into each ``param.grad`` and returns d loss / d input. With ``need_input_grad=False``
  it skips that last gradient and returns None: the first layer of a network may, since nobody
  needs d loss / d images (for a convolution it is the costliest of its three products).
"""

import copy
from collections import OrderedDict, namedtuple

import numpy as np

from .parameter import Parameter

LoadResult = namedtuple("LoadResult", ["missing_keys", "unexpected_keys"])


class BackwardBeforeForwardError(RuntimeError, ValueError):
    """``backward`` was called with no training-mode ``forward`` to differentiate.

    A RuntimeError as in PyTorch, and a ValueError like every other misuse of a layer.
    """


class Module:
    """Base class: finds its parameters and sub-modules among its attributes, in definition order."""

    training = True

    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def backward(self, dout, need_input_grad=True):
        raise NotImplementedError(f"{type(self).__name__} does not define backward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # -- training-mode cache -------------------------------------------------------------------
    def _save_for_backward(self, **values):
        """Keep what backward needs, in training mode only (eval-mode forward stays stateless)."""
        if self.training:
            self._cache = values

    def _forget_saved(self):
        """Drop what forward kept: a stage that computed this layer fused with others keeps it instead."""
        self.__dict__.pop("_cache", None)

    def _saved(self):
        cache = self.__dict__.get("_cache")
        if cache is None:
            raise BackwardBeforeForwardError(
                f"{type(self).__name__}.backward() called before forward() in training mode; "
                "call model.train() and run forward first (eval-mode forward keeps nothing for backward)")
        return cache

    # -- tree walking ----------------------------------------------------------------------------
    def named_children(self):
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value

    def children(self):
        for _, child in self.named_children():
            yield child

    def modules(self):
        yield self
        for child in self.children():
            yield from child.modules()

    def named_parameters(self, prefix=""):
        """Yield ``(dotted_name, Parameter)`` pairs, e.g. ``("C1.weight", p)``, in definition order."""
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield prefix + name, value
            elif isinstance(value, Module):
                yield from value.named_parameters(prefix + name + ".")

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def zero_grad(self):
        for p in self.parameters():
            p.zero_grad()

    # -- modes and dtypes -----------------------------------------------------------------------
    def train(self, mode=True):
        for m in self.modules():
            m.training = bool(mode)
            if not mode:
                m.__dict__.pop("_cache", None)
        return self

    def eval(self):
        return self.train(False)

    def astype(self, dtype):
        """Convert every parameter (value and gradient) to ``dtype``; returns ``self``."""
        dtype = np.dtype(dtype)
        if not np.issubdtype(dtype, np.floating):
            raise TypeError(f"{type(self).__name__}.astype: expected a floating dtype, got {dtype}")
        for p in self.parameters():
            p.astype(dtype)
        for m in self.modules():
            m.__dict__.pop("_cache", None)
        return self

    def copy(self):
        """A deep copy: same values, independent arrays."""
        return copy.deepcopy(self)

    # -- state dict ------------------------------------------------------------------------------
    def state_dict(self):
        """An ordered ``{dotted_name: array copy}``, with PyTorch's key names and layouts."""
        return OrderedDict((name, p.data.copy()) for name, p in self.named_parameters())

    def load_state_dict(self, state, strict=True):
        """Copy the values of ``state`` into the existing parameters, cast to their dtype.

        With ``strict`` a missing or unexpected key is an error; a shape mismatch always is.
        Nothing is changed unless every check passes. Returns ``(missing_keys, unexpected_keys)``.
        """
        if not hasattr(state, "keys"):
            raise TypeError(f"load_state_dict: expected a mapping of name -> array, got {type(state).__name__}")
        own = OrderedDict(self.named_parameters())
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state.keys() if k not in own]
        problems = []
        if strict and missing:
            problems.append(f"missing keys: {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys: {unexpected}")
        values = {}
        for name, p in own.items():
            if name not in state:
                continue
            value = np.asarray(state[name])
            if not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
                problems.append(f"{name}: expected a numeric array, got dtype {value.dtype}")
            elif value.shape != p.shape:
                problems.append(f"{name}: expected shape {p.shape}, got {value.shape}")
            else:
                values[name] = value
        if problems:
            raise ValueError(f"{type(self).__name__}.load_state_dict: " + "; ".join(problems))
        for name, value in values.items():
            np.copyto(own[name].data, value, casting="unsafe")
        return LoadResult(missing, unexpected)

    # -- display ---------------------------------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        children = list(self.named_children())
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not children:
            return head + ")"
        lines = [head]
        for name, child in children:
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return "\n".join(lines) + "\n)"


def __getattr__(name):
    # ``Sequential`` lived here before it moved to nn.sequential (it imports the layers, which import
    # this module); ``from nn.module import Sequential`` keeps working.
    if name == "Sequential":
        from .sequential import Sequential
        return Sequential
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
