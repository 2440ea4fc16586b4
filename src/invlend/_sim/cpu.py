"""The ``cpu`` backend: numba kernels for firm simulation, structure evaluation and IRR.

Overview
--------
Kernels read their inputs from the lowering's named tuples
(:class:`~invlend._sim.lowering.Dynamics`, :class:`~invlend._sim.lowering.Terms`,
:class:`~invlend._sim.backend.Draws`,
:data:`~invlend._sim.layout.FirmOutcomes`) and write into preallocated outputs passed one array
per argument, in the order of :mod:`invlend._sim.layout` (numba's parallel loops lose writes
into arrays held in a tuple); they never import the models. Firms are flattened portfolio-major:
flat firm ``i`` of a chunk is firm ``i % portfolio_size`` of the chunk's portfolio
``i // portfolio_size``. Every random draw comes from :mod:`invlend.rng` keyed by
(seed, portfolio, firm, purpose, step), so a firm's path does not depend on which thread or
chunk computes it. The ``numpy`` backend (:mod:`invlend._numpy_backend`) implements the same
steps and is the oracle for these kernels.

All kernels are jit-compiled by numba; inputs are not validated.

Performance notes (``docs/performance.md`` has the measurements): the step loop of
:func:`_simulate_firms` is written so that nothing in its common path calls a function (a call
makes numba spill every live float around it), and the IRR solves several rows side by side.
None of this changes a result: every value is computed by the same operations in the same order.
"""

from __future__ import annotations

import math

import numpy as np

from invlend._numba import jit, pjit, prange
from invlend._sim import irr as I
from invlend._sim.backend import Backend
from invlend._sim.layout import (
    AGG_ACCEPTED,
    AGG_COLLATERAL,
    AGG_DEFAULTS,
    AGG_EAD,
    AGG_ECL_12M,
    AGG_ECL_LIFETIME,
    AGG_EXPOSURE,
    AGG_LOSS,
    AGG_LOSS_NET,
    AGG_NEGATIVE,
    AGG_NPV,
    AGG_POOL_CLAIMS,
    AGG_POOL_PAID,
    AGG_PRINCIPAL,
    AGG_PV_COLLATERAL,
    AGG_PV_EQUITY,
    AGG_PV_FEES,
    AGG_PV_INTEREST,
    AGG_PV_POOL,
    AGG_PV_PRINCIPAL,
    AGG_PV_RECOVERIES,
    AGG_PV_RISK_SHARING,
    AGG_PV_SCREENING,
    AGG_PV_WARRANT,
    AGG_QUALITY,
    AGG_RECOVERED,
    AGG_SCREEN_REJECTED,
    AGG_STAGE2,
    AGG_UPSIDE,
    EV_ADVANCE,
    EV_DEFAULT,
    EV_IPO,
    EV_MA,
    EV_NONE,
    MAX_LOG_VALUE_FACTOR,
)
from invlend.rng import LAYER_MASK, ZIGGURAT_RATIO, ZIGGURAT_X, Purpose, mix64, to_unit
from invlend.rng import firm_key as _firm_key
from invlend.rng import normal_bits as _normal_bits
from invlend.rng import uniform as _uniform

_P_STAGE = int(Purpose.STAGE)
_P_VALUE = int(Purpose.VALUE)
_P_QUALITY = int(Purpose.QUALITY)
_P_SIGNAL = int(Purpose.SIGNAL)
_P_GROWTH = int(Purpose.GROWTH)
_P_EVENT = int(Purpose.EVENT)
_P_JCOUNT = int(Purpose.JUMP_COUNT)
_P_JSIZE = int(Purpose.JUMP_SIZE)
_P_CLOCK = int(Purpose.CLOCK)
_P_APPRAISAL = int(Purpose.APPRAISAL)


@jit
def _normal(key, ctr):
    """The draw of :func:`invlend.rng.normal`, with the ziggurat's fast path inlined.

    About 99% of normals take the fast path (one hash, one table look-up, one multiply). It is
    written out here because numba does not inline ``rng.normal`` as a whole (its rejection loop
    makes it too big), and a call per draw in the step loop costs more than the draw itself. The
    other 1% go on from the same 64-bit word in ``rng.normal_bits``: the same number either way.
    """
    bits = mix64(key ^ ctr)
    layer = int(bits & LAYER_MASK)
    u = 2.0 * to_unit(bits) - 1.0
    if abs(u) < ZIGGURAT_RATIO[layer]:
        return u * ZIGGURAT_X[layer]
    return _normal_bits(bits)


@jit
def _exponential(key, ctr):
    """A unit exponential, ``-log(u)`` of the uniform at ``ctr`` (``u`` is never 0 or 1)."""
    return -math.log(_uniform(key, ctr))


