"""``python -m nn.check_gradients``: check every layer, the loss and a composed network against finite differences.

Prints a table (name, tensor, shape, max abs err, max rel err, PASS/FAIL) and exits with status 1
on any failure. The checker itself is the function :func:`nn.gradcheck` (in ``nn/gradient_check.py``);
this module has another name so that importing it cannot replace that function by a module.
"""

import sys

from .gradient_check import builtin_cases, format_table, gradcheck


def main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(prog="python -m nn.check_gradients",
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
