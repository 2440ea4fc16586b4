"""Interface tier: the text of validation errors, as the user reads it.

Each error names the structure and the stage by their name and the field by its path
(``structure 'warrant_loan': warrant.coverage: ...``), suggests the field meant by a misspelt
one, lists every error of an input in one exception, and carries none of pydantic's
documentation URLs or input dumps. Stage weights that sum to 1 within 1e-6 are accepted and
scaled to sum to 1.
"""

from __future__ import annotations

import math
import pickle

import pytest
import tomli_w
from pydantic import ValidationError

import invlend as il
from invlend import cli, engine
from invlend.config import InputError

# ------------------------------------------------------------------ helpers


def _scenario_data() -> dict:
    return il.Scenario.default().model_dump(exclude_none=True)


def _structure_data(**changes) -> dict:
    return il.warrant_loan().model_dump(exclude_none=True) | changes


def _error(make) -> InputError:
    """The InputError that ``make()`` raises."""
    with pytest.raises(InputError) as info:
        make()
    return info.value


def _three_stages(weights) -> il.Scenario:
    stages = [
        il.Stage(name=n, weight=w, advance_hazard=0.0 if n == "c" else 0.2)
        for n, w in zip("abc", weights, strict=True)
    ]
    return il.Scenario(stages=stages)


# ------------------------------------------------------------------ 1. names and paths


def test_a_structure_error_names_the_structure_and_the_field_path():
    data = _structure_data(warrant={"coverage": -1.0})
    text = str(_error(lambda: il.Structure.model_validate(data)))
    assert text == (
        "structure 'warrant_loan': warrant.coverage: Input should be greater than or equal to 0"
    )


def test_a_misspelt_stage_field_names_the_stage_and_suggests_the_field():
    data = _scenario_data()
    data["stages"][0]["volatilty"] = data["stages"][0].pop("volatility")
    text = str(_error(lambda: il.Scenario.model_validate(data)))
    assert text == "stage 'seed': volatilty: unknown field — did you mean volatility?"


def test_a_misspelt_field_is_suggested_in_every_model():
    assert "warant: unknown field — did you mean warrant?" in str(
        _error(lambda: il.Structure.model_validate(_structure_data(warant={})))
    )
    assert "market.jump_rat: unknown field — did you mean jump_rate?" in str(
        _error(lambda: il.Scenario.model_validate(_scenario_data() | {"market": {"jump_rat": 1}}))
    )
    assert str(_error(lambda: il.Loan(rat=0.05))) == "rat: unknown field — did you mean rate?"


def test_an_unknown_field_with_no_close_match_lists_the_fields():
    text = str(_error(lambda: il.Warrant(colour="red")))
    assert text == ("colour: unknown field; the fields are coverage, share_of_gain, expiry_years")


def test_an_element_without_a_usable_name_is_located_by_its_index():
    data = _scenario_data()
    data["stages"][1]["name"] = "early stage"
    data["stages"][1]["drift"] = 9.0
    lines = _error(lambda: il.Scenario.model_validate(data)).messages
    assert lines[0].startswith("stages[1].name: stage name 'early stage' must start")
    assert lines[1] == "stages[1].drift: Input should be less than or equal to 2"


def test_a_nested_path_leaves_out_union_tags():
    loan = {"collateral": {"kind": "ip", "haircut": 2.0}}
    text = str(_error(lambda: il.Structure.model_validate(_structure_data(loan=loan))))
    assert text == (
        "structure 'warrant_loan': loan.collateral.haircut: Input should be less than or equal to 1"
    )


def test_a_cross_field_rule_of_the_stages_names_the_stage():
    text = str(_error(lambda: il.Scenario(stages=[il.Stage(name="solo", advance_hazard=0.1)])))
    assert text == "stage 'solo': advance_hazard: the last stage cannot advance; set it to 0"


def test_a_run_error_names_the_structure(monkeypatch):
    monkeypatch.setattr(engine, "_run_range", _never)
    with pytest.raises(ValueError) as info:
        il.simulate(il.Scenario.default(), il.pure_loan(maturity_years=6.0), n_portfolios=2)
    assert str(info.value) == (
        "structure 'pure_loan': loan.maturity_years: the loan (6 y) cannot be longer than the "
        "scenario horizon_years (5 y)"
    )


def _never(*args, **kwargs):
    raise AssertionError("simulation started")


# ------------------------------------------------------------------ 2. every error at once


def test_two_bad_structures_in_a_file_give_one_error_listing_both(tmp_path):
    bad_rate = _structure_data(name="first", loan={"rate": -0.01})
    bad_cover = _structure_data(name="second", warrant={"coverage": -1.0})
    f = tmp_path / "structures.toml"
    f.write_text(tomli_w.dumps({"structure": [bad_rate, bad_cover]}), encoding="utf-8")
    err = _error(lambda: il.Structure.from_toml(f))
    assert err.messages == [
        "structure 'first': loan.rate: Input should be greater than or equal to 0",
        "structure 'second': warrant.coverage: Input should be greater than or equal to 0",
    ]
    assert str(err).startswith("2 invalid inputs in Structure:\n")
    assert [e["loc"] for e in err.errors()] == [
        ("structure", 0, "loan", "rate"),
        ("structure", 1, "warrant", "coverage"),
    ]


