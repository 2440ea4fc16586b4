"""Importance sampling of the systematic drivers (invlend.tail) and runs to a tolerance.

Monte Carlo checks have fixed seeds and tolerances in standard errors; each prints its z-score.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from scipy import optimize, stats

import invlend as il
from invlend import closed_forms as cf
from invlend import metrics as M
from invlend.tail import sample, upper_quantile

SC = il.Scenario.default()
TILT = il.Tilt(market=-0.3, quality=-0.03, regime=(0.6, 0.05, 0.02))


def _run(tail, n=60, size=40, **kw):
    return il.simulate(SC, n_portfolios=n, portfolio_size=size, seed=11, keep="aggregates",
                       tail=tail, **kw)  # fmt: skip


# ------------------------------------------------------------------------------ inputs


def test_bad_tilts_are_refused_naming_the_field():
    with pytest.raises(ValueError, match="tail: market: one shift per step needs 60"):
        _run(il.Tilt(market=(0.1, 0.2)))
    no_cycle = SC.replace(cycle=None)
    with pytest.raises(ValueError, match="tail: regime: the scenario has no funding cycle"):
        il.simulate(no_cycle, n_portfolios=2, portfolio_size=2, tail=TILT)
    with pytest.raises(ValueError, match=r"P\(hot -> cold\) must be strictly between 0 and 1"):
        _run(il.Tilt(regime=(0.5, 0.0, 0.1)))
    with pytest.raises(ValueError, match=r"tail: expected None, 'auto' or an invlend\.Tilt"):
        _run("fast")
    with pytest.raises(il.InputError, match="mixture"):
        il.Tilt(mixture=1.0)
    with pytest.raises(il.InputError, match="market"):
        il.Tilt(market=float("nan"))


def test_bad_tolerances_are_refused_before_any_work():
    with pytest.raises(ValueError, match="did you mean economic_capital"):
        _run(None, tolerance={"economic_capitl": 0.02})
    with pytest.raises(ValueError, match=r"tolerance\['loss_var_999'\]"):
        _run(None, tolerance={"loss_var_999": 0.0})
    with pytest.raises(ValueError, match="max_portfolios: only a run with a tolerance"):
        _run(None, max_portfolios=100)
    with pytest.raises(ValueError, match="max_portfolios: the budget"):
        _run(None, tolerance={"expected_loss": 0.1}, max_portfolios=10)


# ------------------------------------------------------------------------- the weights


def test_a_zero_tilt_is_plain_sampling_bit_for_bit():
    plain, zero = _run(None), _run(il.Tilt(market=0.0, mixture=0.0))
    assert np.all(zero.weights == 1.0)
    for n in plain:
        assert np.array_equal(plain[n].aggregates, zero[n].aggregates)
    s0, s1 = plain.summary(n_boot=50), zero.summary(n_boot=50)
    for n in plain:
        for m in M.METRICS:
            a, b = s0[n][m], s1[n][m]
            assert a.estimate == b.estimate or (math.isnan(a.estimate) and math.isnan(b.estimate))


def test_tilted_runs_do_not_depend_on_chunks_executor_or_backend():
    a = _run(TILT)
    b = _run(TILT, chunk_firms=200)
    with ThreadPoolExecutor(2) as ex:
        c = _run(TILT, chunk_firms=400, executor=ex)
    d = _run(TILT, backend="numpy")
    assert a.tilt == TILT and np.array_equal(a.log_weights, d.log_weights)
    for other in (b, c):
        assert np.array_equal(a.log_weights, other.log_weights)
        for n in a:
            assert np.array_equal(a[n].aggregates, other[n].aggregates)
    for n in a:  # numpy's vectorised kernels agree with numba's to rounding
        np.testing.assert_allclose(d[n].aggregates, a[n].aggregates, rtol=1e-9, atol=1e-6)


def test_the_log_weight_is_the_density_ratio_of_the_sampled_draws():
    """Recompute log dP/dQ of each portfolio from its draws with scipy's densities."""
    sk = int(il.rng.root_key(42))
    size = 7
    regime = (SC.cycle.initial_cold, *SC.cycle.transition(SC.dt))
    got = sample(sk, 0, 30, SC.n_steps, size, regime, TILT, quality_mean=True)
    plain = sample(sk, 0, 30, SC.n_steps, size, regime, None)
    m = TILT.shifts(SC.n_steps)
    tilted = got.quality_shift != 0.0
    assert 0 < tilted.sum() < 30  # both parts of the mixture occur
    for p in range(30):
        x = got.market[p]
        log_q = stats.norm.logpdf(x - m).sum()
        q = got.quality_mean[p] * size  # the portfolio's sum of qualities: N(size * delta, size)
        log_p = stats.norm.logpdf(x).sum() + stats.norm.logpdf(q, 0.0, math.sqrt(size))
        log_q = log_q + stats.norm.logpdf(q, size * TILT.quality, math.sqrt(size))
        c = got.regime[p].astype(bool)
        for probs, acc in ((regime, "p"), (TILT.regime, "q")):
            c0, hc, ch = probs
            lp = math.log(c0 if c[0] else 1 - c0)
            for j in range(1, c.size):
                lp += math.log((1 - ch if c[j] else ch) if c[j - 1] else (hc if c[j] else 1 - hc))
            if acc == "p":
                log_p += lp
            else:
                log_q += lp
        lam = TILT.mixture
        want = log_p - np.logaddexp(math.log(lam) + log_p, math.log1p(-lam) + log_q)
        assert got.log_weight[p] == pytest.approx(want, abs=1e-9)
        if not tilted[p]:  # the real-world part of the mixture draws the plain paths
            assert np.array_equal(x, plain.market[p])
            assert np.array_equal(got.regime[p], plain.regime[p])


