"""Plots draw what they say (lines, labels, limits), and reports are whole or absent."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

import invlend as il
from invlend import metrics as M
from invlend import plotting as P
from invlend.report import write_report


@pytest.fixture(scope="module")
def res():
    return il.simulate(il.Scenario.default(), n_portfolios=80, portfolio_size=40, seed=3,
                       sample_paths=300)  # fmt: skip


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def test_npv_distribution_draws_one_cdf_per_structure(res, ax):
    out = P.plot_npv_distribution(res, ax=ax)
    assert out is ax
    curves = [ln for ln in ax.get_lines() if ln.get_label() and not ln.get_label().startswith("_")]
    assert [ln.get_label().split(" ")[0] for ln in curves] == list(res)
    for ln in curves:  # each is an empirical CDF ending at 1
        y = ln.get_ydata()
        assert np.all(np.diff(y) >= 0) and y[-1] == pytest.approx(1.0)
    assert ax.get_xscale() == "symlog" and "symmetric-log" in ax.get_xlabel()
    assert ax.get_xlabel().startswith("NPV per unit of principal")


def test_loss_distribution_marks_var_and_es(res, ax):
    P.plot_loss_distribution(res, ax=ax, structures=["pure_loan"])
    xs = sorted(ln.get_xdata()[0] for ln in ax.get_lines())
    loss = res["pure_loan"].portfolio_loss_rate
    expected = sorted([loss.mean()] + [f(loss, a) for a in (0.99, 0.999)
                      for f in (M.value_at_risk, M.expected_shortfall)])  # fmt: skip
    np.testing.assert_allclose(xs, expected)
    assert ax.get_yscale() == "log" and "VaR" in ax.get_title()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]  # every line style named
    assert {"EL (mean loss)", "VaR 99%", "VaR 99.9%", "ES 99%", "ES 99.9%"} <= set(legend)


def test_cumulative_incidence_one_line_per_starting_stage(res, ax):
    P.plot_cumulative_incidence(res, ax=ax, event="IPO")
    lines = ax.get_lines()
    assert len(lines) == len(res.scenario.stages)
    o = res["pure_loan"].outcomes
    seed_ipo = np.mean(o.event[o.initial_stage == 0] == il.Event.IPO)
    assert lines[0].get_ydata()[-1] == pytest.approx(seed_ipo)
    assert ax.get_xlim() == (0.0, res.scenario.horizon_years)
    with pytest.raises(ValueError, match="event"):
        P.plot_cumulative_incidence(res, ax=ax, event="EXIT")


def test_value_fan_needs_sampled_paths(res, ax):
    P.plot_value_fan(res, ax=ax, n_lines=7)
    assert len(ax.get_lines()) == 1 + 7  # the median and the sample paths
    median = ax.get_lines()[0].get_ydata()
    assert median[0] == pytest.approx(1.0)
    plain = il.simulate(il.Scenario.default(), n_portfolios=2, portfolio_size=5, seed=1)
    with pytest.raises(ValueError, match="sample_paths"):
        P.plot_value_fan(plain, ax=ax)


def test_risk_return_points_are_the_summary(res, ax):
    s = res.summary(n_boot=50)
    P.plot_risk_return(res, ax=ax, summary=s)
    texts = {t.get_text(): t.xy for t in ax.texts}
    for n in res:
        assert texts[n] == pytest.approx(
            (s[n]["economic_capital"].estimate, s[n]["fair_value_per_principal"].estimate)
        )


def test_decomposition_bars_are_the_parts(res, ax):
    res.plot_decomposition(ax=ax, structures=["pure_loan", "warrant_loan"])
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[-1] == "total" and "warrant" in labels and "equity" not in labels  # zeros out
    bars = [p for p in ax.patches if p.get_height() > 0]
    assert len(bars) == 2 * len(labels)
    fair = res.decompose("warrant_loan", "risk_neutral")
    widths = [b.get_width() for b in bars[len(labels) :]]  # the second structure's bars
    keys = [k.replace(" ", "_") for k in labels]
    assert widths == pytest.approx([fair[k].estimate for k in keys], abs=1e-12)
    assert "Fair value" in ax.get_xlabel()
    with pytest.raises(ValueError, match="measure"):
        res.plot_decomposition(ax=ax, measure="nope")


def test_report_without_risk_neutral_measure_says_so(tmp_path):
    res = il.simulate(il.Scenario.default(), n_portfolios=40, portfolio_size=20, seed=3,
                      measures="real_world", keep="aggregates")  # fmt: skip
    write_report(res, tmp_path / "rep", n_boot=0)
    page = (tmp_path / "rep" / "report.html").read_text(encoding="utf-8")
    assert "has no risk-neutral measure" in page
    rows = (tmp_path / "rep" / "decomposition.csv").read_text().splitlines()
    assert all(",real_world," in r for r in rows[1:])


def test_sweep_and_tornado(ax):
    sc = il.Scenario.default()
    kw = dict(n_portfolios=20, portfolio_size=20, seed=2)
    sw = il.sweep(sc, None, "loan.rate", [0.03, 0.05], n_boot=0, **kw)
    P.plot_sweep(sw, ax=ax)
    assert [ln.get_label() for ln in ax.get_lines()] == list(sw.structures)
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), [0.03, 0.05])
    fig, ax2 = plt.subplots()
    sens = il.sensitivity(sc, il.warrant_loan(), ["loan.rate", "warrant.coverage"], **kw)
    P.plot_tornado(sens, ax=ax2, metric="fair_value_per_principal")
    # widest swing on top. In fair value the rate's +-20% (about 1.4 years of balance x 0.8 pp)
    # moves more than the coverage's (+-20% of a warrant worth about 4% of principal).
    swing = {p: abs(r["high"] - r["low"]) for p, r in sens.items()}
    assert swing["loan.rate"] > swing["warrant.coverage"]
    assert ax2.get_yticklabels()[-1].get_text().startswith("loan.rate")
    assert len(ax2.patches) == 4
    plt.close(fig)


def test_result_methods_delegate(res, ax):
    assert res.plot_loss_distribution(ax=ax) is ax


def test_report_is_whole_and_self_contained(res, tmp_path):
    out = tmp_path / "rep"
    written = write_report(res, out, n_boot=20)
    names = {p.name for p in written}
    assert {"report.html", "summary.csv", "summary.json", "comparison.csv",
            "decomposition.csv"} <= names  # fmt: skip
    pngs = sorted(n for n in names if n.endswith(".png"))
    assert len(pngs) == 6 and "decomposition.png" in pngs
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 6 and "<img" in page and "src='http" not in page
    assert "Value part by part" in page and "warrant" in page
    for n in res:
        assert n in page
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".rep-")]  # no temp left


def test_failed_report_leaves_nothing(res, tmp_path, monkeypatch):
    import invlend.report as R

    def broken(*a, **k):
        raise RuntimeError("figure failed")

    monkeypatch.setattr(R, "_page", broken)
    out = tmp_path / "rep"
    with pytest.raises(RuntimeError):
        write_report(res, out, n_boot=0)
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def cycle_res():
    sc = il.Scenario.default().model_copy(update={"cycle": il.FundingCycle()})
    pooled = il.pure_loan().model_copy(update={"name": "pooled", "risk_pool": il.RiskPool()})
    return il.simulate(sc, [il.pure_loan(), pooled], n_portfolios=300, portfolio_size=40, seed=9)


def test_loss_by_regime_draws_bin_means(cycle_res, ax):
    P.plot_loss_by_regime(cycle_res, ax=ax, structures=["pure_loan"], bins=2)
    line = ax.get_lines()[0]  # the means; the others draw the error bars
    share = np.asarray(cycle_res.cold_share)
    loss = cycle_res["pure_loan"].portfolio_loss_rate
    low = share < 0.5
    np.testing.assert_allclose(line.get_xdata(), [share[low].mean(), share[~low].mean()])
    np.testing.assert_allclose(line.get_ydata(), [loss[low].mean(), loss[~low].mean()])
    assert "cold" in ax.get_xlabel()


def test_loss_by_regime_needs_a_cycle(ax):
    flat = il.Scenario.default().model_copy(update={"cycle": None})
    res = il.simulate(flat, n_portfolios=4, portfolio_size=10, seed=3)
    with pytest.raises(ValueError, match=r"scenario\.cycle"):
        P.plot_loss_by_regime(res, ax=ax)


def test_pool_plot_shows_claims_paid_and_the_cap(cycle_res, ax):
    cycle_res.plot_pool(ax=ax)
    r = cycle_res["pooled"]
    cap = r.structure.risk_pool.annual_cap
    (points,) = ax.collections
    xy = points.get_offsets()
    assert np.all(xy[:, 1] <= cap + 1e-12) and np.all(xy[:, 1] <= xy[:, 0] + 1e-12)
    assert any(ln.get_ydata()[0] == pytest.approx(cap) for ln in ax.get_lines())
    unpaid = 1 - r.pool_paid.sum() / r.pool_claims.sum()
    assert f"{unpaid:.1%} of claims unpaid" in ax.get_title()
    with pytest.raises(ValueError, match="risk_pool"):
        P.plot_pool(cycle_res, ax=ax, structure="pure_loan")


def test_axis_units_follow_the_metric(res, ax):
    P.plot_risk_return(res, ax=ax, risk="irb_capital", ret="npv_per_applicant")
    assert ax.get_xlabel() == "IRB capital (share of principal)"
    assert ax.get_ylabel() == "NPV per applicant (currency units)"
    # a rate axis is formatted as a percentage, a currency axis is not
    assert ax.xaxis.get_major_formatter().__class__.__name__ == "PercentFormatter"
    assert ax.yaxis.get_major_formatter().__class__.__name__ != "PercentFormatter"
