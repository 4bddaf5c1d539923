"""Run folders: every training run writes ``runs/<name>/`` and never overwrites another run.

Names are ``exp``, ``exp2``, ``exp3``, ... unless ``--name`` says otherwise; ``runs/latest``
points to the run started or resumed last. ``resolve_model_path`` turns what a user types
(a model file, a run folder, a checkpoint by mistake) into the model file to load, or a message
that says what to type instead.
"""

import os
import shlex
import shutil

from nn.atomic import atomic_output

RUNS_ROOT = "runs"   # relative to the working directory, like ./mnist
AUTO_NAME = "exp"     # runs are exp, exp2, exp3, ... unless --name says otherwise
LATEST = "latest"     # runs/latest points to the run started or resumed last
MODEL_FILE = "lenet5.npz"
CHECKPOINT_SUFFIX = ".checkpoint.npz"


def paths_for(out):
    """Where a run writes: the best model at ``out`` and its companions beside it (relative stays relative)."""
    stem = out[:-4] if out.endswith(".npz") else out
    folder = os.path.dirname(out)
    return {
        "model": out,
        "checkpoint": stem + CHECKPOINT_SUFFIX,
        "metrics": stem + ".metrics.jsonl",
        "curves": os.path.join(folder, "curves.png"),
        "confusion": os.path.join(folder, "confusion_matrix.png"),
        "misclassified": os.path.join(folder, "misclassified.png"),
    }


def run_name_problem(name):
    """Why ``name`` cannot name a folder under runs/, or None if it can."""
    if not name or name.startswith("."):
        return "a run's name must be non-empty and not start with '.'"
    if name == LATEST:
        return f"{RUNS_ROOT}/{LATEST} is the pointer to the latest run"
    if "/" in name or os.sep in name or (os.altsep and os.altsep in name):
        return "a run's name is one folder name, without '/'"
    return None


def next_run_name(root=RUNS_ROOT):
    """``exp`` for the first run in ``root``, then ``exp<N>``, N one more than the highest there.

    One more than the highest rather than the first gap, so that a later run never gets a lower
    number than an earlier one that still exists.
    """
    numbers = [0]
    for entry in os.listdir(root) if os.path.isdir(root) else ():
        if entry == AUTO_NAME:
            numbers.append(1)
        elif entry.startswith(AUTO_NAME) and entry[len(AUTO_NAME):].isdigit():
            numbers.append(int(entry[len(AUTO_NAME):]))
    n = max(numbers) + 1
    return AUTO_NAME if n == 1 else f"{AUTO_NAME}{n}"


def read_latest(root=RUNS_ROOT):
    """The folder of the run ``root/latest`` points to, or None if there is no pointer.

    The pointer is a relative symlink, or, where the platform makes none, a text file holding the
    run's name; both are read.
    """
    pointer = os.path.join(root, LATEST)
    if os.path.islink(pointer):
        name = os.readlink(pointer)
    elif os.path.isfile(pointer):
        with open(pointer, encoding="utf-8") as f:
            name = f.read().strip()
    else:
        return None
    return os.path.join(root, os.path.basename(os.path.normpath(name)))


def point_latest(run_dir):
    """Make ``<root>/latest`` point to ``run_dir``, replacing the old pointer atomically."""
    root, name = os.path.split(run_dir)
    pointer = os.path.join(root, LATEST)
    temp = os.path.join(root, f".{LATEST}.{os.getpid()}.part")
    try:
        os.symlink(name, temp, target_is_directory=True)
        os.replace(temp, pointer)
    except OSError:  # e.g. Windows without the privilege to make symlinks: a text file instead
        if os.path.lexists(temp):
            os.unlink(temp)
        with atomic_output(pointer) as temp_path, open(temp_path, "w", encoding="utf-8") as f:
            f.write(name + "\n")


def choose_model_path(args):
    """The best model's path for these flags: beside --out, or in a run folder under runs/.

    Refuses (SystemExit, with what to do instead) a --name that already holds a run unless
    --exist-ok, and a --resume with no run to continue. A new folder is created only by
    ``claim_run_folder``, once the data is loaded.
    """
    if args.out is not None:
        return args.out
    if args.resume:
        run_dir = os.path.join(RUNS_ROOT, args.name) if args.name else read_latest()
        if run_dir is None:
            raise SystemExit(f"train.py: --resume: no run to continue, {RUNS_ROOT}/{LATEST} does not exist; "
                             "start one with `python train.py`")
        return os.path.join(run_dir, MODEL_FILE)
    if args.name is None:
        return os.path.join(RUNS_ROOT, next_run_name(), MODEL_FILE)
    run_dir = os.path.join(RUNS_ROOT, args.name)
    if os.path.exists(run_dir) and not args.exist_ok:
        raise SystemExit(f"train.py: {run_dir} already exists and is never overwritten by default; choose another "
                         f"--name, continue that run with --resume --name {args.name}, or replace it with --exist-ok")
    return os.path.join(run_dir, MODEL_FILE)


