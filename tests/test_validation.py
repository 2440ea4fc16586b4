"""`invlend validate`: the closed forms themselves, the validation cases, the command line."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from conftest import Z_RECORDS
from invlend import cli, validation
from invlend import closed_forms as cf

# --------------------------------------------------------------- closed forms vs sources
# The worked values below are [C]: computed from the published formulas (Merton 1974, Black &
# Cox 1976, Broadie, Glasserman & Kou 1997, Galai & Schneller 1978 with Hull's warrant example,
# Merton 1976, Vasicek 2002; see docs/sources.md) and checked by independent Monte Carlo.


def test_black_scholes_against_numerical_integration():
    # E[e^{-rT} (S_T - K)^+] with S_T lognormal, integrated by scipy: an independent route.
    for s, k, r, sigma, t in ((100, 100, 0.05, 0.2, 1.0), (40, 60, 0.03, 0.3, 5.0)):
        m = math.log(s) + (r - 0.5 * sigma**2) * t
        sd = sigma * math.sqrt(t)

        def payoff(x, k=k, m=m, sd=sd):
            return max(math.exp(x) - k, 0.0) * stats.norm.pdf(x, m, sd)

        ref = math.exp(-r * t) * integrate.quad(payoff, math.log(k), m + 12 * sd)[0]
        assert cf.bs_call(s, k, r, sigma, t) == pytest.approx(ref, rel=1e-9)
        parity = cf.bs_call(s, k, r, sigma, t) - cf.bs_put(s, k, r, sigma, t)
        assert parity == pytest.approx(s - k * math.exp(-r * t), rel=1e-12)


def test_galai_schneller_hull_example():
    # Hull's warrant example [R]: N = 1e6, M = 2e5, S = 40, K = 60, T = 5, r = 3%, sigma = 30%.
    call = cf.bs_call(40.0, 60.0, 0.03, 0.30, 5.0)
    assert call == pytest.approx(7.0402, abs=5e-5)
    assert call / 1.2 == pytest.approx(5.8669, abs=5e-5)


@pytest.mark.parametrize(
    ("v0", "face", "r", "sigma", "t", "debt"),
    [
        (100, 70, 0.05, 0.25, 1, 66.1435),
        (100, 90, 0.03, 0.40, 3, 65.5015),
        (100, 50, 0.03, 0.90, 5, 19.6909),
    ],
)
def test_merton_debt_matches_worked_values(v0, face, r, sigma, t, debt):
    assert cf.merton_debt(v0, face, r, sigma, t) == pytest.approx(debt, abs=5e-5)


@pytest.mark.parametrize(
    ("b", "mu", "sigma", "t", "gamma", "p"),
    [
        (60, 0.10, 0.50, 3, 0.0, 0.583596),
        (70, 0.05, 0.30, 5, 0.0, 0.583125),
        (60, 0.10, 0.50, 3, 0.03, 0.617249),
    ],
)
def test_black_cox_matches_worked_values(b, mu, sigma, t, gamma, p):
    assert cf.black_cox_default(100, b, mu, sigma, t, gamma) == pytest.approx(p, abs=5e-7)


@pytest.mark.parametrize(("args"), [(100, 60, 0.10, 0.50, 3.0), (100, 70, 0.05, 0.30, 5.0)])
def test_black_cox_against_quantlib_binary_barrier(args):
    ql = pytest.importorskip("QuantLib")
    v0, b, mu, sigma, t = args
    today = ql.Date(2, 1, 2025)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    maturity = today + round(t * 365)
    tt = dc.yearFraction(today, maturity)
    # Zero rate and a dividend yield of -mu give the drift mu; a down-and-in cash-or-nothing
    # paying 1 at expiry is then worth the probability of touching the barrier.
    process = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(v0)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, -mu, dc, ql.Continuous)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, 0.0, dc)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), sigma, dc)),
    )
    option = ql.BarrierOption(
        ql.Barrier.DownIn,
        b,
        0.0,
        ql.CashOrNothingPayoff(ql.Option.Call, 0.0, 1.0),
        ql.AmericanExercise(today, maturity, True),
    )
    option.setPricingEngine(ql.AnalyticBinaryBarrierEngine(process))
    assert cf.black_cox_default(v0, b, mu, sigma, tt) == pytest.approx(option.NPV(), abs=1e-10)


def test_black_scholes_against_quantlib():
    ql = pytest.importorskip("QuantLib")
    today = ql.Date(2, 1, 2025)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    maturity = today + 365 * 3
    t = dc.yearFraction(today, maturity)
    process = ql.BlackScholesProcess(
        ql.QuoteHandle(ql.SimpleQuote(100.0)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, 0.03, dc, ql.Continuous)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), 0.4, dc)),
    )
    option = ql.VanillaOption(
        ql.PlainVanillaPayoff(ql.Option.Call, 90.0), ql.EuropeanExercise(maturity)
    )
    option.setPricingEngine(ql.AnalyticEuropeanEngine(process))
    assert cf.bs_call(100.0, 90.0, 0.03, 0.4, t) == pytest.approx(option.NPV(), rel=1e-10)


@pytest.mark.parametrize(("m", "bgk", "mc"), [(12, 0.4781, 0.4823), (36, 0.5215, 0.5231)])
def test_bgk_and_exact_discrete_barrier_match_worked_values(m, bgk, mc):
    # Black-Cox case with the BGK shift [C], to 4 dp; the independent MC used 400k paths (SE
    # about 0.0008).
    shifted = cf.bgk_barrier(60.0, 0.5, 3.0 / m)
    assert cf.black_cox_default(100, shifted, 0.10, 0.5, 3.0) == pytest.approx(bgk, abs=5e-5)
    exact = cf.discrete_barrier_default(100, 60, 0.10, 0.5, 3.0, m)
    se = math.sqrt(mc * (1 - mc) / 400_000)
    assert abs(exact - mc) <= 4 * se + 5e-5, f"z={(exact - mc) / se:+.2f}"


def test_exact_discrete_barrier_with_one_date_is_a_normal_probability():
    p = cf.discrete_barrier_default(100, 60, 0.10, 0.5, 3.0, 1)
    z = (math.log(0.6) - (0.10 - 0.125) * 3.0) / (0.5 * math.sqrt(3.0))
    assert p == pytest.approx(stats.norm.cdf(z), abs=1e-6)  # quadrature error ~1e-7


def test_merton_jump_call_matches_worked_value_and_reduces_to_black_scholes():
    assert cf.merton_jump_call(100, 100, 0.05, 0.2, 1.0, 1.0, -0.1, 0.15) == pytest.approx(
        12.7613, abs=5e-5
    )
    assert cf.merton_jump_call(100, 90, 0.05, 0.2, 1.0, 0.0, -0.1, 0.15) == pytest.approx(
        cf.bs_call(100, 90, 0.05, 0.2, 1.0), rel=1e-12
    )


def test_competing_hazards_match_worked_values():
    probs, survival = cf.competing_hazards([0.15, 0.05, 0.10], 3.0)
    np.testing.assert_allclose(probs, [0.296715, 0.098905, 0.197810], atol=5e-7)
    assert survival == pytest.approx(0.406570, abs=5e-7)


@pytest.mark.parametrize(
    ("p", "rho", "q999", "q99", "cdf2p"),
    [
        (0.02, 0.12, 0.14728, 0.09172, 0.88254),
        (0.05, 0.20, 0.38442, 0.24957, 0.86755),
        (0.10, 0.15, 0.46340, 0.33989, 0.90414),
    ],
)
def test_vasicek_matches_worked_values(p, rho, q999, q99, cdf2p):
    assert cf.vasicek_quantile(p, rho, 0.999) == pytest.approx(q999, abs=5e-6)
    assert cf.vasicek_quantile(p, rho, 0.99) == pytest.approx(q99, abs=5e-6)
    assert cf.vasicek_cdf(2 * p, p, rho) == pytest.approx(cdf2p, abs=5e-6)
    # the finite-portfolio law tends to the large-portfolio one
    assert cf.vasicek_finite_cdf(2 * p, p, rho, 200_000) == pytest.approx(cdf2p, abs=2e-4)


def test_stage_chain_grid_law_converges_to_continuous_time():
    chain = validation._CHAIN
    exact = cf.stage_chain(chain, 0, 3.0)
    assert exact.sum() == pytest.approx(1.0, abs=1e-12)
    gaps = [
        np.abs(cf.stage_chain_steps(chain, 0, 1 / spy, 3 * spy) - exact).max()
        for spy in (12, 120, 1200)
    ]
    # first order in dt: each tenfold refinement cuts the gap about tenfold
    assert gaps[0] > 9 * gaps[1] > 81 * gaps[2]


# ------------------------------------------------------------------ the validation cases


@pytest.mark.parametrize("case", list(validation.CASES))
def test_validation_case_passes(case):
    report = validation.run(quick=True, cases=[case])
    for c in report.checks:
        # "above" checks test a direction: their z is the margin, not a distance to a value
        if not math.isnan(c.z) and not c.info and c.kind == "z":
            Z_RECORDS.append((f"validate {c.case}: {c.quantity}", c.estimate,
                              c.reference + c.bias, c.se, c.z_adjusted, 4.0))  # fmt: skip
    assert report.passed, f"\n{report}"


def test_direction_and_band_checks():
    above = validation.Check("c", "q", 1.4, 1.0, 0.1, kind="above")
    near = validation.Check("c", "q", 1.2, 1.0, 0.1, kind="above")
    inside = validation.Check("c", "q", 0.03, 0.02, 0.001, kind="band", upper=0.05)
    slack = validation.Check("c", "q", 0.0175, 0.02, 0.001, kind="band", upper=0.05)
    out = validation.Check("c", "q", 0.015, 0.02, 0.001, kind="band", upper=0.05)
    assert above.passed and not near.passed  # 4 SE above passes, 2 SE does not
    assert inside.passed and slack.passed and not out.passed
    assert above.reference_text == "> 1" and inside.reference_text == "0.02-0.05"
    assert math.isnan(inside.z) and above.z == pytest.approx(4.0)


def test_report_counts_failures_and_info_rows():
    ok = validation.Check("c", "q", 1.0, 1.0, 0.1)
    bad = validation.Check("c", "q", 2.0, 1.0, 0.1)
    info = validation.Check("c", "q", 2.0, 1.0, 0.1, info=True)
    biased = validation.Check("c", "q", 1.5, 1.0, 0.1, bias=0.2)
    assert ok.passed and not bad.passed and biased.passed and biased.z_adjusted == pytest.approx(3)
    assert validation.Report([ok, info], True, 1).passed
    report = validation.Report([ok, bad], True, 1)
    assert not report.passed and "1 FAILED" in str(report)
    assert "| q |" in report.to_markdown()


def test_unknown_case_is_refused():
    with pytest.raises(ValueError, match="cases"):
        validation.run(quick=True, cases=["nope"])


def test_cli_validate_exit_codes(monkeypatch, capsys):
    assert cli.main(["validate", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "checks passed" in out and "FAIL" not in out

    def failing(quick, seed):
        return [validation.Check("broken", "always off", 2.0, 1.0, 0.1)]

    monkeypatch.setattr(validation, "CASES", {**validation.CASES, "broken": failing})
    assert cli.main(["validate", "--quick"]) == 1
    assert "FAILED" in capsys.readouterr().out
