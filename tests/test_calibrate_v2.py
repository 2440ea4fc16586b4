"""Model version 2 on the stage chain: where it is exact, what refuses, and the simulation method.

A value factor (``hazard_value_elasticity`` > 0) or a runway multiplier makes a firm's default
intensity depend on its path, and the chain of :func:`invlend.cohort` is then not the model:
everything built on it refuses such a scenario, naming the field. ``calibrate`` fits it by
simulation instead: per-stage default-hazard ratios measured on common random numbers, a fit
on the rescaled chain, and a check of every target in a fresh simulation. The scenarios here
are small and the test's own, so that they do not follow the built-in scenario.
"""

from __future__ import annotations

import importlib
import json
import math

import numpy as np
import pytest

import invlend as il
from conftest import assert_mc_close, plain_scenario
from invlend.calibrate import HAZARD_FIELDS, Target

chain = importlib.import_module("invlend.cohort")  # the module (il.cohort is the function)

N_FIRMS = 20_000  # per simulation of the method: about a second per fit


def two_stages(**fields) -> il.Scenario:
    """Two stages whose values diffuse (so a value factor matters), with quality and a factor."""
    stages = [
        il.Stage(name="a", weight=1.0, default_hazard=0.15, ipo_hazard=0.02, ma_hazard=0.05,
                 advance_hazard=0.30, drift=-0.05, volatility=0.6, round_size=0.5,
                 runway_years=1.5),
        il.Stage(name="b", weight=0.0, default_hazard=0.08, ipo_hazard=0.10, ma_hazard=0.10,
                 drift=0.05, volatility=0.5, runway_years=2.0),
    ]  # fmt: skip
    base = dict(quality_hazard=0.3, market=il.Market(discount_rate=0.0, factor_loading=0.3),
                horizon_years=3.0)  # fmt: skip
    return plain_scenario(stages, **{**base, **fields})


V2 = dict(hazard_value_elasticity=1.0, runway_hazard_multiplier=2.0)


def target_set(*targets: dict, **fields) -> il.TargetSet:
    made = [Target(mark="E", source="test", **t) for t in targets]
    return il.TargetSet(name="toy", title="a test set", source="test", reference="none",
                        targets=made, **fields)  # fmt: skip


DEFAULT_AND_REACH = target_set(
    dict(name="default_3y", outcome="default", value=0.35),
    dict(name="reach_b_3y", outcome="reach", stage="b", value=0.40),
    start_stage="a",
    horizon_years=3.0,
)


def simulated_share(sc: il.Scenario, hit, start: str, n_portfolios: int, seed: int):
    """P(hit) for firms from ``start`` in a fresh simulation, with its clustered SE."""
    res = il.simulate(sc, [il.pure_loan(maturity_years=sc.horizon_years)],
                      n_portfolios=n_portfolios, portfolio_size=50, seed=seed)  # fmt: skip
    o = res["pure_loan"].outcomes
    law = chain.start_weights(sc, start)
    names = tuple(s.name for s in sc.stages)
    value, psi = chain.mix_share(hit(o), np.asarray(o.initial_stage), law, names)
    return value, chain.clustered_se(psi)


# ------------------------------------------------------------------ refusals, exactness


def test_the_chain_refuses_a_value_factor_naming_the_field():
    sc = two_stages(hazard_value_elasticity=0.5)
    for call in (
        lambda: il.cohort(sc),
        lambda: il.cohort(sc, "b", horizon_years=2.0, grid=True),
        lambda: il.calibration_report(sc, DEFAULT_AND_REACH),
        lambda: il.calibrate(sc, DEFAULT_AND_REACH, method="exact"),
    ):
        with pytest.raises(ValueError) as err:
            call()
        msg = str(err.value)
        print(msg)
        assert msg.startswith("hazard_value_elasticity: ")
        assert "(V / V_ref) ** -0.5" in msg and "value path" in msg  # why
        assert "il.simulate" in msg and "method='simulation'" in msg  # what to do


