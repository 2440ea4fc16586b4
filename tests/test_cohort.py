"""invlend.cohort: the stage chain solved exactly, against hand algebra, the chain values of
docs/sources.md, the quadrature's own convergence, an independent integration, the closed forms
and simulation."""

from __future__ import annotations

import importlib
import json
import math

import numpy as np
import pytest
from scipy import integrate, stats

import invlend as il
from conftest import (
    assert_mc_close,
    clustered_mean_se,
    one_stage,
    plain_scenario,
    stage_only_default,
)
from invlend import closed_forms as cf
from invlend import validation

cohort_module = importlib.import_module("invlend.cohort")

# The project's estimated hazards [E] (docs/sources.md, "Estimates of the project"): (name,
# advance, M&A, IPO, failure) per stage, US VC-backed and CN-VC.
US = [
    ("seed", 0.22, 0.03, 0.000, 0.25),
    ("early", 0.25, 0.05, 0.003, 0.15),
    ("growth", 0.22, 0.08, 0.012, 0.12),
    ("expansion", 0.15, 0.09, 0.04, 0.10),
    ("mature", 0.0, 0.12, 0.08, 0.05),
]
CN_VC = [
    ("seed", 0.20, 0.03, 0.0, 0.20),
    ("early", 0.22, 0.04, 0.005, 0.12),
    ("growth", 0.20, 0.05, 0.02, 0.08),
    ("expansion", 0.15, 0.07, 0.06, 0.06),
    ("mature", 0.0, 0.08, 0.12, 0.04),
]


@pytest.fixture
def default_scenario() -> il.Scenario:
    """The built-in scenario on version 1's model (see :func:`conftest.stage_only_default`)."""
    return stage_only_default()


def chain_scenario(table, quality_hazard=0.0, **fields) -> il.Scenario:
    stages = [
        il.Stage(name=n, weight=1.0 if i == 0 else 0.0, advance_hazard=a, ma_hazard=m,
                 ipo_hazard=ipo, default_hazard=d)
        for i, (n, a, m, ipo, d) in enumerate(table)
    ]  # fmt: skip
    return plain_scenario(stages, quality_hazard=quality_hazard, **fields)


def digits(value: float, given: str) -> bool:
    """``value`` rounds to ``given`` at the number of decimals ``given`` shows."""
    n = len(given.split(".")[1])
    return abs(value - float(given)) <= 0.5 * 10.0**-n + 1e-12


# ------------------------------------------------------------------------ by hand


def test_one_stage_by_hand():
    ld, li, lm = 0.15, 0.05, 0.10
    total = ld + li + lm
    sc = plain_scenario([one_stage(default_hazard=ld, ipo_hazard=li, ma_hazard=lm)])
    c = il.cohort(sc)
    assert c.default == pytest.approx(ld / total, abs=1e-14)
    assert c.ipo == pytest.approx(li / total, abs=1e-14)
    assert c.ma == pytest.approx(lm / total, abs=1e-14)
    assert c.expected_years == pytest.approx(1.0 / total, abs=1e-13)
    assert c.alive == 0.0 and c.reach == {"only": 1.0} and c.nodes == 1
    # by a horizon: (l_i / L)(1 - e^{-LT}), survival e^{-LT}, E[min(tau, T)] = (1 - e^{-LT})/L
    t = 3.0
    h = il.cohort(sc, horizon_years=t)
    probs, survival = cf.competing_hazards([ld, li, lm], t)
    assert [h.default, h.ipo, h.ma] == pytest.approx(probs, abs=1e-14)
    assert h.alive == pytest.approx(survival, abs=1e-14)
    assert h.alive_in["only"] == pytest.approx(survival, abs=1e-14)
    assert h.expected_years == pytest.approx(-math.expm1(-total * t) / total, abs=1e-14)
    # the worked values of the competing-hazards formula [C] (docs/validation.md)
    assert [h.default, h.ipo, h.ma, h.alive] == pytest.approx(
        [0.296715, 0.098905, 0.197810, 0.406570], abs=5e-7
    )


