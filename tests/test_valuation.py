"""Fair value (model version 2): the risk-neutral measure and the invariants that pin it.

Each Monte Carlo check has a fixed seed and a tolerance in standard errors, and prints its
z-score. The closed forms are Black-Scholes (a one-stage warrant with a constant default
intensity is a call at the rate ``r + lambda``: the jump to default adds its intensity to the
drift of the surviving firm) and Merton (1974) risky debt.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

import invlend as il
from invlend._sim import layout as L

Z_MAX = 4.0


def one_stage(**kw) -> il.Scenario:
    """One stage, no exits or rounds, every firm at the same entry value: the closed forms'."""
    stage = dict(
        name="only", weight=1.0, initial_value=100.0, drift=0.3, volatility=0.5,
        default_hazard=0.05,
    )  # fmt: skip
    stage.update(kw.pop("stage", {}))
    base = dict(
        stages=[il.Stage(**stage)], value_dispersion=0.0, quality_hazard=0.0,
        horizon_years=5.0, steps_per_year=12,
    )  # fmt: skip
    base.update(kw)
    return il.Scenario(**base)


def black_scholes(s: float, k: float, t: float, r: float, sigma: float) -> float:
    d1 = (math.log(s / k) + (r + 0.5 * sigma**2) * t) / (sigma * math.sqrt(t))
    return s * norm.cdf(d1) - k * math.exp(-r * t) * norm.cdf(d1 - sigma * math.sqrt(t))


def loan(**kw) -> il.Loan:
    terms = dict(loan_to_value=0.2, rate=0.05, maturity_years=3.0)
    terms.update(kw)
    return il.Loan(**terms)


ACCEPT_ALL = il.Screening(acceptance_rate=1.0, cost=0.0)


def per_portfolio(res, name: str, part: str) -> np.ndarray:
    """A part of the fair value per unit lent, per portfolio."""
    agg = res[name].fair_aggregates
    return agg[:, L.AGG_PV[part]] / agg[:, L.AGG_PRINCIPAL]


def z_of(x: np.ndarray, target: float) -> float:
    return float((x.mean() - target) / (x.std(ddof=1) / math.sqrt(x.size)))


# --------------------------------------------------------------------------- the martingale


def equity_stake(e: float = 0.05) -> il.Structure:
    # A loan too small to matter: the stake's proceeds are then the firm's whole value.
    return il.Structure(
        name="stake", loan=loan(loan_to_value=1e-9), equity=il.Equity(equity_to_value=e),
        screening=ACCEPT_ALL,
    )  # fmt: skip


@pytest.mark.parametrize(
    "label, scenario",
    [
        ("built-in with jumps", il.Scenario.default().replace(
            market=il.Market(jump_rate=0.5, jump_mean=-0.2, jump_vol=0.3))),
        ("no value factor, no cycle", il.Scenario.default().replace(
            hazard_value_elasticity=0.0, runway_hazard_multiplier=1.0, cycle=None,
            ipo_multiple=2.5, ma_multiple=0.6)),
    ],
)  # fmt: skip
def test_equity_bought_at_entry_value_is_worth_its_cost(label, scenario):
    """Several stages, rounds with dilution, exit multiples != 1, jumps, the cycle, beta, runway."""
    res = il.simulate(scenario, equity_stake(), n_portfolios=400, portfolio_size=100, seed=11)
    agg = res["stake"].fair_aggregates
    cost = 0.05 * res["stake"].outcomes.initial_value.sum(axis=1)
    ratio = agg[:, L.AGG_PV_EQUITY] / cost  # fair value minus cost, per unit of cost
    z = z_of(ratio, 0.0)
    print(f"{label}: equity fair value / cost - 1 = {ratio.mean():+.4f}, z = {z:.2f}")
    assert abs(z) < Z_MAX
    # The real-world value of the same stake is far above its cost (drifts of 16-60% a year).
    real = res["stake"].aggregates[:, L.AGG_PV_EQUITY] / cost
    assert real.mean() > 0.3


