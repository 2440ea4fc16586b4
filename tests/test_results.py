"""Results: metric definitions, standard errors, comparisons, immutability and exports."""

from __future__ import annotations

import csv
import dataclasses
import json
import math

import numba
import numpy as np
import pytest
import scipy

import invlend as il
from invlend import metrics as M
from invlend._sim import layout as K

N_PORT, SIZE, SEED = 200, 50, 31


def _structures():
    return [
        *il.default_structures(),
        il.pure_loan(name="shared_risk", risk_share=il.RiskShare(), equity=il.Equity()),
    ]


#: Shares that can be 0 in every portfolio, and then have a standard error of 0: a structure
#: without a pledge recovers nothing from collateral; a scenario may flag no firm for stage 2.
_MAY_BE_ZERO = ("collateral_share", "stage2_share")


@pytest.fixture(scope="module")
def res():
    return il.simulate(
        il.Scenario.default(), _structures(), n_portfolios=N_PORT, portfolio_size=SIZE, seed=SEED
    )


@pytest.fixture(scope="module")
def summary(res):
    return res.summary(n_boot=200)


@pytest.fixture(scope="module")
def comparison(res):
    return res.compare(baseline="pure_loan", n_boot=200)


# ------------------------------------------------------------------------------ summary


def test_summary_has_every_metric_with_a_finite_standard_error(res, summary):
    assert list(summary) == list(res) == [s.name for s in _structures()]
    assert len(summary) == len(res)
    for name in res:
        row = summary[name]
        assert list(row) == list(M.METRICS)
        for metric, est in row.items():
            assert isinstance(est, M.Estimate)
            if metric == "pool_shortfall" and res[name].structure.risk_pool is None:
                assert math.isnan(est.estimate) and math.isnan(est.se), (name, est)
                continue
            if metric in _MAY_BE_ZERO and est.estimate == 0.0:  # 0 in every portfolio
                assert est.se == 0.0, (name, metric, est)
                continue
            assert math.isfinite(est.estimate), (name, metric, est)
            assert math.isfinite(est.se) and est.se > 0, (name, metric, est)
            assert est.ci_low == pytest.approx(est.estimate - 1.959963984540054 * est.se, rel=1e-12)
            assert est.ci_high == pytest.approx(
                est.estimate + 1.959963984540054 * est.se, rel=1e-12
            )


def test_summary_is_cached_and_reproducible(res, summary):
    again = res.summary(n_boot=200)
    other = il.simulate(
        il.Scenario.default(), _structures(), n_portfolios=N_PORT, portfolio_size=SIZE, seed=SEED
    ).summary(n_boot=200)
    for name in res:
        # assert_equal counts NaN equal to NaN (pool_shortfall without a pool)
        np.testing.assert_equal(again[name], summary[name])
        np.testing.assert_equal(other[name], summary[name])  # replicates come from the seed


def test_summary_progress_bar_counts_replicates_and_changes_nothing(summary, capfd):
    fresh = il.simulate(
        il.Scenario.default(), _structures(), n_portfolios=N_PORT, portfolio_size=SIZE, seed=SEED
    )
    shown = fresh.summary(n_boot=200, progress=True)
    err = capfd.readouterr().err
    assert "bootstrap" in err and "200/200 [" in err and "replicates/s" in err
    fresh.compare(n_boot=200, progress=True)  # cached with the summary: nothing to show
    assert capfd.readouterr().err == ""
    for name in fresh:
        np.testing.assert_equal(shown[name], summary[name])


