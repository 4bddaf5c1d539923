"""When a compiled kernel uses numba's thread pool: measured per kernel, so busy cores are noticed.

Every kernel with a parallel (``prange``) version also has a serial one computing the same bits;
``drive`` picks. Small jobs always run on the calling thread: waking the pool and waiting for it
costs more than the work it would share. For the others the choice is measured, because it
depends on what the rest of the machine is doing. Each parallel kernel ends in a barrier; when
another program holds a core, the barrier waits for a time slice of the descheduled pool thread
(milliseconds, for a kernel of tens of microseconds). On a 2-core machine with one busy process
beside it, LeNet5 trained at 28% of its quiet speed on two threads and at 60% on one.

So ``drive`` times every launch it makes, as seconds per unit of work, and keeps an exponentially
weighted mean for each kernel, size class (work rounded to a power of 2) and way (serial or
parallel). It runs the faster way and, now and then, one launch the other way (a probe), to notice
the machine changing. A probe on busy cores costs about one time slice, so probes come rarer the
more the other way costs (``PROBE_BUDGET``), but at least every ``PROBE_SECONDS_MAX`` of time
spent in kernels.

Parallel launches go through one lock, so concurrent callers (server threads, augmentation beside
training) never nest thread pools: the "workqueue" threading layer would abort on that. A caller
that finds the pool taken runs its kernel serially instead of waiting for it.
"""

import os
import threading
import time

import numba

# A kernel runs on the calling thread unless it has at least 2 items (images, or output rows for
# weight gradients) and about this many multiply-adds: below that, waking the thread pool and
# waiting for it costs more than the work it would share (LeNet's last layer at batch 64 is
# 54,000 multiply-adds, a few microseconds; one image's C3 is 150,000).
PARALLEL_MIN_WORK = 200_000

# Weight of the newest launch in a way's mean time: a few launches move the mean, one does not.
SMOOTHING = 0.25
# A launch of the chosen way counts at most this many times its mean: on a quiet machine a single
# launch now and then takes many times its usual time (an interrupt, a page fault), and one such
# outlier must not flip the choice; on busy cores every launch is slow, and three move the mean
# past the other way's. A mean that one probe just set is not capped: its next launch judges it.
OUTLIER_CAP = 4.0
# The pool stays the choice unless one thread measured at least this much faster: on a quiet
# machine the two ways of a kernel near the pool's break-even differ by noise, and flipping
# between them on noise costs both the flips' probes and the slower way's launches.
SERIAL_MARGIN = 1.2
# A probe of the slower way costs (slower / faster) launches of the faster one; the next probe
# comes after enough launches that probes cost about this fraction of the time (a serial probe
# every ~200 launches of a kernel on a quiet machine, where serial is about 2x slower), and after
# ``PROBE_SECONDS_MAX`` of kernel time at the latest: on busy cores a parallel launch costs a time
# slice, 10 to 200 times a serial one, and a quiet machine should still be noticed within seconds.
# Kernel time (the sum of the measured launches) rather than wall time: a program that pauses
# between its kernels (a benchmark timing something else, a server waiting for requests) would
# otherwise probe at every launch after a pause.
PROBE_BUDGET = 0.01
PROBE_GAP_MIN = 8
PROBE_SECONDS_MAX = 10.0

POLICIES = ("adaptive", "parallel", "serial")

_parallel_launch = threading.Lock()
_policy = "adaptive"
_kernel_seconds = 0.0  # the clock of the probes: seconds spent in measured launches, all kernels
_choices = {}  # (parallel driver, work's bit length) -> LaunchChoice


