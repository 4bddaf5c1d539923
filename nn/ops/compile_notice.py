"""One line on stderr before numba compiles this package's first kernel in a process.

numba compiles each kernel on its first call with new argument types and keeps the machine code
on disk (``cache=True``); later processes load it in milliseconds. So only the first run on a
machine (or after an upgrade of numba or of these sources) pauses, for tens of seconds, and
this notice says why instead of leaving the console silent. It listens to numba's own
"numba:compile" event, which numba raises only when it really compiles (a cache miss), never when
it loads a kernel from the cache, so a warm start prints nothing.
"""

import sys
import threading

from numba.core import event

MESSAGE = "compiling numba kernels (first run on this machine: about 20 s, then cached) ..."

_PACKAGE = __name__.split(".")[0]


class _CompileNotice(event.Listener):
    """Prints ``MESSAGE`` once, at the start of the first compilation of one of this package's kernels."""

    def __init__(self, stream=None):
        self.stream = stream
        self.printed = False
        self._lock = threading.Lock()

    def on_start(self, ev):
        dispatcher = (ev.data or {}).get("dispatcher")
        module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
        if module.split(".")[0] != _PACKAGE:
            return  # another library's numba code: not ours to announce
        with self._lock:
            if self.printed:
                return
            self.printed = True
        print(MESSAGE, file=self.stream or sys.stderr, flush=True)

    def on_end(self, ev):
        pass


notice = _CompileNotice()
event.register("numba:compile", notice)
