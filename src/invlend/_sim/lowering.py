"""Lowering: the only bridge from validated models to the plain arrays the kernels take.

Overview
--------
:func:`lower_dynamics` turns a :class:`~invlend.config.Scenario` and one linkage into a
:class:`Dynamics` (stage tables and scalars); :func:`lower_structure` turns a
:class:`~invlend.config.Structure` into a :class:`Terms` (scalars plus per-step schedule tables
per unit of principal). Both are pure functions of their inputs and hold only ``float64`` /
``int64`` arrays and Python scalars, so they pickle cheaply to workers.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy.special import ndtri

from invlend._sim import layout as L
from invlend.config import Collateral, Linkage, Scenario, Structure

__all__ = [
    "MEASURES",
    "Dynamics",
    "Terms",
    "balance_schedule",
    "checkpoint_steps",
    "checkpoint_table",
    "linkage_groups",
    "lower_dynamics",
    "lower_structure",
    "regime_distress",
    "regime_multiple",
    "regime_scale",
    "run_sizes",
    "runway_steps",
    "sicr_step",
    "step_of",
]


class Dynamics(NamedTuple):
    """Firm dynamics for one linkage, as arrays (stage axis first)."""

    weight_cdf: np.ndarray  # (n_stages,) cumulative start-stage probabilities, last = 1
    log_value: np.ndarray  # (n_stages,) log of the stage's median initial value
    drift: np.ndarray  # (n_stages,) arithmetic drift, per year
    volatility: np.ndarray  # (n_stages,)
    default_hazard: np.ndarray  # (n_stages,) already times the linkage multiplier
    ipo_hazard: np.ndarray  # (n_stages,) already times the exit multiplier
    ma_hazard: np.ndarray  # (n_stages,) already times the exit multiplier
    advance_hazard: np.ndarray  # (n_stages,)
    log_round: np.ndarray  # (n_stages,) log(1 + round_size): log-value jump at a round
    dilution: np.ndarray  # (n_stages,) 1 / (1 + round_size)
    checkpoints: np.ndarray  # (n_chk,) int64 steps at which firm value is recorded, sorted
    checkpoint_diluted: np.ndarray  # (n_chk,) int64: 1 records d * V (an entry share), 0 V
    dt: float
    n_steps: int
    log_barrier: float  # log(default_barrier), -inf when off
    value_dispersion: float
    quality_drift: float
    quality_hazard: float
    factor_loading: float
    jump_rate: float
    jump_mean: float
    jump_vol: float
    jump_compensator: float  # jump_rate * (E[exp(J)] - 1): keeps `drift` the total drift
    regime_scale: np.ndarray  # (n_regimes, 3) default, exit, advance hazard multipliers
    value_elasticity: float  # beta: default intensity x (V / V_ref) ** -beta
    runway_steps: np.ndarray  # (n_stages,) int64 steps after a round before the multiplier
    runway_multiplier: float  # default intensity multiplier past the runway
    sicr_step: int  # step of the one-year staging test (IFRS 9 stage 2)
    sicr_ratio: float  # stage 2 when the default intensity is at least this x origination
    risk_neutral: bool  # the measure: drift r, no quality drift, the event compensator
    exit_multiple: np.ndarray  # (n_regimes, 2) what an IPO and an M&A pay per unit of V


class Terms(NamedTuple):
    """One structure's terms; schedules are per unit of principal, indexed by step."""

    dt: float
    loan_to_value: float
    upfront_fee: float
    final_fee: float  # end-of-term payment per unit of principal, at repayment
    prepayment_fee: float  # per unit of the balance repaid at an exit before maturity
    recovery_rate: float  # the loan's share x the scenario's distress value: fraction of V
    collateral: float  # certain collateral per unit of principal (version 1's number)
    collateral_scale: float  # P (1-h)(1-cost) e^{-rL} e^{-s^2/2} of a Collateral, else 0
    collateral_sigma: float  # appraisal error s (log-sd)
    collateral_elasticity: float  # eta: pledged value x (V_tau / V0) ** eta
    regime_distress: np.ndarray  # (n_regimes,) distress-value multiplier per funding regime
    ecl_discount: np.ndarray  # (n_steps + 1,) exp(-rate k dt): IFRS 9 discounting at the EIR
    ecl_12m_step: int  # losses whose term step is at most this one fall within 12 months
    sicr_step: int  # step of the staging test; counts only loans outstanding after it
    rate: float
    maturity_step: int
    checkpoint_index: int  # column of the outcomes' checkpoint values at maturity
    balance: np.ndarray  # (n_steps + 1,) outstanding after step k's payment; 0 from maturity
    flow: np.ndarray  # (n_steps + 1,) scheduled coupon + amortisation - premium at step k
    pv_flow_cum: np.ndarray  # (n_steps + 1,) sum of discounted `flow` over steps 1..k
    pv_interest_cum: np.ndarray  # (n_steps + 1,) the coupon's part of pv_flow_cum
    pv_amortisation_cum: np.ndarray  # (n_steps + 1,) the amortisation's part
    pv_balance_cum: np.ndarray  # (n_steps + 1,) sum of discounted balance[j - 1] * dt, 1..k
    balance_years_cum: np.ndarray  # (n_steps + 1,) sum of balance[j - 1] * dt over steps 1..k
    discount: np.ndarray  # (n_steps + 1,) exp(-r k dt)
    premium: float  # risk-share premium + risk-pool contribution, annual on the balance
    pool_contribution: float  # the risk pool's part of `premium`
    covered_fraction: float
    warrant_fraction: float  # coverage * loan_to_value: fraction of the firm at entry value
    warrant_strike: float  # coverage: strike amount per unit of principal
    share_of_gain: float
    warrant_expiry_step: int  # last step at which the warrant pays (-1 when there is none)
    warrant_checkpoint: int  # column of d * V at expiry (-1: none, or expiry at the horizon)
    warrant_remaining: float  # years of the warrant's life left at the horizon (0 if none)
    horizon_discount: float  # 1 - illiquidity discount: horizon marks of unlisted equity
    stage_volatility: np.ndarray  # (n_stages,) the horizon settlement's continuation tables:
    stage_default: np.ndarray  # (n_stages,) risk-neutral default intensity (x linkage)
    stage_ipo: np.ndarray  # (n_stages,) IPO intensity (x linkage)
    stage_ma: np.ndarray  # (n_stages,) M&A intensity (x linkage)
    quality_hazard: float
    regime_scale: np.ndarray  # (n_regimes, 3) as Dynamics.regime_scale
    discount_rate: float
    gl_nodes: np.ndarray  # (n_gl,) Gauss-Legendre nodes on [0, 1] for the continuation
    gl_weights: np.ndarray  # (n_gl,) their weights (summing to 1)
    equity_fraction: float
    accept_all: bool
    signal_noise: float
    signal_threshold: float
    screening_cost: float
    ipo_multiple: float
    ma_multiple: float
    regime_multiple: np.ndarray  # (n_regimes,) exit-multiple multiplier per funding regime
    pool_fraction: float  # share of each credit loss claimed on the risk pool
    pool_cap: float  # most the pool pays a portfolio per year, per unit of principal lent
    steps_per_year: int


