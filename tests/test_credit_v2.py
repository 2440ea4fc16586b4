"""Model version 2's credit side against closed forms and invariants.

* value-driven default: with zero volatility the path is deterministic, so the probability of
  default by each grid time is ``1 - exp(-sum_k lambda_k dt)`` with ``lambda_k`` the intensity
  at the step's start value (intensities are predictable); its gap to the continuous-time
  closed form is the stated discretisation error;
* the runway step: one stage, default only, has ``S(n) = exp(-h dt (min(n, n_R) + m (n - n_R)+))``;
* the event clock at beta = 0: every stage's outcome law equals the exact chain's;
* recovery from the firm: equal loan terms give equal losses on the same firms; collateral
  recovers by hand with no error, falls with the firm's value at elasticity 1;
* the kernels and their numpy twin agree on all of it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import invlend as il
from conftest import assert_mc_close, binomial_se, one_stage, plain_scenario


def _outcomes(res) -> il.Outcomes:
    """The outcomes of a run's first structure (the firms every structure here shares)."""
    return next(iter(res.values())).outcomes


def _pd_by_step(res, n_steps: int) -> np.ndarray:
    """Share of firms that defaulted by each step 1..n_steps (all firms, one linkage group)."""
    o = _outcomes(res)
    hit = (o.event == il.Event.DEFAULT).ravel()
    steps = o.step.ravel()[hit]
    counts = np.bincount(steps, minlength=n_steps + 1)[1:]
    return np.cumsum(counts) / o.event.size


# ------------------------------------------------------------------ value-driven intensity


def _deterministic_case(beta: float, drift: float, h: float):
    sc = plain_scenario(
        [one_stage(drift=drift, default_hazard=h)],
        horizon_years=4.0,
        steps_per_year=4,
        hazard_value_elasticity=beta,
    )
    return sc


def discrete_pd(h: float, beta: float, g: float, dt: float, n: int) -> np.ndarray:
    """PD by steps 1..n on the grid: ``h exp(-beta g (k - 1) dt)`` held over step k (its start)."""
    k = np.arange(n)  # step k + 1 reads the value at its start, k dt
    return -np.expm1(-np.cumsum(h * np.exp(-beta * g * k * dt) * dt))


@pytest.mark.parametrize("beta,drift", [(2.0, -0.3), (1.5, 0.2)])
def test_value_driven_pd_on_the_grid_matches_its_closed_form(beta, drift):
    h = 0.3
    sc = _deterministic_case(beta, drift, h)
    res = il.simulate(sc, [il.pure_loan()], n_portfolios=40, portfolio_size=1000, seed=11)
    n = sc.n_steps
    pd = _pd_by_step(res, n)
    exact = discrete_pd(h, beta, drift, sc.dt, n)
    n_firms = _outcomes(res).event.size
    for k in (1, 4, 8, 16):
        assert_mc_close(pd[k - 1], exact[k - 1], binomial_se(exact[k - 1], n_firms),
                        label=f"beta={beta} g={drift} PD by step {k}")  # fmt: skip
    # Falling values raise the hazard (drift < 0), rising ones lower it.
    flat = -np.expm1(-h * sc.dt * np.arange(1, n + 1))
    # (The first step reads the entry value, where the factor is 1.)
    assert exact[0] == pytest.approx(flat[0], rel=1e-14)
    assert (exact[1:] > flat[1:]).all() if drift < 0 else (exact[1:] < flat[1:]).all()


def discrete_hazard(h: float, beta: float, g: float, dt: float, n: int) -> np.ndarray:
    """Cumulative hazard on the grid by steps 1..n (intensities at each step's start)."""
    k = np.arange(n)
    return np.cumsum(h * np.exp(-beta * g * k * dt) * dt)