class ClaimedRun:
    """The folder a new run claimed, and how to give it back if the run stops before its first epoch."""

    def __init__(self, model_path, created, previous_latest):
        self.model_path = model_path
        self.created = created                  # True if this run made the folder (False: --out, --resume, --exist-ok)
        self.previous_latest = previous_latest  # what runs/latest pointed to before, or None

    def release(self):
        """Undo the claim of a run that saved nothing: remove the empty folder, put runs/latest back.

        Returns a sentence saying what was undone, or None when nothing was (a folder this run
        did not create, or one that holds files).
        """
        run_dir = os.path.dirname(self.model_path)
        if not self.created or (os.path.isdir(run_dir) and os.listdir(run_dir)):
            return None
        shutil.rmtree(run_dir, ignore_errors=True)
        pointer = os.path.join(os.path.dirname(run_dir), LATEST)
        if self.previous_latest and os.path.isdir(self.previous_latest):
            point_latest(self.previous_latest)
            return f"removed the empty {run_dir}; {pointer} points to {self.previous_latest} again"
        if os.path.lexists(pointer):
            os.unlink(pointer)
        return f"removed the empty {run_dir} and {pointer}"


def claim_run_folder(model_path, args):
    """Create the folder ``model_path`` goes in and point runs/latest at a run folder; -> ClaimedRun.

    An automatic name that another train.py took in the meantime moves on to the next free one.
    --exist-ok on an existing run deletes that run's files first, so nothing of it is mistaken
    for this run's (a checkpoint to resume, say).
    """
    run_dir = os.path.dirname(model_path)
    if args.out is not None:
        os.makedirs(os.path.abspath(run_dir), exist_ok=True)
        return ClaimedRun(model_path, created=False, previous_latest=None)
    previous_latest, created = read_latest(), False
    if not args.resume:
        os.makedirs(RUNS_ROOT, exist_ok=True)
        while True:
            try:
                os.mkdir(run_dir)
                created = True
                break
            except FileExistsError:
                if args.name is None:
                    run_dir = os.path.join(RUNS_ROOT, next_run_name())
                elif args.exist_ok:
                    print(f"Replacing the run in {run_dir} (--exist-ok)")
                    for path in paths_for(os.path.join(run_dir, MODEL_FILE)).values():
                        if os.path.exists(path):
                            os.unlink(path)
                    break
                else:
                    raise SystemExit(f"train.py: {run_dir} was created meanwhile by another run; choose another --name")
    point_latest(run_dir)
    return ClaimedRun(os.path.join(run_dir, MODEL_FILE), created, previous_latest)


def resume_command(argv, model_path, args):
    """The command that continues this run: the same flags plus --resume (and --name for a run folder)."""
    extra = [] if args.resume else ["--resume"]
    if args.out is None and args.name is None:
        extra += ["--name", os.path.basename(os.path.dirname(model_path))]
    return shlex.join(["python", "train.py", *argv, *extra])


def resolve_model_path(path):
    """The model file that ``path`` names, as typed after ``--model``.

    A model file is itself; a run folder (``runs/exp``) names its ``lenet5.npz``. A training
    checkpoint (``runs/exp/lenet5.checkpoint.npz``) is refused: it holds the model and the
    optimizer's state for resuming, and the message names the model file beside it.

    Raises:
        FileNotFoundError: nothing at ``path``, or a folder without a model file (both say what to do).
        ValueError: ``path`` is a training checkpoint.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        model = os.path.join(path, MODEL_FILE)
        if os.path.isfile(model):
            return model
        raise FileNotFoundError(f"{path} is a folder without a {MODEL_FILE} (a run that has not finished an epoch "
                                "yet?); pass a model file, e.g. --model runs/exp/lenet5.npz")
    if path.endswith(CHECKPOINT_SUFFIX):
        model = path[:-len(CHECKPOINT_SUFFIX)] + ".npz"
        raise ValueError(f"{path} is a training checkpoint (model and optimizer state, for train.py --resume), "
                         f"not a model to serve; pass the model beside it: --model {model}")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no model file at {path} (train one with `python train.py`, or pass --model PATH)")
    return path


def latest_model_path(root=RUNS_ROOT):
    """The best model of the run ``root/latest`` points to, or None if there is none yet."""
    run_dir = read_latest(root)
    model = run_dir and os.path.join(run_dir, MODEL_FILE)
    return model if model and os.path.isfile(model) else None
