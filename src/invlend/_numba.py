"""numba options, set in one place.

``cache=True`` keeps compiled kernels on disk next to the sources (or under
``NUMBA_CACHE_DIR``), so only the first run after an install pays the compile time.
``fastmath`` stays off: results must be bit-for-bit reproducible across runs and threads,
and the ``numpy`` backend must agree with the kernels.
"""

from __future__ import annotations

import functools
import os

import numba

# GNU OpenMP, numba's first choice where libgomp is installed, makes a process that has run a
# parallel kernel unsafe to fork, so a fork-based ProcessPoolExecutor would abort its workers.
# Unless the user chose a layer, take a fork-safe one (TBB, a non-GNU OpenMP or numba's own
# workqueue; measured as fast as GNU OpenMP on these kernels). The engine serialises kernel
# launches across Python threads, so the workqueue layer's lack of thread safety does not bite.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "forksafe"

jit = functools.partial(numba.njit, cache=True, nogil=True, error_model="numpy")
pjit = functools.partial(numba.njit, cache=True, nogil=True, error_model="numpy", parallel=True)

__all__ = ["jit", "pjit"]