@pytest.mark.parametrize("beta,g", [(2.0, -0.3), (1.5, 0.2), (3.0, -0.5)])
def test_discretisation_error_of_the_value_dependent_intensity_is_within_its_bound(beta, g):
    """Left-end intensities: |H_grid(T) - H(T)| <= dt |lambda(0) - lambda(T)| (monotone)."""
    h, dt, n = 0.3, 0.25, 16
    t = dt * np.arange(1, n + 1)
    grid = discrete_hazard(h, beta, g, dt, n)
    c = beta * g
    cont = h * (-np.expm1(-c * t)) / c
    bound = dt * np.abs(h - h * np.exp(-c * t))
    assert np.all(np.abs(grid - cont) <= bound + 1e-15)
    # and it is first order: halving dt halves the gap at the horizon
    fine = discrete_hazard(h, beta, g, dt / 2, 2 * n)[-1]
    ratio = abs(fine - cont[-1]) / abs(grid[-1] - cont[-1])
    assert 0.45 < ratio < 0.55


def test_runway_step_matches_its_closed_form():
    h, m, runway, spy = 0.2, 3.0, 1.5, 4  # runway 6 steps
    sc = plain_scenario(
        [one_stage(default_hazard=h, runway_years=runway)],
        horizon_years=4.0,
        steps_per_year=spy,
        runway_hazard_multiplier=m,
    )
    res = il.simulate(sc, [il.pure_loan()], n_portfolios=40, portfolio_size=1000, seed=12)
    n = sc.n_steps
    pd = _pd_by_step(res, n)
    k = np.arange(1, n + 1)
    n_r = round(runway * spy)
    exact = -np.expm1(-h / spy * (np.minimum(k, n_r) + m * np.maximum(k - n_r, 0)))
    n_firms = _outcomes(res).event.size
    for kk in (6, 7, 12, 16):
        assert_mc_close(pd[kk - 1], exact[kk - 1], binomial_se(exact[kk - 1], n_firms),
                        label=f"runway PD by step {kk}")  # fmt: skip


def test_runway_restarts_at_a_round():
    """A round resets the clock of the runway: with rounds at once, nobody is ever aged."""
    first = il.Stage(name="a", weight=1.0, default_hazard=0.1, advance_hazard=1000.0,
                     runway_years=0.25, round_size=0.0)  # fmt: skip
    last = il.Stage(name="b", weight=0.0, default_hazard=0.1, runway_years=0.5)
    base = dict(horizon_years=1.0, steps_per_year=12, runway_hazard_multiplier=5.0)
    res = il.simulate(plain_scenario([first, last], **base), [il.pure_loan(maturity_years=1.0)],
                      n_portfolios=10, portfolio_size=1000, seed=3)  # fmt: skip
    # after the round at step 1, stage b's runway of 6 steps starts: steps 8..12 multiplied
    k_round, n_r, h, dt = 1, 6, 0.1, 1 / 12
    k = np.arange(2, 13)
    aged = (k - 1 - k_round) >= n_r
    cum = np.cumsum(h * dt * np.where(aged, 5.0, 1.0))
    pd = _pd_by_step(res, 12)[-1]
    ref = -math.expm1(-cum[-1])
    assert_mc_close(pd, ref, binomial_se(ref, _outcomes(res).event.size), label="runway reset")


def test_clock_at_beta_zero_matches_the_exact_chain_on_the_grid():
    sc = plain_scenario(
        [
            il.Stage(name="a", weight=0.6, default_hazard=0.3, ipo_hazard=0.05, ma_hazard=0.1,
                     advance_hazard=0.5, volatility=0.5, round_size=0.3),
            il.Stage(name="b", weight=0.4, default_hazard=0.1, ipo_hazard=0.2, ma_hazard=0.1),
        ],
        horizon_years=3.0,
    )  # fmt: skip
    res = il.simulate(sc, [il.pure_loan()], n_portfolios=20, portfolio_size=1000, seed=4)
    c = il.cohort(sc, horizon_years=3.0, grid=True)
    o = _outcomes(res)
    n = o.event.size
    for ev, name in ((il.Event.DEFAULT, "default"), (il.Event.IPO, "ipo"), (il.Event.MA, "ma")):
        est = float(np.mean(o.event == ev))
        ref = getattr(c, name)
        assert_mc_close(est, ref, binomial_se(ref, n), label=f"clock vs chain: {name}")


