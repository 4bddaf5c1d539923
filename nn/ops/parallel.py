"""When a compiled kernel may use numba's thread pool, and one launch at a time.

Every kernel with a parallel (``prange``) version also has a serial one; ``drive`` picks. Small
jobs run on the calling thread: waking the pool and waiting for it costs more than the work it
would share. Parallel launches go through one lock, so concurrent callers (server threads,
augmentation beside training) never nest thread pools: the "workqueue" threading layer would
abort on that.
"""

import threading

import numba

# A kernel runs on the calling thread unless it has at least 2 items (images, or output rows for
# weight gradients) and about this many multiply-adds: below that, waking the thread pool and
# waiting for it costs more than the work it would share (LeNet's last layer at batch 64 is
# 54,000 multiply-adds, a few microseconds; one image's C3 is 150,000).
PARALLEL_MIN_WORK = 200_000

_parallel_launch = threading.Lock()


def drive(serial, parallel, items, work, *args, min_work=PARALLEL_MIN_WORK):
    """Run ``serial(*args)`` if the job is small (``work < min_work``) or numba has one thread, else ``parallel``.

    With ``NUMBA_NUM_THREADS=1`` (or ``numba.set_num_threads(1)``) everything runs on the calling
    thread: the choice for a machine whose cores are busy with other work, where each parallel
    region would wait for a time slice of the thread that shares it.
    """
    if items < 2 or work < min_work or numba.get_num_threads() < 2:
        serial(*args)
    else:
        with _parallel_launch:
            parallel(*args)