def test_real_world_figures_do_not_depend_on_the_measures():
    sc = il.Scenario.default()
    both = il.simulate(sc, n_portfolios=20, portfolio_size=50, seed=4)
    real = il.simulate(sc, n_portfolios=20, portfolio_size=50, seed=4, measures="real_world")
    assert set(both.arrays) - set(real.arrays) == {
        f"q.s{i}.{k}" for i in range(3) for k in ("agg", "npv")
    }
    for key, a in real.arrays.items():
        np.testing.assert_array_equal(a, both.arrays[key], err_msg=key)
    est = real.summary(n_boot=0)["pure_loan"]["fair_value_per_principal"]
    assert math.isnan(est.estimate) and "risk-neutral" in est.note
    assert "fair_value_per_principal" not in str(real.summary(n_boot=0))
    with pytest.raises(ValueError, match="measure: this run has no risk-neutral measure"):
        real.decompose("pure_loan")


# --------------------------------------------------------------------------- warrants


def warrant_only(expiry: float, coverage: float = 0.1) -> il.Structure:
    return il.Structure(
        name="w", loan=loan(), warrant=il.Warrant(coverage=coverage, expiry_years=expiry),
        screening=ACCEPT_ALL,
    )  # fmt: skip


@pytest.mark.parametrize(
    "expiry, premium",
    [(3.0, 1.0), (5.0, 2.0), (7.0, 1.0)],
    ids=["expires before the horizon", "at the horizon, premium 2", "past the horizon"],
)
def test_one_stage_warrant_is_black_scholes_at_r_plus_lambda(expiry, premium):
    """The covered shares drift at r + lambda while alive: a call at that rate on V0."""
    r, lam, sigma = 0.02, 0.05, 0.5
    sc = one_stage(market=il.Market(discount_rate=r, default_risk_premium=premium))
    res = il.simulate(sc, warrant_only(expiry), n_portfolios=400, portfolio_size=100, seed=3)
    w = per_portfolio(res, "w", "warrant")
    closed = 0.1 * black_scholes(1.0, 1.0, expiry, r + premium * lam, sigma)
    z = z_of(w, closed)
    print(f"expiry {expiry} y: warrant {w.mean():.5f} vs Black-Scholes {closed:.5f}, z = {z:.2f}")
    assert abs(z) < Z_MAX


def test_rounds_at_fair_value_leave_the_diluted_warrant_unchanged():
    """Galai-Schneller: dilution costs a holder only what the new money does not bring in.

    A round adds ``round_size * V`` of new money and dilutes the old holders by exactly that,
    so the covered stake ``w d V`` is continuous through a round and the warrant is the
    one-stage call whatever the rounds; a warrant priced on the undiluted value is not.
    """
    r, lam, sigma = 0.02, 0.05, 0.5
    same = dict(drift=0.3, volatility=sigma, default_hazard=lam)
    stages = [
        il.Stage(name="a", weight=1.0, advance_hazard=0.6, round_size=1.0, **same),
        il.Stage(name="b", weight=0.0, advance_hazard=0.6, round_size=0.5, **same),
        il.Stage(name="c", weight=0.0, **same),
    ]
    sc = one_stage(stages=stages, market=il.Market(discount_rate=r, default_risk_premium=1.0))
    res = il.simulate(sc, warrant_only(4.0), n_portfolios=400, portfolio_size=100, seed=5)
    assert res["w"].outcomes.n_rounds.mean() > 1.0
    w = per_portfolio(res, "w", "warrant")
    closed = 0.1 * black_scholes(1.0, 1.0, 4.0, r + lam, sigma)
    z = z_of(w, closed)
    print(f"with rounds: warrant {w.mean():.5f} vs Black-Scholes {closed:.5f}, z = {z:.2f}")
    assert abs(z) < Z_MAX


