"""The documentation site builds with `mkdocs build --strict`: no warning of any kind.

Strict mode fails on broken links between pages, pages left out of the nav, and griffe's
docstring warnings (a documented parameter the signature lacks, a parameter without a type).
The API page and the math of the model page are checked to have rendered.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs")
pytest.importorskip("material")
pytest.importorskip("mkdocstrings_handlers.python")

ROOT = Path(__file__).resolve().parents[1]


def test_site_builds_strict_without_warnings(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{output}"
    warnings = [line for line in output.splitlines() if "WARNING" in line]
    assert not warnings, "mkdocs build warned:\n" + "\n".join(warnings)

    api = (tmp_path / "api" / "index.html").read_text(encoding="utf-8")
    for anchor in ("invlend.simulate", "invlend.Scenario", "invlend.Warrant", "invlend.load"):
        assert f'id="{anchor}"' in api, f"the API page does not document {anchor}"
    model = (tmp_path / "model.html").read_text(encoding="utf-8")
    assert '<div class="arithmatex">' in model, "display math on the model page did not render"
    assert '<span class="arithmatex">' in model, "inline math on the model page did not render"
    assert not list(tmp_path.rglob("*.py")), "Python files were copied into the site"
