"""A one-line download progress report on stderr that stays readable when piped to a file.

On a terminal the line is redrawn in place (carriage return) each time its text changes (a whole
percent, or 0.1 MB when the size is unknown). Anywhere else (a log file, a CI console) carriage
returns would pile up into one huge line, so only a few complete lines are printed instead: at
25%, 50%, 75% and at the end.
"""

import sys

_PIPED_STEPS = (25, 50, 75)


def _megabytes(n_bytes):
    return f"{n_bytes / 1e6:.1f} MB"


class ProgressLine:
    """Report the progress of a transfer of ``total`` bytes (None when the size is unknown).

    Call ``update(n_bytes)`` after every chunk and ``close()`` once at the end. ``enabled=False``
    makes every call a no-op, so callers need no ``if progress:`` of their own.
    """

    def __init__(self, label, total=None, stream=None, enabled=True):
        self.label = label
        self.total = total if total and total > 0 else None
        self.stream = sys.stderr if stream is None else stream
        self.enabled = enabled
        self.done = 0
        self._interactive = enabled and bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_text = ""
        self._next_piped_step = 0
        if enabled and not self._interactive:
            size = f" ({_megabytes(self.total)})" if self.total else ""
            self._write(f"{label}{size} ...\n")

    def _write(self, text):
        self.stream.write(text)
        self.stream.flush()

    def _status(self):
        if self.total:
            return f"{self.label}: {100 * self.done // self.total:3d}% of {_megabytes(self.total)}"
        return f"{self.label}: {_megabytes(self.done)}"

    def update(self, n_bytes):
        """Count ``n_bytes`` more transferred bytes and redraw the line if something visible changed."""
        self.done += n_bytes
        if not self.enabled:
            return
        if self._interactive:
            text = self._status()
            if text != self._last_text:
                self._last_text = text
                self._write("\r" + text)
        elif self.total:
            percent = 100 * self.done // self.total
            while self._next_piped_step < len(_PIPED_STEPS) and percent >= _PIPED_STEPS[self._next_piped_step]:
                self._write(f"{self.label}: {_PIPED_STEPS[self._next_piped_step]}%\n")
                self._next_piped_step += 1

    def close(self, outcome="done"):
        """End the report with ``outcome`` (e.g. "done" or "failed: ...") on its own line."""
        if not self.enabled:
            return
        if self._interactive:
            self._write("\r" + self._status() + f" - {outcome}\n")
        else:
            self._write(f"{self.label}: {outcome} ({_megabytes(self.done)})\n")
