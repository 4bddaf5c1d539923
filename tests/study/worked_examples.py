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
import math
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


# Arithmetic written on the pages ("0.9·0.5 + 0.5 = 0.95", in a block's comments or in the prose):
# every "=" with a numeric expression on both sides is recomputed. Symbols are rewritten to Python
# (·, ×, −, ², ³, √, 10⁻⁶); an expression is the longest run of numbers, operators and brackets
# next to the "=", so "y[0, 0] = 1·1 + 0·2 = 4" checks "1·1 + 0·2 = 4" and skips the name. A run
# touching a name or a bracket ("lr(0) = 0.1", "e² = 7.39", "x[1] = 3") is not arithmetic.
_SYMBOLS = str.maketrans({"·": "*", "×": "*", "−": "-", "²": "**2", "³": "**3"})
_SUPERSCRIPT = str.maketrans("⁻⁰¹²³⁴⁵⁶⁷⁸⁹", "-0123456789")
_TOKEN = re.compile(r"\d+(?:\.\d+)?(?:e[-+]?\d+)?|\*\*|sqrt|floor|[-+*/()=]|\s+|.")
_FUNCTIONS = {"sqrt": lambda v: v ** 0.5, "floor": math.floor}
_OPERATORS = ("**", "-", "+", "*", "/")


def _python_arithmetic(text):
    text = re.sub(r"(\d)([⁻⁰¹²³⁴⁵⁶⁷⁸⁹]+)",
                  lambda m: f"{m.group(1)}**({m.group(2).translate(_SUPERSCRIPT)})", text)
    text = re.sub(r"√(\d+(?:\.\d+)?)", r"sqrt(\1)", text).replace("√(", "sqrt(").replace("^", "**")
    return text.translate(_SYMBOLS)


def _resolution(number):
    """Half a unit in the last digit shown: 0.05 for "0.6", 5e-11 for "5.96e-08", 0.5 for "12"."""
    mantissa, _, exponent = number.partition("e")
    return 0.5 * 10.0 ** (int(exponent or 0) - len(mantissa.partition(".")[2]))


def _is_arithmetic(token):
    return token[0].isdigit() or token in _OPERATORS or token in _FUNCTIONS or token in "()" or token.isspace()


def _evaluate(tokens):
    """(value, resolution, source) if ``tokens`` form an expression holding a number, else None.

    The resolution is that of the most precise number written in it."""
    source = "".join(tokens).strip()
    if not any(t[0].isdigit() for t in tokens) or source.count("(") != source.count(")"):
        return None
    try:
        value = eval(source, {"__builtins__": {}}, _FUNCTIONS)  # noqa: S307 (our own pages, numbers only)
    except (SyntaxError, TypeError, ZeroDivisionError):
        return None
    if not isinstance(value, (int, float)):
        return None
    return float(value), min(_resolution(t) for t in tokens if t[0].isdigit()), source


def _starts_expression(tokens, i, run_start):
    """Whether an expression may start at ``tokens[i]``: not inside a longer one (right after an
    operator) and not touching a name or bracket before it (``f(2)``, ``e**2``, ``x[1]``)."""
    if tokens[i].isspace() or tokens[i] in _OPERATORS and (i > run_start or tokens[i] != "-"):
        return False
    previous = next((t for t in reversed(tokens[run_start:i]) if not t.isspace()), None)
    if previous in _OPERATORS:
        return False
    return i == 0 or tokens[i - 1].isspace() or not re.fullmatch(r"[\w'\])*/.]", tokens[i - 1])


def arithmetic_claims(text):
    """Every ``left = right`` in ``text`` with arithmetic on both sides, and every block line
    ``name = number  # expression`` whose comment is pure arithmetic: pairs of (value, resolution, source)."""
    claims = []
    for line in _python_arithmetic(text).splitlines():
        tokens = _TOKEN.findall(line)
        for k, token in enumerate(tokens):
            if token != "=" or (k and tokens[k - 1] in "<>!=≤≥≠") or tokens[k + 1:k + 2] == ["="]:
                continue
            start, end = k, k + 1
            while start and _is_arithmetic(tokens[start - 1]):
                start -= 1
            while end < len(tokens) and _is_arithmetic(tokens[end]):
                end += 1
            left = next((found for i in range(start, k)
                         if _starts_expression(tokens, i, start) and (found := _evaluate(tokens[i:k]))), None)
            right = next((found for j in range(end, k + 1, -1) if (found := _evaluate(tokens[k + 1:j]))), None)
            if left and right:
                claims.append((left, right))
        commented = _COMMENTED_VALUE.match(line)
        if commented:
            comment = _TOKEN.findall(commented.group(2).strip())
            if all(_is_arithmetic(t) for t in comment):
                value, formula = _evaluate(_TOKEN.findall(commented.group(1))), _evaluate(comment)
                if value and formula:
                    claims.append((value, formula))
    return claims


_NUMBER = re.compile(r"-?\s*\d+(?:\.\d+)?(?:e[-+]?\d+)?")
_COMMENTED_VALUE = re.compile(r"^\s*\w+\s*=\s*(-?\d[\d.e+-]*)\s*#(.*)$")


def check_arithmetic(page, text=None):
    """Assert every arithmetic claim of ``docs/study/<page>`` (or of ``text``); return the claims."""
    wrong = []
    claims = arithmetic_claims((PAGES / page).read_text(encoding="utf-8") if text is None else text)
    for (left, left_resolution, left_source), (right, right_resolution, right_source) in claims:
        # A number written as the result of an expression is that expression rounded to its digits.
        numbers = [resolution for resolution, source in ((left_resolution, left_source),
                                                         (right_resolution, right_source)) if _NUMBER.fullmatch(source)]
        tolerance = min(numbers) if len(numbers) == 1 else max(left_resolution, right_resolution)
        if abs(left - right) > tolerance * (1 + 1e-9) + 1e-12 * abs(right):
            wrong.append(f"{left_source} = {right_source}  ({left:.10g} against {right:.10g})")
    if wrong:
        raise AssertionError(f"docs/study/{page}: arithmetic on the page that does not hold:\n  " + "\n  ".join(wrong))
    return claims
