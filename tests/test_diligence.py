"""The value of an on-site visit: selection against its closed form, the break-even invariant.

Tier: statistical (the accepted applicants' mean quality against the truncated-normal closed
form, within 4 SEs) and exact (a visit bought at its break-even cost leaves the fair value
where it was), plus the interface and its errors.
"""

from __future__ import annotations

import math

import pytest

import invlend as il
from invlend.diligence import selected_quality
from invlend.sweep import starting_stage

SC = il.Scenario.default()
KW = dict(n_portfolios=200, portfolio_size=30, seed=5)


@pytest.fixture(scope="module")
def visit():
    return il.visit_value(SC, il.pure_loan(), noise=[0.5, 0.0], stages=["early", "mature"], **KW)


def test_selected_quality_closed_form_values():
    assert selected_quality(0.0, 1.0) == 0.0
    # Perfect information, top half: E[q | q > 0] = phi(0) / 0.5 = 2 / sqrt(2 pi).
    assert selected_quality(0.0, 0.5) == pytest.approx(2 / math.sqrt(2 * math.pi), rel=1e-14)
    # Noise 1 halves the signal's variance share: rho = 1 / sqrt(2).
    assert selected_quality(1.0, 0.5) == pytest.approx(2 / math.sqrt(4 * math.pi), rel=1e-14)


@pytest.mark.parametrize("noise, rate", [(1.0, 0.6), (0.5, 0.3), (0.0, 0.8)])
def test_accepted_quality_matches_the_closed_form(noise, rate):
    s = il.pure_loan(screening=il.Screening(signal_noise=noise, acceptance_rate=rate))
    e = il.simulate(starting_stage(SC, "growth"), s, **KW).summary(n_boot=0)["pure_loan"]
    got = e["accepted_quality"]
    z = (got.estimate - selected_quality(noise, rate)) / got.se
    print(f"noise {noise}, accept {rate}: z = {z:+.2f}")
    assert abs(z) < 4


def test_visit_bought_at_its_breakeven_cost_is_worth_its_cost(visit):
    base = il.pure_loan()
    for stage in ("early", "mature"):
        for noise in (0.5, 0.0):
            c = visit[stage][noise]["breakeven_cost"].estimate
            after = base.replace(name="after", screening=base.screening.replace(
                signal_noise=noise, cost=base.screening.cost + c))  # fmt: skip
            res = il.simulate(starting_stage(SC, stage), [base, after], **KW)
            s = res.summary(n_boot=0)
            fv0 = s["pure_loan"]["fair_value_per_applicant"].estimate
            fv1 = s["after"]["fair_value_per_applicant"].estimate
            assert fv1 == pytest.approx(fv0, rel=1e-9, abs=1e-12)


def test_gains_are_the_paired_differences(visit):
    base = il.pure_loan()
    sharp = base.replace(name="sharp", screening=base.screening.replace(signal_noise=0.0))
    res = il.simulate(starting_stage(SC, "early"), [base, sharp], **KW)
    d = res.compare(baseline="pure_loan", n_boot=0)["sharp"]
    row = visit["early"][0.0]
    for q in ("accepted_quality", "pd", "npv_per_applicant", "fair_value_per_applicant"):
        assert row[q].estimate == pytest.approx(d[q].estimate, rel=1e-12, abs=1e-15)
        assert row[q].se == pytest.approx(d[q].se, rel=1e-12, abs=1e-15)
    exact = selected_quality(0.0, 0.6) - selected_quality(1.0, 0.6)
    assert row["closed_form_quality"] == pytest.approx(exact, rel=1e-14)
    z = (row["accepted_quality"].estimate - exact) / row["accepted_quality"].se
    print(f"accepted quality gain against the closed form: z = {z:+.2f}")
    assert abs(z) < 4


def test_table_records_and_exports(visit, tmp_path):
    text = str(visit)
    assert "value of an on-site visit" in text and "1 -> 0.5" in text
    assert "<table" in visit._repr_html_()
    recs = visit.records()
    assert len(recs) == 4 and set(visit.fields()) == set(recs[0])
    assert visit.to_dict()["meta"]["noise_from"] == 1.0
    visit.to_json(tmp_path / "v.json")
    with pytest.raises(KeyError, match="no stage 'seed'"):
        visit["seed"]


@pytest.mark.parametrize(
    "structure, kw, exc, match",
    [
        ("x", {}, TypeError, "structure: expected an invlend.Structure"),
        (il.pure_loan(screening=il.Screening()), {}, ValueError, "accepts every applicant"),
        (None, dict(noise=[1.0]), ValueError, r"noise\[0\]: 1 is the structure's own"),
        (None, dict(noise=[-0.5]), ValueError, r"noise\[0\]"),
        (None, dict(noise=[0.5, 0.5]), ValueError, "distinct levels"),
        (None, dict(noise="0.5"), TypeError, "noise"),
        (None, dict(seed=None), ValueError, "a visit value needs a fixed seed"),
        (None, dict(measures="real_world"), ValueError, "risk-neutral measure"),
        (None, dict(structures=[]), TypeError, "structures: give the one structure"),
        (None, dict(stages=["nope"]), ValueError, "stages: no stage 'nope'"),
    ],
)  # fmt: skip
def test_errors_name_the_argument(structure, kw, exc, match):
    args = {**dict(n_portfolios=10, portfolio_size=5, seed=1), **kw}
    with pytest.raises(exc, match=match):
        il.visit_value(SC, il.pure_loan() if structure is None else structure, **args)
