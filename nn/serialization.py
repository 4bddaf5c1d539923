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
    empty metadata. A corrupted, truncated or foreign file raises ``ValueError`` naming the file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"nn.load: no such file: {path}")
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single .npy array, not an .npz archive")
        with archive:
            state = OrderedDict()
            metadata = {}
            for key in archive.files:
                if key == METADATA_KEY:
                    metadata = json.loads(str(archive[key]))
                    if not isinstance(metadata, dict):
                        raise ValueError("its metadata is not a JSON object")
                else:
                    state[key] = archive[key]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"nn.load: {path} is not a readable model file (.npz written by nn.save): {exc}") from None
    for key, value in state.items():
        if not (np.issubdtype(value.dtype, np.number)):
            raise ValueError(f"nn.load: {path}: entry {key} has non-numeric dtype {value.dtype}")
    return state, metadata
