"""Validation of the input models and of simulate()'s arguments; TOML input/output; presets."""

from __future__ import annotations

import ast
import math
import tomllib
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

import invlend as il
from invlend.engine import _cuda_problem

STAGE = dict(name="s", weight=1.0, initial_value=10.0, drift=0.1, volatility=0.2)


def _raises_naming(field: str, make, exc=ValidationError):
    with pytest.raises(exc) as info:
        make()
    assert field in str(info.value), f"{field!r} not named in: {info.value}"
    return info.value


def _small_scenario(**fields) -> il.Scenario:
    base = dict(stages=[il.Stage(**STAGE)], horizon_years=3.0, steps_per_year=12)
    base.update(fields)
    return il.Scenario(**base)


# ------------------------------------------------------------------------------ models


@pytest.mark.parametrize(
    ("model", "kwargs", "field"),
    [
        # negative numbers
        (il.Stage, {**STAGE, "volatility": -0.1}, "volatility"),
        (il.Stage, {**STAGE, "initial_value": -1.0}, "initial_value"),
        (il.Stage, {**STAGE, "initial_value": 0.0}, "initial_value"),
        (il.Stage, {**STAGE, "default_hazard": -0.01}, "default_hazard"),
        (il.Stage, {**STAGE, "ipo_hazard": -0.01}, "ipo_hazard"),
        (il.Stage, {**STAGE, "ma_hazard": -0.01}, "ma_hazard"),
        (il.Stage, {**STAGE, "advance_hazard": -0.01}, "advance_hazard"),
        (il.Stage, {**STAGE, "round_size": -0.5}, "round_size"),
        (il.Market, {"jump_vol": -0.1}, "jump_vol"),
        (il.Market, {"jump_rate": -1.0}, "jump_rate"),
        (il.Loan, {"loan_to_value": -0.2}, "loan_to_value"),
        (il.Loan, {"loan_to_value": 0.2, "rate": -0.01}, "rate"),
        (il.Loan, {"loan_to_value": 0.2, "maturity_years": -1.0}, "maturity_years"),
        (il.Loan, {"loan_to_value": 0.2, "interest_only_years": -1.0}, "interest_only_years"),
        (il.Loan, {"loan_to_value": 0.2, "collateral": -0.1}, "collateral"),
        (il.Warrant, {"coverage": -0.1}, "coverage"),
        (il.Warrant, {"expiry_years": 0.0}, "expiry_years"),
        (il.Equity, {"equity_to_value": -0.1}, "equity_to_value"),
        (il.Linkage, {"default_hazard_multiplier": -1.0}, "default_hazard_multiplier"),
        (il.Linkage, {"exit_hazard_multiplier": -1.0}, "exit_hazard_multiplier"),
        (il.Screening, {"signal_noise": -1.0}, "signal_noise"),
        (il.Screening, {"acceptance_rate": 0.0}, "acceptance_rate"),
        (il.RiskShare, {"premium": -0.01}, "premium"),
        # NaN and infinities
        (il.Stage, {**STAGE, "drift": math.nan}, "drift"),
        (il.Stage, {**STAGE, "initial_value": math.nan}, "initial_value"),
        (il.Stage, {**STAGE, "initial_value": math.inf}, "initial_value"),
        (il.Stage, {**STAGE, "volatility": math.inf}, "volatility"),
        (il.Stage, {**STAGE, "default_hazard": math.inf}, "default_hazard"),
        (il.Stage, {**STAGE, "weight": math.nan}, "weight"),
        (il.Market, {"discount_rate": math.nan}, "discount_rate"),
        (il.Market, {"jump_mean": -math.inf}, "jump_mean"),
        (il.Loan, {"loan_to_value": math.nan}, "loan_to_value"),
        (il.Loan, {"loan_to_value": 0.2, "rate": math.inf}, "rate"),
        (il.Loan, {"loan_to_value": 0.2, "upfront_fee": math.nan}, "upfront_fee"),
        (il.Warrant, {"share_of_gain": math.nan}, "share_of_gain"),
        (il.Equity, {"equity_to_value": math.inf}, "equity_to_value"),
        (il.RiskShare, {"premium": math.nan}, "premium"),
        (il.Screening, {"cost": math.nan}, "cost"),
        # probabilities and fractions above 1
        (il.Stage, {**STAGE, "weight": 1.5}, "weight"),
        (il.Market, {"factor_loading": 1.2}, "factor_loading"),
        (il.Loan, {"loan_to_value": 0.2, "recovery_rate": 1.2}, "recovery_rate"),
        (il.Loan, {"loan_to_value": 0.2, "upfront_fee": 1.5}, "upfront_fee"),
        (il.Warrant, {"share_of_gain": 2.0}, "share_of_gain"),
        (il.Screening, {"acceptance_rate": 1.01}, "acceptance_rate"),
        (il.Screening, {"cost": 1.5}, "cost"),
        (il.RiskShare, {"covered_fraction": 1.1}, "covered_fraction"),
        # unknown fields
        (il.Stage, {**STAGE, "colour": "red"}, "colour"),
        (il.Market, {"discount": 0.02}, "discount"),
        (il.Loan, {"loan_to_value": 0.2, "ratee": 0.05}, "ratee"),
        (il.Warrant, {"strike": 1.0}, "strike"),
        (il.Equity, {"stake": 0.1}, "stake"),
        (il.Linkage, {"monitoring": 1.0}, "monitoring"),
        (il.Screening, {"noise": 1.0}, "noise"),
        (il.RiskShare, {"cover": 0.5}, "cover"),
        # wrong types
        (il.Stage, {**STAGE, "name": 3}, "name"),
        (il.Stage, {**STAGE, "weight": "abc"}, "weight"),
        (il.Stage, {**STAGE, "drift": [0.1]}, "drift"),
        (il.Loan, {"loan_to_value": "a lot"}, "loan_to_value"),
        (il.Warrant, {"coverage": {"x": 1}}, "coverage"),
        # names
        (il.Stage, {**STAGE, "name": "1st"}, "name"),
        (il.Stage, {**STAGE, "name": ""}, "name"),
    ],
)
def test_model_rejects_bad_field(model, kwargs, field):
    _raises_naming(field, lambda: model(**kwargs))


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"steps_per_year": 12.5}, "steps_per_year"),
        ({"steps_per_year": "monthly"}, "steps_per_year"),
        ({"steps_per_year": 0}, "steps_per_year"),
        ({"horizon_years": -1.0}, "horizon_years"),
        ({"horizon_years": math.nan}, "horizon_years"),
        ({"default_barrier": 1.0}, "default_barrier"),
        ({"default_barrier": -0.1}, "default_barrier"),
        ({"value_dispersion": -0.5}, "value_dispersion"),
        ({"ipo_multiple": 0.0}, "ipo_multiple"),
        ({"ma_multiple": math.inf}, "ma_multiple"),
        ({"quality_hazard": math.nan}, "quality_hazard"),
        ({"stages": []}, "stages"),
        ({"stages": "seed"}, "stages"),
        ({"market": {"factor_loading": 2.0}}, "factor_loading"),
        ({"market": 0.35}, "market"),
        ({"horizon": 5.0}, "horizon"),
        ({"horizon_years": 1.05, "steps_per_year": 12}, "horizon_years"),
        ({"horizon_years": 0.3, "steps_per_year": 4}, "horizon_years"),
    ],
)
def test_scenario_rejects_bad_field(fields, field):
    _raises_naming(field, lambda: _small_scenario(**fields))


