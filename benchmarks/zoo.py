"""Benchmark the zoo (networks A-H and LeNet5, ``benchmarks.networks``) on both backends, side by side with PyTorch.

    python -m benchmarks.zoo                      # every network: training and batch-1000 inference
    python -m benchmarks.zoo --quick              # fewer, shorter blocks: about two minutes
    python -m benchmarks.zoo --networks A,C       # a subset (keys of benchmarks.networks.NETWORKS)
    python -m benchmarks.zoo --profile            # forward and backward of one network, child by child

Per network: a training step at batch 64 (forward, cross-entropy loss, backward, SGD step with
momentum and weight decay) and the inference of a batch of 1000 images, both in images per second, for the numba
backend, the NumPy backend and PyTorch (float32, ``torch.set_num_threads(2)``) when it is
importable. Every figure is the median of alternating blocks (see ``benchmarks.timing``); the
table prints ours ÷ PyTorch and numba ÷ NumPy ratios from the same run.

The training step skips the gradient with respect to the images when the model's ``backward``
accepts ``need_input_grad`` (PyTorch does not compute it either: the images do not require grad).
"""

import argparse
import os
import sys
import time

import numpy as np

from .networks import NETWORKS, SGD_SETTINGS, build_nn, build_torch, copy_weights, example_batch
from .profile import profile_training_step, skip_input_grad
from .timing import measure, print_markdown_table

TRAIN_BATCH = 64
INFERENCE_BATCH = 1000


def ours(network, backend, seed=0):
    """(training step, batch-1000 inference), both without arguments, on ``backend``."""
    import nn
    model = build_nn(network, seed=seed)
    criterion = nn.CrossEntropyLoss()
    optimizer = nn.optim.SGD(model.parameters(), **SGD_SETTINGS)
    x, labels = example_batch(network, TRAIN_BATCH, seed=seed)
    images, _ = example_batch(network, INFERENCE_BATCH, seed=seed + 1)
    skip = skip_input_grad(model)
    inference_model = build_nn(network, seed=seed).eval()  # eval: keeps nothing for a backward

    def step():
        with nn.use_backend(backend):
            criterion(model(x), labels)
            optimizer.zero_grad()
            model.backward(criterion.backward(), **skip)
            optimizer.step()

    def infer():
        with nn.use_backend(backend):
            return inference_model(images)

    return step, infer


def pytorch(network, threads, seed=0):
    """The same (training step, batch-1000 inference) in PyTorch, with the same weights."""
    import torch
    torch.set_num_threads(threads)
    model = copy_weights(build_nn(network, seed=seed), build_torch(network))
    optimizer = torch.optim.SGD(model.parameters(), **SGD_SETTINGS)
    x, labels = (torch.from_numpy(a) for a in example_batch(network, TRAIN_BATCH, seed=seed))
    images = torch.from_numpy(example_batch(network, INFERENCE_BATCH, seed=seed + 1)[0])
    inference_model = copy_weights(build_nn(network, seed=seed), build_torch(network)).eval()

    def step():
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), labels).backward()
        optimizer.step()

    def infer():
        with torch.inference_mode():
            return inference_model(images)

    return step, infer


def bench_network(network, backends, torch_threads, repeats, seconds_per_block):
    """{"train": {contender: img/s}, "inference": {contender: img/s}} for one network."""
    built = {b: ours(network, b) for b in backends}
    if torch_threads:
        built["torch"] = pytorch(network, torch_threads)
    rates = {}
    # A batch of 1000 is long enough to warm up in one call (and the NumPy backend's take a second).
    for phase, index, batch, warm_calls in (("train", 0, TRAIN_BATCH, 3), ("inference", 1, INFERENCE_BATCH, 1)):
        seconds = measure({name: fs[index] for name, fs in built.items()}, repeats, seconds_per_block, warm_calls)
        rates[phase] = {name: batch / s for name, s in seconds.items()}
    return rates


