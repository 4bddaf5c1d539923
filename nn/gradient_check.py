"""Finite-difference gradient checking, for users' own layers and for ours.

``gradcheck`` compares the analytic gradients a module's ``backward`` produces, for its input and
every parameter, against central differences computed in float64::

    dL/dθ_i ≈ (L(θ + eps e_i) - L(θ - eps e_i)) / (2 eps)

with the scalar ``L = sum(forward(x) * R)`` for a fixed random ``R``, so that ``backward(R)`` must
return exactly ``dL/dx``. An entry passes when ``|analytic - numeric| <= atol + rtol * |numeric|``
(the defaults are ``torch.autograd.gradcheck``'s).

Besides the values, it checks what ``torch.autograd.gradcheck`` checks about the contract:

* every returned gradient has the shape and the (float64) dtype of its tensor;
* ``backward`` *accumulates*: a second forward/backward without ``zero_grad`` doubles every
  parameter gradient (a ``grad = ...`` instead of ``grad += ...`` does not), and returns the same
  input gradient again;
* each ``backward`` call gets its own copy of ``R``, so a layer may use ``dout`` in place;
* ``backward(dout, need_input_grad=False)``, where the module accepts it, returns None and gives
  the same parameter gradients.

A failure names the tensor, the index of its worst entry and the analytic and numeric values there.

``python -m nn.check_gradients`` checks every layer, the loss and a small composed network and prints a table.
"""

from dataclasses import dataclass

import numpy as np

from .module import Module, accepts_need_input_grad


class GradcheckError(RuntimeError):
    """Raised by ``gradcheck(..., raise_exception=True)`` when a check fails; ``results`` holds every result."""

    def __init__(self, message, results):
        super().__init__(message)
        self.results = results


@dataclass
class GradcheckResult:
    name: str           # what was checked, e.g. "Conv2d(stride=2)"
    tensor: str         # "input", "input 0", or a parameter name like "weight"
    shape: tuple
    max_abs_err: float
    max_rel_err: float
    checked: int        # how many entries were compared
    passed: bool
    worst_index: tuple = None   # the index, in ``shape``, of the entry furthest outside (or least inside) the tolerance
    analytic: float = None      # the backward's value at ``worst_index``
    numeric: float = None       # the central difference at ``worst_index``
    problems: tuple = ()        # contract violations: shape, dtype, accumulation, need_input_grad
    values_passed: bool = True  # every compared entry within the tolerance (``passed`` also needs no problems)

    def report(self):
        """One line per finding: the values at the worst entry, then each contract violation."""
        head = f"{self.name}: {self.tensor} {'PASS' if self.passed else 'FAIL'}"
        lines = []
        if not self.values_passed:
            lines.append(f"{head}: worst entry {_format_index(self.worst_index)}: analytic {self.analytic:.10g}, "
                         f"numeric {self.numeric:.10g} "
                         f"(abs err {self.max_abs_err:.2e}, rel err {self.max_rel_err:.2e})")
        lines += [f"{head}: {problem}" for problem in self.problems]
        return "\n".join(lines or [head])


def _is_float(a):
    return isinstance(a, np.ndarray) and np.issubdtype(a.dtype, np.floating)


def _numeric_grad(objective, array, indices, eps):
    """Central differences of ``objective()`` w.r.t. the entries ``indices`` of ``array`` (in place, restored)."""
    flat = array.reshape(-1)  # a view: perturbing it perturbs what the objective reads
    grad = np.empty(len(indices))
    for k, i in enumerate(indices):
        original = flat[i]
        flat[i] = original + eps
        plus = objective()
        flat[i] = original - eps
        minus = objective()
        flat[i] = original
        grad[k] = (plus - minus) / (2 * eps)
    return grad


class FunctionPair(Module):
    """Wraps a ``forward(*inputs)`` function and its ``backward(dout)`` so gradcheck can check them."""

    def __init__(self, forward, backward):
        self._forward_fn, self._backward_fn = forward, backward

    def forward(self, *inputs):
        return self._forward_fn(*inputs)

    def backward(self, dout):
        return self._backward_fn(dout)


