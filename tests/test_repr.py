"""What a notebook or a script shows of a result: short reprs, HTML tables, messages, frames."""

from __future__ import annotations

import math

import numpy as np
import pytest

import invlend as il
from conftest import stage_only_default
from invlend import _tables as T
from invlend._sim.layout import Event

KW = dict(n_portfolios=100, portfolio_size=10, seed=5)
TINY = dict(n_portfolios=20, portfolio_size=10, seed=5)


@pytest.fixture(scope="module")
def res():
    return il.simulate(il.Scenario.default(), **KW)


@pytest.fixture(scope="module")
def summary(res):
    return res.summary(n_boot=20)


def _is_html(text: str, *names: str) -> None:
    assert isinstance(text, str) and text.startswith("<"), text[:80]
    assert text.endswith(">")
    assert "±" in text
    for name in names:
        assert name in text, name
    assert "<script" not in text and "<link" not in text and "<style" not in text


# ------------------------------------------------------------------------------ reprs


def test_reprs_are_a_few_lines(res):
    text = repr(res)
    assert len(text) < 1000 and "SimulationResult" in text
    for name in res:
        assert name in text
    assert "n_portfolios=100" in text and "seed=5" in text and "horizon_years=5" in text
    for name, r in res.items():
        text = repr(r)
        assert len(text) < 1000 and name in text, text
        assert "100 portfolios x 10 firms" in text and "seed 5" in text
        assert "risk_neutral" in text and "keep 'firms'" in text
    text = repr(res["pure_loan"].outcomes)
    assert len(text) < 1000 and text.startswith("Outcomes")
    assert "100 portfolios x 10 firms" in text and "DEFAULT" in text and "horizon 5 y" in text


def test_reprs_of_an_aggregates_run_and_many_structures():
    structs = [il.pure_loan(name=f"s{k}") for k in range(40)]
    r = il.simulate(il.Scenario.default(), structs, keep="aggregates", **TINY)
    text = repr(r)
    assert len(text) < 1000 and "s0" in text and "s39" in text and "more" in text
    assert "keep='aggregates'" in text
    text = repr(r["s3"])
    assert len(text) < 1000 and "'s3'" in text and "keep 'aggregates'" in text
    assert "not kept" in repr(r["s3"].outcomes)


def test_sweep_repr_is_short():
    sw = il.sweep(il.Scenario.default(), il.pure_loan(), "loan.rate", [0.04, 0.06], n_boot=0,
                  **TINY)  # fmt: skip
    text = repr(sw)
    assert len(text) < 1000 and "loan.rate" in text and "pure_loan" in text
    _is_html(sw._repr_html_(), "pure_loan", "loan.rate")


# ------------------------------------------------------------------------------ HTML


def test_html_of_results_summaries_and_comparisons(res, summary):
    names = list(res)
    _is_html(res._repr_html_(), *names, "pd")
    _is_html(res["warrant_loan"]._repr_html_(), "warrant_loan", "pd")
    _is_html(summary._repr_html_(), *names, "loss_var_99")
    _is_html(res.compare(n_boot=20)._repr_html_(), "warrant_loan - pure_loan", "z=")
    _is_html(res.decompose("warrant_loan")._repr_html_(), "warrant_loan", "total")


def test_html_of_cohorts_attributions_and_pricing():
    sc = il.Scenario.default()
    c = il.cohort(stage_only_default(), "early", horizon_years=3.0)
    html = c._repr_html_()
    assert html.startswith("<") and all(s in html for s in c.stages)
    assert "expected years" in html and "Cohort from early" in html
    a = il.attribute(sc, il.pure_loan(rate=0.06, upfront_fee=0.02), il.pure_loan(), **TINY)
    _is_html(a._repr_html_(), "pure_loan", "loan.rate", "total")
    expansion, mature = sc.stages[3:]
    two = sc.replace(stages=[expansion.replace(weight=0.5), mature.replace(weight=0.5)])
    t = il.pricing_table(two, stages=["mature"], rate_bracket=(0.0, 0.001), n_boot=0, **TINY)
    _is_html(t._repr_html_(), "mature", "pure_loan")


