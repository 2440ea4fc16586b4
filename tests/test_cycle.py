"""The funding cycle (hot/cold regime per portfolio) and the annual-capped risk pool.

Exact checks on hand-set inputs for the pool and the regime's exit multiple, the regime chain
against its closed-form law, hazards in a fixed regime against the competing-risks formula,
and the cpu backend against the numpy oracle with both features on.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import invlend as il
from conftest import assert_mc_close, binomial_se, one_stage, plain_scenario
from invlend._sim import layout as K
from invlend.rng import counter_table, portfolio_keys, regime_paths, root_key
from test_kernels import DEFAULT, IPO, NONE, R, d, evaluate


@pytest.fixture(scope="module")
def grid() -> il.Scenario:
    """Quarterly steps over 2 years at the discount rate of ``d`` (as in test_kernels)."""
    market = il.Market(discount_rate=R, factor_loading=0.0)
    return plain_scenario([one_stage()], market=market, horizon_years=2.0, steps_per_year=4,
                          ipo_multiple=1.5)  # fmt: skip


# ---------------------------------------------------------------------------- configuration


def test_default_cycle_multipliers_average_one_over_the_stationary_law():
    c = il.FundingCycle()
    assert c.stationary_cold == pytest.approx(1 / 3)
    for field in ("advance", "exit", "default", "exit_multiple"):
        mean = (1 - c.stationary_cold) * getattr(c.hot, field) + c.stationary_cold * getattr(
            c.cold, field
        )
        assert mean == pytest.approx(1.0, abs=1e-12), field


def test_transition_probabilities_are_the_exact_two_state_law():
    c = il.FundingCycle(hot_to_cold=0.3, cold_to_hot=0.9)
    p_hc, p_ch = c.transition(0.5)
    total = 1.2
    assert p_hc == pytest.approx(0.3 / total * (1 - math.exp(-total * 0.5)), rel=1e-14)
    assert p_ch == pytest.approx(0.9 / total * (1 - math.exp(-total * 0.5)), rel=1e-14)
    assert il.FundingCycle(hot_to_cold=0, cold_to_hot=0, start="hot").transition(1.0) == (0, 0)


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        (dict(hot_to_cold=-1.0), "hot_to_cold"),
        (dict(start="warm"), "start"),
        (dict(hot_to_cold=0.0, cold_to_hot=0.0), "start"),
        (dict(cold=dict(default=-0.5)), "cold.default"),
        (dict(hot=dict(exit_multiple=0.0)), "hot.exit_multiple"),
        (dict(hot=dict(boom=2.0)), "hot.boom"),
    ],
)
def test_bad_cycle_names_the_field(fields, needle):
    with pytest.raises(ValueError, match=needle.split(".")[-1]) as info:
        il.FundingCycle(**fields)
    assert needle.split(".")[0] in str(info.value)


def test_pool_and_share_cannot_cover_more_than_the_loss():
    loan = il.Loan()
    with pytest.raises(ValueError, match=r"risk_pool\.covered_fraction"):
        il.Structure(
            name="x",
            loan=loan,
            risk_share=il.RiskShare(covered_fraction=0.6),
            risk_pool=il.RiskPool(covered_fraction=0.5),
        )
    with pytest.raises(ValueError, match="annual_cap"):
        il.RiskPool(annual_cap=-0.1)


def test_scenario_with_a_cycle_round_trips_through_toml(tmp_path):
    sc = il.Scenario.default().model_copy(
        update={"cycle": il.FundingCycle(start="cold", cold=il.Regime(default=3.0))}
    )
    sc = il.Scenario.model_validate(sc.model_dump())
    path = tmp_path / "cycle.toml"
    sc.to_toml(path)
    assert "[cycle.cold]" in path.read_text()
    assert il.Scenario.from_toml(path) == sc
    flat = il.Scenario.default().model_copy(update={"cycle": None})
    assert "cycle" not in flat.to_toml()  # off: nothing written


# ---------------------------------------------------------------------------- regime chain


def test_regime_paths_follow_the_two_state_law():
    c = il.FundingCycle(hot_to_cold=0.4, cold_to_hot=0.6, start="hot")
    dt, n_steps, n_port = 0.25, 24, 40_000
    ctr = counter_table(n_steps)
    keys = portfolio_keys(root_key(7), np.arange(n_port))
    r = regime_paths(keys, ctr, n_steps, c.initial_cold, *c.transition(dt))
    assert r.dtype == np.int8 and r.shape == (n_port, n_steps)
    assert np.all(r[:, 0] == 0)
    pi = c.stationary_cold
    for j in (1, 4, 23):
        exact = pi * (1 - math.exp(-(0.4 + 0.6) * j * dt))  # P(cold at time j dt | hot at 0)
        assert_mc_close(
            r[:, j].mean(), exact, binomial_se(exact, n_port), label=f"P(cold) at step {j}"
        )
    # The same keys give the same paths; a range of portfolios is a slice of the whole.
    part = regime_paths(keys[100:200], ctr, n_steps, c.initial_cold, *c.transition(dt))
    assert np.array_equal(part, r[100:200])


def _one_stage_cycle(**cycle) -> il.Scenario:
    stage = one_stage(default_hazard=0.2, ipo_hazard=0.1, ma_hazard=0.05)
    return plain_scenario([stage], horizon_years=2.0, steps_per_year=12).model_copy(
        update={"cycle": il.FundingCycle(**cycle)}
    )


@pytest.mark.parametrize("start", ["hot", "cold"])
def test_hazards_in_a_fixed_regime_follow_competing_risks(start):
    hot = il.Regime(default=0.5, exit=1.5)
    cold = il.Regime(default=2.0, exit=0.5)
    sc = _one_stage_cycle(hot_to_cold=0.0, cold_to_hot=0.0, start=start, hot=hot, cold=cold)
    res = il.simulate(sc, il.pure_loan(maturity_years=1.0), n_portfolios=400,
                      portfolio_size=100, seed=11)  # fmt: skip
    ev = res["pure_loan"].outcomes.event
    assert np.all(res["pure_loan"].outcomes.regime == (start == "cold"))
    m = hot if start == "hot" else cold
    ld, li, lm = 0.2 * m.default, 0.1 * m.exit, 0.05 * m.exit
    total = ld + li + lm
    for code, lam in ((DEFAULT, ld), (IPO, li)):
        p = lam / total * (1 - math.exp(-total * 2.0))
        assert_mc_close((ev == code).mean(), p, binomial_se(p, ev.size),
                        label=f"{start}: P(event {code} by 2y)")  # fmt: skip


def test_cpu_and_numpy_agree_with_a_cycle_and_a_pool():
    sc = il.Scenario.default().model_copy(update={"cycle": il.FundingCycle(start="stationary")})
    pooled = il.pure_loan().model_copy(update={"name": "pooled", "risk_pool": il.RiskPool()})
    structs = [*il.default_structures(), pooled]
    a = il.simulate(sc, structs, n_portfolios=30, portfolio_size=40, seed=5)
    b = il.simulate(sc, structs, n_portfolios=30, portfolio_size=40, seed=5, backend="numpy")
    assert 0.0 < a.cold_share.mean() < 1.0
    np.testing.assert_array_equal(a.cold_share, b.cold_share)
    for name in a:
        ra, rb = a[name], b[name]
        np.testing.assert_array_equal(ra.outcomes.event, rb.outcomes.event)
        np.testing.assert_array_equal(ra.outcomes.step, rb.outcomes.step)
        np.testing.assert_array_equal(ra.outcomes.regime, rb.outcomes.regime)
        np.testing.assert_allclose(ra.npv, rb.npv, rtol=1e-12, atol=1e-12, equal_nan=True)
        np.testing.assert_allclose(ra.aggregates, rb.aggregates, rtol=1e-11, atol=1e-9)
        np.testing.assert_allclose(ra.pool_paid, rb.pool_paid, rtol=1e-13)
    assert a["pooled"].pool_paid.sum() > 0
    assert np.all(a["pooled"].pool_paid <= a["pooled"].pool_claims + 1e-12)


def test_the_cycle_fattens_the_loss_tail_at_a_similar_mean():
    # Without the market factor the flat scenario's defaults are independent given the
    # portfolio, so the cycle is the only source of clustering: its effect stands out.
    sc = il.Scenario.default()
    base = sc.model_copy(
        update={"market": sc.market.model_copy(update={"factor_loading": 0.0}), "cycle": None}
    )
    cyc = base.model_copy(update={"cycle": il.FundingCycle()})
    kw = dict(n_portfolios=4000, portfolio_size=200, seed=2026, keep="aggregates")
    loan = il.pure_loan()
    flat = il.simulate(base, loan, **kw).summary(n_boot=200)["pure_loan"]
    cycle = il.simulate(cyc, loan, **kw).summary(n_boot=200)["pure_loan"]
    # Mean-preserving multipliers keep the mean loss within a few tenths of a point ...
    assert abs(cycle["expected_loss"].estimate - flat["expected_loss"].estimate) < 0.004
    # ... while the 99% loss quantile rises well beyond its standard errors.
    se = math.hypot(cycle["loss_var_99"].se, flat["loss_var_99"].se)
    z = (cycle["loss_var_99"].estimate - flat["loss_var_99"].estimate) / se
    print(f"VaR99 with the cycle - without: z={z:+.1f}")
    assert z > 4


# ---------------------------------------------------------------------------- hand-set pool

POOL_LOAN = il.Loan(loan_to_value=0.5, rate=0.0, maturity_years=2.0, upfront_fee=0.0,
                    recovery_rate=0.0, collateral=0.0)  # fmt: skip


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_pool_pays_each_year_up_to_its_cap(backend, grid):
    # Quarterly steps over 2 years; P = 50 per firm, lent 150; cap 0.2 * 150 = 30 per year.
    pool = il.RiskPool(covered_fraction=0.8, annual_cap=0.2)
    structure = il.Structure(name="p", loan=POOL_LOAN, risk_pool=pool)
    firms = [
        dict(event=DEFAULT, step=2, value=0.0, v0=100.0),  # year 1: claim 40
        dict(event=DEFAULT, step=3, value=0.0, v0=100.0),  # year 1: claim 40
        dict(event=DEFAULT, step=7, value=0.0, v0=100.0),  # year 2: claim 40
    ]
    out = evaluate(backend, grid, structure, firms, 3)
    np.testing.assert_allclose(out["pool_claims"], [[80.0, 40.0]], rtol=1e-15)
    np.testing.assert_allclose(out["pool_paid"], [[30.0, 30.0]], rtol=1e-15)
    # Each year-1 claimant gets half of 30 at the end of year 1 (step 4); the year-2 claimant
    # gets 30 at step 8. Without the pool each NPV is -50 (nothing repaid, nothing recovered).
    expected = [-50 + 15 * d(4), -50 + 15 * d(4), -50 + 30 * d(8)]
    np.testing.assert_allclose(out["npv"], expected, rtol=1e-13)
    agg = out["agg"][0]
    assert agg[K.AGG_POOL_PAID] == pytest.approx(60.0)
    assert agg[K.AGG_POOL_CLAIMS] == pytest.approx(120.0)
    assert agg[K.AGG_LOSS_NET] == pytest.approx(150.0 - 60.0)
    assert agg[K.AGG_NPV] == pytest.approx(sum(expected), rel=1e-13)
    assert out["cf"][0, 4] == pytest.approx(30.0) and out["cf"][0, 8] == pytest.approx(30.0)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_exit_multiple_scales_with_the_regime_of_the_exit(backend, grid):
    cycle = il.FundingCycle(hot=il.Regime(exit_multiple=1.2), cold=il.Regime(exit_multiple=0.5))
    sc = grid.model_copy(update={"cycle": cycle})
    eq = il.Structure(name="e", loan=POOL_LOAN, equity=il.Equity(equity_to_value=0.1))
    firms = [
        dict(event=IPO, step=3, value=200.0, v0=100.0, regime=0),
        dict(event=IPO, step=3, value=200.0, v0=100.0, regime=1),
        dict(event=NONE, step=8, value=200.0, v0=100.0, chk=200.0, regime=1),
    ]
    out = evaluate(backend, sc, eq, firms, 3)
    ipo = sc.ipo_multiple
    # Equity 10% of the firm paid out of (exit value - loan balance 50) at the exit step.
    up = [0.1 * (200 * ipo * 1.2 - 50) * d(3), 0.1 * (200 * ipo * 0.5 - 50) * d(3),
          0.1 * (200 - 50) * d(8)]  # fmt: skip
    np.testing.assert_allclose(out["upside"], up, rtol=1e-13)


def test_compare_runs_pairs_the_cycle_with_the_flat_run():
    sc = il.Scenario.default()
    flat = sc.replace(market=sc.market.replace(factor_loading=0.0), cycle=None)
    kw = dict(n_portfolios=4000, portfolio_size=200, seed=2026, keep="aggregates")
    a = il.simulate(flat.replace(cycle=il.FundingCycle()), il.pure_loan(), **kw)
    b = il.simulate(flat, il.pure_loan(), **kw)
    c = a.compare_runs(b, n_boot=200)["pure_loan"]
    sa, sb = a.summary(n_boot=200)["pure_loan"], b.summary(n_boot=200)["pure_loan"]
    for m in ("expected_loss", "loss_var_99", "economic_capital"):
        assert c[m].estimate == pytest.approx(sa[m].estimate - sb[m].estimate, abs=1e-15)
    # pairing by portfolio: the SE of the difference is below the unpaired one
    unpaired = math.hypot(sa["expected_loss"].se, sb["expected_loss"].se)
    assert c["expected_loss"].se < unpaired
    print(f"VaR99 paired: {c['loss_var_99'].estimate:+.4f} ± {c['loss_var_99'].se:.4f}")
    assert c["loss_var_99"].z > 4
    with pytest.raises(ValueError, match="seed"):
        a.compare_runs(il.simulate(flat, il.pure_loan(), **{**kw, "seed": 1}))
    with pytest.raises(TypeError, match="other"):
        a.compare_runs(a["pure_loan"])