def test_the_chain_refuses_a_runway_naming_the_field_and_the_stage():
    sc = two_stages(runway_hazard_multiplier=3.0)
    with pytest.raises(ValueError) as err:
        il.cohort(sc, horizon_years=1.0)
    msg = str(err.value)
    assert msg.startswith("runway_hazard_multiplier: ")
    assert "stages[0] ('a').runway_years = 1.5, stages[1] ('b').runway_years = 2" in msg
    assert "time since its last round" in msg and "approximate=True" in msg
    with pytest.raises(ValueError, match=r"^runway_hazard_multiplier: .*calibrate\(\.\.\., meth"):
        il.calibration_report(sc, DEFAULT_AND_REACH)
    # both at once: both named
    with pytest.raises(ValueError, match=r"^hazard_value_elasticity and runway_hazard_multiplier"):
        il.cohort(two_stages(**V2))


def test_where_the_chain_is_exact_nothing_changes():
    plain = two_stages()
    # a runway multiplier without any runway, or runways with a multiplier of 1: version 1
    no_runway = two_stages(runway_hazard_multiplier=3.0).replace(
        stages=[s.model_copy(update={"runway_years": None}) for s in plain.stages]
    )
    for sc in (plain, no_runway):
        for kw in (dict(), dict(horizon_years=2.0, grid=True)):
            ref = il.cohort(plain, **kw).to_dict()
            assert il.cohort(sc, **kw).to_dict() == ref
            # approximate=True on an exact chain runs no simulation and is the exact chain
            approx = il.cohort(sc, approximate=True, **kw)
            assert not approx.approximate and approx.to_dict() == ref
        assert (il.calibration_report(sc, DEFAULT_AND_REACH, approximate=True).rows
                == il.calibration_report(plain, DEFAULT_AND_REACH).rows)  # fmt: skip
    auto = il.calibrate(plain, DEFAULT_AND_REACH)
    exact = il.calibrate(plain, DEFAULT_AND_REACH, method="exact")
    assert auto.method == exact.method == "exact" and auto.iterations == 0
    assert auto.scenario == exact.scenario and auto.report == exact.report
    assert auto.check == () and auto.ratios == () and auto.simulation is None


# ----------------------------------------------------------- the ratios at beta = 0


@pytest.mark.parametrize("cycle", [None, il.FundingCycle()], ids=["no cycle", "cycle"])
def test_ratios_are_one_in_law_where_the_chain_is_exact(cycle):
    # On the grid the chain is the simulation's law, so every measured ratio is 1 within its
    # standard error: the measurement (reweighting by start, the stage-by-stage solve, the
    # delta-method SE) has no bias of its own.
    sc = two_stages(cycle=cycle)
    names = tuple(s.name for s in sc.stages)
    base = np.array([[getattr(s, f) for s in sc.stages] for f in HAZARD_FIELDS])
    hz = chain.Hazards(*base, sc.quality_hazard, sc.cycle)
    weights = np.array([0.6, 0.4])
    out = chain.simulate_outcomes(chain.simulation_scenario(sc, base, weights, 3.0), None,
                                  40_000, chain.simulation_seed(5))  # fmt: skip
    for start in ("a", "b", None):
        law = chain.start_weights(sc, start) if start else weights
        sim = chain.stage_defaults(out, 36, law, names)
        ratio, se_log = chain.effective_ratios(hz, law, 3.0, sc.dt, sim, None)
        for j, name in enumerate(names):
            if law[: j + 1].sum() == 0:  # a stage the cohort never visits: not measured
                assert ratio[j] == 1.0 and sim.count[j] == 0
                continue
            assert_mc_close(
                math.log(ratio[j]),
                0.0,
                se_log[j],
                label=f"log ratio at beta 0 ({cycle and 'cycle'}), {start}->{name}",
            )