def test_weights_average_one():
    res = _run(TILT, n=4000, size=5)
    w = res.weights
    z = (w.mean() - 1.0) / (w.std(ddof=1) / math.sqrt(w.size))
    print(f"mean weight {w.mean():.4f}, z = {z:+.2f}, max {w.max():.3f}")
    assert abs(z) < 4.0
    assert w.max() <= 1.0 / TILT.mixture + 1e-12


# --------------------------------------------------------------- IS against plain sampling


def _agree(plain, tilted, metrics, names=None):
    sp, st = plain.summary(n_boot=300), tilted.summary(n_boot=300)
    for n in names or list(plain):
        for m in metrics:
            a, b = sp[n][m], st[n][m]
            z = (b.estimate - a.estimate) / math.hypot(a.se, b.se)
            # Variance per portfolio, plain over IS: the variance reduction factor.
            vr = (a.se / b.se) ** 2 * plain.n_portfolios / tilted.n_portfolios
            print(f"{n:>13} {m:<17} plain {a.estimate:.5f} ± {a.se:.5f}  IS {b.estimate:.5f} "
                  f"± {b.se:.5f}  z = {z:+.2f}  variance reduction {vr:.1f}x")  # fmt: skip
            assert abs(z) < 4.0


TAILS = ("expected_loss", "loss_var_999", "loss_es_999", "economic_capital", "credit_capital",
         "npv_per_principal")  # fmt: skip


def test_importance_sampling_agrees_with_plain_sampling_default_scenario():
    kw = dict(portfolio_size=40, keep="aggregates", measures="real_world")
    plain = il.simulate(SC, n_portfolios=12_000, seed=5, **kw)
    tilt = il.find_tilt(SC, portfolio_size=40, pilot_portfolios=1000, seed=5)
    tilted = il.simulate(SC, n_portfolios=4000, seed=6, tail=tilt, **kw)
    _agree(plain, tilted, TAILS, ["pure_loan", "warrant_loan"])


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, scenario",
    [
        ("loading 0.6", SC.replace(market=SC.market.replace(factor_loading=0.6))),
        ("no cycle", SC.replace(cycle=None)),
    ],
)
def test_importance_sampling_agrees_with_plain_sampling(name, scenario):
    kw = dict(portfolio_size=50, keep="aggregates", measures="real_world")
    plain = il.simulate(scenario, n_portfolios=30_000, seed=7, **kw)
    tilted = il.simulate(scenario, n_portfolios=8000, seed=8, tail="auto", **kw)
    print(name, tilted.tilt)
    _agree(plain, tilted, TAILS)


# --------------------------------------------------------------- Vasicek's closed form


