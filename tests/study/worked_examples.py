"""The worked examples of the study pages (docs/study/*.md), read out of the Markdown.

A worked example is a fenced ``python`` block right after a marker line (invisible on GitHub)::

    <!-- worked example: conv2d-direct -->
    ```python
    x = [[1, 2], [3, 4]]   # comments are allowed
    y = [[4.0]]
    ```

Each statement is ``name = literal`` (numbers, nested lists). A study test opens the example,
takes the inputs from it, runs the layer and checks its results against the page::

    with worked_example("01-linear.md", "linear") as page:
        layer.weight.data[...] = page.array("W")
        page.check("y", layer(page.array("x")))

Leaving the ``with`` block fails if some number of the block was neither read nor checked, so
every number printed on a page is covered. Every failure names the page and its section.
"""

import ast
import contextlib
import re
from pathlib import Path

import numpy as np

PAGES = Path(__file__).resolve().parents[2] / "docs" / "study"
MARKER = re.compile(r"<!--\s*worked example:\s*([\w-]+)\s*-->")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
# Pages print results to 4 decimals at most; a printed number must be the code's, rounded.
ATOL = 0.5e-4 + 1e-6


class WorkedExample:
    """The named values of one marked block, and where the block sits (page and section)."""

    def __init__(self, page, name, section, values):
        self.page, self.name, self.section, self.values = page, name, section, values
        self.unused = set(values)

    @property
    def where(self):
        return f"docs/study/{self.page} § {self.section} (worked example {self.name!r})"

    def _value(self, key):
        if key not in self.values:
            raise AssertionError(f"{self.where}: the block has no {key!r}; it has {sorted(self.values)}")
        self.unused.discard(key)
        return self.values[key]

    def array(self, key, dtype=np.float64):
        """The page's ``key`` as an array (an input of the example)."""
        return np.array(self._value(key), dtype=dtype)

    def scalar(self, key):
        return self._value(key)

    def check(self, key, actual, atol=ATOL):
        """Assert that the code's ``actual`` is what the page prints as ``key``."""
        expected = np.asarray(self._value(key))
        actual = np.asarray(actual)
        if expected.dtype.kind in "US" or actual.dtype.kind in "US":
            same = expected.shape == actual.shape and np.all(expected == actual)
        else:
            same = expected.shape == actual.shape and np.allclose(actual, expected, rtol=0, atol=atol)
        if not same:
            shown = np.round(actual.astype(np.float64), 6) if actual.dtype.kind in "fiub" else actual
            raise AssertionError(
                f"{self.where}: the page says\n  {key} = {expected.tolist()}\n"
                f"but the code computes\n  {key} = {shown.tolist()}\n"
                f"Either the code changed (fix it) or the page is wrong (fix the page).")


def read_examples(page):
    """``{name: WorkedExample}`` for every marked block of ``docs/study/<page>``."""
    lines = (PAGES / page).read_text(encoding="utf-8").splitlines()
    examples, section, index = {}, page, 0
    while index < len(lines):
        heading = HEADING.match(lines[index])
        if heading and not lines[index].startswith("#!"):
            section = heading.group(2)
        marker = MARKER.search(lines[index])
        index += 1
        if not marker:
            continue
        name = marker.group(1)
        if index >= len(lines) or lines[index].strip() != "```python":
            raise AssertionError(f"docs/study/{page}: the marker of {name!r} must be followed by a ```python block")
        end = lines.index("```", index + 1)
        source = "\n".join(lines[index + 1:end])
        examples[name] = WorkedExample(page, name, section, _parse(source, page, name))
        index = end + 1
    return examples


def _parse(source, page, name):
    values = {}
    for statement in ast.parse(source).body:
        if not (isinstance(statement, ast.Assign) and len(statement.targets) == 1
                and isinstance(statement.targets[0], ast.Name)):
            raise AssertionError(f"docs/study/{page}, example {name!r}: expected only `name = literal` lines, "
                                 f"got {ast.unparse(statement)!r}")
        values[statement.targets[0].id] = ast.literal_eval(statement.value)
    return values


def read_example(page, name):
    """One worked example of ``docs/study/<page>``, e.g. to take the inputs an earlier example set up."""
    examples = read_examples(page)
    if name not in examples:
        raise AssertionError(f"docs/study/{page} has no worked example {name!r}; it has {sorted(examples)}")
    return examples[name]


@contextlib.contextmanager
def worked_example(page, name):
    """Open one worked example; on leaving, every value in it must have been read or checked."""
    example = read_example(page, name)
    yield example
    if example.unused:
        raise AssertionError(f"{example.where}: the page prints {sorted(example.unused)} but no test checks them")
