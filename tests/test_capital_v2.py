"""Model version 2 capital: value-based economic capital, IRB effective maturity, the warrant's
equity charge, and the IFRS 9 metrics (ECL, stage 2, collateral share).

Exact checks recompute each metric from the per-portfolio totals or the per-firm arrays of a
small simulation with numpy; Monte Carlo comparisons are paired on the bootstrap replicates and
print their z-scores.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import invlend as il
from conftest import assert_mc_close, one_stage, plain_scenario
from invlend import capital as C
from invlend import closed_forms as cf
from invlend import metrics as M
from invlend._sim import layout as K
from invlend._sim.lowering import lower_structure, sicr_step
from invlend.estimation import Estimator


def _lower_quantile(x: np.ndarray, alpha: float) -> float:
    """Lower empirical ``alpha``-quantile: the ceil(alpha n)-th smallest value."""
    xs = np.sort(x)
    return float(xs[max(math.ceil(alpha * xs.size - 1e-9), 1) - 1])


def _synthetic_aggregates(n: int, seed: int) -> np.ndarray:
    """Per-portfolio totals with a skewed NPV, some portfolios lending nothing."""
    rng = np.random.default_rng(seed)
    agg = np.zeros((n, K.N_AGG))
    principal = rng.uniform(50.0, 150.0, n)
    principal[rng.random(n) < 0.02] = 0.0
    loss = principal * rng.beta(0.5, 20.0, n)
    agg[:, K.AGG_PRINCIPAL] = principal
    agg[:, K.AGG_LOSS_NET] = loss
    agg[:, K.AGG_NPV] = 0.04 * principal - loss + principal * rng.lognormal(-4.0, 1.5, n) - 0.3
    agg[:, K.AGG_EXPOSURE] = 2.5 * principal
    return agg


# --------------------------------------------------------------------------------------------
# Value-based economic capital and credit capital
# --------------------------------------------------------------------------------------------


def test_economic_capital_is_the_value_shortfall_below_its_mean():
    agg = _synthetic_aggregates(5000, seed=11)
    principal = agg[:, K.AGG_PRINCIPAL]
    x = np.zeros(principal.size)
    lent = principal > 0
    x[lent] = agg[lent, K.AGG_NPV] / principal[lent]  # 0 where nothing lent
    want = x.mean() - _lower_quantile(x, 0.001)
    fair = agg.copy()
    fair[:, K.AGG_NPV] *= 0.5  # a fair value apart from the real-world NPV
    got = M.tail_metrics(agg, np.ones((1, x.size)), fair=fair)
    assert got["economic_capital"][0] == pytest.approx(want, rel=1e-12)
    npv_pp = fair[:, K.AGG_NPV].sum() / principal.sum()  # RAROC's value: the fair value
    years = agg[:, K.AGG_EXPOSURE].sum() / principal.sum()
    assert got["raroc"][0] == pytest.approx(npv_pp / (want * years), rel=1e-12)
    assert got["eva"][0] == pytest.approx(npv_pp / years - C.DEFAULT_HURDLE * want, rel=1e-12)
    # A bootstrap replicate is the same statistic on the resample its counts describe.
    w = next(M.bootstrap_weights(x.size, 3, 5))
    for row, counts in zip(M.tail_metrics(agg, w)["economic_capital"], w, strict=True):
        sample = np.repeat(x, counts.astype(int))
        assert row == pytest.approx(sample.mean() - _lower_quantile(sample, 0.001), rel=1e-12)


def test_credit_capital_is_the_loss_quantile_minus_expected_loss():
    agg = _synthetic_aggregates(3000, seed=12)
    w = np.vstack([np.ones(3000), next(M.bootstrap_weights(3000, 4, 9))])
    t = M.tail_metrics(agg, w)
    lr = M.loss_rate(agg)
    el = w @ lr / w.sum(axis=1)
    np.testing.assert_allclose(t["credit_capital"], t["loss_var_999"] - el, rtol=1e-12)
    assert t["loss_var_999"][0] == _lower_quantile(lr, 0.999)


@pytest.fixture(scope="module")
def stake():
    """A plain loan beside the same loan with a 3% equity stake, on shared outcomes."""
    eq = il.pure_loan(name="stake", equity=il.Equity(equity_to_value=0.03))
    return il.simulate(il.Scenario.default(), [il.pure_loan(), eq], n_portfolios=400,
                       portfolio_size=50, seed=21)  # fmt: skip


def test_summary_capital_is_the_tail_metric_of_the_aggregates(stake):
    s = stake.summary(n_boot=50)
    for name, r in stake.items():
        t = M.tail_metrics(r.aggregates, np.ones((1, stake.n_portfolios)), fair=r.fair_aggregates)
        for m in ("economic_capital", "credit_capital", "raroc", "eva"):
            assert s[name][m].estimate == pytest.approx(t[m][0], rel=1e-12), (name, m)
            assert s[name][m].se > 0 and M.is_tail(m)
        e = s[name]
        assert e["credit_capital"].estimate == pytest.approx(
            e["loss_var_999"].estimate - e["expected_loss"].estimate, rel=1e-12
        )


def test_an_equity_stake_makes_economic_capital_exceed_credit_capital(stake):
    # The stake's proceeds swing the position's value far more than the loan's credit losses:
    # value-based capital sees them, credit capital does not.
    smooth, tail, _ = Estimator(stake).estimates(200, C.DEFAULT_HURDLE, M.IRB_SALES_EUR_M)
    ec, ec_reps = tail["stake"]["economic_capital"]
    cc, cc_reps = tail["stake"]["credit_capital"]
    se = float(np.std(ec_reps - cc_reps, ddof=1))
    z = (ec - cc) / se
    print(f"stake: economic capital {ec:.4f} - credit capital {cc:.4f}: z={z:+.1f}")
    assert z > 4
    # The credit losses are the loan's alone: the stake leaves credit capital unchanged.
    assert cc == tail["pure_loan"]["credit_capital"][0]
    # and RAROC divides by the value-based capital
    npv_pp = smooth["stake"]["fair_value_per_principal"][0]
    years = _years(stake["stake"].aggregates)
    assert tail["stake"]["raroc"][0] == pytest.approx(npv_pp / (ec * years), rel=1e-12)


def _years(agg: np.ndarray) -> float:
    return agg[:, K.AGG_EXPOSURE].sum() / agg[:, K.AGG_PRINCIPAL].sum()


# --------------------------------------------------------------------------------------------
# Effective maturity
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.0, 0.045, 0.3])
@pytest.mark.parametrize("years,steps", [(3.0, 12), (2.0, 4), (1.5, 52)])
def test_bullet_maturity_matches_its_closed_form(rate, years, steps):
    # Interest r dt each step and the principal at T: sum t CF = r dt^2 n(n+1)/2 + T and
    # sum CF = r T + 1, so M = (r T (T + dt)/2 + T) / (1 + r T).
    dt = 1.0 / steps
    want = (rate * years * (years + dt) / 2 + years) / (1 + rate * years)
    got = C.effective_maturity((rate, years, years), steps)
    assert got == pytest.approx(min(max(want, 1.0), 5.0), rel=1e-12)
    if rate == 0.0:
        assert got == pytest.approx(years, rel=1e-12)


def test_maturity_is_capped_at_five_and_floored_at_one_year():
    assert C.effective_maturity((0.0, 7.0, 7.0), 12) == 5.0
    assert C.effective_maturity((0.0, 0.5, 0.5), 12) == 1.0
    assert C.effective_maturity((0.0, 5.0, 5.0), 12) == 5.0


def test_amortisation_shortens_the_maturity_and_a_loan_model_reads_the_same():
    bullet = il.Loan(rate=0.04, maturity_years=3.0)
    amort = il.Loan(rate=0.04, maturity_years=3.0, interest_only_years=0.5)
    m_bullet, m_amort = C.effective_maturity(bullet, 12), C.effective_maturity(amort, 12)
    assert 1.0 < m_amort < m_bullet < 3.0
    assert m_amort == C.effective_maturity((0.04, 3.0, 0.5), 12)
    # Zero rate, amortising from the start: M is the mean of k dt over n equal repayments.
    assert C.effective_maturity((0.0, 4.0, 0.0), 4) == pytest.approx((4.0 + 0.25) / 2)


@pytest.mark.parametrize("name", ["pure_loan", "warrant_loan"])
def test_maturity_agrees_with_the_simulation_s_cash_flow_schedule(name):
    # Second implementation: the per-step flows lower_structure gives the kernels.
    sc = il.Scenario.default()
    st = getattr(il, name)()
    km = round(st.loan.maturity_years * sc.steps_per_year)
    terms = lower_structure(sc, st, np.array([km]))
    assert terms.maturity_step == km
    assert terms.premium == 0.0 and np.all(terms.flow[km + 1 :] == 0.0)
    flow = terms.flow[1 : km + 1]  # interest and repayment of each step per unit lent
    want = float(np.dot(np.arange(1, km + 1) * sc.dt, flow) / flow.sum())
    assert C.effective_maturity(st.loan, sc.steps_per_year) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize(
    "loan,match",
    [((-0.01, 3.0, 3.0), "rate"), ((0.04, 0.0, 0.0), "maturity_years"),
     ((0.04, 3.0, 4.0), "io_years"), ((0.04, 3.0), "loan must be"), ("3y", "loan must be")],
)  # fmt: skip
def test_maturity_errors_name_the_term(loan, match):
    with pytest.raises(ValueError, match=match):
        C.effective_maturity(loan, 12)


def test_summary_irb_capital_takes_the_effective_maturity():
    res = il.simulate(il.Scenario.default(), il.pure_loan(), n_portfolios=200,
                      portfolio_size=40, seed=5)  # fmt: skip
    s = res.summary(n_boot=0)["pure_loan"]
    loan = res["pure_loan"].structure.loan
    m = C.effective_maturity(loan, res.scenario.steps_per_year)
    assert 1.0 <= m < min(loan.maturity_years, 5.0)  # interest paid before maturity shortens it
    k = C.irb_capital(s["annual_pd"].estimate, s["lgd"].estimate, m, M.IRB_SALES_EUR_M)
    assert s["irb_capital"].estimate == pytest.approx(k, rel=1e-12)


# --------------------------------------------------------------------------------------------
# Warrant equity charge
# --------------------------------------------------------------------------------------------


def test_a_warrant_adds_the_equity_charge_of_its_fair_value():
    sc = il.Scenario.default()
    with_w = il.warrant_loan()
    without = with_w.model_copy(update={"name": "no_warrant", "warrant": None})
    res = il.simulate(sc, [with_w, without], n_portfolios=200, portfolio_size=40, seed=8)
    s = res.summary(n_boot=0)
    value = res.decompose("warrant_loan")["warrant"].estimate
    assert 0.0 < value < with_w.warrant.coverage
    diff = s["warrant_loan"]["irb_capital"].estimate - s["no_warrant"]["irb_capital"].estimate
    assert diff == pytest.approx(0.08 * 4.0 * value, rel=1e-10)
    # The charge is an estimate: the paired difference of irb_capital (the loans' K are the
    # same on the same firms) has the standard error of 0.32 times the warrant's fair value.
    d = res.compare("no_warrant", n_boot=0)["warrant_loan"]["irb_capital"]
    se = res.decompose("warrant_loan")["warrant"].se
    assert se > 0.0
    assert d.se == pytest.approx(0.08 * 4.0 * se, rel=1e-9)


def test_without_fair_values_a_warrant_is_charged_on_its_black_scholes_proxy():
    sc = il.Scenario.default()
    with_w = il.warrant_loan()
    without = with_w.model_copy(update={"name": "no_warrant", "warrant": None})
    res = il.simulate(sc, [with_w, without], n_portfolios=200, portfolio_size=40, seed=8,
                      measures="real_world")  # fmt: skip
    s = res.summary(n_boot=0)
    w = with_w.warrant
    t = w.expiry_years
    r = sc.market.discount_rate
    per_stage = [
        st.weight * cf.bs_call(1.0, 1.0, r + st.default_hazard, st.volatility, t)
        for st in sc.stages
    ]
    proxy = w.share_of_gain * w.coverage * sum(per_stage)
    charge = 0.08 * 4.0 * proxy
    assert proxy == pytest.approx(C.warrant_value_proxy(
        w.coverage, w.share_of_gain, [st.weight for st in sc.stages],
        [st.volatility for st in sc.stages], [st.default_hazard for st in sc.stages], r, t,
    ), rel=1e-14)  # fmt: skip
    assert 0.0 < proxy < w.coverage
    # The warrant leaves the loan's credit risk alone, so the loan's K is the same in both.
    assert s["warrant_loan"]["lgd"].estimate == s["no_warrant"]["lgd"].estimate
    diff = s["warrant_loan"]["irb_capital"].estimate - s["no_warrant"]["irb_capital"].estimate
    assert diff == pytest.approx(charge, rel=1e-12)
    assert M.warrant_charge(proxy) == pytest.approx(charge, rel=1e-15)


def test_warrant_proxy_limits():
    # No volatility and no default: the call is worth 1 - e^{-rT}; no coverage, nothing.
    assert C.warrant_value_proxy(0.2, 0.5, [1.0], [0.0], [0.0], 0.03, 4.0) == pytest.approx(
        0.2 * 0.5 * -math.expm1(-0.12), rel=1e-12
    )
    assert C.warrant_value_proxy(0.0, 1.0, [0.5, 0.5], [0.8, 0.4], [0.1, 0.0], 0.02, 5.0) == 0
    with pytest.raises(ValueError, match="one per stage"):
        C.warrant_value_proxy(0.1, 1.0, [0.5, 0.5], [0.8], [0.1, 0.0], 0.02, 5.0)


# --------------------------------------------------------------------------------------------
# IFRS 9 metrics
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small():
    shared = il.pure_loan(name="shared", risk_share=il.RiskShare(covered_fraction=0.5))
    return il.simulate(il.Scenario.default(), [*il.default_structures(), shared],
                       n_portfolios=50, portfolio_size=40, seed=3)  # fmt: skip


def _ecl_from_firms(res, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-portfolio 12-month and lifetime ECL recomputed from the per-firm arrays."""
    r, sc = res[name], res.scenario
    loan = r.structure.loan
    km = round(loan.maturity_years * sc.steps_per_year)
    ev, step = r.outcomes.event, r.outcomes.step
    term = np.where((ev != il.Event.NONE) & (step <= km), step, km)
    covered = r.structure.risk_share.covered_fraction if r.structure.risk_share else 0.0
    kept = (1.0 - covered) * r.credit_loss * np.exp(-loan.rate * term * sc.dt)
    kept = np.where(r.accepted, kept, 0.0)
    return np.where(term <= sc.steps_per_year, kept, 0.0).sum(axis=1), kept.sum(axis=1)


