"""docs/study/README.md, the reading path: every page is listed in order and every worked example is tested."""

import re
from pathlib import Path

from tests.study.worked_examples import PAGES, read_examples

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
