"""The engine against closed forms, within 4 standard errors, with fixed seeds.

Firms are independent when ``factor_loading = 0`` (binomial or sample SEs); with a market
factor, firms of a portfolio are correlated and SEs are clustered by portfolio.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.linalg import matrix_power
from scipy import integrate, stats
from scipy.linalg import expm

import invlend as il
from conftest import (
    assert_mc_close,
    binomial_se,
    clustered_mean_se,
    one_stage,
    plain_scenario,
)

NONE, DEFAULT, IPO, MA = (int(e) for e in il.Event)


def outcomes(scenario, *, n_portfolios, portfolio_size, seed, structure=None):
    """Simulate one structure (default: a probe loan over the horizon); (result, outcomes)."""
    if structure is None:
        loan = il.Loan(loan_to_value=0.1, maturity_years=scenario.horizon_years)
        structure = il.Structure(name="probe", loan=loan)
    res = il.simulate(
        scenario, structure, n_portfolios=n_portfolios, portfolio_size=portfolio_size, seed=seed
    )
    return res, res[structure.name].outcomes


# =============================================================================================
# Competing hazards (competing exponential risks; worked values [C], docs/validation.md)
# =============================================================================================

HAZARDS = dict(default_hazard=0.15, ipo_hazard=0.05, ma_hazard=0.10)


@pytest.fixture(scope="module")
def competing():
    # 10^6 independent firms (SE 0.0005 on a probability): about 0.5 s with numba.
    sc = plain_scenario([one_stage(volatility=0.6, drift=0.1, **HAZARDS)], horizon_years=3.0)
    return outcomes(sc, n_portfolios=1000, portfolio_size=1000, seed=101)[1]


@pytest.mark.slow
def test_competing_hazards_event_probabilities(competing):
    ev = competing.event
    n = ev.size
    refs = {DEFAULT: 0.296715, IPO: 0.098905, MA: 0.197810, NONE: 0.406570}
    total = sum(HAZARDS.values())
    for (code, ref), lam in zip(refs.items(), [*HAZARDS.values(), None], strict=True):
        # the worked reference values [C], rebuilt from the formula
        exact = math.exp(-total * 3.0) if lam is None else lam / total * -math.expm1(-total * 3.0)
        assert exact == pytest.approx(ref, abs=5e-7)
        assert_mc_close(
            np.mean(ev == code),
            exact,
            binomial_se(exact, n),
            label=f"competing hazards P(event {il.Event(code).name} by T=3)",
        )


@pytest.mark.slow
def test_competing_hazards_time_to_first_event(competing):
    n = competing.event.size
    happened = competing.event != NONE
    total = sum(HAZARDS.values())
    for t in (1 / 12, 0.5, 1.0, 2.0, 3.0):
        ref = -math.expm1(-total * t)
        est = np.mean(happened & (competing.time <= t + 1e-12))
        assert_mc_close(est, ref, binomial_se(ref, n), label=f"P(first event by t={t:.3g})")
    # which event it is does not depend on when it happens
    early = happened & (competing.time <= 1.0)
    p = HAZARDS["default_hazard"] / total
    k = int(early.sum())
    assert_mc_close(
        np.mean(competing.event[early] == DEFAULT),
        p,
        binomial_se(p, k),
        label="P(default | event by t=1)",
    )


def test_quality_scales_the_default_hazard():
    # P(default by T) = E_q[ (l_d e^{-g q} / L(q)) (1 - e^{-L(q) T}) ], q ~ N(0, 1)
    ld, li, g, horizon = 0.2, 0.1, 0.5, 3.0
    sc = plain_scenario([one_stage(default_hazard=ld, ipo_hazard=li)], quality_hazard=g)
    _, o = outcomes(sc, n_portfolios=100, portfolio_size=1000, seed=7)

    def integrand(q):
        lq = ld * math.exp(-g * q)
        return stats.norm.pdf(q) * lq / (lq + li) * -math.expm1(-(lq + li) * horizon)

    ref = integrate.quad(integrand, -12, 12, epsabs=1e-12)[0]
    n = o.event.size
    assert_mc_close(
        np.mean(o.event == DEFAULT),
        ref,
        binomial_se(ref, n),
        label="P(default by T) with quality_hazard",
    )


# =============================================================================================
# Firm value: GBM, market factor, quality drift, jumps
# =============================================================================================

V0, MU, SIGMA, T = 100.0, 0.10, 0.5, 3.0


def test_gbm_terminal_value():
    sc = plain_scenario([one_stage(initial_value=V0, drift=MU, volatility=SIGMA)])
    _, o = outcomes(sc, n_portfolios=200, portfolio_size=1000, seed=202)
    v = o.value.ravel()
    n = v.size
    assert np.all(o.event == NONE)
    assert_mc_close(
        v.mean(), V0 * math.exp(MU * T), v.std(ddof=1) / math.sqrt(n), label="GBM E[V_T]"
    )
    logv = np.log(v)
    m_ref = math.log(V0) + (MU - 0.5 * SIGMA**2) * T
    var_ref = SIGMA**2 * T
    assert_mc_close(logv.mean(), m_ref, math.sqrt(var_ref / n), label="GBM E[log V_T]")
    assert_mc_close(
        logv.var(ddof=1), var_ref, var_ref * math.sqrt(2 / (n - 1)), label="GBM Var[log V_T]"
    )
    d = stats.kstest(logv, "norm", args=(m_ref, math.sqrt(var_ref))).statistic
    assert d < 1.9495 / math.sqrt(n), f"KS D={d:.3g} (0.1% critical {1.9495 / math.sqrt(n):.3g})"


def test_gbm_with_market_factor_keeps_the_marginal_law():
    a = 0.6
    sc = plain_scenario(
        [one_stage(initial_value=V0, drift=MU, volatility=SIGMA)],
        market=il.Market(discount_rate=0.0, factor_loading=a),
    )
    _, o = outcomes(sc, n_portfolios=800, portfolio_size=200, seed=303)
    est, se = clustered_mean_se(o.value)
    assert_mc_close(est, V0 * math.exp(MU * T), se, label="GBM E[V_T], factor 0.6 (clustered)")
    logv = np.log(o.value)
    m_ref = math.log(V0) + (MU - 0.5 * SIGMA**2) * T
    est, se = clustered_mean_se(logv)
    assert_mc_close(est, m_ref, se, label="GBM E[log V_T], factor 0.6 (clustered)")
    # pooled variance of log V_T (clustered SE of the mean of squared deviations)
    est, se = clustered_mean_se((logv - m_ref) ** 2)
    assert_mc_close(est, SIGMA**2 * T, se, label="GBM Var[log V_T], factor 0.6 (clustered)")
    # firms of one portfolio: correlation of log returns a^2 (mean within-portfolio covariance)
    dev = logv - m_ref
    s = dev.sum(axis=1)
    pair_cov = (s**2 - (dev**2).sum(axis=1)) / (200 * 199)
    est, se = pair_cov.mean(), pair_cov.std(ddof=1) / math.sqrt(pair_cov.size)
    assert_mc_close(
        est / (SIGMA**2 * T),
        a**2,
        se / (SIGMA**2 * T),
        label="asset correlation of two firms = a^2",
    )


def test_value_dispersion_and_quality_drift():
    disp, qd = 0.4, 0.08
    sc = plain_scenario(
        [one_stage(initial_value=V0, drift=MU, volatility=SIGMA)],
        value_dispersion=disp,
        quality_drift=qd,
    )
    _, o = outcomes(sc, n_portfolios=200, portfolio_size=1000, seed=404)
    n = o.value.size
    logv0 = np.log(o.initial_value)
    assert_mc_close(logv0.mean(), math.log(V0), disp / math.sqrt(n), label="E[log V0]")
    assert_mc_close(
        logv0.var(ddof=1), disp**2, disp**2 * math.sqrt(2 / (n - 1)), label="Var[log V0]"
    )
    # E[V_T / V0] = exp(mu T) E[exp(qd q T)] = exp(mu T + (qd T)^2 / 2)
    ratio = (o.value / o.initial_value).ravel()
    ref = math.exp(MU * T + 0.5 * (qd * T) ** 2)
    assert_mc_close(
        ratio.mean(), ref, ratio.std(ddof=1) / math.sqrt(n), label="E[V_T/V0] with quality drift"
    )
    # quality is N(0, 1) and drives growth: slope of log(V_T/V0) on q is qd * T
    slope = np.polyfit(o.quality.ravel(), np.log(ratio), 1)[0]
    resid_sd = SIGMA * math.sqrt(T)
    assert_mc_close(slope, qd * T, resid_sd / math.sqrt(n), label="d log(V_T/V0) / dq")


def test_jumps_keep_the_arithmetic_drift_and_price_merton_1976():
    # Merton (1976) test case [C]: S = K = 100, r = 0.05, sigma = 0.2, T = 1, lambda = 1,
    # mu_J = -0.1, delta = 0.15 gives C = 12.7613. Under Q the drift is r; the engine
    # compensates jumps.
    r = 0.05
    sc = plain_scenario(
        [one_stage(initial_value=100.0, drift=r, volatility=0.2)],
        market=il.Market(
            discount_rate=r, factor_loading=0.0, jump_rate=1.0, jump_mean=-0.1, jump_vol=0.15
        ),
        horizon_years=1.0,
    )
    _, o = outcomes(sc, n_portfolios=250, portfolio_size=1000, seed=505)
    v = o.value.ravel()
    n = v.size
    assert_mc_close(
        v.mean(), 100.0 * math.exp(r), v.std(ddof=1) / math.sqrt(n), label="jump-diffusion E[V_T]"
    )
    payoff = math.exp(-r) * np.maximum(v - 100.0, 0.0)
    assert_mc_close(
        payoff.mean(),
        12.7613,
        payoff.std(ddof=1) / math.sqrt(n),
        label="Merton (1976) jump-diffusion call",
    )


def test_linkage_multipliers_scale_the_hazards():
    # default x 0.5, IPO and M&A x 2: the competing-risk formula with the scaled intensities
    sc = plain_scenario([one_stage(volatility=0.3, **HAZARDS)], horizon_years=3.0)
    linked = il.Structure(
        name="linked",
        loan=il.Loan(loan_to_value=0.1, maturity_years=3.0),
        linkage=il.Linkage(default_hazard_multiplier=0.5, exit_hazard_multiplier=2.0),
    )
    _, o = outcomes(sc, n_portfolios=200, portfolio_size=1000, seed=1313, structure=linked)
    lam = {DEFAULT: 0.5 * 0.15, IPO: 2 * 0.05, MA: 2 * 0.10}
    total = sum(lam.values())
    n = o.event.size
    for code, rate in lam.items():
        ref = rate / total * -math.expm1(-total * 3.0)
        assert_mc_close(
            np.mean(o.event == code),
            ref,
            binomial_se(ref, n),
            label=f"linkage-scaled P({il.Event(code).name} by T=3)",
        )


@pytest.mark.parametrize(("jump_rate", "steps_per_year"), [(50.0, 1), (700.0, 14)])
def test_jump_counts_are_poisson(jump_rate, steps_per_year):
    # Over one year the count is Poisson(jump_rate) whatever the grid; each jump adds exactly
    # 0.001 to log V, so the count is read off V_T.
    sc = plain_scenario(
        [one_stage()],
        market=il.Market(
            discount_rate=0.0,
            factor_loading=0.0,
            jump_rate=jump_rate,
            jump_mean=0.001,
            jump_vol=0.0,
        ),
        horizon_years=1.0,
        steps_per_year=steps_per_year,
    )
    _, o = outcomes(sc, n_portfolios=10, portfolio_size=200, seed=1414)
    compensator = jump_rate * math.expm1(0.001)
    counts = (np.log(o.value / o.initial_value) + compensator) / 0.001
    n = counts.size
    assert_mc_close(
        counts.mean(),
        jump_rate,
        math.sqrt(jump_rate / n),
        label=f"mean jump count in a year, rate {jump_rate:g}",
    )


def test_more_than_fifty_jumps_per_step_are_refused():
    market = il.Market(jump_rate=800.0)
    with pytest.raises(ValueError, match=r"market\.jump_rate"):
        plain_scenario([one_stage()], market=market, horizon_years=1.0, steps_per_year=1)


# =============================================================================================
# Stage chains
# =============================================================================================

# Stage a: default 0.2, M&A 0.1, advance 0.5; stage b (last): default 0.1, IPO 0.15.
CHAIN = dict(d0=0.2, m0=0.1, a=0.5, d1=0.1, i1=0.15, round_size=0.4)


def _chain_scenario(steps_per_year):
    c = CHAIN
    stages = [
        il.Stage(
            name="a",
            weight=1.0,
            volatility=0.3,
            default_hazard=c["d0"],
            ma_hazard=c["m0"],
            advance_hazard=c["a"],
            round_size=c["round_size"],
        ),
        il.Stage(name="b", weight=0.0, volatility=0.3, default_hazard=c["d1"], ipo_hazard=c["i1"]),
    ]
    return plain_scenario(stages, horizon_years=3.0, steps_per_year=steps_per_year)


def _chain_laws(dt, horizon):
    """State law at the horizon: (continuous expm(Q T), the engine's discrete chain M^n).

    States: 0 = alive in a, 1 = alive in b, 2 = default, 3 = IPO, 4 = M&A. Within a step the
    engine draws at most one event, with probability 1 - exp(-L dt), chosen in proportion to
    the intensities: its one-step matrix M matches expm(Q dt) on the first transition but not
    on two transitions in one step (a round followed by an exit), so M^n = expm(Q T) + O(dt).
    Hitting times out of the first stage are therefore exact at grid times, but the law of the
    later stages is exact only for M^n; the continuous chain is the limit dt -> 0.
    """
    c = CHAIN
    l0, l1 = c["d0"] + c["m0"] + c["a"], c["d1"] + c["i1"]
    q = np.zeros((5, 5))
    q[0, [0, 1, 2, 4]] = [-l0, c["a"], c["d0"], c["m0"]]
    q[1, [1, 2, 3]] = [-l1, c["d1"], c["i1"]]
    p0, p1 = -math.expm1(-l0 * dt), -math.expm1(-l1 * dt)
    m = np.eye(5)
    m[0] = 0.0
    m[0, [0, 1, 2, 4]] = [1 - p0, c["a"] / l0 * p0, c["d0"] / l0 * p0, c["m0"] / l0 * p0]
    m[1] = 0.0
    m[1, [1, 2, 3]] = [1 - p1, c["d1"] / l1 * p1, c["i1"] / l1 * p1]
    return expm(q * horizon)[0], matrix_power(m, round(horizon / dt))[0]


def _chain_states(o):
    state = np.where(o.event == NONE, o.stage, 0)
    state = np.where(o.event == DEFAULT, 2, state)
    state = np.where(o.event == IPO, 3, state)
    return np.where(o.event == MA, 4, state)


STATE_NAMES = ("alive in a", "alive in b", "default", "IPO", "M&A")


@pytest.mark.slow
def test_two_stage_chain_monthly():
    _, o = outcomes(_chain_scenario(12), n_portfolios=1000, portfolio_size=1000, seed=606)
    n = o.event.size
    c = CHAIN
    l0 = c["d0"] + c["m0"] + c["a"]
    # Reaching stage b by T depends only on stage a's clock: exact at grid times.
    ref = c["a"] / l0 * -math.expm1(-l0 * 3.0)
    assert_mc_close(
        np.mean(o.n_rounds >= 1), ref, binomial_se(ref, n), label="P(reached stage b by T=3)"
    )
    # The whole state law at T against the engine's discrete chain M^n.
    continuous, discrete = _chain_laws(1 / 12, 3.0)
    state = _chain_states(o)
    for s, name in enumerate(STATE_NAMES):
        assert_mc_close(
            np.mean(state == s),
            discrete[s],
            binomial_se(discrete[s], n),
            label=f"monthly chain P({name} at T) vs M^n",
        )
    # The discretisation bias against the continuous-time chain is O(dt): 0.0037 here, or
    # 7 SE at this n, which is why the monthly run is checked against M^n.
    assert 0.003 < discrete[1] - continuous[1] < 0.005
    # Dilution: exactly 1 / (1 + round_size) after the one round, 1 without.
    assert np.all(o.dilution[o.n_rounds == 1] == 1.0 / (1.0 + c["round_size"]))
    assert np.all(o.dilution[o.n_rounds == 0] == 1.0)
    assert np.all(o.stage == o.n_rounds)


@pytest.mark.slow
def test_two_stage_chain_converges_to_the_continuous_time_chain():
    # Daily steps: the O(dt) gap between M^n and expm(Q T) is 1.2e-4, about 0.1 SE here.
    _, o = outcomes(_chain_scenario(365), n_portfolios=200, portfolio_size=1000, seed=707)
    n = o.event.size
    continuous, discrete = _chain_laws(1 / 365, 3.0)
    assert np.max(np.abs(discrete - continuous)) < 0.15 * binomial_se(0.35, n)
    state = _chain_states(o)
    for s, name in enumerate(STATE_NAMES):
        assert_mc_close(
            np.mean(state == s),
            continuous[s],
            binomial_se(continuous[s], n),
            label=f"daily chain P({name} at T) vs expm(QT)",
        )


def test_dilution_compounds_over_rounds():
    stages = [
        il.Stage(name="a", weight=0.5, advance_hazard=2.0, round_size=0.25),
        il.Stage(name="b", weight=0.5, advance_hazard=2.0, round_size=1.5),
        il.Stage(name="c", weight=0.0),
    ]
    _, o = outcomes(plain_scenario(stages), n_portfolios=20, portfolio_size=100, seed=9)
    two = (o.initial_stage == 0) & (o.n_rounds == 2)
    one_from_b = (o.initial_stage == 1) & (o.n_rounds == 1)
    assert two.any() and one_from_b.any()
    assert np.all(o.dilution[two] == (1.0 / 1.25) * (1.0 / 2.5))
    assert np.all(o.dilution[one_from_b] == 1.0 / 2.5)
    # the starting stage follows the weights
    n = o.event.size
    assert_mc_close(
        np.mean(o.initial_stage == 0), 0.5, binomial_se(0.5, n), label="P(start in stage a)"
    )
    assert np.all(o.initial_stage <= 1)


# =============================================================================================
# Structural models: Merton (1974) and a discretely monitored barrier
# =============================================================================================


def _merton_debt(v0, face, r, sigma, horizon):
    d1 = (math.log(v0 / face) + (r + 0.5 * sigma**2) * horizon) / (sigma * math.sqrt(horizon))
    d2 = d1 - sigma * math.sqrt(horizon)
    put = face * math.exp(-r * horizon) * stats.norm.cdf(-d2) - v0 * stats.norm.cdf(-d1)
    return face * math.exp(-r * horizon) - put, stats.norm.cdf(-d2)


@pytest.mark.parametrize(
    ("face", "r", "sigma", "horizon", "debt_ref"),
    [(70.0, 0.05, 0.25, 1.0, 66.1435), (90.0, 0.03, 0.40, 3.0, 65.5015)],
)
def test_merton_zero_coupon_loan(face, r, sigma, horizon, debt_ref):
    # Zero-rate bullet loan of principal D = ltv * V0 due at T, recovery_rate 1: the bank
    # receives min(V_T, D) at T, so E[NPV] = -D + D e^{-rT} - Put_BS(V0, D, r, sigma, T).
    debt, pd_ref = _merton_debt(100.0, face, r, sigma, horizon)
    assert debt == pytest.approx(debt_ref, abs=1e-4)  # Merton (1974) test values [C]
    sc = plain_scenario(
        [one_stage(initial_value=100.0, drift=r, volatility=sigma)],
        market=il.Market(discount_rate=r, factor_loading=0.0),
        horizon_years=horizon,
    )
    loan = il.Structure(
        name="merton",
        loan=il.Loan(
            loan_to_value=face / 100.0,
            rate=0.0,
            maturity_years=horizon,
            upfront_fee=0.0,
            recovery_rate=1.0,
            collateral=0.0,
        ),
    )
    res, _ = outcomes(sc, n_portfolios=100, portfolio_size=1000, seed=808, structure=loan)
    npv = res["merton"].npv.ravel()
    n = npv.size
    assert np.all(res["merton"].principal == pytest.approx(face))
    assert_mc_close(
        npv.mean(),
        debt - face,
        npv.std(ddof=1) / math.sqrt(n),
        label=f"Merton loan NPV (D={face:g}, sigma={sigma:g}, T={horizon:g})",
    )
    pd = res["merton"].loan_default.mean()
    assert_mc_close(
        pd, pd_ref, binomial_se(pd_ref, n), label=f"Merton risk-neutral PD Phi(-d2) (D={face:g})"
    )


def _discrete_barrier_pd(mu, sigma, horizon, steps, barrier, h=0.002):
    """P(min over the monitoring dates of V_k / V0 < barrier) by quadrature on a log grid.

    The density of log(V_k / V0) on the survival region is carried forward step by step by
    convolution with the Gaussian increment; the midpoint rule on a grid of width h converges
    to 1e-6 here (0.523036 at h = 0.004, 0.523037 at h = 0.0005).
    """
    dt = horizon / steps
    drift, s = (mu - 0.5 * sigma**2) * dt, sigma * math.sqrt(dt)
    b = math.log(barrier)
    x = np.arange(b, abs(drift) * steps + 9 * sigma * math.sqrt(horizon), h) + h / 2
    f = stats.norm.pdf(x, drift, s)
    half = math.ceil(9 * s / h)
    kernel = stats.norm.pdf(np.arange(-half, half + 1) * h, drift, s) * h
    for _ in range(steps - 1):
        f = np.convolve(f, kernel)[half : half + x.size]
    return 1.0 - f.sum() * h


@pytest.mark.slow
def test_discretely_monitored_barrier_default():
    # Black & Cox (1976) test case [C]: V0 = 100, B = 60, mu = 0.10, sigma = 0.5, T = 3, monthly
    # monitoring: an independent MC gives 0.5231 (400k paths); the continuous formula 0.5836
    # does not apply to a barrier checked at step ends.
    ref = _discrete_barrier_pd(0.10, 0.5, 3.0, 36, 0.6)
    assert ref == pytest.approx(0.5231, abs=4 * binomial_se(0.5231, 400_000))
    sc = plain_scenario(
        [one_stage(initial_value=100.0, drift=0.10, volatility=0.5)], default_barrier=0.6
    )
    _, o = outcomes(sc, n_portfolios=1000, portfolio_size=1000, seed=909)
    n = o.event.size
    assert_mc_close(
        np.mean(o.event == DEFAULT),
        ref,
        binomial_se(ref, n),
        label="discrete barrier P(default by T=3), monthly",
    )


# =============================================================================================
# Screening and paired comparisons
# =============================================================================================


def test_screening_accepts_the_share_and_selects_quality():
    noise, rate = 0.5, 0.3
    sc = plain_scenario([one_stage(default_hazard=0.1)], quality_hazard=0.5)
    s = il.Structure(
        name="screened",
        loan=il.Loan(loan_to_value=0.2, maturity_years=3.0),
        screening=il.Screening(signal_noise=noise, acceptance_rate=rate, cost=0.01),
    )
    res, o = outcomes(sc, n_portfolios=100, portfolio_size=1000, seed=111, structure=s)
    acc = res["screened"].accepted
    n = acc.size
    assert_mc_close(acc.mean(), rate, binomial_se(rate, n), label="screening acceptance rate")
    # E[q | q + noise e > t] = phi(z) / (rate sqrt(1 + noise^2)), z = Phi^-1(1 - rate)
    z = stats.norm.ppf(1 - rate)
    ref = stats.norm.pdf(z) / (rate * math.sqrt(1 + noise**2))
    q = o.quality[acc]
    assert_mc_close(q.mean(), ref, q.std(ddof=1) / math.sqrt(q.size), label="E[quality | accepted]")


@pytest.fixture(scope="module")
def paired():
    structs = [
        il.pure_loan(),
        il.pure_loan(name="pure_loan_5pct", rate=0.05),
        il.warrant_loan(),
    ]
    return il.simulate(
        il.Scenario.default(), structs, n_portfolios=200, portfolio_size=50, seed=1212
    )


def test_paired_difference_has_a_smaller_standard_error(paired):
    summary = paired.summary(n_boot=200)
    comparison = paired.compare(baseline="pure_loan", n_boot=200)
    for metric in ("npv_per_principal", "irr", "expected_loss", "prob_negative_npv"):
        d = comparison["pure_loan_5pct"][metric]
        a, b = summary["pure_loan_5pct"][metric], summary["pure_loan"][metric]
        independent = math.hypot(a.se, b.se)
        assert d.se < 0.5 * independent, (metric, d.se, independent)
    # the same loan at a higher rate: the NPV difference is the PV of the extra coupons, known
    # almost without noise, and positive
    d = comparison["pure_loan_5pct"]["npv_per_principal"]
    assert d.estimate > 0 and d.z > 10
