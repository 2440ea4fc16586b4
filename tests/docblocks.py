"""Run the Python examples in README.md and docs/*.md and check their printed output.

A fenced ```python block is run on its own in a fresh interpreter (working directory: a
temporary folder); when a ```text block follows it, the printed output must equal that block
(:func:`same_output`): the text exactly, integers exactly, and each decimal number to one unit
in its last printed digit. That unit is the one tolerance: a simulation's last bits differ
between CPUs (numpy's SIMD ``exp``/``log``, the maths library's FMA paths, BLAS kernels), so a
figure that lies within rounding of a printed digit's boundary may round either way; no other
change passes. Fragments that need context from the surrounding prose are fenced as ```py and
are not run.

``python tests/docblocks.py --write`` reruns every example and rewrites its output block,
after a deliberate change to the model or the random streams;
``python tests/docblocks.py --write docs/cycle.md`` does it for the pages named.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(
    r"```python\n(?P<code>.*?)```\n(?P<gap>\s*\n)?(?:```text\n(?P<out>.*?)```)?", re.S
)


#: A decimal number as printed: sign, digits, a point and digits, an optional exponent.
_DECIMAL = re.compile(r"(?<![\w.])[-+]?\d+\.\d+(?:[eE][-+]?\d+)?")


def _last_unit(token: str) -> float:
    """The value of one unit in the last printed digit of a decimal ``token``."""
    mantissa, _, exponent = token.lower().partition("e")
    decimals = len(mantissa.split(".")[1])
    return 10.0 ** (int(exponent or 0) - decimals)


def same_output(actual: str, expected: str) -> bool:
    """Whether ``actual`` prints what ``expected`` shows, up to one unit in a last digit.

    Everything outside decimal numbers must be identical (integers, words, spacing); each
    decimal number must have the same printed form (digits after the point, exponent) and
    differ by at most one unit in its last digit.
    """
    if actual == expected:
        return True
    a_nums, e_nums = _DECIMAL.findall(actual), _DECIMAL.findall(expected)
    if _DECIMAL.sub("#", actual) != _DECIMAL.sub("#", expected) or len(a_nums) != len(e_nums):
        return False
    for a, e in zip(a_nums, e_nums, strict=True):
        unit = _last_unit(e)
        if _last_unit(a) != unit or abs(float(a) - float(e)) > 1.0001 * unit:
            return False
    return True


def examples():
    """Yield ``(page, line, code, expected_output_or_None, match)`` for every runnable block."""
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for m in _BLOCK.finditer(text):
            line = text[: m.start()].count("\n") + 1
            yield page, line, m.group("code"), m.group("out"), m


def run(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter in an empty temporary folder."""
    with tempfile.TemporaryDirectory() as tmp:
        return subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp, timeout=600
        )


def write(pages: list[Path] | None = None) -> None:
    """Rewrite every output block of ``pages`` (default: all) with what its example prints now."""
    for page in pages or PAGES:
        text = page.read_text(encoding="utf-8")
        out, last = [], 0
        for m in _BLOCK.finditer(text):
            if m.group("out") is None:
                continue
            proc = run(m.group("code"))
            if proc.returncode:
                raise SystemExit(f"{page}: example failed:\n{proc.stderr}")
            out.append(text[last : m.start("out")])
            out.append(proc.stdout)
            last = m.end("out")
        out.append(text[last:])
        new = "".join(out)
        if new != text:
            page.write_text(new, encoding="utf-8")
            print(f"updated {page.relative_to(ROOT)}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write"]:
        write([Path(p).resolve() for p in sys.argv[2:]])
    else:
        raise SystemExit("usage: python tests/docblocks.py --write [page.md ...]")