@pytest.mark.parametrize("name", ["pure_loan", "warrant_loan", "vc_linked", "shared"])
def test_ecl_equals_a_recomputation_from_the_per_firm_arrays(small, name):
    r = small[name]
    ecl_12m, ecl_life = _ecl_from_firms(small, name)
    np.testing.assert_allclose(r.aggregates[:, K.AGG_ECL_12M], ecl_12m, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        r.aggregates[:, K.AGG_ECL_LIFETIME], ecl_life, rtol=1e-12, atol=1e-12
    )
    s = small.summary(n_boot=0)[name]
    lent = r.principal.sum()
    assert s["ecl_12m"].estimate == pytest.approx(ecl_12m.sum() / lent, rel=1e-12)
    assert s["ecl_lifetime"].estimate == pytest.approx(ecl_life.sum() / lent, rel=1e-12)
    assert 0.0 <= s["ecl_12m"].estimate <= s["ecl_lifetime"].estimate
    # Discounting at the loan's rate keeps the lifetime ECL below the undiscounted net loss.
    assert np.all(ecl_12m <= ecl_life) and np.all(
        ecl_life <= r.aggregates[:, K.AGG_LOSS_NET] * (1 + 1e-12)
    )
    # Delta-method SE of a ratio of sums: sd((y - R x) / mean(x)) / sqrt(n).
    x = r.aggregates[:, K.AGG_PRINCIPAL]
    u = (ecl_life - s["ecl_lifetime"].estimate * x) / x.mean()
    assert s["ecl_lifetime"].se == pytest.approx(np.std(u, ddof=1) / math.sqrt(x.size), rel=1e-9)


