"""Shared helpers of the invlend test suite.

Monte Carlo assertions go through :func:`assert_mc_close`: a fixed seed, a tolerance of
``k`` standard errors, and the z-score in the failure message. Every z-score checked in a run
is listed at the end of the pytest report ("Monte Carlo z-scores"), so the margins of the
statistical tests can be read without rerunning them with ``-s``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import invlend as il
from invlend.validation import _scenario as _validation_scenario

#: (label, estimate, reference, se, z, k) of every Monte Carlo check made in this session.
Z_RECORDS: list[tuple[str, float, float, float, float, float]] = []


def assert_mc_close(est: float, ref: float, se: float, k: float = 4.0, label: str = "") -> float:
    """Assert ``|est - ref| <= k * se`` and return the z-score ``(est - ref) / se``.

    ``se`` is the standard error of ``est - ref`` (of ``est`` alone when ``ref`` is exact).
    """
    est, ref, se = float(est), float(ref), float(se)
    assert math.isfinite(est) and math.isfinite(ref), f"{label}: est={est!r} ref={ref!r}"
    assert math.isfinite(se) and se > 0.0, f"{label}: the standard error must be > 0, got {se!r}"
    z = (est - ref) / se
    Z_RECORDS.append((label, est, ref, se, z, k))
    print(f"[mc] {label}: est={est:.6g} ref={ref:.6g} se={se:.3g} z={z:+.2f}")
    assert abs(z) <= k, (
        f"{label}: est={est:.8g}, ref={ref:.8g}, se={se:.4g}, z={z:+.2f} (|z| > {k:g})"
    )
    return z


def binomial_se(p_ref: float, n: int) -> float:
    """Standard error of a proportion of ``n`` independent draws with probability ``p_ref``."""
    return math.sqrt(p_ref * (1.0 - p_ref) / n)


def clustered_mean_se(x: np.ndarray) -> tuple[float, float]:
    """Mean of ``x`` (n_portfolios, portfolio_size) and its SE with portfolios as the unit."""
    per_portfolio = np.asarray(x, float).mean(axis=1)
    return float(per_portfolio.mean()), float(
        per_portfolio.std(ddof=1) / math.sqrt(per_portfolio.size)
    )


def one_stage(**stage_fields) -> il.Stage:
    """A single stage (weight 1) with the given fields; the last stage cannot advance."""
    fields = dict(name="only", weight=1.0, initial_value=100.0, drift=0.0, volatility=0.0)
    fields.update(stage_fields)
    return il.Stage(**fields)


def plain_scenario(stages, **fields) -> il.Scenario:
    """A scenario with no quality effects, no dispersion, no factor and no jumps by default.

    The validation cases' own helper, with a 3-year monthly grid unless given.
    """
    return _validation_scenario(list(stages), **{"horizon_years": 3.0, "steps_per_year": 12,
                                                 **fields})  # fmt: skip


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not Z_RECORDS:
        return
    terminalreporter.section("Monte Carlo z-scores")
    for label, est, ref, se, z, k in Z_RECORDS:
        flag = "" if abs(z) <= k else f"  FAILED |z| > {k:g} (see the test's outcome)"
        terminalreporter.write_line(
            f"z={z:+6.2f}  {label}: est={est:.6g} ref={ref:.6g} se={se:.3g}{flag}"
        )


def stage_only_default() -> il.Scenario:
    """The built-in scenario's stages on version 1's model: no value or runway factor, no cycle.

    Tests of the stage chain use it: the chain is exact only without the value and runway
    factors (the built-in scenario has both; ``test_calibrate_v2.py`` covers such scenarios),
    and some state what a funding cycle adds to a scenario without one.
    """
    return il.Scenario.default().replace(
        hazard_value_elasticity=0.0, runway_hazard_multiplier=1.0, cycle=None
    )


@pytest.fixture(scope="session")
def default_scenario() -> il.Scenario:
    return il.Scenario.default()
