"""Choosing the backend, the NumPy fallback without numba, and numba's on-disk kernel cache."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(code, **env):
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={**os.environ, **env})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_set_backend_and_use_backend_switch_and_restore():
    before = nn.get_backend()
    with nn.use_backend("numpy"):
        assert nn.get_backend() == "numpy"
        with nn.use_backend("numba"):
            assert nn.get_backend() == "numba"
        assert nn.get_backend() == "numpy"
    assert nn.get_backend() == before
    with pytest.raises(ValueError, match=r"expected one of \('numpy', 'numba'\), got 'cuda'"):
        nn.set_backend("cuda")


def test_numba_is_the_default_and_the_environment_variable_selects():
    code = "import nn; print(nn.get_backend())"
    env = {k: v for k, v in os.environ.items() if k != "NN_BACKEND"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert proc.stdout.strip() == "numba"
    assert run_python(code, NN_BACKEND="numpy").stdout.strip() == "numpy"


def test_without_numba_the_numpy_backend_runs_with_a_warning():
    proc = run_python("""
        import sys, warnings
        sys.modules["numba"] = None          # makes `import numba` fail, as on a machine without it
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import numpy as np, nn
            from lenet import LeNet5
        print(nn.get_backend())
        print([str(w.message) for w in caught if "numba" in str(w.message)])
        model = LeNet5(seed=0).eval()
        print(model.predict(np.zeros((2, 28, 28), dtype=np.uint8)).shape)
    """)
    lines = proc.stdout.splitlines()
    assert lines[0] == "numpy"
    assert "numba cannot be imported" in lines[1]
    assert lines[2] == "(2, 10)"


def test_a_second_process_reuses_the_compiled_kernels_from_disk():
    step = """
        import numpy as np, nn, sys
        from lenet import LeNet5
        nn.set_backend("numba")
        model, crit = LeNet5(seed=0), nn.CrossEntropyLoss()
        opt = nn.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        loss = crit(model(np.zeros((4, 1, 28, 28), np.float32)), np.arange(4))
        model.backward(crit.backward()); opt.step()
        model.eval().predict(np.zeros((1, 28, 28), np.uint8))
        dispatchers = [obj for name, mod in list(sys.modules.items()) if name.split(".")[0] in ("nn", "data")
                       for obj in vars(mod).values() if hasattr(obj, "stats") and hasattr(obj, "py_func")]
        print(len(dispatchers), sum(sum(d.stats.cache_misses.values()) for d in dispatchers),
              sum(sum(d.stats.cache_hits.values()) for d in dispatchers))
    """
    run_python(step)  # warms the cache if this machine has never compiled them
    count, misses, hits = map(int, run_python(step).stdout.split())
    assert count > 0 and hits > 0
    assert misses == 0, f"{misses} kernels were compiled again instead of loaded from the cache"


def test_each_of_our_kernel_modules_is_announced_by_name_once_and_other_libraries_are_not():
    import io

    import numba
    from numba.core import event

    from nn.ops.compile_notice import _CompileNotice, message

    def ours(x):
        return 2 * x

    def ours_too(x):
        return 4 * x

    def foreign(x):
        return 3 * x

    ours.__module__, ours_too.__module__, foreign.__module__ = "nn.ops.example", "nn.ops.other", "elsewhere"
    stream = io.StringIO()
    with event.install_listener("numba:compile", _CompileNotice(stream)):
        assert numba.njit(foreign)(1) == 3
        assert stream.getvalue() == ""  # another library's compilation: not announced
        kernel = numba.njit(ours)
        assert kernel(1) == 2 and kernel(1.5) == 3.0  # two compilations of one module, one notice
        assert numba.njit(ours_too)(1) == 4  # another module: a notice of its own, naming it
    assert stream.getvalue() == message("nn.ops.example") + "\n" + message("nn.ops.other") + "\n"
    assert "nn.ops.example" in message("nn.ops.example") and "first run" not in message("nn.ops.example")


@pytest.mark.slow
def test_a_cold_kernel_cache_is_announced_on_stderr_and_a_warm_one_is_silent(tmp_path):
    from nn.ops.compile_notice import TEMPLATE
    announcement = TEMPLATE.split("{module}")[0]

    step = """
        import numpy as np, nn
        from lenet import LeNet5
        model, crit = LeNet5(seed=0), nn.CrossEntropyLoss()
        crit(model(np.zeros((2, 1, 28, 28), np.float32)), np.arange(2))
        model.backward(crit.backward(), need_input_grad=False)
    """
    cold = run_python(step, NUMBA_CACHE_DIR=str(tmp_path), NN_BACKEND="numba")
    announced = [line for line in cold.stderr.splitlines() if line.startswith(announcement)]
    assert announced and len(announced) == len(set(announced)), cold.stderr  # each module once
    warm = run_python(step, NUMBA_CACHE_DIR=str(tmp_path), NN_BACKEND="numba")
    assert announcement not in warm.stderr, warm.stderr


def test_both_backends_train_lenet5_to_the_same_weights():
    from lenet import LeNet5
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 8)
    states = {}
    for name in ("numpy", "numba"):
        with nn.use_backend(name):
            model, crit = LeNet5(seed=1), nn.CrossEntropyLoss()
            opt = nn.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
            for _ in range(3):
                crit(model(x), y)
                opt.zero_grad()
                model.backward(crit.backward())
                opt.step()
            states[name] = model.state_dict()
    for key in states["numpy"]:
        np.testing.assert_allclose(states["numba"][key], states["numpy"][key], rtol=1e-4, atol=1e-6, err_msg=key)
