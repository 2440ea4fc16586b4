"""Sweeps, break-even searches and sensitivities on common random numbers."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from pydantic import ValidationError

import invlend as il
from invlend.sweep import set_param

KW = dict(n_portfolios=60, portfolio_size=40, seed=11)


@pytest.fixture(scope="module")
def scenario():
    return il.Scenario.default()


# ------------------------------------------------------------------------ parameter paths


def test_set_param_paths(scenario):
    st = il.default_structures()
    sc, new = set_param(scenario, st, "loan.rate", 0.07)
    assert sc is scenario and all(s.loan.rate == 0.07 for s in new)
    _, new = set_param(scenario, st, "warrant.coverage", 0.3)
    assert new[1].warrant.coverage == 0.3 and new[0].warrant is None and new[2].warrant is None
    _, new = set_param(scenario, st, "pure_loan.warrant.coverage", 0.2)
    assert new[0].warrant == il.Warrant(coverage=0.2) and new[1] is st[1]
    sc, _ = set_param(scenario, st, "stages.seed.default_hazard", 0.5)
    assert sc.stages[0].default_hazard == 0.5 and sc.stages[1] == scenario.stages[1]
    sc, _ = set_param(scenario, st, "stages.4.ipo_hazard", 0.2)
    assert sc.stages[4].ipo_hazard == 0.2
    sc, _ = set_param(scenario, st, "market.factor_loading", 0.5)
    assert sc.market.factor_loading == 0.5
    sc, _ = set_param(scenario, st, "horizon_years", 6.0)
    assert sc.horizon_years == 6.0


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("nope.rate", "neither a scenario field"),
        ("loan.nope", "unknown field 'loan.nope'"),
        ("stages.nope.drift", "no stage 'nope'"),
        ("stages.seed", "stages.<name>.<field>"),
        ("market", "not a number"),
        ("equity.equity_to_value", "no structure has a 'equity' component"),
        ("", "empty name"),
        ("loan..rate", "empty name"),
    ],
)
def test_bad_paths_name_the_problem(scenario, path, fragment):
    with pytest.raises(ValueError, match="param") as info:
        set_param(scenario, il.default_structures(), path, 0.1)
    assert fragment in str(info.value)


def test_out_of_bounds_value_names_the_field(scenario):
    with pytest.raises(ValidationError, match="factor_loading"):
        set_param(scenario, il.default_structures(), "market.factor_loading", 1.5)
    with pytest.raises(ValueError, match=r"param 'loan\.rate' = -0\.1"):
        il.sweep(scenario, None, "loan.rate", [0.05, -0.1], **KW)


# ---------------------------------------------------------------------------------- sweep


def test_sweep_points_equal_direct_runs(scenario):
    sw = il.sweep(scenario, None, "loan.rate", [0.03, 0.06], n_boot=0, **KW)
    assert sw.params == ("loan.rate",) and sw.points == [(0.03,), (0.06,)]
    direct = il.simulate(
        scenario,
        [
            s.model_copy(update={"loan": s.loan.model_copy(update={"rate": 0.06})})
            for s in il.default_structures()
        ],
        **KW,
    ).summary(n_boot=0)
    for n in direct:  # the sweep's second point is exactly the direct run
        assert sw.summaries[1][n]["npv_per_principal"] == direct[n]["npv_per_principal"]
    recs = sw.records()
    assert len(recs) == 2 * 3 * len(il.metrics.METRICS)
    assert set(recs[0]) == {"loan.rate", "structure", "metric", "estimate", "se", "ci_low",
                            "ci_high", "note"}  # fmt: skip


def test_sweep_is_paired_and_linear_in_the_rate(scenario):
    # NPV is linear in the loan rate on the same firms: equal steps give equal increments.
    sw = il.sweep(scenario, il.pure_loan(), "loan.rate", [0.03, 0.045, 0.06], n_boot=0, **KW)
    _, y, se = sw.curve("pure_loan", "npv_per_principal")
    np.testing.assert_allclose(np.diff(y)[0], np.diff(y)[1], rtol=1e-9)
    assert np.all(np.diff(y) > 0) and np.all(se > 0)


def test_two_parameter_grid(scenario):
    sw = il.sweep(scenario, il.warrant_loan(), ("warrant.coverage", "loan.rate"),
                  ([0.05, 0.1, 0.2], [0.03, 0.05]), n_boot=0, **KW)  # fmt: skip
    assert len(sw.points) == 6 and sw.values("loan.rate") == [0.03, 0.05]
    x, y, _ = sw.curve("warrant_loan", "npv_per_principal", **{"loan.rate": 0.05})
    np.testing.assert_array_equal(x, [0.05, 0.1, 0.2])
    assert np.all(np.diff(y) > 0)  # more coverage, more upside
    assert "warrant.coverage, loan.rate" in sw.table()


def test_sweep_needs_a_seed_and_values(scenario):
    with pytest.raises(ValueError, match="seed"):
        il.sweep(scenario, None, "loan.rate", [0.05], n_portfolios=5, portfolio_size=5)
    with pytest.raises(ValueError, match="values"):
        il.sweep(scenario, None, "loan.rate", [], **KW)
    with pytest.raises(ValueError, match="values"):
        il.sweep(scenario, None, "loan.rate", [0.05, math.nan], **KW)
    with pytest.raises(ValueError, match="metric"):
        il.sweep(scenario, None, "loan.rate", [0.05], n_boot=0, **KW).table("nope")


@pytest.mark.parametrize(
    ("run", "why"),
    [
        (lambda sc, **kw: il.sweep(sc, None, "loan.rate", [0.05], **kw),
         "a sweep needs a fixed seed so that its points are paired"),
        (lambda sc, **kw: il.breakeven(sc, il.pure_loan(), "loan.rate", target=0.0, **kw),
         "break-even needs a fixed seed so that evaluations are paired"),
        (lambda sc, **kw: il.sensitivity(sc, il.pure_loan(), ["loan.rate"], **kw),
         "sensitivity needs a fixed seed so that its runs are paired"),
    ],
    ids=["sweep", "breakeven", "sensitivity"],
)  # fmt: skip
def test_paired_runs_need_a_valid_fixed_seed(scenario, run, why):
    kw = dict(n_portfolios=5, portfolio_size=5)
    with pytest.raises(ValueError, match=f"^seed: {why}$"):
        run(scenario, **kw)
    with pytest.raises(ValueError, match=r"^seed: must be a non-negative integer, got -1$"):
        run(scenario, seed=-1, **kw)


def test_unknown_metric_lists_the_choices(scenario):
    choices = re.escape(str(list(il.metrics.METRICS)))
    sw = il.sweep(scenario, None, "loan.rate", [0.05], n_boot=0, **KW)
    with pytest.raises(ValueError, match=f"^metric: unknown 'nope'; choose from {choices}$"):
        sw.table("nope")
    with pytest.raises(ValueError, match=f"^metric: unknown 'nope'; choose from {choices}$"):
        il.breakeven(scenario, il.pure_loan(), "loan.rate", target=0.0, metric="nope", **KW)
    with pytest.raises(ValueError, match=f"^metric: unknown 1; choose from {choices}$"):
        il.sensitivity(scenario, il.pure_loan(), ["loan.rate"], metric=1, **KW)


def test_sweep_table_text(scenario):
    sw = il.sweep(scenario, [il.pure_loan()], "loan.rate", [0.04, 0.05], n_boot=0, **KW)
    lines = sw.table("pd").split("\n")
    assert lines[0] == "pd by loan.rate"
    assert lines[1].split() == ["loan.rate", "pure_loan"]
    assert set(lines[2]) == {"-"} and len(lines[2]) == len(lines[1])
    assert [line.split()[0] for line in lines[3:]] == ["0.04", "0.05"]
    assert all(len(line) == len(lines[1]) for line in lines[3:])  # numbers right-aligned
    assert str(sw) == sw.table("fair_value_per_principal")


def test_sweep_exports(scenario, tmp_path):
    pytest.importorskip("pandas")
    sw = il.sweep(scenario, None, "market.factor_loading", [0.2, 0.4], n_boot=0, **KW)
    sw.to_csv(tmp_path / "s.csv")
    assert (tmp_path / "s.csv").read_text().startswith("market.factor_loading,structure,metric")
    assert sw.to_frame().shape == (2 * 3 * len(il.metrics.METRICS), 8)


# ------------------------------------------------------------------------------ breakeven


def test_breakeven_target_matches_the_linear_solution(scenario):
    # The fair value is exactly linear in the rate on common random numbers: the root is explicit.
    kw = dict(n_portfolios=100, portfolio_size=40, seed=5)
    b = il.breakeven(scenario, il.pure_loan(), "loan.rate", target=0.0, bracket=(0.0, 0.2), **kw)
    lo, hi = (il.simulate(scenario, il.pure_loan(rate=r), **kw).summary(n_boot=0)["pure_loan"]
              ["fair_value_per_principal"].estimate for r in (0.0, 0.2))  # fmt: skip
    assert b.value == pytest.approx(-lo * 0.2 / (hi - lo), rel=1e-6)
    assert b.slope == pytest.approx((hi - lo) / 0.2, rel=1e-6)
    assert b.se > 0 and b.ci_low < b.value < b.ci_high and b.evaluations >= 4
    assert "reaches 0 at loan.rate" in str(b)


def test_breakeven_against_another_structure(scenario):
    kw = dict(n_portfolios=100, portfolio_size=40, seed=5)
    b = il.breakeven(scenario, il.pure_loan(), "loan.rate", against=il.warrant_loan(),
                     bracket=(0.0, 0.5), **kw)  # fmt: skip
    at = il.simulate(scenario, [il.pure_loan(rate=b.value), il.warrant_loan()], **kw)
    d = at.compare("warrant_loan", n_boot=0)["pure_loan"]["fair_value_per_principal"]
    assert abs(d.estimate) < 1e-6  # the gap closes at the root
    # delta method: the paired gap's SE at the root over the gap's slope there
    assert b.se == pytest.approx(d.se / abs(b.slope), rel=1e-6)


def test_breakeven_bad_input(scenario):
    kw = dict(n_portfolios=20, portfolio_size=20, seed=5)
    with pytest.raises(ValueError, match=r"bracket: .* same sign"):
        il.breakeven(scenario, il.pure_loan(), "loan.rate", target=0.0, bracket=(0.0, 0.01), **kw)
    with pytest.raises(ValueError, match="bracket"):
        il.breakeven(scenario, il.pure_loan(), "loan.rate", target=0.0, bracket=(0.2, 0.1), **kw)
    with pytest.raises(ValueError, match="target"):
        il.breakeven(scenario, il.pure_loan(), "loan.rate", bracket=(0.0, 0.1), **kw)
    with pytest.raises(ValueError, match="metric"):
        il.breakeven(scenario, il.pure_loan(), "loan.rate", target=0.1, metric="nope", **kw)
    with pytest.raises(ValueError, match="param"):
        il.breakeven(scenario, il.pure_loan(), "loan.nope", target=0.1, **kw)


# ---------------------------------------------------------------------------- sensitivity


def test_sensitivity_moves_each_parameter(scenario):
    sens = il.sensitivity(scenario, il.warrant_loan(), ["warrant.coverage", "loan.rate",
                          "stages.seed.default_hazard"], **KW)  # fmt: skip
    row = sens["warrant.coverage"]
    assert row["low_value"] == pytest.approx(0.08) and row["high_value"] == pytest.approx(0.12)
    assert row["low"] < row["base"] < row["high"]
    assert sens["loan.rate"]["low"] < sens["loan.rate"]["high"]
    with pytest.raises(ValueError, match="rel_change"):
        il.sensitivity(scenario, il.warrant_loan(), ["loan.rate"], rel_change=1.5, **KW)
