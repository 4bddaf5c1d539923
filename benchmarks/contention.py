"""Training speed on busy cores: LeNet5 (or a zoo network) with N busy processes beside it, vs PyTorch.

    python -m benchmarks.contention                     # LeNet5, 0, 1 and 2 busy processes
    python -m benchmarks.contention --busy 0,2 --blocks 9
    python -m benchmarks.contention --network C --no-torch

For each number of busy processes (Python ``while True: pass`` loops at normal priority, started
here and ended here), alternating blocks of training steps at batch 64 (``need_input_grad``
off) for each contender, in turn:

* ``ours``: the default, ``nn.ops.parallel``'s measured choice between one thread and the pool;
* ``ours, 1 thread``: every kernel serial (as with ``NUMBA_NUM_THREADS=1``);
* ``ours, pool``: every large kernel on numba's pool (always parallel);
* ``PyTorch``: ``torch.set_num_threads(cores)``, when importable.

Each figure is the median block; "(%)" is a contender's rate against its own with no busy
process, measured in the same run, and "on" the mean number of cores the process got during that
contender's blocks (CPU seconds of all its threads / wall seconds): it tells a contender that
waits at barriers (cores given, little done) from one that got no cores. The load average (1 minute) at the end of each row is printed
too: on a machine shared with other work, the busy processes started here are not the only ones.
The busy processes stop by themselves after ``BUSY_SECONDS_MAX`` even if this process is killed.
"""

import argparse
import os
import subprocess
import sys
import time

from .networks import NETWORKS
from .timing import calls_per_block, median_block_seconds, print_table, warm
from .zoo import TRAIN_BATCH, ours, pytorch

BUSY_SECONDS_MAX = 900
_BUSY_LOOP = f"import time\nend = time.monotonic() + {BUSY_SECONDS_MAX}\nwhile time.monotonic() < end: pass\n"


def start_busy(count):
    """``count`` processes spinning on the CPU (bounded: they exit after ``BUSY_SECONDS_MAX`` s)."""
    return [subprocess.Popen([sys.executable, "-c", _BUSY_LOOP]) for _ in range(count)]


def stop_busy(processes):
    for p in processes:
        p.terminate()
    for p in processes:
        p.wait(timeout=10)


class Clocked:
    """A training step that adds up the wall-clock and CPU (all threads) seconds of its calls."""

    def __init__(self, step):
        self.step, self.wall, self.cpu = step, 0.0, 0.0

    def __call__(self):
        wall, cpu = time.perf_counter(), time.process_time()
        self.step()
        self.wall += time.perf_counter() - wall
        self.cpu += time.process_time() - cpu

    def cores_used(self):
        """Mean cores this process used during the calls so far (CPU seconds / wall seconds); resets."""
        used = self.cpu / self.wall if self.wall else float("nan")
        self.wall = self.cpu = 0.0
        return used


def _policy_step(step, policy):
    from nn.ops import parallel

    def run():
        previous = parallel.set_policy(policy)
        try:
            step()
        finally:
            parallel.set_policy(previous)
    return run


def contenders(network, torch_threads):
    """{name: Clocked training step}; the three of ours train separate copies of one model."""
    named = {"ours": _policy_step(ours(network, "numba")[0], "adaptive"),
             "ours, 1 thread": _policy_step(ours(network, "numba")[0], "serial"),
             "ours, pool": _policy_step(ours(network, "numba")[0], "parallel")}
    if torch_threads:
        named["PyTorch"] = pytorch(network, torch_threads)[0]
    return {name: Clocked(step) for name, step in named.items()}



def run(network, busy_counts, blocks, steps_per_block, torch_threads):
    """{busy count: ({contender: img/s}, {contender: cores used}, load average)}, printed as a table."""
    steps = contenders(network, torch_threads)
    warm(steps, calls=20)  # the adaptive choice measures both ways in its first launches
    import numba
    print(f"numba {numba.__version__} ({numba.threading_layer()} threading layer, {numba.get_num_threads()} "
          f"threads), load average before: {os.getloadavg()[0]:.1f}")
    results = {}
    for count in busy_counts:
        busy = start_busy(count)
        try:
            time.sleep(1.0)  # the busy processes start and take their cores
            warm(steps, calls=5)
            for step in steps.values():
                step.cores_used()  # from here on: the timed blocks only
            calls = {name: steps_per_block for name in steps} if steps_per_block else \
                {name: calls_per_block(f, 0.3) for name, f in steps.items()}
            seconds = median_block_seconds(steps, calls, blocks)
            results[count] = ({name: TRAIN_BATCH / s for name, s in seconds.items()},
                              {name: step.cores_used() for name, step in steps.items()}, os.getloadavg()[0])
        finally:
            stop_busy(busy)
    names = list(steps)
    quiet = results[0][0] if 0 in results else None
    rows = []
    for count, (rates, cores, load) in results.items():
        row = [str(count)]
        for name in names:
            share = f" ({rates[name] / quiet[name]:.0%})" if quiet and count else ""
            row.append(f"{rates[name]:,.0f}{share} on {cores[name]:.1f}")
        if "PyTorch" in rates:
            row.append(f"{rates['ours'] / rates['PyTorch']:.2f}x")
        row.append(f"{load:.1f}")
        rows.append(row)
    columns = (["busy processes"] + [f"{n} img/s" for n in names]
               + (["ours / PyTorch"] if "PyTorch" in names else []) + ["load avg"])
    print_table(f"{network.description} training at batch {TRAIN_BATCH}, {os.cpu_count()} cores, median of {blocks} "
                "alternating blocks per figure; (%) = of its own rate with no busy process; on = the mean cores "
                "this process got during that contender's blocks (CPU seconds / wall seconds)", rows, columns)
    return results


def _counts(text):
    try:
        counts = [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        counts = None
    if not counts or min(counts) < 0:
        raise argparse.ArgumentTypeError(f"expected comma-separated counts of busy processes like 0,1,2, got {text!r}")
    return counts


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.contention",
                                description="Training speed with N busy processes beside it, ours and PyTorch.")
    p.add_argument("--network", default="LeNet5", choices=sorted(NETWORKS), help="which network (default: LeNet5)")
    p.add_argument("--busy", type=_counts, default=[0, 1, 2], help="busy process counts (default: 0,1,2)")
    p.add_argument("--blocks", type=int, default=7, help="alternating blocks per figure (default: 7)")
    p.add_argument("--steps", type=int, default=40,
                   help="training steps per block (default: 40; 0 sizes blocks to about 0.3 s each)")
    p.add_argument("--no-torch", action="store_true", help="do not compare with PyTorch even if importable")
    args = p.parse_args(argv)
    torch_threads = 0
    if not args.no_torch:
        try:
            import torch  # noqa: F401
            torch_threads = os.cpu_count() or 1
        except ImportError:
            pass
    run(NETWORKS[args.network], args.busy, args.blocks, args.steps, torch_threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
