"""Competition for one firm: the rules of ``invlend.competition`` and the two analyses.

Tier: exact (the rate, loan-count, recovery and hazard-multiplier rules against their formulas;
``compete`` at one bank; the allocation rules on hand-set estimates; the pari passu LGD of a
constant-value firm), statistical (the PD under the leverage multiplier against the
competing-risk closed form; fair value falling and capital rising with the number of banks on
common random numbers; the delta-method standard error of the crowding-out book value against
the spread over independent seeds) and interface (exports, text, plot, every error message).
"""

from __future__ import annotations

import doctest
import json
import math

import numpy as np
import pytest
from scipy.integrate import quad

import invlend as il
from invlend import competition as comp_mod
from invlend.competition import (
    CURVE_METRICS,
    Competition,
    CrowdingOut,
    compete,
    competition_curve,
    crowding_out,
)
from invlend.sweep import starting_stage

RUN = dict(n_portfolios=200, portfolio_size=40, seed=1)


@pytest.fixture(scope="module")
def default_scenario():
    return il.Scenario.default()


@pytest.fixture(scope="module")
def curve(default_scenario):
    return competition_curve(default_scenario, il.pure_loan(), banks=(1, 2, 4, 8), n_boot=20,
                             **RUN)  # fmt: skip


def test_module_example():
    assert doctest.testmod(comp_mod, raise_on_error=True).attempted > 0


# ---------------------------------------------------------------------------- exact rules


@pytest.mark.parametrize("make", [il.pure_loan, il.warrant_loan, il.vc_linked])
def test_one_bank_changes_nothing_but_the_name(make):
    s = make()
    one = compete(s, 1, Competition(spread_elasticity=2.0, multi_bank_share=1.0))
    assert one.name == f"{s.name}_n1"
    assert one.model_dump(exclude={"name"}) == s.model_dump(exclude={"name"})
    assert compete(s, 1, name=s.name) == s


@pytest.mark.parametrize("n", [2, 3, 5, 8, 50])
@pytest.mark.parametrize("kappa", [0.0, 0.5, 1.0, 2.0])
def test_rate_rule_is_the_formula(n, kappa):
    c = Competition(spread_elasticity=kappa, floor_rate=0.03)
    s = compete(il.pure_loan(), n, c)
    assert s.loan.rate == 0.03 + (0.045 - 0.03) * n ** (-kappa)
    assert c.rate(0.025, n) == 0.025  # below the floor: left as it is
    assert c.rate(0.03, n) == 0.03


@pytest.mark.parametrize("n", [1, 2, 4, 8])
def test_loans_and_pari_passu_recovery(n):
    c = Competition(multi_bank_share=0.3)
    s = compete(il.pure_loan(recovery_rate=0.8), n, c)
    m = 1 + 0.3 * (n - 1)
    assert c.loans(n) == m
    assert s.loan.recovery_rate == 0.8 / m
    assert s.loan.collateral == il.pure_loan().loan.collateral  # its own pledge stays its own


@pytest.mark.parametrize(("io", "maturity"), [(0.5, 3.0), (3.0, 3.0), (0.0, 2.0), (1.0, 4.0)])
def test_hazard_multiplier_is_the_mean_over_the_term(io, maturity):
    c = Competition(leverage_hazard_elasticity=1.42, multi_bank_share=0.5)
    loan = il.Loan(loan_to_value=0.2, maturity_years=maturity, interest_only_years=io)
    n = 6
    k = 1.42 * (c.loans(n) - 1) * 0.2

    def balance(t):
        return 1.0 if t < io else (maturity - t) / (maturity - io)

    want = quad(lambda t: math.exp(k * balance(t)), 0.0, maturity, points=[io])[0] / maturity
    assert c.hazard_multiplier(loan, n) == pytest.approx(want, rel=1e-12)
    base = il.Structure(name="x", loan=loan, linkage=il.Linkage(default_hazard_multiplier=0.75))
    assert compete(base, n, c).linkage.default_hazard_multiplier == pytest.approx(0.75 * want)
    assert compete(base, n, c).linkage.exit_hazard_multiplier == 1.0


