"""``train.py``'s command line: the flags, their defaults (from ``recipe.DEFAULTS``) and their checks."""

import argparse
import math

import nn
from data import mnist
from data.split import VALIDATION_SIZE

from .recipe import DEFAULTS, MODEL_DEFAULTS, MODELS, OPTIMIZERS, SCHEDULES, defaults_for
from .runs import AUTO_NAME, LATEST, MODEL_FILE, RUNS_ROOT, run_name_problem

# Flags that must match for --resume to continue the same run (others, e.g. --log-interval, may change).
RUN_DEFINING_FLAGS = ("model", "optimizer", "epochs", "batch_size", "lr", "momentum", "nesterov", "weight_decay",
                      "seed", "augment", "handwriting_augment", "lr_schedule", "validation_size", "train_size")


def build_parser():
    d = DEFAULTS
    # allow_abbrev=False: a misspelt flag (--epoch) is an error, not a silent abbreviation of --epochs.
    p = argparse.ArgumentParser(
        prog="train.py", allow_abbrev=False,
        description="Train LeNet5 (or the 1998 paper's LeNet-5) on MNIST with a hand-written SGD loop. Each run writes its own folder, "
                    f"{RUNS_ROOT}/<name>/ (model, checkpoint, metrics, pictures), and never overwrites another run.")
    p.add_argument("--model", choices=MODELS, default=d["model"],
                   help="lenet5: ReLU, max pooling, 28x28 input; lenet5-1998: the 1998 paper's LeNet-5 (scaled "
                        f"tanh, trainable subsampling, C3's connection table, 32x32 input) (default: {d['model']})")
    p.add_argument("--epochs", type=int, default=d["epochs"], help=f"passes over the training set (default: {d['epochs']})")
    p.add_argument("--batch-size", type=int, default=d["batch_size"],
                   help=f"training batch size (default: {d['batch_size']})")
    p.add_argument("--test-batch-size", type=int, default=1000, help="evaluation batch size (default: 1000)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=None,
                   help=f"sgd (with --momentum, --nesterov) or adam (default: {_per_model('optimizer')})")
    p.add_argument("--lr", type=float, default=None, help=f"initial learning rate (default: {_per_model('lr')})")
    p.add_argument("--momentum", type=float, default=d["momentum"], help=f"SGD momentum (default: {d['momentum']})")
    p.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=d["nesterov"],
                   help=f"Nesterov momentum (default: {'on' if d['nesterov'] else 'off'})")
    p.add_argument("--weight-decay", type=float, default=None,
                   help=f"L2 weight decay (default: {_per_model('weight_decay')})")
    p.add_argument("--lr-schedule", choices=SCHEDULES, default=d["lr_schedule"],
                   help="constant; step (x0.1 at 50%% and 75%% of the run); cosine, per step; paper (the 1998 "
                        "paper's 20 decreasing rates, spread over the run) "
                        f"(default: {d['lr_schedule']})")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=d["augment"],
                   help="random shifts, rotations and scalings of training digits "
                        f"(default: {'on' if d['augment'] else 'off'})")
    p.add_argument("--handwriting-augment", action=argparse.BooleanOptionalAction, default=d["handwriting_augment"],
                   help="with --augment, also widen strokes at random, as real pens do "
                        f"(data.augment.handwriting_augment; default: {'on' if d['handwriting_augment'] else 'off'})")
    p.add_argument("--seed", type=int, default=d["seed"],
                   help=f"seeds initialization, shuffling and augmentation (default: {d['seed']})")
    p.add_argument("--data-dir", default=None,
                   help=f"MNIST folder (default: ${mnist.ENV_VAR} if set, else ./{mnist.DEFAULT_ROOT}); missing "
                        "files are fetched into it, and a folder named here must exist unless --create-data-dir")
    p.add_argument("--create-data-dir", action="store_true",
                   help="create the --data-dir folder if it does not exist, and fetch MNIST into it "
                        "(default: refuse a folder that does not exist, in case of a typo)")
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


def _per_model(flag):
    """A help text's default: DEFAULTS' value, and each model's own where it differs."""
    own = [f"{model}: {defaults[flag]:g}" if isinstance(defaults[flag], float) else f"{model}: {defaults[flag]}"
           for model, defaults in MODEL_DEFAULTS.items() if flag in defaults]
    value = DEFAULTS[flag]
    return ", ".join([f"{value:g}" if isinstance(value, float) else str(value)] + own)


def parse_args(argv=None):
    p = build_parser()
    args = p.parse_args(argv)
    for name, value in defaults_for(args.model).items():  # flags left out take the model's defaults
        if getattr(args, name) is None:
            setattr(args, name, value)
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


def run_definition(args):
    """The flags that define a run, as a dict: recorded in checkpoints and models, compared on --resume."""
    return {k: getattr(args, k) for k in RUN_DEFINING_FLAGS}
