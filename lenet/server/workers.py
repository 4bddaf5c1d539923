"""Several server processes answering on one port: ``--workers N``.

Python runs one thread at a time per process, so one process uses about one core however many
threads answer. N processes, each with the model loaded once, use N. They share one listening
socket, created (bound and listening) by the parent and handed to each worker: whichever worker
is free accepts the next connection. (``SO_REUSEPORT`` would give each its own queue, but hashes
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

import lenet

from .app import PredictionServer

WORKER_START_SECONDS = 120  # loading the model and compiling the kernels, on a busy machine
WORKER_STOP_SECONDS = 10


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


def _worker(listener, model_path, options, ready):
    """One worker process: load the model, serve from ``listener`` until SIGTERM or SIGINT."""
    # Ctrl-C reaches every process of the terminal's group: each worker stops itself cleanly.
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stopping.set())
    server = PredictionServer(lenet.load_model(model_path), listener=listener, **options)
    serving = threading.Thread(target=server.serve_forever, name="prediction-server", daemon=True)
    serving.start()
    ready.release()
    stopping.wait()
    server.shutdown()
    serving.join()
    server.stop()


class Workers:
    """``count`` worker processes serving from one listening socket; ``stop()`` ends them all."""

    def __init__(self, count, listener, model_path, options):
        # "spawn": a fresh interpreter per worker; forking a process that has loaded numba's
        # compiler (and may have threads) is not safe on every platform.
        context = multiprocessing.get_context("spawn")
        self._ready = context.Semaphore(0)
        self.processes = [context.Process(target=_worker, args=(listener, model_path, options, self._ready),
                                          name=f"lenet5-worker-{i + 1}", daemon=True)
                          for i in range(count)]
        for process in self.processes:
            process.start()

    def wait_until_ready(self, timeout=WORKER_START_SECONDS):
        """True once every worker serves; False if one exits first or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        for _ in self.processes:
            while not self._ready.acquire(timeout=0.2):
                if time.monotonic() > deadline or any(p.exitcode is not None for p in self.processes):
                    return False
        return True

    def wait(self, stop_requested):
        """Block until ``stop_requested`` (an Event) is set or a worker exits; return the exited ones."""
        while not stop_requested.is_set():
            multiprocessing.connection.wait([p.sentinel for p in self.processes], timeout=0.2)
            exited = [p for p in self.processes if p.exitcode is not None]
            if exited:
                return exited
        return []

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
        return [p.exitcode for p in self.processes]