def test_simulation_and_exact_agree_at_beta_zero():
    # Where the chain is exact the simulation method fits the same hazards, up to the Monte
    # Carlo error of its ratios. Each default target pins its start's chain: the target from b
    # fixes d_b m_bb, so log d_b moves by -log m_bb exactly; the target from a then moves
    # log d_a by what its sensitivities to the two stages say.
    sc = two_stages()
    ts = target_set(
        dict(name="default_a", outcome="default", value=0.30),
        dict(name="default_b", outcome="default", start_stage="b", value=0.15),
        start_stage="a",
        horizon_years=3.0,
    )
    exact = il.calibrate(sc, ts, free=("default_hazard",), regularization=0.0)
    sim = il.calibrate(sc, ts, free=("default_hazard",), regularization=0.0,
                       method="simulation", n_firms=N_FIRMS, seed=7)  # fmt: skip
    print(sim)
    assert exact.method == "exact" and sim.method == "simulation"
    assert sim.success and sim.ratio_converged and sim.iterations >= 1
    r = {(x.start, x.stage): x for x in sim.ratios}
    log_m = {k: math.log(x.ratio) for k, x in r.items()}
    se = {k: x.se / x.ratio for k, x in r.items()}
    move = {p.stage: math.log(q.fitted / p.fitted)
            for p, q in zip(exact.parameters, sim.parameters, strict=True)}  # fmt: skip
    assert move["b"] == pytest.approx(-log_m[("b", "b")], abs=1e-6)
    assert_mc_close(move["b"], 0.0, se[("b", "b")], label="beta 0: simulation vs exact log d_b")

    # sensitivities of P(default by 3 y | a) to log d_a and log d_b, at the exact fit
    def default_from_a(scale_a: float, scale_b: float) -> float:
        st = exact.scenario.stages
        scaled = exact.scenario.replace(
            stages=[
                st[0].model_copy(update={"default_hazard": st[0].default_hazard * scale_a}),
                st[1].model_copy(update={"default_hazard": st[1].default_hazard * scale_b}),
            ]
        )
        return il.cohort(scaled, "a", horizon_years=3.0).default  # fmt: skip

    h = 1e-5
    s_a = (default_from_a(math.exp(h), 1.0) - default_from_a(math.exp(-h), 1.0)) / (2 * h)
    s_b = (default_from_a(1.0, math.exp(h)) - default_from_a(1.0, math.exp(-h))) / (2 * h)
    k = s_b / s_a
    predicted = -log_m[("a", "a")] - k * (log_m[("a", "b")] - log_m[("b", "b")])
    assert move["a"] == pytest.approx(predicted, abs=2e-3)  # to second order in log m
    se_a = math.sqrt(se[("a", "a")] ** 2 + k**2 * (se[("a", "b")] ** 2 + se[("b", "b")] ** 2))
    assert_mc_close(move["a"], 0.0, se_a, label="beta 0: simulation vs exact log d_a")
    for x in sim.ratios:
        if x.defaults == 0:  # stage a is never visited from b: not measured, ratio 1
            assert (x.start, x.stage, x.ratio) == ("b", "a", 1.0) and math.isnan(x.se)
            continue
        assert_mc_close(x.ratio, 1.0, x.se, label=f"beta 0 ratio {x.start}->{x.stage}")


# ------------------------------------------------------------- the fit with beta > 0


