"""Saving and loading state dicts as one ``.npz`` file; never pickle.

Layout: one array per state-dict key, plus the metadata as a JSON string under ``__metadata__``.
Anyone can read it with ``np.load(path, allow_pickle=False)``.
"""

import json
import os
import zipfile
from collections import OrderedDict

import numpy as np

from .atomic import atomic_output

METADATA_KEY = "__metadata__"


def save(module_or_state_dict, path, metadata=None):
    """Write a module's state dict (or a state dict) and JSON-able ``metadata`` to ``path`` atomically.

    The file is written to a temporary file in the same folder, then renamed over ``path``, so a
    crash never leaves a half-written model where a good one was.
    """
    state = module_or_state_dict.state_dict() if hasattr(module_or_state_dict, "state_dict") \
        else module_or_state_dict
    if not hasattr(state, "items"):
        raise TypeError(f"nn.save: expected a Module or a mapping of name -> array, got {type(state).__name__}")
    arrays = OrderedDict()
    for key, value in state.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"nn.save: state dict keys must be non-empty strings, got {key!r}")
        if key == METADATA_KEY:
            raise ValueError(f"nn.save: the key {METADATA_KEY!r} is reserved for the metadata")
        value = np.asarray(value)
        if value.dtype == object:
            raise TypeError(f"nn.save: {key} is an object array; only numeric arrays are saved (never pickled)")
        arrays[key] = value
    try:
        arrays[METADATA_KEY] = np.array(json.dumps(metadata if metadata is not None else {}, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"nn.save: metadata must be JSON-serializable (finite numbers, str, list, dict): {exc}")

    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_output(path) as temp_path, open(temp_path, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())


def load(path):
    """Read a file written by :func:`save` -> ``(state_dict, metadata)``.

    A plain ``.npz`` of arrays (e.g. a PyTorch state dict saved with ``np.savez``) loads too, with
    empty metadata. Anything else raises ``ValueError`` naming the file and what it is instead:
    not a zip archive (an .npz is one: text, a single .npy array, a pickle, ...), a zip holding
    other things than arrays (a PyTorch .pth), damaged or truncated, an entry of Python objects,
    metadata that is not a JSON object. Nothing is ever unpickled.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"nn.load: no such file: {path}")
    with open(path, "rb") as f:
        head = f.read(32)
    if not head.startswith(ZIP_SIGNATURES):
        raise ValueError(f"nn.load: {path} is not a model file written by nn.save (an .npz, which is a zip "
                         f"archive): {_describe_non_zip(head)}")
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.namelist()
            foreign = [name for name in members if not name.endswith(".npy")]
            if foreign:
                raise ValueError(_describe_foreign_zip(foreign))
            state, metadata = OrderedDict(), {}
            for member in members:
                key = member[:-len(".npy")]
                with archive.open(member) as f:
                    value = _read_entry(f, key)
                if key == METADATA_KEY:
                    metadata = json.loads(str(value))
                    if not isinstance(metadata, dict):
                        raise ValueError(f"its {METADATA_KEY} entry is not a JSON object")
                else:
                    state[key] = value
    except json.JSONDecodeError as exc:
        raise ValueError(f"nn.load: {path}: its {METADATA_KEY} entry is not JSON ({exc})") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"nn.load: {path} is not a readable model file written by nn.save: {exc}") from None
    for key, value in state.items():
        if not np.issubdtype(value.dtype, np.number):
            raise ValueError(f"nn.load: {path}: entry {key} has non-numeric dtype {value.dtype}")
    return state, metadata


# A zip file starts with a local file header, or, when it holds nothing, the end-of-archive record.
ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")


def _read_entry(f, key):
    try:
        return np.lib.format.read_array(f, allow_pickle=False)
    except ValueError as exc:
        # NumPy's own message about object arrays recommends unpickling; the file is simply not ours.
        if "pickle" in str(exc):
            raise ValueError(f"entry {key} holds Python objects (pickled data), not numbers; "
                             "nn.save never writes those and nn.load never reads them") from None
        raise ValueError(f"entry {key} is not a NumPy array ({exc})") from None


def _describe_non_zip(head):
    """What a file that is not a zip archive seems to be, from its first bytes."""
    if not head:
        return "this file is empty"
    if head.startswith(b"\x93NUMPY"):
        return "this is a single NumPy array (.npy, as np.save writes), not an .npz archive of named arrays"
    if head[:1] == b"\x80":
        return ("this looks like a pickle (e.g. an older torch.save file); nn.load never unpickles: convert it "
                "to .npz of arrays where it was made (the README shows how for PyTorch)")
    for cut in range(4):  # the first bytes may end inside a multi-byte UTF-8 character
        try:
            text = head[:len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
        if all(c.isprintable() or c.isspace() for c in text):
            first_line = (text.strip().splitlines() or [""])[0]
            return f"this is a text file (it begins {first_line[:24]!r})"
        break
    return f"it begins with the bytes {head[:12]!r}"


def _describe_foreign_zip(foreign):
    shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
    are = "is not a NumPy .npy entry" if len(foreign) == 1 else "are not NumPy .npy entries"
    message = f"it is a zip archive but not an .npz of arrays: {shown} {are}"
    if any(name.endswith("data.pkl") for name in foreign):
        message += ("; it looks like a PyTorch file (torch.save): convert it to .npz where PyTorch is installed "
                    "(the README shows how)")
    return message
