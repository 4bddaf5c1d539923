"""One line on stderr when numba starts compiling a set of this package's kernels.

numba compiles each kernel on its first call with new argument types and keeps the machine code
on disk (``cache=True``); later processes load it in milliseconds. A kernel set (one module of
``nn/ops``, e.g. the fused convolution stages) is compiled the first time a program on this
machine calls it with those argument types, or after numba or that module's source changed.
Training compiles some sets, a server or a gradient check may compile others later: so the
notice is printed once per module and process, names the module, and says why it happens. It
listens to numba's own "numba:compile" event, which numba raises only when it really compiles
(a cache miss), never when it loads a kernel from the cache, so a warm start prints nothing.
"""

import sys
import threading

from numba.core import event

TEMPLATE = ("compiling numba kernels of {module} (not yet in numba's disk cache for these argument types: "
            "seconds now, then loaded from the cache) ...")

_PACKAGE = __name__.split(".")[0]


def message(module):
    """The notice for the kernels of ``module`` (a dotted module name)."""
    return TEMPLATE.format(module=module)


class _CompileNotice(event.Listener):
    """Prints ``message(module)`` at the start of the first compilation of each of this package's kernel modules."""

    def __init__(self, stream=None):
        self.stream = stream
        self.announced = set()
        self._lock = threading.Lock()

    def on_start(self, ev):
        dispatcher = (ev.data or {}).get("dispatcher")
        module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
        if module.split(".")[0] != _PACKAGE:
            return  # another library's numba code: not ours to announce
        with self._lock:
            if module in self.announced:
                return
            self.announced.add(module)
        print(message(module), file=self.stream or sys.stderr, flush=True)

    def on_end(self, ev):
        pass


notice = _CompileNotice()
event.register("numba:compile", notice)