@pytest.mark.parametrize("grid", [True, False], ids=["grid", "continuous"])
def test_the_simulation_fit_meets_a_default_target_in_a_fresh_simulation(grid):
    sc = two_stages(**V2)
    fit = il.calibrate(sc, DEFAULT_AND_REACH, free=("default_hazard", "advance_hazard"),
                       n_firms=N_FIRMS, seed=3, grid=grid)  # fmt: skip
    print(fit)
    assert fit.method == "simulation" and fit.grid is grid  # "auto" chose it
    assert fit.success and fit.ratio_converged and fit.max_abs_residual < 1e-3
    ratios = {r.stage: r.ratio for r in fit.ratios}
    # value falls on average (negative drift) and the runway doubles the intensity: the
    # simulated intensity is well above the chain's
    assert ratios["a"] > 1.5 and ratios["b"] > 1.1
    # a fresh simulation (another seed, twice the firms) of the fitted scenario meets the
    # default target; the fit's own Monte Carlo error is the check's (same size of run)
    check = {c.name: c for c in fit.check}
    est, se = simulated_share(fit.scenario, lambda o: o.event == il.Event.DEFAULT, "a",
                              n_portfolios=800, seed=2027)  # fmt: skip
    assert_mc_close(
        est,
        0.35,
        math.hypot(se, check["default_3y"].se),
        label=f"beta 1 + runway fit ({'grid' if grid else 'continuous'}): default",
    )
    # reach is not matched by construction (one ratio per stage matches its defaults, not its
    # timing): the check states the gap with its standard error
    reach = check["reach_b_3y"]
    print(f"reach b by 3 y: chain {reach.chain:.4f}, simulated {reach.simulated:.4f} "
          f"+- {reach.se:.4f} (z {reach.z:+.2f})")  # fmt: skip
    assert 0.0 < reach.se < 0.01 and abs(reach.simulated - reach.chain) < 0.05


def test_eventual_targets_are_checked_by_the_simulated_years():
    fast = two_stages(**V2).replace(stages=[
        s.model_copy(update={"ma_hazard": 0.4}) for s in two_stages().stages])  # fmt: skip
    ts = target_set(
        dict(name="default", outcome="default", value=0.5),
        dict(name="default_2y", outcome="default", horizon_years=2.0, value=0.3),
        dict(name="ma_share", outcome="ma", among=["ipo", "ma"], value=0.7),
        start_stage="a",
    )
    fit = il.calibrate(fast, ts, free=("default_hazard", "ma_hazard"), n_firms=N_FIRMS, seed=4)
    print(fit)
    years = fit.simulation["simulation_years"]
    # the first whole year by which at most 1% of the cohort is alive (at the start hazards)
    base = np.array([[getattr(s, f) for s in fast.stages] for f in HAZARD_FIELDS])
    hz = chain.Hazards(*base, fast.quality_hazard, None)
    assert years == chain.eventual_years(hz, np.array([[1.0, 0.0]]), 2.0) > 2.0
    assert il.cohort(fast.replace(hazard_value_elasticity=0.0, runway_hazard_multiplier=1.0),
                     "a", horizon_years=years).alive <= 0.01  # fmt: skip
    check = {c.name: c for c in fit.check}
    assert check["default"].eventual and check["default"].horizon_years == years
    assert not check["default_2y"].eventual and check["default_2y"].horizon_years == 2.0
    # two groups (eventual, by 2 y), each with its ratios
    assert {(r.horizon_years, r.measured_years) for r in fit.ratios} == {(None, years), (2.0, 2.0)}
    # the default targets are what the ratios match: met in the fresh check within 4 SE
    for name in ("default", "default_2y"):
        c = check[name]
        assert_mc_close(c.simulated, c.chain, c.se * math.sqrt(2), label=f"eventual set: {name}")


def test_cohort_approximate_matches_the_simulated_defaults():
    sc = two_stages(**V2)
    c = il.cohort(sc, "a", horizon_years=3.0, grid=True, approximate=True, n_firms=N_FIRMS,
                  seed=11)  # fmt: skip
    print(c)
    assert c.approximate and c.simulated_firms == N_FIRMS and c.simulation_years == 3.0
    assert "APPROXIMATE" in str(c) and set(c.default_hazard_ratio) == {"a", "b"}
    d = json.loads(json.dumps(c.to_dict()))
    assert d["approximate"] is True and d["default_hazard_ratio"]["a"] > 1.0
    est, se = simulated_share(sc, lambda o: o.event == il.Event.DEFAULT, "a", 800, 2028)
    assert_mc_close(est, c.default, se * math.sqrt(1.0 + 40_000 / N_FIRMS),
                    label="approximate cohort: default by 3 y")  # fmt: skip
    # eventual: measured over the first year with <= 1% alive
    ev = il.cohort(sc, "a", approximate=True, n_firms=N_FIRMS, seed=11)
    assert ev.approximate and ev.horizon_years is None and ev.simulation_years > 3.0
    assert ev.default > c.default