def test_ecl_matches_its_closed_form_under_a_constant_hazard():
    # One stage with default hazard lam, constant value, nothing recovered: a bullet loan
    # loses its whole principal at a default in step k, which has probability
    # e^{-lam (k-1) dt} - e^{-lam k dt}, and the ECL discounts it at the loan's rate.
    lam, rate = 0.15, 0.06
    sc = plain_scenario([one_stage(default_hazard=lam)])
    loan = il.Loan(loan_to_value=0.2, rate=rate, maturity_years=3.0, recovery_rate=0.0)
    res = il.simulate(sc, il.Structure(name="loan", loan=loan), n_portfolios=400,
                      portfolio_size=50, seed=17)  # fmt: skip
    k = np.arange(1, 37)
    dt = sc.dt
    p = np.exp(-lam * (k - 1) * dt) - np.exp(-lam * k * dt)
    pv = p * np.exp(-rate * k * dt)
    s = res.summary(n_boot=0)["loan"]
    for metric, want in (("ecl_12m", pv[:12].sum()), ("ecl_lifetime", pv.sum())):
        assert_mc_close(s[metric].estimate, want, s[metric].se, label=f"{metric}, lam={lam}")


def test_stage2_share_counts_accepted_firms_in_stage2_after_a_year():
    sc = il.Scenario.default()
    sc = sc.replace(stages=[s.replace(runway_years=0.75) for s in sc.stages],
                    runway_hazard_multiplier=3.0)  # fmt: skip
    res = il.simulate(sc, il.pure_loan(), n_portfolios=50, portfolio_size=40, seed=3)
    r = res["pure_loan"]
    km = round(r.structure.loan.maturity_years * sc.steps_per_year)
    flagged = r.accepted & (r.outcomes.stage2 == 1) & (km > sicr_step(sc))
    np.testing.assert_array_equal(r.aggregates[:, K.AGG_STAGE2], flagged.sum(axis=1))
    est = res.summary(n_boot=0)["pure_loan"]["stage2_share"]
    assert est.estimate == pytest.approx(flagged.sum() / r.accepted.sum(), rel=1e-12)
    assert 0.0 < est.estimate < 1.0 and est.se > 0


