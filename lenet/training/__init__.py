"""What ``train.py`` needs besides its loop, one concept per module.

``recipe``: the default run (model, optimizer, augmentation, learning-rate schedule, flag defaults),
the one place a change of recipe goes. ``options``: the command line. ``runs``: run folders, the
``runs/latest`` pointer, and which model file a path names. ``checkpoint``: the per-epoch
checkpoint and metrics. ``provenance``: what a saved model records about its run. ``evaluation``,
``warmup``, ``progress``, ``report``: evaluating, compiling ahead of the timed epochs, the status
line, the run's first and last lines and pictures. ``signals``: Ctrl-C and SIGTERM.
"""