@jit
def _stage_params(dyn, s, q, hazard_scale, r):
    """Per-step constants of stage ``s`` for a firm of quality ``q`` in funding regime ``r``.

    ``dyn`` is the :class:`~invlend._sim.lowering.Dynamics`; ``hazard_scale`` is the firm's
    ``exp(-quality_hazard * q)``, the same in every stage; ``dyn.regime_scale[r]`` holds the
    regime's multipliers on the default, exit and advance hazards (all 1.0 without a cycle,
    which leaves every product exact). Returns the log drift and volatility per step, the
    default intensity before its value and runway factors, the IPO and M&A intensities, the
    sum of the three that are not default, the event chosen when rounding puts the scaled
    uniform past the last threshold, the exits' shortfall ``li (1 - m_ipo) + lm (1 - m_ma)``
    and, under the risk-neutral measure, the step's event compensator at the base default
    intensity (:func:`_compensator`; 0 under the real-world measure).
    """
    dt = dyn.dt
    scale = dyn.regime_scale
    sig = dyn.volatility[s]
    mu_dt = (dyn.drift[s] + dyn.quality_drift * q - 0.5 * sig * sig - dyn.jump_compensator) * dt
    sig_sqdt = sig * math.sqrt(dt)
    ld = dyn.default_hazard[s] * hazard_scale * scale[r, 0]
    li = dyn.ipo_hazard[s] * scale[r, 1]
    lm = dyn.ma_hazard[s] * scale[r, 1]
    la = dyn.advance_hazard[s] * scale[r, 2]
    last = EV_ADVANCE
    if la <= 0.0:
        last = EV_MA
        if lm <= 0.0:
            last = EV_IPO
            if li <= 0.0:
                last = EV_DEFAULT
    other = li + lm + la
    shortfall = li * (1.0 - dyn.exit_multiple[r, 0]) + lm * (1.0 - dyn.exit_multiple[r, 1])
    comp = _compensator(ld, other, shortfall, dt) if dyn.risk_neutral else 0.0
    return mu_dt, sig_sqdt, ld, li, lm, other, last, shortfall, comp


@jit
def _compensator(ld, other, shortfall, dt):
    """Log-drift correction of one step that makes a claim on the whole firm a martingale.

    With total intensity ``L = ld + other`` the step has an event with probability
    ``1 - exp(-L dt)``, a default paying nothing, an exit ``m`` per unit of value and a round
    ``1``. The expected payoff per unit of value is ``c = 1 - (1 - e^{-L dt}) (ld + shortfall)
    / L``; adding ``-log c`` to the step's log drift makes ``E[V_k c_k] = e^{r dt} V_{k-1}``.
    """
    total = ld + other
    if total <= 0.0:
        return 0.0
    return -math.log1p(math.expm1(-total * dt) * (ld + shortfall) / total)


