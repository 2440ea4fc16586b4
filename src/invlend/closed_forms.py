r"""Closed forms the simulation must reproduce (the sources are listed in ``docs/sources.md``).

Overview
--------
Pure functions of scalars (numpy where vectorised use is natural). They are the references of
:mod:`invlend.validation` and are themselves checked in the tests against worked values
computed from the published formulas (Merton 1974, Black & Cox 1976, Broadie, Glasserman &
Kou 1997, Galai & Schneller 1978, Merton 1976, Vasicek 2002) and against independent
computations (numerical integration with scipy).

Example
-------
>>> from invlend import closed_forms as cf
>>> round(cf.merton_debt(100, 70, 0.05, 0.25, 1.0), 4)
66.1435
>>> round(cf.black_cox_default(100, 60, 0.10, 0.50, 3.0), 6)
0.583596
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr, ndtri

__all__ = [
    "BGK_BETA",
    "bgk_barrier",
    "black_cox_default",
    "bs_call",
    "bs_put",
    "competing_hazards",
    "default_correlation",
    "discrete_barrier_default",
    "merton_debt",
    "merton_jump_call",
    "stage_chain",
    "stage_chain_steps",
    "value_hazard_pd",
    "vasicek_cdf",
    "vasicek_finite_cdf",
    "vasicek_quantile",
]

#: Broadie-Glasserman-Kou constant ``-zeta(1/2) / sqrt(2 pi)`` (Broadie, Glasserman & Kou 1997).
BGK_BETA = 0.5825971579390106


def _norm_pdf(x):
    """The standard normal density, written out: importing scipy.stats costs half a second."""
    return np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def bs_call(s: float, k: float, r: float, sigma: float, t: float) -> float:
    """Black-Scholes price of a European call (no dividends).

    A total volatility ``sigma * sqrt(t)`` below 1e-12 is priced as zero volatility (the
    forward intrinsic value), which it equals to far below a rounding error.
    """
    s, k, r, sigma, t = (float(x) for x in (s, k, r, sigma, t))
    if t <= 0.0 or sigma * math.sqrt(t) < 1e-12:
        return max(s - k * math.exp(-r * t), 0.0)
    d1 = (math.log(s / k) + (r + 0.5 * sigma**2) * t) / (sigma * math.sqrt(t))
    d2 = d1 - sigma * math.sqrt(t)
    return float(s * ndtr(d1) - k * math.exp(-r * t) * ndtr(d2))


def bs_put(s: float, k: float, r: float, sigma: float, t: float) -> float:
    """Black-Scholes price of a European put, by put-call parity."""
    return bs_call(s, k, r, sigma, t) - s + k * math.exp(-r * t)


def merton_debt(v0: float, face: float, r: float, sigma: float, t: float) -> float:
    """Merton (1974) value of zero-coupon debt: ``face e^{-rT} - Put(V0, face)``."""
    return face * math.exp(-r * t) - bs_put(v0, face, r, sigma, t)


def black_cox_default(
    v0: float, barrier: float, mu: float, sigma: float, t: float, gamma: float = 0.0
) -> float:
    """Probability that GBM (arithmetic drift ``mu``) hits ``barrier * e^{gamma s}`` by ``t``.

    Continuous monitoring (Black & Cox 1976).
    """
    x0 = math.log(v0 / barrier)
    nu = mu - 0.5 * sigma**2 - gamma
    st = sigma * math.sqrt(t)
    return float(
        ndtr((-x0 - nu * t) / st) + math.exp(-2.0 * nu * x0 / sigma**2) * ndtr((-x0 + nu * t) / st)
    )


def bgk_barrier(barrier: float, sigma: float, dt: float) -> float:
    """Down barrier shifted for monitoring every ``dt`` (Broadie, Glasserman & Kou 1997)."""
    return barrier * math.exp(-BGK_BETA * sigma * math.sqrt(dt))


def discrete_barrier_default(
    v0: float, barrier: float, mu: float, sigma: float, t: float, n_steps: int, points: int = 4000
) -> float:
    """Probability that GBM is below ``barrier`` at one of ``n_steps`` equally spaced dates.

    Computed by propagating the density of ``log V`` on a grid above the barrier, step by
    step, with the exact Gaussian transition (trapezoidal rule; error O(grid spacing^2),
    about 5e-6 with the default 4000 points on the barrier case of ``docs/validation.md``:
    V0 = 100, barrier 60, mu = 0.10, sigma = 0.5, T = 3, monthly). This is the exact
    discrete-monitoring reference the BGK shift approximates.
    """
    dt = t / n_steps
    m = (mu - 0.5 * sigma**2) * dt
    s = sigma * math.sqrt(dt)
    b = math.log(barrier / v0)
    hi = max(0.0, m * n_steps) + 10.0 * sigma * math.sqrt(t)
    x = np.linspace(b, hi, points)
    h = x[1] - x[0]
    w = np.full(points, h)
    w[0] = w[-1] = 0.5 * h
    kernel = _norm_pdf((x[:, None] - (x[None, :] + m)) / s) / s  # to <- from
    dens = _norm_pdf((x - m) / s) / s  # after the first step, before its check
    for _ in range(n_steps - 1):
        dens = kernel @ (dens * w)
    survive = float(np.sum(dens * w))
    # The grid's top is 10 sd above the drift: the mass beyond it is below 1e-20.
    return 1.0 - survive


def merton_jump_call(
    s: float,
    k: float,
    r: float,
    sigma: float,
    t: float,
    jump_rate: float,
    jump_mean: float,
    jump_vol: float,
    terms: int = 80,
) -> float:
    """Merton (1976) call with lognormal jumps ``log(1 + J) ~ N(jump_mean, jump_vol^2)``."""
    kappa = math.exp(jump_mean + 0.5 * jump_vol**2) - 1.0
    lam = jump_rate * (1.0 + kappa)
    total = 0.0
    for n in range(terms):
        weight = (
            math.exp(-lam * t + n * math.log(lam * t) - math.lgamma(n + 1))
            if lam > 0
            else (1.0 if n == 0 else 0.0)
        )
        sig_n = math.sqrt(sigma**2 + n * jump_vol**2 / t)
        r_n = r - jump_rate * kappa + n * math.log1p(kappa) / t
        total += weight * bs_call(s, k, r_n, sig_n, t)
    return total


def competing_hazards(hazards: list[float], t: float) -> tuple[list[float], float]:
    """``P(event i first and by t) = (l_i / L)(1 - e^{-L t})`` and survival ``e^{-L t}``."""
    total = float(sum(hazards))
    hit = -math.expm1(-total * t)
    return [h / total * hit if total > 0 else 0.0 for h in hazards], math.exp(-total * t)


def _generator(stages: list[dict]) -> np.ndarray:
    """Generator of the stage chain: alive stages 0..n-1, then DEFAULT, IPO, MA absorbing."""
    n = len(stages)
    q = np.zeros((n + 3, n + 3))
    for i, st in enumerate(stages):
        q[i, n] = st.get("default_hazard", 0.0)
        q[i, n + 1] = st.get("ipo_hazard", 0.0)
        q[i, n + 2] = st.get("ma_hazard", 0.0)
        if i + 1 < n:
            q[i, i + 1] = st.get("advance_hazard", 0.0)
        q[i, i] = -q[i].sum()
    return q


def stage_chain(stages: list[dict], start: int, t: float) -> np.ndarray:
    """Distribution at ``t`` of the continuous-time chain, ``expm(Q t)[start]``.

    States: the stages in order, then DEFAULT, IPO and MA (absorbing).
    """
    from scipy.linalg import expm

    return expm(_generator(stages) * t)[start]


def stage_chain_steps(stages: list[dict], start: int, dt: float, n_steps: int) -> np.ndarray:
    """The same distribution for the engine's grid: at most one event per step.

    Each step moves from stage ``i`` to ``j`` with probability
    ``(q_ij / L_i)(1 - e^{-L_i dt})``; the difference from :func:`stage_chain` is the
    discretisation error, O(dt) over a fixed horizon.
    """
    q = _generator(stages)
    n = q.shape[0]
    p = np.eye(n)
    for i in range(len(stages)):
        total = -q[i, i]
        if total > 0:
            hit = -math.expm1(-total * dt)
            p[i] = q[i] / total * hit
            p[i, i] = 1.0 - hit
    return np.linalg.matrix_power(p, n_steps)[start]


def vasicek_quantile(p: float, rho: float, alpha: float) -> float:
    """``alpha``-quantile of the large-homogeneous-portfolio loss fraction (Vasicek 2002)."""
    return float(ndtr((ndtri(p) + math.sqrt(rho) * ndtri(alpha)) / math.sqrt(1.0 - rho)))


def vasicek_cdf(x: float, p: float, rho: float) -> float:
    """``P(L <= x)`` for the large homogeneous portfolio."""
    return float(ndtr((math.sqrt(1.0 - rho) * ndtri(x) - ndtri(p)) / math.sqrt(rho)))


def vasicek_finite_cdf(x: float, p: float, rho: float, n: int, points: int = 40_001) -> float:
    """``P(L_n <= x)`` for a portfolio of ``n`` names: the binomial mixed over the factor.

    ``L_n = (defaults among n)/n``, defaults independent given the factor ``Z`` with
    probability ``Phi((Phi^-1(p) - sqrt(rho) Z)/sqrt(1 - rho))``; trapezoidal rule over
    ``Z`` in [-10, 10] (spacing 5e-4, fine enough for the binomial's steepness up to
    ``n`` of about a million).
    """
    z = np.linspace(-10.0, 10.0, points)
    pz = ndtr((ndtri(p) - math.sqrt(rho) * z) / math.sqrt(1.0 - rho))
    k = math.floor(x * n + 1e-9)
    from scipy import stats  # imported here: scipy.stats alone takes half a second to import

    return float(np.trapezoid(_norm_pdf(z) * stats.binom.cdf(k, n, pz), z))


def default_correlation(pd: float, rho: float) -> float:
    """Correlation of two obligors' default indicators in the one-factor Gaussian model.

    ``(Phi_2(k, k; rho) - pd^2) / (pd (1 - pd))`` with ``k = Phi^-1(pd)`` and ``rho`` the
    asset correlation (Basel II ¶272's ``R``). At ``pd`` 3%: 0.0146 at ``rho`` 0.08, 0.0445
    at 0.20. The bivariate normal probability is computed as the one-factor integral
    ``E_Z[Phi((k - sqrt(rho) Z) / sqrt(1 - rho))^2]`` on a fine grid.
    """
    k = float(ndtri(pd))
    z = np.linspace(-12.0, 12.0, 48_001)
    cond = ndtr((k - math.sqrt(rho) * z) / math.sqrt(1.0 - rho))
    joint = float(np.trapezoid(_norm_pdf(z) * cond**2, z))
    return (joint - pd * pd) / (pd * (1.0 - pd))


def value_hazard_pd(hazard: float, beta: float, log_drift: float, dt: float, n_steps: int):
    """PD by steps ``1..n_steps`` of a deterministic path with a value-driven intensity.

    With zero volatility ``log V`` grows at ``log_drift`` a year, so the intensity of step
    ``k`` (read at the step's start value, as the engine does: ``V`` at ``(k - 1) dt``) is
    ``hazard * exp(-beta * log_drift * (k - 1) dt)`` and the PD by step ``n`` is
    ``1 - exp(-sum_{k <= n} hazard_k dt)``: exact on the grid. Against continuous time the
    cumulative hazard is a left Riemann sum of a monotone function, so it errs by at most
    ``dt * |hazard_0 - hazard_T|`` (first order in ``dt``).
    """
    k = np.arange(n_steps)
    return -np.expm1(-np.cumsum(hazard * np.exp(-beta * log_drift * k * dt) * dt))
