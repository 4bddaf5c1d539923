"""Ctrl-C and SIGTERM stop a run the same way: as a KeyboardInterrupt raised where the program is."""

import contextlib
import signal
import threading


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill PID``), raised where the program is, so that it stops as Ctrl-C stops it."""


def _raise_terminated(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM raises ``Terminated``; the previous handler is put back after it.

    Only on the main thread: ``signal.signal`` cannot be called elsewhere (e.g. when a test runs
    ``main`` in a thread), and there the block runs with the handlers as they are.
    """
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if on_main_thread else None
    try:
        yield
    finally:
        if previous is not None:  # None also when the old handler was not set from Python
            signal.signal(signal.SIGTERM, previous)


def describe(interrupt):
    """-> (what happened, the exit status a shell gives a program that signal killed: 128 + its number)."""
    if isinstance(interrupt, Terminated):
        return "Terminated (SIGTERM)", 128 + signal.SIGTERM
    return "Interrupted", 128 + signal.SIGINT
