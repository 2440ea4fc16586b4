"""Shapley attribution of paired differences, term by term (exact and statistical tiers)."""

from __future__ import annotations

import itertools
import json
import math
import re

import numpy as np
import pytest

import invlend as il
from conftest import assert_mc_close
from invlend import attribution as A
from invlend.attribution import SMOOTH_METRICS, attribute_run, differing_terms

KW = dict(n_portfolios=200, portfolio_size=50, seed=3)
METRICS = ("fair_value_per_principal", "npv_per_principal", "pd", "irr", "irb_capital")


@pytest.fixture(scope="module")
def scenario():
    return il.Scenario.default()


@pytest.fixture(scope="module")
def vc(scenario):
    """vc_linked against pure_loan: three terms (rate, linkage, screening) that interact."""
    return il.attribute(scenario, il.vc_linked(), il.pure_loan(), metrics=METRICS, **KW)


# ---------------------------------------------------------------------------------- terms


def test_differing_terms_in_model_order():
    assert differing_terms(il.warrant_loan(), il.pure_loan()) == ["loan.rate", "warrant"]
    assert differing_terms(il.vc_linked(), il.pure_loan()) == ["loan.rate", "linkage",
                                                               "screening"]  # fmt: skip
    assert differing_terms(il.pure_loan(name="other"), il.pure_loan()) == []


# ------------------------------------------------------------------------- exact identities


def test_parts_add_up_to_the_difference(vc):
    assert vc.terms == ("loan.rate", "linkage", "screening")
    for metric in METRICS:
        row = vc[metric]
        assert list(row) == [*vc.terms, "total"]
        parts = math.fsum(row[t].estimate for t in vc.terms)
        total = row["total"].estimate
        assert abs(parts - total) <= 1e-12 * max(abs(total), 1e-300), metric


def test_total_equals_the_comparison_on_the_same_seed(scenario, vc):
    cmp = il.simulate(scenario, [il.pure_loan(), il.vc_linked()], **KW).compare(n_boot=0)
    for metric in METRICS:
        d, t = cmp["vc_linked"][metric], vc[metric]["total"]
        assert t.estimate == pytest.approx(d.estimate, rel=1e-12, abs=1e-15), metric
        assert t.se == pytest.approx(d.se, rel=1e-12, abs=1e-15), metric


def test_shapley_values_are_the_mean_step_over_the_orders(scenario, vc):
    # A second implementation: each hybrid run on its own, the Shapley value as the average
    # over the 3! orders of switching the terms of the step each term makes.
    base, new = il.pure_loan(), il.vc_linked()

    def hybrid(on: frozenset) -> il.Structure:
        loan = new.loan if "loan.rate" in on else base.loan
        return base.model_copy(update={
            "loan": loan,
            "linkage": new.linkage if "linkage" in on else base.linkage,
            "screening": new.screening if "screening" in on else base.screening,
        })  # fmt: skip

    value = {}
    for k in range(4):
        for on in itertools.combinations(vc.terms, k):
            s = il.simulate(scenario, hybrid(frozenset(on)), **KW).summary(n_boot=0)
            value[frozenset(on)] = s["pure_loan"]["irr"].estimate
    for term in vc.terms:
        steps = []
        for order in itertools.permutations(vc.terms):
            before = frozenset(order[: order.index(term)])
            steps.append(value[before | {term}] - value[before])
        assert vc["irr"][term].estimate == pytest.approx(np.mean(steps), rel=1e-10, abs=1e-15)
        alone = value[frozenset({term})] - value[frozenset()]
        assert vc.alone["irr"][term].estimate == pytest.approx(alone, rel=1e-10, abs=1e-15)
    # the terms interact: the screening's part is not its effect alone
    assert vc["irr"]["screening"].estimate != pytest.approx(
        vc.alone["irr"]["screening"].estimate, rel=1e-6
    )


def test_one_differing_term_takes_the_whole_difference(scenario):
    a = il.attribute(scenario, il.pure_loan(rate=0.06), il.pure_loan(), metrics=METRICS, **KW)
    assert a.terms == ("loan.rate",) and len(a.hybrids) == 2
    for metric in METRICS:
        part, total = a[metric]["loan.rate"], a[metric]["total"]
        assert part.estimate == total.estimate and part.se == total.se
        assert a.alone[metric]["loan.rate"].estimate == total.estimate