def test_two_stages_by_hand():
    a, d0, m0, d1, i1 = 0.5, 0.2, 0.1, 0.1, 0.15
    l0, l1 = a + d0 + m0, d1 + i1
    stages = [
        il.Stage(name="a", weight=1.0, advance_hazard=a, default_hazard=d0, ma_hazard=m0),
        il.Stage(name="b", weight=0.0, default_hazard=d1, ipo_hazard=i1),
    ]
    sc = plain_scenario(stages)
    c = il.cohort(sc, "a")
    up = a / l0
    assert c.reach["b"] == pytest.approx(up, abs=1e-14)
    assert c.default == pytest.approx(d0 / l0 + up * d1 / l1, abs=1e-14)
    assert c.ma == pytest.approx(m0 / l0, abs=1e-14)
    assert c.ipo == pytest.approx(up * i1 / l1, abs=1e-14)
    assert c.years_in["a"] == pytest.approx(1 / l0, abs=1e-14)
    assert c.years_in["b"] == pytest.approx(up / l1, abs=1e-14)
    assert c.expected_years == pytest.approx(1 / l0 + up / l1, abs=1e-14)
    # from b, stage a is never reached
    cb = il.cohort(sc, "b")
    assert cb.reach == {"a": 0.0, "b": 1.0} and cb.default == pytest.approx(d1 / l1)
    # by T: in a with e^{-l0 T}; in b with a (e^{-l1 T} - e^{-l0 T}) / (l0 - l1)
    t = 2.0
    h = il.cohort(sc, "a", horizon_years=t)
    in_b = a * (math.exp(-l1 * t) - math.exp(-l0 * t)) / (l0 - l1)
    assert h.alive_in["a"] == pytest.approx(math.exp(-l0 * t), abs=1e-14)
    assert h.alive_in["b"] == pytest.approx(in_b, abs=1e-14)
    assert h.reach["b"] == pytest.approx(up * -math.expm1(-l0 * t), abs=1e-14)
    assert h.ma == pytest.approx(m0 / l0 * -math.expm1(-l0 * t), abs=1e-14)
    # the scenario's mix of start stages averages the two
    mix = plain_scenario([stages[0].model_copy(update={"weight": 0.25}),
                          stages[1].model_copy(update={"weight": 0.75})])  # fmt: skip
    cm = il.cohort(mix)
    assert cm.start == "mix" and cm.start_weights == {"a": 0.25, "b": 0.75}
    assert cm.reach["b"] == pytest.approx(0.25 * up + 0.75, abs=1e-14)
    assert cm.default == pytest.approx(0.25 * c.default + 0.75 * cb.default, abs=1e-14)


# ------------------------------------------- the project's hazard tables (docs/sources.md)


def test_us_chain_from_seed():
    c = il.cohort(chain_scenario(US), "seed")
    print(c)
    assert digits(c.reach["early"], "0.44")
    assert digits(c.reach["growth"], "0.24")
    assert digits(c.reach["expansion"], "0.124")
    assert digits(c.ma, "0.206")
    assert digits(c.ipo, "0.038")
    assert digits(c.default, "0.755")
    # the chain gives 4.054 years, quoted as 4.05 in docs/sources.md and docs/calibration.md
    assert digits(c.expected_years, "4.05")


def test_us_and_cn_chains_from_series_a():
    us = il.cohort(chain_scenario(US), "early")
    assert digits(us.ma, "0.33") and digits(us.ipo, "0.087") and digits(us.default, "0.58")
    cn = il.cohort(chain_scenario(CN_VC), "early")
    assert digits(cn.ma, "0.30") and digits(cn.ipo, "0.175") and digits(cn.default, "0.52")
    assert digits(il.cohort(chain_scenario(CN_VC), "seed").ipo, "0.08")


# -------------------------------------------------------------------- quadrature


def _values(c: il.Cohort) -> np.ndarray:
    return np.array([c.default, c.ipo, c.ma, c.alive, c.expected_years, *c.reach.values(),
                     *c.years_in.values(), *c.alive_in.values()])  # fmt: skip


