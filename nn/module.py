"""``Module``, the base of every layer and network (the containers live in ``nn.containers``).

The contract every layer follows (as in micrograd, Chainer and cs231n's layers):

* ``forward(x)`` computes the output and, in training mode only, keeps what ``backward`` needs with
  ``self.save_for_backward(name=array, ...)``. In eval mode it stores nothing on the module, so
  many threads may share one model for inference.
* ``backward(dout)`` reads that back with ``self.saved()``, *accumulates* d loss / d parameter into
  each ``param.grad`` whose ``param.requires_grad`` is True, and returns d loss / d input. A layer
  may also accept ``backward(dout, need_input_grad=True)``: with False it skips that last gradient
  and returns None (the first layer of a network may, since nobody needs d loss / d images).
  Containers pass ``need_input_grad`` only to layers whose ``backward`` accepts it.

What a module holds, and what walks it:

* ``Parameter`` attributes: trained; ``parameters()``, ``state_dict()``, the optimizer.
* buffers (``register_buffer``): arrays that are state but not trained, e.g. a running mean;
  ``buffers()``, ``state_dict()`` (unless ``persistent=False``), ``astype()``, ``repr``.
* ``Module`` attributes: children, walked by all of the above. Modules in a list or dict go in an
  ``nn.ModuleList`` or ``nn.ModuleDict``; in a plain list, tuple or dict they would be invisible
  to all of it, so that is refused with a ``TypeError`` naming the attribute.

A module (or a parameter) that appears twice in the tree, e.g. a layer applied twice in one forward,
is walked once by ``modules()`` and ``parameters()``: the optimizer steps a shared parameter once.
``state_dict()`` lists it under each of its names, as PyTorch's does.
"""

import copy
import functools
import inspect
import itertools
import threading
from collections import OrderedDict, namedtuple

import numpy as np

from .parameter import Parameter

LoadResult = namedtuple("LoadResult", ["missing_keys", "unexpected_keys"])

SAVED_ATTRIBUTE = "_saved_for_backward"  # where a module keeps what its backward needs (training only)
PLAN_ATTRIBUTE = "_plan"  # how the execution layer runs this module on the numba backend (nn.execution.planner)


class BackwardBeforeForwardError(RuntimeError, ValueError):
    """``backward`` was called with no training-mode ``forward`` to differentiate.

    A RuntimeError as in PyTorch, and a ValueError like every other misuse of a layer.
    """


class _ForwardPass(threading.local):
    """The forward pass under way in this thread; ``with _forward_pass:`` around each ``module(x)``.

    Calls nested inside one outermost call share its pass: a module called twice in one pass keeps
    what both calls saved and its backward uses them last first, as the backward pass meets them;
    a new pass replaces them, so nothing piles up.
    """

    depth = 0
    number = None

    def __enter__(self):
        if self.depth == 0:
            self.number = next(_pass_numbers)
        self.depth += 1

    def __exit__(self, *exc_info):
        self.depth -= 1


_pass_numbers = itertools.count()
_forward_pass = _ForwardPass()


class _SavedPerCall(list):
    """What one module saved in one forward pass, a dict per call, oldest first."""

    def __init__(self, pass_number):
        super().__init__()
        self.pass_number = pass_number


def _backward_entry(reference):
    """``backward`` as a module's callers see it: the backward of whatever computed its latest forward.

    That is the class's own ``backward`` (``reference``) unless the execution layer computed the
    forward in a compiled plan, whose saved state then runs the plan's backward. Either way it
    takes ``need_input_grad``, which is passed on only if ``reference`` takes it too.
    """
    takes_flag = accepts_need_input_grad(reference)

    @functools.wraps(reference)
    def backward(self, *args, need_input_grad=True, **kwargs):
        per_call = self.__dict__.get(SAVED_ATTRIBUTE)
        if per_call and not isinstance(per_call[-1], dict):
            return self._take_saved().backward(*args, need_input_grad=need_input_grad, **kwargs)
        if takes_flag:
            return reference(self, *args, need_input_grad=need_input_grad, **kwargs)
        return reference(self, *args, **kwargs)

    return backward


