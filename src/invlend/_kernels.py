"""numba kernels: firm simulation, structure evaluation and portfolio IRR.

Overview
--------
Kernels take only arrays and scalars (from :mod:`invlend._lowering`) and write into
preallocated outputs; they never import the models. Firms are flattened portfolio-major:
flat firm ``i`` of a chunk is firm ``i % portfolio_size`` of the chunk's portfolio
``i // portfolio_size``. Every random draw comes from :mod:`invlend.rng` keyed by
(seed, portfolio, firm, purpose, step), so a firm's path does not depend on which thread or
chunk computes it. The ``numpy`` backend (:mod:`invlend._numpy_backend`) implements the same
steps and is the oracle for these kernels.

All kernels are jit-compiled by numba; inputs are not validated.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from invlend._numba import jit, pjit
from invlend.rng import Purpose
from invlend.rng import firm_key as _firm_key
from invlend.rng import normal as _normal
from invlend.rng import uniform as _uniform

EV_NONE = 0
EV_DEFAULT = 1
EV_IPO = 2
EV_MA = 3
_EV_ADVANCE = 4

_P_STAGE = int(Purpose.STAGE)
_P_VALUE = int(Purpose.VALUE)
_P_QUALITY = int(Purpose.QUALITY)
_P_SIGNAL = int(Purpose.SIGNAL)
_P_GROWTH = int(Purpose.GROWTH)
_P_EVENT = int(Purpose.EVENT)
_P_JCOUNT = int(Purpose.JUMP_COUNT)
_P_JSIZE = int(Purpose.JUMP_SIZE)

# Columns of the per-portfolio aggregates written by _evaluate_structure.
AGG_ACCEPTED = 0  # number of accepted applicants
AGG_PRINCIPAL = 1  # principal lent
AGG_NPV = 2  # NPV of the portfolio, incl. screening cost of rejected applicants
AGG_SCREEN_REJECTED = 3  # screening cost spent on rejected applicants
AGG_DEFAULTS = 4  # loans that defaulted (firm default in the loan's life, or shortfall)
AGG_EAD = 5  # outstanding balance of the defaulted loans at default
AGG_LOSS = 6  # credit loss before risk sharing
AGG_LOSS_NET = 7  # credit loss after risk sharing
AGG_NEGATIVE = 8  # accepted firms with a negative NPV
AGG_EXPOSURE = 9  # principal-years outstanding
AGG_UPSIDE = 10  # present value of warrant and equity proceeds
N_AGG = 11


@jit
def _stage_params(s, q, dt, drift, volatility, hd, hi, hm, ha, quality_drift, quality_hazard, jc):
    """Per-step constants of stage ``s`` for a firm of quality ``q``."""
    sig = volatility[s]
    mu_dt = (drift[s] + quality_drift * q - 0.5 * sig * sig - jc) * dt
    sig_sqdt = sig * math.sqrt(dt)
    ld = hd[s] * math.exp(-quality_hazard * q)
    li = hi[s]
    lm = hm[s]
    la = ha[s]
    total = ld + li + lm + la
    p_event = -math.expm1(-total * dt)
    # The event chosen when rounding puts the scaled uniform past the last threshold.
    last = _EV_ADVANCE
    if la <= 0.0:
        last = EV_MA
        if lm <= 0.0:
            last = EV_IPO
            if li <= 0.0:
                last = EV_DEFAULT
    return mu_dt, sig_sqdt, p_event, total, ld, ld + li, ld + li + lm, last


@pjit
def _simulate_firms(
    ctr,
    pkeys,
    market,
    portfolio_size,
    path_start,
    weight_cdf,
    log_value,
    drift,
    volatility,
    hd,
    hi,
    hm,
    ha,
    log_round,
    dilution,
    checkpoints,
    dt,
    n_steps,
    log_barrier,
    value_dispersion,
    quality_drift,
    quality_hazard,
    factor_loading,
    jump_rate,
    jump_mean,
    jump_vol,
    jump_compensator,
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
    out_chk,
    out_paths,
):
    """Simulate every firm of a chunk of portfolios until its event or the horizon.

    Shapes: ``ctr`` (n_purposes, >= n_steps) uint64; ``pkeys`` (n_port,) uint64; ``market``
    (n_port, n_steps); stage tables (n_stages,); ``out_*`` (n_port * portfolio_size,) except
    ``out_chk`` (n_firms, n_chk) and ``out_paths`` (n_paths, n_steps + 1), whose row
    ``path_start + i`` receives flat firm ``i`` when it exists. Written in place.
    """
    n_firms = pkeys.shape[0] * portfolio_size
    n_stages = weight_cdf.shape[0]
    n_chk = checkpoints.shape[0]
    n_paths = out_paths.shape[0]
    idio = math.sqrt(1.0 - factor_loading * factor_loading)
    p_no_jump = math.exp(-jump_rate * dt)
    jump_dt = jump_rate * dt
    for i in prange(n_firms):
        p = i // portfolio_size
        fkey = _firm_key(pkeys[p], i - p * portfolio_size)
        # Draws made once per firm, at counters 0 and 1 of their own purposes.
        u_stage = _uniform(fkey, ctr[_P_STAGE, 0])
        s = 0
        while s < n_stages - 1 and u_stage >= weight_cdf[s]:
            s += 1
        z_value = _normal(fkey, ctr[_P_VALUE, 0])
        q = _normal(fkey, ctr[_P_QUALITY, 0])
        e = _normal(fkey, ctr[_P_SIGNAL, 0])
        logv0 = log_value[s] + value_dispersion * z_value
        logv = logv0
        barrier = logv0 + log_barrier
        out_stage0[i] = s
        out_v0[i] = math.exp(logv0)
        out_quality[i] = q
        out_signal[i] = e
        row = path_start + i
        record = row < n_paths
        if record:
            out_paths[row, 0] = out_v0[i]
        mu_dt, sig_sqdt, p_event, total, t1, t2, t3, last = _stage_params(
            s, q, dt, drift, volatility, hd, hi, hm, ha, quality_drift, quality_hazard,
            jump_compensator,
        )  # fmt: skip
        dil = 1.0
        rounds = 0
        nxt = 0
        next_chk = checkpoints[0] if n_chk > 0 else -1
        event = EV_NONE
        step = n_steps
        m_row = market[p]
        g_row = ctr[_P_GROWTH]
        e_row = ctr[_P_EVENT]
        for k in range(1, n_steps + 1):
            j = k - 1
            z = _normal(fkey, g_row[j])
            logv += mu_dt + sig_sqdt * (factor_loading * m_row[j] + idio * z)
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
            if logv < barrier:
                event = EV_DEFAULT
                step = k
                break
            u = _uniform(fkey, e_row[j])
            if u < p_event:
                x = u / p_event * total
                if x < t1:
                    chosen = EV_DEFAULT
                elif x < t2:
                    chosen = EV_IPO
                elif x < t3:
                    chosen = EV_MA
                else:
                    chosen = last
                if chosen != _EV_ADVANCE:
                    event = chosen
                    step = k
                    break
                logv += log_round[s]
                dil *= dilution[s]
                s += 1
                rounds += 1
                mu_dt, sig_sqdt, p_event, total, t1, t2, t3, last = _stage_params(
                    s, q, dt, drift, volatility, hd, hi, hm, ha, quality_drift, quality_hazard,
                    jump_compensator,
                )  # fmt: skip
            if k == next_chk:
                out_chk[i, nxt] = math.exp(logv)
                nxt += 1
                next_chk = checkpoints[nxt] if nxt < n_chk else -1
            if record:
                out_paths[row, k] = math.exp(logv)
        while nxt < n_chk:  # checkpoints after the event: no value
            out_chk[i, nxt] = np.nan
            nxt += 1
        if record:
            for kk in range(step + 1, n_steps + 1):
                out_paths[row, kk] = np.nan
            out_paths[row, step] = math.exp(logv)
        out_event[i] = event
        out_step[i] = step
        out_value[i] = math.exp(logv)
        out_stage[i] = s
        out_rounds[i] = rounds
        out_dilution[i] = dil


@pjit
def _evaluate_structure(
    event,
    step,
    value,
    v0,
    quality,
    signal,
    dil,
    chk,
    portfolio_size,
    dt,
    loan_to_value,
    upfront_fee,
    recovery_rate,
    collateral,
    rate,
    maturity_step,
    checkpoint_index,
    balance,
    flow,
    pv_flow_cum,
    balance_years_cum,
    discount,
    premium,
    covered_fraction,
    warrant_fraction,
    warrant_strike,
    share_of_gain,
    warrant_expiry_step,
    equity_fraction,
    accept_all,
    signal_noise,
    signal_threshold,
    screening_cost,
    ipo_multiple,
    ma_multiple,
    out_npv,
    out_principal,
    out_default,
    out_loss,
    out_upside,
    out_agg,
    out_cf,
    work,
):
    """Cash flows of one structure on simulated outcomes, per firm and per portfolio.

    Firm arrays are flat (n_port * portfolio_size,), ``chk`` is (n_firms, n_chk); writes
    ``out_npv`` (NaN where not accepted), ``out_principal``, ``out_default``, ``out_loss``
    (credit loss before risk sharing), ``out_upside`` (PV of warrant and equity proceeds),
    ``out_agg`` (n_port, N_AGG) and ``out_cf`` (n_port, n_steps + 1): the portfolio's
    undiscounted cash flows by step, for its IRR; ``work`` (n_port, n_steps + 2) is scratch.
    Written in place.
    """
    n_port = out_agg.shape[0]
    km = maturity_step
    for p in prange(n_port):
        for c in range(out_agg.shape[1]):
            out_agg[p, c] = 0.0
        for c in range(out_cf.shape[1]):
            out_cf[p, c] = 0.0
            work[p, c] = 0.0
        for i in range(p * portfolio_size, (p + 1) * portfolio_size):
            principal = loan_to_value * v0[i]
            cost = screening_cost * principal
            if not accept_all and quality[i] + signal_noise * signal[i] <= signal_threshold:
                out_npv[i] = np.nan
                out_principal[i] = 0.0
                out_default[i] = 0
                out_loss[i] = 0.0
                out_upside[i] = 0.0
                out_agg[p, AGG_SCREEN_REJECTED] += cost
                out_agg[p, AGG_NPV] -= cost
                out_cf[p, 0] -= cost
                continue
            ev = event[i]
            k = step[i]
            v = value[i]
            entry = principal * (upfront_fee - 1.0) - cost - equity_fraction * v0[i]
            npv = entry
            out_cf[p, 0] += entry
            loss = 0.0
            defaulted = 0
            settled = 0.0  # loan balance settled out of the exit (or horizon) value
            if ev != EV_NONE and k <= km:
                k_full = k - 1
                owed = principal * balance[k - 1]
                if ev == EV_DEFAULT:
                    paid = min(owed, recovery_rate * v + collateral * principal)
                    loss = owed - paid
                    term = paid
                    defaulted = 1
                else:
                    exit_value = v * (ipo_multiple if ev == EV_IPO else ma_multiple)
                    paid = min(owed, exit_value)
                    loss = owed - paid
                    term = principal * (rate - premium) * dt * balance[k - 1] + paid
                    settled = owed
                k_term = k
            else:
                k_full = km - 1
                owed = principal * balance[km - 1]
                vm = v if k == km else chk[i, checkpoint_index]
                if vm >= owed:
                    term = principal * (rate - premium) * dt * balance[km - 1] + owed
                else:
                    paid = min(owed, recovery_rate * vm + collateral * principal)
                    loss = owed - paid
                    term = paid
                    defaulted = 1
                if ev == EV_NONE and k == km:
                    settled = owed
                k_term = km
            if loss > 0.0:  # an exit below the balance is a default too
                defaulted = 1
                term += covered_fraction * loss
            npv += principal * pv_flow_cum[k_full] + discount[k_term] * term
            # Scheduled flows run over steps 1..k_full: mark the principal in force there.
            work[p, 1] += principal
            work[p, k_full + 1] -= principal
            out_cf[p, k_term] += term
            upside = 0.0
            if ev != EV_DEFAULT:
                if ev == EV_IPO:
                    exit_value = v * ipo_multiple
                elif ev == EV_MA:
                    exit_value = v * ma_multiple
                else:
                    exit_value = v
                equity_value = max(exit_value - settled, 0.0)
                if k <= warrant_expiry_step:
                    gain = warrant_fraction * dil[i] * equity_value - warrant_strike * principal
                    upside += share_of_gain * max(gain, 0.0)
                upside += equity_fraction * dil[i] * equity_value
                out_cf[p, k] += upside
                upside *= discount[k]
                npv += upside
            out_npv[i] = npv
            out_principal[i] = principal
            out_default[i] = defaulted
            out_loss[i] = loss
            out_upside[i] = upside
            out_agg[p, AGG_ACCEPTED] += 1.0
            out_agg[p, AGG_PRINCIPAL] += principal
            out_agg[p, AGG_NPV] += npv
            out_agg[p, AGG_DEFAULTS] += defaulted
            if defaulted:
                out_agg[p, AGG_EAD] += owed
            out_agg[p, AGG_LOSS] += loss
            out_agg[p, AGG_LOSS_NET] += (1.0 - covered_fraction) * loss
            out_agg[p, AGG_NEGATIVE] += 1.0 if npv < 0.0 else 0.0
            out_agg[p, AGG_EXPOSURE] += principal * balance_years_cum[min(k, km)]
            out_agg[p, AGG_UPSIDE] += upside
        in_force = 0.0
        for kk in range(1, out_cf.shape[1]):
            in_force += work[p, kk]
            out_cf[p, kk] += in_force * flow[kk]


@jit
def _pv_and_slope(cf, p, y):
    """PV of row ``p`` of ``cf`` as a polynomial in the step discount ``y``, and d PV / dy."""
    acc = 0.0
    slope = 0.0
    for k in range(cf.shape[1] - 1, -1, -1):
        slope = slope * y + acc
        acc = acc * y + cf[p, k]
    return acc, slope


@pjit
def _portfolio_irr(cf, dt, out):
    """Annual effective IRR of each row of undiscounted cash flows ``cf[p, step]``.

    With ``y = (1 + r)^(-dt)`` the PV ``sum_k cf[k] y^k`` is a polynomial; its root is found by
    Newton's method safeguarded by bisection inside the bracket ``r`` in
    ``[exp(-8) - 1, exp(8) - 1]``. A row that never receives anything back gives -1; a row with
    no cash flow (nothing lent) or without a sign change in the bracket gives NaN.
    """
    n_port = cf.shape[0]
    for p in prange(n_port):
        inflow = 0.0
        outflow = 0.0
        for k in range(cf.shape[1]):
            if cf[p, k] > 0.0:
                inflow += cf[p, k]
            else:
                outflow -= cf[p, k]
        if outflow == 0.0:
            out[p] = np.nan
            continue
        if inflow == 0.0:
            out[p] = -1.0
            continue
        a = math.exp(-8.0 * dt)
        b = math.exp(8.0 * dt)
        f_a = _pv_and_slope(cf, p, a)[0]
        f_b = _pv_and_slope(cf, p, b)[0]
        if f_a * f_b > 0.0:
            out[p] = np.nan
            continue
        y = 1.0
        for _ in range(200):
            f, slope = _pv_and_slope(cf, p, y)
            if f == 0.0:
                break
            if (f > 0.0) == (f_a > 0.0):
                a = y
                f_a = f
            else:
                b = y
            y_new = y - f / slope if slope != 0.0 else 0.5 * (a + b)
            if not (a < y_new < b):
                y_new = 0.5 * (a + b)
            if abs(y_new - y) <= 1e-15 * y:
                y = y_new
                break
            y = y_new
        out[p] = math.expm1(-math.log(y) / dt)
