"""Every input gets a correct result or a clear error; saved results are never lost or corrupt.

The tables here cover the models, the plain arguments and every NaN's reason; three companion
files hold the tables of their own layer: ``test_store_hardening.py`` (crafted and damaged
result files), ``test_executor_hardening.py`` (executors that misbehave) and
``test_cli_hardening.py`` (the command line: interrupts, pipes, environment, limits).
"""

from __future__ import annotations

import copy
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import invlend as il
from commands import interruptible
from invlend import cli, engine

# ------------------------------------------------------------------ invalid inputs, tabled


def _scenario_data() -> dict:
    return il.Scenario.default().model_dump(exclude_none=True)


def _structure_data() -> dict:
    return il.warrant_loan().model_dump(exclude_none=True) | {
        "equity": {"equity_to_value": 0.03},
        "risk_share": {"covered_fraction": 0.5, "premium": 0.01},
    }


def _edit(base: dict, path: str, value) -> dict:
    data = copy.deepcopy(base)
    node = data
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[int(k)] if k.isdigit() else node[k]
    last = keys[-1]
    if value is _DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return data


_DELETE = object()
NAN, INF = math.nan, math.inf

#: (edit path, value, text the error must contain: the field, then the rule)
SCENARIO_CASES = [
    ("stages.0.volatility", -0.1, ("volatility", "greater than or equal to 0")),
    ("stages.0.drift", NAN, ("drift", "finite")),
    ("stages.1.initial_value", INF, ("initial_value", "finite")),
    ("stages.1.initial_value", 0.0, ("initial_value", "greater than or equal to 0.000001")),
    ("stages.0.weight", 1.5, ("weight", "less than or equal to 1")),
    ("stages.0.weight", 0.5, ("stages", "sum to 1")),
    ("stages.4.advance_hazard", 0.1, ("advance_hazard", "cannot advance")),
    ("stages.1.name", "seed", ("stages", "unique")),
    ("stages", [], ("stages", "at least 1")),
    ("stages.0.colour", "red", ("colour", "Extra inputs are not permitted")),
    ("horizon", 5.0, ("horizon", "Extra inputs are not permitted")),
    ("steps_per_year", "monthly", ("steps_per_year", "valid integer")),
    ("steps_per_year", 0, ("steps_per_year", "greater than or equal to 1")),
    ("steps_per_year", 12.5, ("steps_per_year", "integer")),
    ("horizon_years", 0.0, ("horizon_years", "greater than 0")),
    ("horizon_years", 1.05, ("horizon_years", "whole number")),
    ("market.factor_loading", 1.2, ("factor_loading", "less than or equal to 1")),
    ("market.discount_rate", NAN, ("discount_rate", "finite")),
    ("market.jump_rate", -1.0, ("jump_rate", "greater than or equal to 0")),
    ("market.jump_rate", 900.0, ("jump_rate", "at most 50 per step")),
    ("market.jump_vol", INF, ("jump_vol", "finite")),
    ("default_barrier", 1.0, ("default_barrier", "less than 1")),
    ("value_dispersion", -0.1, ("value_dispersion", "greater than or equal to 0")),
    ("ipo_multiple", 0.0, ("ipo_multiple", "greater than 0")),
    ("stages.2.default_hazard", 1e6, ("default_hazard", "less than or equal to 1000")),
    ("stages.2.round_size", -0.5, ("round_size", "greater than or equal to 0")),
    ("stages.0.name", "seed stage", ("stage name", "letters, digits")),
    (
        "stages.0.volatility",
        5.0,
        ("horizon_years", "overflow"),
        {"horizon_years": 100.0, "stages.0.drift": 2.0},
    ),
    ("stages", {"name": "x"}, ("stages", "valid list")),
    ("market", "calm", ("market", "valid dictionary")),
    ("quality_hazard", "high", ("quality_hazard", "valid number")),
    # strict numbers: a string or a bool is not a number, whatever pydantic's lax mode says
    ("horizon_years", "5", ("horizon_years", "valid number, not a string")),
    ("steps_per_year", True, ("steps_per_year", "valid integer, not a bool")),
    ("stages.0.drift", True, ("drift", "valid number, not a bool")),
    ("market.factor_loading", "0.35", ("factor_loading", "valid number")),
    # names match in full: "seed\n" would pass a regex ending in $
    ("stages.0.name", "seed\n", ("stage name", "letters, digits")),
    # every duration is at least one step
    ("horizon_years", 1e-11, ("horizon_years", "less than one step")),
    # a firm value that underflows lends a principal of 0
    ("stages.0.initial_value", 5e-324, ("initial_value", "greater than or equal to 0.000001")),
]
STRUCTURE_CASES = [
    ("loan.loan_to_value", 0.0, ("loan_to_value", "greater than 0")),
    ("loan.rate", -0.01, ("rate", "greater than or equal to 0")),
    ("loan.recovery_rate", 1.5, ("recovery_rate", "less than or equal to 1")),
    ("loan.upfront_fee", NAN, ("upfront_fee", "finite")),
    ("loan.interest_only_years", 4.0, ("interest_only_years", "cannot exceed maturity")),
    ("loan.maturity_years", 0.0, ("maturity_years", "greater than 0")),
    ("warrant.coverage", -1.0, ("coverage", "greater than or equal to 0")),
    ("warrant.share_of_gain", 2.0, ("share_of_gain", "less than or equal to 1")),
    ("warrant.expiry_years", 0.0, ("expiry_years", "greater than 0")),
    ("equity.equity_to_value", 1.5, ("equity_to_value", "less than or equal to 1")),
    ("screening.acceptance_rate", 0.0, ("acceptance_rate", "greater than 0")),
    ("screening.signal_noise", -1.0, ("signal_noise", "greater than or equal to 0")),
    ("risk_share.covered_fraction", 1.2, ("covered_fraction", "less than or equal to 1")),
    ("risk_share.premium", -0.01, ("premium", "greater than or equal to 0")),
    ("linkage.default_hazard_multiplier", -1.0, ("default_hazard_multiplier", "greater than")),
    ("warant", {"coverage": 0.1}, ("warant", "Extra inputs are not permitted")),
    ("name", "my loan", ("structure name", "letters, digits")),
    ("loan", _DELETE, ("loan", "Field required")),
    ("loan.rate", "4.5%", ("rate", "valid number")),
    ("loan.rate", True, ("rate", "valid number, not a bool")),
    ("warrant.expiry_years", "5", ("expiry_years", "valid number, not a string")),
    ("name", "plain\n", ("structure name", "letters, digits")),
]


