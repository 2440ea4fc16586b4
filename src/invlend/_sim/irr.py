"""The portfolio IRR: one definition of the solver, compiled for the cpu and cuda kernels.

Overview
--------
The annual effective IRR ``r`` of a row of undiscounted cash flows ``cf[p, k]`` (step ``k``
of length ``dt`` years) is the root of the PV polynomial ``sum_k cf[k] y^k`` in
``y = (1 + r)^(-dt)``. It is found inside the bracket ``r`` in
``[exp(-BRACKET) - 1, exp(BRACKET) - 1]``: the PV at both ends first (no sign change: NaN),
then at most :data:`MAX_NEWTON` Newton steps from ``y = 1``, each safeguarded by bisection
(:func:`newton_step`). A row with no outflow (nothing lent) gives NaN, one with no inflow -1
(:func:`row_kind`).

The functions here are ``register_jitable``: numba compiles them into whichever kernel calls
them, for the CPU (:func:`invlend._sim.cpu._portfolio_irr`, four rows side by side) or the GPU
(:func:`irr_row`, one row per thread), so both take exactly these steps and, on the CPU, give
the same bits. The ``numpy`` backend's :func:`~invlend._sim.numpy_backend.portfolio_irr` is
written independently, as the oracle.
"""

from __future__ import annotations

import math

import numpy as np

from invlend._numba import register_jitable

__all__ = ["BRACKET", "MAX_NEWTON", "irr_row", "newton_step", "rate_of", "row_kind"]

#: Half-width of the bracket in ``log(1 + r)``: rates from about -99.97% to +298,000% a year.
BRACKET = 8.0
#: Most Newton steps per row.
MAX_NEWTON = 200
#: Kinds of row (:func:`row_kind`).
SOLVE = 0
NOTHING_LENT = 1  # no outflow: NaN
NOTHING_BACK = 2  # outflows only: -1


@register_jitable(error_model="numpy")
def row_kind(cf, p):
    """``(kind, top)`` of row ``p``: whether to solve it, and its last step with a cash flow."""
    inflow = 0.0
    outflow = 0.0
    top = 0
    for k in range(cf.shape[1]):
        c = cf[p, k]
        if c > 0.0:
            inflow += c
        else:
            outflow -= c
        if c != 0.0:
            top = k
    if outflow == 0.0:
        return NOTHING_LENT, top
    if inflow == 0.0:
        return NOTHING_BACK, top
    return SOLVE, top


@register_jitable(error_model="numpy")
def newton_step(f, slope, y, a, b, f_a):
    """One safeguarded Newton step at ``y``, where the PV is ``f`` and its derivative ``slope``.

    ``[a, b]`` brackets the root with the PV ``f_a`` at ``a``; the step narrows it to the side
    of ``y`` with the sign change and falls back to bisection when Newton leaves it. Returns
    ``(y_new, a, b, f_a, converged)``.
    """
    if (f > 0.0) == (f_a > 0.0):
        a = y
        f_a = f
    else:
        b = y
    y_new = y - f / slope if slope != 0.0 else 0.5 * (a + b)
    if not (a < y_new < b):
        y_new = 0.5 * (a + b)
    return y_new, a, b, f_a, abs(y_new - y) <= 1e-15 * y


@register_jitable(error_model="numpy")
def rate_of(y, dt):
    """The annual rate ``r`` of ``y = (1 + r)^(-dt)``."""
    return math.expm1(-math.log(y) / dt)


@register_jitable(error_model="numpy")
def _pv_row(cf, p, top, y):
    """PV and d PV / dy of row ``p`` at ``y`` by Horner's scheme; no cash flow above ``top``."""
    a = 0.0
    s = 0.0
    for k in range(top, -1, -1):
        s = s * y + a
        a = a * y + cf[p, k]
    return a, s


@register_jitable(error_model="numpy")
def irr_row(cf, p, dt, y_lo, y_hi):
    """IRR of row ``p`` of ``cf``, one row alone (the GPU kernel's thread).

    ``y_lo = exp(-BRACKET * dt)`` and ``y_hi = exp(BRACKET * dt)`` come from the caller, so that
    every backend brackets with the same ``exp``. Each lane of the CPU kernel goes through
    exactly these steps; evaluating the polynomial from the row's own last cash flow instead of
    the lanes' common one adds only zeros first, which leaves every sum unchanged.
    """
    kind, top = row_kind(cf, p)
    if kind == NOTHING_LENT:
        return np.nan
    if kind == NOTHING_BACK:
        return -1.0
    f_a, _ = _pv_row(cf, p, top, y_lo)
    f_b, _ = _pv_row(cf, p, top, y_hi)
    if f_a * f_b > 0.0:
        return np.nan
    a = y_lo
    b = y_hi
    y = 1.0
    for _ in range(MAX_NEWTON):
        f, slope = _pv_row(cf, p, top, y)
        if f == 0.0:
            break
        y, a, b, f_a, converged = newton_step(f, slope, y, a, b, f_a)
        if converged:
            break
    return rate_of(y, dt)
