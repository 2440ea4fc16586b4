"""numba options, set in one place.

``cache=True`` keeps compiled kernels on disk next to the sources (or under
``NUMBA_CACHE_DIR``), so only the first run after an install pays the compile time.
``fastmath`` stays off: results must be bit-for-bit reproducible across runs and threads,
and the ``numpy`` backend must agree with the kernels.
"""

from __future__ import annotations

import functools

import numba

jit = functools.partial(numba.njit, cache=True, nogil=True, error_model="numpy")
pjit = functools.partial(numba.njit, cache=True, nogil=True, error_model="numpy", parallel=True)

__all__ = ["jit", "pjit"]