@pjit
def _simulate_firms(
    draws,
    portfolio_size,
    path_start,
    dyn,
    out_event,
    out_step,
    out_value,
    out_stage0,
    out_stage,
    out_rounds,
    out_dilution,
    out_v0,
    out_quality,
    out_signal,
    out_regime,
    out_appraisal,
    out_stage2,
    out_chk,
    out_paths,
):
    """Simulate every firm of a chunk of portfolios until its event or the horizon.

    ``draws`` is a :class:`~invlend._sim.backend.Draws`: ``ctr`` (n_purposes, >= n_steps)
    uint64, ``pkeys`` (n_port,) uint64, ``market`` and ``regime`` (n_port, n_steps), the regime
    int8 (0 hot, 1 cold; all 0 without a cycle), ``quality_shift`` (n_port,) the mean of the
    portfolio's quality normals (0 but under importance sampling, :mod:`invlend.tail`). ``dyn`` is a
    :class:`~invlend._sim.lowering.Dynamics`. The outputs are the fields of
    :data:`~invlend._sim.layout.OUTCOMES` in order, each (n_port * portfolio_size,), then
    ``out_chk`` (n_firms, n_chk) and ``out_paths`` (n_paths, n_steps + 1), whose row
    ``path_start + i`` receives flat firm ``i`` when it exists. Written in place.

    Events run on a cumulative-hazard clock: each event slot (from entry, then from each
    funding round) draws one unit exponential ``E``; every step adds its total intensity times
    ``dt`` to the slot's hazard ``H``, and the step in which ``H`` passes ``E`` has the event,
    chosen in proportion to that step's intensities by the step's event uniform. The chance of
    an event in step ``k`` given none before is ``1 - exp(-L_k dt)``, as in a per-step draw.
    """
    ctr, pkeys, market, regime, quality_shift = draws
    weight_cdf = dyn.weight_cdf
    log_value = dyn.log_value
    log_round = dyn.log_round
    dilution = dyn.dilution
    checkpoints = dyn.checkpoints
    chk_diluted = dyn.checkpoint_diluted
    runway_steps = dyn.runway_steps
    dt = dyn.dt
    n_steps = dyn.n_steps
    log_barrier = dyn.log_barrier
    value_dispersion = dyn.value_dispersion
    quality_hazard = dyn.quality_hazard
    factor_loading = dyn.factor_loading
    jump_rate = dyn.jump_rate
    jump_mean = dyn.jump_mean
    jump_vol = dyn.jump_vol
    beta = dyn.value_elasticity
    runway_multiplier = dyn.runway_multiplier
    sicr_step = dyn.sicr_step
    sicr_ratio = dyn.sicr_ratio
    n_firms = pkeys.shape[0] * portfolio_size
    n_stages = weight_cdf.shape[0]
    n_chk = checkpoints.shape[0]
    n_paths = out_paths.shape[0]
    idio = math.sqrt(1.0 - factor_loading * factor_loading)
    p_no_jump = math.exp(-jump_rate * dt)
    jump_dt = jump_rate * dt
    # Without a barrier (the default) the step loop skips the comparison: a branch on the
    # log value, which is known late in each step, holds the loop back. Likewise the value
    # factor (one exp per step) and the runway test run only where they can change a number.
    has_barrier = log_barrier > -math.inf
    has_cycle = dyn.regime_scale.shape[0] > 1
    value_dependent = beta != 0.0
    has_runway = runway_multiplier != 1.0
    risk_neutral = dyn.risk_neutral
    for i in prange(n_firms):
        p = i // portfolio_size
        fkey = _firm_key(pkeys[p], i - p * portfolio_size)
        # Draws made once per firm, at counters 0 and 1 of their own purposes.
        u_stage = _uniform(fkey, ctr[_P_STAGE, 0])
        s = 0
        while s < n_stages - 1 and u_stage >= weight_cdf[s]:
            s += 1
        z_value = _normal(fkey, ctr[_P_VALUE, 0])
        q = _normal(fkey, ctr[_P_QUALITY, 0]) + quality_shift[p]
        e = _normal(fkey, ctr[_P_SIGNAL, 0])
        logv0 = log_value[s] + value_dispersion * z_value
        logv = logv0
        barrier = logv0 + log_barrier
        out_stage0[i] = s
        out_v0[i] = math.exp(logv0)
        out_quality[i] = q
        out_signal[i] = e
        out_appraisal[i] = _normal(fkey, ctr[_P_APPRAISAL, 0])
        row = path_start + i
        record = row < n_paths
        if record:
            out_paths[row, 0] = out_v0[i]
        hazard_scale = math.exp(-quality_hazard * q)
        cur = regime[p, 0] if has_cycle else 0
        mu_dt, sig_sqdt, ld, li, lm, other, last, shortfall, comp = _stage_params(
            dyn, s, q, hazard_scale, cur
        )
        ld_origin = ld
        stage2 = 0
        log_ref = logv0  # log V just after the last round (entry before any)
        k_round = 0  # step of the last round (0: entry)
        runway = runway_steps[s]
        clock = _exponential(fkey, ctr[_P_CLOCK, 0])
        hazard = 0.0  # the slot's cumulative hazard
        dil = 1.0
        log_dil = 0.0
        rounds = 0
        nxt = 0
        next_chk = checkpoints[0] if n_chk > 0 else -1
        event = EV_NONE
        step = n_steps
        # Arrays are indexed in place rather than through row views taken per firm, which numba
        # reference-counts with atomic operations on memory that both threads share.
        for k in range(1, n_steps + 1):
            j = k - 1
            if has_cycle and regime[p, j] != cur:
                cur = regime[p, j]
                mu_dt, sig_sqdt, ld, li, lm, other, last, shortfall, comp = _stage_params(
                    dyn, s, q, hazard_scale, cur
                )
            # The step's intensities are read at its start (they are predictable), so the
            # risk-neutral drift that compensates them is known before the growth shock.
            ldk = ld
            if value_dependent:
                ldk = ld * math.exp(min(beta * (log_ref - logv), MAX_LOG_VALUE_FACTOR))
            aged = has_runway and k - 1 - k_round >= runway
            if aged:
                ldk *= runway_multiplier
            total = ldk + other
            drift = mu_dt
            if risk_neutral:
                if (value_dependent or aged) and total > 0.0:
                    drift -= math.log1p(math.expm1(-total * dt) * (ldk + shortfall) / total)
                else:
                    drift += comp
            z = _normal(fkey, ctr[_P_GROWTH, j])
            logv += drift + sig_sqdt * (factor_loading * market[p, j] + idio * z)
            if jump_dt > 0.0:
                u_jump = _uniform(fkey, ctr[_P_JCOUNT, j])
                if u_jump > p_no_jump:
                    n_jumps = 1
                    prob = p_no_jump * jump_dt
                    cum = p_no_jump + prob
                    while u_jump > cum and prob > 0.0:
                        n_jumps += 1
                        prob *= jump_dt / n_jumps
                        cum += prob
                    jz = _normal(fkey, ctr[_P_JSIZE, j])
                    logv += n_jumps * jump_mean + math.sqrt(n_jumps) * jump_vol * jz
            if has_barrier and logv < barrier:
                event = EV_DEFAULT
                step = k
                break
            hazard += total * dt
            if hazard > clock:
                x = _uniform(fkey, ctr[_P_EVENT, j]) * total
                if x < ldk:
                    chosen = EV_DEFAULT
                elif x < ldk + li:
                    chosen = EV_IPO
                elif x < ldk + li + lm:
                    chosen = EV_MA
                else:
                    chosen = last
                if chosen != EV_ADVANCE:
                    event = chosen
                    step = k
                    break
                logv += log_round[s]
                log_dil -= log_round[s]
                dil *= dilution[s]
                s += 1
                rounds += 1
                mu_dt, sig_sqdt, ld, li, lm, other, last, shortfall, comp = _stage_params(
                    dyn, s, q, hazard_scale, cur
                )
                log_ref = logv
                k_round = k
                runway = runway_steps[s]
                hazard = 0.0
                if k < n_steps:
                    clock = _exponential(fkey, ctr[_P_CLOCK, k])
            elif k == sicr_step:
                # IFRS 9 staging at one year (a firm just funded is not deteriorated).
                if ldk >= sicr_ratio * ld_origin and ldk > 0.0:
                    stage2 = 1
                if aged:
                    stage2 = 1
            # Log values are stored as they come and exponentiated after the loop, which keeps
            # calls to exp out of it.
            while k == next_chk:  # a step may hold a maturity and a warrant's expiry
                out_chk[i, nxt] = logv + log_dil if chk_diluted[nxt] else logv
                nxt += 1
                next_chk = checkpoints[nxt] if nxt < n_chk else -1
            if record:
                out_paths[row, k] = logv
        for c in range(nxt):
            out_chk[i, c] = math.exp(out_chk[i, c])
        while nxt < n_chk:  # checkpoints after the event: no value
            out_chk[i, nxt] = np.nan
            nxt += 1
        if record:
            for kk in range(1, step):
                out_paths[row, kk] = math.exp(out_paths[row, kk])
            for kk in range(step + 1, n_steps + 1):
                out_paths[row, kk] = np.nan
            out_paths[row, step] = math.exp(logv)
        out_event[i] = event
        out_step[i] = step
        out_value[i] = math.exp(logv)
        out_stage[i] = s
        out_rounds[i] = rounds
        out_dilution[i] = dil
        out_regime[i] = cur
        out_stage2[i] = stage2