@pytest.mark.parametrize("gamma", [0.3, 1.0, 2.5, -4.0])
@pytest.mark.parametrize("horizon", [None, 2.0])
def test_doubling_the_quadrature_changes_nothing(default_scenario, gamma, horizon):
    sc = default_scenario.model_copy(update={"quality_hazard": gamma})
    c = il.cohort(sc, horizon_years=horizon)
    doubled = il.cohort(sc, horizon_years=horizon, nodes=2 * c.nodes)
    assert np.max(np.abs(_values(doubled) - _values(c))) < 1e-11
    # and the quality spread matters: the result is not the q = 0 chain
    flat = il.cohort(sc.model_copy(update={"quality_hazard": 0.0}), horizon_years=horizon)
    assert abs(c.default - flat.default) > 1e-3


def test_gauss_hermite_and_trapezoid_agree(default_scenario, monkeypatch):
    sc = default_scenario.model_copy(update={"quality_hazard": 1.0})
    gh = il.cohort(sc, horizon_years=3.0)
    monkeypatch.setattr(cohort_module, "_GH_MAX_GAMMA", 0.5)  # force the trapezoidal rule
    tr = il.cohort(sc, horizon_years=3.0)
    assert np.max(np.abs(_values(gh) - _values(tr))) < 1e-11


@pytest.mark.parametrize("horizon", [None, 1.5])
def test_quality_average_against_scipy_quad(horizon):
    # One stage: P(default | q) = (ld s / L)(1 - e^{-L T}), s = e^{-gamma q}, L = ld s + lo,
    # integrated against the normal density by adaptive quadrature (an independent route).
    ld, lo, gamma = 0.2, 0.3, 1.7
    sc = plain_scenario([one_stage(default_hazard=ld, ma_hazard=lo)], quality_hazard=gamma)
    c = il.cohort(sc, horizon_years=horizon)
    t = math.inf if horizon is None else horizon

    def p_default(q):
        lam = ld * math.exp(-gamma * q)
        total = lam + lo
        return lam / total * -math.expm1(-total * t) * stats.norm.pdf(q)

    ref = integrate.quad(p_default, -12, 12, epsabs=1e-14, epsrel=1e-13, limit=400)[0]
    assert c.default == pytest.approx(ref, abs=1e-11)


# ------------------------------------------------------------- horizons and grid


def test_long_horizon_tends_to_eventual_and_zero_horizon_is_the_start(default_scenario):
    eventual = il.cohort(default_scenario)
    long = il.cohort(default_scenario, horizon_years=400.0)
    assert long.alive < 1e-12
    assert np.max(np.abs(_values(long) - _values(eventual))) < 1e-10
    zero = il.cohort(default_scenario, horizon_years=0.0)
    assert zero.alive == pytest.approx(1.0, abs=1e-15)
    assert dict(zero.reach) == pytest.approx(dict(zero.start_weights), abs=1e-15)
    assert zero.default == zero.ipo == zero.ma == zero.expected_years == 0.0
    # a short horizon: P(event) ~ L h; P(default) is the mean default hazard times h
    h = 1e-6
    tiny = il.cohort(default_scenario, horizon_years=h)
    hazard = sum(s.weight * s.default_hazard for s in default_scenario.stages)
    mean_scale = math.exp(0.5 * default_scenario.quality_hazard**2)  # E[e^{-gamma q}]
    assert tiny.default / h == pytest.approx(hazard * mean_scale, rel=1e-5)
    # every quantity grows with the horizon
    a, b = il.cohort(default_scenario, horizon_years=2.0), il.cohort(default_scenario,
                                                                     horizon_years=4.0)  # fmt: skip
    assert b.default > a.default and b.expected_years > a.expected_years
    assert all(b.reach[s] >= a.reach[s] for s in b.stages)


