"""Timing on a shared machine: alternating blocks, a settling pause before each, medians, and tables.

Each contender runs a block of calls in turn (ours, PyTorch, ours again, ...), so that load from
other processes hits all of them alike; the median block is reported. Only ratios measured in
the same run are meaningful.
"""

import time

import numpy as np

# Pause before each timed block, untimed: thread pools keep spinning after their last job (OpenBLAS's
# for ~0.1 s, OpenMP's for milliseconds) and would steal a core from the next contender's block.
SETTLE_SECONDS = 0.15


def warm(contenders, calls=3):
    """Call each contender a few times, untimed: compilation, caches, buffers and thread pools start up."""
    for f in contenders.values():
        for _ in range(calls):
            f()


def calls_per_block(f, seconds_per_block):
    """How many calls of ``f`` fill about ``seconds_per_block`` (at least 1), from one timed call."""
    start = time.perf_counter()
    f()
    return max(1, int(seconds_per_block / max(time.perf_counter() - start, 1e-6)))


def median_block_seconds(contenders, calls, repeats):
    """Median seconds per call of each contender, over ``repeats`` rounds of one block each, in turn.

    ``calls`` is a number of calls per block, the same for all, or a dict of one per contender.
    """
    calls = calls if isinstance(calls, dict) else {name: calls for name in contenders}
    times = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, f in contenders.items():
            time.sleep(SETTLE_SECONDS)
            start = time.perf_counter()
            for _ in range(calls[name]):
                f()
            times[name].append((time.perf_counter() - start) / calls[name])
    return {name: float(np.median(t)) for name, t in times.items()}


def measure(contenders, repeats, seconds_per_block, warm_calls=3):
    """Warm every contender, size its blocks to about ``seconds_per_block``, return median seconds per call."""
    warm(contenders, warm_calls)
    calls = {name: calls_per_block(f, seconds_per_block) for name, f in contenders.items()}
    return median_block_seconds(contenders, calls, repeats)


def print_table(title, rows, columns):
    """A plain-text table: first column left-aligned, the others right-aligned."""
    print(f"\n{title}")
    widths = [max(len(str(r[i])) for r in rows + [columns]) for i in range(len(columns))]
    line = "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(columns, widths)))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths))))


def print_markdown_table(rows, columns, align_left=1):
    """A markdown table; the first ``align_left`` columns left-aligned, the others right-aligned."""
    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join("---" if i < align_left else "---:" for i in range(len(columns))) + "|")
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |")
