"""The command line ends with one line and a Unix exit status, never a traceback.

Bad input (an empty structure list, a TOML file nested 3000 deep, a bad ``NUMBA_NUM_THREADS``,
a sweep of millions of points) gives one ``invlend: error:`` line and status 2; a Ctrl-C at
any moment, the imports included, gives ``invlend: interrupted`` and 130; a reader that goes
away (``invlend compare | head -1``) gives silence and 141. A sweep's ``--out`` folder must not
break the Python started next to it, and neither may a stray ``coverage/`` folder.
"""

from __future__ import annotations

import importlib
import math
import os
import shlex
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from commands import interruptible
from commands import run_cli as run
from invlend import _numba, cli

ROOT = Path(__file__).resolve().parents[1]
FAST = ("--portfolios", 5, "--size", 5, "--bootstrap", 0)


def console_script() -> list[str]:
    """What the installed ``invlend`` script runs, read from pyproject.toml (not the install)."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    module, func = scripts["project"]["scripts"]["invlend"].split(":")
    return [sys.executable, "-c", f"import sys; from {module} import {func}; sys.exit({func}())"]


def assert_one_line_error(proc, *fragments):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("invlend: error:"), lines[0]
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "args",
    [
        ("compare",),
        ("sweep", "loan.rate", "0.03,0.05"),
        ("breakeven", "loan.rate", 0, 0.3, "--structure", "pure_loan", "--target", 0),
    ],
    ids=lambda a: a[0],
)
def test_empty_structure_list_is_refused_naming_structures(tmp_path, args):
    empty = tmp_path / "empty.toml"
    empty.write_text("structure = []\n", encoding="utf-8")
    proc = run(*args, "--structures", empty, "--portfolios", 5, "--size", 5)
    assert_one_line_error(proc, "--structures", str(empty), "no [[structure]] tables")
    assert proc.stdout == ""


@pytest.mark.parametrize("command", ["scenario check", "compare"])
def test_toml_nested_3000_deep_is_one_line(tmp_path, command):
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 3000 + "]" * 3000 + "\n", encoding="utf-8")
    out = tmp_path / "report"
    extra = ("--portfolios", 5, "--size", 5, "--out", out) if command == "compare" else ()
    proc = run(*command.split(), deep, *extra)
    assert_one_line_error(proc)
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not out.exists()


@pytest.mark.parametrize(
    ("exc", "fragments"),
    [
        (RecursionError("maximum recursion depth exceeded"), ["nested too deeply"]),
        (MemoryError("Unable to allocate 7.45 TiB"), ["out of memory", "7.45 TiB", "--size"]),
        (MemoryError(), ["out of memory"]),
        (OSError(28, "No space left on device"), ["No space left on device"]),
    ],
    ids=["recursion", "memory", "memory-bare", "oserror-no-file"],
)
def test_last_resort_errors_are_one_line(monkeypatch, capsys, exc, fragments):
    def fail(args):
        raise exc

    monkeypatch.setattr(cli, "_inputs", fail)
    assert cli.main(["compare"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("invlend: error: "), captured.err
    assert not lines[0].startswith("invlend: error: :"), lines[0]
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    assert captured.out == ""


@pytest.mark.parametrize(
    ("values", "grid", "fragment"),
    [
        ("0:0.1:3000000", None, "values: at most 1000 values, got 3000000"),
        (",".join(["0.05"] * 1001), None, "values: at most 1000 values, got 1001"),
        ("0:0.1:200", "0:0.2:200", "--grid: at most 10000 points on a grid, got 200 x 200"),
        ("0:0.1:10", "0:0.2:3000", "--grid values: at most 1000 values, got 3000"),
    ],
    ids=["linspace", "list", "grid", "grid-values"],
)
def test_sweep_size_is_bounded_before_any_simulation(tmp_path, values, grid, fragment):
    out = tmp_path / "sweep-never"
    extra = ("--grid", "warrant.coverage", grid) if grid else ()
    start = time.monotonic()
    proc = run("sweep", "loan.rate", values, *extra, *FAST, "--out", out, timeout=60)
    assert_one_line_error(proc, fragment)
    assert time.monotonic() - start < 30  # refused up front, not after simulating
    assert not out.exists()


@pytest.mark.parametrize(
    ("values", "grid", "n"),
    [("0.03:0.05:1000", None, 1000), ("0:0.1:100", "0:0.2:100", 100 * 100)],
    ids=["1000 values", "100 x 100 grid"],
)
def test_sweep_at_the_bounds_is_accepted(monkeypatch, values, grid, n):
    import invlend as il

    seen = []

    def fake_sweep(scenario, structures, params, vals, **kw):  # only the checks before run
        seen.append(math.prod(len(v) for v in vals) if grid else len(vals))
        raise ValueError("stop here")

    monkeypatch.setattr(il, "sweep", fake_sweep)
    extra = ["--grid", "warrant.coverage", grid] if grid else []
    assert cli.main(["sweep", "loan.rate", values, *extra, *map(str, FAST)]) == 2
    assert seen == [n]


# ------------------------------------------------------------------------------ NUMBA_NUM_THREADS


@pytest.mark.parametrize("value", ["0", "-3", "four", ""])
def test_bad_numba_num_threads_is_one_line(value):
    env = {**os.environ, "NUMBA_NUM_THREADS": value}
    proc = subprocess.run(
        [*console_script(), "scenario", "check", "nope.toml"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    line = assert_one_line_error(proc, "NUMBA_NUM_THREADS", ">= 1")
    assert repr(value) in line
    # and in Python: a ValueError naming the variable, not numba's unnamed one
    lib = subprocess.run(
        [sys.executable, "-c", "import invlend"], capture_output=True, text=True, env=env,
        timeout=120,
    )  # fmt: skip
    assert lib.returncode == 1
    assert lib.stderr.splitlines()[-1].startswith("ValueError: NUMBA_NUM_THREADS:"), lib.stderr


def test_check_num_threads(monkeypatch):
    for good in ("1", "4", " 2 "):
        monkeypatch.setenv("NUMBA_NUM_THREADS", good)
        _numba._check_num_threads()
    monkeypatch.delenv("NUMBA_NUM_THREADS")
    _numba._check_num_threads()
    for bad in ("0", "-1", "2.5", "x", ""):
        monkeypatch.setenv("NUMBA_NUM_THREADS", bad)
        with pytest.raises(ValueError, match=r"^NUMBA_NUM_THREADS: must be an integer >= 1"):
            _numba._check_num_threads()


# ------------------------------------------------------------------------------ Ctrl-C


@pytest.mark.parametrize("delay", [0.05, 0.3, 0.6])
def test_ctrl_c_while_importing_ends_quietly(tmp_path, delay):
    out = tmp_path / "report"
    proc = subprocess.Popen(
        [*console_script(), "compare", "--portfolios", "60000", "--size", "100", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path, preexec_fn=interruptible,
    )  # fmt: skip
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, (proc.returncode, stderr.decode())
    assert stderr.decode().splitlines() == ["invlend: interrupted"], stderr.decode()
    assert stdout == b""
    assert not out.exists()


def test_ctrl_c_while_parsing_arguments_is_caught(monkeypatch, capsys):
    class Parser:
        def parse_args(self, argv):
            raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_parser", Parser)
    assert cli.main(["compare"]) == 130
    assert capsys.readouterr().err == "invlend: interrupted\n"


# ------------------------------------------------------------------------------ closed pipe


@pytest.mark.parametrize(
    "args",
    [("scenario", "show"), ("compare", *FAST)],
    ids=["scenario show", "compare"],
)
def test_closed_stdout_ends_quietly(args):
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first byte: every write fails with EPIPE
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "invlend.cli", *map(str, args)],
            stdout=write, stderr=subprocess.PIPE, text=True, timeout=120,
        )  # fmt: skip
    finally:
        os.close(write)
    assert proc.returncode == 141, (proc.returncode, proc.stderr)
    assert proc.stderr == ""


# ------------------------------------------------------------------------------ --out names


def test_readme_sweep_example_leaves_a_folder_python_can_start_next_to(tmp_path):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    line = next(x for x in readme.splitlines() if x.startswith("invlend sweep "))
    args = shlex.split(line.partition("#")[0])[1:]
    proc = run(*args, *FAST, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr, proc.stderr
    out = tmp_path / args[args.index("--out") + 1]
    assert (out / "sweep.csv").is_file()
    nxt = subprocess.run(
        [sys.executable, "-c", "import numba"], capture_output=True, text=True, cwd=tmp_path,
        timeout=120,
    )  # fmt: skip
    assert nxt.returncode == 0, nxt.stderr


def test_sweep_warns_when_out_could_be_imported(tmp_path):
    out = tmp_path / "my_sweep"
    proc = run("sweep", "loan.rate", "0.03,0.05", *FAST, "--out", out)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"invlend: warning: --out {out}:"), lines
    assert "the module 'my_sweep'" in lines[0] and "hyphen" in lines[0]
    assert (out / "sweep.csv").is_file()  # a warning, not a refusal


def test_warn_importable_only_for_names_python_would_import(tmp_path, capsys):
    for harmless in ("sweep-coverage", "class", "numpy", "json", "sys", "1st"):
        cli._warn_importable(tmp_path / harmless)
        assert capsys.readouterr().err == "", harmless
    cli._warn_importable(tmp_path / "no_such_module_here")
    err = capsys.readouterr().err
    assert err.startswith("invlend: warning: --out ") and str(tmp_path) in err


# ------------------------------------------------------------------------------ stray coverage/


def test_import_next_to_a_coverage_folder(tmp_path):
    (tmp_path / "coverage").mkdir()
    code = (
        "import sys, invlend\n"
        "import coverage\n"  # the folder is importable again afterwards: nothing else changed
        "assert coverage.__spec__.origin is None, coverage\n"
        "print(invlend.__version__)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    proc = run("scenario", "check", "nope.toml", cwd=tmp_path)
    assert_one_line_error(proc, "cannot read")


def _package(root: Path, init: str | None) -> Path:
    (root / "coverage").mkdir(parents=True)
    if init is not None:
        (root / "coverage" / "__init__.py").write_text(init, encoding="utf-8")
    importlib.invalidate_caches()
    return root


def test_without_stray_coverage_hides_only_a_namespace_folder(tmp_path, monkeypatch):
    monkeypatch.delitem(sys.modules, "coverage", raising=False)
    # a bare folder found on sys.path: hidden inside the block, findable again after it
    monkeypatch.setattr(sys, "path", [str(_package(tmp_path / "ns", None))])
    with _numba._without_stray_coverage(), pytest.raises(ImportError):
        importlib.import_module("coverage")
    assert "coverage" not in sys.modules
    stray = importlib.import_module("coverage")
    assert stray.__spec__.origin is None
    # a namespace package already imported: hidden inside, the same module object after
    with _numba._without_stray_coverage(), pytest.raises(ImportError):
        importlib.import_module("coverage")
    assert sys.modules["coverage"] is stray
    # a regular package (an installed coverage): left alone
    del sys.modules["coverage"]
    monkeypatch.setattr(sys, "path", [str(_package(tmp_path / "real", "MARK = 1\n"))])
    with _numba._without_stray_coverage():
        real = importlib.import_module("coverage")
    assert real.MARK == 1
    assert sys.modules["coverage"] is real
    del sys.modules["coverage"]
