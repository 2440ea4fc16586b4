"""The incentive view: first-year accounting against the simulator's cash flows, the class sums
against the summary metrics, the branches' decisions, and every argument's error."""

from __future__ import annotations

import json
import math

import matplotlib
import numpy as np
import pytest

import invlend as il
from conftest import assert_mc_close
from invlend._sim import layout as L
from invlend._sim.lowering import checkpoint_table, lower_structure
from invlend.branch import _accrue, first_year_profit, incentives

matplotlib.use("Agg")

KW = dict(n_portfolios=200, portfolio_size=40, seed=5)
# A loan with every first-year cash flow: fees at entry, at an exit and at maturity.
LOAN = dict(rate=0.06, upfront_fee=0.01, final_fee=0.03, prepayment_fee=0.02)


@pytest.fixture(scope="module")
def scenario():
    return il.Scenario.default()


@pytest.fixture(scope="module")
def view(scenario):
    return incentives(scenario, [il.pure_loan(), il.warrant_loan()], bins=3, **KW)


# ------------------------------------------------------------------ first-year accrual


def _terms(scenario, structure):
    return lower_structure(scenario, structure, checkpoint_table(scenario, [structure]))


def test_accrual_on_hand_set_firms(scenario):
    # 3 years, 6 months interest-only, then linear: b_k = (36 - k) / 30 from step 6.
    s = il.pure_loan(**LOAN)
    t = _terms(scenario, s)
    dt, P, rho = 1 / 12, 10.0, 0.02
    b = lambda k: 1.0 if k < 6 else (36 - k) / 30  # noqa: E731
    cases = {  # event, step, value: default in month 6, IPO in month 9, none, default later
        "default_6": (L.EV_DEFAULT, 6, 5.0),
        "ipo_9": (L.EV_IPO, 9, 400.0),
        "alive": (L.EV_NONE, 60, 300.0),
        "default_20": (L.EV_DEFAULT, 20, 5.0),
    }
    ev, st, val = (np.array([c[i] for c in cases.values()]) for i in range(3))
    loss = np.array([4.0, 0.0, 0.0, 3.0])
    upside = np.array([0.0, 0.7, 0.0, 0.0])
    fy = _accrue(t, event=ev, step=st, value=val, regime=np.zeros(4, int),
                 maturity_value=np.full(4, np.nan), principal=np.full(4, P), credit_loss=loss,
                 upside=upside, transfer_rate=rho)  # fmt: skip
    r = 0.06
    year = sum(b(j - 1) for j in range(1, 13))
    assert year == pytest.approx(11.5)
    owed_9 = P * b(8)
    expect_interest = [r * P * dt * 5, r * P * dt * (sum(b(j - 1) for j in range(1, 9)) + b(8)),
                       r * P * dt * year, r * P * dt * year]  # fmt: skip
    expect_fees = [0.01 * P, 0.01 * P + 0.03 * P + 0.02 * owed_9, 0.01 * P, 0.01 * P]
    expect_funding = [rho * P * dt * 6, rho * P * dt * sum(b(j - 1) for j in range(1, 10)),
                      rho * P * dt * year, rho * P * dt * year]  # fmt: skip
    expect_up = [0.0, 0.7 / math.exp(-scenario.market.discount_rate * 9 * dt), 0.0, 0.0]
    np.testing.assert_allclose(fy.interest, expect_interest, rtol=1e-13)
    np.testing.assert_allclose(fy.fees, expect_fees, rtol=1e-13)
    np.testing.assert_allclose(fy.funding, expect_funding, rtol=1e-13)
    np.testing.assert_allclose(fy.credit_loss, [4.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(fy.upside, expect_up, rtol=1e-13)
    np.testing.assert_allclose(
        fy.profit, fy.interest + fy.fees - fy.funding - fy.credit_loss + fy.upside
    )


def test_fees_at_an_exit_stop_at_what_the_exit_leaves(scenario):
    t = _terms(scenario, il.pure_loan(**LOAN))
    # An M&A at month 3 in a hot market, worth 9 x 0.9 x 1.1 = 8.91 < the balance 10: nothing
    # is left for fees. Worth 10.2: 10.098, 0.098 left for the 0.3 + 0.2 of fees due.
    fy = _accrue(t, event=np.full(2, L.EV_MA), step=np.full(2, 3), value=np.array([9.0, 10.2]),
                 regime=np.zeros(2, int), maturity_value=np.full(2, np.nan),
                 principal=np.full(2, 10.0), credit_loss=np.array([1.09, 0.0]),
                 upside=np.zeros(2), transfer_rate=0.0)  # fmt: skip
    np.testing.assert_allclose(fy.fees, [0.1, 0.1 + 0.098], rtol=1e-12)  # upfront + what's left
    np.testing.assert_allclose(fy.interest, 0.06 * 10.0 * 3 / 12, rtol=1e-12)  # exit coupon too
    np.testing.assert_allclose(fy.credit_loss, [1.09, 0.0])


def _one_year(scenario):
    """A 1-year horizon at a 0 discount rate: every loan cash flow is in year 1, undiscounted."""
    return scenario.replace(horizon_years=1.0, market=scenario.market.replace(discount_rate=0.0))


def test_accrual_equals_the_simulators_cash_flows_over_one_year(scenario):
    sc = _one_year(scenario)
    short = dict(LOAN, maturity_years=1.0, interest_only_years=0.5, screening=il.Screening())
    products = [il.pure_loan(**short), il.warrant_loan(**short, warrant=il.Warrant(expiry_years=3))]
    res = il.simulate(sc, products, n_portfolios=200, portfolio_size=40, seed=3)
    for s in products:
        r = res[s.name]
        fy = first_year_profit(res, s.name, transfer_rate=0.025)
        a = r.aggregates
        exits = np.isin(r.outcomes.event, (L.EV_IPO, L.EV_MA))
        assert 0 < int(r.loan_default.sum()) and 0 < int(exits.sum())  # both paths exercised
        assert (r.outcomes.event == L.EV_NONE).sum() > 0
        np.testing.assert_allclose(fy.interest.sum(), a[:, L.AGG_PV_INTEREST].sum(), rtol=1e-12)
        np.testing.assert_allclose(fy.fees.sum(), a[:, L.AGG_PV_FEES].sum(), rtol=1e-12)
        np.testing.assert_allclose(fy.credit_loss.sum(), a[:, L.AGG_LOSS].sum(), rtol=1e-12)
        np.testing.assert_allclose(fy.funding.sum(), 0.025 * a[:, L.AGG_EXPOSURE].sum(),
                                   rtol=1e-12)  # fmt: skip
        # Warrant cash of year 1 is what exits paid; the horizon settlement is a mark.
        np.testing.assert_allclose(fy.upside.sum(), r.upside[exits].sum(), rtol=1e-12)
        parts = res.decompose(s.name, measure="real_world")
        lent = r.principal.sum()
        assert fy.interest.sum() / lent == pytest.approx(parts["interest"].estimate, rel=1e-12)


def test_first_year_losses_are_the_12_month_ecl_undiscounted(scenario):
    res = il.simulate(scenario, [il.pure_loan(**LOAN, screening=il.Screening())], **KW)
    r = res["pure_loan"]
    fy = first_year_profit(res, "pure_loan")
    t = _terms(scenario, r.structure)
    o = r.outcomes
    k_term = np.where((o.event != L.EV_NONE) & (o.step <= t.maturity_step), o.step, t.maturity_step)
    discounted = (fy.credit_loss * t.ecl_discount[k_term]).sum()
    np.testing.assert_allclose(discounted, r.aggregates[:, L.AGG_ECL_12M].sum(), rtol=1e-12)
    assert fy.credit_loss.sum() > 0


def test_first_year_profit_checks_its_arguments(scenario):
    res = il.simulate(scenario, [il.pure_loan(), il.vc_linked(equity=il.Equity())],
                      n_portfolios=4, portfolio_size=5, seed=1)  # fmt: skip
    with pytest.raises(ValueError, match="transfer_rate"):
        first_year_profit(res, "pure_loan", transfer_rate=3.0)
    with pytest.raises(ValueError, match=r"vc_linked.*equity"):
        first_year_profit(res, "vc_linked")
    agg = il.simulate(scenario, [il.pure_loan()], n_portfolios=4, portfolio_size=5, seed=1,
                      keep="aggregates")  # fmt: skip
    with pytest.raises(ValueError, match="keep"):
        first_year_profit(agg, "pure_loan")


# --------------------------------------------------------------------- the class sums


def test_pooled_classes_reproduce_the_summary_exactly(view):
    summary = view.result.summary(n_boot=0)
    for p in view.products:
        s = view.sums[p]
        pooled = s["fair_value"].sum() / s["principal"].sum()
        assert pooled == pytest.approx(
            summary[p]["fair_value_per_principal"].estimate, rel=1e-12, abs=1e-15
        )
        per_applicant = s["fair_value"].sum() / view.sums["count"].sum()
        assert per_applicant == pytest.approx(
            summary[p]["fair_value_per_applicant"].estimate, rel=1e-12
        )
        profit = first_year_profit(view.result, p).profit
        assert s["first_year"].sum() == pytest.approx(profit.sum(), rel=1e-12)
    assert view.sums["count"].sum() == KW["n_portfolios"] * KW["portfolio_size"]


def test_class_shares_are_the_stage_weights_over_the_bins(view, scenario):
    # Bins of equal probability under s ~ N(0, 1 + sigma^2), whatever the stage.
    weights = {st.name: st.weight for st in scenario.stages}
    for c in view.classes:
        assert_mc_close(c["share"], weights[c["stage"]] / 3, c["share_se"],
                        label=f"share of class {c['stage']}/{c['bin']}")  # fmt: skip


def test_without_events_every_class_has_its_closed_form(scenario):
    stages = [st.model_copy(update=dict(default_hazard=0.0, ipo_hazard=0.0, ma_hazard=0.0,
                                        advance_hazard=0.0, round_size=0.0, volatility=0.3))
              for st in scenario.stages]  # fmt: skip
    sc = scenario.replace(stages=stages, cycle=None)
    s = il.pure_loan()
    v = incentives(sc, [s], bins=2, transfer_rate=0.01, n_portfolios=20, portfolio_size=30, seed=2)
    t = _terms(sc, v.result["pure_loan"].structure)
    km, K = t.maturity_step, sc.steps_per_year
    fy = s.loan.upfront_fee + (s.loan.rate - 0.01) * t.balance_years_cum[K]
    fv = (
        s.loan.upfront_fee
        - 1.0
        + t.pv_flow_cum[km - 1]
        + t.discount[km] * ((1 + s.loan.rate * t.dt) * t.balance[km - 1])
    )
    assert fy == pytest.approx(0.01 + (0.045 - 0.01) * 11.5 / 12)  # 6 months at 1, 6 amortising
    for i in range(len(v.classes)):
        cell = v.cells[i]["pure_loan"]
        assert cell.first_year_pp.estimate == pytest.approx(fy, rel=1e-12)
        assert cell.fair_value_pp.estimate == pytest.approx(fv, rel=1e-9)
    assert v.picks["first_year"] == v.picks["lifetime"] == ["pure_loan"] * len(v.classes)
    assert v.totals["lost"].estimate == 0.0


# ----------------------------------------------------------------------- decisions


def test_lost_value_splits_into_its_parts(view):
    for d in [view.totals, *view.by_stage.values()]:
        lost, destroyed, forgone = (d[k].estimate for k in ("lost", "destroyed", "forgone"))
        assert lost == pytest.approx(destroyed + forgone, abs=1e-12)
        assert destroyed >= 0.0 and forgone >= -1e-12
        assert d["lifetime_book"].estimate - d["first_year_book"].estimate == pytest.approx(lost)
    # the picks maximise each branch's measure per class, declining being worth 0
    for i, cell in enumerate(view.cells):
        for branch, field in (("first_year", "first_year"), ("lifetime", "fair_value")):
            best = max([0.0, *(getattr(cell[p], field).estimate for p in view.products)])
            pick = view.picks[branch][i]
            got = 0.0 if pick is None else getattr(cell[pick], field).estimate
            assert got == best and (pick is None) == (best <= 0.0)
            assert view.margins[branch][i].estimate >= 0.0


def test_a_dear_transfer_rate_makes_the_first_year_branch_decline_all(scenario):
    v = incentives(scenario, [il.pure_loan()], bins=2, transfer_rate=0.5, **KW)
    assert v.picks["first_year"] == [None] * len(v.classes)
    t = v.totals
    assert t["first_year_book"].estimate == 0.0 and t["accepted_first_year"].estimate == 0.0
    assert t["lost"].estimate == t["lifetime_book"].estimate
    assert t["lost"].se > 0.0


def test_the_view_is_paired_and_reproducible(scenario, view):
    again = incentives(scenario, [il.pure_loan(), il.warrant_loan()], bins=3, **KW)
    assert again.records() == view.records()
    # the paired SE of the loss is far below the two books' SEs combined
    t = view.totals
    assert t["lost"].se < math.hypot(t["lifetime_book"].se, t["first_year_book"].se)


# ------------------------------------------------------------------------- displays


def test_displays_and_exports(view):
    text = str(view)
    assert "invlend incentives" in text and "first-year pick" in text and "value lost" in text
    assert "<table" in view._repr_html_()
    recs = view.records()
    assert len(recs) == len(view.classes) and list(recs[0]) == view.fields()
    json.dumps(view.to_dict())
    assert "destroyed" in view.stage_table()
    ax = view.plot()
    assert ax.get_xlabel().startswith("expected first-year profit")
    matplotlib.pyplot.close("all")


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("args", "kw", "field"),
    [
        (("nope", [il.pure_loan()]), {}, "scenario"),
        ((None, "pure_loan"), {}, "products"),
        ((None, []), {}, "products"),
        ((None, [il.pure_loan(), "x"]), {}, r"products\[1\]"),
        ((None, [il.pure_loan(), il.pure_loan()]), {}, "products: names"),
        ((None, [il.vc_linked(equity=il.Equity())]), {}, r"products\[0\]\.equity"),
        ((None, [il.pure_loan(risk_share=il.RiskShare())]), {}, r"products\[0\]\.risk_share"),
        ((None, [il.pure_loan(risk_pool=il.RiskPool())]), {}, r"products\[0\]\.risk_pool"),
        (
            (None, [il.warrant_loan(warrant=il.Warrant(expiry_years=0.5))]),
            {},
            r"products\[0\]\.warrant\.expiry_years",
        ),
        ((None, [il.pure_loan()]), {"bins": 0}, "bins"),
        ((None, [il.pure_loan()]), {"bins": True}, "bins"),
        ((None, [il.pure_loan()]), {"bins": 101}, "bins"),
        ((None, [il.pure_loan()]), {"signal_noise": -1.0}, "signal_noise"),
        ((None, [il.pure_loan()]), {"signal_noise": "x"}, "signal_noise"),
        ((None, [il.pure_loan()]), {"transfer_rate": 2.0}, "transfer_rate"),
        ((None, [il.pure_loan()]), {"seed": None}, "seed"),
        ((None, [il.pure_loan()]), {"keep": "aggregates"}, "keep"),
        ((None, [il.pure_loan()]), {"tail": object()}, "tail"),
        ((None, [il.pure_loan()]), {"tolerance": {"pd": 0.01}}, "tolerance"),
        ((None, [il.pure_loan()]), {"max_portfolios": 10}, "max_portfolios"),
        ((None, [il.pure_loan()]), {"structures": []}, "structures"),
        ((None, [il.pure_loan()]), {"measures": "real_world"}, "measures"),
        ((None, [il.pure_loan()]), {"n_portfolios": 1}, "n_portfolios"),
    ],
)
def test_every_argument_is_checked_before_simulating(scenario, args, kw, field, monkeypatch):
    import invlend.branch as mod

    def no_run(*a, **k):  # pragma: no cover - reached only if a check is missing
        raise AssertionError("simulated before checking the arguments")

    monkeypatch.setattr(mod, "simulate", no_run)
    sc = scenario if args[0] is None else args[0]
    with pytest.raises((ValueError, TypeError), match=field):
        incentives(sc, args[1], **{"seed": 1, **kw})


def test_a_horizon_under_a_year_is_refused(scenario):
    sc = scenario.replace(horizon_years=0.5)
    with pytest.raises(ValueError, match=r"scenario\.horizon_years"):
        incentives(sc, [il.pure_loan(maturity_years=0.5)], seed=1)
