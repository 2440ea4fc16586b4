"""The product menu: choices equal the direct runs, constraints, ties, the price cap's metric.

Tier: exact (the menu's numbers are the runs' own, the borrower cost against its closed form
on a riskless loan) and interface (grids, errors, the table, the plot).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import invlend as il
from invlend.menu import borrower_cost, describe
from invlend.sweep import starting_stage

KW = dict(n_portfolios=60, portfolio_size=20, seed=3)
SC = il.Scenario.default()


@pytest.fixture(scope="module")
def grid():
    return [*il.term_grid(il.pure_loan(), {"loan.rate": [0.03, 0.06]}),
            *il.term_grid(il.warrant_loan(), {"warrant.coverage": [0.05, 0.2]})]  # fmt: skip


@pytest.fixture(scope="module")
def menu(grid):
    return il.product_menu(SC, grid, stages=["early", "mature"], price_cap=0.03, n_boot=0, **KW)


def test_term_grid_names_and_values():
    g = il.term_grid(il.warrant_loan(), {"loan.rate": [0.04, 0.05], "warrant.coverage": [0.1]})
    assert [s.name for s in g] == ["warrant_loan-rate0.04-coverage0.1",
                                   "warrant_loan-rate0.05-coverage0.1"]  # fmt: skip
    assert [s.loan.rate for s in g] == [0.04, 0.05]
    assert all(s.warrant.coverage == 0.1 for s in g)
    # A missing component is created with its defaults, as in a sweep.
    (w,) = il.term_grid(il.pure_loan(), {"warrant.coverage": [0.1]})
    assert w.warrant is not None and w.warrant.coverage == 0.1


@pytest.mark.parametrize(
    "terms, match",
    [
        ({}, "terms: give a mapping"),
        ({"loan.rate": []}, r"terms\['loan.rate'\]: give distinct values"),
        ({"loan.rate": [0.04, 0.04]}, "distinct values"),
        ({"loan.rate": "0.04"}, "give a sequence"),
        ({"market.factor_loading": [0.3]}, "not a structure field"),
        ({"loan.nope": [1.0]}, "unknown field"),
        ({"loan.rate": list(np.linspace(0, 0.1, 15)), "warrant.coverage": list(range(15))},
         "exceed the 200"),
    ],
)  # fmt: skip
def test_term_grid_errors(terms, match):
    with pytest.raises(ValueError, match=match):
        il.term_grid(il.pure_loan(), terms)


def test_term_grid_out_of_bounds_value_names_the_field():
    with pytest.raises(ValueError, match="rate"):
        il.term_grid(il.pure_loan(), {"loan.rate": [2.0]})


def test_menu_numbers_are_the_direct_runs(menu, grid):
    for stage in ("early", "mature"):
        res = il.simulate(starting_stage(SC, stage), grid, **KW)
        s = res.summary(n_boot=0)
        rows = menu.candidates(stage)
        for r in rows:
            name = r["structure"]
            assert r["fair_value_per_applicant"] == s[name]["fair_value_per_applicant"]
            assert r["borrower_cost"] == borrower_cost(res, name)
        feasible = [r["structure"] for r in rows if r["borrower_cost"].estimate <= 0.03]
        assert [r["structure"] for r in rows if r["feasible"]] == feasible
        best = max(feasible, key=lambda n: s[n]["fair_value_per_applicant"].estimate)
        entry = menu[stage]
        if s[best]["fair_value_per_applicant"].estimate > 0:
            assert entry.offer == best
            assert entry.objective == s[best]["fair_value_per_applicant"]
            comp = res.compare(baseline=best, n_boot=0)
            for r in rows:
                if r["feasible"] and r["structure"] != best:
                    d = comp[r["structure"]]["fair_value_per_applicant"]
                    assert r["gap"].estimate == -d.estimate and r["gap"].se == d.se
        else:
            assert entry.offer is None and entry.tied[0] == "decline"


def test_price_cap_binds_where_the_dearest_would_win(grid):
    free = il.product_menu(SC, grid, stages=["mature"], n_boot=0, **KW)
    capped = il.product_menu(SC, grid, stages=["mature"], price_cap=0.02, n_boot=0, **KW)
    rows = {r["structure"]: r for r in free.candidates("mature")}
    # Without a cap the candidate that takes the most from the borrower wins.
    dearest = max(rows, key=lambda n: rows[n]["fair_value_per_applicant"].estimate)
    assert free["mature"].offer == dearest
    assert capped["mature"].offer != dearest
    cost = {r["structure"]: r["borrower_cost"].estimate for r in capped.candidates("mature")}
    assert cost[dearest] > 0.02
    if capped["mature"].offer is not None:
        assert cost[capped["mature"].offer] <= 0.02


def test_identical_candidates_are_tied_and_a_clear_loser_is_not():
    a = il.pure_loan(rate=0.06)
    twin = a.replace(name="twin")
    cheap = il.pure_loan(rate=0.03, name="cheap")
    m = il.product_menu(SC, [a, twin, cheap], stages=["growth"], n_boot=0, **KW)
    e = m["growth"]
    assert e.offer in ("pure_loan", "twin")
    assert set(e.tied) >= {"pure_loan", "twin"} and "cheap" not in e.tied
    assert not e.distinguishable
    rows = {r["structure"]: r for r in m.candidates("growth")}
    other = "twin" if e.offer == "pure_loan" else "pure_loan"
    assert rows[other]["gap"].estimate == 0.0 and rows[other]["status"] == "tied"
    z = rows["cheap"]["gap"].z
    print(f"cheap loan behind by z = {z:.1f}")
    assert z > 5 and rows["cheap"]["status"] == "worse"


def test_a_stage_where_nothing_adds_value_is_declined():
    free = il.pure_loan(rate=0.0, name="free_money")
    m = il.product_menu(SC, [free], stages=["seed"], n_boot=0, **KW)
    e = m["seed"]
    assert e.offer is None and e.tied == ("decline",) and e.runner_up == "free_money"
    assert e.objective.estimate == 0.0 and e.objective.se == 0.0
    # The margin and the table's gaps are declining's lead over lending.
    (row,) = m.candidates("seed")
    fv = row["fair_value_per_applicant"]
    assert e.margin.estimate == -fv.estimate > 0 and e.margin.se == fv.se
    assert row["gap"] == e.margin and row["status"] == "worse"
    assert "decline" in str(m) and "lend nothing" in str(m)


def test_loss_budget_and_min_acceptance(grid):
    m = il.product_menu(SC, grid, stages=["seed"], loss_budget=0.0, n_boot=0, **KW)
    # A seed book loses something in 60 portfolios: no candidate meets a zero loss budget.
    assert m["seed"].offer is None and set(m["seed"].infeasible) == {s.name for s in grid}
    m = il.product_menu(SC, grid, stages=["seed"], min_acceptance=0.7, n_boot=0, **KW)
    assert m["seed"].offer is None  # every candidate accepts 60%
    assert all(r["status"] == "infeasible" for r in m.candidates("seed"))


def test_raroc_objective_declines_below_the_hurdle_and_uses_the_bootstrap(grid):
    m = il.product_menu(SC, grid, stages=["mature"], objective="raroc",
                        capital_budget=0.5, capital="irb_capital", n_boot=30, **KW)  # fmt: skip
    e = m["mature"]
    assert m.meta["zero"] == il.capital.DEFAULT_HURDLE
    if e.offer is not None:
        assert e.objective.estimate > m.meta["zero"] and math.isfinite(e.objective.se)
    assert "irb_capital" in m.candidates("mature")[0]


def test_records_table_html_json_and_plot(menu, tmp_path):
    recs = menu.records()
    assert len(recs) == 2 * 4 and set(menu.fields()) == set(recs[0])
    assert {r["status"] for r in recs} <= {"offer", "tied", "worse", "infeasible"}
    text = str(menu)
    assert "product menu" in text and "borrower_cost <= 3%" in text
    assert "<table" in menu._repr_html_()
    assert "early" in menu.table("early")
    d = menu.to_dict()
    assert [x["stage"] for x in d["menu"]] == ["early", "mature"]
    menu.to_json(tmp_path / "m.json")
    with pytest.raises(KeyError, match="no stage 'seed'"):
        menu["seed"]
    import matplotlib

    matplotlib.use("Agg")
    ax = menu.plot()
    assert "product menu" in ax.get_title() and ax.get_xlabel() == "starting stage"


def test_describe_names_the_terms():
    assert describe(il.warrant_loan()) == (
        "4.00%, LTV 10%, warrant 10%, accept 60% at noise 1, diligence 1%"
    )
    assert "partner: default x0.75, exits x1.2" in describe(il.vc_linked())
    assert "noise 0.5, diligence 0.25%" in describe(il.vc_linked())


def test_term_grid_takes_a_base_whose_name_has_a_dot():
    (s,) = il.term_grid(il.vc_linked(name="vc_0.9"), {"loan.rate": [0.03]})
    assert s.name == "vc_0.9-rate0.03" and s.loan.rate == 0.03


def test_borrower_cost_of_a_riskless_bullet_is_its_closed_form():
    # One stage, no events, no volatility: the loan is riskless. Interest r dt on the
    # balance every step, principal at maturity, all discounted at r_f continuously.
    sc = il.Scenario(stages=[il.Stage(name="only")], horizon_years=3.0, value_dispersion=0.0)
    loan = il.Loan(loan_to_value=0.1, rate=0.05, maturity_years=3.0, interest_only_years=3.0)
    res = il.simulate(sc, il.Structure(name="bullet", loan=loan), n_portfolios=4,
                      portfolio_size=3, seed=1)  # fmt: skip
    rf, dt, T = sc.market.discount_rate, sc.dt, 3.0
    k = np.arange(1, sc.n_steps + 1)
    fv = 0.05 * dt * np.exp(-rf * k * dt).sum() + math.exp(-rf * T) - 1.0
    got = borrower_cost(res, "bullet")
    print(f"borrower cost {got.estimate:.10f}, closed form {fv / T:.10f}")
    assert got.estimate == pytest.approx(fv / T, rel=1e-12, abs=1e-15)
    # The identity with the fair value per principal: the same sums over another denominator.
    s = res.summary(n_boot=0)["bullet"]["fair_value_per_principal"].estimate
    assert got.estimate == pytest.approx(s / T, rel=1e-12)


@pytest.mark.parametrize(
    "kw, exc, match",
    [
        (dict(objective="npv_per_loan"), ValueError, "objective: unknown 'npv_per_loan'"),
        (dict(capital="loss_var_99", capital_budget=0.1), ValueError, "capital: unknown"),
        (dict(loss_budget=-0.1), ValueError, "loss_budget"),
        (dict(price_cap=float("nan")), ValueError, "price_cap"),
        (dict(min_acceptance=1.5), ValueError, "min_acceptance"),
        (dict(level=1.0), ValueError, "level: must be below 1"),
        (dict(level=0.2), ValueError, "level"),
        (dict(objective="raroc", n_boot=5), ValueError, "n_boot: raroc is a tail metric"),
        (dict(seed=None), ValueError, "a product menu needs a fixed seed"),
        (dict(measures="real_world"), ValueError, "needs the risk-neutral measure"),
        (dict(structures=[]), TypeError, "structures: give the candidates"),
        (dict(stages=["nope"]), ValueError, "stages: no stage 'nope'"),
    ],
)  # fmt: skip
def test_errors_name_the_argument(kw, exc, match):
    args = {**dict(n_portfolios=10, portfolio_size=5, seed=1, n_boot=0), **kw}
    with pytest.raises(exc, match=match):
        il.product_menu(SC, [il.pure_loan()], **args)


def test_candidate_errors():
    with pytest.raises(ValueError, match="names must be distinct"):
        il.product_menu(SC, [il.pure_loan(), il.pure_loan()], seed=1)
    with pytest.raises(TypeError, match=r"structures\[1\]"):
        il.product_menu(SC, [il.pure_loan(), "warrant"], seed=1)
    with pytest.raises(ValueError, match="at least one structure"):
        il.product_menu(SC, [], seed=1)
