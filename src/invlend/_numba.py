"""numba options, set in one place.

``cache=True`` keeps compiled kernels on disk next to the sources (or under
``NUMBA_CACHE_DIR``), so only the first run after an install pays the compile time.
``fastmath`` stays off: results must be bit-for-bit reproducible across runs and threads,
and the ``numpy`` backend must agree with the kernels.

This module imports numba for the package, after two checks that turn numba's import-time
failures into a clear error or none (they work only while numba is not yet imported, so
modules that need numba import it from here or after this module):

* ``NUMBA_NUM_THREADS`` must be an integer >= 1. numba raises a ``ValueError`` that does not
  name the variable for ``0``, and for a value that is not an integer it warns with a
  traceback and takes the default.
* A folder named ``coverage`` in the working directory (``sys.path[0]`` for ``python -c`` and
  ``python -m``) is imported as an empty namespace package when coverage is not installed;
  numba, which uses coverage when it is installed, then fails with
  ``module 'coverage' has no attribute 'types'``.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import sys
from collections.abc import Iterator

_UNSET = object()


def _check_num_threads() -> None:
    """Raise ``ValueError`` naming ``NUMBA_NUM_THREADS`` unless it is unset or an integer >= 1."""
    value = os.environ.get("NUMBA_NUM_THREADS")
    if value is None:
        return
    try:
        ok = int(value) >= 1
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"NUMBA_NUM_THREADS: must be an integer >= 1 (or unset), got {value!r}")


def _is_namespace(spec_or_module) -> bool:
    """True for a namespace package: folders only, no ``__init__.py``, nothing installed."""
    spec = getattr(spec_or_module, "__spec__", spec_or_module)
    return spec is not None and spec.origin is None and spec.submodule_search_locations is not None


@contextlib.contextmanager
def _without_stray_coverage() -> Iterator[None]:
    """Inside the block, ``import coverage`` fails when ``coverage`` is only a stray folder.

    numba (``numba.misc.coverage_support``) runs ``import coverage``, treats ``ImportError``
    as "not installed" and otherwise subclasses ``coverage.types.Tracer``. A real coverage
    (a regular package, which the import system prefers to any namespace folder) is left
    alone; a namespace package is hidden by a ``None`` entry in ``sys.modules``, which makes
    the import raise ``ImportError``, and whatever was there before is put back afterwards.
    """
    before = sys.modules.get("coverage", _UNSET)
    if before is _UNSET:
        stray = _is_namespace(importlib.util.find_spec("coverage"))
    else:
        stray = before is not None and _is_namespace(before)
    if stray:
        sys.modules["coverage"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if stray and sys.modules.get("coverage", _UNSET) is None:
            if before is _UNSET:
                del sys.modules["coverage"]
            else:
                sys.modules["coverage"] = before  # type: ignore[assignment]


_check_num_threads()
with _without_stray_coverage():
    import numba
    from numba import prange
    from numba.extending import register_jitable

# GNU OpenMP, numba's first choice where libgomp is installed, makes a process that has run a
# parallel kernel unsafe to fork, so a fork-based ProcessPoolExecutor would abort its workers.
# Unless the user chose a layer, take a fork-safe one (TBB, a non-GNU OpenMP or numba's own
# workqueue; measured as fast as GNU OpenMP on these kernels). The engine serialises kernel
# launches across Python threads, so the workqueue layer's lack of thread safety does not bite.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "forksafe"

jit = functools.partial(numba.njit, cache=True, nogil=True, error_model="numpy")
pjit = functools.partial(numba.njit, cache=True, nogil=True, error_model="numpy", parallel=True)

__all__ = ["jit", "pjit", "prange", "register_jitable"]
