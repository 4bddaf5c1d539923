"""Every ```python block of README.md and of the pages in docs/ runs as pasted, and passes.

How it works, for whoever adds a block to one of those pages:

- Each ```python block is one test, named after its file, the line its fence is on and its
  section (``test_doc_block_runs[README.md:line42-the-framework-in-ten-lines]``).
- It runs in a fresh ``python`` process whose working directory is an empty temporary folder
  (the project's folder stays clean), with the project importable, as after ``pip install -e .``.
  It passes if that process exits with status 0.
- The temporary folder holds the files the page tells a reader to bring, made on the spot
  from the shipped model when the block names them: ``lenet5_torch.npz`` (its weights as a plain
  .npz, as if converted from PyTorch), ``lenet5.pth`` (the same saved by ``torch.save``; needs
  torch).
- What a block needs is read from its text:
  * MNIST (it mentions ``data.mnist`` or ``mnist.load``): ``MNIST_DIR`` is passed on; the test is
    marked slow, and skips saying how to fetch MNIST where it is absent.
  * a running server (it mentions ``127.0.0.1:8000`` or ``localhost:8000``): one serving the
    shipped model is started on a free loopback port, and the block's address is rewritten to it.
  * a package it imports that is not installed (torch, tritonclient, ...): the test skips, saying
    what to install.
- An HTML comment on the lines just above the fence, ``<!-- readme-test: WORDS -->``, says what the
  text does not: ``mnist`` or ``server`` declare those needs, ``skip REASON`` skips the block with
  that reason (``pytest -ra`` reports it). Use it only for a block no fixture can serve.
- Shell blocks are not run, but every file a ``curl ... @FILE`` sends must exist in the project
  (or be written by the block itself), so that the command works when pasted in the project folder.
"""

import ast
import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
REPO_ROOT = README.parent
# The pages whose code blocks are run: the front page, then docs/ and its study path.
DOCUMENTS = [README, *sorted((REPO_ROOT / "docs").glob("*.md")), *sorted((REPO_ROOT / "docs" / "study").glob("*.md"))]
README_MAX_LINES = 150  # a front page: what it is, how to start, links to the rest
TAG = re.compile(r"<!--\s*readme-test:\s*(.*?)\s*-->")
NEEDS_MNIST = re.compile(r"\bdata\.mnist\b|\bfrom data import mnist\b|\bmnist\.(load|ensure)\(")
SERVER_ADDRESS = re.compile(r"\b(127\.0\.0\.1|localhost):8000\b")
SECONDS = {"mnist": 600, "other": 120}  # a bound, never reached by a working block


@dataclass
class Block:
    line: int      # of the opening fence, 1-based
    section: str   # the heading above it
    code: str
    tags: list = field(default_factory=list)
    document: str = "README.md"  # relative to the project's folder

    @property
    def id(self):
        slug = re.sub(r"[^a-z0-9]+", "-", self.section.lower()).strip("-")
        return f"{self.document}:line{self.line}-{slug}"

    @property
    def needs_mnist(self):
        return "mnist" in self.tags or bool(NEEDS_MNIST.search(self.code))

    @property
    def needs_server(self):
        return "server" in self.tags or bool(SERVER_ADDRESS.search(self.code))

    @property
    def skip_reason(self):
        return next((tag[len("skip"):].strip() or "tagged skip" for tag in self.tags if tag.startswith("skip")), None)


def fenced_blocks(markdown, document="README.md"):
    """{language: [Block, ...]} for the fenced blocks of ``markdown``, with their line, section and tags."""
    lines = markdown.splitlines()
    blocks, section = {}, ""
    open_fence = None  # (language, line number, tags) inside a block
    for number, line in enumerate(lines, start=1):
        if open_fence is not None:
            if line.strip() == "```":
                language, start, tags = open_fence
                code = "\n".join(lines[start:number - 1]) + "\n"
                blocks.setdefault(language, []).append(Block(start, section, code, tags, document))
                open_fence = None
        elif line.startswith("```"):
            open_fence = (line.strip()[3:], number, tags_above(lines, number))
        elif line.startswith("#"):
            section = line.lstrip("#").strip()
    return blocks