def test_chain_matches_the_closed_forms_and_the_grid_converges():
    stages = [il.Stage(name=f"s{i}", weight=1.0 if i == 0 else 0.0, **h)
              for i, h in enumerate(validation._CHAIN)]  # fmt: skip
    for spy in (12, 120, 1200):
        sc = plain_scenario(stages, steps_per_year=spy, horizon_years=3.0)
        cont = validation._chain_states(il.cohort(sc, "s0", horizon_years=3.0))
        grid = validation._chain_states(il.cohort(sc, "s0", horizon_years=3.0, grid=True))
        np.testing.assert_allclose(cont, cf.stage_chain(validation._CHAIN, 0, 3.0), atol=1e-13)
        np.testing.assert_allclose(
            grid, cf.stage_chain_steps(validation._CHAIN, 0, 1 / spy, 3 * spy), atol=1e-12
        )
    # eventual grid quantities tend to the continuous ones as the step shrinks
    gaps = []
    for spy in (12, 120, 1200):
        sc = plain_scenario(stages, steps_per_year=spy)
        c, g = il.cohort(sc, "s0"), il.cohort(sc, "s0", grid=True)
        gaps.append(abs(g.expected_years - c.expected_years))
        assert dict(g.reach) == pytest.approx(dict(c.reach), abs=1e-14)  # same jump chain
    assert gaps[0] > 9 * gaps[1] > 81 * gaps[2]


def test_linkage_scales_hazards_as_the_engine_does(default_scenario):
    link = il.Linkage(default_hazard_multiplier=0.75, exit_hazard_multiplier=1.2)
    scaled = default_scenario.model_copy(
        update={"stages": [s.model_copy(update={
            "default_hazard": 0.75 * s.default_hazard,
            "ipo_hazard": 1.2 * s.ipo_hazard, "ma_hazard": 1.2 * s.ma_hazard})
            for s in default_scenario.stages]}
    )  # fmt: skip
    a = il.cohort(default_scenario, linkage=link, horizon_years=3.0)
    b = il.cohort(scaled, horizon_years=3.0)
    assert np.max(np.abs(_values(a) - _values(b))) < 1e-15
    assert a.default < il.cohort(default_scenario, horizon_years=3.0).default
    assert "linkage x0.75 default" in str(a)


# --------------------------------------------------------------- against the engine


def _sim_checks(outcomes, ref: il.Cohort, label: str) -> None:
    """Events, reach and time of simulated firms against the cohort's exact grid law."""
    o = outcomes
    for code, name in ((il.Event.DEFAULT, "default"), (il.Event.IPO, "ipo"),
                       (il.Event.MA, "ma"), (il.Event.NONE, "alive")):  # fmt: skip
        est, se = clustered_mean_se(o.event == code)
        assert_mc_close(est, ref.probability(name), se, label=f"{label} P({name} by T)")
    for j, stage in enumerate(ref.stages):
        if ref.start_weights[stage] == 1.0:
            continue
        ever = (o.initial_stage <= j) & (o.stage >= j)
        est, se = clustered_mean_se(ever)
        assert_mc_close(est, ref.reach[stage], se, label=f"{label} P(reach {stage} by T)")
    est, se = clustered_mean_se(o.step * o.dt)
    assert_mc_close(est, ref.expected_years, se, label=f"{label} E[min(tau, T)]")


def test_against_simulation_default_scenario(default_scenario):
    # Quality heterogeneity (quality_hazard 0.3), the mix of start stages and the VC linkage
    # of vc_linked (default x0.75, exits x1.2) against the exact law of the monthly grid.
    res = il.simulate(default_scenario, il.default_structures(), n_portfolios=400,
                      portfolio_size=1000, seed=20261201)  # fmt: skip
    t = default_scenario.horizon_years
    ref = il.cohort(default_scenario, horizon_years=t, grid=True)
    _sim_checks(res["pure_loan"].outcomes, ref, "default scenario")
    vc = il.default_structures()[2]
    assert vc.name == "vc_linked"
    ref_vc = il.cohort(default_scenario, horizon_years=t, grid=True, linkage=vc.linkage)
    _sim_checks(res["vc_linked"].outcomes, ref_vc, "default scenario, vc linkage")
    # the grid bias against the continuous chain, stated: O(dt), a few SE at this size
    cont = il.cohort(default_scenario, horizon_years=t)
    print(f"grid bias of P(alive at T): {ref.alive - cont.alive:+.2e}")
    assert 0.0 < abs(ref.alive - cont.alive) < 0.01


