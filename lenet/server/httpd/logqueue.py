"""Log lines written by one background thread, so that a slow log never slows a request.

Writing to stderr blocks when stderr is a pipe nobody reads (a full pipe buffer): a connection's
thread that logs its answer then waits forever, holding its socket. Here requests only append
lines to a bounded buffer; when it is full, lines are dropped and counted, and the count is
logged as soon as the log accepts lines again. The writer wakes every ``interval`` seconds and
writes what gathered: waking it for each line would cost every request a thread switch.
"""

import collections
import threading


class LogQueue:
    """``put(line)`` never blocks; one daemon thread passes the lines to ``sink`` in order."""

    def __init__(self, sink, size=10_000, interval=0.05):
        self.dropped = 0
        self._reported = 0
        self._size, self._interval = size, interval
        self._lines = collections.deque()
        self._lock = threading.Lock()
        self._sink = sink
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="log-writer", daemon=True)
        self._thread.start()

    def put(self, line):
        # len() and append() on a deque are atomic: the size is a bound, not an exact count.
        if len(self._lines) < self._size:
            self._lines.append(line)
        else:
            with self._lock:
                self.dropped += 1

    def close(self, timeout):
        """Write what is queued (waiting at most ``timeout`` seconds for the sink), then stop the thread."""
        self._closing.set()
        self._thread.join(timeout)

    def _drain(self):
        while True:
            closing = self._closing.wait(self._interval)
            self._report_dropped()
            while self._lines:
                self._write(self._lines.popleft())
            if closing:
                return

    def _report_dropped(self):
        with self._lock:
            dropped, self._reported = self.dropped - self._reported, self.dropped
        if dropped:
            self._write(f"{dropped} log lines dropped: the log was not being read fast enough")

    def _write(self, line):
        try:
            self._sink(line)
        except Exception:  # a closed or broken stderr must not end the thread that drains the queue
            pass
