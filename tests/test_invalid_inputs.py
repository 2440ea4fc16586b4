"""Interface tier: invalid inputs are refused with one clear error, and every NaN says why.

Tables of rejected inputs -- scenarios and structures (naming the field and the rule, in
Python and on the command line), runs refused before any work, plain arguments of the public
functions, TOML files beyond their limits -- and a count that keeps the tables large; then
every NaN of a summary, which must carry its reason in the object, the table and the report.
Companion files hold the tables of their own layer: ``test_store_hardening.py`` (crafted and
damaged result files), ``test_executor_hardening.py`` (executors that misbehave) and
``test_cli_hardening.py`` (the command line: interrupts, pipes, environment, limits).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import tomli_w
from pydantic import ValidationError

import invlend as il
from invlend import cli, engine
from invlend._sim import layout

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
    ("stages.0.colour", "red", ("colour", "unknown field")),
    ("horizon", 5.0, ("horizon", "did you mean horizon_years?")),
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
    ("warant", {"coverage": 0.1}, ("warant", "did you mean warrant?")),
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
        "structure 'pure_loan': loan.maturity_years: 5e-11 y is shorter than one step",
    ),
    (dict(measures="risk_neutral"), "measures: the real-world measure is always simulated"),
    (
        dict(structures=[il.warrant_loan(warrant=il.Warrant(expiry_years=1e-11))]),
        "structure 'warrant_loan': warrant.expiry_years: 1e-11 y is shorter than one step",
    ),
]


@pytest.mark.parametrize(("kw", "fragment"), RUN_CASES, ids=lambda x: str(x)[:40])
def test_invalid_run_is_refused_before_any_work(kw, fragment, monkeypatch):
    def never(*a, **k):
        raise AssertionError("simulation started")

    monkeypatch.setattr(engine, "_run_range", never)
    monkeypatch.setattr(layout, "available_bytes", lambda: 24 * 2**30)
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
    v1 = sc.model_copy(update={"hazard_value_elasticity": 0.0, "runway_hazard_multiplier": 1.0})
    assert (
        il.cohort(v1, horizon_years=np.float32(2)).default
        == il.cohort(v1, horizon_years=2.0).default
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
    # one portfolio: no value shortfall below the mean, so no economic capital to divide by
    "raroc with capital 0": (
        dict(n_portfolios=1), dict(n_boot=20), "pure_loan", "raroc", "economic capital is 0"),
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