def test_no_warrant_is_worth_more_than_its_shares_and_value_rises_with_expiry():
    sc = il.Scenario.default()
    expiries = [1.0, 3.0, 5.0, 8.0]
    structs = [
        il.warrant_loan(name=f"w{t:g}", warrant=il.Warrant(coverage=0.1, expiry_years=t))
        for t in expiries
    ]
    res = il.simulate(sc, structs, n_portfolios=200, portfolio_size=100, seed=8)
    values = [per_portfolio(res, s.name, "warrant") for s in structs]
    for t, v in zip(expiries, values, strict=True):
        z = z_of(v, 0.1)  # the covered shares are worth coverage x principal at entry
        print(f"expiry {t:g} y: warrant {v.mean():.4f} of principal, shares 0.1, z = {z:.1f}")
        assert z < -Z_MAX
    for i in range(len(expiries) - 1):
        d = values[i + 1] - values[i]  # paired: the same firms
        z = z_of(d, 0.0)
        print(f"expiry {expiries[i]:g} -> {expiries[i + 1]:g} y: +{d.mean():.4f}, z = {z:.1f}")
        assert z > Z_MAX


# --------------------------------------------------------------------------- the loan


def test_bullet_loan_under_q_is_merton_risky_debt():
    """No events, recovery min(F, V_T) at maturity: D = e^{-rT} F - Put(V0, F, T)."""
    r, sigma, t, ltv = 0.03, 0.6, 5.0, 0.8
    sc = one_stage(
        stage=dict(default_hazard=0.0, volatility=sigma), distress_value=1.0,
        market=il.Market(discount_rate=r, default_risk_premium=1.0),
    )  # fmt: skip
    merton = il.Structure(
        name="m", loan=il.Loan(loan_to_value=ltv, rate=0.0, maturity_years=t),
        screening=ACCEPT_ALL,
    )  # fmt: skip
    res = il.simulate(sc, merton, n_portfolios=400, portfolio_size=100, seed=9)
    fv = res["m"].fair_aggregates[:, L.AGG_NPV] / res["m"].fair_aggregates[:, L.AGG_PRINCIPAL]
    put = black_scholes(1.0, ltv, t, r, sigma) - 1.0 + ltv * math.exp(-r * t)
    closed = (ltv * math.exp(-r * t) - put) / ltv - 1.0
    z = z_of(fv, closed)
    print(f"Merton loan: fair value {fv.mean():+.5f} vs closed form {closed:+.5f}, z = {z:.2f}")
    assert abs(z) < Z_MAX


# --------------------------------------------------------------------------- attribution


def test_parts_add_up_to_the_fair_value_and_the_npv():
    sc = il.Scenario.default()
    pool = il.pure_loan(name="pooled", risk_share=il.RiskShare(covered_fraction=0.5, premium=0.01),
                        risk_pool=il.RiskPool(covered_fraction=0.3, contribution=0.005,
                                              annual_cap=0.02),
                        equity=il.Equity(), final_fee=0.03, prepayment_fee=0.02,
                        collateral=il.Collateral(kind="ip"))  # fmt: skip
    res = il.simulate(sc, [*il.default_structures(), pool], n_portfolios=30, portfolio_size=60,
                      seed=2)  # fmt: skip
    table = res.summary(n_boot=0)
    for name in res:
        for measure, metric in (("risk_neutral", "fair_value_per_principal"),
                                ("real_world", "npv_per_principal")):  # fmt: skip
            d = res.decompose(name, measure=measure)
            parts = sum(d[p].estimate for p in L.COMPONENTS)
            assert parts == pytest.approx(d["total"].estimate, rel=1e-12, abs=1e-15)
            assert d["total"].estimate == pytest.approx(table[name][metric].estimate, rel=1e-10)
            assert d["total"].se == pytest.approx(table[name][metric].se, rel=1e-8)
    d = res.decompose("pooled")
    for part in ("fees", "collateral", "equity", "risk_sharing", "pool", "screening"):
        assert d[part].estimate != 0.0, part
    assert d["screening"].estimate < 0.0 < d["fees"].estimate
    text = str(d)
    assert "fair value per unit lent" in text and "total" in text