def accepts_need_input_grad(backward):
    """True if ``backward`` takes ``need_input_grad`` (a layer of one's own may take ``dout`` only)."""
    parameters = inspect.signature(backward).parameters
    return "need_input_grad" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def modules_inside(value):
    """The modules a plain list, tuple, set or dict attribute holds (those would be invisible to ``parameters()``)."""
    if isinstance(value, dict):
        value = value.values()
    elif not isinstance(value, (list, tuple, set, frozenset)):
        return []
    return [v for v in value if isinstance(v, Module)]


class Module:
    """Base class: finds its parameters, buffers and sub-modules among its attributes, in definition order."""

    training = True
    # True if each sample's output depends on that sample alone (no batch statistics): a large eval
    # batch may then go through in slices (nn.execution). A layer of one's own may declare it.
    per_sample = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "backward" in vars(cls):
            cls.backward = _backward_entry(vars(cls)["backward"])

    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def backward(self, dout, need_input_grad=True):
        raise NotImplementedError(f"{type(self).__name__} does not define backward()")

    def __call__(self, *args, **kwargs):
        """``forward``, as the execution layer runs it: the reference, or compiled stages on the numba backend."""
        from .execution import dispatch  # here, not at the top: the execution layer imports the layers

        with _forward_pass:
            return dispatch.forward(self, *args, **kwargs)

    def __setattr__(self, name, value):
        if isinstance(value, Module) or isinstance(self.__dict__.get(name), Module):
            self.__dict__.pop(PLAN_ATTRIBUTE, None)  # a child set or replaced: plan again
        buffers = self.__dict__.get("_buffers")
        if buffers is not None and name in buffers:
            buffers[name] = self._check_buffer(name, value)
            return
        inside = modules_inside(value)
        if inside:
            kind = "ModuleDict" if isinstance(value, dict) else "ModuleList"
            raise TypeError(f"{type(self).__name__}.{name}: a plain {type(value).__name__} holding "
                            f"{type(inside[0]).__name__} modules would be invisible to parameters(), state_dict() "
                            f"and printing; use nn.{kind}")
        object.__setattr__(self, name, value)

    def __getattr__(self, name):
        # Only called when ordinary lookup fails: buffers live in ``_buffers``, not in ``__dict__``.
        buffers = self.__dict__.get("_buffers")
        if buffers is not None and name in buffers:
            return buffers[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name):
        if isinstance(self.__dict__.get(name), Module):
            self.__dict__.pop(PLAN_ATTRIBUTE, None)
        buffers = self.__dict__.get("_buffers")
        if buffers is not None and name in buffers:
            del buffers[name]
            self.__dict__["_non_persistent_buffers"].discard(name)
        else:
            object.__delattr__(self, name)

    # -- what forward keeps for backward (training mode only) -----------------------------------------
    def save_for_backward(self, **values):
        """Keep ``values`` for ``backward``, in training mode only: eval-mode forward stays stateless."""
        if self.training:
            self.keep_saved(values)

    def keep_saved(self, saved):
        """Keep ``saved`` for the next backward: the dict of ``save_for_backward``, or what the execution
        layer saved of a compiled forward (whose own ``backward`` then runs). An earlier forward pass's go."""
        number = _forward_pass.number if _forward_pass.depth else None  # a bare .forward() is a pass of its own
        per_call = self.__dict__.get(SAVED_ATTRIBUTE)
        if per_call is None or number is None or per_call.pass_number != number:
            per_call = self.__dict__[SAVED_ATTRIBUTE] = _SavedPerCall(number)
        per_call.append(saved)

    def _take_saved(self):
        per_call = self.__dict__.get(SAVED_ATTRIBUTE)
        if not per_call:
            raise BackwardBeforeForwardError(
                f"{type(self).__name__}.backward() called before forward() in training mode; "
                "call model.train() and run forward first (eval-mode forward keeps nothing for backward)")
        return per_call.pop() if len(per_call) > 1 else per_call[0]

    def saved(self):
        """What the latest forward not yet differentiated saved, the dict ``save_for_backward`` made.

        A module called twice in one forward pass saved twice; each ``backward`` takes the latest
        and the one before it is next, as the backward pass meets the calls in reverse. The last
        one stays, so a second backward of one forward sees it too.
        """
        return self._take_saved()

    def forget_saved(self):
        """Drop everything forward saved (``train``/``eval``/``astype`` do it for the whole tree)."""
        self.__dict__.pop(SAVED_ATTRIBUTE, None)

    # -- buffers ---------------------------------------------------------------------------------
    def register_buffer(self, name, array, persistent=True):
        """Add a buffer: an array that is state of the module but not a trained ``Parameter``.

        As in PyTorch: ``self.name`` reads and assigns it; ``buffers()`` and ``astype()`` include
        it, and ``state_dict()`` (so ``nn.save``/``nn.load``) too unless ``persistent`` is False.
        ``array`` is a NumPy array, or None for a buffer not set yet.
        """
        if not isinstance(name, str) or not name.isidentifier():
            raise TypeError(f"{type(self).__name__}.register_buffer: expected a name that is an identifier, got {name!r}")
        buffers = self.__dict__.setdefault("_buffers", OrderedDict())
        if name not in buffers and (name in self.__dict__ or hasattr(type(self), name)):
            raise KeyError(f"{type(self).__name__}.register_buffer: attribute {name!r} already exists")
        buffers[name] = self._check_buffer(name, array)
        non_persistent = self.__dict__.setdefault("_non_persistent_buffers", set())
        (non_persistent.discard if persistent else non_persistent.add)(name)

    def _check_buffer(self, name, array):
        """``array`` as a buffer's value: an array (a NumPy scalar, as ``count + 1`` gives, becomes a 0-d one) or None."""
        if isinstance(array, np.generic):
            return np.asarray(array)
        if array is not None and not isinstance(array, np.ndarray):
            raise TypeError(f"{type(self).__name__}.{name}: a buffer is a NumPy array or None, "
                            f"got {type(array).__name__}")
        return array

    def _own_buffers(self, persistent_only=False):
        skip = self.__dict__.get("_non_persistent_buffers", ()) if persistent_only else ()
        return [(name, b) for name, b in self.__dict__.get("_buffers", {}).items() if b is not None and name not in skip]

    # -- tree walking ----------------------------------------------------------------------------
    def _entries(self):
        """``(name, child)`` for every module attribute, in definition order, a repeated child every time.

        A module held in a plain list, tuple, set or dict attribute after its assignment (an
        ``append``) is found here and refused, as ``__setattr__`` refuses it at assignment.
        """
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value
            elif modules_inside(value):
                self.__setattr__(name, value)  # raises the TypeError that names the attribute

    def named_children(self):
        """``(name, child)`` of the direct sub-modules, each module once."""
        seen = set()
        for name, child in self._entries():
            if id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self):
        for _, child in self.named_children():
            yield child

    def named_modules(self, prefix="", _seen=None):
        """``(dotted_name, module)`` for this module and every descendant, each module once ("" for this one)."""
        seen = set() if _seen is None else _seen
        if id(self) in seen:
            return
        seen.add(id(self))
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(prefix + ("." if prefix else "") + name, seen)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix=""):
        """``(dotted_name, Parameter)`` pairs, e.g. ``("C1.weight", p)``: each module's own in definition
        order, then its children's; a parameter shared by several modules comes once, under its first name."""
        seen = set()
        for path, m in self.named_modules(prefix.rstrip(".")):
            for name, value in vars(m).items():
                if isinstance(value, Parameter) and id(value) not in seen:
                    seen.add(id(value))
                    yield (path + "." if path else "") + name, value

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix="", persistent_only=False):
        """``(dotted_name, array)`` for every buffer of the tree (with ``persistent_only``, those state_dict holds)."""
        for path, m in self.named_modules(prefix.rstrip(".")):
            for name, value in m._own_buffers(persistent_only):
                yield (path + "." if path else "") + name, value

    def buffers(self):
        return [b for _, b in self.named_buffers()]

    def zero_grad(self):
        for p in self.parameters():
            p.zero_grad()

    def requires_grad_(self, requires_grad=True):
        """Set ``requires_grad`` on every parameter (False freezes them all); returns ``self``."""
        for p in self.parameters():
            p.requires_grad = bool(requires_grad)
        return self

    # -- modes and dtypes -----------------------------------------------------------------------
    def train(self, mode=True):
        for m in self.modules():
            m.training = bool(mode)
            if not mode:
                m.forget_saved()
        return self

    def eval(self):
        return self.train(False)

    def astype(self, dtype):
        """Convert every parameter (value and gradient) and floating buffer to ``dtype``; returns ``self``.

        Integer buffers (a counter) keep their dtype, as PyTorch's ``module.to(dtype)`` keeps them.
        """
        dtype = np.dtype(dtype)
        if not np.issubdtype(dtype, np.floating):
            raise TypeError(f"{type(self).__name__}.astype: expected a floating dtype, got {dtype}")
        for p in self.parameters():
            p.astype(dtype)
        for m in self.modules():
            for name, b in m._own_buffers():
                if np.issubdtype(b.dtype, np.floating):
                    m._buffers[name] = b.astype(dtype)
            m.forget_saved()
        return self

    def copy(self):
        """A deep copy: same values, independent arrays."""
        return copy.deepcopy(self)

    # -- state dict ------------------------------------------------------------------------------
    def _state_entries(self, prefix=""):
        """``(key, array)`` of the state dict: this module's parameters, then its persistent buffers, then its
        children's, as in PyTorch (a module or parameter reachable by two names is listed under both)."""
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield prefix + name, value.data
        for name, value in self._own_buffers(persistent_only=True):
            yield prefix + name, value
        for name, child in self._entries():
            yield from child._state_entries(prefix + name + ".")

    def state_dict(self):
        """An ordered ``{dotted_name: array copy}`` of parameters and persistent buffers, with PyTorch's keys."""
        return OrderedDict((name, value.copy()) for name, value in self._state_entries())

    def load_state_dict(self, state, strict=True):
        """Copy the values of ``state`` into the existing parameters and buffers, cast to their dtype.

        With ``strict`` a missing or unexpected key is an error; a shape mismatch always is.
        Nothing is changed unless every check passes. Returns ``(missing_keys, unexpected_keys)``.
        """
        if not hasattr(state, "keys"):
            raise TypeError(f"load_state_dict: expected a mapping of name -> array, got {type(state).__name__}")
        own = OrderedDict(self._state_entries())
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state.keys() if k not in own]
        problems = []
        if strict and missing:
            problems.append(f"missing keys: {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys: {unexpected}")
        values = {}
        for name, target in own.items():
            if name not in state:
                continue
            value = np.asarray(state[name])
            if not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
                problems.append(f"{name}: expected a numeric array, got dtype {value.dtype}")
            elif value.shape != target.shape:
                problems.append(f"{name}: expected shape {target.shape}, got {value.shape}")
            else:
                values[name] = value
        if problems:
            raise ValueError(f"{type(self).__name__}.load_state_dict: " + "; ".join(problems))
        for name, value in values.items():
            np.copyto(own[name], value, casting="unsafe")
        return LoadResult(missing, unexpected)

    # -- display ---------------------------------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"({name}): buffer(shape={b.shape}, dtype={b.dtype})" for name, b in self._own_buffers()]
        lines += [f"({name}): " + repr(child).replace("\n", "\n  ") for name, child in self._entries()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return "\n".join([head] + [f"  {line}" for line in lines]) + "\n)"
