"""Execute the example notebooks top to bottom with this interpreter's kernel.

Usage
-----
``python examples/execute.py [--scale SCALE] [--inplace] [NOTEBOOK ...]``

Every notebook (default: all ``examples/*.ipynb``) runs in a fresh kernel started from
``sys.executable`` -- the Python running this script, not whatever ``python`` a kernelspec
would find on ``PATH`` -- in a temporary working directory, with
``INVLEND_EXAMPLE_SCALE=SCALE`` (default ``full``) and matplotlib's inline backend. With
``--inplace`` the executed notebooks, outputs included, are written back over the originals
(``make examples`` does this); without it they are only checked. A failing cell stops the
run and prints its traceback; output on standard error (a warning, say) is refused too.

:func:`execute` is also what ``tests/test_examples.py`` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

HERE = Path(__file__).resolve().parent
KERNEL_NAME = "invlend-examples"
#: matplotlib's inline backend: figures are rendered with Agg into the notebook as PNG,
#: never in a window. Set explicitly so that a user's matplotlibrc cannot change it.
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def notebooks() -> list[Path]:
    """Every ``examples/*.ipynb``, in name order."""
    return sorted(HERE.glob("*.ipynb"))


def _kernel_manager(spec_dir: Path, scale: str) -> AsyncKernelManager:
    """A kernel manager whose kernel is ``sys.executable`` with the example environment."""
    kdir = spec_dir / KERNEL_NAME
    kdir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"invlend examples ({sys.executable})",
        "language": "python",
        "env": {"INVLEND_EXAMPLE_SCALE": scale, "MPLBACKEND": INLINE_BACKEND, "DISPLAY": ""},
    }
    (kdir / "kernel.json").write_text(json.dumps(spec))
    ksm = KernelSpecManager(kernel_dirs=[str(spec_dir)])
    # IPC sockets in the temporary directory: no TCP port, nothing readable from outside
    return AsyncKernelManager(
        kernel_name=KERNEL_NAME, kernel_spec_manager=ksm, transport="ipc", ip=str(spec_dir / "ipc")
    )


def plain(text: str) -> str:
    """``text`` without the ANSI colour codes of IPython tracebacks."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def stderr_outputs(nb) -> list[tuple[int, str]]:
    """``(cell index, text)`` of every output written to standard error."""
    return [
        (i, out.get("text", ""))
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "stream" and out.get("name") == "stderr"
    ]


def execute(nb, *, scale: str = "full", timeout: int = 600, cwd: str | Path | None = None):
    """Run every cell of ``nb`` (a ``NotebookNode``, modified in place) and return it.

    Parameters
    ----------
    nb : nbformat.NotebookNode
    scale : str
        Value of ``INVLEND_EXAMPLE_SCALE`` in the kernel.
    timeout : int
        Seconds one cell may run.
    cwd : path, optional
        Working directory of the kernel (default: a fresh temporary directory).

    Raises
    ------
    nbclient.exceptions.CellExecutionError
        A cell raised; the message holds the cell's source and traceback.
    """
    with tempfile.TemporaryDirectory(prefix="invlend-examples-") as tmp:
        work = Path(cwd) if cwd is not None else Path(tmp) / "work"
        work.mkdir(exist_ok=True)
        km = _kernel_manager(Path(tmp) / "kernels", scale)
        client = NotebookClient(
            nb,
            km=km,
            timeout=timeout,
            allow_errors=False,
            record_timing=False,
            resources={"metadata": {"path": str(work)}},
        )
        # cleanup_kc: shut the kernel down afterwards, also on error (nbclient leaves a kernel
        # it did not start itself running otherwise)
        client.execute(cleanup_kc=True)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    return nb


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (1 if a notebook failed)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: examples/*.ipynb")
    parser.add_argument("--scale", default=os.environ.get("INVLEND_EXAMPLE_SCALE", "full"))
    parser.add_argument("--inplace", action="store_true", help="write the outputs back")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args(argv)
    for path in args.notebooks or notebooks():
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        try:
            execute(nb, scale=args.scale, timeout=args.timeout)
        except CellExecutionError as exc:
            sys.stderr.write(f"{path}: a cell failed:\n{plain(str(exc))}\n")
            return 1
        took = time.perf_counter() - start
        errs = stderr_outputs(nb)
        if errs:
            cell, text = errs[0]
            sys.stderr.write(f"{path}: cell {cell} wrote to standard error:\n{text}\n")
            return 1
        if args.inplace:
            nbformat.write(nb, path)
        print(f"{path}: ran at scale {args.scale} in {took:.1f} s" + (", saved" * args.inplace))
    return 0


if __name__ == "__main__":
    sys.exit(main())