def test_bullet_multiplier_is_exp():
    c = Competition()
    loan = il.Loan(loan_to_value=0.1, maturity_years=3.0)  # bullet
    assert c.hazard_multiplier(loan, 8) == pytest.approx(math.exp(1.42 * 3.5 * 0.1), rel=1e-14)
    assert Competition(leverage_hazard_elasticity=0.0).hazard_multiplier(loan, 8) == 1.0


def test_banks_by_stage(default_scenario):
    c = Competition(banks={"mature": 8, "expansion": 3})
    assert (c.banks_at("mature"), c.banks_at("seed")) == (8, 1)
    assert Competition(banks=4).banks_at("seed") == 4
    c.check_stages(default_scenario)
    with pytest.raises(ValueError, match=r"competition.banks: no stage 'matur'"):
        Competition(banks={"matur": 2}).check_stages(default_scenario)


# ---------------------------------------------------------------------------- exact allocation


def test_allocation_rules_on_hand_set_estimates():
    theta = (0.02, 0.01, 0.03, 0.10)  # f_m, k_m, f_e, k_e: mature 2.0 per capital, early 0.3
    assert comp_mod._mature_first(theta, 50.0, 1000.0, math.inf) == (1000.0, 400.0)
    assert comp_mod._mature_first(theta, 5.0, 1000.0, math.inf) == (500.0, 0.0)
    assert comp_mod._mature_first(theta, 50.0, 1000.0, 100.0) == (1000.0, 100.0)
    assert comp_mod._value_max(theta, 50.0, 1000.0, math.inf) == (1000.0, pytest.approx(400.0))
    low = (0.002, 0.04, 0.03, 0.10)  # mature 0.05 per capital: early first
    assert comp_mod._value_max(low, 50.0, 1000.0, 300.0) == (pytest.approx(500.0), 300.0)
    assert comp_mod._value_max(low, 50.0, 1000.0, math.inf) == (0.0, pytest.approx(500.0))
    negative = (-0.01, 0.04, 0.03, 0.10)  # mature destroys value: not funded at all
    assert comp_mod._value_max(negative, 50.0, 1000.0, 100.0) == (0.0, 100.0)
    q = comp_mod._quantities(low, 50.0, 1000.0, 300.0)
    assert q["book_value"] == pytest.approx(1000 * 0.002 + 100 * 0.03)
    assert q["max_book_value"] == pytest.approx(500 * 0.002 + 300 * 0.03)
    assert q["policy_cost"] == pytest.approx(q["max_book_value"] - q["book_value"])


# ---------------------------------------------------------------------------- statistical


def _one_stage(default_hazard=0.05, ipo=0.10, ma=0.05):
    stage = il.Stage(name="only", default_hazard=default_hazard, ipo_hazard=ipo, ma_hazard=ma)
    return il.Scenario(stages=[stage], quality_hazard=0.0, quality_drift=0.0, horizon_years=3.0)


def test_pd_under_the_leverage_multiplier_is_the_competing_risk_closed_form():
    lam, exits, t = 0.05, 0.15, 3.0
    sc = _one_stage(lam, 0.10, 0.05)
    bullet = il.Structure(name="bullet", loan=il.Loan(loan_to_value=0.2, maturity_years=t))
    c = Competition()
    structs = [compete(bullet, n, c) for n in (1, 4, 8)]
    res = il.simulate(sc, structs, n_portfolios=400, portfolio_size=50, seed=3)
    summ = res.summary(n_boot=0)
    for n, s in zip((1, 4, 8), structs, strict=True):
        h = lam * math.exp(1.42 * (c.loans(n) - 1) * 0.2)
        want = h / (h + exits) * -math.expm1(-(h + exits) * t)
        e = summ[s.name]["pd"]
        z = (e.estimate - want) / e.se
        print(f"n={n}: pd {e.estimate:.5f} ± {e.se:.5f}, closed form {want:.5f}, z = {z:+.2f}")
        assert abs(z) < 4


