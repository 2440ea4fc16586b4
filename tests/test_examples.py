"""The example notebooks run top to bottom, and their stored outputs back their conclusions.

Every ``examples/*.ipynb`` is picked up automatically and tested twice:

* executed by ``examples/execute.py`` (what ``make examples`` runs) in a fresh kernel of
  this interpreter, with ``INVLEND_EXAMPLE_SCALE=small``, a per-cell timeout and a temporary
  working directory; any failing cell fails the test with its traceback, and so does any
  output on standard error (a warning in the kernel, say);
* as stored in the repository (full size, not executed here): run top to bottom in one
  go, free of errors and warnings, with a figure, and every decimal number of its
  ``## Conclusion`` cell printed somewhere in its outputs.

Notebooks taking more than about 20 s at the small scale are marked slow (``SLOW``).
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
from nbclient.exceptions import CellExecutionError  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CELL_TIMEOUT = 120  # seconds per cell at the small scale
SLOW: set[str] = set()  # notebooks over ~20 s at the small scale
# The notebooks of issues 9 and 18; others are picked up as they are added.
EXPECTED = {
    "01_quickstart.ipynb",
    "02_warrant_coverage.ipynb",
    "03_vc_screening.ipynb",
    "04_funding_cycle.ipynb",
    "05_calibration.ipynb",
    "06_dask_cluster.ipynb",
    "07_your_own_structure.ipynb",
    "08_product_menu.ipynb",
    "09_incentives.ipynb",
}


def _load_runner():
    spec = importlib.util.spec_from_file_location(
        "invlend_examples_execute", EXAMPLES / "execute.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


runner = _load_runner()
NOTEBOOKS = runner.notebooks()

# Appended (in memory only) after the last cell: what the kernel actually ran on.
PROBE = """\
import os, sys, matplotlib
print(sys.prefix)
print(sys.executable)
print(os.getcwd())
print(matplotlib.get_backend())
print(os.environ.get("INVLEND_EXAMPLE_SCALE"))"""


def _params(slow_marks: bool):
    return [
        pytest.param(
            p, id=p.stem, marks=[pytest.mark.slow] if slow_marks and p.name in SLOW else []
        )
        for p in NOTEBOOKS
    ]


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def _text(cell) -> str:
    """Everything a code cell printed or displayed as text."""
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif "data" in out:
            parts.append(out.data.get("text/plain", ""))
    return "".join(parts)


def _has_figure(nb) -> bool:
    return any(
        "image/png" in out.get("data", {}) for c in _code_cells(nb) for out in c.get("outputs", [])
    )


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


def test_every_example_notebook_is_collected():
    assert EXPECTED <= {p.name for p in NOTEBOOKS}


@pytest.mark.parametrize("path", _params(slow_marks=True))
def test_notebook_runs_top_to_bottom_at_small_scale(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    before = _snapshot(EXAMPLES)
    failure = None
    try:
        runner.execute(nb, scale="small", timeout=CELL_TIMEOUT, cwd=tmp_path)
    except CellExecutionError as exc:
        failure = runner.plain(str(exc))
    if failure is not None:  # outside the except block: the traceback alone, once
        pytest.fail(f"{path.name}: a cell failed\n{failure}", pytrace=False)
    probe = nb.cells.pop()

    for cell, text in runner.stderr_outputs(nb):
        pytest.fail(f"{path.name}: cell {cell} wrote to standard error:\n{text}", pytrace=False)
    prefix, executable, cwd, backend, scale = _text(probe).splitlines()
    assert (prefix, executable) == (sys.prefix, sys.executable), "the kernel is another Python"
    assert os.path.samefile(cwd, tmp_path), "the kernel ran outside the temporary directory"
    assert "inline" in backend, f"matplotlib backend {backend!r}: figures could open windows"
    assert scale == "small"
    first = _text(_code_cells(nb)[0])
    assert "INVLEND_EXAMPLE_SCALE=small" in first, (
        f"the first cell must read and print INVLEND_EXAMPLE_SCALE: {first!r}"
    )
    assert all(c.execution_count for c in _code_cells(nb))
    assert _has_figure(nb), "the notebook shows no figure"
    assert _snapshot(EXAMPLES) == before, "running the notebook wrote into examples/"


@pytest.mark.parametrize("path", _params(slow_marks=False))
def test_stored_outputs_back_the_conclusion(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = _code_cells(nb)
    counts = [c.execution_count for c in code]
    assert counts == list(range(1, len(code) + 1)), f"not run top to bottom in one go: {counts}"
    assert nb.metadata.kernelspec.name == "python3"
    for c in code:
        for out in c.outputs:
            assert out.output_type != "error", f"{path.name}: stored error {out.get('ename')}"
    assert not runner.stderr_outputs(nb), f"{path.name}: stored output on standard error"
    assert _has_figure(nb)
    assert re.search(r"INVLEND_EXAMPLE_SCALE=\S+:", _text(code[0])), "stored size not printed"

    conclusions = [
        c.source
        for c in nb.cells
        if c.cell_type == "markdown" and c.source.lstrip().startswith("## Conclusion")
    ]
    assert len(conclusions) == 1, f"{path.name}: needs one markdown cell '## Conclusion'"
    numbers = re.findall(r"\d+\.\d+", conclusions[0])
    assert numbers, "the conclusion states no numbers"
    printed = "\n".join(_text(c) for c in code)
    missing = [n for n in numbers if not re.search(rf"(?<![\d.]){re.escape(n)}(?!\d)", printed)]
    assert not missing, f"{path.name}: conclusion numbers not in the stored outputs: {missing}"
