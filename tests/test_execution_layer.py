"""Where speed lives: the layer files hold the math and its NumPy reference; ``nn.execution`` alone runs compiled code.

Proved by reading the source: the layer files import no backend, no kernel and no numba, branch on
no backend and define no fast-path method; and nothing in them or in the execution layer reaches
into another object's private attributes. The scanner is shown to catch each of these.
"""

import ast
from pathlib import Path

import pytest

NN = Path(__file__).resolve().parent.parent / "nn"
LAYER_FILES = ["activation.py", "conv.py", "flatten.py", "linear.py", "loss.py", "pool.py"]
# What a layer file must not name: the backend switch, numba, the compiled kernels.
FORBIDDEN_NAMES = {"get_backend", "use_backend", "NUMBA_AVAILABLE", "numba", "backend", "conv_kernels",
                   "gemm_kernels", "linear_kernels", "loss_kernels", "pool_kernels", "sgd_kernels", "numba_ops"}
FAST_PATH_PREFIXES = ("fused_", "gemm_", "compiled_", "_update_compiled")


def backend_code(source):
    """What in ``source`` is backend code: forbidden imports and names, fast-path methods."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [alias.name for alias in node.names] + ([node.module] if getattr(node, "module", None) else [])
            names = {part for module in modules for part in module.split(".")}
            found += [f"import {name}" for name in sorted(names & FORBIDDEN_NAMES)]
        elif isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
            found.append(f"name {node.id}")
        elif isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_NAMES:
            found.append(f"attribute {node.attr}")
        elif isinstance(node, ast.FunctionDef) and node.name.startswith(FAST_PATH_PREFIXES):
            found.append(f"method {node.name}")
    return found


def private_reaches(source):
    """``other._name`` accesses in ``source``: into an object other than ``self`` (dunders aside)."""
    return [f"{ast.unparse(node.value)}.{node.attr}" for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))]


@pytest.mark.parametrize("name", LAYER_FILES)
def test_a_layer_file_holds_no_backend_code(name):
    assert backend_code((NN / name).read_text()) == []


def optimizer_files():
    return sorted((NN / "optim").glob("*.py"))


def test_the_optimizer_holds_no_backend_code():
    assert {str(f.name): backend_code(f.read_text()) for f in optimizer_files()} == {f.name: [] for f in optimizer_files()}


@pytest.mark.parametrize("path", LAYER_FILES + ["sequential.py", "containers.py", "execution"])
def test_no_layer_and_no_stage_reaches_into_another_objects_private_attributes(path):
    files = sorted((NN / path).glob("*.py")) if (NN / path).is_dir() else [NN / path]
    assert files
    assert {f.name: private_reaches(f.read_text()) for f in files} == {f.name: [] for f in files}


@pytest.mark.parametrize("source, expected", [
    ("from .backend import get_backend\nif get_backend() == 'numba': pass",
     ["import backend", "import get_backend", "name get_backend"]),
    ("from .ops import conv_kernels", ["import conv_kernels"]),
    ("class Conv2d:\n    def fused_forward(self, x): pass", ["method fused_forward"]),
    ("import numba", ["import numba"]),
    ("def forward(self, x):\n    return x * 2", []),
])
def test_the_backend_code_scanner_finds_what_it_must(source, expected):
    assert sorted(backend_code(source)) == sorted(expected)


def test_the_private_access_scanner_finds_a_reach_into_a_layer():
    assert private_reaches("pool._check_size(h, w)\nlayer._forget_saved()\nself._ok()\nm.__dict__") == [
        "pool._check_size", "layer._forget_saved"]