def balance_schedule(km: int, kio: int, n: int) -> np.ndarray:
    """Outstanding balance per unit of principal after each step ``0..n``.

    1 until the end of the interest-only period (step ``kio``), then linear to 0 at maturity
    (step ``km``); 0 from maturity on. The kernels' schedule, and the IRB effective maturity's.
    """
    k = np.arange(n + 1)
    balance = np.zeros(n + 1)
    balance[:km] = 1.0
    if kio < km:  # linear amortisation from the end of the interest-only period to maturity
        balance[kio:km] = (km - k[kio:km]) / (km - kio)
    return balance


def step_of(years: float, dt: float) -> int:
    """Whole number of steps in ``years`` (validated beforehand to be whole)."""
    return round(years / dt)


def linkage_key(linkage: Linkage) -> tuple[float, float]:
    """Structures with equal keys share one firm simulation."""
    return (linkage.default_hazard_multiplier, linkage.exit_hazard_multiplier)


def linkage_groups(structures: list[Structure]) -> tuple[int, ...]:
    """The linkage group of each structure, numbered by each linkage's first appearance.

    Structures with the same linkage share one firm simulation (common random numbers).
    """
    groups: dict[tuple[float, float], int] = {}
    return tuple(groups.setdefault(linkage_key(s.linkage), len(groups)) for s in structures)


# Gauss-Legendre rule on [0, 1] for the time integral of a warrant's continuation value. The
# integrand has a sqrt(t) kink at t = 0 for a warrant at the money; 16 nodes agree with 128 to
# 2e-5 of the value over spot/strike 0.3-3, 0.5-10 years left and volatility 0.3-1 (measured).
_x, _w = np.polynomial.legendre.leggauss(16)
GL_NODES = np.ascontiguousarray(0.5 * (_x + 1.0))
GL_WEIGHTS = np.ascontiguousarray(0.5 * _w)