def _as_tuple(grads):
    return grads if isinstance(grads, tuple) else (grads,)


def _mismatch(got, expected, atol, rtol):
    """(index of the entry furthest outside ``atol + rtol * |expected|``, or None if all are inside)."""
    excess = np.abs(got - expected) - (atol + rtol * np.abs(expected))
    if excess.size == 0 or excess.max() <= 0:
        return None
    return np.unravel_index(int(np.argmax(excess)), got.shape)


def _format_index(index):
    return "[" + ", ".join(str(int(i)) for i in index) + "]"


def _contract_problems(label, array, grad):
    """Shape and dtype of a returned gradient against its tensor's; a list of messages (empty if fine)."""
    if not isinstance(grad, np.ndarray):
        return [f"backward returned {type(grad).__name__} as its gradient, expected an array of shape {array.shape}"]
    problems = []
    if grad.shape != array.shape:
        problems.append(f"gradient of shape {grad.shape}, expected the {label}'s shape {array.shape}")
    if grad.dtype != array.dtype:
        problems.append(f"gradient of dtype {grad.dtype}, expected the {label}'s dtype {array.dtype}")
    return problems


def _check_accumulation(forward_backward, labels, input_grads, parameters, param_grads, problems, atol, rtol):
    """A second pass without ``zero_grad`` must double every parameter gradient and return the same input gradient."""
    again = forward_backward()
    for label, first, second in zip(labels, input_grads, again):
        if isinstance(first, np.ndarray) and isinstance(second, np.ndarray) and first.shape == second.shape:
            worst = _mismatch(second, first, atol, rtol)
            if worst is not None:
                problems[label].append(f"a second backward returned another input gradient: at {_format_index(worst)} "
                                       f"{second[worst]:.10g}, the first gave {first[worst]:.10g}")
    for (pname, p), first in zip(parameters, param_grads):
        worst = _mismatch(p.grad, 2 * first, atol, rtol) if p.grad.shape == first.shape else None
        if worst is not None:
            problems[pname].append(
                f"gradients do not accumulate: after two backward calls {pname}.grad{_format_index(worst)} is "
                f"{p.grad[worst]:.10g}, expected twice the first call's, {2 * first[worst]:.10g} "
                f"(a 'grad = ...' where 'grad += ...' belongs?)")


def _check_without_input_grad(forward_backward, labels, parameters, param_grads, problems, atol, rtol):
    """From zeroed gradients, ``need_input_grad=False`` must return None and give the same parameter gradients."""
    skipped = forward_backward(need_input_grad=False)
    if any(g is not None for g in skipped):
        for label in labels:
            problems[label].append("backward(dout, need_input_grad=False) returned a gradient; expected None")
    for (pname, p), first in zip(parameters, param_grads):
        worst = _mismatch(p.grad, first, atol, rtol) if p.grad.shape == first.shape else None
        if worst is not None:
            problems[pname].append(
                f"with need_input_grad=False, {pname}.grad{_format_index(worst)} is {p.grad[worst]:.10g}, "
                f"expected {first[worst]:.10g} as with need_input_grad=True")