def test_a_structure_without_a_name_in_a_file_is_located_by_its_table(tmp_path):
    good = _structure_data()
    nameless = {k: v for k, v in _structure_data(name="other").items() if k != "name"}
    f = tmp_path / "structures.toml"
    f.write_text(tomli_w.dumps({"structure": [good, nameless]}), encoding="utf-8")
    assert _error(lambda: il.Structure.from_toml(f)).messages == [
        "structure[1].name: Field required"
    ]


def test_errors_of_several_stages_come_in_one_exception():
    data = _scenario_data()
    data["stages"][0]["volatility"] = -1.0
    data["stages"][3]["ipo_hazard"] = -1.0
    data["market"]["factor_loading"] = 2.0
    err = _error(lambda: il.Scenario.model_validate(data))
    assert err.error_count() == 3
    assert err.messages == [
        "stage 'seed': volatility: Input should be greater than or equal to 0",
        "stage 'expansion': ipo_hazard: Input should be greater than or equal to 0",
        "market.factor_loading: Input should be less than or equal to 1",
    ]


def test_every_broken_cross_field_rule_is_listed():
    stage = il.Stage(name="solo", advance_hazard=0.1)
    err = _error(lambda: il.Scenario(stages=[stage], horizon_years=1.05))
    assert len(err.messages) == 2
    assert err.messages[0].startswith("stage 'solo': advance_hazard: the last stage")
    assert err.messages[1].startswith("horizon_years: horizon_years * steps_per_year")


def test_a_run_lists_every_bad_structure_before_any_work(monkeypatch):
    monkeypatch.setattr(engine, "_run_range", _never)
    structures = [il.pure_loan(maturity_years=6.0), il.warrant_loan(maturity_years=1 / 7)]
    with pytest.raises(ValueError) as info:
        il.simulate(il.Scenario.default(), structures, n_portfolios=2, portfolio_size=2)
    lines = str(info.value).splitlines()
    assert len(lines) == 3 and lines[0] == "2 invalid inputs in structures:"
    assert lines[1].startswith("  structure 'pure_loan': loan.maturity_years: the loan (6 y)")
    assert lines[2].startswith("  structure 'warrant_loan': loan.maturity_years: 0.142857 y")


# ------------------------------------------------------------------ 3. no URLs, no dumps


def _bad_inputs():
    data = _scenario_data()
    data["stages"][0]["volatility"] = "high"
    data["stages"][1]["colour"] = "red"
    data["steps_per_year"] = True
    return [
        lambda: il.Scenario.model_validate(data),
        lambda: il.Structure.model_validate(_structure_data(loan={"rate": "4.5%"})),
        lambda: il.Stage(name="seed stage"),
        lambda: il.Loan(interest_only_years=4.0),
        lambda: il.FundingCycle(hot_to_cold=0.0, cold_to_hot=0.0),
        lambda: il.Scenario.default().replace(horizon_years=-1.0),
    ]


@pytest.mark.parametrize("make", _bad_inputs())
def test_no_message_carries_a_url_or_an_input_dump(make):
    err = _error(make)
    assert isinstance(err, ValidationError) and isinstance(err, ValueError)
    for text in (str(err), repr(err), *(e["msg"] for e in err.errors())):
        for dump in ("errors.pydantic.dev", "For further information", "input_value",
                     "input_type", "[type=", "Value error, "):  # fmt: skip
            assert dump not in text, text


def test_the_error_survives_pickling_with_its_text():
    err = _error(_bad_inputs()[0])
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is InputError and str(again) == str(err)


def test_the_command_line_prints_one_clean_line(tmp_path, capsys):
    data = _scenario_data()
    data["stages"][0]["volatilty"] = 0.5
    f = tmp_path / "bad.toml"
    f.write_text(tomli_w.dumps(data), encoding="utf-8")
    assert cli.main(["scenario", "check", str(f)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "did you mean volatility?" in err[0]
    assert "errors.pydantic.dev" not in err[0] and "input_value" not in err[0]


# ------------------------------------------------------------------ 4. stage weights


def test_weights_within_a_millionth_of_one_are_accepted_and_scaled_to_one():
    sc = _three_stages([0.3333333, 0.3333333, 0.3333333])  # sum 0.9999999
    weights = [s.weight for s in sc.stages]
    assert math.fsum(weights) == pytest.approx(1.0, abs=1e-15)
    assert weights == pytest.approx([1 / 3] * 3, abs=1e-15)
    assert [s.advance_hazard for s in sc.stages] == [0.2, 0.2, 0.0]


def test_scaled_weights_do_not_depend_on_the_rounding():
    rounded = _three_stages([0.3333334, 0.3333334, 0.3333334])
    exact = _three_stages([1 / 3, 1 / 3, 1 / 3])
    for a, b in zip(rounded.stages, exact.stages, strict=True):
        assert a.weight == pytest.approx(b.weight, abs=1e-15)


def test_weights_that_sum_to_one_are_kept_as_given():
    sc = il.Scenario.default()
    assert sc.replace().stages == sc.stages


def test_weights_off_by_a_thousandth_are_refused_naming_the_field():
    err = _error(lambda: _three_stages([0.333, 0.333, 0.333]))
    assert str(err) == "stages: stage weights must sum to 1, they sum to 0.999"
    assert err.errors()[0]["loc"] == ("stages",)