def test_additive_terms_get_their_one_at_a_time_effects(scenario):
    # Fair value is linear in the rate and in the upfront fee, with no interaction: each part
    # is the term's effect alone, and the fee's is the fee itself (paid on every unit lent).
    a = il.attribute(scenario, il.pure_loan(rate=0.06, upfront_fee=0.02), il.pure_loan(),
                     metrics=("fair_value_per_principal", "npv_per_principal", "irr"),
                     **KW)  # fmt: skip
    assert a.terms == ("loan.rate", "loan.upfront_fee")
    for metric in ("fair_value_per_principal", "npv_per_principal"):
        for term in a.terms:
            assert a[metric][term].estimate == pytest.approx(
                a.alone[metric][term].estimate, rel=1e-10, abs=1e-14
            )
        assert a[metric]["loan.upfront_fee"].estimate == pytest.approx(0.01, rel=1e-12)
        assert a[metric]["loan.upfront_fee"].se < 1e-12
    # the alone effect equals a paired comparison of the one-term structure
    cmp = il.simulate(scenario, [il.pure_loan(), il.pure_loan(name="r", rate=0.06)],
                      **KW).compare(n_boot=0)  # fmt: skip
    d = cmp["r"]["fair_value_per_principal"]
    assert a.alone["fair_value_per_principal"]["loan.rate"].estimate == pytest.approx(
        d.estimate, rel=1e-12
    )
    # the IRR is not additive in them: the interaction is split evenly (symmetry)
    inter = a["irr"]["total"].estimate - sum(a.alone["irr"][t].estimate for t in a.terms)
    assert abs(inter) > 1e-6
    for term in a.terms:
        assert a["irr"][term].estimate == pytest.approx(
            a.alone["irr"][term].estimate + inter / 2, rel=1e-10
        )


def test_groups_move_coupled_terms_together(scenario):
    longer = il.pure_loan(maturity_years=4.0, interest_only_years=3.5)
    with pytest.raises(ValueError, match=r"loan\.interest_only_years switched .*groups="):
        il.attribute(scenario, longer, il.pure_loan(), **KW)
    coupled = [("loan.interest_only_years", "loan.maturity_years")]
    a = il.attribute(scenario, longer, il.pure_loan(), groups=coupled, **KW)
    assert a.terms == ("loan.maturity_years+loan.interest_only_years",)
    assert a.hybrids == {"h0": (), "h1": ("loan.maturity_years+loan.interest_only_years",)}


# ------------------------------------------------------------------------ standard errors


def test_parts_agree_across_independent_seeds(scenario, vc):
    # Each part estimates a fixed number: two independent runs agree within their SEs.
    other = il.attribute(scenario, il.vc_linked(), il.pure_loan(), metrics=METRICS,
                         **{**KW, "seed": 4})  # fmt: skip
    for metric, term in [("fair_value_per_principal", "screening"),
                         ("fair_value_per_principal", "linkage"),
                         ("pd", "linkage"), ("npv_per_principal", "total")]:  # fmt: skip
        a, b = vc[metric][term], other[metric][term]
        se = math.hypot(a.se, b.se)
        z = assert_mc_close(a.estimate, b.estimate, se, label=f"seeds 3 vs 4: {metric} {term}")
        print(f"z = {z:.2f}")


def test_part_se_is_the_influence_se_of_the_combination(scenario):
    a = il.attribute(scenario, il.warrant_loan(), il.pure_loan(), **KW)
    res = il.simulate(scenario, [il.pure_loan(), il.warrant_loan(),
                                 il.pure_loan(name="w", warrant=il.warrant_loan().warrant),
                                 il.warrant_loan(name="r", warrant=None)], **KW)  # fmt: skip
    from invlend.estimation import Estimator

    smooth, _, _ = Estimator(res).estimates(0, il.capital.DEFAULT_HURDLE, 5.0)
    u = {n: smooth[n]["fair_value_per_principal"][1] for n in res}
    # warrant part: half its step from the baseline plus half its step on top of the rate
    combo = 0.5 * (u["w"] - u["pure_loan"]) + 0.5 * (u["warrant_loan"] - u["r"])
    assert a["fair_value_per_principal"]["warrant"].se == pytest.approx(
        il.metrics.influence_se(combo), rel=1e-10
    )


# --------------------------------------------------------------------------------- a run


def test_attribute_run_replays_the_comparison(scenario):
    kw = dict(n_portfolios=100, portfolio_size=40, seed=np.random.SeedSequence(9).spawn(2)[1])
    structures = [*il.default_structures(), il.pure_loan(name="same")]
    res = il.simulate(scenario, structures, **kw)
    out = attribute_run(res, "pure_loan")
    assert list(out) == ["warrant_loan", "vc_linked"]  # "same" has nothing to attribute
    cmp = res.compare("pure_loan", n_boot=0)
    for name, att in out.items():
        assert "pool_shortfall" not in att and "fair_value_per_principal" in att
        assert set(att) <= set(SMOOTH_METRICS)
        for metric in att:
            d, t = cmp[name][metric], att[metric]["total"]
            if math.isfinite(d.estimate):
                assert t.estimate == pytest.approx(d.estimate, rel=1e-12, abs=1e-15)
                assert t.se == pytest.approx(d.se, rel=1e-12, abs=1e-15)
    only = attribute_run(res, structures=["warrant_loan"], metrics="pd")
    assert list(only) == ["warrant_loan"] and list(only["warrant_loan"]) == ["pd"]
    with pytest.raises(ValueError, match="nothing to attribute"):
        attribute_run(res, structures=["same"])
    with pytest.raises(ValueError, match="baseline: no structure named 'nope'"):
        attribute_run(res, "nope")