#: The measures a run can simulate: real world (risk figures) and risk neutral (fair value).
MEASURES = ("real_world", "risk_neutral")


def warrant_expiry_step(years: float, dt: float) -> int:
    """Last step at which a warrant of ``years`` pays (its life rounded down to steps)."""
    return math.floor(years / dt + 1e-9)


def checkpoint_table(scenario: Scenario, structures: list[Structure]) -> tuple:
    """Where firm values are recorded: ``(steps, diluted)``, int64 arrays sorted together.

    A loan's maturity step records the firm value ``V`` (``diluted`` 0); the expiry step of a
    warrant that expires before the horizon records the value of an entry share, the firm
    value times the dilution of the rounds so far (``diluted`` 1), at which it is exercised.
    """
    dt = scenario.dt
    rows = {(step_of(s.loan.maturity_years, dt), 0) for s in structures}
    for s in structures:
        if s.warrant is not None:
            kw = warrant_expiry_step(s.warrant.expiry_years, dt)
            if kw < scenario.n_steps:
                rows.add((kw, 1))
    table = np.array(sorted(rows), np.int64).reshape(-1, 2)
    return np.ascontiguousarray(table[:, 0]), np.ascontiguousarray(table[:, 1])


def checkpoint_steps(scenario: Scenario, structures: list[Structure]) -> np.ndarray:
    """The steps of :func:`checkpoint_table`: where firm values are recorded, sorted."""
    return checkpoint_table(scenario, structures)[0]


def run_sizes(scenario: Scenario, structures: list[Structure], portfolio_size: int,
              sample_paths: int | None,
              measures: tuple[str, ...] = ("real_world",)) -> L.Sizes:  # fmt: skip
    """The :class:`~invlend._sim.layout.Sizes` of a run of ``structures`` on ``scenario``."""
    return L.Sizes(
        n_groups=max(linkage_groups(structures)) + 1,
        n_structures=len(structures),
        portfolio_size=portfolio_size,
        n_checkpoints=len(checkpoint_steps(scenario, structures)),
        measures=measures,
        n_steps=scenario.n_steps,
        n_years=scenario.n_years,
        sample_paths=sample_paths,
    )


def lower_dynamics(
    scenario: Scenario,
    linkage: Linkage,
    checkpoints: tuple | np.ndarray | None = None,
    measure: str = "real_world",
) -> Dynamics:
    """Lower a scenario under one linkage and one measure to a :class:`Dynamics`.

    ``checkpoints`` is a :func:`checkpoint_table` (or an array of steps recording ``V``).
    Under ``measure="risk_neutral"`` every stage drifts at the discount rate (the kernels add
    the event compensator), quality does not enter the drift, and default intensities are
    multiplied by ``Market.default_risk_premium``.
    """
    st = scenario.stages
    weights = np.array([s.weight for s in st])
    cdf = np.cumsum(weights)
    cdf[-1] = 1.0  # weights sum to 1 within 1e-9: make the last bin catch every draw
    m = scenario.market
    jump_comp = m.jump_rate * (math.exp(m.jump_mean + 0.5 * m.jump_vol**2) - 1.0)
    if checkpoints is None:
        checkpoints = np.zeros(0, np.int64)
    if isinstance(checkpoints, tuple):
        chk, diluted = (np.asarray(a, np.int64) for a in checkpoints)
    else:
        chk = np.sort(np.asarray(checkpoints, np.int64))
        diluted = np.zeros_like(chk)
    q = measure == "risk_neutral"
    premium = m.default_risk_premium if q else 1.0
    return Dynamics(
        weight_cdf=cdf,
        log_value=np.log([s.initial_value for s in st]),
        drift=np.full(len(st), m.discount_rate) if q else np.array([s.drift for s in st]),
        volatility=np.array([s.volatility for s in st]),
        default_hazard=np.array([s.default_hazard for s in st])
        * (linkage.default_hazard_multiplier * premium),
        ipo_hazard=np.array([s.ipo_hazard for s in st]) * linkage.exit_hazard_multiplier,
        ma_hazard=np.array([s.ma_hazard for s in st]) * linkage.exit_hazard_multiplier,
        advance_hazard=np.array([s.advance_hazard for s in st]),
        log_round=np.log1p([s.round_size for s in st]),
        dilution=1.0 / (1.0 + np.array([s.round_size for s in st])),
        checkpoints=np.ascontiguousarray(chk),
        checkpoint_diluted=np.ascontiguousarray(diluted),
        dt=scenario.dt,
        n_steps=scenario.n_steps,
        log_barrier=math.log(scenario.default_barrier)
        if scenario.default_barrier > 0
        else -math.inf,
        value_dispersion=scenario.value_dispersion,
        quality_drift=0.0 if q else scenario.quality_drift,
        quality_hazard=scenario.quality_hazard,
        factor_loading=m.factor_loading,
        jump_rate=m.jump_rate,
        jump_mean=m.jump_mean,
        jump_vol=m.jump_vol,
        jump_compensator=jump_comp,
        regime_scale=regime_scale(scenario),
        value_elasticity=scenario.hazard_value_elasticity,
        runway_steps=np.array([runway_steps(s.runway_years, scenario) for s in st], np.int64),
        runway_multiplier=scenario.runway_hazard_multiplier,
        sicr_step=sicr_step(scenario),
        sicr_ratio=SICR_RATIO,
        risk_neutral=q,
        exit_multiple=np.ascontiguousarray(
            np.outer(regime_multiple(scenario), [scenario.ipo_multiple, scenario.ma_multiple])
        ),
    )