def gradcheck(module, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, max_entries=None, seed=0, name=None,
              raise_exception=False):
    """Check ``module``'s analytic gradients against central finite differences in float64.

    Parameters
    ----------
    module : Module or (forward, backward) pair of functions
        Anything with ``forward(*inputs)`` and ``backward(dout)``; its parameters are checked too.
        A float64 copy is checked, so the module itself is left untouched.
    inputs : array or tuple of arrays
        Forward arguments. Floating arrays are differentiated; others (e.g. integer labels) are passed as is.
        When ``backward`` returns a tuple, its items are the gradients of the floating inputs in order.
    max_entries : int or None
        Check at most this many entries per tensor (a seeded random subset); None checks all.
    raise_exception : bool
        Raise :class:`GradcheckError`, whose message is every failure's report, instead of returning
        results that failed (``torch.autograd.gradcheck``'s option of the same name).

    Returns a list of :class:`GradcheckResult`, one per input and trainable parameter. Besides the values, a
    result fails on a gradient of the wrong shape or dtype, on parameter gradients that a second
    backward does not double (no accumulation), on an input gradient that a second backward changes,
    and, where ``backward`` takes ``need_input_grad``, on ``need_input_grad=False`` returning
    something else than None or changing the parameter gradients.
    """
    if isinstance(module, tuple) and len(module) == 2 and all(callable(f) for f in module):
        module = FunctionPair(*module)
    if not isinstance(module, Module):
        raise TypeError(f"gradcheck: expected an nn.Module or a (forward, backward) pair of functions, "
                        f"got {type(module).__name__}")
    name = name or type(module).__name__
    rng = np.random.default_rng(seed)
    model = module.copy().astype(np.float64).train()
    args = list(inputs) if isinstance(inputs, (tuple, list)) else [inputs]
    args = [np.array(a, dtype=np.float64) if _is_float(np.asarray(a)) else a for a in args]
    float_positions = [i for i, a in enumerate(args) if _is_float(a)]
    labels = ["input" if len(float_positions) == 1 else f"input {pos}" for pos in float_positions]
    parameters = [(pname, p) for pname, p in model.named_parameters() if p.requires_grad]  # frozen ones get no grad

    out = np.asarray(model(*args), dtype=np.float64)
    weights = rng.standard_normal(out.shape)

    def objective():
        return float(np.sum(np.asarray(model(*args), dtype=np.float64) * weights))

    def forward_backward(**options):
        # A fresh copy of R each time: the backward may use its dout in place.
        model(*args)
        grads = model.backward(weights.copy(), **options)
        return tuple(g.copy() if isinstance(g, np.ndarray) else g for g in _as_tuple(grads))

    model.zero_grad()
    input_grads = forward_backward()
    param_grads = [p.grad.copy() for _, p in parameters]
    problems = {label: [] for label in labels + [pname for pname, _ in parameters]}
    if len(input_grads) != len(labels):
        raise ValueError(f"gradcheck: {name}: backward returned {len(input_grads)} gradient(s), expected one per "
                         f"floating input ({len(labels)})")
    for label, pos, grad in zip(labels, float_positions, input_grads):
        problems[label] += _contract_problems(label, args[pos], grad)
    for (pname, p), grad in zip(parameters, param_grads):
        problems[pname] += _contract_problems(pname, p.data, p.grad)

    _check_accumulation(forward_backward, labels, input_grads, parameters, param_grads, problems, atol, rtol)
    if accepts_need_input_grad(getattr(model.backward, "reference", model.backward)):  # the class's own backward
        model.zero_grad()
        _check_without_input_grad(forward_backward, labels, parameters, param_grads, problems, atol, rtol)

    tensors = [(label, args[pos], grad) for label, pos, grad in zip(labels, float_positions, input_grads)]
    tensors += [(pname, p.data, grad) for (pname, p), grad in zip(parameters, param_grads)]
    results = []
    for label, array, analytic in tensors:
        comparable = isinstance(analytic, np.ndarray) and analytic.shape == array.shape
        indices = np.arange(array.size) if comparable else np.arange(0)
        if comparable and max_entries is not None and array.size > max_entries:
            indices = np.sort(rng.choice(array.size, size=max_entries, replace=False))
        numeric = _numeric_grad(objective, array, indices, eps)
        picked = np.asarray(analytic, dtype=np.float64).reshape(-1)[indices] if comparable else numeric
        error = np.abs(picked - numeric)
        allowed = atol + rtol * np.abs(numeric)
        relative = error / np.maximum(np.abs(numeric), 1e-12)
        worst = int(np.argmax(error - allowed)) if error.size else None
        values_pass = bool(np.all(error <= allowed))
        results.append(GradcheckResult(
            name=name, tensor=label, shape=tuple(array.shape),
            max_abs_err=float(error.max(initial=0.0)), max_rel_err=float(relative.max(initial=0.0)),
            checked=len(indices), passed=comparable and values_pass and not problems[label],
            worst_index=None if worst is None else tuple(int(i) for i in np.unravel_index(indices[worst], array.shape)),
            analytic=None if worst is None else float(picked[worst]),
            numeric=None if worst is None else float(numeric[worst]),
            problems=tuple(problems[label]), values_passed=values_pass))
    if raise_exception and not all(r.passed for r in results):
        raise GradcheckError(f"gradcheck: {name} failed:\n" + "\n".join(r.report() for r in results if not r.passed),
                             results)
    return results