# ------------------------------------------------------------------------------ the table


def test_table_text_and_exports(scenario, vc, tmp_path):
    text = str(vc)
    lines = text.split("\n")
    assert lines[0].startswith("invlend attribution of 'vc_linked' - 'pure_loan': Shapley")
    assert lines[1].split() == ["metric", "loan.rate", "linkage", "screening", "total"]
    assert set(lines[2]) == {"-"}
    assert [line.split()[0] for line in lines[3 : 3 + len(METRICS)]] == list(METRICS)
    assert repr(vc) == text
    recs = vc.records()
    assert len(recs) == len(METRICS) * 4 and list(recs[0]) == vc.fields()
    assert recs[3]["term"] == "total" and recs[3]["alone"] == recs[3]["estimate"]
    vc.to_csv(tmp_path / "a.csv")
    head = (tmp_path / "a.csv").read_text().split("\n")[0]
    assert head == "structure,baseline,metric,term,estimate,se,ci_low,ci_high,note,alone,alone_se"
    doc = json.loads(vc.to_json(tmp_path / "a.json"))
    assert doc["terms"] == list(vc.terms) and doc["meta"]["seed"] == 3
    assert doc["hybrids"]["h101"] == ["loan.rate", "screening"]
    est = vc["pd"]["linkage"]
    assert est.ci_low < est.estimate < est.ci_high
    with pytest.raises(KeyError, match="no metric 'raroc'"):
        vc["raroc"]
    pd = pytest.importorskip("pandas")
    frame = vc.to_frame()
    assert isinstance(frame, pd.DataFrame) and frame.shape == (len(METRICS) * 4, 11)


# ------------------------------------------------------------------------------ bad input


@pytest.fixture
def no_simulation(monkeypatch):
    """Fail the test if a simulation starts: every refusal comes before any work."""

    def refuse(*args, **kwargs):
        raise AssertionError("simulate was called")

    monkeypatch.setattr(A, "simulate", refuse)


def test_identical_structures_are_refused(scenario, no_simulation):
    with pytest.raises(ValueError, match=r"same terms as the baseline .* nothing to attribute"):
        il.attribute(scenario, il.pure_loan(name="twin"), il.pure_loan(), **KW)


def test_more_than_eight_terms_are_refused_by_name(scenario, no_simulation):
    many = il.pure_loan(loan_to_value=0.2, rate=0.05, maturity_years=2.5, upfront_fee=0.02,
                        final_fee=0.01, prepayment_fee=0.01, recovery_rate=0.9, collateral=0.1,
                        warrant=il.Warrant())  # fmt: skip
    with pytest.raises(ValueError) as info:
        il.attribute(scenario, many, il.pure_loan(), **KW)
    msg = str(info.value)
    assert "in 9 terms" in msg and "at most 8" in msg
    for term in ("loan.loan_to_value", "loan.collateral", "warrant"):
        assert term in msg


@pytest.mark.parametrize(
    ("kw", "fragment"),
    [
        (dict(metrics="raroc"), "'raroc' is a tail metric"),
        (dict(metrics=["pd", "loss_var_999"]), "attribute takes the smooth metrics"),
        (dict(metrics="nope"), "metrics: unknown 'nope'"),
        (dict(metrics=()), "give at least one"),
        (dict(measures="real_world"), "needs the risk-neutral measure"),
        (dict(seed=None), "attribution needs a fixed seed"),
        (dict(groups=[("warrant", "loan.upfront_fee")]), "'loan.upfront_fee' is not a term"),
        (dict(groups=[("warrant",)]), "two or more term names"),
        (dict(hurdle=20.0), "hurdle: must be <= 10"),
    ],
)
def test_bad_arguments_are_refused_before_any_run(scenario, no_simulation, kw, fragment):
    args = {**KW, **kw}
    with pytest.raises(ValueError, match=re.escape(fragment)):
        il.attribute(scenario, il.warrant_loan(), il.pure_loan(), **args)


def test_tail_error_lists_the_smooth_metrics(scenario, no_simulation):
    with pytest.raises(ValueError) as info:
        il.attribute(scenario, il.warrant_loan(), il.pure_loan(), metrics="raroc", **KW)
    assert str(list(SMOOTH_METRICS)) in str(info.value)
    with pytest.raises(TypeError, match=r"baseline: expected an invlend\.Structure"):
        il.attribute(scenario, il.warrant_loan(), "pure_loan", **KW)