def python_blocks(markdown, document="README.md"):
    """The ```python blocks of ``markdown``, with their line, section and readme-test tags."""
    return fenced_blocks(markdown, document).get("python", [])


def document_blocks(language):
    """The ``language`` blocks of every page in DOCUMENTS, in order."""
    return [block for path in DOCUMENTS
            for block in fenced_blocks(path.read_text(encoding="utf-8"), str(path.relative_to(REPO_ROOT)))
            .get(language, [])]


def tags_above(lines, fence_number):
    """The readme-test comments on the lines just above a fence (blank lines and other comments between are allowed)."""
    tags = []
    for above in reversed(lines[:fence_number - 1]):
        match = TAG.fullmatch(above.strip())
        if match:
            tags.insert(0, match.group(1))
        elif above.strip() and not above.strip().startswith("<!--"):
            break
    return tags


BLOCKS = document_blocks("python")


# -- the files a reader is told to bring, made from the shipped model ----------------------------

def shipped_state():
    import lenet
    import nn
    return nn.load(lenet.DEFAULT_WEIGHTS)[0]


def make_lenet5_torch_npz(path):
    np.savez(path, **shipped_state())  # a PyTorch state dict converted as the README says: no metadata


def make_lenet5_pth(path):
    torch = pytest.importorskip("torch")
    torch.save({key: torch.from_numpy(value) for key, value in shipped_state().items()}, path)


USER_FILES = {"lenet5_torch.npz": make_lenet5_torch_npz, "lenet5.pth": make_lenet5_pth}


@pytest.fixture(scope="module")
def readme_server():
    """The shipped model served on a free loopback port, for blocks that talk to a server."""
    import lenet
    from lenet.server import PredictionServer, serving_in_background
    with serving_in_background(PredictionServer(lenet.load_model(), "127.0.0.1", 0, log=None)) as server:
        yield server


def imported_packages(code):
    """Top-level names of the packages ``code`` imports (``import a.b`` and ``from a import b`` give "a")."""
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("block", [
    pytest.param(block, id=block.id, marks=[pytest.mark.slow] if block.needs_mnist else [])
    for block in BLOCKS
])
def test_doc_block_runs(block, request, tmp_path):
    done = run_block(block, request, tmp_path)
    assert done.returncode == 0, (f"{block.document} line {block.line} ({block.section}) failed:\n{block.code}\n"
                                  f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}")


def run_block(block, request, tmp_path):
    """Run ``block`` as the module docstring says; skip where it cannot run here. -> CompletedProcess."""
    if block.skip_reason:
        pytest.skip(f"{block.document} line {block.line}: {block.skip_reason}")
    for package in sorted(imported_packages(block.code)):
        if importlib.util.find_spec(package) is None:
            pytest.importorskip(package)  # skips with the reason, and conftest adds what to install
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    if block.needs_mnist:
        env["MNIST_DIR"] = str(request.getfixturevalue("mnist_dir"))
    code = block.code
    if block.needs_server:
        port = request.getfixturevalue("readme_server").server_address[1]
        code = SERVER_ADDRESS.sub(f"127.0.0.1:{port}", code)
    for name, make in USER_FILES.items():
        if name in code:
            make(tmp_path / name)
    script = tmp_path / "readme_block.py"
    script.write_text(code, encoding="utf-8")
    try:
        return subprocess.run([sys.executable, script.name], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=SECONDS["mnist" if block.needs_mnist else "other"])
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{block.document} line {block.line}: still running after {exc.timeout} s:\n{code}")


def test_a_block_that_talks_to_a_server_at_port_8000_gets_one_of_its_own(request, tmp_path):
    code = ("import json, urllib.request\n"
            "with urllib.request.urlopen('http://127.0.0.1:8000/ping', timeout=10) as answer:\n"
            "    print(json.load(answer)['status'])\n")
    done = run_block(Block(1, "synthetic", code), request, tmp_path)
    assert (done.returncode, done.stdout) == (0, "Healthy\n"), done.stderr


