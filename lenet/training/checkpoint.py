"""The per-epoch checkpoint (model, optimizer, history) and the metrics file, both rewritten atomically."""

import json
import os

import nn
from nn.atomic import atomic_output

from .options import RUN_DEFINING_FLAGS, run_definition
from .recipe import DEFAULTS


def write_metrics(path, history):
    """All epochs so far as JSON lines, rewritten atomically (a resumed run keeps one line per epoch)."""
    with atomic_output(path) as temp_path, open(temp_path, "w") as f:
        for row in history:
            f.write(json.dumps(row) + "\n")


def save_checkpoint(path, model, optimizer, epoch, history, best, args):
    """Model and optimizer state under ``model.``/``optimizer.`` keys; epoch, history, best and the run's flags as metadata."""
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    state.update({f"optimizer.{k}": v for k, v in optimizer.state_dict().items()})
    nn.save(state, path, metadata={"epoch": epoch, "history": history, "best": best, "run": run_definition(args)})


def load_checkpoint(path, model, optimizer, args):
    """Restore ``model`` and ``optimizer`` from ``path``; -> (epoch, history, best).

    Refuses (SystemExit naming each flag) a checkpoint of a run defined by other flags.
    """
    if not os.path.exists(path):
        raise SystemExit(f"train.py: --resume: no checkpoint at {path} (the run stopped before its "
                         "first epoch ended, or never started); start afresh without --resume")
    state, meta = nn.load(path)
    run = run_definition(args)
    # A checkpoint older than a flag (--model, --optimizer, --handwriting-augment) was at its default.
    recorded = {k: meta["run"].get(k, DEFAULTS.get(k)) for k in RUN_DEFINING_FLAGS}
    differing = {k: (recorded[k], run[k]) for k in RUN_DEFINING_FLAGS if recorded[k] != run[k]}
    if differing:
        detail = ", ".join(f"--{k.replace('_', '-')} was {a!r}, now {b!r}" for k, (a, b) in differing.items())
        raise SystemExit(f"train.py: cannot resume {path}: the run was defined differently ({detail}); "
                         "pass the same flags, or start afresh without --resume")
    model.load_state_dict({k[len("model."):]: v for k, v in state.items() if k.startswith("model.")})
    optimizer.load_state_dict({k[len("optimizer."):]: v for k, v in state.items() if k.startswith("optimizer.")})
    return meta["epoch"], meta["history"], meta["best"]