#: IFRS 9 staging rule of the simulation: a loan moves to stage 2 at the one-year test when its
#: firm's default intensity is at least this multiple of the intensity at origination (a
#: relative increase of 100%, the low end of practice, 100-200%), or its runway has run out.
SICR_RATIO = 2.0


def sicr_step(scenario: Scenario) -> int:
    """Step of the one-year staging test (the horizon if it is shorter)."""
    return min(scenario.steps_per_year, scenario.n_steps)


def runway_steps(runway_years: float | None, scenario: Scenario) -> int:
    """Steps after a round from which the runway multiplier applies.

    The multiplier applies to the steps that start at or after the runway: step ``k`` after a
    round at step ``k0`` when ``k - 1 - k0 >= ceil(runway / dt)``. Without a runway (or with a
    multiplier of 1) the count is past any horizon.
    """
    if runway_years is None or scenario.runway_hazard_multiplier == 1.0:
        return scenario.n_steps + 1
    return math.ceil(runway_years / scenario.dt - 1e-9)


def regime_scale(scenario: Scenario) -> np.ndarray:
    """Hazard multipliers (default, exit, advance) per regime: one row of ones without a cycle."""
    c = scenario.cycle
    if c is None:
        return np.ones((1, 3))
    return np.array([[r.default, r.exit, r.advance] for r in (c.hot, c.cold)])


def regime_distress(scenario: Scenario) -> np.ndarray:
    """Distress-value multipliers per regime (``[1.0]`` without a cycle)."""
    c = scenario.cycle
    return np.ones(1) if c is None else np.array([c.hot.distress_value, c.cold.distress_value])


def regime_multiple(scenario: Scenario) -> np.ndarray:
    """Exit-multiple multipliers per regime (``[1.0]`` without a cycle)."""
    c = scenario.cycle
    return np.ones(1) if c is None else np.array([c.hot.exit_multiple, c.cold.exit_multiple])


