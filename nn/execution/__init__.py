"""How layers run: the one place that decides what runs compiled, and the compiled stages themselves.

The layer files (``nn.conv``, ``nn.linear``, ...) hold the math and its NumPy reference; nothing
there knows about numba. Every call of a module goes through ``dispatch`` (``Module.__call__`` for
forward, ``Module``'s backward entry for backward), which asks ``planner.plan_of(module)`` how it runs:

* on the NumPy backend, and for any module the planner has no compiled stage for (a layer of your
  own, ``ReLU`` or ``Flatten`` alone), by its own ``forward``/``backward``, the reference;
* on the numba backend, a ``Sequential`` as a plan of stages (``stages``): a ``Conv2d`` with the
  ``ReLU`` and ``MaxPool2d`` after it in one compiled pass, a ``Linear`` with its ``ReLU``, ...;
  a lone layer with a compiled stage as a one-stage plan; the loss by ``loss``.

Adding a fused pattern or a compiled kernel for a layer touches this package (and ``nn.ops``) only.
This file imports nothing, so any module of the package (the optimizer's update too) imports alone.
"""
