"""Train LeNet5 (or, with --model lenet5-1998, the 1998 paper's LeNet-5) on MNIST with a hand-written SGD loop.

    python train.py                      # fetch MNIST if needed, train, write a new runs/exp<N>/
    python train.py --epochs 3 --lr-schedule constant --no-augment --name quick
    python train.py --resume             # continue the latest run (runs/latest) from its checkpoint
    python train.py --out model.npz      # write to model.npz and beside it instead of a run folder

This file is the loop a PyTorch example hides, spelled out: the forward pass, the loss, the
backward pass through every layer, the SGD step, the learning-rate schedule, evaluation in eval
mode, and the best model kept by validation accuracy (never by the test set). The recipe (model,
optimizer, augmentation, schedule, defaults) is ``lenet/training/recipe.py``; run folders,
checkpoints, provenance and signals are the other modules of ``lenet/training/``.
"""

import math
import os
import sys
import time
from types import SimpleNamespace

import numpy as np

import nn
from data import mnist
from data.batches import epoch_rng, iterate
from data.split import split_validation
from data.storage import CorruptFileError
from lenet.training import recipe, signals
from lenet.training.checkpoint import load_checkpoint, save_checkpoint, write_metrics
from lenet.training.evaluation import evaluate
from lenet.training.options import build_parser, parse_args  # noqa: F401  (build_parser: train.build_parser)
from lenet.training.progress import Progress
from lenet.training.provenance import model_metadata
from lenet.training.report import finish, startup_lines
from lenet.training.runs import choose_model_path, claim_run_folder, paths_for, resume_command
from lenet.training.warmup import warm_up
from nn.ops.parallel import busy_cores_message

HELD_OUT_FOR_LOGGING = 2000  # the log line's accuracy, like the original experiment's


def load_data(args, model):
    """MNIST split as the flags say: raw training images and labels, validation and test sets as ``model`` reads them."""
    root = mnist.ensure(args.data_dir, download=not args.no_download, create=args.create_data_dir)
    train_images, train_labels = mnist.load(root, train=True)
    test_images, test_labels = mnist.load(root, train=False)
    (train_images, train_labels), (val_images, val_labels) = split_validation(
        train_images, train_labels, args.validation_size)
    if args.train_size is not None:
        train_images, train_labels = train_images[:args.train_size], train_labels[:args.train_size]
    return SimpleNamespace(train_images=train_images, train_labels=train_labels, test_images=test_images,
                           val_x=model.preprocess(val_images), val_y=val_labels.astype(np.intp),
                           test_x=model.preprocess(test_images), test_y=test_labels.astype(np.intp),
                           hashes=dict(mnist.SHA256))  # load() verified every file against these


