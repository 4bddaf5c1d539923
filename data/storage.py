"""Files on disk: gzip chosen by the ``.gz`` suffix, atomic writes, and hashes of uncompressed content.

A file is written to a temporary name in its own folder and only renamed onto its final name
(``os.replace``, atomic on POSIX file systems) once it is complete, so a crash or an error never
leaves a half-written file behind under a name that looks finished.
"""

import contextlib
import gzip
import hashlib
import os
import secrets
import zlib
from pathlib import Path

CHUNK_SIZE = 1 << 20
# Level 6 compresses MNIST within 2% of level 9 (gzip.open's default) at a tenth of the time.
GZIP_LEVEL = 6


class CorruptFileError(ValueError):
    """A file exists but its content is damaged: a broken gzip stream or an invalid format."""


class HashMismatchError(CorruptFileError):
    """A file's content does not have the SHA-256 it must have."""


def is_gzip_path(path):
    """True when ``path`` ends in ``.gz``: such files are gzip-compressed, all others are raw."""
    return Path(path).suffix == ".gz"


@contextlib.contextmanager
def open_uncompressed(path, compressed=None, name=None):
    """Open ``path`` for reading its uncompressed bytes (binary file object).

    ``compressed`` overrides the ``.gz`` suffix rule, and ``name`` the file's name in messages:
    both serve temporary files, which are better described by the name they are about to take.
    A damaged gzip stream surfaces as ``CorruptFileError`` naming the file.
    """
    if compressed is None:
        compressed = is_gzip_path(path)
    opener = gzip.open if compressed else open
    try:
        with opener(path, "rb") as stream:
            yield stream
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise CorruptFileError(f"{name or path}: not a valid gzip file ({type(exc).__name__}: {exc})") from None


def read_bytes(path, compressed=None):
    """Return the whole uncompressed content of ``path`` as ``bytes``."""
    with open_uncompressed(path, compressed) as stream:
        return stream.read()


def sha256_of(path, compressed=None, name=None):
    """Hex SHA-256 of the uncompressed content of ``path``, read in chunks (constant memory)."""
    digest = hashlib.sha256()
    with open_uncompressed(path, compressed, name) as stream:
        for chunk in iter(lambda: stream.read(CHUNK_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path, expected, compressed=None, name=None):
    """Raise ``HashMismatchError`` unless the uncompressed content of ``path`` hashes to ``expected``.

    ``compressed`` and ``name`` are as in ``open_uncompressed``.
    """
    actual = sha256_of(path, compressed, name)
    if actual != expected:
        raise HashMismatchError(f"{name or path}: the content has SHA-256 {actual}, expected {expected}")


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary path next to ``path``; on success rename it onto ``path``, on error delete it.

    The caller writes (and may verify) the temporary file inside the ``with`` block; raising
    there discards it and leaves ``path`` untouched. The temporary file sits in the same folder
    because a rename is atomic only within one file system. (``nn.atomic`` has the framework's
    own copy: ``data`` does not depend on ``nn``.)
    """
    path = Path(path)
    temp_path = path.with_name(f".{path.name}.{secrets.token_hex(6)}.part")
    # Created exclusively, with the permissions any new file gets (mode 0o666 less the umask);
    # tempfile.mkstemp would make it private (0o600) and the final file with it.
    os.close(os.open(temp_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        yield temp_path
        os.replace(temp_path, path)
    except BaseException:
        # BaseException too: a KeyboardInterrupt mid-write must not leave the temporary file.
        temp_path.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path, payload):
    """Write ``payload`` (bytes) to ``path``, gzip-compressed when it ends in ``.gz``, atomically."""
    with atomic_output(path) as temp_path:
        with open(temp_path, "wb") as raw:
            if is_gzip_path(path):
                # mtime=0 makes the compressed bytes depend on the payload only (reproducible files).
                with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=GZIP_LEVEL,
                                   mtime=0) as stream:
                    stream.write(payload)
            else:
                raw.write(payload)
            raw.flush()
            os.fsync(raw.fileno())