def lower_structure(scenario: Scenario, structure: Structure, checkpoints) -> Terms:
    """Lower a structure to its :class:`Terms` on the scenario's time grid.

    ``checkpoints`` is the run's :func:`checkpoint_table` (or the sorted array of its steps
    that record ``V``).
    """
    if isinstance(checkpoints, tuple):
        chk_steps, chk_diluted = (np.asarray(a) for a in checkpoints)
    else:
        chk_steps = np.asarray(checkpoints)
        chk_diluted = np.zeros_like(chk_steps)
    dt = scenario.dt
    n = scenario.n_steps
    loan = structure.loan
    km = step_of(loan.maturity_years, dt)
    kio = step_of(loan.io_years, dt)
    k = np.arange(n + 1)
    balance = balance_schedule(km, kio, n)
    rs = structure.risk_share
    pool = structure.risk_pool
    # The pool's contribution is paid like the risk-share premium: on the balance, each step.
    premium = (rs.premium if rs is not None else 0.0) + (
        pool.contribution if pool is not None else 0.0
    )
    covered = rs.covered_fraction if rs is not None else 0.0
    flow = np.zeros(n + 1)
    prev = balance[:-1]
    flow[1:] = (loan.rate - premium) * dt * prev + (prev - balance[1:])
    discount = np.exp(-scenario.market.discount_rate * dt * k)
    pv_flow_cum = np.cumsum(flow * discount)
    held = np.concatenate(([0.0], prev * dt))  # balance outstanding during step k, times dt
    pv_balance_cum = np.cumsum(held * discount)
    pv_interest_cum = loan.rate * pv_balance_cum
    pv_amortisation_cum = np.cumsum(np.concatenate(([0.0], prev - balance[1:])) * discount)
    balance_years_cum = np.concatenate(([0.0], np.cumsum(balance[:-1] * dt)))
    coll = loan.collateral
    if isinstance(coll, Collateral):
        fixed = 0.0
        r = scenario.market.discount_rate
        c_scale = coll.realised_mean(1.0, r) * math.exp(-0.5 * coll.appraisal_error**2)
        c_sigma, c_eta = coll.appraisal_error, coll.value_elasticity
    else:
        fixed, c_scale, c_sigma, c_eta = coll, 0.0, 0.0, 0.0
    w = structure.warrant
    kw = -1 if w is None else warrant_expiry_step(w.expiry_years, dt)
    expiry_rows = np.flatnonzero((chk_steps == kw) & (chk_diluted == 1))
    m = scenario.market
    lk = structure.linkage
    st = scenario.stages
    e = structure.equity
    sc = structure.screening
    accept_all = sc.acceptance_rate >= 1.0
    threshold = (
        -math.inf
        if accept_all
        else math.sqrt(1.0 + sc.signal_noise**2) * float(ndtri(1.0 - sc.acceptance_rate))
    )
    return Terms(
        dt=dt,
        loan_to_value=loan.loan_to_value,
        upfront_fee=loan.upfront_fee,
        final_fee=loan.final_fee,
        prepayment_fee=loan.prepayment_fee,
        recovery_rate=loan.recovery_rate * scenario.distress_value,
        collateral=fixed,
        collateral_scale=c_scale,
        collateral_sigma=c_sigma,
        collateral_elasticity=c_eta,
        regime_distress=regime_distress(scenario),
        ecl_discount=np.exp(-loan.rate * dt * k),
        ecl_12m_step=scenario.steps_per_year,
        sicr_step=sicr_step(scenario),
        rate=loan.rate,
        maturity_step=km,
        checkpoint_index=int(np.flatnonzero((chk_steps == km) & (chk_diluted == 0))[0]),
        balance=balance,
        flow=flow,
        pv_flow_cum=pv_flow_cum,
        pv_interest_cum=pv_interest_cum,
        pv_amortisation_cum=pv_amortisation_cum,
        pv_balance_cum=pv_balance_cum,
        balance_years_cum=balance_years_cum,
        discount=discount,
        premium=premium,
        pool_contribution=pool.contribution if pool is not None else 0.0,
        covered_fraction=covered,
        warrant_fraction=0.0 if w is None else w.coverage * loan.loan_to_value,
        warrant_strike=0.0 if w is None else w.coverage,
        share_of_gain=0.0 if w is None else w.share_of_gain,
        warrant_expiry_step=kw,
        warrant_checkpoint=int(expiry_rows[0]) if expiry_rows.size else -1,
        warrant_remaining=0.0 if w is None else max(w.expiry_years - scenario.horizon_years, 0.0),
        horizon_discount=1.0 - m.illiquidity_discount,
        stage_volatility=np.array([s.volatility for s in st]),
        stage_default=np.array([s.default_hazard for s in st])
        * (lk.default_hazard_multiplier * m.default_risk_premium),
        stage_ipo=np.array([s.ipo_hazard for s in st]) * lk.exit_hazard_multiplier,
        stage_ma=np.array([s.ma_hazard for s in st]) * lk.exit_hazard_multiplier,
        quality_hazard=scenario.quality_hazard,
        regime_scale=regime_scale(scenario),
        discount_rate=m.discount_rate,
        gl_nodes=GL_NODES,
        gl_weights=GL_WEIGHTS,
        equity_fraction=0.0 if e is None else e.equity_to_value,
        accept_all=accept_all,
        signal_noise=sc.signal_noise,
        signal_threshold=threshold,
        screening_cost=sc.cost,
        ipo_multiple=scenario.ipo_multiple,
        ma_multiple=scenario.ma_multiple,
        regime_multiple=regime_multiple(scenario),
        pool_fraction=0.0 if pool is None else pool.covered_fraction,
        pool_cap=0.0 if pool is None else pool.annual_cap,
        steps_per_year=scenario.steps_per_year,
    )