def format_table(results):
    header = (f"{'name':<28} {'tensor':<12} {'shape':<18} {'checked':>8} {'max abs err':>12} "
              f"{'max rel err':>12}  result")
    lines = [header, "-" * len(header)]
    for r in results:
        lines.append(f"{r.name:<28} {r.tensor:<12} {str(r.shape):<18} {r.checked:>8} {r.max_abs_err:12.2e} "
                     f"{r.max_rel_err:12.2e}  {'PASS' if r.passed else 'FAIL'}")
    failures = [r.report() for r in results if not r.passed]
    return "\n".join(lines + (["", "failures:"] + failures if failures else []))


class SameMaskEveryForward(Module):
    """Runs a ``Dropout`` with its generator reset to ``seed`` before every forward.

    A finite difference compares two forward passes, which must compute the same function: with a
    fresh mask each time they would not. Reseeding makes every forward draw the same mask.
    """

    def __init__(self, dropout, seed):
        self.dropout, self.seed = dropout, seed

    def forward(self, x):
        self.dropout.rng = np.random.default_rng(self.seed)
        return self.dropout(x)

    def backward(self, dout, need_input_grad=True):
        return self.dropout.backward(dout, need_input_grad=need_input_grad)


def builtin_cases(seed=0):
    """(name, module, inputs, max_entries) for every layer, the loss and a composed network, on several shapes."""
    from .activation import LeakyReLU, ReLU, Sigmoid, Tanh
    from .avgpool import AvgPool2d
    from .batchnorm import BatchNorm1d, BatchNorm2d
    from .conv import Conv2d
    from .dropout import Dropout
    from .flatten import Flatten
    from .linear import Linear
    from .loss import CrossEntropyLoss
    from .pool import MaxPool2d
    from .sequential import Sequential
    from .subsampling import Subsampling

    rng = np.random.default_rng(seed)

    def random_subsampling(channels, rng):
        # Its init (coefficient 1, bias 0) would hide a coefficient and bias swapped in backward.
        layer = Subsampling(channels)
        layer.weight.data[...] = rng.uniform(-2, 2, channels)
        layer.bias.data[...] = rng.uniform(-1, 1, channels)
        return layer

    def random_affine(layer, rng):
        # Away from the init (weight 1, bias 0), which would hide a weight missing from dL/dx.
        layer.weight.data[...] = rng.uniform(0.5, 2, layer.num_features)
        layer.bias.data[...] = rng.uniform(-1, 1, layer.num_features)
        return layer

    def away_from_zero(shape):
        # ReLU's kink at 0 would break a finite difference: keep |x| >= 0.1.
        x = rng.uniform(0.1, 1.0, size=shape)
        return x * rng.choice([-1.0, 1.0], size=shape)

    def distinct(shape):
        # Max-pool ties would make the gradient ill-defined: a permutation has none, and
        # the spacing (1 / size) is far above eps.
        return rng.permutation(np.prod(shape)).reshape(shape) / np.prod(shape)

    return [
        ("Linear(5->3)", Linear(5, 3, rng=rng), rng.standard_normal((4, 5)), None),
        ("Linear(7->2, no bias) N=1", Linear(7, 2, bias=False, rng=rng), rng.standard_normal((1, 7)), None),
        ("ReLU", ReLU(), away_from_zero((3, 2, 4, 4)), None),
        ("Flatten", Flatten(), rng.standard_normal((2, 3, 2, 2)), None),
        ("Conv2d(3->4, k3)", Conv2d(3, 4, 3, rng=rng), rng.standard_normal((2, 3, 6, 6)), None),
        ("Conv2d(2->3, k3, s2, p1)", Conv2d(2, 3, 3, stride=2, padding=1, rng=rng),
         rng.standard_normal((2, 2, 7, 7)), None),
        ("Conv2d(1->2, k(2,3), s(1,2))", Conv2d(1, 2, (2, 3), stride=(1, 2), padding=(1, 0), rng=rng),
         rng.standard_normal((1, 1, 5, 8)), None),
        ("Conv2d(1->6, k5) N=1", Conv2d(1, 6, 5, rng=rng), rng.standard_normal((1, 1, 9, 9)), None),
        ("MaxPool2d(2)", MaxPool2d(2), distinct((2, 3, 6, 6)), None),
        ("MaxPool2d(3, stride=2)", MaxPool2d(3, stride=2), distinct((1, 2, 7, 9)), None),
        ("MaxPool2d((2,3)) N=1", MaxPool2d((2, 3)), distinct((1, 1, 4, 9)), None),
        ("CrossEntropyLoss", CrossEntropyLoss(), (rng.standard_normal((5, 10)), rng.integers(0, 10, 5)), None),
        ("CrossEntropyLoss(sum) N=1", CrossEntropyLoss("sum"), (rng.standard_normal((1, 4)), np.array([2])), None),
        # Gradients flowing through every layer type in turn. Random weights and inputs put no
        # pre-activation within eps of ReLU's kink and no two pooled values within eps of a tie.
        ("Sequential(Conv2d..Linear)",
         Sequential(Conv2d(2, 3, 3, padding=1, rng=rng), ReLU(), MaxPool2d(2), Flatten(),
                    Linear(3 * 3 * 3, 4, rng=rng)),
         rng.standard_normal((2, 2, 6, 6)), None),
        ("Sigmoid", Sigmoid(), 3 * rng.standard_normal((3, 2, 4)), None),
        ("Tanh", Tanh(), 2 * rng.standard_normal((3, 2, 4)), None),
        ("LeakyReLU(0.2)", LeakyReLU(0.2), away_from_zero((3, 2, 4, 4)), None),
        ("AvgPool2d(2)", AvgPool2d(2), rng.standard_normal((2, 3, 6, 6)), None),
        ("AvgPool2d(3, s2, p1)", AvgPool2d(3, stride=2, padding=1), rng.standard_normal((2, 2, 7, 6)), None),
        ("AvgPool2d(3, s1, p1, no pad)", AvgPool2d(3, 1, 1, count_include_pad=False),
         rng.standard_normal((1, 2, 5, 5)), None),
        ("Dropout(0.4), one mask", SameMaskEveryForward(Dropout(0.4), seed), rng.standard_normal((4, 3, 5)), None),
        ("Subsampling(3)", random_subsampling(3, rng), rng.standard_normal((2, 3, 6, 4)), None),
        ("BatchNorm1d(4)", random_affine(BatchNorm1d(4), rng), rng.standard_normal((5, 4)), None),
        ("BatchNorm1d(3, no affine) NCL", BatchNorm1d(3, affine=False), rng.standard_normal((2, 3, 4)), None),
        ("BatchNorm2d(3)", random_affine(BatchNorm2d(3), rng), rng.standard_normal((2, 3, 4, 4)), None),
        # The layers of this round in one network: batch statistics couple the images, and the
        # gradient of each flows through every other image's normalization.
        ("Sequential(Conv2d..Sigmoid)",
         Sequential(Conv2d(2, 4, 3, padding=1, rng=rng), random_affine(BatchNorm2d(4), rng), Tanh(), AvgPool2d(2),
                    Flatten(), SameMaskEveryForward(Dropout(0.25), seed), Linear(4 * 3 * 3, 5, rng=rng),
                    BatchNorm1d(5), LeakyReLU(0.1), Linear(5, 3, rng=rng), Sigmoid()),
         rng.standard_normal((3, 2, 6, 6)), None),
        ("AvgPool2d(3, s2, p1, ceil)", AvgPool2d(3, 2, 1, ceil_mode=True), rng.standard_normal((1, 2, 8, 7)), None),
    ]