@pytest.mark.parametrize("name", [s.name for s in _structures()])
def test_metric_definitions(res, summary, name):
    r, est = res[name], {m: e.estimate for m, e in summary[name].items()}
    agg = r.aggregates
    acc = r.accepted
    # the per-portfolio totals are the per-firm arrays summed
    np.testing.assert_array_equal(agg[:, K.AGG_ACCEPTED], acc.sum(axis=1))
    np.testing.assert_allclose(agg[:, K.AGG_PRINCIPAL], r.principal.sum(axis=1), rtol=1e-12)
    np.testing.assert_array_equal(agg[:, K.AGG_DEFAULTS], r.loan_default.sum(axis=1))
    np.testing.assert_allclose(agg[:, K.AGG_LOSS], r.credit_loss.sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(agg[:, K.AGG_UPSIDE], r.upside.sum(axis=1), rtol=1e-12)
    # portfolio NPV = NPV of the loans + screening cost of the rejected applicants
    cost = r.structure.screening.cost * r.structure.loan.loan_to_value * r.outcomes.initial_value
    firm_sum = np.where(acc, r.npv, -cost).sum(axis=1)
    np.testing.assert_allclose(r.portfolio_npv, firm_sum, rtol=1e-10, atol=1e-9)
    # estimates
    principal = agg[:, K.AGG_PRINCIPAL].sum()
    assert est["npv_per_principal"] == r.portfolio_npv.sum() / principal
    from_firms = (np.nansum(r.npv) - cost[~acc].sum()) / r.principal.sum()
    assert est["npv_per_principal"] == pytest.approx(from_firms, rel=1e-10)
    assert est["npv_per_loan"] == r.portfolio_npv.sum() / acc.sum()
    assert est["acceptance_rate"] == acc.sum() / acc.size
    assert est["pd"] == r.loan_default.sum() / acc.sum()
    assert est["prob_negative_npv"] == np.sum(r.npv < 0) / acc.sum()
    assert est["lgd"] == pytest.approx(
        agg[:, K.AGG_LOSS_NET].sum() / agg[:, K.AGG_EAD].sum(), rel=1e-12
    )
    assert est["expected_loss"] == pytest.approx(r.portfolio_loss_rate.mean(), rel=1e-12)
    assert est["irr"] == pytest.approx(np.nanmean(r.portfolio_irr), rel=1e-12)
    lr = r.portfolio_loss_rate
    assert np.all((lr >= 0.0) & (lr <= 1.0))
    covered = r.structure.risk_share.covered_fraction if r.structure.risk_share else 0.0
    np.testing.assert_allclose(
        lr, (1 - covered) * r.credit_loss.sum(axis=1) / r.principal.sum(axis=1), rtol=1e-12
    )
    assert est["loss_var_99"] == M.value_at_risk(lr, 0.99)
    assert est["loss_var_999"] == M.value_at_risk(lr, 0.999)
    assert est["loss_es_99"] == pytest.approx(M.expected_shortfall(lr, 0.99), rel=1e-12)
    assert est["loss_es_999"] == pytest.approx(M.expected_shortfall(lr, 0.999), rel=1e-12)
    assert est["credit_capital"] == pytest.approx(
        est["loss_var_999"] - est["expected_loss"], rel=1e-12
    )
    value = np.where(agg[:, K.AGG_PRINCIPAL] > 0, agg[:, K.AGG_NPV] / agg[:, K.AGG_PRINCIPAL], 0.0)
    assert est["economic_capital"] == pytest.approx(  # 200 portfolios: the 0.1% quantile is the min
        value.mean() - value.min(), rel=1e-12
    )
    years = agg[:, K.AGG_EXPOSURE].sum() / principal
    assert est["raroc"] == pytest.approx(
        est["fair_value_per_principal"] / (est["economic_capital"] * years), rel=1e-12
    )


@pytest.mark.parametrize("name", [s.name for s in _structures()])
def test_per_firm_arrays_are_consistent(res, name):
    r = res[name]
    acc = r.accepted
    assert r.npv.shape == r.principal.shape == (N_PORT, SIZE)
    assert r.loan_default.dtype == np.bool_
    assert np.all(r.principal[~acc] == 0.0) and np.all(r.principal[acc] > 0.0)
    np.testing.assert_allclose(
        r.principal[acc],
        (r.structure.loan.loan_to_value * r.outcomes.initial_value)[acc],
        rtol=1e-15,
    )
    assert not np.any(r.loan_default[~acc])
    assert np.all(r.credit_loss >= 0.0) and np.all(r.credit_loss[~acc] == 0.0)
    assert np.all(r.credit_loss[~r.loan_default] == 0.0)
    assert np.all(r.credit_loss <= r.principal)
    assert np.all(r.upside >= 0.0)
    if r.structure.warrant is None and r.structure.equity is None:
        assert np.all(r.upside == 0.0)
    # firm defaults while the loan is outstanding are loan defaults
    o = r.outcomes
    km = round(r.structure.loan.maturity_years / o.dt)
    early_default = acc & (o.event == il.Event.DEFAULT) & (o.step <= km)
    assert np.all(r.loan_default[early_default])
    irr = r.portfolio_irr
    assert irr.shape == (N_PORT,)
    assert np.all(np.isnan(irr) | (irr >= -1.0))


def test_screening_accepts_the_same_firms_for_the_same_signal(res):
    # The presets pure_loan, warrant_loan (and shared_risk, a pure_loan) screen alike.
    for name in ("warrant_loan", "shared_risk"):
        assert np.array_equal(res["pure_loan"].accepted, res[name].accepted), name
    # vc_linked screens with a better signal: a different set of applicants
    assert not np.array_equal(res["pure_loan"].accepted, res["vc_linked"].accepted)


# ------------------------------------------------------------------------------ comparison


def test_compare_against_a_baseline(res, summary, comparison):
    assert "pure_loan" not in comparison
    assert list(comparison) == [n for n in res if n != "pure_loan"]
    assert comparison.meta["baseline"] == "pure_loan"
    for name in comparison:
        assert list(comparison[name]) == list(M.METRICS)
        for metric, d in comparison[name].items():
            want = summary[name][metric].estimate - summary["pure_loan"][metric].estimate
            if math.isnan(want):  # pool_shortfall of structures without a pool
                assert math.isnan(d.estimate) and math.isnan(d.z), (name, metric)
                continue
            assert d.estimate == pytest.approx(want, rel=1e-12, abs=1e-15), (name, metric)
            if math.isfinite(d.se) and d.se > 0:
                assert d.z == pytest.approx(d.estimate / d.se, rel=1e-12)
                assert d.ci_low == pytest.approx(d.estimate - 1.959963984540054 * d.se)
            else:
                assert math.isnan(d.z)


def test_compare_other_baseline_and_errors(res):
    c = res.compare(baseline="vc_linked", n_boot=50)
    assert "vc_linked" not in c and "pure_loan" in c
    with pytest.raises(ValueError, match="baseline") as info:
        res.compare(baseline="nope")
    assert "pure_loan" in str(info.value)
    with pytest.raises(KeyError, match="nope"):
        res["nope"]


def test_compare_self_difference_of_identical_structures():
    structs = [il.pure_loan(), il.pure_loan(name="twin")]
    r = il.simulate(il.Scenario.default(), structs, n_portfolios=20, portfolio_size=20, seed=3)
    d = r.compare("pure_loan", n_boot=20)["twin"]
    for metric, diff in d.items():
        assert diff.estimate == 0.0 or math.isnan(diff.estimate), metric


# ------------------------------------------------------------------------------ immutability


def test_result_arrays_are_read_only(res):
    r = res["warrant_loan"]
    arrays = [
        getattr(r, f)
        for f in (
            "npv",
            "principal",
            "loan_default",
            "credit_loss",
            "upside",
            "portfolio_irr",
            "aggregates",
        )
    ]
    arrays += [
        getattr(r.outcomes, f)
        for f in (
            "event",
            "step",
            "value",
            "initial_value",
            "dilution",
            "quality",
            "checkpoint_values",
        )
    ]
    for a in arrays:
        assert not a.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            a[(0,) * a.ndim] = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.npv = np.zeros(3)
    with pytest.raises(TypeError):
        res["x"] = r


def test_meta_records_seed_and_versions(res):
    meta = res.meta
    assert meta["seed"] == SEED == res.seed
    assert meta["n_portfolios"] == N_PORT and meta["portfolio_size"] == SIZE
    assert meta["backend"] == "cpu"
    v = res.versions
    assert v["invlend"] == il.__version__
    assert v["numpy"] == np.__version__
    assert v["numba"] == numba.__version__
    assert v["scipy"] == scipy.__version__
    assert "stream" in v
    assert il.Scenario.model_validate(meta["scenario"]) == res.scenario
    assert [il.Structure.model_validate(s) for s in meta["structures"]] == _structures()
    json.dumps(meta)  # JSON-ready
    assert "seed=31" in repr(res)


# ------------------------------------------------------------------------------ exports


def _strict_json(text):
    def reject(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=reject)


def test_summary_exports(tmp_path, res, summary, comparison):
    summary.to_csv(tmp_path / "s.csv")
    with open(tmp_path / "s.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(res) * len(M.METRICS)
    assert set(rows[0]) == {"structure", "metric", "estimate", "se", "ci_low", "ci_high", "note"}
    first = rows[0]
    assert float(first["estimate"]) == summary[first["structure"]][first["metric"]].estimate
    text = summary.to_json(tmp_path / "s.json")
    assert (tmp_path / "s.json").read_text(encoding="utf-8") == text
    data = _strict_json(text)
    assert data["meta"]["seed"] == SEED and len(data["rows"]) == len(rows)
    comparison.to_csv(tmp_path / "c.csv")
    with open(tmp_path / "c.csv", newline="", encoding="utf-8") as fh:
        crow = next(csv.DictReader(fh))
    assert "z" in crow
    _strict_json(comparison.to_json())
    text = str(summary)
    for name in res:
        assert name in text
        assert name in str(comparison)
    assert "pure_loan" in str(comparison)
    has_pool = any(res[n].structure.risk_pool for n in res)
    for metric in M.METRICS:
        # a row that is n/a for every structure is left out of the printed table
        assert (metric in text) == (metric != "pool_shortfall" or has_pool), metric
    assert repr(summary) == text


def test_json_writes_nan_as_null():
    # One portfolio: no standard errors (NaN), and nobody defaults in 5 firms: lgd NaN.
    r = il.simulate(il.Scenario.default(), n_portfolios=1, portfolio_size=5, seed=2)
    s = r.summary(n_boot=10)
    assert any("2 portfolios" in note for note in s.notes)
    assert math.isnan(s["pure_loan"]["npv_per_principal"].se)
    data = _strict_json(s.to_json())
    se = {(row["structure"], row["metric"]): row["se"] for row in data["rows"]}
    assert se[("pure_loan", "npv_per_principal")] is None
    assert "note:" in str(s)


def test_comparison_with_only_the_baseline_exports(tmp_path):
    r = il.simulate(il.Scenario.default(), il.pure_loan(), n_portfolios=3, portfolio_size=5, seed=1)
    c = r.compare("pure_loan", n_boot=10)
    assert len(c) == 0
    c.to_csv(tmp_path / "c.csv")
    assert (tmp_path / "c.csv").exists()


def test_to_frame(res, summary):
    try:
        import pandas as pd
    except ImportError:  # an optional dependency: the error says what to install
        with pytest.raises(ImportError, match="pandas"):
            res.to_frame()
        with pytest.raises(ImportError, match="pandas"):
            summary.to_frame()
        return
    frame = res.to_frame()
    assert isinstance(frame, pd.DataFrame)
    assert len(frame) == len(res) * N_PORT * SIZE
    assert len(summary.to_frame()) == len(res) * len(M.METRICS)


# ------------------------------------------------------------------------------ metrics module


def test_value_at_risk_and_expected_shortfall_by_hand():
    x = np.array([7.0, 1.0, 10.0, 3.0, 5.0, 9.0, 2.0, 8.0, 4.0, 6.0])  # 1..10, shuffled
    assert M.value_at_risk(x, 0.9) == 9.0
    assert M.expected_shortfall(x, 0.9) == pytest.approx(10.0)
    assert M.value_at_risk(x, 0.85) == 9.0
    # quantile function over (0.85, 1): 9 on (0.85, 0.9], 10 on (0.9, 1)
    assert M.expected_shortfall(x, 0.85) == pytest.approx((9 * 0.05 + 10 * 0.1) / 0.15)
    assert M.value_at_risk(x, 0.5) == 5.0
    assert M.expected_shortfall(x, 0.5) == pytest.approx(8.0)
    assert M.expected_shortfall(x, 0.45) == pytest.approx((5 * 0.05 + 4.0) / 0.55)
    assert M.value_at_risk(x, 0.999) == 10.0
    assert M.expected_shortfall(x, 0.999) == pytest.approx(10.0)
    big = np.arange(1.0, 1001.0)[::-1]
    assert M.value_at_risk(big, 0.99) == 990.0
    assert M.expected_shortfall(big, 0.99) == pytest.approx(995.5)
    assert M.value_at_risk(big, 0.999) == 999.0
    assert M.expected_shortfall(big, 0.999) == pytest.approx(1000.0)
    ties = np.array([0.0, 0.0, 0.0, 1.0])
    assert M.value_at_risk(ties, 0.5) == 0.0
    assert M.expected_shortfall(ties, 0.5) == pytest.approx(0.5)


def test_make_estimate_and_influence_se():
    e = M.make_estimate(2.0, 0.5)
    assert e == M.Estimate(2.0, 0.5, 2.0 - M.Z95 * 0.5, 2.0 + M.Z95 * 0.5)
    u = np.array([1.0, -1.0, 2.0, -2.0])
    assert M.influence_se(u) == pytest.approx(np.std(u, ddof=1) / 2.0)
    assert math.isnan(M.influence_se(np.array([1.0])))
    assert math.isnan(M.influence_se(np.array([1.0, np.nan])))
