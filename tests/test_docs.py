"""The examples in README.md and docs/ run, and print what the pages show."""

from __future__ import annotations

import pytest

from docblocks import ROOT, examples, run

CASES = list(examples())


def test_pages_have_examples():
    assert len(CASES) >= 8


@pytest.mark.parametrize(
    ("page", "line", "code", "expected"),
    [(c[0], c[1], c[2], c[3]) for c in CASES],
    ids=[f"{c[0].relative_to(ROOT)}:{c[1]}" for c in CASES],
)
def test_example(page, line, code, expected):
    proc = run(code)
    assert proc.returncode == 0, f"{page.name}:{line} failed:\n{proc.stderr}"
    if expected is not None:
        assert proc.stdout == expected, (
            f"{page.name}:{line} prints something else; if the change is deliberate, run "
            "`python tests/docblocks.py --write`"
        )