# ------------------------------------------------------------------ recovery from the firm


def test_equal_loan_terms_give_equal_lgd_on_the_same_firms():
    sc = il.Scenario.default()
    a = il.pure_loan()
    b = il.pure_loan(name="with_warrant", warrant=il.Warrant(coverage=0.2))
    res = il.simulate(sc, [a, b], n_portfolios=20, portfolio_size=100, seed=5)
    ra, rb = res["pure_loan"], res["with_warrant"]
    np.testing.assert_array_equal(ra.credit_loss, rb.credit_loss)
    np.testing.assert_array_equal(ra.loan_default, rb.loan_default)
    s = res.summary()
    assert s["pure_loan"]["lgd"].estimate == s["with_warrant"]["lgd"].estimate


def _one_default(collateral, *, value_ratio: float, distress: float = 0.1,
                 cycle: il.FundingCycle | None = None):  # fmt: skip
    """A one-stage scenario in which every firm defaults in step 1 at ``value_ratio * V0``."""
    sc = plain_scenario(
        [one_stage(drift=math.log(value_ratio), default_hazard=1000.0)],
        horizon_years=1.0,
        steps_per_year=1,
        distress_value=distress,
        market=il.Market(discount_rate=0.03, factor_loading=0.0),
        cycle=cycle,
    )
    loan = il.Loan(loan_to_value=0.5, rate=0.0, maturity_years=1.0, recovery_rate=0.6,
                   collateral=collateral)  # fmt: skip
    return sc, il.Structure(name="s", loan=loan)


def test_collateral_without_error_recovers_by_hand():
    coll = il.Collateral(
        kind="ip",
        pledged_to_principal=0.5,
        haircut=0.2,
        appraisal_error=0.0,
        value_elasticity=0.0,
        liquidation_years=0.0,
        liquidation_cost=0.1,
    )
    sc, s = _one_default(coll, value_ratio=0.8)
    res = il.simulate(sc, [s], n_portfolios=2, portfolio_size=50, seed=1)
    r = res["s"]
    v_tau = _outcomes(res).value
    principal = 0.5 * _outcomes(res).initial_value
    by_hand = np.minimum(principal, 0.6 * 0.1 * v_tau + principal * 0.5 * 0.8 * 0.9)
    np.testing.assert_allclose(principal - r.credit_loss, by_hand, rtol=1e-12)
    assert (_outcomes(res).event == il.Event.DEFAULT).all()


def test_equity_pledge_recovers_less_when_the_firm_is_worth_less():
    coll = il.Collateral(kind="equity", appraisal_error=0.0, liquidation_years=0.0)
    losses = []
    for ratio in (0.9, 0.5, 0.2):
        sc, s = _one_default(coll, value_ratio=ratio)
        res = il.simulate(sc, [s], n_portfolios=2, portfolio_size=50, seed=1)
        r = res["s"]
        principal = 0.5 * _outcomes(res).initial_value
        pledge = principal * 2.0 * 0.9 * ratio  # elasticity 1: the pledge is worth V_tau/V0
        exact = np.minimum(principal, 0.06 * _outcomes(res).value + pledge)
        np.testing.assert_allclose(principal - r.credit_loss, exact, rtol=1e-9)
        losses.append(r.credit_loss.sum() / principal.sum())
    assert losses[0] < losses[1] < losses[2]


def test_appraisal_error_is_mean_preserving():
    """E[exp(s e - s^2/2)] = 1: the pledge's mean recovery is the error-free one."""
    base = dict(kind="cash", pledged_to_principal=0.3, liquidation_years=0.0)
    sc, s0 = _one_default(il.Collateral(**base), value_ratio=0.5, distress=0.0)
    _, s1 = _one_default(il.Collateral(**base, appraisal_error=0.4), value_ratio=0.5,
                         distress=0.0)  # fmt: skip
    s1 = s1.model_copy(update={"name": "noisy"})
    res = il.simulate(sc, [s0, s1], n_portfolios=40, portfolio_size=500, seed=2)
    principal = 0.5 * _outcomes(res).initial_value
    rec0 = (principal - res["s"].credit_loss) / principal
    rec1 = (principal - res["noisy"].credit_loss) / principal
    np.testing.assert_allclose(rec0, 0.3, rtol=1e-12)
    # recoveries are capped at the balance, far above 0.3 x exp(4 sd): the mean is unbiased
    per_port = rec1.mean(axis=1)
    se = per_port.std(ddof=1) / math.sqrt(per_port.size)
    assert_mc_close(rec1.mean(), 0.3, se, label="appraisal error mean")


