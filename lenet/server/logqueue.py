"""Log lines written by one background thread, so that a slow log never slows a request.

Writing to stderr blocks when stderr is a pipe nobody reads (a full pipe buffer): a connection's
thread that logs its answer then waits forever, holding its socket. Here requests only put lines
in a bounded queue; when the queue is full, lines are dropped and counted, and the count is
logged as soon as the log accepts lines again.
"""

import queue
import threading

_STOP = object()


class LogQueue:
    """``put(line)`` never blocks; one daemon thread passes the lines to ``sink`` in order."""

    def __init__(self, sink, size=10_000):
        self.dropped = 0
        self._reported = 0
        self._lock = threading.Lock()
        self._sink = sink
        self._queue = queue.Queue(size)
        self._thread = threading.Thread(target=self._drain, name="log-writer", daemon=True)
        self._thread.start()

    def put(self, line):
        try:
            self._queue.put_nowait(line)
        except queue.Full:
            with self._lock:
                self.dropped += 1

    def close(self, timeout):
        """Write what is queued (waiting at most ``timeout`` seconds for the sink), then stop the thread."""
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            return  # the sink is stuck: the daemon thread is left to it
        self._thread.join(timeout)

    def _drain(self):
        while True:
            line = self._queue.get()
            self._report_dropped()
            if line is _STOP:
                return
            self._write(line)

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