def test_scenario_stage_weights_must_sum_to_one():
    a = il.Stage(**{**STAGE, "name": "a", "weight": 0.5})
    b = il.Stage(**{**STAGE, "name": "b", "weight": 0.4})
    err = _raises_naming("stages", lambda: il.Scenario(stages=[a, b]))
    assert "sum to 1" in str(err)


def test_scenario_weights_within_rounding_are_accepted():
    a = il.Stage(**{**STAGE, "name": "a", "weight": 0.1, "advance_hazard": 0.2})
    b = il.Stage(**{**STAGE, "name": "b", "weight": 0.2, "advance_hazard": 0.2})
    c = il.Stage(**{**STAGE, "name": "c", "weight": 0.7})
    assert len(il.Scenario(stages=[a, b, c]).stages) == 3  # 0.1 + 0.2 + 0.7 != 1.0 in floats


def test_scenario_last_stage_cannot_advance():
    a = il.Stage(**{**STAGE, "name": "a", "weight": 0.5, "advance_hazard": 0.3})
    b = il.Stage(**{**STAGE, "name": "b", "weight": 0.5, "advance_hazard": 0.1})
    err = _raises_naming("advance_hazard", lambda: il.Scenario(stages=[a, b]))
    assert "stage 'b': advance_hazard" in str(err)


