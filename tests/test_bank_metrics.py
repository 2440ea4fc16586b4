"""The bank's view in summary(): screening (adverse selection), IRB capital, RAROC and EVA.

Checks the new metrics against their definitions on the per-portfolio totals, against closed
forms (the quality of accepted applicants under a Gaussian signal), and their delta-method
standard errors against a bootstrap of the same estimator.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

import invlend as il
from conftest import assert_mc_close
from invlend import capital as C
from invlend import metrics as M
from invlend._sim import layout as K

SEED = 424242


@pytest.fixture(scope="module")
def res():
    pooled = il.pure_loan().model_copy(update={"name": "pooled", "risk_pool": il.RiskPool()})
    return il.simulate(il.Scenario.default(), [*il.default_structures(), pooled],
                       n_portfolios=1500, portfolio_size=60, seed=SEED)  # fmt: skip


@pytest.fixture(scope="module")
def summary(res):
    return res.summary(n_boot=100)


@pytest.mark.parametrize("name", ["pure_loan", "vc_linked"])
def test_accepted_quality_matches_the_gaussian_selection_formula(res, summary, name):
    # Accept q + s e above the quantile admitting a share a: E[q | accepted] is
    # phi(z) / (a sqrt(1 + s^2)) with z the standard normal (1 - a)-quantile.
    sc = res[name].structure.screening
    z = norm.ppf(1.0 - sc.acceptance_rate)
    exact = norm.pdf(z) / (sc.acceptance_rate * math.sqrt(1.0 + sc.signal_noise**2))
    est = summary[name]["accepted_quality"]
    assert_mc_close(est.estimate, exact, est.se, label=f"{name}: E[q | accepted]")


def test_better_signal_selects_better_firms_and_earns_more_per_applicant(res):
    c = res.compare(n_boot=0)["vc_linked"]
    assert c["accepted_quality"].z > 10
    assert c["npv_per_applicant"].estimate > 0 and c["npv_per_applicant"].z > 3


def test_npv_per_applicant_and_per_loan_are_the_portfolio_npv_over_counts(res, summary):
    for name, r in res.items():
        agg = r.aggregates
        per_app = agg[:, K.AGG_NPV].sum() / (res.n_portfolios * res.portfolio_size)
        per_loan = agg[:, K.AGG_NPV].sum() / agg[:, K.AGG_ACCEPTED].sum()
        assert summary[name]["npv_per_applicant"].estimate == pytest.approx(per_app, rel=1e-12)
        assert summary[name]["npv_per_loan"].estimate == pytest.approx(per_loan, rel=1e-12)


@pytest.mark.parametrize("name", ["pure_loan", "warrant_loan", "vc_linked", "pooled"])
def test_irb_capital_is_the_basel_formula_at_the_estimated_pd_and_lgd(res, summary, name):
    s = summary[name]
    agg = res[name].aggregates
    h = agg[:, K.AGG_EAD].sum() / agg[:, K.AGG_EXPOSURE].sum()
    assert s["annual_pd"].estimate == pytest.approx(-math.expm1(-h), rel=1e-12)
    st, sc = res[name].structure, res.scenario
    maturity = C.effective_maturity(st.loan, sc.steps_per_year)  # Basel advanced-IRB M
    k = C.irb_capital(s["annual_pd"].estimate, s["lgd"].estimate, maturity, M.IRB_SALES_EUR_M)
    k += _warrant_charge(res[name])  # 8% x 400% of the warrant's fair value, if any
    assert s["irb_capital"].estimate == pytest.approx(k, rel=1e-12)
    years = agg[:, K.AGG_EXPOSURE].sum() / agg[:, K.AGG_PRINCIPAL].sum()
    npv = s["fair_value_per_principal"].estimate  # value from the risk-neutral measure
    assert s["raroc_irb"].estimate == pytest.approx(npv / (k * years), rel=1e-12)
    assert s["eva_irb"].estimate == pytest.approx(npv / years - C.DEFAULT_HURDLE * k, rel=1e-12)
    ec = s["economic_capital"].estimate
    assert s["eva"].estimate == pytest.approx(npv / years - C.DEFAULT_HURDLE * ec, rel=1e-9)


def _warrant_charge(result) -> float:
    if result.structure.warrant is None:
        return 0.0
    fair = result.fair_aggregates
    return M.warrant_charge(fair[:, K.AGG_PV_WARRANT].sum() / fair[:, K.AGG_PRINCIPAL].sum())


def test_hurdle_and_sales_are_arguments_with_clear_errors(res):
    a = res.summary(n_boot=0, hurdle=0.0)["pure_loan"]
    b = res.summary(n_boot=0, hurdle=0.2)["pure_loan"]
    assert a["eva_irb"].estimate - b["eva_irb"].estimate == pytest.approx(
        0.2 * a["irb_capital"].estimate, rel=1e-12
    )
    plain = res.summary(n_boot=0, sales_eur_m=None)["pure_loan"]["irb_capital"].estimate
    assert plain > a["irb_capital"].estimate  # the SME adjustment lowers the correlation
    with pytest.raises(ValueError, match="hurdle"):
        res.summary(hurdle=float("nan"))
    with pytest.raises(ValueError, match="sales_eur_m"):
        res.compare(sales_eur_m=-1.0)


def test_pool_shortfall_is_the_unpaid_share_of_claims(res, summary):
    r = res["pooled"]
    claims, paid = r.pool_claims.sum(), r.pool_paid.sum()
    assert summary["pooled"]["pool_shortfall"].estimate == pytest.approx(1 - paid / claims)
    np.testing.assert_allclose(r.aggregates[:, K.AGG_POOL_PAID], r.pool_paid.sum(axis=1))
    assert math.isnan(summary["pure_loan"]["pool_shortfall"].estimate)


@pytest.mark.parametrize("metric", ["annual_pd", "irb_capital", "raroc_irb", "eva_irb"])
def test_delta_method_se_agrees_with_a_bootstrap_of_the_same_estimator(res, summary, metric):
    # Re-estimate the metric on 300 portfolio resamples: its spread is the bootstrap SE.
    r = res["pure_loan"]
    rng = np.random.default_rng(7)
    n = res.n_portfolios
    reps = []
    for _ in range(300):
        idx = rng.integers(0, n, n)
        sm = M.smooth_metrics(r.aggregates[idx], r.portfolio_irr[idx], res.portfolio_size,
                              C.effective_maturity(r.structure.loan, 12),
                              fair=r.fair_aggregates[idx])  # fmt: skip
        reps.append(sm[metric][0])
    boot = float(np.std(reps, ddof=1))
    delta = summary["pure_loan"][metric].se
    print(f"{metric}: delta-method SE {delta:.4g}, bootstrap SE {boot:.4g}")
    # 300 replicates estimate an SE to about 4% (1/sqrt(2 * 300)); allow 20%.
    assert delta == pytest.approx(boot, rel=0.2)


def test_an_equity_stake_adds_its_capital_to_irb_capital():
    # The bank's investment arm takes 3% of each firm alongside a loan of 10% of its value:
    # 8% x 400% (Basel III speculative unlisted equity) x 0.03 / 0.10 = 9.6% of principal.
    eq = il.vc_linked().model_copy(update={"name": "eq", "equity": il.Equity()})
    res = il.simulate(il.Scenario.default(), [il.vc_linked(), eq], n_portfolios=200,
                      portfolio_size=50, seed=3)  # fmt: skip
    s = res.summary(n_boot=0)
    charge = 0.08 * C.equity_risk_weight("speculative_unlisted") * 0.03 / 0.10
    assert charge == pytest.approx(0.096)
    assert s["eq"]["irb_capital"].estimate - s["vc_linked"]["irb_capital"].estimate == (
        pytest.approx(charge, rel=1e-12)
    )