def test_collateral_share_is_the_pledge_s_part_of_recoveries():
    ip = il.pure_loan(name="ip", collateral=il.Collateral(kind="ip"))
    res = il.simulate(il.Scenario.default(), [il.pure_loan(), ip], n_portfolios=50,
                      portfolio_size=40, seed=3)  # fmt: skip
    s = res.summary(n_boot=0)
    agg = res["ip"].aggregates
    share = agg[:, K.AGG_COLLATERAL].sum() / agg[:, K.AGG_RECOVERED].sum()
    assert s["ip"]["collateral_share"].estimate == pytest.approx(share, rel=1e-12)
    assert 0.0 < share <= 1.0 and s["ip"]["collateral_share"].se > 0
    assert s["pure_loan"]["collateral_share"].estimate == 0.0  # no pledge: all from the assets


def test_collateral_share_is_nan_with_its_reason_when_nothing_was_recovered():
    # No hazard and a constant value: no loan defaults, so nothing is recovered.
    sc = plain_scenario([one_stage()])
    res = il.simulate(sc, il.pure_loan(), n_portfolios=5, portfolio_size=10, seed=4)
    assert res["pure_loan"].aggregates[:, K.AGG_RECOVERED].sum() == 0
    e = res.summary(n_boot=10)["pure_loan"]["collateral_share"]
    assert math.isnan(e.estimate)
    assert e.note == "no loan defaulted, so nothing was recovered"
    assert "collateral_share" in str(res.summary(n_boot=10))  # shown with its reason


def test_new_metrics_are_listed_described_and_labelled():
    new = ("ecl_12m", "ecl_lifetime", "stage2_share", "collateral_share", "credit_capital")
    for m in new:
        assert m in M.METRICS and M.DESCRIPTIONS[m] and M.is_rate(m)
    order = list(M.METRICS)
    assert order.index("expected_loss") < order.index("ecl_12m") < order.index("ecl_lifetime")
    assert abs(order.index("credit_capital") - order.index("economic_capital")) == 1
    assert M.is_tail("credit_capital") and M.is_tail("economic_capital")
    assert not M.is_tail("ecl_12m")
    assert M.axis_label("ecl_12m") == "ECL 12-month"
    assert set(M.DESCRIPTIONS) == set(M.METRICS)
