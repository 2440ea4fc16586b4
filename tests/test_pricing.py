"""Break-even pricing: tail-metric break-evens and the pricing table by starting stage."""

from __future__ import annotations

import importlib
import json
import math
import re

import pytest

import invlend as il
from conftest import assert_mc_close
from invlend.sweep import PRICING_QUANTITIES, starting_stage

S = importlib.import_module("invlend.sweep")  # il.sweep is the function of that name
KW = dict(n_portfolios=200, portfolio_size=50, seed=3)
FV = "fair_value_per_principal"


@pytest.fixture(scope="module")
def scenario():
    return il.Scenario.default()


@pytest.fixture(scope="module")
def two_stage(scenario):
    """The built-in scenario's last two stages, half the applicants starting in each."""
    expansion, mature = scenario.stages[3:]
    stages = [expansion.replace(weight=0.5), mature.replace(weight=0.5)]
    return scenario.replace(stages=stages)


@pytest.fixture(scope="module")
def table(two_stage):
    return il.pricing_table(two_stage, **KW)


# ------------------------------------------------------------------ break-even, tail metric


def test_breakeven_meets_a_raroc_hurdle(scenario):
    b = il.breakeven(scenario, il.pure_loan(), "loan.rate", target=0.15, bracket=(0.0, 0.3),
                     metric="raroc", **KW)  # fmt: skip
    at = il.simulate(scenario, il.pure_loan(rate=b.value), **KW).summary(n_boot=200)
    raroc = at["pure_loan"]["raroc"]
    # Brent's tolerance (1e-6 of the bracket) times the slope bounds the gap at the root
    assert abs(raroc.estimate - 0.15) <= 2 * abs(b.slope) * 1e-6 * 0.3
    # delta method on the bootstrap of the run at the root (the same resamples)
    assert b.se == pytest.approx(raroc.se / abs(b.slope), rel=1e-9)
    assert b.note == "" and b.ci_low < b.value < b.ci_high
    assert "raroc reaches 0.15 at loan.rate" in str(b)


def test_tail_breakeven_without_bootstrap_says_why_se_is_nan(scenario):
    kw = dict(scenario=scenario, structure=il.pure_loan(), param="loan.rate", target=0.15,
              bracket=(0.0, 0.3), metric="raroc", **KW)  # fmt: skip
    b0, b = il.breakeven(**kw, n_boot=0), il.breakeven(**kw)
    assert b0.value == b.value  # the search itself never bootstraps
    assert math.isnan(b0.se) and "n_boot=0" in b0.note
    assert "standard error n/a: n_boot=0" in str(b0)


def test_tail_breakeven_against_another_structure(scenario):
    # eva of the pure loan against the warrant loan's: a paired tail-metric gap
    b = il.breakeven(scenario, il.pure_loan(), "loan.rate", against=il.warrant_loan(),
                     bracket=(0.0, 0.5), metric="eva", n_boot=100, **KW)  # fmt: skip
    at = il.simulate(scenario, [il.pure_loan(rate=b.value), il.warrant_loan()], **KW)
    d = at.compare("warrant_loan", n_boot=100)["pure_loan"]["eva"]
    assert abs(d.estimate) <= 2 * abs(b.slope) * 1e-6 * 0.5
    assert b.se == pytest.approx(d.se / abs(b.slope), rel=1e-9)


# ---------------------------------------------------------------------------- the stages


def test_starting_stage_moves_only_the_weights(scenario):
    sc = starting_stage(scenario, "growth")
    assert [s.weight for s in sc.stages] == [0.0, 0.0, 1.0, 0.0, 0.0]
    assert [s.replace(weight=1.0) for s in sc.stages] == [
        s.replace(weight=1.0) for s in scenario.stages
    ]
    assert starting_stage(scenario, 2) == sc
    with pytest.raises(ValueError, match=r"stages: no stage 'nope'; stages are \['seed'"):
        starting_stage(scenario, "nope")


# ------------------------------------------------------------------------ the pricing table


def test_pricing_table_rows_are_the_roots(two_stage, table):
    assert table.stages == ["expansion", "mature"] and list(table) == table.stages
    pure, warrant = il.pure_loan(), il.warrant_loan()
    for stage in table:
        row = table[stage]
        assert list(row) == list(PRICING_QUANTITIES)
        for q, e in row.items():
            assert math.isfinite(e.estimate) and e.se > 0 and e.note == "", (stage, q)
        sc = starting_stage(two_stage, stage)
        found = table.breakevens[stage]
        tol = {q: 2 * abs(found[q].slope) * x
               for q, x in [("fair_rate", 1e-6), ("warrant_value_bp", 1e-6),
                            ("breakeven_coverage", 1e-5), ("hurdle_rate", 1e-6)]}  # fmt: skip
        # (a) the pure loan at the fair rate is worth nothing
        fair = pure.replace(loan=pure.loan.replace(rate=row["fair_rate"].estimate))
        s = il.simulate(sc, fair, **KW).summary(n_boot=0)["pure_loan"]
        assert abs(s[FV].estimate) <= tol["fair_rate"]
        assert abs(s["raroc"].estimate) < 0.15  # a fair rate earns less than the hurdle
        # (b) the pure loan at the warrant loan's rate + the warrant's worth matches its value
        rate = warrant.loan.rate + row["warrant_value_bp"].estimate / 1e4
        same = il.simulate(sc, [il.pure_loan(rate=rate), warrant], **KW)
        gap = same.compare("warrant_loan", n_boot=0)["pure_loan"][FV].estimate
        assert abs(gap) <= tol["warrant_value_bp"]
        # (c) the coverage that pays for 100 bp
        cover = il.Warrant(coverage=row["breakeven_coverage"].estimate)
        cheap = il.warrant_loan(rate=pure.loan.rate - 0.01, warrant=cover)
        pair = il.simulate(sc, [pure, cheap], **KW).compare("pure_loan", n_boot=0)
        assert abs(pair["warrant_loan"][FV].estimate) <= tol["breakeven_coverage"]
        # (d) the pure loan at the hurdle rate earns a RAROC of 15%
        hurdle = il.simulate(sc, il.pure_loan(rate=row["hurdle_rate"].estimate), **KW)
        raroc = hurdle.summary(n_boot=0)["pure_loan"]["raroc"].estimate
        assert abs(raroc - 0.15) <= tol["hurdle_rate"]
        # the warrant's worth is its root's rate gap in bp, with the root's SE scaled
        assert row["warrant_value_bp"].se == pytest.approx(1e4 * found["warrant_value_bp"].se)