# ------------------------------------------------------------------ the funding cycle


def test_a_cycle_of_neutral_regimes_changes_nothing(default_scenario):
    neutral = il.FundingCycle(hot=il.Regime(), cold=il.Regime())
    sc = default_scenario.model_copy(update={"cycle": neutral})
    for kw in (dict(), dict(horizon_years=3.0), dict(horizon_years=3.0, grid=True)):
        a, b = il.cohort(sc, "early", **kw), il.cohort(default_scenario, "early", **kw)
        for f in ("default", "ipo", "ma", "alive", "expected_years"):
            assert getattr(a, f) == pytest.approx(getattr(b, f), abs=1e-12), (kw, f)
        for stage in a.stages:
            assert a.reach[stage] == pytest.approx(b.reach[stage], abs=1e-12), (kw, stage)


@pytest.mark.parametrize("grid", [False, True])
def test_a_regime_that_never_switches_is_the_scaled_chain(default_scenario, grid):
    cold = il.Regime(default=2.0, exit=0.5, advance=0.6)
    cyc = il.FundingCycle(hot_to_cold=0.0, cold_to_hot=0.0, start="cold", cold=cold)
    sc = default_scenario.model_copy(update={"cycle": cyc})
    scaled = default_scenario.model_copy(update={"stages": [
        st.model_copy(update={"default_hazard": 2.0 * st.default_hazard,
                              "ipo_hazard": 0.5 * st.ipo_hazard, "ma_hazard": 0.5 * st.ma_hazard,
                              "advance_hazard": 0.6 * st.advance_hazard})
        for st in default_scenario.stages]})  # fmt: skip
    a = il.cohort(sc, "seed", horizon_years=4.0, grid=grid)
    b = il.cohort(scaled, "seed", horizon_years=4.0, grid=grid)
    for f in ("default", "ipo", "ma", "alive", "expected_years"):
        assert getattr(a, f) == pytest.approx(getattr(b, f), abs=1e-12), f


def test_cycle_against_simulation(default_scenario):
    # The joint (regime, stage) chain on the grid is what the engine samples, exactly.
    sc = default_scenario.model_copy(update={"cycle": il.FundingCycle()})
    res = il.simulate(sc, il.pure_loan(), n_portfolios=2000, portfolio_size=200,
                      seed=20261202)  # fmt: skip
    ref = il.cohort(sc, horizon_years=sc.horizon_years, grid=True)
    _sim_checks(res["pure_loan"].outcomes, ref, "funding cycle")
    # The cycle's multipliers average 1, but outcomes are not linear in them: state the gap.
    flat = il.cohort(default_scenario, horizon_years=sc.horizon_years, grid=True)
    print(f"P(default by T): cycle {ref.default:.4f}, no cycle {flat.default:.4f}")
    assert abs(ref.default - flat.default) < 0.01
    cont = il.cohort(sc, horizon_years=sc.horizon_years)
    assert abs(cont.default - ref.default) < 0.01  # O(dt) grid bias


def test_against_simulation_from_seed_strong_quality_effect():
    # From seed with the US hazards and a strong quality effect (trapezoidal rule), quarterly.
    sc = chain_scenario(US, quality_hazard=2.0, horizon_years=8.0, steps_per_year=4)
    res = il.simulate(sc, il.pure_loan(maturity_years=1.0), n_portfolios=400,
                      portfolio_size=1000, seed=77)  # fmt: skip
    ref = il.cohort(sc, "seed", horizon_years=8.0, grid=True)
    assert ref.nodes >= 128
    _sim_checks(res["pure_loan"].outcomes, ref, "US seed, quality_hazard 2")


# ------------------------------------------------------------------ errors, output