def test_fees_are_paid_at_repayment():
    """A firm that never fails repays at maturity: the fees' part is f_u + f D(T) exactly."""
    sc = one_stage(stage=dict(default_hazard=0.0, volatility=0.2))
    s = il.Structure(name="f", loan=loan(upfront_fee=0.01, final_fee=0.04), screening=ACCEPT_ALL)
    res = il.simulate(sc, s, n_portfolios=4, portfolio_size=50, seed=1)
    fees = res.decompose("f")["fees"].estimate
    assert fees == pytest.approx(0.01 + 0.04 * math.exp(-0.02 * 3.0), rel=1e-12)
    # An exit before maturity prepays: the final fee and the prepayment fee on the balance.
    sc = one_stage(stage=dict(default_hazard=0.0, ipo_hazard=50.0, volatility=0.2))
    s = il.Structure(name="f", loan=loan(final_fee=0.04, prepayment_fee=0.02),
                     screening=ACCEPT_ALL)  # fmt: skip
    res = il.simulate(sc, s, n_portfolios=4, portfolio_size=50, seed=1)
    k = res["f"].outcomes.step
    assert np.all(res["f"].outcomes.event == il.Event.IPO) and np.all(k < 36)
    expected = np.mean(0.06 * np.exp(-0.02 * k / 12.0))  # bullet: the balance is the principal
    assert res.decompose("f", measure="real_world")["fees"].estimate == pytest.approx(expected)


def test_illiquidity_discount_scales_the_horizon_marks_only():
    sc = il.Scenario.default()
    s = il.pure_loan(equity=il.Equity(), warrant=il.Warrant(expiry_years=7.0))

    def parts(d):
        m = sc.replace(market=sc.market.model_copy(update={"illiquidity_discount": d}))
        res = il.simulate(m, s, n_portfolios=20, portfolio_size=50, seed=6)
        return res.decompose("pure_loan")

    a, b, c = parts(0.0), parts(0.3), parts(0.6)
    # The equity part is linear in the discount (marks x (1 - d)), exits are untouched.
    mid = 0.5 * (a["equity"].estimate + c["equity"].estimate)
    assert b["equity"].estimate == pytest.approx(mid, rel=1e-10)
    assert c["equity"].estimate < b["equity"].estimate < a["equity"].estimate
    assert c["warrant"].estimate < a["warrant"].estimate
    assert a["interest"].estimate == c["interest"].estimate


# --------------------------------------------------------------------------- the argument


@pytest.mark.parametrize(
    "measures, match",
    [
        ("risk_neutral", "real-world measure is always simulated"),
        (("real_world", "q"), "unknown 'q'"),
        (3, "expected a measure name"),
    ],
)
def test_bad_measures_are_refused(measures, match):
    with pytest.raises(ValueError, match=f"measures: .*{match}"):
        il.simulate(il.Scenario.default(), n_portfolios=2, portfolio_size=2, measures=measures)


def test_a_value_barrier_has_no_risk_neutral_measure():
    sc = il.Scenario.default().replace(default_barrier=0.2)
    with pytest.raises(ValueError, match="measures: the risk-neutral measure needs default_barr"):
        il.simulate(sc, n_portfolios=2, portfolio_size=2, measures=("real_world", "risk_neutral"))
    # By default such a run simulates the real world alone and says why there is no fair value.
    res = il.simulate(sc, n_portfolios=2, portfolio_size=2)
    assert res.run.measures == ("real_world",)
    est = res.summary(n_boot=0)["pure_loan"]["fair_value_per_principal"]
    assert math.isnan(est.estimate) and "value barrier" in est.note


def test_numpy_backend_agrees_under_the_risk_neutral_measure():
    sc = il.Scenario.default().replace(market=il.Market(jump_rate=0.4))
    structs = [
        il.warrant_loan(warrant=il.Warrant(expiry_years=2.0)),
        il.pure_loan(name="long", warrant=il.Warrant(expiry_years=7.0), equity=il.Equity(),
                     final_fee=0.03, prepayment_fee=0.01),
    ]  # fmt: skip
    a = il.simulate(sc, structs, n_portfolios=6, portfolio_size=40, seed=12)
    b = il.simulate(sc, structs, n_portfolios=6, portfolio_size=40, seed=12, backend="numpy")
    for key, x in a.arrays.items():
        y = b.arrays[key]
        if x.dtype.kind == "f" and x.size:
            np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-9 * np.nanmax(np.abs(x)),
                                       err_msg=key)  # fmt: skip
        else:
            np.testing.assert_array_equal(x, y, err_msg=key)