def _vasicek(size: int):
    p, rho, sigma = 0.02, 0.12, 0.30
    ltv = math.exp(-0.5 * sigma**2 + sigma * float(stats.norm.ppf(p)))
    sc = il.Scenario(
        stages=[il.Stage(name="s", volatility=sigma, default_hazard=0.0, ipo_hazard=0.0,
                         ma_hazard=0.0, advance_hazard=0.0)],
        market=il.Market(discount_rate=0.0, factor_loading=math.sqrt(rho), jump_rate=0.0),
        horizon_years=1.0, default_barrier=0.0, value_dispersion=0.0, quality_drift=0.0,
        quality_hazard=0.0, ipo_multiple=1.0, ma_multiple=1.0, distress_value=1.0, cycle=None,
    )  # fmt: skip
    loan = il.Structure(name="loan", loan=il.Loan(loan_to_value=ltv, rate=0.0,
                        maturity_years=1.0, recovery_rate=0.0))  # fmt: skip
    return sc, loan, p, rho


def test_importance_sampled_quantile_matches_vasicek():
    """One-period Vasicek portfolio: the IS 99.9% loss quantile against the closed form.

    Default only at maturity, asset correlation rho = a^2; given the factor the loss of N
    names is binomial, so the law of the loss rate is the finite-N Vasicek mixture
    (closed_forms.vasicek_finite_cdf), whose 99.9% quantile approaches the large-portfolio
    one (Vasicek 2002) as N grows. The market shift puts the factor near its 0.1% quantile:
    12 monthly normals shifted by -3.09 / sqrt(12) each.
    """
    size = 400
    sc, loan, p, rho = _vasicek(size)
    tilt = il.Tilt(market=-3.09 / math.sqrt(12), mixture=0.1)
    res = il.simulate(sc, loan, n_portfolios=4000, portfolio_size=size, seed=3, tail=tilt,
                      keep="aggregates", measures="real_world")  # fmt: skip
    loss = res["loan"].portfolio_loss_rate
    w = res.weights
    x = cf.vasicek_quantile(p, rho, 0.999)
    # The IS estimate of P(L > x) against the finite-N mixture.
    hits = w * (loss > x + 1e-12)
    est, se = hits.mean(), hits.std(ddof=1) / math.sqrt(hits.size)
    ref = 1.0 - cf.vasicek_finite_cdf(x + 1e-12, p, rho, size)
    z = (est - ref) / se
    plain_se = math.sqrt(ref * (1 - ref) / hits.size)
    print(f"P(L > {x:.4f}) IS {est:.6f} ± {se:.6f}, finite-N Vasicek {ref:.6f}, z = {z:+.2f}, "
          f"variance reduction {(plain_se / se) ** 2:.0f}x")  # fmt: skip
    assert abs(z) < 4.0 and (plain_se / se) ** 2 > 20
    # The summary's IS quantile against the finite-N quantile, in its bootstrap SE.
    q = res.summary(n_boot=300)["loan"]["loss_var_999"]

    def tail_gap(t):
        return 1.0 - cf.vasicek_finite_cdf(t, p, rho, size) - 0.001

    ref_q = optimize.brentq(tail_gap, 0.5 * x, 1.5 * x, xtol=1e-7)
    z = (q.estimate - ref_q) / max(q.se, 0.5 / size)  # the loss rate moves in steps of 1/N
    print(f"VaR 99.9%: IS {q.estimate:.5f} ± {q.se:.5f}, finite-N {ref_q:.5f}, LHP {x:.5f}, "
          f"z = {z:+.2f}")  # fmt: skip
    assert abs(z) < 4.0


# ----------------------------------------------------------------------- finding the tilt


def test_find_tilt_is_reproducible_and_points_at_bad_markets():
    a = il.find_tilt(SC, portfolio_size=40, pilot_portfolios=500, seed=2)
    b = il.find_tilt(SC, portfolio_size=40, pilot_portfolios=500, seed=2)
    assert a == b
    first_year = a.shifts(SC.n_steps)[:12]
    print(a, a.pilot["rounds"])
    assert first_year.mean() < 0.0  # the first year's market drives the 99.9% tail
    assert a.regime[0] >= SC.cycle.initial_cold  # and a cold start
    crit = a.pilot["criterion"]
    assert crit[str(a.pilot["scale"])] == min(crit.values())  # the least estimated variance
    assert a.pilot["method"] == "cross_entropy" and a.pilot["seed"] == 2