def test_spread_only_change_is_the_interest_part_scaled(default_scenario):
    # With no multi-bank lending only the rate moves, and interest is linear in it: the paired
    # change in fair value is (r(n) - r(1)) / r(1) times the interest part at one bank.
    c = Competition(multi_bank_share=0.0)
    one, eight = compete(il.pure_loan(), 1, c), compete(il.pure_loan(), 8, c)
    assert eight.linkage == one.linkage and eight.loan.recovery_rate == 1.0
    res = il.simulate(starting_stage(default_scenario, "mature"), [one, eight],
                      n_portfolios=100, portfolio_size=20, seed=1)  # fmt: skip
    interest = res.decompose(one.name)["interest"].estimate
    change = res.compare(one.name, n_boot=0)[eight.name]["fair_value_per_principal"].estimate
    want = interest * (eight.loan.rate - one.loan.rate) / one.loan.rate
    assert change == pytest.approx(want, rel=1e-12)


def test_pari_passu_lgd_of_a_constant_value_firm_is_exact():
    sc = _one_stage(0.2, 0.0, 0.0)  # no volatility, no drift: V = V0 at default
    bullet = il.Structure(name="bullet", loan=il.Loan(loan_to_value=0.2, maturity_years=3.0))
    c = Competition()
    structs = [compete(bullet, n, c) for n in (1, 2, 8)]
    summ = il.simulate(sc, structs, n_portfolios=20, portfolio_size=20, seed=2).summary(n_boot=0)
    for n, s in zip((1, 2, 8), structs, strict=True):
        want = 1.0 - min(1.0, sc.distress_value / (c.loans(n) * 0.2))
        assert summ[s.name]["lgd"].estimate == pytest.approx(want, abs=1e-12)


def test_fair_value_falls_and_capital_rises_with_banks(curve):
    fv = curve.curve("fair_value_per_principal")[1]
    irb = curve.curve("irb_capital")[1]
    lgd = curve.curve("lgd")[1]
    assert np.all(np.diff(fv) < 0) and np.all(np.diff(irb) > 0) and np.all(np.diff(lgd) > 0)
    for n in curve.banks[1:]:
        d_fv, d_k = curve[n]["fair_value_change"], curve[n]["irb_capital_change"]
        print(f"n={n}: fair value {d_fv.estimate:+.5f} (z = {d_fv.z:+.1f}), IRB capital "
              f"{d_k.estimate:+.5f} (z = {d_k.z:+.1f})")  # fmt: skip
        assert d_fv.z < -4 and d_k.z > 4


def test_crowding_out_uses_the_curve_and_spends_the_budget(default_scenario, curve):
    co = crowding_out(default_scenario, il.pure_loan(), capital_budget=50.0,
                      mature_principal=1000.0, banks=(1, 2, 4, 8),
                      early_structure=il.warrant_loan(), **RUN)  # fmt: skip
    k_e, f_e = co.early["capital"].estimate, co.early["fair_value"].estimate
    for n in co.banks:
        row = co[n]
        k_m = row["mature_capital_per_unit"].estimate
        assert k_m == curve[n]["irb_capital"].estimate  # the same firms, the same number
        f_m = curve[n]["fair_value_per_principal"].estimate
        lent_m = row["mature_lent"].estimate
        assert lent_m == min(1000.0, 50.0 / k_m)
        spent = row["mature_capital"].estimate + row["early_principal"].estimate * k_e
        assert spent == pytest.approx(50.0, rel=1e-12)
        value = lent_m * f_m + row["early_principal"].estimate * f_e
        assert row["book_value"].estimate == pytest.approx(value, rel=1e-12)
        assert row["policy_cost"].estimate >= -1e-12
    assert co[1]["early_principal"].estimate > co[2]["early_principal"].estimate
    assert co[8]["early_principal"].estimate == 0.0
    assert co[8]["book_value_change"].z < -4