def test_lgd_is_higher_in_the_cold_regime_than_in_the_hot_one():
    coll = il.Collateral(kind="ip")
    lgd = {}
    for start in ("hot", "cold"):
        cycle = il.FundingCycle(hot_to_cold=0.0, cold_to_hot=0.0, start=start)
        sc, s = _one_default(coll, value_ratio=0.5, distress=0.3, cycle=cycle)
        res = il.simulate(sc, [s], n_portfolios=20, portfolio_size=200, seed=6)
        lgd[start] = res.summary()["s"]["lgd"].estimate
    assert lgd["cold"] > lgd["hot"]


# ------------------------------------------------------------------ backends agree


def test_numpy_twin_agrees_on_the_v2_model():
    sc = il.Scenario.default().model_copy(
        update=dict(
            hazard_value_elasticity=1.5,
            runway_hazard_multiplier=2.5,
            cycle=il.FundingCycle(),
            stages=[
                s.model_copy(update={"runway_years": 1.0 + 0.25 * i})
                for i, s in enumerate(il.Scenario.default().stages)
            ],
        )
    )
    structs = [
        il.pure_loan(collateral=il.Collateral(kind="ip")),
        il.warrant_loan(collateral=il.Collateral(kind="equity")),
        il.vc_linked(collateral=0.1),
    ]
    a = il.simulate(sc, structs, n_portfolios=8, portfolio_size=60, seed=9)
    b = il.simulate(sc, structs, n_portfolios=8, portfolio_size=60, seed=9, backend="numpy")
    for key, x in a.arrays.items():
        y = b.arrays[key]
        if x.dtype.kind == "f":
            np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-12, equal_nan=True,
                                       err_msg=key)  # fmt: skip
        else:
            np.testing.assert_array_equal(x, y, err_msg=key)
    assert (_outcomes(a).stage2 == 1).any()


# ------------------------------------------------------------------ bad input names the field


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: il.Loan(collateral={"kind": "gold"}), "collateral: kind: 'gold'"),
        (lambda: il.Loan(collateral={"haircut": 0.2}), "kind"),
        (lambda: il.Loan(collateral={"kind": "ip", "haircut": 2.0}), "collateral.haircut"),
        (lambda: il.Loan(collateral=-0.1), "collateral: Input should be greater"),
        (lambda: il.Collateral(kind="ip", appraisal_error=-1.0), "appraisal_error"),
        (lambda: il.Stage(name="s", runway_years=0.0), "runway_years"),
        (
            lambda: il.Scenario(stages=[one_stage()], hazard_value_elasticity=-1.0),
            "hazard_value_elasticity",
        ),
        (
            lambda: il.Scenario(stages=[one_stage()], runway_hazard_multiplier=-1.0),
            "runway_hazard_multiplier",
        ),
        (lambda: il.Scenario(stages=[one_stage()], distress_value=1.5), "distress_value"),
        (lambda: il.Regime(distress_value=-0.5), "distress_value"),
    ],
)
def test_bad_v2_inputs_name_their_field(build, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        build()


def test_a_number_keeps_its_version_1_meaning_and_a_pledge_round_trips():
    loan = il.Loan(collateral=0.3)
    assert loan.collateral == 0.3
    s = il.pure_loan(collateral=il.Collateral(kind="equity", haircut=0.1))
    again = il.Structure.model_validate(s.model_dump())
    assert again == s and again.loan.collateral.value_elasticity == 1.0