def test_scenario_duplicate_stage_names():
    a = il.Stage(**{**STAGE, "name": "a", "weight": 0.5, "advance_hazard": 0.3})
    b = il.Stage(**{**STAGE, "name": "a", "weight": 0.5})
    err = _raises_naming("stages", lambda: il.Scenario(stages=[a, b]))
    assert "'a'" in str(err)


def test_loan_interest_only_longer_than_maturity():
    _raises_naming(
        "interest_only_years",
        lambda: il.Loan(loan_to_value=0.2, maturity_years=3.0, interest_only_years=4.0),
    )
    loan = il.Loan(loan_to_value=0.2, maturity_years=3.0, interest_only_years=3.0)
    assert loan.io_years == 3.0
    assert il.Loan(loan_to_value=0.2, maturity_years=2.0).io_years == 2.0  # None: bullet


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "x"}, "loan"),
        ({"name": "2x", "loan": {"loan_to_value": 0.2}}, "name"),
        ({"name": "x", "loan": {"loan_to_value": 0.2}, "warrant": 3}, "warrant"),
        ({"name": "x", "loan": {"loan_to_value": 0.2}, "equity": "yes"}, "equity"),
        ({"name": "x", "loan": {"loan_to_value": 0.2}, "guarantee": {}}, "guarantee"),
        ({"name": "x", "loan": {"loan_to_value": 0.2, "rate": 2.0}}, "rate"),
        ({"name": "x", "loan": {"loan_to_value": 0.2}, "screening": {"cost": -1}}, "cost"),
    ],
)
def test_structure_rejects_bad_field(kwargs, field):
    _raises_naming(field, lambda: il.Structure(**kwargs))


def test_models_are_frozen():
    st = il.Stage(**STAGE)
    with pytest.raises(ValidationError):
        st.drift = 0.5
    s = il.pure_loan()
    with pytest.raises(ValidationError):
        s.name = "other"


def test_default_scenario():
    sc = il.Scenario.default()
    assert [s.name for s in sc.stages] == ["seed", "early", "growth", "expansion", "mature"]
    assert math.fsum(s.weight for s in sc.stages) == pytest.approx(1.0, abs=1e-12)
    assert sc.stages[-1].advance_hazard == 0.0
    assert sc.n_steps == round(sc.horizon_years * sc.steps_per_year)
    assert sc.dt == 1.0 / sc.steps_per_year
    assert sc.stage_index("growth") == 2
    with pytest.raises(KeyError, match="nope"):
        sc.stage_index("nope")


def test_default_scenario_public_paths_share_one_cached_model():
    from invlend import scenarios

    sc = scenarios.default_scenario()
    assert sc is il.Scenario.default() is scenarios.default_scenario()
    text = scenarios.default_scenario_toml()
    assert "Carta" in text and il.Scenario.model_validate(tomllib.loads(text)) == sc


