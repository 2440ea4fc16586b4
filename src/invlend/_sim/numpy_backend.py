"""The ``numpy`` backend: the same model and streams as the kernels, in vectorised NumPy.

Overview
--------
Each function here mirrors a kernel of :mod:`invlend._sim.cpu` with the same arguments and
outputs, written with whole-array operations over the firms still alive (no numba). It is the
oracle the kernels are tested against (identical events and steps, values within rounding)
and the baseline of the benchmarks. Arithmetic follows the kernels' order of operations so
that values agree to the last few bits.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from invlend._sim import layout as L
from invlend._sim.backend import Backend
from invlend.rng import Purpose, firm_keys, normal_array, uniform


def _stage_params(d, s, r, q):
    """Per-step constants of stages ``s`` in regimes ``r`` for qualities ``q`` (arrays)."""
    dt, scale, sig = d.dt, d.regime_scale, d.volatility[s]
    mu_dt = (d.drift[s] + d.quality_drift * q - 0.5 * sig * sig - d.jump_compensator) * dt
    sig_sqdt = sig * np.sqrt(dt)
    ld = d.default_hazard[s] * np.exp(-d.quality_hazard * q) * scale[r, 0]
    li, lm = d.ipo_hazard[s] * scale[r, 1], d.ma_hazard[s] * scale[r, 1]
    la = d.advance_hazard[s] * scale[r, 2]
    last = np.where(
        la > 0,
        L.EV_ADVANCE,
        np.where(lm > 0, L.EV_MA, np.where(li > 0, L.EV_IPO, L.EV_DEFAULT)),
    )
    other = li + lm + la
    shortfall = li * (1.0 - d.exit_multiple[r, 0]) + lm * (1.0 - d.exit_multiple[r, 1])
    comp = _compensator(ld, other, shortfall, dt) if d.risk_neutral else np.zeros_like(ld)
    return mu_dt, sig_sqdt, ld, li, lm, other, last, shortfall, comp


def _compensator(ld, other, shortfall, dt):
    """``-log`` of the expected payoff per unit of value of a step's events (0 without any)."""
    total = ld + other
    with np.errstate(divide="ignore", invalid="ignore"):
        c = -np.log1p(np.expm1(-total * dt) * (ld + shortfall) / total)
    return np.where(total > 0.0, c, 0.0)