def train(args, run):
    """Train as ``args`` say; ``run.model_path`` is the best model's path (see choose_model_path).

    ``run.claimed`` is set once the run's folder is claimed, for the caller's messages after an interrupt.
    """
    if args.backend:
        nn.set_backend(args.backend)
    model, criterion = recipe.make_model(args.seed, args.model), nn.CrossEntropyLoss()
    data = load_data(args, model)
    optimizer = recipe.make_optimizer(model, args)
    augment = recipe.make_augment(args)
    start_epoch, history, best = 0, [], {"val_accuracy": -1.0, "epoch": 0}
    if args.resume:
        checkpoint = paths_for(run.model_path)["checkpoint"]
        start_epoch, history, best = load_checkpoint(checkpoint, model, optimizer, args)
        print(f"Resuming after epoch {start_epoch} from {checkpoint}")
    run.claimed = claim_run_folder(run.model_path, args)
    paths = paths_for(run.claimed.model_path)
    n_train = len(data.train_images)
    steps_per_epoch = math.ceil(n_train / args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    print(*startup_lines(model, n_train, len(data.val_y), len(data.test_y), paths["model"]), sep="\n", flush=True)
    held_out = (data.val_x[:HELD_OUT_FOR_LOGGING], data.val_y[:HELD_OUT_FOR_LOGGING])
    warm_up(args, data.train_images, data.train_labels, augment,
            [(data.val_x, data.val_y), (data.test_x, data.test_y)] + ([held_out] if args.log_interval else []))
    progress = Progress()
    started = time.monotonic()
    busy_reported = False  # the log says once that the cores look busy, if they do
    for epoch in range(start_epoch + 1, args.epochs + 1):
        # One generator per epoch, derived from (seed, epoch): shuffling and augmentation of epoch e
        # are the same whether or not the run was interrupted before it, so a resumed run ends
        # with the same model, bit for bit.
        rng = epoch_rng(args.seed, epoch)
        epoch_start = time.monotonic()
        eval_seconds = 0.0  # the log lines' held-out checks, then validation and test: not training time
        # A new random variant of every training image each epoch, made in one parallel pass
        # before shuffling (per batch, the kernel is too small to use both cores).
        images = augment(data.train_images, rng) if augment else data.train_images
        images = recipe.input_pixels(model, images)  # 32x32 for the 1998 model: the border is added after augmenting
        loss_sum, correct, seen = 0.0, 0, 0
        for step_in_epoch, (x, y) in enumerate(iterate(images, data.train_labels, args.batch_size, rng=rng,
                                                       **model.normalization)):
            step = (epoch - 1) * steps_per_epoch + step_in_epoch
            optimizer.lr = recipe.learning_rate(args.lr_schedule, args.lr, step, total_steps)
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
        val = evaluate(model, data.val_x, data.val_y, args.test_batch_size)
        test = evaluate(model, data.test_x, data.test_y, args.test_batch_size)
        eval_seconds += time.monotonic() - eval_start
        row = {"epoch": epoch, "lr": optimizer.lr, "train_loss": loss_sum / seen, "train_accuracy": correct / seen,
               "val_loss": val[0], "val_accuracy": val[1], "test_loss": test[0], "test_accuracy": test[1],
               "epoch_seconds": round(epoch_seconds, 2), "images_per_second": round(seen / epoch_seconds, 1),
               "eval_seconds": round(eval_seconds, 2)}
        history.append(row)
        print(f"Epoch {epoch}: train loss {row['train_loss']:.4f}, "
              f"validation loss {val[0]:.4f} accuracy {100 * val[1]:.2f}%, "
              f"Test set: Average loss: {test[0]:.4f}, Accuracy: {round(test[1] * len(data.test_y))}/"
              f"{len(data.test_y)} ({100 * test[1]:.2f}%); training {epoch_seconds:.1f}s, "
              f"{row['images_per_second']:,.0f} img/s, evaluation {eval_seconds:.1f}s", flush=True)
        if val[1] > best["val_accuracy"]:
            best = {"val_accuracy": val[1], "epoch": epoch, "test_accuracy": test[1]}
            nn.save(model, paths["model"], metadata=model_metadata(model, args, epoch, val, test, data.hashes, started))
            print(f"  best validation accuracy so far: saved {paths['model']}")
        busy = None if busy_reported else busy_cores_message()
        if busy:
            print(f"  {busy}", flush=True)
            busy_reported = True
        write_metrics(paths["metrics"], history)
        save_checkpoint(paths["checkpoint"], model, optimizer, epoch, history, best, args)

    finish(paths, history, best, data.test_images, data.test_x, data.test_y, args)
    return best


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    run = SimpleNamespace(model_path=None, claimed=None)
    try:
        with signals.sigterm_as_interrupt():
            run.model_path = choose_model_path(args)
            train(args, run)
    except KeyboardInterrupt as exc:
        how, status = signals.describe(exc)
        model_path = run.claimed.model_path if run.claimed else run.model_path
        checkpoint = model_path and paths_for(model_path)["checkpoint"]
        if checkpoint and os.path.exists(checkpoint):
            print(f"\n{how}. The last finished epoch is checkpointed in {checkpoint}; continue with:\n"
                  f"  {resume_command(argv, model_path, args)}", file=sys.stderr)
        else:
            undone = run.claimed and run.claimed.release()
            print(f"\n{how} before the first epoch finished; nothing was saved"
                  + (f" ({undone})." if undone else "."), file=sys.stderr)
        return status
    except (mnist.FetchError, FileNotFoundError, NotADirectoryError, CorruptFileError) as exc:
        # Missing or damaged data: one line that says what to do, not a traceback.
        print(f"train.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