def _ratio(rates, a, b):
    return f"{rates[a] / rates[b]:.2f}" if a in rates and b in rates else ""


def zoo_table(results, contenders):
    """Markdown rows: per network, img/s of each contender and the ratios, for training and inference."""
    names = {"numba": "numba", "numpy": "NumPy", "torch": "PyTorch"}
    ratios = [(a, b) for a, b in (("numba", "torch"), ("numba", "numpy"))
              if a in contenders and b in contenders]
    columns = ["network"]
    for phase in ("train", "inference"):
        label = "train" if phase == "train" else "infer"
        columns += [f"{label} {names[c]} img/s" for c in contenders]
        columns += [f"{label} {names[a]} ÷ {names[b]}" for a, b in ratios]
    rows = []
    for key, rates in results.items():
        row = [f"{key}. {NETWORKS[key].description}" if len(key) == 1 else f"{key} ({NETWORKS[key].description})"]
        for phase in ("train", "inference"):
            row += [f"{rates[phase][c]:,.0f}" for c in contenders]
            row += [_ratio(rates[phase], a, b) for a, b in ratios]
        rows.append(row)
    return rows, columns


def _network_keys(text):
    keys = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in keys if k not in NETWORKS]
    if unknown or not keys:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(NETWORKS)}, got {text!r}")
    return keys


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.zoo",
                                description="Benchmark networks A-H and LeNet5 on both backends and PyTorch.")
    p.add_argument("--quick", action="store_true", help="3 shorter blocks per figure instead of 7")
    p.add_argument("--repeats", type=int, default=None,
                   help="alternating blocks per figure (default: 7, quick: 3); more of them on a busy machine")
    p.add_argument("--networks", type=_network_keys, default=list(NETWORKS),
                   help=f"comma-separated subset of {','.join(NETWORKS)} (default: all)")
    p.add_argument("--backend", choices=("numba", "numpy", "all"), default="all",
                   help="which of our backends to measure (default: all)")
    p.add_argument("--no-torch", action="store_true", help="do not compare with PyTorch even if importable")
    p.add_argument("--torch-threads", type=int, default=2, help="PyTorch's intra-op threads (default: 2)")
    p.add_argument("--profile", action="store_true",
                   help="only profile a training step of the first of --networks (default A), child by child")
    args = p.parse_args(argv)
    backends = ["numba", "numpy"] if args.backend == "all" else [args.backend]
    repeats = args.repeats or (3 if args.quick else 7)
    seconds_per_block = 0.1 if args.quick else 0.25

    torch_threads, torch_version = 0, None
    if not args.no_torch:
        try:
            import torch
            torch_threads, torch_version = args.torch_threads, torch.__version__
        except ImportError:
            pass
    try:
        import numba
        numba_version = numba.__version__
    except ImportError:  # nn then runs the NumPy backend for both
        numba_version = "not installed"
    print(f"Zoo benchmark: numpy {np.__version__}, numba {numba_version}, "
          f"PyTorch {f'{torch_version} ({torch_threads} threads)' if torch_threads else 'not compared'}, "
          f"{os.cpu_count()} cores; float32, training at batch {TRAIN_BATCH}, inference at batch {INFERENCE_BATCH}")

    if args.profile:
        for backend in backends:
            network = NETWORKS[args.networks[0]]
            x, labels = example_batch(network, TRAIN_BATCH)
            profile_training_step(build_nn(network, seed=0), x, labels, backend, steps=30 if args.quick else 100,
                                  title=f"Profile of a training step of {network.key} ({network.description})")
        return 0

    contenders = backends + (["torch"] if torch_threads else [])
    results = {}
    for key in args.networks:
        start = time.perf_counter()
        results[key] = bench_network(NETWORKS[key], backends, torch_threads, repeats, seconds_per_block)
        print(f"  {key}: measured in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    print(f"\nImages per second, median of {repeats} alternating blocks; ratios from this run:\n")
    rows, columns = zoo_table(results, contenders)
    print_markdown_table(rows, columns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