def test_crowding_out_standard_error_matches_the_spread_over_seeds(default_scenario):
    # Far from the allocation's kinks (the budget does not bind on the mature book), where the
    # delta method applies; both books are pure loans, whose SEs the engine gets right.
    kw = dict(capital_budget=100.0, mature_principal=1000.0, banks=(1, 2), n_portfolios=60,
              portfolio_size=20)  # fmt: skip
    runs = [crowding_out(default_scenario, il.pure_loan(), seed=seed, **kw) for seed in range(30)]
    for q in ("early_principal", "book_value", "book_value_change"):
        values = [co[2][q].estimate for co in runs]
        ratio = float(np.std(values, ddof=1) / np.mean([co[2][q].se for co in runs]))
        print(f"{q}: spread over 30 seeds / mean delta-method SE = {ratio:.3f}")
        assert 0.65 < ratio < 1.5


def test_tail_capital_budget_has_standard_errors(default_scenario):
    co = crowding_out(default_scenario, il.pure_loan(), capital_budget=50.0,
                      mature_principal=500.0, banks=(1, 3), capital="economic_capital",
                      n_boot=20, **RUN)  # fmt: skip
    assert all(math.isfinite(co[n]["early_principal"].se) for n in co.banks)
    assert "upper bound" in str(co)


# ---------------------------------------------------------------------------- interface


def test_curve_exports(curve, tmp_path):
    recs = curve.records()
    assert [r["n_banks"] for r in recs] == [1, 2, 4, 8]
    assert list(recs[0]) == curve.fields()
    assert set(CURVE_METRICS) <= set(curve[8])
    data = json.loads(curve.to_json())
    assert data["meta"]["stage"] == "mature" and len(data["rows"]) == 4
    text = str(curve)
    assert "pure_loan on firms starting in 'mature'" in text and "vs n=1" in text
    assert "<table" in curve._repr_html_()
    assert "CompetitionCurve" in repr(curve)
    curve.to_csv(tmp_path / "c.csv")
    assert (tmp_path / "c.csv").read_text().startswith("n_banks,structure,loans")
    with pytest.raises(KeyError, match="no number of banks 3"):
        curve[3]


def test_crowding_out_exports(default_scenario):
    co = crowding_out(default_scenario, il.pure_loan(), capital_budget=40.0,
                      mature_principal=800.0, banks=(2, 1), early_demand=100.0, **RUN)  # fmt: skip
    assert isinstance(co, CrowdingOut) and co.banks == [1, 2]
    assert list(co.records()[0]) == co.fields()
    assert json.loads(co.to_json())["meta"]["early_demand"] == 100.0
    assert "early demand 100" in str(co) and "<table" in co._repr_html_()


def test_plot(curve):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    assert curve.plot(ax=ax) is ax
    assert len(ax.get_legend().get_texts()) == 2
    assert ax.get_xlabel() == "banks courting the firm"
    plt.close(fig)
    with pytest.raises(ValueError, match="capital: unknown 'pd'"):
        curve.plot(capital="pd")
    with pytest.raises(TypeError, match="curve: expected a CompetitionCurve"):
        comp_mod.plot_competition_curve("x")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(banks=0), il.InputError, "banks"),
        (dict(banks=True), il.InputError, "banks"),
        (dict(banks={"seed stage": 2}), il.InputError, "stage name 'seed stage'"),
        (dict(spread_elasticity=-1), il.InputError, "spread_elasticity"),
        (dict(floor_rate=2), il.InputError, "floor_rate"),
        (dict(multi_bank_share=1.5), il.InputError, "multi_bank_share"),
        (dict(leverage_hazard_elasticity=-0.1), il.InputError, "leverage_hazard_elasticity"),
        (dict(kappa=1), il.InputError, "kappa"),
    ],
)
def test_competition_validation(kwargs, error, match):
    with pytest.raises(error, match=match):
        Competition(**kwargs)