def test_barrier_and_bad_inputs_raise_naming_the_field(default_scenario):
    barrier = default_scenario.model_copy(update={"default_barrier": 0.3})
    with pytest.raises(ValueError, match=r"default_barrier.*exclude"):
        il.cohort(barrier)
    assert il.cohort(barrier, ignore_barrier=True).default == il.cohort(default_scenario).default
    with pytest.raises(ValueError, match="start_stage: no stage named 'angel'"):
        il.cohort(default_scenario, "angel")
    with pytest.raises(ValueError, match="horizon_years: must be >= 0"):
        il.cohort(default_scenario, horizon_years=-1.0)
    with pytest.raises(ValueError, match=r"horizon_years: 0\.01 y is not a whole number"):
        il.cohort(default_scenario, horizon_years=0.01, grid=True)
    with pytest.raises(ValueError, match="nodes"):
        il.cohort(default_scenario, nodes=0)
    with pytest.raises(TypeError, match="linkage"):
        il.cohort(default_scenario, linkage=0.75)
    # a stage with no hazards: eventual outcomes undefined, a horizon is fine
    stuck = plain_scenario([il.Stage(name="a", advance_hazard=1.0), il.Stage(name="b", weight=0.0)])
    with pytest.raises(ValueError, match=r"stages\[1\] \('b'\) has no hazards"):
        il.cohort(stuck)
    assert il.cohort(stuck, horizon_years=1.0).alive == pytest.approx(1.0)


def test_str_and_to_dict(default_scenario):
    c = il.cohort(default_scenario, "early", horizon_years=3.0)
    text = str(c)
    assert text == repr(c)
    assert text.startswith("Cohort from early, by 3 y (continuous time")
    for s in c.stages:
        assert s in text
    d = json.loads(json.dumps(c.to_dict()))
    # reach is a sum of the chain's law: 1 to within rounding, not bit for bit on every CPU
    np.testing.assert_array_max_ulp(d["reach"]["early"], 1.0, maxulp=8)
    assert d["horizon_years"] == 3.0
    assert d["default"] == c.default and d["nodes"] == c.nodes
    with pytest.raises(ValueError, match="outcome"):
        c.probability("zombie")
    with pytest.raises(TypeError):
        c.reach["early"] = 0.5  # read-only mapping


def test_batched_expm_matches_scipy():
    from scipy.linalg import expm

    rng = np.random.default_rng(3)
    for scale in (0.0, 1e-3, 0.7, 5.0, 300.0, 1e6):
        q = rng.random((20, 6, 6)) * scale
        q[:, np.arange(6), np.arange(6)] = 0.0
        q[:, np.arange(6), np.arange(6)] = -q.sum(axis=-1) - rng.random((20, 6)) * scale
        big = np.zeros((20, 12, 12))
        big[:, :6, :6], big[:, :6, 6:] = q, np.eye(6)
        for a in (q, big):
            ours, ref = cohort_module._expm_batched(a), expm(a)
            assert np.max(np.abs(ours - ref)) <= 1e-13 * max(1.0, np.max(np.abs(ref))), scale


def test_printed_table_is_exact():
    sc = il.Scenario(
        stages=[il.Stage(name="s", default_hazard=0.1, ipo_hazard=0.1)], quality_hazard=0.0
    )
    assert str(il.cohort(sc, "s")).split("\n") == [
        "Cohort from s, eventual (continuous time; quality over 1 node)",
        "stage       start   reach  years in",
        "s           1.000   1.000     5.000",
        "outcome: default 0.5000  IPO 0.5000  M&A 0.0000",
        "expected years to absorption E[tau] = 5.0000",
    ]
    # by 1 year: alive exp(-0.2), years in (1 - exp(-0.2)) / 0.2, each event half the rest
    assert str(il.cohort(sc, "s", horizon_years=1.0)).split("\n") == [
        "Cohort from s, by 1 y (continuous time; quality over 1 node)",
        "stage       start   reach  years in  alive in",
        "s           1.000   1.000     0.906     0.819",
        "outcome: default 0.0906  IPO 0.0906  M&A 0.0000  alive 0.8187",
        "expected years to absorption E[min(tau, T)] = 0.9063",
    ]


def test_unknown_start_stage_lists_the_stages(default_scenario):
    names = [s.name for s in default_scenario.stages]
    with pytest.raises(ValueError) as info:
        il.cohort(default_scenario, "angel")
    assert str(info.value) == f"start_stage: no stage named 'angel'; stages are {names}"
