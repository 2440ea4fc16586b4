"""Helpers for the tests that run the ``invlend`` command in a subprocess."""

from __future__ import annotations

import signal
import subprocess
import sys


def run_cli(*args, cwd=None, env=None, timeout=120) -> subprocess.CompletedProcess:
    """``python -m invlend.cli ARGS`` with its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "invlend.cli", *map(str, args)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=cwd,
        env=env,
        timeout=timeout,
    )


def interruptible() -> None:
    """In the child before exec: Ctrl-C back to its default action.

    A test run started in the background of a non-interactive shell (``make test &``, some CI
    runners, nohup) inherits SIGINT ignored, and Python then never turns it into a
    KeyboardInterrupt; a user's terminal does not ignore it.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
