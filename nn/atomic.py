"""Writing a file so that readers (and crashes) never see it half written."""

import contextlib
import os
import secrets
from pathlib import Path


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary path next to ``path``; on success rename it onto ``path``, on error delete it.

    The caller writes (and may verify) the temporary file inside the ``with`` block; raising
    there discards it and leaves ``path`` untouched. The temporary file sits in the same folder
    because a rename is atomic only within one file system.
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