@jit
def _recovery(owed, v, v0, share, fixed, scale, sigma, eta, e):
    """What a default at firm value ``v`` pays on a balance ``owed``, and the collateral's part.

    ``share`` is the loan's share of the distressed assets (already times the distress value
    of the scenario and the regime), ``fixed`` the certain collateral and ``scale``, ``sigma``,
    ``eta`` the terms of a modelled pledge (all per the principal's currency units), ``e`` the
    firm's appraisal error. The pledge's proceeds go to the balance first.
    """
    pledge = fixed
    if scale > 0.0:
        pledge += scale * math.exp(sigma * e + eta * math.log(v / v0))
    paid = min(owed, share * v + pledge)
    return paid, min(pledge, paid)


@jit
def _expected_call(s, strike, t, g, sig):
    """``E[(S_t - strike)^+]`` for ``S_t = s exp((g - sig^2/2) t + sig sqrt(t) Z)``."""
    if s <= 0.0:
        return 0.0
    forward = s * math.exp(g * t)
    sd = sig * math.sqrt(t)
    if strike <= 0.0 or sd <= 0.0:
        return max(forward - strike, 0.0)
    d1 = (math.log(forward / strike) + 0.5 * sd * sd) / sd
    return 0.5 * (
        forward * math.erfc(-d1 / math.sqrt(2.0)) - strike * math.erfc(-(d1 - sd) / math.sqrt(2.0))
    )


@jit
def _continuation(s, strike, tau, r, sig, ld, li, lm, mi, mm, nodes, weights):
    """Fair value of a call on ``s`` struck at ``strike`` with ``tau`` years of life left.

    The firm stays in its stage: under the risk-neutral measure the covered shares drift at
    ``g = r + ld + li (1 - mi) + lm (1 - mm)`` with volatility ``sig`` until the first of a
    default (intensity ``ld``, the call dies), an IPO or an M&A exit (``li``, ``lm``: the call
    is exercised on ``mi`` or ``mm`` times the value) or expiry. So

        e^{-(r+L) tau} C(s, tau) + int_0^tau e^{-(r+L) t} (li C(mi s, t) + lm C(mm s, t)) dt,

    with ``L = ld + li + lm`` and ``C`` of :func:`_expected_call`, the integral by the
    Gauss-Legendre rule ``nodes``, ``weights`` on [0, 1]. With ``li = lm = 0`` it is
    Black-Scholes at the rate ``r + ld``.
    """
    lam = ld + li + lm
    g = r + ld + li * (1.0 - mi) + lm * (1.0 - mm)
    value = math.exp(-(r + lam) * tau) * _expected_call(s, strike, tau, g, sig)
    if li > 0.0 or lm > 0.0:
        for n in range(nodes.shape[0]):
            t = tau * nodes[n]
            w = tau * weights[n] * math.exp(-(r + lam) * t)
            value += w * (
                li * _expected_call(mi * s, strike, t, g, sig)
                + lm * _expected_call(mm * s, strike, t, g, sig)
            )
    return value