def test_upper_quantile_is_the_plain_quantile_with_unit_weights():
    x = np.random.default_rng(0).normal(size=1001)
    assert upper_quantile(x, np.ones(x.size), 0.99) == M.value_at_risk(x, 0.99)


# ------------------------------------------------------------------- runs to a tolerance


def test_a_run_to_a_tolerance_extends_a_run_and_records_how_it_stopped():
    kw = dict(portfolio_size=30, keep="aggregates", measures="real_world", seed=4)
    res = il.simulate(SC, n_portfolios=200, tolerance={"expected_loss": 0.03}, **kw)
    stop = res.stopping
    print(stop)
    assert (
        stop["reached"]
        and stop["batches"][0] == 200
        and stop["batches"][-1] == len(res.log_weights)
    )
    assert stop["precision"]["expected_loss"] <= 0.03
    same = il.simulate(SC, n_portfolios=res.n_portfolios, **kw)
    for n in res:
        assert np.array_equal(res[n].aggregates, same[n].aggregates)
    capped = il.simulate(SC, n_portfolios=100, tolerance={"loss_var_999": 0.5},
                         max_portfolios=150, **kw)  # fmt: skip
    # Loose enough in SE, but 150 portfolios leave too few beyond the 99.9% quantile to trust.
    assert capped.n_portfolios == 150 and not capped.stopping["reached"]
    assert capped.stopping["reason"] == "max_portfolios spent"
    assert capped.stopping["tail_points"]["loss_var_999"] < capped.stopping["min_tail_points"]


def test_tilted_results_survive_save_and_load(tmp_path):
    res = _run(TILT)
    res.save(tmp_path / "r.invlend")
    back = il.load(tmp_path / "r.invlend")
    assert back.tilt == TILT
    assert np.array_equal(back.log_weights, res.log_weights)
    assert (
        back.summary(n_boot=20)["pure_loan"]["loss_var_999"]
        == res.summary(n_boot=20)["pure_loan"]["loss_var_999"]
    )


# ------------------------------------------------------------------ plots and the CLI


def test_plots_of_a_tilted_run_show_the_weighted_estimates():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = il.simulate(SC, n_portfolios=400, portfolio_size=20, seed=9, tail=TILT)
    s = res.summary(n_boot=0)["pure_loan"]
    ax = il.plotting.plot_loss_distribution(res, structures=["pure_loan"])
    xs = [line.get_xdata()[0] for line in ax.get_lines() if len(line.get_xdata()) == 2]
    for m in ("expected_loss", "loss_var_99", "loss_es_99", "loss_var_999", "loss_es_999"):
        assert min(abs(x - s[m].estimate) for x in xs) < 1e-12, m
    assert "weighted" in ax.get_ylabel()
    ax = il.plotting.plot_npv_distribution(res, ax=plt.subplots()[1], structures=["pure_loan"])
    y = ax.get_lines()[0].get_ydata()
    assert y[-1] == pytest.approx(1.0) and np.all(np.diff(y) >= 0)
    il.plotting.plot_cumulative_incidence(res, ax=plt.subplots()[1])
    il.plotting.plot_loss_by_regime(res, ax=plt.subplots()[1])
    fan = il.simulate(SC, n_portfolios=40, portfolio_size=20, seed=9, tail=TILT, sample_paths=400)
    il.plotting.plot_value_fan(fan, ax=plt.subplots()[1])
    plt.close("all")


def test_cli_compare_runs_to_a_tolerance_with_importance_sampling(capsys):
    from invlend import cli

    argv = ["compare", "--portfolios", "300", "--size", "20", "--bootstrap", "100", "--keep",
            "aggregates", "--measures", "real_world", "--tail", "auto", "--tolerance",
            "expected_loss=0.05", "--max-portfolios", "2000"]  # fmt: skip
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "stopped after" in out and "importance sampling, every estimate weighted" in out
    assert cli.main(["compare", "--tolerance", "economic_capitl=0.1"]) == 2
    err = capsys.readouterr().err
    assert "--tolerance: unknown metric 'economic_capitl'" in err and "economic_capital" in err
    assert cli.main(["compare", "--tolerance", "nonsense"]) == 2
    assert "METRIC=REL" in capsys.readouterr().err
