"""Finite-difference gradient checking, for users' own layers and for ours.

``gradcheck`` compares the analytic gradients a module's ``backward`` produces, for its input and
every parameter, against central differences computed in float64::

    dL/dθ_i ≈ (L(θ + eps e_i) - L(θ - eps e_i)) / (2 eps)

with the scalar ``L = sum(forward(x) * R)`` for a fixed random ``R``, so that ``backward(R)`` must
return exactly ``dL/dx``. An entry passes when ``|analytic - numeric| <= atol + rtol * |numeric|``
(the defaults are ``torch.autograd.gradcheck``'s).

``python -m nn.check_gradients`` checks every layer, the loss and a small composed network and prints a table.
"""

from dataclasses import dataclass

import numpy as np

from .module import Module


@dataclass
class GradcheckResult:
    name: str           # what was checked, e.g. "Conv2d(stride=2)"
    tensor: str         # "input", "input 0", or a parameter name like "weight"
    shape: tuple
    max_abs_err: float
    max_rel_err: float
    checked: int        # how many entries were compared
    passed: bool


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


def gradcheck(module, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, max_entries=None, seed=0, name=None):
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

    Returns a list of :class:`GradcheckResult`, one per input and parameter.
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

    out = np.asarray(model(*args), dtype=np.float64)
    weights = rng.standard_normal(out.shape)

    def objective():
        return float(np.sum(np.asarray(model(*args), dtype=np.float64) * weights))

    model.zero_grad()
    model(*args)
    input_grads = model.backward(weights)
    if not isinstance(input_grads, tuple):
        input_grads = (input_grads,)

    tensors = []
    for k, pos in enumerate(float_positions):
        label = "input" if len(float_positions) == 1 else f"input {pos}"
        tensors.append((label, args[pos], input_grads[k]))
    for pname, p in model.named_parameters():
        tensors.append((pname, p.data, p.grad.copy()))

    results = []
    for label, array, analytic in tensors:
        analytic = np.asarray(analytic, dtype=np.float64).reshape(-1)
        if analytic.size != array.size:
            raise ValueError(f"gradcheck: {name}: gradient of {label} has {analytic.size} entries, "
                             f"expected {array.size} (shape {array.shape})")
        indices = np.arange(array.size)
        if max_entries is not None and array.size > max_entries:
            indices = np.sort(rng.choice(array.size, size=max_entries, replace=False))
        numeric = _numeric_grad(objective, array, indices, eps)
        error = np.abs(analytic[indices] - numeric)
        relative = error / np.maximum(np.abs(numeric), 1e-12)
        results.append(GradcheckResult(
            name=name, tensor=label, shape=tuple(array.shape),
            max_abs_err=float(error.max(initial=0.0)), max_rel_err=float(relative.max(initial=0.0)),
            checked=len(indices), passed=bool(np.all(error <= atol + rtol * np.abs(numeric)))))
    return results


def format_table(results):
    header = (f"{'name':<28} {'tensor':<12} {'shape':<18} {'checked':>8} {'max abs err':>12} "
              f"{'max rel err':>12}  result")
    lines = [header, "-" * len(header)]
    for r in results:
        lines.append(f"{r.name:<28} {r.tensor:<12} {str(r.shape):<18} {r.checked:>8} {r.max_abs_err:12.2e} "
                     f"{r.max_rel_err:12.2e}  {'PASS' if r.passed else 'FAIL'}")
    return "\n".join(lines)


def builtin_cases(seed=0):
    """(name, module, inputs, max_entries) for every layer, the loss and a composed network, on several shapes."""
    from .activation import ReLU
    from .conv import Conv2d
    from .flatten import Flatten
    from .linear import Linear
    from .loss import CrossEntropyLoss
    from .pool import MaxPool2d
    from .sequential import Sequential

    rng = np.random.default_rng(seed)

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
    ]