def test_config_does_not_import_scenarios():
    # scenarios imports config (for the Scenario model); the other direction would be a cycle.
    import invlend.config

    tree = ast.parse(Path(invlend.config.__file__).read_text(encoding="utf-8"))
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m and "scenarios" in m for m in modules), modules


def test_names_are_checked_with_one_message():
    rule = (
        "must start with a letter and use only letters, digits, '_', '.', '-' (at most 64 "
        "characters)"
    )
    with pytest.raises(ValidationError) as info:
        il.Stage(name="1st")
    assert f"stage name '1st' {rule}" in str(info.value)
    with pytest.raises(ValidationError) as info:
        il.Structure(name="a b", loan=il.Loan())
    assert f"structure name 'a b' {rule}" in str(info.value)
    assert il.Stage(name="a" * 64).name == "a" * 64
    with pytest.raises(ValidationError):
        il.Stage(name="a" * 65)
    with pytest.raises(ValidationError):
        il.Stage(name="seed\n")


def test_structure_list():
    from invlend.structures import structure_list

    assert [s.name for s in structure_list(None)] == ["pure_loan", "warrant_loan", "vc_linked"]
    one = il.pure_loan()
    assert structure_list(one) == [one]
    pair = (one, il.vc_linked())
    assert structure_list(pair) == list(pair)
    assert structure_list(s for s in pair) == list(pair)
    with pytest.raises(TypeError, match=r"^structures\[1\]: expected an invlend.Structure, got "
                       r"<class 'str'>$"):  # fmt: skip
        structure_list([one, "vc_linked"])


def test_scenario_toml_round_trip(tmp_path):
    sc = il.Scenario.default()
    path = tmp_path / "sc.toml"
    text = sc.to_toml(path)
    assert path.read_text(encoding="utf-8") == text
    assert il.Scenario.from_toml(path) == sc
    custom = _small_scenario(
        market=il.Market(discount_rate=0.03, factor_loading=0.0, jump_rate=1.5),
        default_barrier=0.25,
        horizon_years=2.5,
        steps_per_year=4,
    )
    custom.to_toml(tmp_path / "custom.toml")
    assert il.Scenario.from_toml(tmp_path / "custom.toml") == custom


def test_scenario_from_toml_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("horizon_years = = 3\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid TOML"):
        il.Scenario.from_toml(bad)
    with pytest.raises(ValueError, match="cannot read"):
        il.Scenario.from_toml(tmp_path / "missing.toml")
    invalid = tmp_path / "invalid.toml"
    text = il.Scenario.default().to_toml().replace("steps_per_year = 12", "steps_per_year = -3")
    invalid.write_text(text, encoding="utf-8")
    _raises_naming("steps_per_year", lambda: il.Scenario.from_toml(invalid))


STRUCTURES_TOML = """
[[structure]]
name = "plain"
[structure.loan]
loan_to_value = 0.25
rate = 0.05
maturity_years = 2.0

[[structure]]
name = "with_warrant"
[structure.loan]
loan_to_value = 0.1
interest_only_years = 0.5
[structure.warrant]
coverage = 0.2
[structure.linkage]
default_hazard_multiplier = 0.8
"""


def test_structure_from_toml(tmp_path):
    path = tmp_path / "structures.toml"
    path.write_text(STRUCTURES_TOML, encoding="utf-8")
    plain, warrant = il.Structure.from_toml(path)
    assert plain == il.Structure(
        name="plain", loan=il.Loan(loan_to_value=0.25, rate=0.05, maturity_years=2.0)
    )
    assert plain.warrant is None and plain.equity is None and plain.risk_share is None
    assert warrant.name == "with_warrant"
    assert warrant.loan.interest_only_years == 0.5
    assert warrant.warrant == il.Warrant(coverage=0.2)
    assert warrant.linkage == il.Linkage(default_hazard_multiplier=0.8)