def test_compete_errors():
    with pytest.raises(TypeError, match=r"structure: expected an invlend\.Structure"):
        compete("pure_loan", 2)
    with pytest.raises(ValueError, match="n_banks: must be >= 1"):
        compete(il.pure_loan(), 0)
    with pytest.raises(TypeError, match="n_banks: expected an integer"):
        compete(il.pure_loan(), 2.0)
    with pytest.raises(TypeError, match="competition: expected an invlend Competition"):
        compete(il.pure_loan(), 2, {"banks": 2})
    with pytest.raises(ValueError, match="n_banks: with 1000 banks the default hazard"):
        compete(il.pure_loan(loan_to_value=1.0), 1000, Competition(leverage_hazard_elasticity=5))
    with pytest.raises(
        ValueError,
        match=r"n_banks: with 8 banks the default hazard multiplier would be 313\.2, above 100",
    ):
        compete(il.pure_loan(loan_to_value=2.0), 8, Competition(leverage_hazard_elasticity=1))


def test_curve_errors(default_scenario):
    sc, s = default_scenario, il.pure_loan()
    with pytest.raises(ValueError, match="seed: a competition curve needs a fixed seed"):
        competition_curve(sc, s, n_portfolios=10)
    with pytest.raises(ValueError, match="measures: a competition curve needs the risk-neutral"):
        competition_curve(sc, s, measures="real_world", seed=1)
    with pytest.raises(ValueError, match="banks: give at least one"):
        competition_curve(sc, s, banks=[], seed=1)
    with pytest.raises(ValueError, match=r"banks\[1\]: must be >= 1"):
        competition_curve(sc, s, banks=[1, 0], seed=1)
    with pytest.raises(TypeError, match="banks: expected a sequence"):
        competition_curve(sc, s, banks="1,2", seed=1)
    with pytest.raises(ValueError, match="stage: no stage 'late'"):
        competition_curve(sc, s, stage="late", seed=1)
    with pytest.raises(TypeError, match="n_boot: expected an integer"):
        competition_curve(sc, s, n_boot=1.5, seed=1)
    with pytest.raises(ValueError, match=r"competition\.banks: no stage 'x'"):
        competition_curve(sc, s, competition=Competition(banks={"x": 2}), seed=1)


def test_crowding_out_errors(default_scenario):
    sc, s = default_scenario, il.pure_loan()
    ok = dict(capital_budget=10.0, mature_principal=100.0, seed=1)

    def call(**kw):
        return crowding_out(sc, s, **{**ok, **kw})

    cases = [
        (dict(capital_budget=0.0), ValueError, "capital_budget: must be > 0"),
        (dict(mature_principal=-1.0), ValueError, "mature_principal: must be > 0"),
        (dict(early_demand=-1.0), ValueError, "early_demand: must be >= 0"),
        (dict(capital="pd"), ValueError, "capital: unknown 'pd'"),
        (dict(early_stages=("early", "mature")), ValueError, "early_stages: the mature stage"),
        (dict(early_stages=("nope",)), ValueError, "early_stages: no stage 'nope'"),
        (dict(early_structure="x"), TypeError, "early_structure: expected an invlend.Structure"),
        (dict(tolerance={"pd": 0.01}), ValueError, "tolerance: crowding_out needs both runs"),
        (dict(max_portfolios=10), ValueError, "max_portfolios: crowding_out needs both runs"),
        (dict(seed=None), ValueError, "seed: crowding_out needs a fixed seed"),
        (dict(competition=Competition(banks={"seed": 1, "early": 2})), ValueError,
         r"competition.banks: the early stages \['seed', 'early'\] must be courted by one"),
    ]  # fmt: skip
    for kw, error, match in cases:
        with pytest.raises(error, match=match):
            call(**kw)
