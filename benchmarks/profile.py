"""Where a training step's time goes: each stage's forward and backward, the loss and the SGD update."""

import inspect
import time

import numpy as np

from .timing import print_table


def skip_input_grad(module):
    """Keywords for ``module.backward`` that skip the gradient of its input, when it supports that."""
    return {"need_input_grad": False} if "need_input_grad" in inspect.signature(module.backward).parameters else {}


def profile_training_step(model, x, labels, backend, steps, title):
    """Print the median time of each part of a training step of ``model`` on a batch ``x``, ``labels``.

    The parts are the model's top-level children, one by one, forward then backward in reverse; a
    model that runs fused stages rather than its children can expose them as ``named_stages()``
    (pairs of name and module, in forward order), and the profile then times those. The first
    stage skips the gradient of the images when its ``backward`` accepts ``need_input_grad``.
    """
    import nn
    criterion = nn.CrossEntropyLoss()
    optimizer = nn.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    stages = [(f"{name} ({type(stage).__name__})", stage)
              for name, stage in getattr(model, "named_stages", model.named_children)()]
    times = {}

    def step():
        clock = time.perf_counter()

        def lap(name):
            nonlocal clock
            now = time.perf_counter()
            times.setdefault(name, []).append(now - clock)
            clock = now

        h = x
        for name, stage in stages:
            h = stage(h)
            lap(f"forward  {name}")
        criterion(h, labels)
        lap("loss     forward")
        optimizer.zero_grad()
        lap("update   zero_grad")
        d = criterion.backward()
        lap("loss     backward")
        for i, (name, stage) in reversed(list(enumerate(stages))):
            skip = skip_input_grad(stage) if i == 0 else {}
            d = stage.backward(d, **skip)
            lap(f"backward {name}" + (" (no dx)" if skip else ""))
        optimizer.step()
        lap("update   SGD step")

    with nn.use_backend(backend):
        for _ in range(5):
            step()
        times.clear()
        for _ in range(steps):
            step()
    median = {name: float(np.median(t)) for name, t in times.items()}
    total = sum(median.values())
    phases = {}
    for name, t in median.items():
        phases[name.split()[0]] = phases.get(name.split()[0], 0.0) + t
    rows = [[name, f"{t * 1e6:,.0f} us", f"{100 * t / total:.0f}%"] for name, t in median.items()]
    rows += [["", "", ""]] + [[f"total {phase}", f"{t * 1e6:,.0f} us", f"{100 * t / total:.0f}%"]
                              for phase, t in phases.items()]
    rows.append(["total step", f"{total * 1e6:,.0f} us", f"{len(x) / total:,.0f} img/s"])
    print_table(f"{title}, {backend} backend, batch {len(x)} (median of {steps} steps per part)",
                rows, ["part", "time", "share"])
