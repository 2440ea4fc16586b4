"""Helpers for the tests that interrupt a command with Ctrl-C."""

from __future__ import annotations

import signal


def interruptible() -> None:
    """In the child before exec: Ctrl-C back to its default action.

    A test run started in the background of a non-interactive shell (``make test &``, some CI
    runners, nohup) inherits SIGINT ignored, and Python then never turns it into a
    KeyboardInterrupt; a user's terminal does not ignore it.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
