"""The examples in README.md and docs/ run, and print what the pages show."""

from __future__ import annotations

import pytest

from docblocks import ROOT, examples, run, same_output

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
        assert same_output(proc.stdout, expected), (
            f"{page.name}:{line} prints something else; if the change is deliberate, run "
            "`python tests/docblocks.py --write`"
        )


# (actual, expected, same): the one tolerance is a unit in the last printed digit of a decimal.
SAME_OUTPUT_CASES = [
    ("PD 11.20% ± 0.064%", "PD 11.20% ± 0.064%", True),
    ("PD 11.21% ± 0.064%", "PD 11.20% ± 0.064%", True),  # a rounding boundary on another CPU
    ("PD 11.22% ± 0.064%", "PD 11.20% ± 0.064%", False),  # two units: a real change
    ("PD 11.2% ± 0.064%", "PD 11.20% ± 0.064%", False),  # printed differently
    ("(z = 64.8)", "(z = 64.7)", True),
    ("8 simulations", "9 simulations", False),  # integers exactly
    ("0.042050 ± 0.000606", "0.042049 ± 0.000606", True),
    ("1.2e-05", "1.3e-05", True),
    ("1.2e-05", "1.2e-06", False),
    ("-0.001", "+0.001", False),
    ("x = 1.5\n", "x = 1.5", False),  # everything else exactly
]


@pytest.mark.parametrize(("actual", "expected", "same"), SAME_OUTPUT_CASES)
def test_same_output_allows_one_unit_in_the_last_digit_only(actual, expected, same):
    assert same_output(actual, expected) is same