@pytest.mark.parametrize("case", SCENARIO_CASES, ids=lambda c: f"{c[0]}={c[1]!r}"[:40])
def test_invalid_scenario_is_rejected_naming_field_and_rule(case, tmp_path, capsys):
    path, value, expect, *more = case
    data = _edit(_scenario_data(), path, value)
    for p, v in (more[0] if more else {}).items():
        data = _edit(data, p, v)
    with pytest.raises(ValidationError) as info:
        il.Scenario.model_validate(data)
    for text in expect:
        assert text in str(info.value), (text, str(info.value))
    # The command line: one line naming the field, exit code 2, nothing written.
    f = tmp_path / "bad.toml"
    f.write_text(tomli_w.dumps(data), encoding="utf-8")
    assert cli.main(["scenario", "check", str(f)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("invlend: error:") and expect[0] in err[0]


@pytest.mark.parametrize(("path", "value", "expect"), STRUCTURE_CASES, ids=lambda x: str(x)[:40])
def test_invalid_structure_is_rejected_naming_field_and_rule(path, value, expect, tmp_path,
                                                             capsys):  # fmt: skip
    data = _edit(_structure_data(), path, value)
    with pytest.raises(ValidationError) as info:
        il.Structure.model_validate(data)
    for text in expect:
        assert text in str(info.value), (text, str(info.value))
    f = tmp_path / "bad.toml"
    f.write_text(tomli_w.dumps({"structure": [data]}), encoding="utf-8")
    out = tmp_path / "never"
    assert cli.main(["compare", "--structures", str(f), "--out", str(out)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("invlend: error:") and expect[0] in err[0]
    assert not out.exists()


RUN_CASES = [
    (dict(structures=[il.pure_loan(maturity_years=6.0)]), "longer than the scenario horizon"),
    (dict(structures=[il.pure_loan(maturity_years=1 / 7)]), "whole number of steps"),
    (dict(structures=[il.pure_loan(), il.pure_loan()]), "must be unique"),
    (dict(structures=[]), "at least one structure"),
    (dict(n_portfolios=0), "n_portfolios: must be >= 1"),
    (dict(portfolio_size="10"), "portfolio_size: expected an integer"),
    (dict(n_portfolios=10**8, portfolio_size=10**3), "exceeds the limit"),
    (dict(n_portfolios=10**6, portfolio_size=10**3), "keep='aggregates'"),
    (dict(backend="gpu"), "choices are"),
    (dict(keep="some"), "keep: unknown"),
    (dict(seed=-1), "seed: must be a non-negative"),
    (dict(sample_paths=10**9), "sample_paths"),
    (
        dict(structures=[il.pure_loan(maturity_years=5e-11)]),
        "pure_loan.loan.maturity_years: 5e-11 y is shorter than one step",
    ),
    (
        dict(structures=[il.warrant_loan(warrant=il.Warrant(expiry_years=8.0))]),
        "warrant_loan.warrant.expiry_years: the warrant (8 y) cannot outlive the scenario",
    ),
    (
        dict(structures=[il.warrant_loan(warrant=il.Warrant(expiry_years=1e-11))]),
        "warrant_loan.warrant.expiry_years: 1e-11 y is shorter than one step",
    ),
]


@pytest.mark.parametrize(("kw", "fragment"), RUN_CASES, ids=lambda x: str(x)[:40])
def test_invalid_run_is_refused_before_any_work(kw, fragment, monkeypatch):
    def never(*a, **k):
        raise AssertionError("simulation started")

    monkeypatch.setattr(engine, "_run_range", never)
    monkeypatch.setattr(engine, "_available_bytes", lambda: 24 * 2**30)
    args = dict(n_portfolios=4, portfolio_size=5, seed=1) | kw
    structures = args.pop("structures", None)
    with pytest.raises((ValueError, TypeError)) as info:
        il.simulate(il.Scenario.default(), structures, **args)
    assert fragment in str(info.value)


def test_names_differing_by_a_newline_cannot_coexist():
    with pytest.raises(ValidationError, match="stage name"):
        il.Scenario(stages=[il.Stage(name="a", weight=0.5), {"name": "a\n", "weight": 0.5}])


def _argument_cases():
    """(id, call, exception, fragment): plain arguments of the public functions."""
    sc = il.Scenario.default()
    res = il.simulate(sc, n_portfolios=4, portfolio_size=5, seed=1)
    sweep_kw = dict(n_portfolios=2, portfolio_size=2, seed=1, n_boot=0)
    be_kw = dict(n_portfolios=2, portfolio_size=2, seed=1)
    pure = il.pure_loan()
    return [
        ("summary hurdle=True", lambda: res.summary(hurdle=True), TypeError, "hurdle"),
        ("summary hurdle='0.1'", lambda: res.summary(hurdle="0.1"), TypeError, "hurdle"),
        ("summary n_boot=2.5", lambda: res.summary(n_boot=2.5), TypeError, "n_boot"),
        ("summary n_boot=-5", lambda: res.summary(n_boot=-5), ValueError, "n_boot: must be >= 0"),
        ("compare n_boot=True", lambda: res.compare(n_boot=True), TypeError, "n_boot"),
        ("summary sales=nan", lambda: res.summary(sales_eur_m=math.nan), ValueError,
         "sales_eur_m: must be a finite"),
        ("sweep values=[True]", lambda: il.sweep(sc, None, "loan.rate", [True], **sweep_kw),
         TypeError, "values[0]: expected a number, got bool"),
        ("sweep values='abc'", lambda: il.sweep(sc, None, "loan.rate", "abc", **sweep_kw),
         TypeError, "values: expected a sequence of numbers"),
        ("sweep 3e6 values", lambda: il.sweep(sc, None, "loan.rate", np.linspace(0, 0.1, 3 * 10**6),
                                              **sweep_kw),
         ValueError, "values: at most 1000 values"),
        ("sweep 200 x 200 grid", lambda: il.sweep(
            sc, None, ["loan.rate", "warrant.coverage"],
            [np.linspace(0, 0.1, 200), np.linspace(0, 0.2, 200)], **sweep_kw),
         ValueError, "200 x 200 points exceed the limit"),
        ("breakeven target=nan", lambda: il.breakeven(sc, pure, "loan.rate", target=math.nan,
                                                      **be_kw),
         ValueError, "target: must be a finite number"),
        ("breakeven bracket=(0,)", lambda: il.breakeven(sc, pure, "loan.rate", target=0.0,
                                                        bracket=(0,), **be_kw),
         ValueError, "bracket: give two numbers"),
        ("breakeven bracket=(0,'1')", lambda: il.breakeven(sc, pure, "loan.rate", target=0.0,
                                                           bracket=(0, "1"), **be_kw),
         TypeError, "bracket[1]: expected a number"),
        ("cohort nodes=10**7", lambda: il.cohort(sc, nodes=10**7), ValueError,
         "nodes (gauss-hermite rule): must be <= 300"),
        ("cohort horizon=True", lambda: il.cohort(sc, horizon_years=True), TypeError,
         "horizon_years: expected a number"),
        ("cohort horizon=inf", lambda: il.cohort(sc, horizon_years=math.inf), ValueError,
         "horizon_years: must be a finite number"),
    ]  # fmt: skip


ARGUMENT_CASES = _argument_cases()


@pytest.mark.parametrize("case", ARGUMENT_CASES, ids=[c[0] for c in ARGUMENT_CASES])
def test_invalid_argument_is_refused_naming_it(case, monkeypatch):
    _, call, kind, fragment = case

    def never(*a, **k):
        raise AssertionError("simulation started")

    monkeypatch.setattr(engine, "_run_range", never)
    with pytest.raises(kind) as info:
        call()
    assert fragment in str(info.value), str(info.value)


def test_numpy_scalars_are_numbers_everywhere():
    sc = il.Scenario.default()
    res = il.simulate(sc, n_portfolios=4, portfolio_size=5, seed=np.int64(1))
    a = res.summary(n_boot=np.int64(3), hurdle=np.float32(0.125))["pure_loan"]["eva"]
    b = res.summary(n_boot=3, hurdle=0.125)["pure_loan"]["eva"]
    assert a == b
    assert (
        il.cohort(sc, horizon_years=np.float32(2)).default
        == il.cohort(sc, horizon_years=2.0).default
    )
    stage = il.Stage(name="x", drift=np.float64(0.1), volatility=np.float32(0.5))
    assert type(stage.drift) is float and stage.volatility == 0.5
    assert il.Scenario(stages=[stage], steps_per_year=np.int64(4)).steps_per_year == 4


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a = " + "[" * 3000 + "]" * 3000, "nested deeper"),
        ("a = " + "[" * 40 + "]" * 40, "nested deeper than 32 levels"),
        ("# padding\n" * 200_000, "larger than 1024 KiB"),
    ],
    ids=["3000 deep", "40 deep", "2 MB"],
)
def test_toml_beyond_its_limits_is_refused_naming_the_file(text, fragment, tmp_path):
    f = tmp_path / "big.toml"
    f.write_text(text, encoding="utf-8")
    for read in (il.Scenario.from_toml, il.Structure.from_toml):
        with pytest.raises(ValueError, match=r"big\.toml") as info:
            read(f)
        assert fragment in str(info.value)


def test_at_least_forty_invalid_inputs_are_tabled():
    n = len(SCENARIO_CASES) + len(STRUCTURE_CASES) + len(RUN_CASES) + len(ARGUMENT_CASES)
    assert n >= 80


# --------------------------------------------------------- every NaN says why


def _nan_cells(summary) -> list[tuple[str, str, object]]:
    return [(n, m, e) for n in summary for m, e in summary[n].items()
            if not (math.isfinite(e.estimate) and math.isfinite(e.se))]  # fmt: skip


NAN_CASES = {
    # full risk sharing: no net loss, so no economic capital to divide by
    "raroc with capital 0": (
        dict(structures=[il.pure_loan(risk_share=il.RiskShare(covered_fraction=1.0))]),
        dict(n_boot=20), "pure_loan", "raroc", "economic capital is 0"),
    "tail SE with n_boot=0": (dict(), dict(n_boot=0), "pure_loan", "loss_var_99", "n_boot=0"),
    "one portfolio": (dict(n_portfolios=1), dict(n_boot=10), "pure_loan", "pd",
                      "at least 2 portfolios"),
    "nobody accepted": (
        dict(structures=[il.pure_loan(screening=il.Screening(acceptance_rate=1e-300))]),
        dict(n_boot=10), "pure_loan", "npv_per_principal", "nobody was accepted"),
    "no default, no LGD": (dict(structures=[il.pure_loan()], portfolio_size=2, n_portfolios=2),
                           dict(n_boot=10), "pure_loan", "lgd", "no loan defaulted"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(NAN_CASES))
def test_every_nan_carries_its_reason_in_the_object_and_the_table(name):
    run_kw, summary_kw, structure, metric, reason = NAN_CASES[name]
    run_kw = dict(n_portfolios=30, portfolio_size=10, seed=4) | run_kw
    structures = run_kw.pop("structures", None)
    res = il.simulate(il.Scenario.default(), structures, **run_kw)
    s = res.summary(**summary_kw)
    assert reason in s[structure][metric].note, s[structure][metric]
    cells = _nan_cells(s)
    assert cells, "the case must produce a NaN"
    text = str(s)
    for n, m, e in cells:
        assert e.note, (n, m, e)
        if m != "pool_shortfall":  # the one row left out when it does not apply
            row = next(line for line in text.splitlines() if line.startswith(m + " "))
            assert "n/a" in row and "[" in row, row
    marks = [line for line in text.splitlines() if line.startswith("[")]
    assert any(reason in line for line in marks), text
    records = s.records()
    assert all(r["note"] for r in records if not math.isfinite(r["se"]))
    if len(res) > 1 or structure != "pure_loan":
        return
    c = il.simulate(il.Scenario.default(), [il.pure_loan(name="base"), res.structures[0]],
                    **run_kw).compare(baseline="base", **summary_kw)  # fmt: skip
    for m, d in c[structure].items():
        if not (math.isfinite(d.estimate) and math.isfinite(d.se)):
            assert d.note, (m, d)


def test_a_report_is_written_when_nobody_is_accepted(tmp_path, capsys):
    nobody = il.pure_loan(name="nobody", screening=il.Screening(acceptance_rate=1e-300))
    f = tmp_path / "s.toml"
    f.write_text(tomli_w.dumps({"structure": [nobody.model_dump(exclude_none=True)]}))
    out = tmp_path / "report"
    code = cli.main(["compare", "--structures", str(f), "--portfolios", "20", "--size", "10",
                     "--bootstrap", "10", "--out", str(out)])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    assert "nobody was accepted" in printed
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "nobody was accepted" in page
    assert (out / "npv_distribution.png").stat().st_size > 0


# ------------------------------------------------------- extreme but valid parameters


def _extreme(**fields) -> il.Scenario:
    stage = dict(name="x", initial_value=100.0, drift=0.1, volatility=0.5, default_hazard=0.1,
                 ipo_hazard=0.05, ma_hazard=0.05)  # fmt: skip
    stage |= fields.pop("stage", {})
    base = dict(horizon_years=3.0, steps_per_year=12) | fields
    return il.Scenario(stages=[il.Stage(**stage)], **base)


EXTREMES = {
    "volatility 3": (_extreme(stage=dict(volatility=3.0)), {}),
    "hazards of 50 a year": (
        _extreme(stage=dict(default_hazard=50.0, ipo_hazard=50.0, ma_hazard=50.0)), {}),
    "365 steps a year": (
        _extreme(steps_per_year=365, horizon_years=1.0),
        dict(maturity_years=1.0, interest_only_years=None),
    ),
    "50-year horizon": (_extreme(horizon_years=50.0), {}),
    "barrier at 0.99": (_extreme(default_barrier=0.99), {}),
    "loan-to-value 0.99": (_extreme(), dict(loan_to_value=0.99)),
    "zero volatility": (_extreme(stage=dict(volatility=0.0)), {}),
    "volatility 3 for 50 years": (_extreme(stage=dict(volatility=3.0), horizon_years=50.0), {}),
    "jumps of 50 a step": (
        _extreme(market=il.Market(jump_rate=600.0, jump_mean=-0.05, jump_vol=0.2)), {}),
}  # fmt: skip


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
@pytest.mark.parametrize("name", list(EXTREMES))
def test_extreme_parameters_give_finite_results(name, backend):
    sc, loan = EXTREMES[name]
    warrant = il.Warrant(expiry_years=sc.horizon_years)  # a warrant may not outlive the run
    structures = [
        il.pure_loan(**({"maturity_years": 3.0} | loan)),
        il.warrant_loan(warrant=warrant, **loan),
        il.vc_linked(equity=il.Equity(), risk_share=il.RiskShare(), **loan),
    ]
    res = il.simulate(sc, structures, n_portfolios=12, portfolio_size=25, seed=9, backend=backend)
    for r in res.values():
        ok = r.accepted
        assert np.all(np.isfinite(r.npv[ok])) and np.all(np.isnan(r.npv[~ok]))
        for a in (r.principal, r.credit_loss, r.upside, r.outcomes.value, r.aggregates):
            assert np.all(np.isfinite(a))
        assert np.all(r.upside >= 0) and np.all(r.credit_loss >= 0)
        assert np.all((r.portfolio_loss_rate >= 0) & (r.portfolio_loss_rate <= 1))
    s = res.summary(n_boot=20)
    for n in s:
        for m in ("npv_per_principal", "pd", "expected_loss", "loss_var_99", "acceptance_rate"):
            assert math.isfinite(s[n][m].estimate), (n, m)
        for m in ("pd", "acceptance_rate", "prob_negative_npv"):
            assert 0.0 <= s[n][m].estimate <= 1.0


# ------------------------------------------------------------ properties (hypothesis)

_params = st.fixed_dictionaries(
    {
        "volatility": st.floats(0.0, 3.0),
        "drift": st.floats(-1.0, 1.0),
        "default_hazard": st.floats(0.0, 20.0),
        "ipo_hazard": st.floats(0.0, 5.0),
        "ma_hazard": st.floats(0.0, 5.0),
        "steps_per_year": st.sampled_from([1, 4, 12, 52]),
        "horizon_years": st.sampled_from([1.0, 2.0, 5.0]),
        "default_barrier": st.floats(0.0, 0.95),
        "factor_loading": st.floats(0.0, 1.0),
        "loan_to_value": st.floats(0.01, 0.99),
        "recovery_rate": st.floats(0.0, 1.0),
        "coverage": st.floats(0.0, 0.5),
        "equity": st.floats(0.0, 0.2),
        "seed": st.integers(0, 2**32),
    }
)


def _property_run(p, collateral=0.0, hazard_factor=1.0):
    stage = il.Stage(name="x", drift=p["drift"], volatility=p["volatility"],
                     default_hazard=p["default_hazard"] * hazard_factor,
                     ipo_hazard=p["ipo_hazard"], ma_hazard=p["ma_hazard"])  # fmt: skip
    sc = il.Scenario(stages=[stage], horizon_years=p["horizon_years"],
                     steps_per_year=p["steps_per_year"], default_barrier=p["default_barrier"],
                     market=il.Market(factor_loading=p["factor_loading"]))  # fmt: skip
    loan = il.Loan(loan_to_value=p["loan_to_value"], recovery_rate=p["recovery_rate"],
                   maturity_years=1.0, collateral=collateral)  # fmt: skip
    structures = [
        il.Structure(name="pure", loan=loan),
        il.Structure(
            name="linked",
            loan=loan,
            warrant=il.Warrant(coverage=p["coverage"], expiry_years=p["horizon_years"]),
            equity=il.Equity(equity_to_value=p["equity"]),
        ),
    ]
    return il.simulate(sc, structures, n_portfolios=20, portfolio_size=20, seed=p["seed"])


_SETTINGS = settings(max_examples=25, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.too_slow])  # fmt: skip


@_SETTINGS
@given(_params)
def test_property_outputs_are_finite_and_bounded(p):
    res = _property_run(p)
    s = res.summary(n_boot=0)
    for n, r in res.items():
        assert np.all(np.isfinite(r.npv[r.accepted]))
        assert np.all(r.upside >= 0), "warrant and equity values are never negative"
        assert np.all(r.credit_loss >= 0) and np.all(r.credit_loss <= r.principal + 1e-9)
        for m in ("pd", "acceptance_rate", "prob_negative_npv"):
            assert 0.0 <= s[n][m].estimate <= 1.0


@_SETTINGS
@given(_params, st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_property_more_collateral_never_raises_the_loss(p, c1, c2):
    lo, hi = sorted((c1, c2))
    a = _property_run(p, collateral=lo)["pure"]
    b = _property_run(p, collateral=hi)["pure"]
    # collateral does not touch the firms, so the comparison is firm by firm
    assert np.all(b.credit_loss <= a.credit_loss + 1e-12)


@_SETTINGS
@given(_params)
def test_property_higher_default_hazard_never_raises_pure_loan_npv(p):
    # When default is the only event and recovers nothing, a higher hazard can only bring a
    # firm's default forward (the event uniforms are common), so every loan's NPV falls or
    # stays. With exits or recoveries it need not, firm by firm or even on average over a
    # finite sample: in this model a default liquidates at the firm's current value, which
    # can pre-empt a larger loss at maturity (see docs/model.md, known limitations).
    p = p | {"default_hazard": max(p["default_hazard"], 0.05), "ipo_hazard": 0.0,
             "ma_hazard": 0.0, "recovery_rate": 0.0}  # fmt: skip
    base = _property_run(p)["pure"]
    worse = _property_run(p, hazard_factor=3.0)["pure"]
    ok = base.accepted
    assert np.all(worse.npv[ok] <= base.npv[ok] + 1e-9)
    assert worse.aggregates[:, 2].sum() <= base.aggregates[:, 2].sum() + 1e-9


# ---------------------------------------------------------------------- saved results


@pytest.fixture(scope="module")
def saved_pair(tmp_path_factory):
    res = il.simulate(il.Scenario.default(), n_portfolios=6, portfolio_size=9, seed=2,
                      sample_paths=12)  # fmt: skip
    path = tmp_path_factory.mktemp("store") / "run.npz"
    res.save(path)
    return res, path


def test_save_load_round_trips_every_array_and_input(saved_pair):
    res, path = saved_pair
    back = il.load(path)
    assert set(back._arrays) == set(res._arrays)
    for k, v in res._arrays.items():
        assert back._arrays[k].dtype == v.dtype
        np.testing.assert_array_equal(back._arrays[k], v, err_msg=k)
    assert back.meta == res.meta and back.structures == res.structures
    assert str(back.summary(n_boot=30)) == str(res.summary(n_boot=30))
    for n in res:
        assert back[n].outcomes.time.tolist() == res[n].outcomes.time.tolist()


def test_save_load_aggregates_only(tmp_path):
    res = il.simulate(il.Scenario.default(), n_portfolios=5, portfolio_size=4, seed=2,
                      keep="aggregates")  # fmt: skip
    res.save(tmp_path / "a.npz")
    back = il.load(tmp_path / "a.npz")
    assert back.keep == "aggregates" and back["pure_loan"].npv is None
    np.testing.assert_array_equal(back["pure_loan"].aggregates, res["pure_loan"].aggregates)


def test_truncated_file_is_refused(saved_pair, tmp_path):
    _, path = saved_pair
    data = path.read_bytes()
    bad = tmp_path / "cut.npz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable invlend result"):
        il.load(bad)


def test_altered_array_is_refused_by_the_checksum(saved_pair, tmp_path):
    _, path = saved_pair
    with np.load(path, allow_pickle=False) as data:
        files = {k: data[k] for k in data.files}
    npv = files["arr/s0.npv"].copy()
    npv.flat[np.flatnonzero(np.isfinite(npv))[0]] += 1.0  # an accepted loan's NPV
    files["arr/s0.npv"] = npv
    bad = tmp_path / "altered.npz"
    np.savez(bad, **files)
    with pytest.raises(ValueError, match="checksum mismatch"):
        il.load(bad)
    with pytest.raises(ValueError, match="no such file"):
        il.load(tmp_path / "missing.npz")
    other = tmp_path / "other.npz"
    np.savez(other, x=np.arange(3))
    with pytest.raises(ValueError, match="not an invlend result"):
        il.load(other)


def test_interrupted_save_leaves_the_old_file_and_no_temporary(saved_pair, tmp_path,
                                                               monkeypatch):  # fmt: skip
    res, _ = saved_pair
    path = tmp_path / "run.npz"
    res.save(path)
    before = path.read_bytes()

    def crash(fh, **arrays):
        fh.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", crash)
    with pytest.raises(KeyboardInterrupt):
        res.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["run.npz"]


# --------------------------------------------------------------------------- Ctrl-C


def test_ctrl_c_stops_the_command_cleanly(tmp_path):
    out = tmp_path / "report"
    proc = subprocess.Popen(
        [sys.executable, "-m", "invlend.cli", "compare", "--portfolios", "60000", "--size",
         "100", "--progress", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=interruptible,
    )  # fmt: skip
    # Interrupt once the simulation has started: its progress bar is on standard error.
    seen = b""
    deadline = time.monotonic() + 120
    while b"simulating" not in seen and time.monotonic() < deadline:
        chunk = proc.stderr.read1(256)
        if not chunk:
            break
        seen += chunk
    assert b"simulating" in seen, seen
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=120)
    stderr = (seen + rest).decode()
    assert proc.returncode == 130, (proc.returncode, stderr)
    assert stderr.strip().splitlines()[-1].endswith("invlend: interrupted")
    assert "Traceback" not in stderr
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir()], "no partial report"
