"""Where a training step's time goes: each stage's forward and backward, the loss and the SGD update."""

import inspect
import time

import numpy as np

from .networks import SGD_SETTINGS
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

    The last row times whole steps as the model itself runs them (``model(x)``, ``model.backward``):
    when it is much faster than the sum of the parts, the model fuses work that the parts do not.
    """
    import nn
    criterion = nn.CrossEntropyLoss()
    optimizer = nn.optim.SGD(model.parameters(), **SGD_SETTINGS)
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

    def whole_step():
        start = time.perf_counter()
        criterion(model(x), labels)
        optimizer.zero_grad()
        model.backward(criterion.backward(), **skip_input_grad(model))
        optimizer.step()
        whole.append(time.perf_counter() - start)

    whole = []
    with nn.use_backend(backend):
        for _ in range(5):
            step()
            whole_step()
        times.clear()
        whole.clear()
        for _ in range(steps):
            step()
            whole_step()
    median = {name: float(np.median(t)) for name, t in times.items()}
    total = sum(median.values())
    phases = {}
    for name, t in median.items():
        phases[name.split()[0]] = phases.get(name.split()[0], 0.0) + t
    rows = [[name, f"{t * 1e6:,.0f} us", f"{100 * t / total:.0f}%"] for name, t in median.items()]
    rows += [["", "", ""]] + [[f"total {phase}", f"{t * 1e6:,.0f} us", f"{100 * t / total:.0f}%"]
                              for phase, t in phases.items()]
    rows.append(["total of the parts", f"{total * 1e6:,.0f} us", f"{len(x) / total:,.0f} img/s"])
    whole_median = float(np.median(whole))
    rows.append(["whole step, as the model runs it", f"{whole_median * 1e6:,.0f} us",
                 f"{len(x) / whole_median:,.0f} img/s"])
    print_table(f"{title}, {backend} backend, batch {len(x)} (median of {steps} steps per part)",
                rows, ["part", "time", "share"])
