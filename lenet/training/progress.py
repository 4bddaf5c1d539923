"""One self-overwriting status line on a terminal; silent when output is piped."""

import sys
import time


class Progress:
    """One self-overwriting status line on a terminal; silent when output is piped."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.enabled = stream.isatty()
        self.last = 0.0

    def update(self, text, force=False):
        now = time.monotonic()
        if self.enabled and (force or now - self.last > 0.25):
            self.stream.write("\r" + text[:120].ljust(120))
            self.stream.flush()
            self.last = now

    def clear(self):
        if self.enabled:
            self.stream.write("\r" + " " * 120 + "\r")
            self.stream.flush()