def test_pricing_table_equals_direct_breakevens(two_stage, table):
    sc = starting_stage(two_stage, "mature")
    b = il.breakeven(sc, il.pure_loan(), "loan.rate", target=0.0, bracket=(0.0, 0.3),
                     metric=FV, xtol=1e-6, **KW)  # fmt: skip
    assert table["mature"]["fair_rate"].estimate == b.value
    assert table["mature"]["fair_rate"].se == b.se


def test_pricing_roots_agree_across_independent_seeds(two_stage, table):
    other = il.pricing_table(two_stage, stages=["mature", "expansion"], **{**KW, "seed": 4})
    assert other.stages == ["mature", "expansion"]
    for stage in ("expansion", "mature"):
        for q in ("fair_rate", "warrant_value_bp", "breakeven_coverage"):
            a, b = table[stage][q], other[stage][q]
            z = assert_mc_close(a.estimate, b.estimate, math.hypot(a.se, b.se),
                                label=f"pricing seeds 3 vs 4: {stage} {q}")  # fmt: skip
            print(f"z = {z:.2f}")


def test_a_root_outside_its_bracket_leaves_a_marked_gap(two_stage):
    t = il.pricing_table(two_stage, stages=["mature"], rate_bracket=(0.0, 0.001), n_boot=0,
                         **KW)  # fmt: skip
    row = t["mature"]
    for q in ("fair_rate", "warrant_value_bp", "hurdle_rate"):
        assert math.isnan(row[q].estimate) and "same sign at both ends" in row[q].note
        assert t.breakevens["mature"][q] is None
    assert math.isfinite(row["breakeven_coverage"].estimate)  # its bracket holds the root
    text = str(t)
    assert "n/a ± n/a [1]" in text and "\n[1] bracket: fair_value_per_principal" in text


def test_pricing_table_text_and_exports(table, tmp_path):
    lines = str(table).split("\n")
    assert lines[0].startswith("invlend pricing by starting stage: pure_loan against")
    assert lines[1].split("  ")[0] == "stage" and "coverage for 100 bp" in lines[1]
    assert "rate for RAROC 15%" in lines[1]
    assert set(lines[2]) == {"-"} and [x.split()[0] for x in lines[3:5]] == table.stages
    assert any("minus warrant_loan's rate 4.000%" in x for x in lines)
    recs = table.records()
    assert [r["stage"] for r in recs] == table.stages and list(recs[0]) == table.fields()
    table.to_csv(tmp_path / "p.csv")
    head = (tmp_path / "p.csv").read_text().split("\n")[0]
    assert head.startswith("stage,fair_rate,fair_rate_se,fair_rate_ci_low")
    doc = json.loads(table.to_json())
    assert doc["meta"]["hurdle_raroc"] == 0.15 and len(doc["rows"]) == 2
    pd = pytest.importorskip("pandas")
    assert table.to_frame().shape == (2, 1 + 5 * len(PRICING_QUANTITIES))
    assert isinstance(table.to_frame(), pd.DataFrame)


# ------------------------------------------------------------------------------ bad input


@pytest.fixture
def no_simulation(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("simulate was called")

    monkeypatch.setattr(S, "simulate", refuse)


@pytest.mark.parametrize(
    ("kw", "fragment"),
    [
        (dict(seed=None), "a pricing table needs a fixed seed"),
        (dict(stages=["nope"]), "stages: no stage 'nope'"),
        (dict(stages=[]), "stages: give at least one stage"),
        (dict(warrant=il.pure_loan(name="w")), "carries no warrant"),
        (dict(warrant=il.warrant_loan(name="pure_loan")), "a name other than the pure loan's"),
        (dict(discount_bp=500.0), "discount_bp: 500 bp below"),
        (dict(measures="real_world"), "needs the risk-neutral measure"),
        (dict(rate_bracket=(0.2, 0.1)), "rate_bracket: need lo < hi"),
        (dict(coverage_bracket=(0.0, 20.0)), "warrant.coverage"),
        (dict(hurdle_raroc=math.nan), "hurdle_raroc: must be a finite number"),
    ],
)
def test_pricing_table_refuses_bad_input_before_any_run(two_stage, no_simulation, kw, fragment):
    with pytest.raises(ValueError, match=re.escape(fragment)):
        il.pricing_table(two_stage, **{**KW, **kw})
