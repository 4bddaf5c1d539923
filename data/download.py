"""Download one file over HTTP(S) and keep it only if its content has the expected SHA-256."""

import os
import urllib.request

from .progress import ProgressLine
from .storage import CHUNK_SIZE, atomic_output, is_gzip_path, verify_sha256

USER_AGENT = "lenet5-scratch-data-fetch/1"


class IncompleteDownloadError(OSError):
    """The server closed the connection before sending the size it announced."""


def download_verified(url, dest, sha256, timeout=10.0, progress=True, stream=None):
    """Download ``url`` to ``dest``; keep it only if its uncompressed content hashes to ``sha256``.

    ``dest`` ending in ``.gz`` means the download is gzip-compressed: it is stored as received and
    the hash is taken of its decompressed content. The bytes go to a temporary file next to
    ``dest`` that is renamed onto ``dest`` only after the hash matched, so an interrupted or
    rejected download never leaves a file under the final name.

    Args:
        timeout: seconds allowed for connecting and for each read; a silent server fails after
            that long instead of hanging.
        progress: print a progress line to ``stream`` (default stderr).

    Raises:
        urllib.error.URLError: no connection (``.reason`` says why) or an HTTP error status
            (``urllib.error.HTTPError``, a subclass, e.g. 404).
        TimeoutError: a read stalled for more than ``timeout`` seconds.
        IncompleteDownloadError: fewer bytes arrived than the server announced.
        storage.CorruptFileError: not valid gzip; storage.HashMismatchError: the wrong content.
    """
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with atomic_output(dest) as temp_path:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(temp_path, "wb") as out:
            announced = response.headers.get("Content-Length")
            announced = int(announced) if announced and announced.isdigit() else None
            bar = ProgressLine(f"downloading {url}", total=announced, stream=stream, enabled=progress)
            try:
                for chunk in iter(lambda: response.read(CHUNK_SIZE), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
                if announced is not None and bar.done != announced:
                    raise IncompleteDownloadError(f"{url}: received {bar.done} of {announced} bytes")
                out.flush()
                os.fsync(out.fileno())  # on disk before the rename makes it look finished
            except BaseException as exc:
                bar.close(f"failed ({type(exc).__name__})")
                raise
            bar.close()
        verify_sha256(temp_path, sha256, compressed=is_gzip_path(dest), name=f"{url} (downloaded)")
