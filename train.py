"""Train LeNet5 on MNIST with a hand-written SGD loop.

    python train.py                      # fetch MNIST if needed, train, write a new runs/exp<N>/
    python train.py --epochs 3 --lr-schedule constant --no-augment --name quick
    python train.py --resume             # continue the latest run (runs/latest) from its checkpoint
    python train.py --out model.npz      # write to model.npz and beside it instead of a run folder

Everything a PyTorch training loop hides is spelled out here: the forward pass, the loss, the
backward pass through every layer, the SGD step, the learning-rate schedule, evaluation in eval
mode, checkpoints, and the best model kept by validation accuracy (never by the test set).
"""

import argparse
import datetime
import importlib.metadata
import json
import math
import os
import platform
import shlex
import signal
import sys
import threading
import time

import numpy as np

import nn
from data import mnist
from data.augment import RandomAffine, handwriting_augment
from data.batches import epoch_rng, iterate
from data.normalize import NORMALIZATION, normalize
from data.split import VALIDATION_SIZE, split_validation
from data.storage import CorruptFileError
from lenet.model import LeNet5
from nn.atomic import atomic_output

RUNS_ROOT = "runs"   # relative to the working directory, like ./mnist
AUTO_NAME = "exp"     # runs are exp, exp2, exp3, ... unless --name says otherwise
LATEST = "latest"     # runs/latest points to the run started or resumed last
MODEL_FILE = "lenet5.npz"
HELD_OUT_FOR_LOGGING = 2000  # the log line's accuracy, like the original experiment's
# Flags that must match for --resume to continue the same run (others, e.g. --log-interval, may change).
RUN_DEFINING_FLAGS = ("epochs", "batch_size", "lr", "momentum", "nesterov", "weight_decay", "seed",
                      "augment", "lr_schedule", "validation_size", "train_size", "handwriting_augment")


def build_parser():
    p = argparse.ArgumentParser(
        description="Train LeNet5 on MNIST with a hand-written SGD loop. Each run writes its own folder, "
                    f"{RUNS_ROOT}/<name>/ (model, checkpoint, metrics, pictures), and never overwrites another run.")
    p.add_argument("--epochs", type=int, default=30, help="passes over the training set (default: 30)")
    p.add_argument("--batch-size", type=int, default=64, help="training batch size (default: 64)")
    p.add_argument("--test-batch-size", type=int, default=1000, help="evaluation batch size (default: 1000)")
    p.add_argument("--lr", type=float, default=0.05, help="initial learning rate (default: 0.05)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default: 0.9)")
    p.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=True,
                   help="Nesterov momentum (default: on)")
    p.add_argument("--weight-decay", type=float, default=5e-4, help="L2 weight decay (default: 5e-4)")
    p.add_argument("--lr-schedule", choices=("constant", "step", "cosine"), default="cosine",
                   help="constant; step (x0.1 at 50%% and 75%% of the run); cosine, per step (default: cosine)")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True,
                   help="random shifts, rotations and scalings of training digits (default: on)")
    p.add_argument("--handwriting-augment", action=argparse.BooleanOptionalAction, default=False,
                   help="with --augment, also widen strokes at random, as real pens do "
                        "(data.augment.handwriting_augment; default: off)")
    p.add_argument("--seed", type=int, default=1,
                   help="seeds initialization, shuffling and augmentation (default: 1)")
    p.add_argument("--data-dir", default=None,
                   help=f"MNIST folder (default: ${mnist.ENV_VAR} if set, else ./mnist); fetched if missing")
    p.add_argument("--name", default=None,
                   help=f"the run's folder name under {RUNS_ROOT}/ (default: the next free one of "
                        f"{AUTO_NAME}, {AUTO_NAME}2, {AUTO_NAME}3, ...); with --resume, the run to continue")
    p.add_argument("--exist-ok", action="store_true",
                   help="allow --name to reuse an existing run folder, replacing its run (default: refuse)")
    p.add_argument("--out", metavar="PATH", default=None,
                   help="write the best model to PATH (replacing it) and the checkpoint, metrics and pictures "
                        f"beside it, instead of a run folder (default: {RUNS_ROOT}/<name>/{MODEL_FILE})")
    p.add_argument("--log-interval", type=int, default=50,
                   help="steps between log lines with held-out accuracy (default: 50; 0 turns them off)")
    p.add_argument("--resume", action="store_true",
                   help=f"continue from a checkpoint: the run {RUNS_ROOT}/{LATEST} points to, the one --name "
                        "names, or the one beside --out (default: start a new run)")
    p.add_argument("--backend", choices=nn.backend.BACKENDS, default=None,
                   help="hot-loop implementation (default: numba, or $NN_BACKEND)")
    p.add_argument("--validation-size", type=int, default=VALIDATION_SIZE,
                   help=f"training images held out (the last ones) to choose the best model "
                        f"(default: {VALIDATION_SIZE})")
    p.add_argument("--train-size", type=int, default=None,
                   help="train on only the first N training images, for quick experiments (default: all)")
    p.add_argument("--no-download", action="store_true",
                   help="fail instead of fetching missing MNIST files (default: fetch them)")
    return p


