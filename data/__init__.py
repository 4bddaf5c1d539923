"""Data for LeNet5: MNIST in its canonical IDX files, fetched and verified, then batched and augmented.

Modules (import the one you need, e.g. ``from data import mnist``):

* ``mnist``      - the four MNIST files: ``resolve_root``, ``ensure`` (fetch if missing), ``load``.
* ``batches``    - seeded shuffled mini-batches of normalized float32 NCHW images.
* ``normalize``  - ``NORMALIZATION`` (MNIST mean/std) and ``normalize``.
* ``split``      - ``split_validation``: the last training images held out for validation.
* ``augment``    - random shifts, rotations, scalings, slants and widths; ``strokes``: pen width and softness;
  ``warp`` does the resampling.
* ``preprocess`` - a drawn digit turned into MNIST's 28x28 format, for recognition.
* ``idx``        - the IDX file format (read, write, encode, decode).
* ``fetch``, ``download``, ``wheel``, ``csv_images``, ``progress``, ``storage`` - the fetching machinery.

Nothing is imported here, so ``python -m data.mnist`` runs without the package importing the module twice.
"""
