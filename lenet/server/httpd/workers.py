"""Several server processes answering on one port: ``--workers N``, restarted when they exit.

Python runs one thread at a time per process, so one process uses about one core however many
threads answer. N processes, each building its own server (``make_server``: the prediction server
loads its model once per worker), use N. They share one listening socket, created (bound and
listening) by the parent and handed to each worker: whichever worker is free accepts the next
connection. (``SO_REUSEPORT`` would give each its own queue, but hashes
connections to workers whether they are busy or not, and lets a second copy of the server started
by mistake silently share the port instead of failing with "address in use". Measured with 2
workers in alternating rounds, it served 0.93 to 1.24 times as many requests: within the noise.)
"""

import multiprocessing
import multiprocessing.connection
import signal
import socket
import threading
import time

WORKER_START_SECONDS = 120  # loading the model and compiling the kernels, on a busy machine
WORKER_STOP_SECONDS = 10
STABLE_SECONDS = 30  # a worker that served this long before exiting is replaced at once
RESTART_DELAYS = (0.5, 30.0)  # seconds before replacing a worker: the first, and the most after doubling


def listening_socket(host, port, backlog=socket.SOMAXCONN):
    """A TCP socket bound to ``(host, port)`` and listening, as ``PredictionServer`` makes its own."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(backlog)
    except BaseException:
        listener.close()
        raise
    return listener


def _worker(listener, make_server, arguments, options, ready, parent_alive):
    """One worker process: ``make_server(*arguments, listener=listener, **options)``, serving until
    SIGTERM, SIGINT or the parent's end."""
    # Ctrl-C reaches every process of the terminal's group: each worker stops itself cleanly.
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stopping.set())
    threading.Thread(target=_stop_when_parent_ends, args=(parent_alive, stopping), name="parent-watch",
                     daemon=True).start()
    server = make_server(*arguments, listener=listener, **options)
    serving = threading.Thread(target=server.serve_forever, name="prediction-server", daemon=True)
    serving.start()
    ready.release()
    stopping.wait()
    server.shutdown()
    serving.join()
    server.stop()


def _stop_when_parent_ends(parent_alive, stopping):
    """The parent holds the only write end of the ``parent_alive`` pipe and never writes: the read
    returns (EOF) when the parent's descriptors close, however it ended (SIGKILL included)."""
    try:
        parent_alive.recv()
    except (EOFError, OSError):
        pass
    stopping.set()


class Workers:
    """``count`` worker processes serving from one listening socket; ``supervise()`` restarts those that
    exit, ``stop()`` ends them all. Each worker ends itself when this process ends (see ``_worker``)."""

    def __init__(self, count, listener, make_server, arguments, options, log=print):
        # "spawn": a fresh interpreter per worker; forking a process that has loaded numba's
        # compiler (and may have threads) is not safe on every platform.
        self._context = multiprocessing.get_context("spawn")
        # make_server is found by name in each new interpreter: a module-level function.
        self._arguments = (listener, make_server, arguments, options)
        self._log = log
        self._ready = self._context.Semaphore(0)
        self._parent_alive, self._parent_alive_writer = self._context.Pipe(duplex=False)
        self.processes = [self._start(index) for index in range(count)]

    def _start(self, index):
        process = self._context.Process(target=_worker, args=(*self._arguments, self._ready, self._parent_alive),
                                        name=f"lenet5-worker-{index + 1}", daemon=True)
        process.start()
        process.started = time.monotonic()
        return process

    def wait_until_ready(self, timeout=WORKER_START_SECONDS):
        """True once every worker serves; False if one exits first or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        for _ in self.processes:
            while not self._ready.acquire(timeout=0.2):
                if time.monotonic() > deadline or any(p.exitcode is not None for p in self.processes):
                    return False
        return True

    def supervise(self, stop_requested):
        """Until ``stop_requested`` (an Event) is set: start a new worker in place of each that exits.

        The others serve meanwhile. A worker that exits within ``STABLE_SECONDS`` of its start is
        replaced after a delay that doubles each time (``RESTART_DELAYS``), so that a worker that
        cannot start does not make this loop spin.
        """
        delays = [RESTART_DELAYS[0]] * len(self.processes)
        restart_at = [None] * len(self.processes)
        while not stop_requested.is_set():
            running = [p.sentinel for p in self.processes if p.exitcode is None]
            multiprocessing.connection.wait(running, timeout=0.2)
            now = time.monotonic()
            for index, process in enumerate(self.processes):
                if process.exitcode is not None and restart_at[index] is None:
                    lived = now - process.started
                    delays[index] = RESTART_DELAYS[0] if lived > STABLE_SECONDS else \
                        min(delays[index] * 2, RESTART_DELAYS[1])
                    restart_at[index] = now + delays[index]
                    self._log(f"worker {process.name} (pid {process.pid}) exited with status {process.exitcode} "
                              f"after {lived:.1f} s; starting another in {delays[index]:g} s")
                if restart_at[index] is not None and now >= restart_at[index] and not stop_requested.is_set():
                    restart_at[index] = None
                    self.processes[index] = self._start(index)

    def stop(self, timeout=WORKER_STOP_SECONDS):
        """SIGTERM every worker (each finishes the answers it is writing), then wait; kill the stuck."""
        for process in self.processes:
            if process.exitcode is None:
                process.terminate()
        for process in self.processes:
            process.join(timeout)
            if process.exitcode is None:
                process.kill()
                process.join()
        self._parent_alive_writer.close()
        return [p.exitcode for p in self.processes]