def test_a_block_gets_the_files_the_reader_is_told_to_bring(request, tmp_path):
    code = ("import numpy as np, lenet\n"
            "print(lenet.load_model('lenet5_torch.npz').predict(np.zeros((1, 28, 28), np.uint8)).shape)\n")
    done = run_block(Block(1, "synthetic", code), request, tmp_path)
    assert (done.returncode, done.stdout) == (0, "(1, 10)\n"), done.stderr


def test_the_pages_have_python_blocks_to_run():
    documents = {block.document for block in BLOCKS}
    assert {"README.md", "docs/training.md", "docs/framework.md", "docs/serving.md"} <= documents, documents
    assert len(BLOCKS) >= 10, [block.id for block in BLOCKS]


def test_the_readme_is_a_front_page():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move details to a page in docs/"
    linked = set(re.findall(r"\]\((docs/[^)#]+)", "\n".join(lines)))
    assert {"docs/training.md", "docs/serving.md", "docs/performance.md", "docs/study/README.md"} <= linked
    assert all((REPO_ROOT / page).exists() for page in linked), linked


SENT_FILE = re.compile(r"--data-binary @(\S+)")
WRITTEN_FILE = re.compile(r">\s*(\S+)")


@pytest.mark.parametrize("block", [block for block in document_blocks("bash") if SENT_FILE.search(block.code)],
                         ids=lambda block: block.id)
def test_every_file_a_curl_command_sends_exists_in_the_project(block):
    written = set(WRITTEN_FILE.findall(block.code))
    for name in SENT_FILE.findall(block.code):
        assert name in written or (REPO_ROOT / name).is_file(), \
            f"{block.document} line {block.line}: curl sends @{name}, which is not in the project; ship it or make it"


def test_the_example_digit_the_curl_command_sends_is_read_as_a_seven(readme_server):
    import json
    import urllib.request
    body = (REPO_ROOT / "docs" / "images" / "seven.png").read_bytes()
    url = f"http://127.0.0.1:{readme_server.server_address[1]}/api/predict"
    with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=30) as answer:
        assert json.load(answer)["prediction"] == 7


def test_the_example_digit_is_mnist_test_digit_zero_dark_on_white(mnist_dir):
    from PIL import Image

    from data import mnist
    images, labels = mnist.load(mnist_dir, train=False)
    with Image.open(REPO_ROOT / "docs" / "images" / "seven.png") as picture:
        shown = np.asarray(picture.convert("L").resize((28, 28), Image.NEAREST))
    assert labels[0] == 7
    np.testing.assert_array_equal(shown, 255 - images[0])


def test_blocks_sections_and_tags_are_read_from_the_markdown():
    markdown = "\n".join([
        "# Title",
        "```bash",
        "# not a heading",
        "```",
        "## Some section",
        "<!-- readme-test: skip needs a GPU -->",
        "",
        "```python",
        "from data import mnist",
        "```",
        "```python",
        "import requests  # 127.0.0.1:8000",
        "```",
    ])
    first, second = python_blocks(markdown)
    assert (first.line, first.section, first.code, first.tags) == (8, "Some section", "from data import mnist\n",
                                                                    ["skip needs a GPU"])
    assert first.skip_reason == "needs a GPU" and first.needs_mnist and not first.needs_server
    assert second.tags == [] and second.needs_server and not second.needs_mnist
    assert imported_packages(second.code) == {"requests"}


def test_the_training_page_lists_exactly_the_flags_of_train_py():
    import train
    text = (REPO_ROOT / "docs" / "training.md").read_text(encoding="utf-8")
    paragraph = text[text.index("Flags (`python train.py --help`"):]
    paragraph = paragraph[:paragraph.index("\n\n")]
    listed = set(re.findall(r"--[a-z][a-z-]*", paragraph))
    actual = {option for action in train.build_parser()._actions for option in action.option_strings} - {"-h"}
    assert listed == actual
