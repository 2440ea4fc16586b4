"""Exact tests of the kernels (numba and their numpy twins) on hand-set inputs.

Every expected number is worked out by hand below from the cash-flow rules of docs/model.md:
a bullet loan pays its coupon ``rate * dt * balance`` each step and the principal at maturity;
a default at step k recovers ``min(outstanding, recovery_rate * V + collateral * P)``; an exit
before maturity prepays ``min(outstanding, exit value)`` plus that step's coupon; at maturity a
firm worth less than the balance defaults with the same recovery; warrants and equity are paid
out of ``max(exit value - loan settled, 0)``; cash flows are discounted at ``exp(-r k dt)``.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

import invlend as il
from conftest import assert_mc_close, binomial_se, one_stage, plain_scenario
from invlend._sim import cpu as K
from invlend._sim import layout as L
from invlend._sim import numpy_backend as NB
from invlend._sim.backend import Draws
from invlend._sim.lowering import checkpoint_table, lower_dynamics, lower_structure
from invlend.rng import counter_table, market_keys, market_shocks, portfolio_keys, root_key

EVALUATE = {"numba": K._evaluate_structure, "numpy": NB.evaluate_structure}
SIMULATE = {"numba": K._simulate_firms, "numpy": NB.simulate_firms}
IRR = {"numba": K._portfolio_irr, "numpy": NB.portfolio_irr}

NONE, DEFAULT, IPO, MA = (int(e) for e in il.Event)

# Grid of the evaluation tests: quarterly steps over 2 years, 4% discount rate.
DT = 0.25
R = 0.04


def d(k: int) -> float:
    """Discount factor of step k."""
    return math.exp(-R * DT * k)


@pytest.fixture(scope="module")
def grid_scenario() -> il.Scenario:
    return plain_scenario(
        [one_stage()],
        market=il.Market(discount_rate=R, factor_loading=0.0),
        horizon_years=2.0,
        steps_per_year=4,
        ipo_multiple=1.5,
        ma_multiple=0.9,
    )


def evaluate(backend, scenario, structure, firms, portfolio_size):
    """Lower ``structure`` and run one evaluation backend on hand-set firm outcomes.

    ``firms`` is a list of dicts with event, step, value, v0 and optionally dil, q, e, chk
    (firm value at the loan's maturity step) and chk_w (the value of an entry share at the
    expiry step of a warrant that expires before the horizon).
    """
    checkpoints = checkpoint_table(scenario, [structure])
    terms = lower_structure(scenario, structure, checkpoints)
    n = len(firms)
    n_port = n // portfolio_size
    event = np.array([f["event"] for f in firms], np.int8)
    step = np.array([f["step"] for f in firms], np.int32)
    value = np.array([f["value"] for f in firms], float)
    v0 = np.array([f["v0"] for f in firms], float)
    quality = np.array([f.get("q", 0.0) for f in firms], float)
    signal = np.array([f.get("e", 0.0) for f in firms], float)
    dil = np.array([f.get("dil", 1.0) for f in firms], float)
    column = {0: "chk", 1: "chk_w"}  # what each checkpoint records: V, or an entry share
    chk = np.array([[f.get(column[d], np.nan) for d in checkpoints[1]] for f in firms], float)
    regime = np.array([f.get("regime", 0) for f in firms], np.int8)
    n_years = scenario.n_years
    out = dict(
        npv=np.full(n, -999.0),
        principal=np.full(n, -999.0),
        default=np.full(n, 99, np.int8),
        loss=np.full(n, -999.0),
        upside=np.full(n, -999.0),
        agg=np.full((n_port, L.N_AGG), -999.0),
        pool_claims=np.full((n_port, n_years), -999.0),
        pool_paid=np.full((n_port, n_years), -999.0),
        cf=np.full((n_port, scenario.n_steps + 1), -999.0),
        work=np.full((n_port, scenario.n_steps + 2), -999.0),
    )
    n_stage = np.zeros(n, np.int8)
    firms = L.FirmOutcomes(event=event, step=step, value=value, stage0=n_stage, stage=n_stage,
                           rounds=np.zeros(n, np.int16), dilution=dil, v0=v0, quality=quality,
                           signal=signal, regime=regime, appraisal=np.zeros(n),
                           stage2=np.zeros(n, np.int8))  # fmt: skip
    per_firm = [out[f.key] for f in L.PER_FIRM]
    EVALUATE[backend](firms, chk, portfolio_size, terms, *per_firm, out["agg"], out["pool_claims"],
                      out["pool_paid"], out["cf"], out["work"])  # fmt: skip
    out["terms"] = terms
    return out


def check_firms(out, expected):
    """Compare per-firm outputs with the hand-computed ``expected`` rows."""
    for i, exp in enumerate(expected):
        tag = f"firm {i} ({exp.get('what', '')})"
        if exp["npv"] is None:
            assert np.isnan(out["npv"][i]), tag
        else:
            assert out["npv"][i] == pytest.approx(exp["npv"], rel=1e-12, abs=1e-12), tag
        assert out["principal"][i] == pytest.approx(exp["principal"], rel=1e-14), tag
        assert out["default"][i] == exp["default"], tag
        assert out["loss"][i] == pytest.approx(exp["loss"], rel=1e-12, abs=1e-12), tag
        assert out["upside"][i] == pytest.approx(exp["upside"], rel=1e-12, abs=1e-12), tag


# =============================================================================================
# Bullet loan with a warrant
# =============================================================================================

BULLET = il.Structure(
    name="bullet",
    loan=il.Loan(
        loan_to_value=0.5,
        rate=0.08,
        maturity_years=1.0,  # km = 4
        interest_only_years=None,
        upfront_fee=0.01,
        recovery_rate=0.4,
        collateral=0.1,
    ),
    warrant=il.Warrant(coverage=0.1, share_of_gain=0.8, expiry_years=1.5),  # expiry step 6
)

# P = 0.5 * v0; coupon = P * 0.08 * 0.25 = 0.02 P; warrant fraction w = 0.1 * 0.5 = 0.05;
# strike = 0.1 P.
BULLET_FIRMS = [
    # portfolio 0
    dict(event=NONE, step=8, value=150.0, v0=100.0, chk=120.0, chk_w=160.0),
    dict(event=DEFAULT, step=2, value=30.0, v0=100.0),
    dict(event=IPO, step=3, value=200.0, v0=100.0, dil=0.8),
    # portfolio 1
    dict(event=MA, step=2, value=40.0, v0=100.0),
    dict(event=NONE, step=8, value=500.0, v0=100.0, chk=45.0, chk_w=60.0),
    dict(event=IPO, step=6, value=200.0, v0=80.0, dil=0.5, chk=90.0),
    # portfolio 2
    dict(event=IPO, step=7, value=200.0, v0=100.0, chk=100.0, chk_w=110.0),
    dict(event=MA, step=4, value=300.0, v0=100.0),
    dict(event=DEFAULT, step=6, value=10.0, v0=100.0, chk=70.0),
]


def bullet_expected():
    entry = 50.0 * (0.01 - 1.0)  # -49.5
    coupons = [1.0 * d(k) for k in range(1, 5)]  # coupon 1.0 on P = 50 at steps 1..4
    repaid = entry + sum(coupons) + 50.0 * d(4)
    return [
        # alive at the warrant's expiry (step 6): exercised on the entry share's value 160 then,
        # gain 0.05 * 160 - 5 = 3; share 0.8 -> 2.4
        dict(
            what="repaid at maturity, warrant exercised at expiry",
            npv=repaid + 2.4 * d(6),
            principal=50.0,
            default=0,
            loss=0.0,
            upside=2.4 * d(6),
        ),
        # recovery min(50, 0.4 * 30 + 0.1 * 50) = 17 at step 2, coupon at step 1 only
        dict(
            what="default at step 2",
            npv=entry + d(1) + 17.0 * d(2),
            principal=50.0,
            default=1,
            loss=33.0,
            upside=0.0,
        ),
        # exit 1.5 * 200 = 300 repays 50 + coupon 1; equity 250; gain 0.05*0.8*250 - 5 = 5
        dict(
            what="IPO before maturity, warrant in the money",
            npv=entry + d(1) + d(2) + 51.0 * d(3) + 0.8 * 5.0 * d(3),
            principal=50.0,
            default=0,
            loss=0.0,
            upside=4.0 * d(3),
        ),
        # exit 0.9 * 40 = 36 < 50: pays 36 + coupon 1, loses 14; equity 0
        dict(
            what="M&A below the balance",
            npv=entry + d(1) + 37.0 * d(2),
            principal=50.0,
            default=1,
            loss=14.0,
            upside=0.0,
        ),
        # value 45 at maturity < 50: recovery min(50, 0.4 * 45 + 5) = 23
        dict(
            what="default at maturity",
            npv=entry + d(1) + d(2) + d(3) + 23.0 * d(4),
            principal=50.0,
            default=1,
            loss=27.0,
            upside=0.0,
        ),
        # P = 40, coupon 0.8; repaid at maturity; IPO at the expiry step after maturity:
        # equity 300 (nothing left to settle); gain 0.05 * 0.5 * 300 - 4 = 3.5; share 0.8
        dict(
            what="IPO after maturity at the expiry step",
            npv=40.0 * (0.01 - 1.0) + 0.8 * sum(coupons) + 40.0 * d(4) + 2.8 * d(6),
            principal=40.0,
            default=0,
            loss=0.0,
            upside=2.8 * d(6),
        ),
        # alive at expiry: exercised on 110 then, gain 0.05 * 110 - 5 = 0.5; share 0.8
        dict(
            what="IPO after the warrant's expiry, where it was exercised",
            npv=repaid + 0.4 * d(6),
            principal=50.0,
            default=0,
            loss=0.0,
            upside=0.4 * d(6),
        ),
        # M&A at the maturity step: exit 270 repays 50 + coupon; equity 220;
        # gain 0.05 * 220 - 5 = 6; share 0.8 -> 4.8
        dict(
            what="M&A at the maturity step",
            npv=entry + d(1) + d(2) + d(3) + 51.0 * d(4) + 4.8 * d(4),
            principal=50.0,
            default=0,
            loss=0.0,
            upside=4.8 * d(4),
        ),
        dict(
            what="default after the loan was repaid",
            npv=repaid,
            principal=50.0,
            default=0,
            loss=0.0,
            upside=0.0,
        ),
    ]


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_bullet_loan_with_warrant(backend, grid_scenario):
    out = evaluate(backend, grid_scenario, BULLET, BULLET_FIRMS, portfolio_size=3)
    t = out["terms"]
    assert t.maturity_step == 4 and t.warrant_expiry_step == 6
    expected = bullet_expected()
    check_firms(out, expected)
    # Aggregates per portfolio.
    agg = out["agg"]
    for p in range(3):
        rows = expected[3 * p : 3 * p + 3]
        firms = BULLET_FIRMS[3 * p : 3 * p + 3]
        assert agg[p, L.AGG_ACCEPTED] == 3
        assert agg[p, L.AGG_PRINCIPAL] == pytest.approx(sum(r["principal"] for r in rows))
        assert agg[p, L.AGG_NPV] == pytest.approx(sum(r["npv"] for r in rows), rel=1e-12)
        assert agg[p, L.AGG_SCREEN_REJECTED] == 0.0
        assert agg[p, L.AGG_DEFAULTS] == sum(r["default"] for r in rows)
        assert agg[p, L.AGG_EAD] == pytest.approx(sum(r["principal"] * r["default"] for r in rows))
        assert agg[p, L.AGG_LOSS] == pytest.approx(sum(r["loss"] for r in rows))
        assert agg[p, L.AGG_LOSS_NET] == pytest.approx(sum(r["loss"] for r in rows))
        assert agg[p, L.AGG_NEGATIVE] == sum(r["npv"] < 0 for r in rows)
        # principal-years outstanding: P * dt * min(step, km) for a bullet loan
        exposure = sum(
            r["principal"] * DT * min(f["step"], 4) for r, f in zip(rows, firms, strict=True)
        )
        assert agg[p, L.AGG_EXPOSURE] == pytest.approx(exposure, rel=1e-12)
        assert agg[p, L.AGG_UPSIDE] == pytest.approx(sum(r["upside"] for r in rows), rel=1e-12)
    # Undiscounted cash flows of portfolio 0 (firms 0-2), step by step.
    cf0 = np.zeros(9)
    cf0[0] = 3 * -49.5
    cf0[1] = 3 * 1.0
    cf0[2] = 1.0 + 17.0 + 1.0
    cf0[3] = 1.0 + 51.0 + 4.0
    cf0[4] = 51.0
    cf0[6] = 2.4  # firm 0's warrant, exercised at expiry
    np.testing.assert_allclose(out["cf"][0], cf0, rtol=1e-13, atol=1e-12)
    # In every portfolio the cash flows discounted at r are the portfolio's NPV.
    disc = np.array([d(k) for k in range(9)])
    np.testing.assert_allclose(out["cf"] @ disc, agg[:, L.AGG_NPV], rtol=1e-12)


# =============================================================================================
# Amortising loan with risk sharing, an equity stake and screening
# =============================================================================================

AMORTISING = il.Structure(
    name="amortising",
    loan=il.Loan(
        loan_to_value=0.4,
        rate=0.06,
        maturity_years=2.0,  # km = 8 = the horizon
        interest_only_years=1.0,  # 4 interest-only steps, then 4 equal instalments
        upfront_fee=0.0,
        recovery_rate=0.5,
        collateral=0.0,
    ),
    equity=il.Equity(equity_to_value=0.05),
    risk_share=il.RiskShare(covered_fraction=0.5, premium=0.02),
    # threshold sqrt(1 + 0.5^2) * Phi^-1(1 - 0.5) = 0: accept when q + 0.5 e > 0
    screening=il.Screening(signal_noise=0.5, acceptance_rate=0.5, cost=0.01),
)

AMORTISING_FIRMS = [
    dict(event=NONE, step=8, value=150.0, v0=100.0, dil=0.8, q=1.0, e=0.0),
    dict(event=DEFAULT, step=6, value=20.0, v0=100.0, q=0.5, e=0.2),
    dict(event=IPO, step=3, value=100.0, v0=100.0, q=0.1, e=-0.3),  # rejected: 0.1 - 0.15 < 0
    dict(event=MA, step=7, value=20.0, v0=100.0, q=2.0, e=0.0),
    dict(event=IPO, step=3, value=100.0, v0=100.0, q=0.3, e=0.0),
    dict(event=NONE, step=8, value=5.0, v0=100.0, q=0.2, e=-0.1),
]


def amortising_expected():
    # P = 40. Balance per unit after step k: 1 for k <= 4, then 0.75, 0.5, 0.25, 0.
    bal = [1.0, 1.0, 1.0, 1.0, 1.0, 0.75, 0.5, 0.25, 0.0]
    # Scheduled flow at step k: (rate - premium) * dt * balance[k-1] + amortisation.
    flow = [0.0] + [0.04 * DT * bal[k - 1] + (bal[k - 1] - bal[k]) for k in range(1, 9)]

    def scheduled(last):  # PV of the scheduled flows over steps 1..last, on P = 40
        return sum(40.0 * flow[k] * d(k) for k in range(1, last + 1))

    entry = -40.0 - 0.4 - 5.0  # principal, screening cost 1% of P, equity stake 5% of V0
    return [
        # maturity at the horizon: last instalment 10 + coupon (0.06 - 0.02) * 0.25 * 10 = 0.1;
        # the instalment is settled out of V: equity 0.05 * 0.8 * (150 - 10) = 5.6
        dict(
            what="repaid at the horizon, equity stake paid",
            npv=entry + scheduled(7) + 10.1 * d(8) + 5.6 * d(8),
            principal=40.0,
            default=0,
            loss=0.0,
            upside=5.6 * d(8),
        ),
        # outstanding 40 * 0.75 = 30; recovery min(30, 0.5 * 20) = 10; loss 20;
        # the risk share pays 0.5 * 20 = 10
        dict(
            what="default during amortisation, half the loss covered",
            npv=entry + scheduled(5) + 20.0 * d(6),
            principal=40.0,
            default=1,
            loss=20.0,
            upside=0.0,
        ),
        dict(
            what="rejected by screening", npv=None, principal=0.0, default=0, loss=0.0, upside=0.0
        ),
        # outstanding 20; exit 18 pays 18 + coupon 0.04 * 0.25 * 20 = 0.2; loss 2, 1 covered
        dict(
            what="M&A below the balance",
            npv=entry + scheduled(6) + (0.2 + 18.0 + 1.0) * d(7),
            principal=40.0,
            default=1,
            loss=2.0,
            upside=0.0,
        ),
        # exit 150 repays 40 + coupon 0.4; equity 0.05 * (150 - 40) = 5.5
        dict(
            what="IPO during the interest-only period",
            npv=entry + scheduled(2) + 40.4 * d(3) + 5.5 * d(3),
            principal=40.0,
            default=0,
            loss=0.0,
            upside=5.5 * d(3),
        ),
        # value 5 < instalment 10 at maturity: recovery 2.5, loss 7.5, covered 3.75
        dict(
            what="default at maturity on the last instalment",
            npv=entry + scheduled(7) + (2.5 + 3.75) * d(8),
            principal=40.0,
            default=1,
            loss=7.5,
            upside=0.0,
        ),
    ]


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_amortising_loan_with_risk_share_equity_and_screening(backend, grid_scenario):
    out = evaluate(backend, grid_scenario, AMORTISING, AMORTISING_FIRMS, portfolio_size=3)
    t = out["terms"]
    assert t.signal_threshold == pytest.approx(0.0, abs=1e-15)
    assert not t.accept_all
    np.testing.assert_allclose(t.balance, [1, 1, 1, 1, 1, 0.75, 0.5, 0.25, 0], rtol=1e-15)
    expected = amortising_expected()
    check_firms(out, expected)
    agg = out["agg"]
    # portfolio 0: firms 0, 1 accepted, firm 2 rejected (screening cost 0.4 still spent)
    assert agg[0, L.AGG_ACCEPTED] == 2
    assert agg[0, L.AGG_PRINCIPAL] == pytest.approx(80.0)
    assert agg[0, L.AGG_SCREEN_REJECTED] == pytest.approx(0.4)
    assert agg[0, L.AGG_NPV] == pytest.approx(expected[0]["npv"] + expected[1]["npv"] - 0.4)
    assert agg[0, L.AGG_DEFAULTS] == 1
    assert agg[0, L.AGG_EAD] == pytest.approx(30.0)
    assert agg[0, L.AGG_LOSS] == pytest.approx(20.0)
    assert agg[0, L.AGG_LOSS_NET] == pytest.approx(10.0)
    # principal-years: 40 * 0.25 * (sum of balances before each step up to the event)
    assert agg[0, L.AGG_EXPOSURE] == pytest.approx(40 * DT * (6.5 + 5.75))
    assert agg[0, L.AGG_UPSIDE] == pytest.approx(5.6 * d(8))
    # portfolio 1: all accepted
    assert agg[1, L.AGG_ACCEPTED] == 3
    assert agg[1, L.AGG_DEFAULTS] == 2
    assert agg[1, L.AGG_EAD] == pytest.approx(20.0 + 10.0)
    assert agg[1, L.AGG_LOSS] == pytest.approx(2.0 + 7.5)
    assert agg[1, L.AGG_LOSS_NET] == pytest.approx(0.5 * 9.5)
    assert agg[1, L.AGG_EXPOSURE] == pytest.approx(40 * DT * (6.25 + 3.0 + 6.5))
    assert agg[1, L.AGG_NEGATIVE] == sum(r["npv"] < 0 for r in expected[3:])
    disc = np.array([d(k) for k in range(9)])
    np.testing.assert_allclose(out["cf"] @ disc, agg[:, L.AGG_NPV], rtol=1e-12)
    # rejected applicants cost money at step 0 only
    assert out["cf"][0, 0] == pytest.approx(2 * (-45.4) - 0.4)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_zero_rate_bullet_is_worth_minus_the_fee_gap(backend):
    # Rate 0, discount 0, fee 0: a repaid loan has NPV exactly 0, a default loses the loss.
    sc = plain_scenario([one_stage()], horizon_years=1.0, steps_per_year=12)
    s = il.Structure(
        name="z",
        loan=il.Loan(
            loan_to_value=0.3, rate=0.0, maturity_years=1.0, recovery_rate=0.0, collateral=0.5
        ),
    )
    firms = [
        dict(event=NONE, step=12, value=100.0, v0=100.0),
        dict(event=DEFAULT, step=5, value=100.0, v0=100.0),
    ]
    out = evaluate(backend, sc, s, firms, portfolio_size=2)
    assert out["npv"][0] == 0.0
    assert out["npv"][1] == pytest.approx(-15.0, rel=1e-14)  # recovers 0.5 * 30 of 30
    assert out["loss"][1] == pytest.approx(15.0)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_backends_agree_on_random_outcomes(backend, grid_scenario):
    # Many random hand-set outcomes: numba and numpy evaluations agree to rounding.
    gen = np.random.default_rng(12345)
    n = 600
    firms = [
        dict(
            event=int(gen.integers(0, 4)),
            step=int(gen.integers(1, 9)),
            value=float(np.exp(gen.normal(4.5, 1.0))),
            v0=float(np.exp(gen.normal(4.5, 0.3))),
            dil=float(gen.uniform(0.3, 1.0)),
            q=float(gen.normal()),
            e=float(gen.normal()),
            chk=float(np.exp(gen.normal(4.5, 1.0))),
        )
        for _ in range(n)
    ]
    for f in firms:
        if f["event"] == NONE:
            f["step"] = 8
    for s in (BULLET, AMORTISING):
        a = evaluate("numba", grid_scenario, s, firms, portfolio_size=20)
        b = evaluate("numpy", grid_scenario, s, firms, portfolio_size=20)
        np.testing.assert_array_equal(np.isnan(a["npv"]), np.isnan(b["npv"]))
        np.testing.assert_allclose(a["npv"], b["npv"], rtol=1e-12, atol=1e-12)
        for key in ("principal", "loss", "upside", "agg", "cf"):
            np.testing.assert_allclose(a[key], b[key], rtol=1e-12, atol=1e-10, err_msg=key)
        np.testing.assert_array_equal(a["default"], b["default"])


# =============================================================================================
# Portfolio IRR
# =============================================================================================


def _irr_rows():
    n = 25
    rows = np.zeros((7, n))
    rows[0, 0], rows[0, 12] = -100.0, 110.0  # 10% a year
    rows[1, 0], rows[1, 1:13], rows[1, 12] = -100.0, 1.0, 101.0  # 1% a month
    rows[2, 0], rows[2, 12] = -100.0, 50.0  # -50% a year
    rows[3, 0] = -100.0  # nothing comes back: -1
    # row 4: no cash flow at all: NaN
    rows[5, 3], rows[5, 7] = 10.0, 5.0  # nothing lent: NaN
    rows[6, 0], rows[6, 1] = -1.0, 1e6  # root beyond the bracket: NaN
    return rows


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_portfolio_irr_known_rows(backend):
    out = np.full(7, -999.0)
    IRR[backend](_irr_rows(), 1.0 / 12.0, out)
    assert out[0] == pytest.approx(0.10, abs=1e-12)
    assert out[1] == pytest.approx(1.01**12 - 1.0, abs=1e-12)
    assert out[2] == pytest.approx(-0.50, abs=1e-12)
    assert out[3] == -1.0
    assert np.isnan(out[4])
    assert np.isnan(out[5])
    assert np.isnan(out[6])


def test_portfolio_irr_twins_agree():
    gen = np.random.default_rng(7)
    rows = np.concatenate([_irr_rows(), np.zeros((40, 25))])
    rows[7:, 0] = -gen.uniform(50, 150, 40)
    rows[7:, 1:] = gen.uniform(0, 12, (40, 24))
    a, b = np.empty(len(rows)), np.empty(len(rows))
    K._portfolio_irr(rows, 0.25, a)
    NB.portfolio_irr(rows, 0.25, b)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)
    # the IRR zeroes the PV of each row
    ok = np.isfinite(a) & (a > -1)
    y = (1.0 + a[ok]) ** -0.25
    pv = (rows[ok] * y[:, None] ** np.arange(25)).sum(axis=1)
    np.testing.assert_allclose(pv, 0.0, atol=1e-8)


# =============================================================================================
# Firm simulation on hand-set stage tables
# =============================================================================================


def simulate(backend, scenario, n_port=4, size=50, seed=5, checkpoints=(), n_paths=0):
    """Run one simulation backend directly; returns the outputs as a dict of arrays."""
    chk = np.array(checkpoints, np.int64)
    dyn = lower_dynamics(scenario, il.Linkage(), chk)
    n_steps = scenario.n_steps
    pkeys = portfolio_keys(root_key(seed), np.arange(n_port))
    ctr = counter_table(n_steps)
    market = market_shocks(market_keys(pkeys), ctr, n_steps)
    n = n_port * size
    o = dict(
        event=np.full(n, -1, np.int8),
        step=np.full(n, -1, np.int32),
        value=np.full(n, np.nan),
        stage0=np.full(n, -1, np.int8),
        stage=np.full(n, -1, np.int8),
        rounds=np.full(n, -1, np.int16),
        dilution=np.full(n, np.nan),
        v0=np.full(n, np.nan),
        quality=np.full(n, np.nan),
        signal=np.full(n, np.nan),
        regime=np.full(n, -1, np.int8),
        appraisal=np.full(n, np.nan),
        stage2=np.full(n, -1, np.int8),
        chk=np.full((n, len(chk)), -1.0),
        paths=np.full((n_paths, n_steps + 1), -1.0),
    )
    regime = np.zeros((n_port, n_steps), np.int8)
    draws = Draws(ctr, pkeys, market, regime, np.zeros(n_port))
    SIMULATE[backend](draws, size, 0, dyn, *o.values())
    return o


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_no_hazard_no_volatility_grows_at_the_drift(backend):
    sc = plain_scenario([one_stage(initial_value=80.0, drift=0.07)], horizon_years=3.0)
    o = simulate(backend, sc, checkpoints=(12, 36))
    assert np.all(o["event"] == NONE)
    assert np.all(o["step"] == 36)
    np.testing.assert_allclose(o["v0"], 80.0, rtol=1e-15)
    np.testing.assert_allclose(o["value"], 80.0 * math.exp(0.07 * 3.0), rtol=1e-12)
    np.testing.assert_allclose(o["chk"][:, 0], 80.0 * math.exp(0.07 * 1.0), rtol=1e-12)
    np.testing.assert_allclose(o["chk"][:, 1], o["value"], rtol=0)
    assert np.all(o["rounds"] == 0) and np.all(o["dilution"] == 1.0)
    assert np.all(o["stage0"] == 0) and np.all(o["stage"] == 0)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize(
    ("hazard", "event"),
    [("default_hazard", DEFAULT), ("ipo_hazard", IPO), ("ma_hazard", MA)],
)
def test_huge_hazard_gives_the_event_at_step_one(backend, hazard, event):
    sc = plain_scenario([one_stage(volatility=0.3, drift=0.1, **{hazard: 1000.0})])
    o = simulate(backend, sc, checkpoints=(12,))
    assert np.all(o["event"] == event)
    assert np.all(o["step"] == 1)
    assert np.all(np.isnan(o["chk"]))  # no value after the event


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_competing_huge_hazards_split_in_proportion(backend):
    sc = plain_scenario([one_stage(default_hazard=600.0, ipo_hazard=200.0, ma_hazard=200.0)])
    o = simulate(backend, sc, n_port=40, size=100)
    n = o["event"].size
    assert np.all(o["step"] == 1)
    assert set(np.unique(o["event"])) <= {DEFAULT, IPO, MA}
    for ev, p in ((DEFAULT, 0.6), (IPO, 0.2), (MA, 0.2)):
        assert_mc_close(
            np.mean(o["event"] == ev), p, binomial_se(p, n), label=f"step-1 split event {ev}"
        )


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_round_moves_to_the_last_stage_which_never_advances(backend):
    first = il.Stage(
        name="a",
        weight=1.0,
        initial_value=50.0,
        drift=0.12,
        volatility=0.0,
        advance_hazard=1000.0,
        round_size=0.25,
    )
    last = il.Stage(name="b", weight=0.0, initial_value=50.0, drift=0.03, volatility=0.0)
    sc = plain_scenario([first, last], horizon_years=2.0, steps_per_year=12)
    o = simulate(backend, sc)
    assert np.all(o["event"] == NONE) and np.all(o["step"] == 24)
    assert np.all(o["stage0"] == 0) and np.all(o["stage"] == 1)
    assert np.all(o["rounds"] == 1)
    np.testing.assert_array_equal(o["dilution"], 1.0 / 1.25)
    # one step of growth in stage a, the round (value x 1.25), 23 steps in stage b
    want = 50.0 * math.exp(0.12 / 12) * 1.25 * math.exp(0.03 * 23 / 12)
    np.testing.assert_allclose(o["value"], want, rtol=1e-12)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_barrier_triggers_default(backend):
    sc = plain_scenario([one_stage(volatility=0.6, drift=0.0)], default_barrier=0.99)
    o = simulate(backend, sc, n_paths=200)
    v0 = o["v0"]
    hit = o["event"] == DEFAULT
    assert hit.mean() > 0.9  # a barrier 1% below the start is hit almost surely in 3 years
    assert np.all(o["value"][hit] < 0.99 * v0[hit])
    assert set(np.unique(o["event"])) <= {NONE, DEFAULT}  # no hazards: only the barrier
    # On recorded paths the value stays at or above the barrier before the default step.
    # (Firms ending in the last step are left to test_path_records_an_event_in_the_last_step.)
    for i in range(200):
        k = o["step"][i]
        path = o["paths"][i]
        assert np.all(path[1:k] >= 0.99 * v0[i])
        if k < sc.n_steps:
            assert path[k] == o["value"][i]
            assert np.all(np.isnan(path[k + 1 :]))


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_stage_weights_pick_the_starting_stage(backend):
    stages = [
        il.Stage(name="a", weight=0.0, advance_hazard=0.1),
        il.Stage(name="b", weight=1.0, advance_hazard=0.1),
        il.Stage(name="c", weight=0.0),
    ]
    o = simulate(backend, plain_scenario(stages))
    assert np.all(o["stage0"] == 1)


def test_simulation_twins_agree_on_hand_set_tables():
    stages = [
        il.Stage(
            name="a",
            weight=0.3,
            initial_value=20.0,
            drift=0.3,
            volatility=0.8,
            default_hazard=0.4,
            ipo_hazard=0.1,
            ma_hazard=0.2,
            advance_hazard=0.9,
            round_size=0.5,
        ),
        il.Stage(
            name="b",
            weight=0.7,
            initial_value=60.0,
            drift=0.1,
            volatility=0.4,
            default_hazard=0.2,
            ma_hazard=0.3,
        ),
    ]
    sc = plain_scenario(
        stages,
        market=il.Market(factor_loading=0.5, jump_rate=3.0, jump_mean=-0.2, jump_vol=0.3),
        default_barrier=0.2,
        value_dispersion=0.7,
        quality_drift=0.1,
        quality_hazard=0.5,
    )
    a = simulate("numba", sc, n_port=10, size=40, checkpoints=(6, 30), n_paths=50)
    b = simulate("numpy", sc, n_port=10, size=40, checkpoints=(6, 30), n_paths=50)
    for key in ("event", "step", "stage0", "stage", "rounds"):
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    for key in ("value", "dilution", "v0", "quality", "signal", "chk"):
        np.testing.assert_allclose(a[key], b[key], rtol=1e-12, err_msg=key)
    # Paths of firms whose event is not in the last step (see the next test for those).
    early = (a["step"][:50] < sc.n_steps) | (a["event"][:50] == NONE)
    np.testing.assert_allclose(a["paths"][early], b["paths"][early], rtol=1e-12)
    assert len(np.unique(a["event"])) == 4 and a["rounds"].max() == 1


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_path_records_an_event_in_the_last_step(backend):
    # A one-step horizon and a huge default hazard: every firm defaults in the last step.
    sc = plain_scenario([one_stage(default_hazard=1000.0)], horizon_years=1 / 12, steps_per_year=12)
    o = simulate(backend, sc, n_port=1, size=5, n_paths=5)
    assert np.all(o["event"] == DEFAULT) and np.all(o["step"] == 1)
    np.testing.assert_array_equal(o["paths"][:, 0], o["v0"])
    np.testing.assert_array_equal(o["paths"][:, 1], o["value"])


# =============================================================================================
# The kernels' signatures against the layout
# =============================================================================================


def _parameters(fn) -> list[str]:
    return list(inspect.signature(getattr(fn, "py_func", fn)).parameters)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_output_arguments_follow_the_layout(backend):
    """Outputs are splatted from the layout, so their order must be the kernels' order."""
    sim = _parameters(SIMULATE[backend])
    assert sim[:4] == ["draws", "portfolio_size", "path_start", "dyn"]
    assert sim[4:] == [f"out_{f.key}" for f in L.OUTCOMES] + ["out_chk", "out_paths"]
    ev = _parameters(EVALUATE[backend])
    assert ev[:4] == ["firms", "chk", "portfolio_size", "terms"]
    per_portfolio = ["out_agg", "out_pool_claims", "out_pool_paid", "out_cf", "work"]
    assert ev[4:] == [f"out_{f.key}" for f in L.PER_FIRM] + per_portfolio
    assert list(L.FirmOutcomes._fields) == [f.key for f in L.OUTCOMES]
