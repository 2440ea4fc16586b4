"""Entry point of the ``invlend`` console script, kept outside the package on purpose.

The script that pip writes runs ``from <module> import main`` before it calls ``main``, and
importing anything inside ``invlend`` first runs ``invlend/__init__`` (numpy, scipy, numba:
a second or more). A Ctrl-C in that time, or an import that fails on a bad environment
variable, would end in a traceback from the script itself, out of reach of
:func:`invlend.cli.main`. This module needs only the standard library, so it loads in a
millisecond and the package import runs inside its ``try``.
"""

from __future__ import annotations

import signal
import sys

__all__ = ["main"]


def main() -> int:
    """Import and run :func:`invlend.cli.main`; return its exit status.

    On a Ctrl-C at any point, the imports included: ``invlend: interrupted`` on standard error
    and status 130. When the import fails on a bad setting in the environment (numba's
    ``NUMBA_NUM_THREADS``): one ``invlend: error:`` line and status 2.

    A Ctrl-C during the imports is held until they finish (about a second) and then stops the
    command before it starts: raised at once, the ``KeyboardInterrupt`` can land in a callback
    of the import machinery, where Python reports it as "Exception ignored" and goes on.
    """
    held: list[int] = []
    previous = signal.getsignal(signal.SIGINT)
    hold = previous is signal.default_int_handler  # not when Ctrl-C is ignored or handled
    if hold:
        signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        try:
            try:
                from invlend.cli import main as run
            finally:
                if hold:
                    signal.signal(signal.SIGINT, previous)
        except ValueError as exc:
            sys.stderr.write(f"invlend: error: {exc}\n")
            return 2
        if held:
            raise KeyboardInterrupt
        return run()
    except KeyboardInterrupt:
        sys.stderr.write("invlend: interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
