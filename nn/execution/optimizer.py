"""Which optimizer updates run compiled: the numba backend's fused SGD update, else the reference.

``nn.optim`` holds only the NumPy reference of each update rule. Its ``step()`` asks
:func:`compiled_update` for each parameter; a kernel is returned only when it gives the reference's
bits for that optimizer, group and parameter (same operations, same order, same dtype), so the
backend changes the speed of a step and never its result.
"""

import functools

import numpy as np

from ..backend import NUMBA_AVAILABLE, get_backend

if NUMBA_AVAILABLE:
    from ..ops import sgd_kernels


def compiled_update(optimizer, p, group, state):
    """A callable ``update(p, group, state)`` running ``optimizer``'s update of ``p`` compiled, or None.

    None means: run the optimizer's own reference update (the NumPy backend, an optimizer without
    a kernel, an option the kernel does not implement, or a non-contiguous array).
    """
    if get_backend() != "numba":
        return None
    supports = _kernels().get(type(optimizer))  # the exact class: a subclass may change the rule
    if supports is None or not supports(p, group, state):
        return None
    return _sgd_update


@functools.cache
def _kernels():
    # Imported here because nn.optim imports this module while it is being initialized.
    from ..optim.sgd import SGD
    return {SGD: _sgd_supports}


def _sgd_supports(p, group, state):
    # The kernel implements dampening 0 without maximize; it works on flat C-contiguous views.
    buffer = state.get("momentum_buffer")
    return (group["dampening"] == 0 and not group["maximize"] and p.data.flags.c_contiguous
            and p.grad.flags.c_contiguous and (buffer is None or buffer.flags.c_contiguous))


def _sgd_update(p, group, state):
    """``SGD._update`` in one compiled pass, bit for bit, without its temporaries."""
    momentum = group["momentum"]
    first = "momentum_buffer" not in state
    if momentum and first:
        state["momentum_buffer"] = np.empty_like(p.data)  # with ``first`` the kernel only writes it
    buffer = state["momentum_buffer"] if momentum else p.grad  # not touched without momentum
    sgd_kernels.sgd_update(p.data, p.grad, buffer, group["lr"], momentum, group["weight_decay"],
                           group["nesterov"], first)