class LaunchChoice:
    """Measured mean seconds per unit of work of one kernel's two ways, and which to run next.

    ``seconds[way]`` (way: False serial, True parallel) is None until a launch of that way has
    been measured; the first launch of each way is not measured (it may load or compile the
    kernel). ``next_way(now)`` returns the faster way, or the other one when it is unknown or a
    probe is due; ``record(way, seconds_per_work, now)`` adds a measurement (``now``: the
    kernel time, in seconds, at the launch).
    """

    __slots__ = ("seconds", "probed", "warm", "launches", "probe_at", "probe_time")

    def __init__(self):
        self.seconds = {False: None, True: None}
        self.probed = {False: False, True: False}  # the way's mean is one probe's time
        self.warm = {False: False, True: False}
        self.launches = 0
        self.probe_at = PROBE_GAP_MIN  # both set anew once both ways are measured
        self.probe_time = float("inf")

    def preferred(self):
        """The faster way measured so far (the pool unless one thread beats it by ``SERIAL_MARGIN``);
        parallel until both are known (the quiet-machine choice)."""
        serial, parallel = self.seconds[False], self.seconds[True]
        return serial is None or parallel is None or parallel <= SERIAL_MARGIN * serial

    def next_way(self, now):
        self.launches += 1
        way = self.preferred()
        if self.seconds[not way] is None or self.launches >= self.probe_at or now >= self.probe_time:
            return not way
        return way

    def record(self, way, seconds_per_work, now):
        if not self.warm[way]:
            self.warm[way] = True
            return
        old = self.seconds[way]
        if way == self.preferred() and old is not None:
            if not self.probed[way]:
                seconds_per_work = min(seconds_per_work, OUTLIER_CAP * old)
            self.probed[way] = False
            self.seconds[way] = old + SMOOTHING * (seconds_per_work - old)
            return
        # A probe of the way not chosen (or its first timing): its old mean is stale, the new time
        # replaces it. A lucky probe on busy cores flips the choice, and the next launch, measured
        # slow, flips it back.
        self.seconds[way] = seconds_per_work
        self.probed[way] = True
        if self.seconds[not way] is not None:
            chosen = self.preferred()
            cost = self.seconds[not chosen] / self.seconds[chosen]
            self.probe_at = self.launches + int(max(cost / PROBE_BUDGET, PROBE_GAP_MIN))
            self.probe_time = now + PROBE_SECONDS_MAX


def set_policy(policy):
    """How ``drive`` picks for jobs large enough for the pool; returns the previous policy.

    "adaptive" (the default) measures both ways per kernel and runs the faster; "parallel" always
    uses the pool; "serial" never does (as ``NUMBA_NUM_THREADS=1`` would). Results are the same
    bits under every policy. Benchmarks and tests use the fixed ones to compare.
    """
    global _policy
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    previous, _policy = _policy, policy
    return previous


def get_policy():
    """The policy ``drive`` follows: "adaptive", "parallel" or "serial" (see ``set_policy``)."""
    return _policy


def drive(serial, parallel, items, work, *args, min_work=PARALLEL_MIN_WORK):
    """Run ``serial(*args)`` or ``parallel(*args)``: the serial one if the job is small (``items < 2``
    or ``work < min_work``), numba has one thread, or, under the "adaptive" policy, it measured faster.
    """
    global _kernel_seconds
    if items < 2 or work < min_work or _policy == "serial" or numba.get_num_threads() < 2:
        serial(*args)
        return
    if _policy == "parallel":
        _launch(serial, parallel, True, args)
        return
    key = (parallel, int(work).bit_length())
    choice = _choices.get(key)
    if choice is None:
        _compile_both(serial, parallel, args)
        choice = _choices.setdefault(key, LaunchChoice())
    way = choice.next_way(_kernel_seconds)
    start = time.perf_counter()
    if _launch(serial, parallel, way, args):
        seconds = time.perf_counter() - start
        _kernel_seconds += seconds
        choice.record(way, seconds / work, _kernel_seconds)


def _compile_both(serial, parallel, args):
    """Compile (or load from numba's cache) both drivers for these arguments' types, at a kernel's
    first large launch: one warm-up call (train.py makes one before its first epoch) then leaves
    no compilation for the launches that follow, whichever way they take."""
    for driver in (serial, parallel):
        if hasattr(driver, "compile"):  # a numba dispatcher
            driver.compile(tuple(numba.typeof(a) for a in args))


def _launch(serial, parallel, way, args):
    """Run one way; False if the pool was taken by another thread and the kernel ran serially instead.

    That serial run is not a measurement of the machine: the other thread's kernel slowed it.
    """
    if not way:
        serial(*args)
        return True
    if not _parallel_launch.acquire(blocking=False):
        serial(*args)
        return False
    try:
        parallel(*args)
    finally:
        _parallel_launch.release()
    return True


def busy_cores_message():
    """One line saying that the cores look busy, or None if they do not (or nothing was measured yet).

    The cores look busy when most kernels measured faster on one thread than on the pool, as
    happens when other programs hold cores: ``print(m) if (m := busy_cores_message()) else None``.
    """
    known = [c for c in _choices.values() if c.seconds[False] is not None and c.seconds[True] is not None]
    serial = [c for c in known if not c.preferred()]
    if not known or 2 * len(serial) <= len(known):
        return None
    slowdown = sorted(c.seconds[True] / c.seconds[False] for c in serial)[len(serial) // 2]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"the cores look busy (load average {load:.1f} on {os.cpu_count()} cores): {len(serial)} of "
            f"{len(known)} parallel kernels run on one thread, where the pool measured {slowdown:.1f}x slower")