def parse_args(argv=None):
    p = build_parser()
    args = p.parse_args(argv)
    for name in ("epochs", "batch_size", "test_batch_size", "validation_size", "train_size"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.validation_size >= mnist.TRAIN_SIZE:
        p.error(f"--validation-size must be below the {mnist.TRAIN_SIZE:,} training images, got {args.validation_size}")
    if args.log_interval < 0:
        p.error(f"--log-interval must be >= 0, got {args.log_interval}")
    if not args.lr > 0 or not math.isfinite(args.lr):
        p.error(f"--lr must be a finite number > 0, got {args.lr}")
    if not 0 <= args.momentum < 1:
        p.error(f"--momentum must be in [0, 1), got {args.momentum}")
    if args.nesterov and args.momentum == 0:
        args.nesterov = False  # Nesterov is defined only with momentum; plain SGD was asked for
    if args.weight_decay < 0:
        p.error(f"--weight-decay must be >= 0, got {args.weight_decay}")
    if args.out is not None and (args.name is not None or args.exist_ok):
        p.error("--out PATH writes outside the run folders: it takes neither --name nor --exist-ok")
    if args.name is not None:
        problem = run_name_problem(args.name)
        if problem:
            p.error(f"--name {args.name!r}: {problem}")
    return args


def learning_rate(schedule, base_lr, step, total_steps):
    """The learning rate at global step ``step`` of ``total_steps``.

    cosine: ``base_lr * (1 + cos(pi * step / total_steps)) / 2``, from base_lr down towards 0
    (never reaching it: the last step is ``total_steps - 1``);
    step: ``base_lr``, then x0.1 from 50% of the run and x0.01 from 75%; constant: ``base_lr``.
    """
    if schedule == "cosine":
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
    if schedule == "step":
        return base_lr * (0.1 ** ((step >= total_steps // 2) + (step >= 3 * total_steps // 4)))
    return base_lr


def evaluate(model, images, labels, batch_size):
    """Mean cross-entropy, accuracy and predicted probabilities of ``model`` on normalized ``images``."""
    was_training = model.training
    model.eval()
    logits = np.concatenate([model(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])
    model.train(was_training)
    loss = float(nn.CrossEntropyLoss().eval()(logits, labels))  # eval: the loss keeps nothing either
    accuracy = float(np.mean(logits.argmax(axis=1) == labels))
    return loss, accuracy, nn.softmax(logits, axis=1)


class Progress:
    """One self-overwriting status line on a terminal; silent when output is piped."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.enabled = stream.isatty()
        self.last = 0.0

    def update(self, text, force=False):
        now = time.monotonic()
        if self.enabled and (force or now - self.last > 0.25):
            self.stream.write("\r" + text[:120].ljust(120))
            self.stream.flush()
            self.last = now

    def clear(self):
        if self.enabled:
            self.stream.write("\r" + " " * 120 + "\r")
            self.stream.flush()


# -- where a run writes -------------------------------------------------------------------------

def paths_for(out):
    """Where a run writes: the best model at ``out`` and its companions beside it (relative stays relative)."""
    stem = out[:-4] if out.endswith(".npz") else out
    folder = os.path.dirname(out)
    return {
        "model": out,
        "checkpoint": stem + ".checkpoint.npz",
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


def claim_run_folder(model_path, args):
    """Create the folder ``model_path`` goes in and point runs/latest at a run folder; return the path.

    An automatic name that another train.py took in the meantime moves on to the next free one.
    --exist-ok on an existing run deletes that run's files first, so nothing of it is mistaken
    for this run's (a checkpoint to resume, say).
    """
    run_dir = os.path.dirname(model_path)
    if args.out is not None:
        os.makedirs(os.path.abspath(run_dir), exist_ok=True)
        return model_path
    if not args.resume:
        os.makedirs(RUNS_ROOT, exist_ok=True)
        while True:
            try:
                os.mkdir(run_dir)
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
    return os.path.join(run_dir, MODEL_FILE)


def write_metrics(path, history):
    """All epochs so far as JSON lines, rewritten atomically (a resumed run keeps one line per epoch)."""
    with atomic_output(path) as temp_path, open(temp_path, "w") as f:
        for row in history:
            f.write(json.dumps(row) + "\n")


def save_checkpoint(path, model, optimizer, epoch, history, best, args):
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    state.update({f"optimizer.{k}": v for k, v in optimizer.state_dict().items()})
    nn.save(state, path, metadata={"epoch": epoch, "history": history, "best": best,
                                   "run": {k: getattr(args, k) for k in RUN_DEFINING_FLAGS}})


def load_checkpoint(path, model, optimizer, args):
    state, meta = nn.load(path)
    run = {k: getattr(args, k) for k in RUN_DEFINING_FLAGS}
    differing = {k: (meta["run"].get(k), run[k]) for k in RUN_DEFINING_FLAGS if meta["run"].get(k) != run[k]}
    if differing:
        detail = ", ".join(f"--{k.replace('_', '-')} was {a!r}, now {b!r}" for k, (a, b) in differing.items())
        raise SystemExit(f"train.py: cannot resume {path}: the run was defined differently ({detail}); "
                         "pass the same flags, or start afresh without --resume")
    model.load_state_dict({k[len("model."):]: v for k, v in state.items() if k.startswith("model.")})
    optimizer.load_state_dict({k[len("optimizer."):]: v for k, v in state.items() if k.startswith("optimizer.")})
    return meta["epoch"], meta["history"], meta["best"]


def machine_description():
    """The CPU and library versions training ran on: another CPU or version may round differently."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:  # Linux; platform.processor() says only "x86_64"
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    versions = {}
    for package in ("numpy", "numba"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "python": platform.python_version(), **versions}


def model_metadata(args, epoch, val, test, data_hashes, started):
    return {
        "architecture": "LeNet5",
        "input": {"shape": [1, 28, 28], "pixels": "MNIST: white ink (255) on black (0)"},
        "normalization": dict(NORMALIZATION),
        "epoch": epoch,
        "val_loss": val[0], "val_accuracy": val[1],
        "test_loss": test[0], "test_accuracy": test[1],
        "seed": args.seed,
        "hyperparameters": {k: getattr(args, k) for k in RUN_DEFINING_FLAGS},
        "backend": nn.get_backend(),
        "machine": machine_description(),
        "data_sha256": data_hashes,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "train_seconds": round(time.monotonic() - started, 1),
    }


def make_optimizer(model, args):
    return nn.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                        weight_decay=args.weight_decay, nesterov=args.nesterov)


def warm_up(args, train_images, train_labels, augment, eval_sets):
    """Call, untimed, every kernel the run will call, so that epoch timings exclude compilation.

    numba compiles a kernel (or loads it from its disk cache) at its first call, and picks a serial
    or a parallel variant by the size of the job: a training step at the real batch size and at the
    epoch's short last batch, and evaluations at every batch size evaluation will see, meet them
    all. They run on a throwaway model and optimizer, on the first images unshuffled, with a
    generator of their own, so the run's model, optimizer and random streams are untouched: a run
    is bit for bit the same with or without this (tested).

    ``eval_sets`` is a list of (normalized images, labels) that ``evaluate`` will be called on.
    """
    model, criterion = LeNet5(seed=0), nn.CrossEntropyLoss()
    optimizer = make_optimizer(model, args)
    if augment:
        augment(train_images, np.random.default_rng(0))  # the size matters: it picks the variant
    n_train = len(train_images)
    for size in sorted({min(args.batch_size, n_train), n_train % args.batch_size} - {0}):
        criterion(model(normalize(train_images[:size])), train_labels[:size].astype(np.int64))
        optimizer.zero_grad()
        model.backward(criterion.backward(), need_input_grad=False)
        optimizer.step()
    for images, labels in eval_sets:
        for size in sorted({min(args.test_batch_size, len(images)), len(images) % args.test_batch_size} - {0}):
            evaluate(model, images[:size], labels[:size], size)


def train(args, output):
    """Train as ``args`` say; ``output["model"]`` is the best model's path (see choose_model_path).

    It is updated once the run's folder is claimed, for the caller's messages after an interrupt.
    """
    if args.backend:
        nn.set_backend(args.backend)
    root = mnist.resolve_root(args.data_dir)
    mnist.ensure(root, download=not args.no_download)
    train_images, train_labels = mnist.load(root, train=True)
    test_images, test_labels = mnist.load(root, train=False)
    data_hashes = dict(mnist.SHA256)  # load() verified every file against these
    (train_images, train_labels), (val_images, val_labels) = split_validation(
        train_images, train_labels, args.validation_size)
    if args.train_size is not None:
        train_images, train_labels = train_images[:args.train_size], train_labels[:args.train_size]
    val_x, test_x = normalize(val_images), normalize(test_images)
    val_y, test_y = val_labels.astype(np.intp), test_labels.astype(np.intp)

    model = LeNet5(seed=args.seed)
    criterion = nn.CrossEntropyLoss()
    optimizer = make_optimizer(model, args)
    start_epoch, history, best = 0, [], {"val_accuracy": -1.0, "epoch": 0}
    if args.resume:
        checkpoint = paths_for(output["model"])["checkpoint"]
        if not os.path.exists(checkpoint):
            raise SystemExit(f"train.py: --resume: no checkpoint at {checkpoint} (the run stopped before its "
                             "first epoch ended, or never started); start afresh without --resume")
        start_epoch, history, best = load_checkpoint(checkpoint, model, optimizer, args)
        print(f"Resuming after epoch {start_epoch} from {checkpoint}")
    output["model"] = claim_run_folder(output["model"], args)
    paths = paths_for(output["model"])

    augment = None
    if args.augment:
        augment = (handwriting_augment if args.handwriting_augment else RandomAffine)(backend=nn.get_backend())
    n_train = len(train_images)
    steps_per_epoch = math.ceil(n_train / args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    print(f"LeNet5: {sum(p.size for p in model.parameters()):,} parameters, backend {nn.get_backend()}; "
          f"{n_train:,} training, {len(val_y):,} validation, {len(test_y):,} test images -> "
          f"{os.path.dirname(paths['model']) or '.'}", flush=True)
    held_out = (val_x[:HELD_OUT_FOR_LOGGING], val_y[:HELD_OUT_FOR_LOGGING])
    warm_up(args, train_images, train_labels, augment,
            [(val_x, val_y), (test_x, test_y)] + ([held_out] if args.log_interval else []))
    progress = Progress()
    started = time.monotonic()
    for epoch in range(start_epoch + 1, args.epochs + 1):
        # One generator per epoch, derived from (seed, epoch): shuffling and augmentation of epoch e
        # are the same whether or not the run was interrupted before it, so a resumed run ends
        # with the same model, bit for bit.
        rng = epoch_rng(args.seed, epoch)
        epoch_start = time.monotonic()
        eval_seconds = 0.0  # the log lines' held-out checks, then validation and test: not training time
        # A new random variant of every training image each epoch, made in one parallel pass
        # before shuffling (per batch, the kernel is too small to use both cores).
        images = augment(train_images, rng) if augment else train_images
        epoch_batches = iterate(images, train_labels, args.batch_size, rng=rng)
        loss_sum, correct, seen = 0.0, 0, 0
        for step_in_epoch, (x, y) in enumerate(epoch_batches):
            step = (epoch - 1) * steps_per_epoch + step_in_epoch
            optimizer.lr = learning_rate(args.lr_schedule, args.lr, step, total_steps)
            logits = model(x)                          # forward
            loss = criterion(logits, y)
            if not np.isfinite(loss):
                progress.clear()
                raise SystemExit(f"train.py: the loss became {loss} at epoch {epoch}, step {step_in_epoch + 1}; "
                                 f"training diverged at lr {optimizer.lr:.4g}. Try a smaller --lr, "
                                 f"e.g. --lr {args.lr / 10:g}. Nothing was saved from this epoch.")
            optimizer.zero_grad()
            # backward: fills every parameter's .grad (nothing needs d loss / d pixels)
            model.backward(criterion.backward(), need_input_grad=False)
            optimizer.step()                           # p <- p - lr * (momentum-smoothed grad)

            loss_sum += float(loss) * len(y)
            correct += int((logits.argmax(axis=1) == y).sum())
            seen += len(y)
            if args.log_interval and (step_in_epoch + 1) % args.log_interval == 0:
                eval_start = time.monotonic()
                _, held_out_acc, _ = evaluate(model, *held_out, args.test_batch_size)
                eval_seconds += time.monotonic() - eval_start
                progress.clear()
                print(f"Train Epoch: {epoch} [{seen}/{n_train} ({100 * seen / n_train:.0f}%)]\t"
                      f"Loss: {float(loss):.6f}\tHeld-out accuracy: {100 * held_out_acc:.2f}%", flush=True)
            rate = seen / max(time.monotonic() - epoch_start - eval_seconds, 1e-9)
            progress.update(f"epoch {epoch}/{args.epochs} [{seen}/{n_train}] {rate:,.0f} img/s, "
                            f"ETA {max(n_train - seen, 0) / rate:.0f}s")
        epoch_seconds = time.monotonic() - epoch_start - eval_seconds
        progress.clear()

        eval_start = time.monotonic()
        val = evaluate(model, val_x, val_y, args.test_batch_size)
        test = evaluate(model, test_x, test_y, args.test_batch_size)
        eval_seconds += time.monotonic() - eval_start
        row = {"epoch": epoch, "lr": optimizer.lr, "train_loss": loss_sum / seen, "train_accuracy": correct / seen,
               "val_loss": val[0], "val_accuracy": val[1], "test_loss": test[0], "test_accuracy": test[1],
               "epoch_seconds": round(epoch_seconds, 2), "images_per_second": round(seen / epoch_seconds, 1),
               "eval_seconds": round(eval_seconds, 2)}
        history.append(row)
        print(f"Epoch {epoch}: train loss {row['train_loss']:.4f}, "
              f"validation loss {val[0]:.4f} accuracy {100 * val[1]:.2f}%, "
              f"Test set: Average loss: {test[0]:.4f}, Accuracy: {round(test[1] * len(test_y))}/{len(test_y)} "
              f"({100 * test[1]:.2f}%); training {epoch_seconds:.1f}s, {row['images_per_second']:,.0f} img/s, "
              f"evaluation {eval_seconds:.1f}s", flush=True)
        if val[1] > best["val_accuracy"]:
            best = {"val_accuracy": val[1], "epoch": epoch, "test_accuracy": test[1]}
            nn.save(model, paths["model"], metadata=model_metadata(args, epoch, val, test, data_hashes, started))
            print(f"  best validation accuracy so far: saved {paths['model']}")
        write_metrics(paths["metrics"], history)
        save_checkpoint(paths["checkpoint"], model, optimizer, epoch, history, best, args)

    finish(paths, history, best, test_images, test_x, test_y, args)
    return best


def finish(paths, history, best, test_images, test_x, test_y, args):
    """Pictures of the run, drawn from the best model: curves, confusion matrix, misclassified digits."""
    from lenet import load_model, plots
    model = load_model(paths["model"])
    _, accuracy, probabilities = evaluate(model, test_x, test_y, args.test_batch_size)
    predicted = probabilities.argmax(axis=1)
    plots.save_curves(history, paths["curves"])
    plots.save_confusion_matrix(plots.confusion_matrix(test_y, predicted), paths["confusion"],
                                title=f"LeNet5, best epoch {best['epoch']} of {args.epochs}")
    wrong = predicted != test_y
    plots.save_misclassified(test_images[wrong], test_y[wrong], predicted[wrong], paths["misclassified"],
                             probabilities=probabilities[wrong])
    print(f"Best model: epoch {best['epoch']}, validation accuracy {100 * best['val_accuracy']:.2f}%, "
          f"test accuracy {100 * accuracy:.2f}% ({int(wrong.sum())} errors) -> {paths['model']}")
    print(f"Metrics: {paths['metrics']}; pictures: {paths['curves']}, {paths['confusion']}, "
          f"{paths['misclassified']}")
    print(f"Serve it: python serve.py --model {shlex.quote(paths['model'])}")


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill PID``), raised where the program is, so that it stops as Ctrl-C stops it."""


def _raise_terminated(signum, frame):
    raise Terminated()


def resume_command(argv, output, args):
    """The command that continues this run: the same flags plus --resume (and --name for a run folder)."""
    extra = [] if args.resume else ["--resume"]
    if args.out is None and args.name is None:
        extra += ["--name", os.path.basename(os.path.dirname(output["model"]))]
    return shlex.join(["python", "train.py", *argv, *extra])


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    # On the main thread only (signal.signal cannot be called elsewhere, e.g. when a test runs main).
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous_handler = signal.signal(signal.SIGTERM, _raise_terminated) if on_main_thread else None
    output = {"model": None}
    try:
        output["model"] = choose_model_path(args)
        train(args, output)
    except KeyboardInterrupt as exc:
        how = "Terminated (SIGTERM)" if isinstance(exc, Terminated) else "Interrupted"
        checkpoint = output["model"] and paths_for(output["model"])["checkpoint"]
        if checkpoint and os.path.exists(checkpoint):
            print(f"\n{how}. The last finished epoch is checkpointed in {checkpoint}; continue with:\n"
                  f"  {resume_command(argv, output, args)}", file=sys.stderr)
        else:
            print(f"\n{how} before the first epoch finished; nothing was saved.", file=sys.stderr)
        # The status a shell gives a program the signal killed: 128 + the signal's number.
        return 128 + (signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)
    except (mnist.FetchError, FileNotFoundError, CorruptFileError) as exc:
        # Missing or damaged data: one line that says what to do, not a traceback.
        print(f"train.py: {exc}", file=sys.stderr)
        return 1
    finally:
        if previous_handler is not None:  # None also when the old handler was not set from Python
            signal.signal(signal.SIGTERM, previous_handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
