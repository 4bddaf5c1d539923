"""The layers point one way: ``nn`` imports nothing else of ours, ``data`` does not import ``nn``.

Proved twice: by reading every import statement of the packages' source (which also sees imports
inside functions), and by importing every module of a package in a fresh process and looking at
what got loaded.
"""

import ast
import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# What each package may import of ours besides itself.
ALLOWED = {"nn": set(), "data": set()}


def our_top_level_names():
    """The project's importable top-level names: its packages and its top-level scripts."""
    packages = {p.name for p in REPO_ROOT.iterdir() if (p / "__init__.py").is_file()}
    scripts = {p.stem for p in REPO_ROOT.glob("*.py")}
    return packages | scripts


def imported_top_level_names(path):
    """Top-level names of every absolute import in the file at ``path`` (relative ones stay inside)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_project_names_are_found():
    assert {"nn", "data", "lenet", "benchmarks", "train", "serve"} <= our_top_level_names()


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_no_source_file_imports_a_higher_layer(package):
    forbidden = our_top_level_names() - {package} - ALLOWED[package]
    files = sorted((REPO_ROOT / package).rglob("*.py"))
    assert files
    offending = {str(f.relative_to(REPO_ROOT)): sorted(imported_top_level_names(f) & forbidden) for f in files}
    assert {f: names for f, names in offending.items() if names} == {}


_IMPORT_EVERYTHING = """
import importlib, pkgutil, sys
package = importlib.import_module(sys.argv[1])
for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    importlib.import_module(module.name)
print(" ".join(sorted({name.split(".")[0] for name in sys.modules})))
"""


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_importing_every_module_loads_nothing_from_a_higher_layer(package):
    proc = subprocess.run([sys.executable, "-c", _IMPORT_EVERYTHING, package], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    loaded = set(proc.stdout.split())
    assert package in loaded
    assert loaded & (our_top_level_names() - {package} - ALLOWED[package]) == set()


def test_no_submodule_of_nn_shadows_a_public_name():
    # ``import nn.<name>`` binds the submodule to ``nn.<name>``: were a public function of nn
    # named like a submodule, importing that submodule would replace the function.
    import nn
    for module in pkgutil.iter_modules(nn.__path__):
        if module.name in nn.__all__:
            assert inspect.ismodule(getattr(nn, module.name)), module.name
            assert getattr(nn, module.name) is importlib.import_module(f"nn.{module.name}")