def test_structure_from_toml_rejects_other_tables(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[scenario]\nname = "x"\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"\[\[structure\]\]"):
        il.Structure.from_toml(path)
    path.write_text(STRUCTURES_TOML.replace("rate = 0.05", "rate = 'high'"), encoding="utf-8")
    _raises_naming("rate", lambda: il.Structure.from_toml(path))


# ------------------------------------------------------------------------------ presets


def test_presets_defaults_and_overrides():
    names = [s.name for s in il.default_structures()]
    assert names == ["pure_loan", "warrant_loan", "vc_linked"]
    assert il.warrant_loan(rate=0.05).loan.rate == 0.05
    assert il.warrant_loan().warrant is not None
    assert il.pure_loan().warrant is None
    # Like for like: one loan, differing from the pure loan only in rate (and what names them).
    pure, warrant, vc = il.default_structures()
    assert pure.loan.interest_only_years == 0.5 and pure.loan.rate == 0.045
    for other in (warrant, vc):
        assert other.loan == pure.loan.model_copy(update={"rate": 0.04})
    assert warrant.screening == pure.screening and warrant.linkage == pure.linkage
    assert vc.warrant is None and vc.screening != pure.screening
    assert vc.screening.acceptance_rate == pure.screening.acceptance_rate
    # A shorter maturity keeps the loan valid: interest-only for at most its life.
    assert il.pure_loan(maturity_years=0.25).loan.interest_only_years == 0.25
    vc = il.vc_linked()
    assert vc.linkage.default_hazard_multiplier < 1.0 < vc.linkage.exit_hazard_multiplier
    pooled = il.pure_loan(name="pooled", risk_pool=il.RiskPool(annual_cap=0.05))
    assert pooled.name == "pooled" and pooled.risk_pool.annual_cap == 0.05
    custom = il.pure_loan(name="cheap", maturity_years=2.0, warrant=il.Warrant(coverage=0.2))
    assert custom.name == "cheap"
    assert custom.loan.maturity_years == 2.0
    assert custom.warrant == il.Warrant(coverage=0.2)
    # overriding one term keeps the preset's other terms
    assert il.pure_loan(rate=0.07).loan.model_copy(update={"rate": 0.045}) == il.pure_loan().loan


@pytest.mark.parametrize("preset", [il.pure_loan, il.warrant_loan, il.vc_linked])
def test_presets_reject_unknown_terms(preset):
    with pytest.raises(TypeError, match="interest_rate"):
        preset(interest_rate=0.05)


def test_presets_validate_terms():
    _raises_naming("rate", lambda: il.pure_loan(rate=-1.0))


# ------------------------------------------------------------------------------ simulate()


@pytest.fixture(scope="module")
def scenario():
    return _small_scenario()


def _sim(scenario, structures=None, **kw):
    args = dict(n_portfolios=2, portfolio_size=3, seed=1)
    args.update(kw)
    return il.simulate(scenario, structures or [il.pure_loan()], **args)


def test_simulate_loan_longer_than_horizon(scenario):
    with pytest.raises(ValueError, match="maturity_years") as info:
        _sim(scenario, [il.pure_loan(maturity_years=4.0)])
    assert "pure_loan" in str(info.value) and "horizon" in str(info.value)


@pytest.mark.parametrize(
    ("terms", "field"),
    [
        ({"maturity_years": 1.01}, "maturity_years"),
        ({"maturity_years": 2.0, "interest_only_years": 0.33}, "interest_only_years"),
    ],
)
def test_simulate_loan_times_on_the_grid(scenario, terms, field):
    with pytest.raises(ValueError, match=field):
        _sim(scenario, [il.pure_loan(**terms)])


def test_simulate_duplicate_structure_names(scenario):
    with pytest.raises(ValueError, match="structures") as info:
        _sim(scenario, [il.pure_loan(), il.pure_loan(rate=0.05)])
    assert "pure_loan" in str(info.value)


def test_simulate_empty_structure_list(scenario):
    with pytest.raises(ValueError, match="structures"):
        il.simulate(scenario, [], n_portfolios=2, portfolio_size=2, seed=1)


