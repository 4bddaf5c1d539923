"""Benchmark LeNet5 training and inference, side by side with PyTorch when it is importable.

    python -m benchmarks.lenet                    # everything, both backends, PyTorch if installed
    python -m benchmarks.lenet --quick            # fewer repeats and batch sizes, an extrapolated epoch
    python -m benchmarks.lenet --backend numba --repeats 9 --no-torch
    python -m benchmarks.lenet --compile-time     # also: first step of a fresh process, cold and warm cache

Every figure is measured in blocks that alternate between the contenders (ours, then PyTorch,
then ours again, ...), and the median block is reported (see ``benchmarks.timing``). Only ratios
measured in the same run are meaningful on a shared machine. ``python -m benchmarks.zoo`` does
the same for other networks.

PyTorch is used for comparison only, never by the library: it is imported here, optionally.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from .networks import NETWORKS, SGD_SETTINGS, build_nn, build_torch, copy_weights, example_batch
from .profile import profile_training_step
from .timing import SETTLE_SECONDS, calls_per_block, median_block_seconds, print_table, warm

# Arithmetic of LeNet5 per image, counting a multiply-add as 2 operations: the forward pass is
# C1 172,800 + C3 307,200 + C5 61,440 + F6 20,160 + out 1,680 = 563,280; backward costs twice the
# forward (gradients of the weights and of the inputs), so a training step is 3x.
FORWARD_FLOP = 563_280
TRAIN_FLOP = 3 * FORWARD_FLOP
EPOCH_IMAGES = 60_000
LENET5 = NETWORKS["LeNet5"]


def _ours(backend, batch, seed=0):
    import nn

    x, labels = example_batch(LENET5, batch, seed=seed)
    model = build_nn(LENET5, seed=seed)
    criterion = nn.CrossEntropyLoss()
    optimizer = nn.optim.SGD(model.parameters(), **SGD_SETTINGS)

    def step():
        with nn.use_backend(backend):
            criterion(model(x), labels)
            optimizer.zero_grad()
            model.backward(criterion.backward(), need_input_grad=False)
            optimizer.step()

    def infer(images):
        with nn.use_backend(backend):
            return model(images)

    return step, infer, model


def _torch(batch, threads, seed=0):
    import torch

    torch.set_num_threads(threads)
    x, labels = (torch.from_numpy(a) for a in example_batch(LENET5, batch, seed=seed))
    model = copy_weights(build_nn(LENET5, seed=seed), build_torch(LENET5))
    optimizer = torch.optim.SGD(model.parameters(), **SGD_SETTINGS)

    def step():
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), labels).backward()
        optimizer.step()

    def infer(images):
        with torch.inference_mode():
            return model(torch.from_numpy(images))

    model.eval()  # no dropout or batch norm: eval changes nothing for training, but is right for inference
    return step, infer, model


def _ratio_columns(values, names):
    """'x vs torch' and 'x vs numpy' for the numba backend, when both sides were measured."""
    out = []
    if "numba" in values and "torch" in values:
        out.append(f"{values['numba'] / values['torch']:.2f}x")
    if "numba" in values and "numpy" in values:
        out.append(f"{values['numba'] / values['numpy']:.2f}x")
    return out


def bench_training(backends, torch_threads, batches, repeats, seconds_per_block):
    rows = []
    results = {}
    for batch in batches:
        contenders = {b: _ours(b, batch)[0] for b in backends}
        if torch_threads:
            contenders["torch"] = _torch(batch, torch_threads)[0]
        warm(contenders)
        calls = {name: calls_per_block(f, seconds_per_block) for name, f in contenders.items()}
        rate = {name: batch / s for name, s in median_block_seconds(contenders, calls, repeats).items()}
        results[batch] = rate
        rows.append([str(batch)] + [f"{rate[n]:,.0f}" for n in contenders]
                    + [f"{rate[n] * TRAIN_FLOP / 1e9:.1f}" for n in contenders] + _ratio_columns(rate, contenders))
    names = list(contenders)
    columns = (["batch"] + [f"{n} img/s" for n in names] + [f"{n} GFLOP/s" for n in names]
               + (["numba/torch"] if "numba" in names and "torch" in names else [])
               + (["numba/numpy"] if "numba" in names and "numpy" in names else []))
    print_table("Training step (forward, loss, backward, SGD with Nesterov momentum and weight decay), "
                f"median of {repeats} alternating blocks", rows, columns)
    return results


def bench_epoch(backends, torch_threads, full, rates_at_64):
    """Time one epoch of 60,000 images at batch 64 (938 steps), or extrapolate it from the step rate."""
    rows = []
    for name in list(backends) + (["torch"] if torch_threads else []):
        if full and name != "numpy":
            step = _torch(64, torch_threads)[0] if name == "torch" else _ours(name, 64)[0]
            step()
            start = time.perf_counter()
            for _ in range(-(-EPOCH_IMAGES // 64)):
                step()
            seconds, how = time.perf_counter() - start, "measured"
        elif 64 in rates_at_64 and name in rates_at_64[64]:
            seconds, how = EPOCH_IMAGES / rates_at_64[64][name], "from the batch-64 rate"
        else:
            continue
        rows.append([name, f"{seconds:.2f} s", how])
    print_table(f"One epoch, {EPOCH_IMAGES:,} images at batch 64 (synthetic data, no augmentation)", rows,
                ["", "time", "how"])


def bench_inference(backends, torch_threads, repeats, single_calls, big_batch):
    rng = np.random.default_rng(1)
    one = rng.standard_normal((1, 1, 28, 28)).astype(np.float32)
    big = rng.standard_normal((big_batch, 1, 28, 28)).astype(np.float32)
    infer = {}
    for b in backends:
        _, f, model = _ours(b, 1)
        model.eval()
        infer[b] = f
    if torch_threads:
        infer["torch"] = _torch(1, torch_threads)[1]
    for f in infer.values():
        for _ in range(20):
            f(one)
        f(big)

    # One image: every call timed on its own, in alternating blocks of 100 calls per contender.
    samples = {name: [] for name in infer}
    for _ in range(max(1, single_calls // 100)):
        for name, f in infer.items():
            time.sleep(SETTLE_SECONDS)
            for _ in range(100):
                start = time.perf_counter()
                f(one)
                samples[name].append(time.perf_counter() - start)
    median = {n: float(np.median(s)) for n, s in samples.items()}
    p99 = {n: float(np.percentile(s, 99)) for n, s in samples.items()}
    rows = [[n, f"{median[n] * 1e3:.3f} ms", f"{p99[n] * 1e3:.3f} ms",
             f"{FORWARD_FLOP / median[n] / 1e9:.1f}"] for n in infer]
    columns = ["", "median", "p99", "GFLOP/s"]
    if "numba" in infer and "torch" in infer:
        columns.append("torch/numba (median)")
        for r, n in zip(rows, infer):
            r.append(f"{median['torch'] / median[n]:.2f}x" if n == "numba" else "")
    calls_each = len(next(iter(samples.values())))
    print_table(f"Inference latency, one image (eval mode, {calls_each} calls each, in alternating blocks of 100)",
                rows, columns)

    blocks = {name: (lambda f=f: f(big)) for name, f in infer.items()}
    seconds = median_block_seconds(blocks, 1, max(repeats, 3))
    rate = {n: big_batch / s for n, s in seconds.items()}
    rows = [[n, f"{rate[n]:,.0f}", f"{rate[n] * FORWARD_FLOP / 1e9:.1f}"] for n in infer]
    columns = ["", "img/s", "GFLOP/s"]
    ratios = _ratio_columns(rate, infer)
    if ratios:
        columns += (["numba/torch"] if "torch" in rate else []) + (["numba/numpy"] if "numpy" in rate else [])
        rows = [r + (ratios if n == "numba" else [""] * len(ratios)) for r, n in zip(rows, infer)]
    print_table(f"Inference throughput, batch {big_batch} (median of {max(repeats, 3)} alternating batches)",
                rows, columns)
    return median, rate


_FIRST_STEP = """
import time
start = time.perf_counter()
import numpy as np
import nn
from lenet.model import LeNet5
imported = time.perf_counter()
model, criterion = LeNet5(seed=0), nn.CrossEntropyLoss()
optimizer = nn.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
x = np.zeros((64, 1, 28, 28), dtype=np.float32)
criterion(model(x), np.zeros(64, dtype=np.intp))
model.backward(criterion.backward(), need_input_grad=False)
optimizer.step()
model.eval()
model(x[:1])
model(x)
done = time.perf_counter()
print(f"{imported - start:.3f} {done - imported:.3f}")
"""


def bench_compile_time():
    """First training step (and first inference) of a fresh process, with an empty and a filled kernel cache."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, NN_BACKEND="numba")
        for label in ("cold cache (first run ever)", "warm cache (every later run)"):
            result = subprocess.run([sys.executable, "-c", _FIRST_STEP], cwd=root, env=env,
                                    capture_output=True, text=True, check=True)
            imported, first = (float(v) for v in result.stdout.split())
            rows.append([label, f"{imported:.2f} s", f"{first:.2f} s"])
    print_table("Start-up of a fresh process (numba backend, kernels cached in a temporary NUMBA_CACHE_DIR)",
                rows, ["", "import", "first train step + first inferences"])


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.lenet",
                                description="Benchmark LeNet5 training and inference, side by side with PyTorch.")
    p.add_argument("--quick", action="store_true", help="fewer repeats, batch 64 only, an extrapolated epoch")
    p.add_argument("--repeats", type=int, default=None, help="alternating blocks per figure (default: 7, quick: 3)")
    p.add_argument("--backend", choices=("numba", "numpy", "all"), default="all",
                   help="which of our backends to measure (default: all)")
    p.add_argument("--no-torch", action="store_true", help="do not compare with PyTorch even if importable")
    p.add_argument("--torch-threads", type=int, default=os.cpu_count() or 1,
                   help="PyTorch's intra-op threads (default: every core)")
    p.add_argument("--compile-time", action="store_true", help="also time the first step of fresh processes")
    p.add_argument("--profile", action="store_true",
                   help="only profile a training step at batch 64 per layer and phase, for each backend")
    args = p.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 7)
    backends = ["numba", "numpy"] if args.backend == "all" else [args.backend]

    torch_threads = 0
    if not args.no_torch:
        try:
            import torch
            torch_threads = args.torch_threads
            torch_version = torch.__version__
        except ImportError:
            torch_version = None
    import numba

    print(f"LeNet5 benchmark: numpy {np.__version__}, numba {numba.__version__}, "
          f"PyTorch {torch_version + f' ({torch_threads} threads)' if torch_threads else 'not compared'}, "
          f"{os.cpu_count()} cores; {TRAIN_FLOP / 1e6:.2f} MFLOP per training image, "
          f"{FORWARD_FLOP / 1e6:.2f} MFLOP per inference")
    if args.profile:
        x, labels = example_batch(LENET5, 64)
        for backend in backends:
            profile_training_step(build_nn(LENET5, seed=0), x, labels, backend, steps=50 if args.quick else 200,
                                  title="Profile of a training step of LeNet5")
        return 0
    batches = [64] if args.quick else [32, 64, 128, 256]
    rates = bench_training(backends, torch_threads, batches, repeats, seconds_per_block=0.1 if args.quick else 0.25)
    bench_epoch(backends, torch_threads, full=not args.quick, rates_at_64=rates)
    bench_inference(backends, torch_threads, repeats, single_calls=300 if args.quick else 2000, big_batch=1000)
    if args.compile_time:
        bench_compile_time()
    return 0


if __name__ == "__main__":
    sys.exit(main())
