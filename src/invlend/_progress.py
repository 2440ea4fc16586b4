"""Progress bars on standard error: one look for the simulation, the summary and the sweeps.

A thin layer over :mod:`tqdm`: a bar counts the work in the unit the user sized it in
(portfolios, bootstrap replicates), with rate and time left, and leaves its final line behind.
A disabled bar is a no-op with the same methods, so callers never test for it.
"""

from __future__ import annotations

import sys

__all__ = ["bar"]


class _Off:
    """The disabled bar."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def bar(total: int, desc: str, unit: str, enabled: bool = True):
    """A progress bar of ``total`` ``unit`` s labelled ``desc``, or a no-op if not ``enabled``."""
    if not enabled:
        return _Off()
    from tqdm import tqdm  # imported when a bar is shown: `import invlend` stays light

    return tqdm(total=total, desc=desc, unit=f" {unit}", file=sys.stderr, mininterval=0.2,
                dynamic_ncols=True, smoothing=0.1)  # fmt: skip
