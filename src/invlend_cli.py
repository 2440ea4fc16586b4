"""Entry point of the ``invlend`` console script, kept outside the package on purpose.

The script that pip writes runs ``from <module> import main`` before it calls ``main``, and
importing anything inside ``invlend`` first runs ``invlend/__init__`` (numpy, scipy, numba:
a second or more). A Ctrl-C in that time, or an import that fails on a bad environment
variable, would end in a traceback from the script itself, out of reach of
:func:`invlend.cli.main`. This module needs only the standard library, so it loads in a
millisecond and the package import runs inside its ``try``.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> int:
    """Import and run :func:`invlend.cli.main`; return its exit status.

    On a Ctrl-C at any point, the imports included: ``invlend: interrupted`` on standard error
    and status 130. When the import fails on a bad setting in the environment (numba's
    ``NUMBA_NUM_THREADS``): one ``invlend: error:`` line and status 2.
    """
    try:
        try:
            from invlend.cli import main as run
        except ValueError as exc:
            sys.stderr.write(f"invlend: error: {exc}\n")
            return 2
        return run()
    except KeyboardInterrupt:
        sys.stderr.write("invlend: interrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