def test_html_table_escapes_and_inlines_its_style():
    html = T.html_table(["name", "x"], [["<b>&", "1 ± 2"]], title="a 'b' <c>", notes=["[1] <n>"])
    assert "<b>&" not in html and "&lt;b&gt;&amp;" in html
    assert "&lt;c&gt;" in html and "[1] &lt;n&gt;" in html
    assert html.startswith('<div class="invlend-table"><table style=')
    assert html.count("<tr>") == 2 and "text-align:right" in html


# ------------------------------------------------------------------------------ formatter


@pytest.mark.parametrize(
    ("value", "se", "kw", "text"),
    [
        (0.003465, 0.0009541, {}, "0.00347 ± 0.00095"),
        (1234.5678, 56.78, {}, "1235 ± 57"),
        (0.1234567, 0.001, {"percent": True}, "12.35% ± 0.10%"),
        (0.1, 0.0995, {}, "0.10 ± 0.10"),
        (5.0e7, 1.23e5, {}, "50000000 ± 120000"),
        (-0.00001, 0.002, {}, "0.0000 ± 0.0020"),
        (-1e-19, 0.0, {"percent": True}, "0.000% ± 0.000%"),  # no "-0.000%"
        (-0.02, 0.004, {"percent": True, "sign": True}, "-2.00% ± 0.40%"),
        (0.02, 0.004, {"percent": True, "sign": True}, "+2.00% ± 0.40%"),
        (0.05, math.nan, {"percent": True}, "5.000% ± n/a"),
        (1.5, 0.0, {}, "1.5 ± 0"),
        (math.nan, math.nan, {}, "n/a ± n/a"),
    ],
)
def test_format_estimate(value, se, kw, text):
    assert T.format_estimate(value, se, **kw) == text


def test_a_structure_summary_is_its_column_of_the_run_summary(res, summary):
    one = res["vc_linked"].summary(n_boot=20)
    assert list(one) == ["vc_linked"]
    for metric, est in one["vc_linked"].items():
        want = summary["vc_linked"][metric]
        assert np.array_equal(est[:4], want[:4], equal_nan=True) and est.note == want.note, metric


def test_text_tables_use_the_shared_formatter(summary):
    e = summary["pure_loan"]["npv_per_loan"]
    assert T.format_estimate(e.estimate, e.se) in str(summary)
    p = summary["pure_loan"]["pd"]
    assert T.format_estimate(p.estimate, p.se, percent=True) in str(summary)


# ------------------------------------------------------------------------------ messages


def test_unknown_structure_lists_the_valid_names(res, summary):
    with pytest.raises(KeyError) as info:
        summary["pure"]
    message = str(info.value)
    assert "'pure'" in message and all(n in message for n in res)
    c = res.compare(n_boot=20)
    with pytest.raises(KeyError, match="baseline") as info:
        c["pure_loan"]
    assert "warrant_loan" in str(info.value)


# ------------------------------------------------------------------------------ frames


def test_to_frame_has_named_categories(res):
    pd = pytest.importorskip("pandas")
    frame = res.to_frame()
    names = [st.name for st in res.scenario.stages]
    for col, cats in (("event", [e.name for e in Event]), ("initial_stage", names),
                      ("stage", names), ("structure", list(res))):  # fmt: skip
        assert isinstance(frame[col].dtype, pd.CategoricalDtype), col
        assert str(frame[col].dtype) == "category"
        assert frame[col].cat.categories.tolist() == cats, col
    o = res["pure_loan"].outcomes
    first = frame[frame["structure"] == "pure_loan"]
    assert np.array_equal(first["event"].cat.codes.to_numpy(), o.event.ravel())
    assert np.array_equal(first["stage"].cat.codes.to_numpy(), o.stage.ravel())
    assert (first["event"] == "DEFAULT").sum() == int(np.sum(o.event == Event.DEFAULT))