@pjit
def _evaluate_structure(
    firms,
    chk,
    portfolio_size,
    terms,
    out_npv,
    out_principal,
    out_default,
    out_loss,
    out_upside,
    out_agg,
    out_pool_claims,
    out_pool_paid,
    out_cf,
    work,
):
    """Cash flows of one structure on simulated outcomes, per firm and per portfolio.

    ``firms`` is a :data:`~invlend._sim.layout.FirmOutcomes` of flat arrays (n_port *
    portfolio_size,), ``chk`` is (n_firms, n_chk) and ``terms`` a
    :class:`~invlend._sim.lowering.Terms`. Writes the fields of
    :data:`~invlend._sim.layout.PER_FIRM` in order: ``out_npv`` (NaN where not accepted),
    ``out_principal``, ``out_default``, ``out_loss`` (credit loss before risk sharing),
    ``out_upside`` (PV of warrant and equity proceeds); then ``out_agg`` (n_port, N_AGG,
    columns :data:`~invlend._sim.layout.AGGREGATES`), ``out_pool_claims`` and
    ``out_pool_paid`` (n_port, n_years): the risk pool's claims and payments by year of the
    horizon, and ``out_cf`` (n_port, n_steps + 1): the portfolio's undiscounted cash flows by
    step, for its IRR; ``work`` (n_port, n_steps + 2) is scratch. Written in place.

    The pool pays each year's claims at the year's end, capped at ``pool_cap`` times the
    principal the portfolio lent, and each firm's NPV gets its claim's share of the payment.
    """
    event, step, value, v0 = firms.event, firms.step, firms.value, firms.v0
    quality, signal, dil, regime = firms.quality, firms.signal, firms.dilution, firms.regime
    appraisal, stage2, stage = firms.appraisal, firms.stage2, firms.stage
    dt = terms.dt
    loan_to_value = terms.loan_to_value
    upfront_fee = terms.upfront_fee
    final_fee = terms.final_fee
    prepayment_fee = terms.prepayment_fee
    pv_interest_cum = terms.pv_interest_cum
    pv_amortisation_cum = terms.pv_amortisation_cum
    pv_balance_cum = terms.pv_balance_cum
    pool_contribution = terms.pool_contribution
    warrant_checkpoint = terms.warrant_checkpoint
    warrant_remaining = terms.warrant_remaining
    horizon_discount = terms.horizon_discount
    stage_volatility = terms.stage_volatility
    stage_default = terms.stage_default
    stage_ipo = terms.stage_ipo
    stage_ma = terms.stage_ma
    quality_hazard = terms.quality_hazard
    regime_scale = terms.regime_scale
    discount_rate = terms.discount_rate
    gl_nodes = terms.gl_nodes
    gl_weights = terms.gl_weights
    recovery_rate = terms.recovery_rate
    collateral = terms.collateral
    collateral_scale = terms.collateral_scale
    collateral_sigma = terms.collateral_sigma
    collateral_elasticity = terms.collateral_elasticity
    regime_distress = terms.regime_distress
    ecl_discount = terms.ecl_discount
    ecl_12m_step = terms.ecl_12m_step
    sicr_step = terms.sicr_step
    rate = terms.rate
    checkpoint_index = terms.checkpoint_index
    balance = terms.balance
    flow = terms.flow
    pv_flow_cum = terms.pv_flow_cum
    balance_years_cum = terms.balance_years_cum
    discount = terms.discount
    premium = terms.premium
    covered_fraction = terms.covered_fraction
    warrant_fraction = terms.warrant_fraction
    warrant_strike = terms.warrant_strike
    share_of_gain = terms.share_of_gain
    warrant_expiry_step = terms.warrant_expiry_step
    equity_fraction = terms.equity_fraction
    accept_all = terms.accept_all
    signal_noise = terms.signal_noise
    signal_threshold = terms.signal_threshold
    screening_cost = terms.screening_cost
    ipo_multiple = terms.ipo_multiple
    ma_multiple = terms.ma_multiple
    regime_multiple = terms.regime_multiple
    pool_fraction = terms.pool_fraction
    pool_cap = terms.pool_cap
    steps_per_year = terms.steps_per_year
    n_port = out_agg.shape[0]
    n_steps = out_cf.shape[1] - 1
    n_years = out_pool_claims.shape[1]
    km = terms.maturity_step
    for p in prange(n_port):
        # The portfolio's sums, kept in registers and added up in firm order.
        n_accepted = 0.0
        lent = 0.0
        npv_sum = 0.0
        screen_rejected = 0.0
        n_defaults = 0.0
        ead = 0.0
        loss_sum = 0.0
        loss_net = 0.0
        n_negative = 0.0
        exposure = 0.0
        upside_sum = 0.0
        quality_sum = 0.0
        ecl_12m = 0.0
        ecl_life = 0.0
        n_stage2 = 0.0
        recovered = 0.0
        from_pledge = 0.0
        pv_interest = 0.0
        pv_principal = 0.0
        pv_fees = 0.0
        pv_recoveries = 0.0
        pv_collateral = 0.0
        pv_warrant = 0.0
        pv_equity = 0.0
        pv_screening = 0.0
        pv_risk_sharing = 0.0
        pv_pool = 0.0
        for c in range(out_cf.shape[1]):
            out_cf[p, c] = 0.0
            work[p, c] = 0.0
        for y in range(n_years):
            out_pool_claims[p, y] = 0.0
            out_pool_paid[p, y] = 0.0
        for firm in range(p * portfolio_size, (p + 1) * portfolio_size):
            # An unsigned index spares each of the many array accesses below numba's fix-up
            # of negative indices (about 10% of this kernel's time).
            i = np.uint64(firm)
            principal = loan_to_value * v0[i]
            cost = screening_cost * principal
            if not accept_all and quality[i] + signal_noise * signal[i] <= signal_threshold:
                out_npv[i] = np.nan
                out_principal[i] = 0.0
                out_default[i] = 0
                out_loss[i] = 0.0
                out_upside[i] = 0.0
                screen_rejected += cost
                npv_sum -= cost
                pv_screening -= cost
                out_cf[p, 0] -= cost
                continue
            ev = event[i]
            k = step[i]
            v = value[i]
            if ev == EV_IPO:
                multiple = ipo_multiple * regime_multiple[regime[i]]
            elif ev == EV_MA:
                multiple = ma_multiple * regime_multiple[regime[i]]
            else:
                multiple = 1.0
            entry = principal * (upfront_fee - 1.0) - cost - equity_fraction * v0[i]
            npv = entry
            out_cf[p, 0] += entry
            loss = 0.0
            defaulted = 0
            settled = 0.0  # what the loan took out of the exit (or horizon) value
            at_default = False  # the loan defaults, on the firm's value v_default
            v_default = v
            repaid = 0.0  # principal repaid in the terminal payment
            fee_paid = 0.0  # final and prepayment fees paid with it
            coupon = 0.0  # the terminal step's interest at the loan rate (0 at a default)
            if ev != EV_NONE and k <= km:
                k_full = k - 1
                owed = principal * balance[k - 1]
                if ev == EV_DEFAULT:
                    at_default = True
                else:
                    exit_value = v * multiple
                    repaid = min(owed, exit_value)
                    loss = owed - repaid
                    fee_due = final_fee * principal
                    if k < km:
                        fee_due += prepayment_fee * owed
                    fee_paid = min(fee_due, max(exit_value - repaid, 0.0))
                    coupon = principal * dt * balance[k - 1]
                    settled = owed + fee_paid
                k_term = k
            else:
                k_full = km - 1
                owed = principal * balance[km - 1]
                vm = v if k == km else chk[i, checkpoint_index]
                if vm >= owed:
                    repaid = owed
                    fee_paid = min(final_fee * principal, vm - owed)
                    coupon = principal * dt * balance[km - 1]
                else:  # a balloon the firm's value does not cover
                    at_default = True
                    v_default = vm
                if ev == EV_NONE and k == km:
                    settled = owed + fee_paid
                k_term = km
            d_term = discount[k_term]
            term = (rate - premium) * coupon + repaid + fee_paid
            pledged = 0.0
            if at_default:
                paid, pledged = _recovery(
                    owed, v_default, v0[i], recovery_rate * regime_distress[regime[i]],
                    collateral * principal, collateral_scale * principal,
                    collateral_sigma, collateral_elasticity, appraisal[i],
                )  # fmt: skip
                recovered += paid
                from_pledge += pledged
                loss = owed - paid
                term = paid
                defaulted = 1
                pv_recoveries += d_term * (paid - pledged)
                pv_collateral += d_term * pledged
            covered = 0.0
            if loss > 0.0:  # an exit below the balance is a default too
                defaulted = 1
                covered = covered_fraction * loss
                term += covered
                kept = (1.0 - covered_fraction) * loss * ecl_discount[k_term]
                ecl_life += kept
                if k_term <= ecl_12m_step:
                    ecl_12m += kept
                if pool_fraction > 0.0:
                    out_pool_claims[p, (k_term - 1) // steps_per_year] += pool_fraction * loss
            npv += principal * pv_flow_cum[k_full] + d_term * term
            # The parts of the loan's value (risk-share premium and pool contribution are both
            # paid on the balance: scheduled steps, then the terminal step's coupon).
            on_balance = principal * pv_balance_cum[k_full] + d_term * coupon
            pv_interest += principal * pv_interest_cum[k_full] + d_term * rate * coupon
            pv_principal += principal * (pv_amortisation_cum[k_full] - 1.0) + d_term * repaid
            pv_fees += principal * upfront_fee + d_term * fee_paid
            pv_risk_sharing += d_term * covered - (premium - pool_contribution) * on_balance
            pv_pool -= pool_contribution * on_balance
            pv_screening -= cost
            # Scheduled flows run over steps 1..k_full: mark the principal in force there.
            work[p, 1] += principal
            work[p, k_full + 1] -= principal
            out_cf[p, k_term] += term
            # Warrant: exercised at an exit in its life, at expiry by a firm alive then, or
            # settled at the horizon at its fair value for the life left (the horizon's
            # marks of unlisted equity take the illiquidity discount).
            u_w = 0.0
            k_w = k
            stake = 0.0
            if ev != EV_DEFAULT:
                stake = max(v * multiple - settled, 0.0) * dil[i]
                if ev == EV_NONE:
                    stake *= horizon_discount
            if warrant_fraction > 0.0:
                strike = warrant_strike * principal
                if k > warrant_expiry_step:
                    k_w = warrant_expiry_step
                    u_w = max(warrant_fraction * chk[i, warrant_checkpoint] - strike, 0.0)
                elif ev == EV_NONE and warrant_remaining > 0.0:
                    g = regime[i]
                    u_w = _continuation(
                        warrant_fraction * stake, strike, warrant_remaining, discount_rate,
                        stage_volatility[stage[i]],
                        stage_default[stage[i]] * math.exp(-quality_hazard * quality[i])
                        * regime_scale[g, 0],
                        stage_ipo[stage[i]] * regime_scale[g, 1],
                        stage_ma[stage[i]] * regime_scale[g, 1],
                        ipo_multiple * regime_multiple[g], ma_multiple * regime_multiple[g],
                        gl_nodes, gl_weights,
                    )  # fmt: skip
                elif ev != EV_DEFAULT:
                    u_w = max(warrant_fraction * stake - strike, 0.0)
                u_w *= share_of_gain
            u_e = equity_fraction * stake
            out_cf[p, k_w] += u_w
            out_cf[p, k] += u_e
            upside = discount[k_w] * u_w + discount[k] * u_e
            npv += upside
            pv_warrant += discount[k_w] * u_w
            pv_equity += discount[k] * u_e - equity_fraction * v0[i]
            out_npv[i] = npv
            out_principal[i] = principal
            out_default[i] = defaulted
            out_loss[i] = loss
            out_upside[i] = upside
            n_accepted += 1.0
            lent += principal
            npv_sum += npv
            n_defaults += defaulted
            if defaulted:
                ead += owed
            loss_sum += loss
            loss_net += (1.0 - covered_fraction) * loss
            n_negative += 1.0 if npv < 0.0 else 0.0
            exposure += principal * balance_years_cum[min(k, km)]
            upside_sum += upside
            quality_sum += quality[i]
            if stage2[i] and km > sicr_step:
                n_stage2 += 1.0
        claims_sum = 0.0
        pool_paid = 0.0
        if pool_fraction > 0.0:
            for y in range(n_years):
                claims = out_pool_claims[p, y]
                if claims > 0.0:
                    paid = min(claims, pool_cap * lent)
                    k_pay = min((y + 1) * steps_per_year, n_steps)
                    out_pool_paid[p, y] = paid
                    out_cf[p, k_pay] += paid
                    npv_sum += discount[k_pay] * paid
                    pv_pool += discount[k_pay] * paid
                    claims_sum += claims
                    pool_paid += paid
            loss_net -= pool_paid
            # Each claimant's NPV gets its claim's share of its year's payment.
            for firm in range(p * portfolio_size, (p + 1) * portfolio_size):
                i = np.uint64(firm)
                if out_loss[i] > 0.0:
                    k_term = step[i] if event[i] != EV_NONE and step[i] <= km else km
                    y = (k_term - 1) // steps_per_year
                    k_pay = min((y + 1) * steps_per_year, n_steps)
                    share = out_pool_paid[p, y] / out_pool_claims[p, y]
                    before = out_npv[i]
                    out_npv[i] = before + discount[k_pay] * pool_fraction * out_loss[i] * share
                    if before < 0.0 and out_npv[i] >= 0.0:
                        n_negative -= 1.0
        out_agg[p, AGG_ACCEPTED] = n_accepted
        out_agg[p, AGG_PRINCIPAL] = lent
        out_agg[p, AGG_NPV] = npv_sum
        out_agg[p, AGG_SCREEN_REJECTED] = screen_rejected
        out_agg[p, AGG_DEFAULTS] = n_defaults
        out_agg[p, AGG_EAD] = ead
        out_agg[p, AGG_LOSS] = loss_sum
        out_agg[p, AGG_LOSS_NET] = loss_net
        out_agg[p, AGG_NEGATIVE] = n_negative
        out_agg[p, AGG_EXPOSURE] = exposure
        out_agg[p, AGG_UPSIDE] = upside_sum
        out_agg[p, AGG_QUALITY] = quality_sum
        out_agg[p, AGG_POOL_CLAIMS] = claims_sum
        out_agg[p, AGG_POOL_PAID] = pool_paid
        out_agg[p, AGG_ECL_12M] = ecl_12m
        out_agg[p, AGG_ECL_LIFETIME] = ecl_life
        out_agg[p, AGG_STAGE2] = n_stage2
        out_agg[p, AGG_RECOVERED] = recovered
        out_agg[p, AGG_COLLATERAL] = from_pledge
        out_agg[p, AGG_PV_INTEREST] = pv_interest
        out_agg[p, AGG_PV_PRINCIPAL] = pv_principal
        out_agg[p, AGG_PV_FEES] = pv_fees
        out_agg[p, AGG_PV_RECOVERIES] = pv_recoveries
        out_agg[p, AGG_PV_COLLATERAL] = pv_collateral
        out_agg[p, AGG_PV_WARRANT] = pv_warrant
        out_agg[p, AGG_PV_EQUITY] = pv_equity
        out_agg[p, AGG_PV_SCREENING] = pv_screening
        out_agg[p, AGG_PV_RISK_SHARING] = pv_risk_sharing
        out_agg[p, AGG_PV_POOL] = pv_pool
        in_force = 0.0
        for kk in range(1, out_cf.shape[1]):
            in_force += work[p, kk]
            out_cf[p, kk] += in_force * flow[kk]


_IRR_LANES = 4  # rows _portfolio_irr solves side by side (_pv_lanes is written for four)
_IRR_ROWS = 64  # rows per parallel task of _portfolio_irr


@jit
def _pv_lanes(cf_lanes, top, y, out_pv, out_slope):
    """PV and d PV / dy of four lanes of cash flows ``cf_lanes[step, lane]``, each at its ``y``.

    Horner's scheme, as in a row-by-row evaluation; steps above ``top`` hold no cash flow in any
    lane, and skipping them leaves every sum unchanged. Plain scalars keep the eight chains of
    multiply-adds in registers, where they run side by side.
    """
    y0, y1, y2, y3 = y[0], y[1], y[2], y[3]
    a0 = a1 = a2 = a3 = 0.0
    s0 = s1 = s2 = s3 = 0.0
    for k in range(top, -1, -1):
        s0 = s0 * y0 + a0
        s1 = s1 * y1 + a1
        s2 = s2 * y2 + a2
        s3 = s3 * y3 + a3
        a0 = a0 * y0 + cf_lanes[k, 0]
        a1 = a1 * y1 + cf_lanes[k, 1]
        a2 = a2 * y2 + cf_lanes[k, 2]
        a3 = a3 * y3 + cf_lanes[k, 3]
    out_pv[0], out_pv[1], out_pv[2], out_pv[3] = a0, a1, a2, a3
    out_slope[0], out_slope[1], out_slope[2], out_slope[3] = s0, s1, s2, s3


@pjit
def _portfolio_irr(cf, dt, out):
    """Annual effective IRR of each row of undiscounted cash flows ``cf[p, step]``.

    The solver of :mod:`invlend._sim.irr` (its steps, bracket and special rows), for many rows.
    Each evaluation of the polynomial is a chain of dependent multiply-adds, which leaves the
    processor mostly waiting. So each task keeps ``_IRR_LANES`` rows in flight and evaluates
    their polynomials together: a lane goes through exactly the steps its row would go through
    alone in :func:`invlend._sim.irr.irr_row` (the bracket ends, then the Newton steps), and
    takes the task's next row when done.
    """
    n_port, n_k = cf.shape
    y_lo = math.exp(-I.BRACKET * dt)
    y_hi = math.exp(I.BRACKET * dt)
    n_tasks = (n_port + _IRR_ROWS - 1) // _IRR_ROWS
    for task in prange(n_tasks):
        next_row = task * _IRR_ROWS
        end_row = min(n_port, next_row + _IRR_ROWS)
        cf_lanes = np.zeros((n_k, _IRR_LANES))
        y = np.ones(_IRR_LANES)  # where each lane evaluates next
        a = np.empty(_IRR_LANES)  # bracket [a, b] of y, with the PV f_a at a
        b = np.empty(_IRR_LANES)
        f_a = np.empty(_IRR_LANES)
        pv = np.empty(_IRR_LANES)
        slope = np.empty(_IRR_LANES)
        row = np.full(_IRR_LANES, -1)  # the lane's row, -1 when idle
        top = np.zeros(_IRR_LANES, np.int64)  # the lane's last step with a cash flow
        phase = np.zeros(_IRR_LANES, np.int64)  # 0, 1: at y_lo, y_hi; 2 + n: n Newton steps
        while True:
            top_all = -1
            for lane in range(_IRR_LANES):
                while row[lane] < 0 and next_row < end_row:
                    p = next_row
                    next_row += 1
                    kind, last = I.row_kind(cf, p)
                    if kind == I.NOTHING_LENT:
                        out[p] = np.nan
                    elif kind == I.NOTHING_BACK:
                        out[p] = -1.0
                    else:
                        for k in range(n_k):
                            cf_lanes[k, lane] = cf[p, k]
                        row[lane] = p
                        top[lane] = last
                        phase[lane] = 0
                        y[lane] = y_lo
                if row[lane] >= 0:
                    top_all = max(top_all, top[lane])
            if top_all < 0:  # no row left
                break
            _pv_lanes(cf_lanes, top_all, y, pv, slope)
            for lane in range(_IRR_LANES):
                p = row[lane]
                if p < 0:
                    continue
                if phase[lane] == 0:
                    f_a[lane] = pv[lane]
                    y[lane] = y_hi
                    phase[lane] = 1
                    continue
                if phase[lane] == 1:
                    if f_a[lane] * pv[lane] > 0.0:
                        out[p] = np.nan
                        row[lane] = -1
                    else:
                        a[lane] = y_lo
                        b[lane] = y_hi
                        y[lane] = 1.0
                        phase[lane] = 2
                    continue
                phase[lane] += 1
                done = phase[lane] == 2 + I.MAX_NEWTON  # the last Newton step
                f = pv[lane]
                if f == 0.0:
                    done = True
                else:
                    y[lane], a[lane], b[lane], f_a[lane], converged = I.newton_step(
                        f, slope[lane], y[lane], a[lane], b[lane], f_a[lane]
                    )
                    done = done or converged
                if done:
                    out[p] = I.rate_of(y[lane], dt)
                    row[lane] = -1


#: The jitted functions :mod:`invlend._sim.cuda` compiles again for the GPU (the kernels and the
#: helpers they call), by name: the one place the cuda backend reaches into this module.
PORTABLE = {
    "_normal": _normal,
    "_exponential": _exponential,
    "_recovery": _recovery,
    "_compensator": _compensator,
    "_stage_params": _stage_params,
    "_expected_call": _expected_call,
    "_continuation": _continuation,
    "_simulate_firms": _simulate_firms,
    "_evaluate_structure": _evaluate_structure,
}


#: The numba kernels on every core; all arrays in host memory.
BACKEND = Backend("cpu", _simulate_firms, _evaluate_structure, _portfolio_irr)