@pytest.mark.parametrize(
    ("kw", "field", "error"),
    [
        ({"n_portfolios": 0}, "n_portfolios", ValueError),
        ({"n_portfolios": -5}, "n_portfolios", ValueError),
        # a value that is not an integer is a TypeError, as for every plain argument
        ({"n_portfolios": 2.5}, "n_portfolios", TypeError),
        ({"n_portfolios": "10"}, "n_portfolios", TypeError),
        ({"n_portfolios": True}, "n_portfolios", TypeError),
        ({"portfolio_size": 0}, "portfolio_size", ValueError),
        ({"sample_paths": -1}, "sample_paths", ValueError),
        ({"sample_paths": 7}, "sample_paths", ValueError),  # more than the 6 firms simulated
        ({"chunk_firms": 0}, "chunk_firms", ValueError),
        ({"seed": -1}, "seed", ValueError),
    ],
)
def test_simulate_rejects_bad_arguments(scenario, kw, field, error):
    with pytest.raises(error, match=field):
        _sim(scenario, **kw)


@pytest.mark.parametrize("backend", ["gpu", "CPU", "", "numba"])
def test_simulate_unknown_backend_lists_choices(scenario, backend):
    with pytest.raises(ValueError, match="backend") as info:
        _sim(scenario, backend=backend)
    msg = str(info.value)
    for choice in ("cpu", "numpy", "cuda"):
        assert choice in msg


@pytest.mark.skipif(_cuda_problem()[0] is None, reason="a CUDA GPU (or the simulator) is here")
def test_simulate_cuda_without_gpu(scenario):
    with pytest.raises(ValueError, match="backend") as info:
        _sim(scenario, backend="cuda")
    assert "'cpu'" in str(info.value) and "'numpy'" in str(info.value)


@pytest.mark.parametrize("seed", [1.5, "1", [1, 2], True, object()])
def test_simulate_bad_seed_type_names_seed(scenario, seed):
    with pytest.raises((TypeError, ValueError), match="seed"):
        _sim(scenario, seed=seed)


def test_simulate_bad_seed_type_raises_value_error(scenario):
    with pytest.raises(ValueError, match="seed"):
        _sim(scenario, seed=1.5)


def test_simulate_rejects_non_models(scenario):
    with pytest.raises(TypeError, match="scenario"):
        il.simulate({"stages": []}, n_portfolios=1, portfolio_size=1, seed=1)
    with pytest.raises(TypeError, match=r"structures\[1\]"):
        _sim(scenario, [il.pure_loan(), "warrant_loan"])


def test_simulate_accepts_numpy_integers_and_seed_sequences(scenario):
    a = _sim(scenario, n_portfolios=np.int64(2), seed=np.random.SeedSequence(1))
    b = _sim(scenario, seed=1)
    assert np.array_equal(a["pure_loan"].npv, b["pure_loan"].npv, equal_nan=True)


def test_replace_validates_like_the_constructor():
    sc = il.Scenario.default()
    cyc = sc.replace(cycle=il.FundingCycle(start="cold"))
    assert cyc.cycle.start == "cold" and cyc.stages == sc.stages
    assert sc.replace(cycle={"hot_to_cold": 0.5}).cycle.hot_to_cold == 0.5
    with pytest.raises(ValueError, match="horizon_years"):
        sc.replace(horizon_years=-1.0)
    with pytest.raises(ValueError, match="weights must sum to 1"):
        sc.replace(stages=[s.replace(weight=0.5) for s in sc.stages])
    with pytest.raises(ValueError, match="colour"):
        sc.replace(colour="red")
    loan = il.pure_loan().replace(risk_pool=il.RiskPool())
    assert loan.risk_pool == il.RiskPool()
    with pytest.raises(ValueError, match=r"risk_pool\.covered_fraction"):
        loan.replace(risk_share=il.RiskShare(covered_fraction=0.9))
