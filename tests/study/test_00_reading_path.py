"""docs/study/README.md, the reading path: every page is listed in order and every worked example is tested."""

import re
from pathlib import Path

import pytest

from tests.study.worked_examples import PAGES, check_arithmetic, read_examples

STUDY_TESTS = Path(__file__).resolve().parent


def study_pages():
    return sorted(path.name for path in PAGES.glob("[0-9][0-9]-*.md"))


def test_the_index_lists_every_page_in_reading_order():
    """README.md § the table: the pages 01-... to 09-..., each linked once, in order."""
    index = (PAGES / "README.md").read_text(encoding="utf-8")
    linked = re.findall(r"\]\((\d\d-[\w-]+\.md)\)", index)
    assert linked == study_pages(), f"docs/study/README.md links {linked}, the folder holds {study_pages()}"


def test_every_page_has_a_worked_example_and_a_test_file_that_reads_it():
    """Each page NN-name.md has worked examples, and tests/study/test_NN_*.py names every one of them."""
    for page in study_pages():
        examples = read_examples(page)
        assert examples, f"docs/study/{page} has no worked example (<!-- worked example: NAME --> + a python block)"
        tests = list(STUDY_TESTS.glob(f"test_{page[:2]}_*.py"))
        assert len(tests) == 1, f"docs/study/{page}: expected one file tests/study/test_{page[:2]}_*.py, got {tests}"
        source = tests[0].read_text(encoding="utf-8")
        unread = [name for name in examples if f'"{name}"' not in source]
        assert not unread, f"docs/study/{page}: worked examples {unread} are read by no test in {tests[0].name}"


@pytest.mark.parametrize("page", study_pages())
def test_the_arithmetic_written_on_each_page_holds(page):
    """README.md § The numbers on these pages are tested: every `a = b` between numbers, and every block
    line `name = number  # expression`, recomputed to the digits shown."""
    check_arithmetic(page)


@pytest.mark.parametrize("text,claims", [
    ("b = 0.9·0.5 + 0.5 = 0.95", 1),
    ("y[0, 0] = 1·1 + 0·2 = 1;  g + 0.1·p = 0.5 + 0.1 = 0.6", 2),
    ("eps_star = 0.0062       # (3 · 5.96e-08 · 8 / 6)^(1/3)", 1),
    ("the step is 0.1 · 0.2105/√0.6248 = 0.0266, and 10⁻⁶ · 2 = 2e-06", 2),
    ("`cos(0) = 1`, `lr(0) = 0.1`, `e² = 7.3891`, `x[1] = 3`, `t = T/2`, a ≤ 3 = 3", 1),
])
def test_the_arithmetic_reader_finds_the_claims_and_skips_names(text, claims):
    assert len(check_arithmetic("made-up", text)) == claims


@pytest.mark.parametrize("text", [
    "b = 0.9·0.5 + 0.5 = 0.96",
    "0.04 / 0.19 = 0.210527",             # one unit off in the sixth decimal shown
    "error_bound = 0.000116  # 0.0062² · 6 / 2",
    "x = 0.5751   # and 0.729 + 0.9 · (−0.171) = 0.5752",
])
def test_the_arithmetic_check_fails_on_a_wrong_claim(text):
    with pytest.raises(AssertionError, match="does not hold"):
        check_arithmetic("made-up", text)