def test_approximate_report_and_the_result_formats():
    sc = two_stages(**V2)
    rep = il.calibration_report(sc, DEFAULT_AND_REACH, approximate=True, n_firms=N_FIRMS,
                                seed=3)  # fmt: skip
    assert rep.approximate and rep.note.startswith("APPROXIMATE (hazard_value_elasticity")
    assert str(rep).split("\n")[-1] == rep.note and rep.to_dict()["note"] == rep.note
    fit = il.calibrate(sc, DEFAULT_AND_REACH, free=("default_hazard",), n_firms=N_FIRMS, seed=3)
    # the report at the start hazards is the fit's initial report (same ratios, same numbers)
    assert [r.model for r in fit.initial.rows] == pytest.approx([r.model for r in rep.rows],
                                                                abs=1e-12)  # fmt: skip
    text = str(fit)
    assert text == repr(fit)
    for line in ("method: simulation (APPROXIMATE", "default-hazard ratios m",
                 "simulation check of the fitted scenario", "default_3y"):  # fmt: skip
        assert line in text, line
    d = json.loads(json.dumps(fit.to_dict()))
    assert d["method"] == "simulation" and d["iterations"] == fit.iterations
    assert len(d["ratios"]) == 2 and len(d["check"]) == 2
    assert d["simulation"]["n_firms"] == N_FIRMS and d["simulation"]["seed"] == 3
    assert d["simulation"]["check_spawn_key"] == [1]
    # the same seed gives the same fit, bit for bit (common random numbers are replayable)
    again = il.calibrate(sc, DEFAULT_AND_REACH, free=("default_hazard",), n_firms=N_FIRMS,
                         seed=3)  # fmt: skip
    assert again.scenario == fit.scenario and again.check == fit.check
    pytest.importorskip("pandas")
    df = fit.to_frame()
    assert {"simulated", "simulated_se", "z"} <= set(df.columns)


# ---------------------------------------------------------------------------- errors


def test_calibrate_argument_errors_name_the_field():
    sc = two_stages(**V2)
    for bad in ("simulated", "", None, 1):
        with pytest.raises(ValueError, match=r"^method: .* is not one of 'auto', 'exact', 'sim"):
            il.calibrate(sc, DEFAULT_AND_REACH, method=bad)
    with pytest.raises(ValueError, match=r"^simulation_years: 2 y is shorter than the longest"):
        il.calibrate(sc, DEFAULT_AND_REACH, simulation_years=2.0)
    with pytest.raises(ValueError, match=r"^n_firms: must be >= 100"):
        il.calibrate(sc, DEFAULT_AND_REACH, n_firms=10)
    with pytest.raises(ValueError, match=r"^max_iterations: must be >= 1"):
        il.calibrate(sc, DEFAULT_AND_REACH, max_iterations=0)
    with pytest.raises(TypeError, match=r"^grid: expected True or False"):
        il.calibrate(sc, DEFAULT_AND_REACH, grid="yes")
    odd = target_set(dict(name="d", outcome="default", value=0.1, horizon_years=0.01),
                     start_stage="a")  # fmt: skip
    with pytest.raises(ValueError, match=r"^toy: targets\[0\]\.horizon_years: 0\.01 y is not a"):
        il.calibrate(sc, odd)
    with pytest.raises(ValueError, match=r"^toy: targets\[0\]\.horizon_years: 0\.01 y is not a"):
        il.calibrate(two_stages(), odd, grid=True)
    with pytest.raises(TypeError, match=r"^approximate: expected True or False"):
        il.cohort(sc, approximate="yes")
