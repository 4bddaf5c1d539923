"""``python -m nn.gradcheck``: check every layer, the loss and LeNet5 against finite differences.

Prints a table (name, tensor, shape, max abs err, max rel err, PASS/FAIL) and exits with status 1
on any failure. The checker itself is :func:`nn.gradcheck` (in ``nn/gradient_check.py``).
"""

import sys

import numpy as np

from .gradient_check import gradcheck


def format_table(results):
    header = f"{'name':<28} {'tensor':<12} {'shape':<18} {'max abs err':>12} {'max rel err':>12}  result"
    lines = [header, "-" * len(header)]
    for r in results:
        lines.append(f"{r.name:<28} {r.tensor:<12} {str(r.shape):<18} {r.max_abs_err:12.2e} "
                     f"{r.max_rel_err:12.2e}  {'PASS' if r.passed else 'FAIL'}")
    return "\n".join(lines)


def builtin_cases(seed=0):
    """(name, module, inputs, max_entries) for every layer, the loss and LeNet5, on several shapes."""
    from .activation import ReLU
    from .conv import Conv2d
    from .flatten import Flatten
    from .linear import Linear
    from .loss import CrossEntropyLoss
    from .pool import MaxPool2d

    rng = np.random.default_rng(seed)

    def away_from_zero(shape):
        # ReLU's kink at 0 would break a finite difference: keep |x| >= 0.1.
        x = rng.uniform(0.1, 1.0, size=shape)
        return x * rng.choice([-1.0, 1.0], size=shape)

    def distinct(shape):
        # Max-pool ties would make the gradient ill-defined: a permutation has none, and
        # the spacing (1 / size) is far above eps.
        return rng.permutation(np.prod(shape)).reshape(shape) / np.prod(shape)

    cases = [
        ("Linear(5->3)", Linear(5, 3, rng=rng), rng.standard_normal((4, 5)), None),
        ("Linear(7->2, no bias) N=1", Linear(7, 2, bias=False, rng=rng), rng.standard_normal((1, 7)), None),
        ("ReLU", ReLU(), away_from_zero((3, 2, 4, 4)), None),
        ("Flatten", Flatten(), rng.standard_normal((2, 3, 2, 2)), None),
        ("Conv2d(3->4, k3)", Conv2d(3, 4, 3, rng=rng), rng.standard_normal((2, 3, 6, 6)), None),
        ("Conv2d(2->3, k3, s2, p1)", Conv2d(2, 3, 3, stride=2, padding=1, rng=rng),
         rng.standard_normal((2, 2, 7, 7)), None),
        ("Conv2d(1->2, k(2,3), s(1,2))", Conv2d(1, 2, (2, 3), stride=(1, 2), padding=(1, 0), rng=rng),
         rng.standard_normal((1, 1, 5, 8)), None),
        ("Conv2d(1->6, k5) N=1", Conv2d(1, 6, 5, rng=rng), rng.standard_normal((1, 1, 9, 9)), None),
        ("MaxPool2d(2)", MaxPool2d(2), distinct((2, 3, 6, 6)), None),
        ("MaxPool2d(3, stride=2)", MaxPool2d(3, stride=2), distinct((1, 2, 7, 9)), None),
        ("MaxPool2d((2,3)) N=1", MaxPool2d((2, 3)), distinct((1, 1, 4, 9)), None),
        ("CrossEntropyLoss", CrossEntropyLoss(), (rng.standard_normal((5, 10)), rng.integers(0, 10, 5)), None),
        ("CrossEntropyLoss(sum) N=1", CrossEntropyLoss("sum"), (rng.standard_normal((1, 4)), np.array([2])), None),
    ]
    try:
        from lenet.model import LeNet5
    except ImportError:  # nn is usable without the lenet package
        return cases
    cases.append(("LeNet5", LeNet5(seed=seed), rng.standard_normal((2, 1, 28, 28)), 60))
    return cases


def main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(prog="python -m nn.gradcheck",
                                     description="Check every layer's backward against finite differences.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", choices=["numpy", "numba"], default=None,
                        help="backend to check (default: the current one, numba unless NN_BACKEND says otherwise)")
    args = parser.parse_args(argv)
    from .backend import get_backend, set_backend
    if args.backend:
        set_backend(args.backend)
    results = []
    for case_name, module, inputs, max_entries in builtin_cases(args.seed):
        results += gradcheck(module, inputs, max_entries=max_entries, seed=args.seed, name=case_name)
    print(f"backend: {get_backend()}")
    print(format_table(results))
    failed = sum(not r.passed for r in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