def simulate_firms(
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
    """Vectorised twin of :func:`invlend._sim.cpu._simulate_firms` (same signature)."""
    ctr, pkeys, market, regime, quality_shift = draws
    d = dyn
    weight_cdf, log_value, log_round, dilution = d.weight_cdf, d.log_value, d.log_round, d.dilution
    checkpoints, dt, n_steps, log_barrier = d.checkpoints, d.dt, d.n_steps, d.log_barrier
    value_dispersion, factor_loading = d.value_dispersion, d.factor_loading
    jump_rate, jump_mean, jump_vol, regime_scale = (
        d.jump_rate,
        d.jump_mean,
        d.jump_vol,
        d.regime_scale,
    )
    n_port = pkeys.shape[0]
    n = n_port * portfolio_size
    fk = firm_keys(pkeys, np.arange(portfolio_size)).ravel()
    pidx = np.repeat(np.arange(n_port), portfolio_size)
    u_stage = uniform(fk, ctr[Purpose.STAGE, 0])
    s = np.searchsorted(weight_cdf[:-1], u_stage, side="right")
    z_value = normal_array(fk, ctr[Purpose.VALUE, 0])
    q = normal_array(fk, ctr[Purpose.QUALITY, 0]) + np.repeat(quality_shift, portfolio_size)
    e = normal_array(fk, ctr[Purpose.SIGNAL, 0])
    logv0 = log_value[s] + value_dispersion * z_value
    logv = logv0.copy()
    barrier = logv0 + log_barrier
    out_stage0[:] = s
    out_v0[:] = np.exp(logv0)
    out_quality[:] = q
    out_signal[:] = e
    out_appraisal[:] = normal_array(fk, ctr[Purpose.APPRAISAL, 0])
    n_paths = out_paths.shape[0]
    rows = path_start + np.arange(n)
    rec = rows < n_paths
    out_paths[rows[rec], 0] = out_v0[rec]
    has_cycle = regime_scale.shape[0] > 1
    cur = regime[pidx, 0].astype(np.int64) if has_cycle else np.zeros(n, np.int64)
    # mu_dt, sig_sqdt, ld, li, lm, other, last, shortfall, comp
    params = list(_stage_params(d, s, cur, q))
    ld_origin = params[2].copy()
    stage2 = np.zeros(n, np.int8)
    log_ref = logv0.copy()
    k_round = np.zeros(n, np.int64)
    clock = -np.log(uniform(fk, ctr[Purpose.CLOCK, 0]))
    hazard = np.zeros(n)
    beta, mult = d.value_elasticity, d.runway_multiplier
    dil = np.ones(n)
    log_dil = np.zeros(n)
    rounds = np.zeros(n, np.int64)
    event = np.zeros(n, np.int64)
    step = np.full(n, n_steps, np.int64)
    idio = np.sqrt(1.0 - factor_loading * factor_loading)
    p_no_jump = np.exp(-jump_rate * dt)
    jump_dt = jump_rate * dt
    chk_steps = list(checkpoints)
    chk_diluted = list(d.checkpoint_diluted)
    out_chk[:] = np.nan
    alive = np.arange(n)
    for k in range(1, n_steps + 1):
        if alive.size == 0:
            break
        j = k - 1
        a = alive
        if has_cycle:
            moved = a[regime[pidx[a], j] != cur[a]]
            if moved.size:
                cur[moved] = regime[pidx[moved], j]
                for arr, val in zip(params, _stage_params(d, s[moved], cur[moved], q[moved]),
                                    strict=True):  # fmt: skip
                    arr[moved] = val
        mu_dt, sig_sqdt, ld, li, lm, other, last, shortfall, comp = params
        # Intensities at the step's start (predictable), then the growth shock.
        ldk = ld[a]
        if beta != 0.0:
            ldk = ld[a] * np.exp(np.minimum(beta * (log_ref[a] - logv[a]), L.MAX_LOG_VALUE_FACTOR))
        aged = np.zeros(a.size, bool)
        if mult != 1.0:  # without a multiplier no firm is ever aged
            aged = (k - 1 - k_round[a]) >= d.runway_steps[s[a]]
            ldk = np.where(aged, ldk * mult, ldk)
        total = ldk + other[a]
        drift = mu_dt[a]
        if d.risk_neutral:
            if beta != 0.0 or mult != 1.0:
                drift = drift + _compensator(ldk, other[a], shortfall[a], dt)
            else:
                drift = drift + comp[a]
        z = normal_array(fk[a], ctr[Purpose.GROWTH, j])
        logv[a] += drift + sig_sqdt[a] * (factor_loading * market[pidx[a], j] + idio * z)
        if jump_dt > 0.0:
            u_jump = uniform(fk[a], ctr[Purpose.JUMP_COUNT, j])
            jumped = u_jump > p_no_jump
            if jumped.any():
                ja = a[jumped]
                uj = u_jump[jumped]
                nj = np.ones(ja.size, np.int64)
                prob = np.full(ja.size, p_no_jump * jump_dt)
                cum = p_no_jump + prob
                more = (uj > cum) & (prob > 0.0)
                while more.any():
                    nj[more] += 1
                    prob[more] *= jump_dt / nj[more]
                    cum[more] += prob[more]
                    more = (uj > cum) & (prob > 0.0)
                jz = normal_array(fk[ja], ctr[Purpose.JUMP_SIZE, j])
                logv[ja] += nj * jump_mean + np.sqrt(nj) * jump_vol * jz
        hit = logv[a] < barrier[a]
        event[a[hit]] = L.EV_DEFAULT
        step[a[hit]] = k
        a, ldk, total, aged = a[~hit], ldk[~hit], total[~hit], aged[~hit]
        hazard[a] += total * dt
        occurs = hazard[a] > clock[a]
        b = a[occurs]
        x = uniform(fk[b], ctr[Purpose.EVENT, j]) * total[occurs]
        lb = ldk[occurs]
        chosen = np.select(
            [x < lb, x < lb + li[b], x < lb + li[b] + lm[b]],
            [L.EV_DEFAULT, L.EV_IPO, L.EV_MA],
            last[b],
        )
        ends = chosen != L.EV_ADVANCE
        event[b[ends]] = chosen[ends]
        step[b[ends]] = k
        adv = b[~ends]
        if adv.size:
            logv[adv] += log_round[s[adv]]
            log_dil[adv] -= log_round[s[adv]]
            dil[adv] *= dilution[s[adv]]
            s[adv] += 1
            rounds[adv] += 1
            for arr, val in zip(params, _stage_params(d, s[adv], cur[adv], q[adv]), strict=True):
                arr[adv] = val
            log_ref[adv] = logv[adv]
            k_round[adv] = k
            hazard[adv] = 0.0
            if k < n_steps:
                clock[adv] = -np.log(uniform(fk[adv], ctr[Purpose.CLOCK, k]))
        if k == d.sicr_step:
            quiet = ~occurs
            worse = (ldk >= d.sicr_ratio * ld_origin[a]) & (ldk > 0.0)
            if mult != 1.0:
                worse |= aged
            stage2[a[quiet & worse]] = 1
        still = np.ones(a.size, bool)
        still[np.flatnonzero(occurs)[ends]] = False
        alive = a[still]
        for c in [c for c, kc in enumerate(chk_steps) if kc == k]:
            lv = logv[alive] + log_dil[alive] if chk_diluted[c] else logv[alive]
            out_chk[alive, c] = np.exp(lv)
        if n_paths:
            r = alive[rec[alive]]
            out_paths[rows[r], k] = np.exp(logv[r])
    # Rows of recorded firms that ended: value at the event, NaN after it.
    for i in np.flatnonzero(rec & (event != L.EV_NONE)):
        out_paths[rows[i], step[i] + 1 :] = np.nan
        out_paths[rows[i], step[i]] = np.exp(logv[i])
    out_event[:] = event
    out_step[:] = step
    out_value[:] = np.exp(logv)
    out_stage[:] = s
    out_rounds[:] = rounds
    out_dilution[:] = dil
    out_regime[:] = cur
    out_stage2[:] = stage2


def evaluate_structure(
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
    """Vectorised twin of :func:`invlend._sim.cpu._evaluate_structure` (same signature)."""
    event, step, value, v0 = firms.event, firms.step, firms.value, firms.v0
    quality, signal, dil, regime = firms.quality, firms.signal, firms.dilution, firms.regime
    t = terms
    n = event.shape[0]
    n_port = out_agg.shape[0]
    port = np.repeat(np.arange(n_port), portfolio_size)
    km = t.maturity_step
    principal = t.loan_to_value * v0
    cost = t.screening_cost * principal
    if t.accept_all:
        accepted = np.ones(n, bool)
    else:
        accepted = quality + t.signal_noise * signal > t.signal_threshold
    k = step.astype(np.int64)
    ev = event.astype(np.int64)
    scale = t.regime_multiple[regime.astype(np.int64)]
    mult = np.where(
        ev == L.EV_IPO, t.ipo_multiple * scale, np.where(ev == L.EV_MA, t.ma_multiple * scale, 1.0)
    )
    early = (ev != L.EV_NONE) & (k <= km)
    k_full = np.where(early, k - 1, km - 1)
    k_term = np.where(early, k, km)
    owed = principal * t.balance[k_full]
    vm = np.where(k == km, value, chk[:, t.checkpoint_index] if chk.shape[1] else value)
    v_at = np.where(early, value * mult, vm)
    default_early = early & (ev == L.EV_DEFAULT)
    # Default (early or at maturity): recovery; exit or maturity with enough value: repaid.
    repays = np.where(early, ~default_early, vm >= owed)
    pledge = t.collateral * principal
    if t.collateral_scale > 0.0:
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = np.exp(
                t.collateral_sigma * firms.appraisal + t.collateral_elasticity * np.log(v_at / v0)
            )
        pledge = pledge + t.collateral_scale * principal * factor
    share = t.recovery_rate * t.regime_distress[regime.astype(np.int64)]
    recovery = np.minimum(owed, share * v_at + pledge)
    paid = np.where(repays, np.minimum(owed, v_at), recovery)
    from_pledge = np.where(repays, 0.0, np.minimum(pledge, recovery))
    loss = owed - paid
    # Fees: the final fee at any repayment, the prepayment fee at an exit before maturity,
    # as far as the value left after the balance reaches.
    fee_due = t.final_fee * principal + np.where(early & (k < km), t.prepayment_fee * owed, 0.0)
    fee_paid = np.where(repays, np.minimum(fee_due, np.maximum(v_at - paid, 0.0)), 0.0)
    coupon = np.where(repays, principal * t.dt * t.balance[k_full], 0.0)
    covered = np.where(loss > 0.0, t.covered_fraction * loss, 0.0)
    term = np.where(repays, (t.rate - t.premium) * coupon + paid + fee_paid, paid) + covered
    defaulted = default_early | (~early & (vm < owed)) | (loss > 0.0)
    settled = np.where(
        (early & ~default_early) | ((ev == L.EV_NONE) & (k == km)), owed + fee_paid, 0.0
    )
    entry = principal * (t.upfront_fee - 1.0) - cost - t.equity_fraction * v0
    d_term = t.discount[k_term]
    stake = np.where(ev != L.EV_DEFAULT, np.maximum(value * mult - settled, 0.0) * dil, 0.0)
    stake = np.where(ev == L.EV_NONE, stake * t.horizon_discount, stake)
    strike = t.warrant_strike * principal
    k_w = k.copy()
    u_w = np.zeros(n)
    if t.warrant_fraction > 0.0:
        expired = k > t.warrant_expiry_step
        k_w = np.where(expired, t.warrant_expiry_step, k)
        if expired.any():
            s_exp = t.warrant_fraction * chk[expired, t.warrant_checkpoint]
            u_w[expired] = np.maximum(s_exp - strike[expired], 0.0)
        rest = ~expired & (ev != L.EV_DEFAULT)
        horizon = rest & (ev == L.EV_NONE) & (t.warrant_remaining > 0.0)
        at_exit = rest & ~horizon
        u_w[at_exit] = np.maximum(t.warrant_fraction * stake[at_exit] - strike[at_exit], 0.0)
        if horizon.any():
            u_w[horizon] = continuation_value(t, firms, horizon, t.warrant_fraction * stake)
        u_w = t.share_of_gain * u_w
    u_e = t.equity_fraction * stake
    upside = t.discount[k_w] * u_w + t.discount[k] * u_e
    npv = entry + (principal * t.pv_flow_cum[k_full] + d_term * term)
    npv = npv + upside
    on_balance = principal * t.pv_balance_cum[k_full] + d_term * coupon
    parts = {
        "interest": principal * t.pv_interest_cum[k_full] + d_term * t.rate * coupon,
        "principal": principal * (t.pv_amortisation_cum[k_full] - 1.0)
        + d_term * np.where(repays, paid, 0.0),
        "fees": principal * t.upfront_fee + d_term * fee_paid,
        "recoveries": np.where(repays, 0.0, d_term * (paid - from_pledge)),
        "collateral": d_term * from_pledge,
        "warrant": t.discount[k_w] * u_w,
        "equity": t.discount[k] * u_e - t.equity_fraction * v0,
        "risk_sharing": d_term * covered - (t.premium - t.pool_contribution) * on_balance,
        "pool": -t.pool_contribution * on_balance,
    }
    # The risk pool: claims by portfolio and year, paid at the year's end up to the cap.
    lent = np.bincount(port, weights=np.where(accepted, principal, 0.0), minlength=n_port)
    n_years = out_pool_claims.shape[1]
    n_steps = out_cf.shape[1] - 1
    year = (k_term - 1) // t.steps_per_year
    k_pay_of_year = np.minimum((np.arange(n_years) + 1) * t.steps_per_year, n_steps)
    out_pool_claims[:] = 0.0
    out_pool_paid[:] = 0.0
    claim = accepted & (loss > 0.0) & (t.pool_fraction > 0.0)
    if claim.any():
        np.add.at(out_pool_claims, (port[claim], year[claim]), t.pool_fraction * loss[claim])
        out_pool_paid[:] = np.minimum(out_pool_claims, t.pool_cap * lent[:, None])
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(out_pool_claims > 0.0, out_pool_paid / out_pool_claims, 0.0)
        pool_pv = np.zeros(n)
        pool_pv[claim] = (
            t.discount[k_pay_of_year[year[claim]]]
            * t.pool_fraction
            * loss[claim]
            * share[port[claim], year[claim]]
        )
        npv_pool = npv + pool_pv
    else:
        npv_pool = npv
    out_npv[:] = np.where(accepted, npv_pool, np.nan)
    out_principal[:] = np.where(accepted, principal, 0.0)
    out_default[:] = accepted & defaulted
    out_loss[:] = np.where(accepted, loss, 0.0)
    out_upside[:] = np.where(accepted, upside, 0.0)

    def per_port(x):
        return np.bincount(port, weights=x, minlength=n_port)

    acc = accepted.astype(float)
    out_agg[:] = 0.0
    out_agg[:, L.AGG_ACCEPTED] = per_port(acc)
    out_agg[:, L.AGG_PRINCIPAL] = per_port(principal * acc)
    out_agg[:, L.AGG_SCREEN_REJECTED] = per_port(cost * (1.0 - acc))
    pool_paid = out_pool_paid.sum(axis=1)
    out_agg[:, L.AGG_NPV] = per_port(np.where(accepted, npv, -cost)) + (
        out_pool_paid * t.discount[k_pay_of_year][None, :]
    ).sum(axis=1)
    out_agg[:, L.AGG_DEFAULTS] = per_port((accepted & defaulted).astype(float))
    out_agg[:, L.AGG_EAD] = per_port(np.where(accepted & defaulted, owed, 0.0))
    out_agg[:, L.AGG_LOSS] = per_port(loss * acc)
    out_agg[:, L.AGG_LOSS_NET] = per_port((1.0 - t.covered_fraction) * loss * acc) - pool_paid
    out_agg[:, L.AGG_NEGATIVE] = per_port((accepted & (npv_pool < 0.0)).astype(float))
    out_agg[:, L.AGG_EXPOSURE] = per_port(principal * t.balance_years_cum[np.minimum(k, km)] * acc)
    out_agg[:, L.AGG_UPSIDE] = per_port(upside * acc)
    out_agg[:, L.AGG_QUALITY] = per_port(quality * acc)
    out_agg[:, L.AGG_POOL_CLAIMS] = out_pool_claims.sum(axis=1)
    out_agg[:, L.AGG_POOL_PAID] = pool_paid
    kept = np.where(loss > 0.0, (1.0 - t.covered_fraction) * loss * t.ecl_discount[k_term], 0.0)
    out_agg[:, L.AGG_ECL_12M] = per_port(np.where(k_term <= t.ecl_12m_step, kept, 0.0) * acc)
    out_agg[:, L.AGG_ECL_LIFETIME] = per_port(kept * acc)
    staged = (firms.stage2 != 0) & (km > t.sicr_step)
    out_agg[:, L.AGG_STAGE2] = per_port(staged * acc)
    out_agg[:, L.AGG_RECOVERED] = per_port(np.where(repays, 0.0, paid) * acc)
    out_agg[:, L.AGG_COLLATERAL] = per_port(from_pledge * acc)
    for name, x in parts.items():
        out_agg[:, L.AGG_PV[name]] = per_port(np.where(accepted, x, 0.0))
    out_agg[:, L.AGG_PV_SCREENING] = -per_port(cost)
    out_agg[:, L.AGG_PV_POOL] += (out_pool_paid * t.discount[k_pay_of_year][None, :]).sum(axis=1)
    # Cash flows by step: scheduled flows while in force, then terminal and upside amounts.
    n_k = out_cf.shape[1]
    active = np.zeros((n_port, n_k + 1))
    np.add.at(active, (port[accepted], 1), principal[accepted])
    np.add.at(active, (port[accepted], k_full[accepted] + 1), -principal[accepted])
    out_cf[:] = np.cumsum(active, axis=1)[:, :n_k] * t.flow[None, :]
    out_cf[:, 0] = per_port(np.where(accepted, entry, -cost))
    np.add.at(out_cf, (port[accepted], k_term[accepted]), term[accepted])
    np.add.at(out_cf, (port[accepted], k_w[accepted]), u_w[accepted])
    np.add.at(out_cf, (port[accepted], k[accepted]), u_e[accepted])
    for y in range(n_years):
        out_cf[:, k_pay_of_year[y]] += out_pool_paid[:, y]


def continuation_value(t, firms, where, covered):
    """Fair value at the horizon of the warrants of the firms ``where`` (see the kernel).

    Vectorised over firms and the Gauss-Legendre nodes, with ``scipy.special.ndtr``: an
    implementation independent of :func:`invlend._sim.cpu._continuation`.
    """
    s_idx = firms.stage[where].astype(np.int64)
    g = firms.regime[where].astype(np.int64)
    ld = (
        t.stage_default[s_idx]
        * np.exp(-t.quality_hazard * firms.quality[where])
        * t.regime_scale[g, 0]
    )
    li = t.stage_ipo[s_idx] * t.regime_scale[g, 1]
    lm = t.stage_ma[s_idx] * t.regime_scale[g, 1]
    mi, mm = t.ipo_multiple * t.regime_multiple[g], t.ma_multiple * t.regime_multiple[g]
    sig = t.stage_volatility[s_idx]
    r, tau = t.discount_rate, t.warrant_remaining
    strike = t.warrant_strike * t.loan_to_value * firms.v0[where]
    x = covered[where]
    lam = ld + li + lm
    growth = r + ld + li * (1.0 - mi) + lm * (1.0 - mm)

    def call(spot, time):
        """E[(S_time - strike)^+] per firm (rows) and time (columns) for spots (n,)."""
        fwd = spot[:, None] * np.exp(growth[:, None] * time)
        sd = sig[:, None] * np.sqrt(time)
        k_ = strike[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            d1 = (np.log(fwd / k_) + 0.5 * sd * sd) / sd
            val = fwd * ndtr(d1) - k_ * ndtr(d1 - sd)
        return np.where((sd > 0) & (k_ > 0) & (fwd > 0), val, np.maximum(fwd - k_, 0.0))

    t_nodes = tau * t.gl_nodes[None, :]
    weights = tau * t.gl_weights * np.exp(-(r + lam)[:, None] * t_nodes)
    exits = li[:, None] * call(mi * x, t_nodes) + lm[:, None] * call(mm * x, t_nodes)
    at_expiry = call(x, np.full((1, 1), tau))[:, 0]
    return np.exp(-(r + lam) * tau) * at_expiry + (weights * exits).sum(axis=1)


def portfolio_irr(cf, dt, out):
    """Vectorised twin of :func:`invlend._sim.cpu._portfolio_irr`, written independently."""
    n_rows, n_k = cf.shape
    inflow = np.where(cf > 0, cf, 0.0).sum(axis=1)
    outflow = -np.where(cf > 0, 0.0, cf).sum(axis=1)

    def pv_and_slope(y):
        acc = np.zeros(n_rows)
        slope = np.zeros(n_rows)
        for k in range(n_k - 1, -1, -1):
            slope = slope * y + acc
            acc = acc * y + cf[:, k]
        return acc, slope

    a = np.full(n_rows, np.exp(-8.0 * dt))
    b = np.full(n_rows, np.exp(8.0 * dt))
    f_a = pv_and_slope(a)[0]
    ok = (f_a * pv_and_slope(b)[0] <= 0.0) & (outflow > 0) & (inflow > 0)
    y = np.ones(n_rows)
    active = ok.copy()
    for _ in range(200):
        if not active.any():
            break
        f, slope = pv_and_slope(y)
        active &= f != 0.0
        same = (f > 0.0) == (f_a > 0.0)
        a = np.where(active & same, y, a)
        f_a = np.where(active & same, f, f_a)
        b = np.where(active & ~same, y, b)
        with np.errstate(divide="ignore", invalid="ignore"):
            y_new = np.where(slope != 0.0, y - f / slope, 0.5 * (a + b))
        y_new = np.where((a < y_new) & (y_new < b), y_new, 0.5 * (a + b))
        converged = np.abs(y_new - y) <= 1e-15 * y
        y = np.where(active, y_new, y)
        active &= ~converged
    with np.errstate(divide="ignore", invalid="ignore"):
        irr = np.expm1(-np.log(y) / dt)
    out[:] = np.where(ok, irr, np.nan)
    out[(outflow > 0) & (inflow == 0)] = -1.0


#: The vectorised twins: the oracle of the kernels and the benchmarks' baseline.
BACKEND = Backend("numpy", simulate_firms, evaluate_structure, portfolio_irr)
