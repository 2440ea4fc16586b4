r"""Validation: the engine against closed forms, as a table a user can rerun.

Overview
--------
Each case sets a scenario in which a known formula holds exactly (one stage, zero hazards or
no barrier, ``drift`` equal to the discount rate where a price is compared, no dispersion, no
quality effects), simulates it with a fixed seed, and compares the Monte Carlo estimate with
the formula of :mod:`invlend.closed_forms`. A check passes when

.. math::

    |\hat\theta - \theta| \le 4\,\mathrm{SE} + |\text{bias}|

where ``bias`` is a *stated* deterministic error of the reference itself (the BGK
approximation, the engine's one-event-per-step grid), computed exactly and shown in the table;
it is zero for every exact reference. Checks marked ``info`` show a reference that is known not
to apply (the continuous barrier at monthly monitoring) and do not count. Two kinds test a
direction or a range instead of a value: ``> x`` passes when the estimate exceeds ``x`` by more
than 3 SE (one-sided, 0.13%), and a band ``lo-hi`` when the estimate lies within it, 4 SE
either side allowed.

``invlend validate [--quick]`` prints the table and exits 1 if any check fails.

Example
-------
>>> from invlend import validation
>>> report = validation.run(quick=True, cases=["competing_hazards"])
>>> report.passed
True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

import invlend as il
from invlend import closed_forms as cf
from invlend import metrics as M
from invlend._tables import text_table

__all__ = ["CASES", "Check", "Report", "run"]

#: Seed of every case unless another is given.
DEFAULT_SEED = 20261128


@dataclass(frozen=True)
class Check:
    """One comparison of a Monte Carlo estimate with its reference."""

    case: str
    quantity: str
    estimate: float
    reference: float
    se: float
    bias: float = 0.0
    info: bool = False  # shown, not counted
    # "z": |est - ref| <= 4 se + |bias|; "ks": estimate <= reference; "exact"; "above":
    # est - ref > 3 se (above at one-sided 0.1%); "band": ref - 4 se <= est <= upper + 4 se
    kind: str = "z"
    upper: float = math.nan  # the band's upper end (kind "band")

    @property
    def z(self) -> float:
        """``(estimate - reference) / se`` (NaN for KS, exact and band checks)."""
        if self.kind not in ("z", "above") or not self.se > 0:
            return math.nan
        return (self.estimate - self.reference) / self.se

    @property
    def z_adjusted(self) -> float:
        """``(estimate - reference - bias) / se``: the z-score against the corrected reference."""
        if self.kind != "z" or not self.se > 0 or self.bias == 0:
            return self.z
        return (self.estimate - self.reference - self.bias) / self.se

    @property
    def reference_text(self) -> str:
        """The reference as shown: a value, ``> x`` (kind "above") or a band ``lo-hi``."""
        if self.kind == "above":
            return f"> {self.reference:.6g}"
        if self.kind == "band":
            return f"{self.reference:.4g}-{self.upper:.4g}"
        return f"{self.reference:.6g}"

    @property
    def passed(self) -> bool:
        """Whether the check holds (see the module docs)."""
        if self.kind == "ks":
            return self.estimate <= self.reference
        if self.kind == "exact":
            return self.estimate == self.reference
        if self.kind == "above":
            return self.estimate - self.reference > 3.0 * self.se
        if self.kind == "band":
            slack = 4.0 * self.se
            return self.reference - slack <= self.estimate <= self.upper + slack
        return abs(self.estimate - self.reference) <= 4.0 * self.se + abs(self.bias)


@dataclass(frozen=True)
class Report:
    """All checks of a validation run."""

    checks: list[Check]
    quick: bool
    seed: int

    @property
    def passed(self) -> bool:
        """True when every counted check passes."""
        return all(c.passed for c in self.checks if not c.info)

    def __str__(self) -> str:
        head = ["case", "quantity", "estimate", "reference", "std error", "bias", "z",
                "z(ref+bias)", "result"]  # fmt: skip
        rows = []
        for c in self.checks:
            if c.info:
                result = "info"
            else:
                result = "pass" if c.passed else "FAIL"
            rows.append(
                [
                    c.case,
                    c.quantity,
                    f"{c.estimate:.6g}",
                    c.reference_text,
                    "" if not c.se > 0 else f"{c.se:.3g}",
                    "" if c.bias == 0 else f"{c.bias:+.2g}",
                    "" if math.isnan(c.z) else f"{c.z:+.2f}",
                    "" if c.bias == 0 or math.isnan(c.z) else f"{c.z_adjusted:+.2f}",
                    result,
                ]
            )
        n_fail = sum(not c.passed for c in self.checks if not c.info)
        counted = sum(not c.info for c in self.checks)
        size = "quick" if self.quick else "full"
        out = [
            f"invlend validate ({size} run, seed {self.seed}): pass when |estimate - reference|"
            " <= 4 SE + |bias|",
            text_table(head, rows, left=2),
            "",
            f"{counted - n_fail} of {counted} checks passed"
            + ("" if n_fail == 0 else f"; {n_fail} FAILED"),
        ]
        return "\n".join(out)

    def to_markdown(self) -> str:
        """The table as a markdown table (for docs/validation.md)."""
        lines = [
            "| case | quantity | estimate | reference | std error | bias | z | z (ref + bias) "
            "| result |",
            "|---|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for c in self.checks:
            result = "info" if c.info else ("pass" if c.passed else "**FAIL**")
            se = "" if not c.se > 0 else f"{c.se:.3g}"
            bias = "" if c.bias == 0 else f"{c.bias:+.2g}"
            z = "" if math.isnan(c.z) else f"{c.z:+.2f}"
            z_adj = "" if c.bias == 0 or math.isnan(c.z) else f"{c.z_adjusted:+.2f}"
            lines.append(
                f"| {c.case} | {c.quantity} | {c.estimate:.6g} | {c.reference_text} | {se} | "
                f"{bias} | {z} | {z_adj} | {result} |"
            )
        return "\n".join(lines)


# ------------------------------------------------------------------------------- helpers


def _scenario(stages, *, market=None, **fields) -> il.Scenario:
    """A scenario without dispersion, quality effects, factor or jumps unless given.

    Its ``distress_value`` is 1, so a loan's ``recovery_rate`` is a fraction of firm value.
    """
    base = dict(
        market=market or il.Market(discount_rate=0.0, factor_loading=0.0, jump_rate=0.0),
        default_barrier=0.0,
        value_dispersion=0.0,
        quality_drift=0.0,
        quality_hazard=0.0,
        ipo_multiple=1.0,
        ma_multiple=1.0,
        distress_value=1.0,
    )
    base.update(fields)
    return il.Scenario(stages=stages, **base)


def _loan(maturity: float, **terms) -> il.Structure:
    """A structure with a plain loan (the cases that read only outcomes ignore it)."""
    loan = dict(loan_to_value=0.2, rate=0.0, maturity_years=maturity, recovery_rate=0.0)
    loan.update(terms.pop("loan", {}))
    return il.Structure(name=terms.pop("name", "loan"), loan=il.Loan(**loan), **terms)


def _sim(sc, structures, n_firms: int, seed: int, size: int = 1000):
    return il.simulate(
        sc, structures, n_portfolios=max(2, n_firms // size), portfolio_size=size, seed=seed
    )


def _mean_se(x: np.ndarray) -> tuple[float, float]:
    """Mean of per-firm values and its SE, clustered by portfolio (rows)."""
    per = np.asarray(x, float).mean(axis=1)
    return float(per.mean()), float(per.std(ddof=1) / math.sqrt(per.size))


def _binomial(hits: np.ndarray, p: float) -> tuple[float, float]:
    """Share of ``hits`` and the binomial SE at the reference ``p`` (independent firms)."""
    return float(np.mean(hits)), math.sqrt(p * (1.0 - p) / hits.size)


# --------------------------------------------------------------------------------- cases


def competing_hazards(quick: bool, seed: int) -> list[Check]:
    """Competing exponential hazards: each event's probability by T and survival."""
    hz = dict(default_hazard=0.15, ipo_hazard=0.05, ma_hazard=0.10)
    t = 3.0
    sc = _scenario([il.Stage(name="s", volatility=0.3, **hz)], horizon_years=t)
    res = _sim(sc, _loan(1.0), 200_000 if quick else 2_000_000, seed)
    ev = res["loan"].outcomes.event
    probs, survival = cf.competing_hazards(list(hz.values()), t)
    out = []
    for (code, name), ref in zip(
        [(il.Event.DEFAULT, "default"), (il.Event.IPO, "IPO"), (il.Event.MA, "M&A")],
        probs,
        strict=True,
    ):
        est, se = _binomial(ev == code, ref)
        out.append(Check("competing hazards", f"P({name} by T=3)", est, ref, se))
    est, se = _binomial(ev == il.Event.NONE, survival)
    out.append(Check("competing hazards", "P(no event by T=3)", est, survival, se))
    return out


def barrier(quick: bool, seed: int) -> list[Check]:
    """Black-Cox first passage, monitored at monthly step ends.

    The continuous law is Black & Cox (1976); the discrete monitoring's correction is Broadie,
    Glasserman & Kou (1997).
    """
    v0, b, mu, sigma, t, m = 100.0, 60.0, 0.10, 0.50, 3.0, 36
    sc = _scenario(
        [il.Stage(name="s", drift=mu, volatility=sigma)],
        default_barrier=b / v0,
        horizon_years=t,
        steps_per_year=12,
    )
    res = _sim(sc, _loan(1.0), 200_000 if quick else 2_000_000, seed)
    hit = res["loan"].outcomes.event == il.Event.DEFAULT
    exact = cf.discrete_barrier_default(v0, b, mu, sigma, t, m)
    bgk = cf.black_cox_default(v0, cf.bgk_barrier(b, sigma, t / m), mu, sigma, t)
    cont = cf.black_cox_default(v0, b, mu, sigma, t)
    est, se = _binomial(hit, exact)
    return [
        Check("barrier (monthly)", "P(default by T), exact discrete", est, exact, se),
        Check("barrier (monthly)", "P(default by T), BGK-shifted", est, bgk, se, bias=exact - bgk),
        Check("barrier (monthly)", "P(default by T), continuous", est, cont, se, info=True),
    ]


def merton_debt(quick: bool, seed: int) -> list[Check]:
    """Merton risky debt: a zero-rate bullet loan with recovery 1 (Merton 1974)."""
    out = []
    for v0, face, r, sigma, t in ((100.0, 70.0, 0.05, 0.25, 1.0), (100.0, 90.0, 0.03, 0.40, 3.0)):
        sc = _scenario(
            [il.Stage(name="s", initial_value=v0, drift=r, volatility=sigma)],
            market=il.Market(discount_rate=r, factor_loading=0.0),
            horizon_years=t,
        )
        loan = _loan(t, loan=dict(loan_to_value=face / v0, recovery_rate=1.0))
        res = _sim(sc, loan, 100_000 if quick else 1_000_000, seed)
        est, se = _mean_se(res["loan"].npv)
        ref = cf.merton_debt(v0, face, r, sigma, t) - face
        out.append(Check("Merton debt", f"NPV, D={face:g} s={sigma:g} T={t:g}", est, ref, se))
    return out


def _warrant_case(quick: bool, seed: int, round_size: float) -> tuple:
    v0, r, sigma, t, coverage, ltv = 100.0, 0.03, 0.40, 3.0, 0.10, 0.20
    market = il.Market(discount_rate=r, factor_loading=0.0)
    if round_size > 0:  # a round in step 1 (advance hazard 1000/yr: probability 1 - e^-83)
        stages = [
            il.Stage(name="a", initial_value=v0, drift=r, volatility=sigma, weight=1.0,
                     advance_hazard=1000.0, round_size=round_size),
            il.Stage(name="b", drift=r, volatility=sigma, weight=0.0),
        ]  # fmt: skip
    else:
        stages = [il.Stage(name="s", initial_value=v0, drift=r, volatility=sigma)]
    sc = _scenario(stages, market=market, horizon_years=t)
    plain = _loan(1.0, name="plain", loan=dict(loan_to_value=ltv))
    warrant = _loan(
        1.0,
        name="warrant",
        loan=dict(loan_to_value=ltv),
        warrant=il.Warrant(coverage=coverage, share_of_gain=1.0, expiry_years=t),
    )
    res = _sim(sc, [plain, warrant], 100_000 if quick else 1_000_000, seed)
    diff = res["warrant"].npv - res["plain"].npv
    return res, diff, (v0, r, sigma, t, coverage * ltv)


def warrant_call(quick: bool, seed: int) -> list[Check]:
    """A warrant is a call: paired NPV difference = w C_BS(V0, V0) when nothing else happens."""
    _, diff, (v0, r, sigma, t, w) = _warrant_case(quick, seed, 0.0)
    est, se = _mean_se(diff)
    ref = w * cf.bs_call(v0, v0, r, sigma, t)
    return [Check("warrant = BS call", "NPV(warrant loan) - NPV(loan)", est, ref, se)]


def dilution(quick: bool, seed: int) -> list[Check]:
    """Galai-Schneller dilution: a round of new money ``g V`` at step 1.

    The stake falls to ``d = 1/(1+g)`` of itself and the firm grows by ``1 + g``, so the
    warrant is ``d`` calls on the post-money stake: ``d C_BS(w(1+g)V0, w(1+g)V0)``.
    """
    g = 0.5
    res, diff, (v0, r, sigma, t, w) = _warrant_case(quick, seed, g)
    d = 1.0 / (1.0 + g)
    o = res["warrant"].outcomes
    est, se = _mean_se(diff)
    ref = d * cf.bs_call(w * (1 + g) * v0, w * (1 + g) * v0, r, sigma, t)
    return [
        Check(
            "dilution (one round)",
            "dilution factor of every firm",
            float(np.max(np.abs(o.dilution - d))),
            0.0,
            0.0,
            kind="exact",
        ),
        Check("dilution (one round)", "warrant NPV, d C_BS(post-money)", est, ref, se),
    ]


def merton_jumps(quick: bool, seed: int) -> list[Check]:
    """Merton (1976) jump-diffusion: E[V_T] and a call on V_T."""
    s, r, sigma, t, lam, mj, dj = 100.0, 0.05, 0.20, 1.0, 1.0, -0.10, 0.15
    sc = _scenario(
        [il.Stage(name="s", initial_value=s, drift=r, volatility=sigma)],
        market=il.Market(
            discount_rate=r, factor_loading=0.0, jump_rate=lam, jump_mean=mj, jump_vol=dj
        ),
        horizon_years=t,
    )
    res = _sim(sc, _loan(t), 200_000 if quick else 2_000_000, seed)
    vt = res["loan"].outcomes.value
    est_m, se_m = _mean_se(vt)
    est_c, se_c = _mean_se(math.exp(-r * t) * np.maximum(vt - s, 0.0))
    ref_c = cf.merton_jump_call(s, s, r, sigma, t, lam, mj, dj)
    return [
        Check("Merton jumps", "E[V_T]", est_m, s * math.exp(r * t), se_m),
        Check("Merton jumps", "call on V_T, K = V0", est_c, ref_c, se_c),
    ]


def vasicek(quick: bool, seed: int) -> list[Check]:
    """Vasicek portfolio: default only at maturity, asset correlation ``a^2`` (Vasicek 2002).

    The loss rate of a portfolio of ``N`` names is binomial given the factor; the reference
    for ``P(L <= x)`` is that mixture, exact for finite ``N``, evaluated at the
    large-portfolio quantiles ``x`` (which it approaches as ``N`` grows).
    """
    p, rho, sigma, t = 0.05, 0.12, 0.30, 1.0
    size = 500 if quick else 1000
    n_port = 4000 if quick else 20_000
    a = math.sqrt(rho)
    ltv = math.exp(-0.5 * sigma**2 * t + sigma * math.sqrt(t) * float(stats.norm.ppf(p)))
    sc = _scenario(
        [il.Stage(name="s", volatility=sigma)],
        market=il.Market(discount_rate=0.0, factor_loading=a),
        horizon_years=t,
    )
    loan = _loan(t, loan=dict(loan_to_value=ltv, recovery_rate=0.0))
    res = il.simulate(sc, loan, n_portfolios=n_port, portfolio_size=size, seed=seed)
    loss = res["loan"].portfolio_loss_rate
    checks = [
        Check("Vasicek", f"mean loss rate (N={size})", float(loss.mean()), p,
              float(loss.std(ddof=1) / math.sqrt(loss.size))),
    ]  # fmt: skip
    for alpha in (0.99, 0.999):
        x = cf.vasicek_quantile(p, rho, alpha)
        ref = cf.vasicek_finite_cdf(x, p, rho, size)
        est, se = _binomial(loss <= x + 1e-12, ref)
        checks.append(
            Check("Vasicek", f"P(L <= LHP {100 * alpha:g}% quantile {x:.4f})", est, ref, se)
        )
    return checks


def value_default(quick: bool, seed: int) -> list[Check]:
    """Value-driven default and the runway against their closed forms on the grid.

    With zero volatility the path is deterministic, so the PD by each step is
    ``1 - exp(-sum_k lambda_k dt)`` with ``lambda_k = h exp(-beta g k dt)``
    (:func:`invlend.closed_forms.value_hazard_pd`): exact for the engine's event clock. One
    stage with a runway of ``n_R`` steps and multiplier ``m`` has
    ``S(n) = exp(-h dt (min(n, n_R) + m (n - n_R)+))``.
    """
    n_firms = 20_000 if quick else 200_000
    h, beta, g, spy = 0.3, 2.0, -0.3, 4
    sc = _scenario([il.Stage(name="s", drift=g, default_hazard=h)], horizon_years=4.0,
                   steps_per_year=spy, hazard_value_elasticity=beta)  # fmt: skip
    checks = []
    res = _sim(sc, _loan(1.0), n_firms, seed)
    exact = cf.value_hazard_pd(h, beta, g, sc.dt, sc.n_steps)
    pd = _pd_by_step(res["loan"].outcomes, sc.n_steps)
    for k in (2, 8, 16):
        est, se = pd[k - 1], math.sqrt(exact[k - 1] * (1 - exact[k - 1]) / n_firms)
        checks.append(Check("value default", f"PD by {k / spy:g} y, beta {beta:g}, g {g:g}",
                            float(est), float(exact[k - 1]), se))  # fmt: skip
    m, runway = 3.0, 1.5
    sc = _scenario([il.Stage(name="s", default_hazard=0.2, runway_years=runway)],
                   horizon_years=4.0, steps_per_year=spy, runway_hazard_multiplier=m)  # fmt: skip
    res = _sim(sc, _loan(1.0), n_firms, seed + 1)
    k = np.arange(1, sc.n_steps + 1)
    n_r = round(runway * spy)
    exact = -np.expm1(-0.2 / spy * (np.minimum(k, n_r) + m * np.maximum(k - n_r, 0)))
    pd = _pd_by_step(res["loan"].outcomes, sc.n_steps)
    for kk in (6, 10, 16):
        ref = float(exact[kk - 1])
        se = math.sqrt(ref * (1 - ref) / n_firms)
        label = f"PD by {kk / spy:g} y, runway {runway:g} y, x{m:g}"
        checks.append(Check("runway", label, float(pd[kk - 1]), ref, se))
    return checks


def _pd_by_step(o: il.Outcomes, n_steps: int) -> np.ndarray:
    """Share of firms that defaulted by each step ``1..n_steps``."""
    steps = o.step[o.event == il.Event.DEFAULT]
    return np.cumsum(np.bincount(steps, minlength=n_steps + 1)[1:]) / o.event.size


def annual_defaults(o: il.Outcomes, steps_per_year: int, n_years: int):
    """Defaults and firms alive at the start of each year, per portfolio: two (n_port, n_years)."""
    ev, st = o.event, o.step
    alive, dead = [], []
    for y in range(n_years):
        a0, a1 = steps_per_year * y, steps_per_year * (y + 1)
        alive.append(((ev == il.Event.NONE) | (st > a0)).sum(axis=1))
        dead.append(((ev == il.Event.DEFAULT) & (st > a0) & (st <= a1)).sum(axis=1))
    return np.array(dead, float).T, np.array(alive, float).T


def implied_default_correlation(dead: np.ndarray, alive: np.ndarray) -> tuple[float, float]:
    """Default correlation implied by the spread of portfolios' default rates in one period.

    With ``n`` firms of default probability ``p`` and pairwise default correlation ``rho``, the
    default rate has variance ``p (1 - p) (1/n + (1 - 1/n) rho)``; solved for ``rho`` with the
    pooled ``p`` and the mean of ``1/n``. Returns ``(rho, p)``.
    """
    ok = alive > 0
    d, n = dead[ok], alive[ok]
    p = d.sum() / n.sum()
    inv = float(np.mean(1.0 / n))
    var = float(np.var(d / n, ddof=1))
    return (var / (p * (1.0 - p)) - inv) / (1.0 - inv), float(p)


def _bootstrap_se(stat, arrays, seed: int, n_boot: int = 200) -> float:
    """Bootstrap SE of ``stat(*arrays)`` over rows (portfolios)."""
    rng = np.random.default_rng(seed)
    n = arrays[0].shape[0]
    vals = [stat(*(a[idx] for a in arrays)) for idx in rng.integers(0, n, (n_boot, n))]
    return float(np.std(vals, ddof=1))


def systematic_defaults(quick: bool, seed: int) -> list[Check]:
    """Defaults on the built-in scenario are systematic, as a bank's book is.

    * Portfolio default counts are overdispersed against the binomial (their variance over
      ``n p (1 - p)``, well above 1; v1's value-blind hazards gave about 1).
    * The correlation of annual default rates over the loans' life (years 1-3) lies in the band
      that Basel's SME corporate asset correlation ``R`` 0.08-0.20 implies at that default
      rate (one-factor Gaussian, :func:`invlend.closed_forms.default_correlation`).
    * Capital rises with the factor loading: credit and value capital of the pure loan at
      loadings 0, 0.35 and 0.6 on the same streams.
    """
    n_port = 10_000 if quick else 40_000
    base = il.Scenario.default()
    res = il.simulate(base, il.pure_loan(), n_portfolios=n_port, portfolio_size=100, seed=seed)
    o = res["pure_loan"].outcomes
    defaults = (o.event == il.Event.DEFAULT).sum(axis=1).astype(float)
    n = o.event.shape[1]

    def ratio(d):
        p = d.mean() / n
        return float(np.var(d, ddof=1) / (n * p * (1 - p)))

    checks = [Check("systematic defaults", "variance of default counts / binomial, 5 y",
                    ratio(defaults), 1.0, _bootstrap_se(ratio, [defaults], seed),
                    kind="above")]  # fmt: skip
    dead, alive = annual_defaults(o, base.steps_per_year, 3)

    def rho(d, a):
        return implied_default_correlation(d.ravel(), a.ravel())[0]

    for y in range(3):
        r, p = implied_default_correlation(dead[:, y], alive[:, y])
        lo, hi = cf.default_correlation(p, 0.08), cf.default_correlation(p, 0.20)
        se = _bootstrap_se(rho, [dead[:, y : y + 1], alive[:, y : y + 1]], seed + y)
        checks.append(Check("systematic defaults",
                            f"default correlation, year {y + 1} (annual PD {100 * p:.1f}%)",
                            r, lo, se, kind="band", upper=hi))  # fmt: skip
    # Capital at three loadings on the same streams, its SE by a paired bootstrap (the same
    # resampled portfolios at every loading).
    rates = {}
    for a in (0.0, 0.35, 0.6):
        sc = base.model_copy(update={"market": base.market.model_copy(
            update={"factor_loading": a})})  # fmt: skip
        agg = il.simulate(sc, il.pure_loan(), n_portfolios=n_port, portfolio_size=100,
                          seed=seed, keep="aggregates")["pure_loan"].aggregates  # fmt: skip
        rates[a] = (M.loss_rate(agg), M.value_rate(agg))

    def capital(loss, value):
        return np.array([M.value_at_risk(loss, 0.999) - loss.mean(),
                         value.mean() - M.value_at_risk(value, 0.001)])  # fmt: skip

    idx = np.random.default_rng(seed).integers(0, n_port, (200, n_port))
    full = {a: capital(*r) for a, r in rates.items()}
    boot = {a: np.array([capital(r[0][i], r[1][i]) for i in idx]) for a, r in rates.items()}
    for j, m in enumerate(("credit_capital", "economic_capital")):
        for lo_a, hi_a in ((0.0, 0.35), (0.35, 0.6)):
            diff = full[hi_a][j] - full[lo_a][j]
            se = float(np.std(boot[hi_a][:, j] - boot[lo_a][:, j], ddof=1))
            checks.append(Check("systematic defaults",
                                f"{m} at loading {hi_a:g} minus at {lo_a:g}",
                                float(diff), 0.0, se, kind="above"))  # fmt: skip
    return checks


_CHAIN = [
    dict(default_hazard=0.20, ma_hazard=0.10, advance_hazard=0.50),
    dict(default_hazard=0.10, ipo_hazard=0.15, advance_hazard=0.30),
    dict(default_hazard=0.05, ipo_hazard=0.10),
]
_STATES = ["in stage 1", "in stage 2", "in stage 3", "defaulted", "IPO", "M&A"]


def _chain_states(c: il.Cohort) -> list[float]:
    """The law of ``_STATES`` at the cohort's horizon."""
    return [*c.alive_in.values(), c.default, c.ipo, c.ma]


def lifecycle(quick: bool, seed: int) -> list[Check]:
    """Three stages against the continuous-time chain ``expm(Q T)`` (:func:`invlend.cohort`).

    The engine allows one event per step, so on a monthly grid its law at T is the step
    matrix to the power n, not ``expm(Q T)``; the difference (computed exactly by
    ``cohort(..., grid=True)``, O(dt)) is the stated bias of each check.
    """
    t, spy = 3.0, 12
    stages = [il.Stage(name=f"s{i}", weight=1.0 if i == 0 else 0.0, volatility=0.3, **h)
              for i, h in enumerate(_CHAIN)]  # fmt: skip
    sc = _scenario(stages, horizon_years=t, steps_per_year=spy)
    res = _sim(sc, _loan(1.0), 200_000 if quick else 2_000_000, seed)
    o = res["loan"].outcomes
    alive = o.event == il.Event.NONE
    state = np.where(alive, o.stage, len(_CHAIN) + o.event - 1)
    ref = _chain_states(il.cohort(sc, "s0", horizon_years=t))
    grid = _chain_states(il.cohort(sc, "s0", horizon_years=t, grid=True))
    out = []
    for k, name in enumerate(_STATES):
        est, se = _binomial(state == k, ref[k])
        out.append(Check("lifecycle (3 stages)", f"P({name} at T=3)", est, ref[k], se,
                         bias=grid[k] - ref[k]))  # fmt: skip
    return out


def gbm(quick: bool, seed: int) -> list[Check]:
    """GBM moments and the Kolmogorov-Smirnov test of log V_T."""
    v0, mu, sigma, t = 100.0, 0.10, 0.50, 3.0
    sc = _scenario([il.Stage(name="s", initial_value=v0, drift=mu, volatility=sigma)],
                   horizon_years=t)  # fmt: skip
    res = _sim(sc, _loan(1.0), 200_000 if quick else 2_000_000, seed)
    vt = res["loan"].outcomes.value
    x = np.log(vt).ravel()
    n = x.size
    m_ref = math.log(v0) + (mu - 0.5 * sigma**2) * t
    v_ref = sigma**2 * t
    est_v, se_v = _mean_se(vt)
    d = stats.kstest(x, "norm", args=(m_ref, math.sqrt(v_ref))).statistic
    return [
        Check("GBM", "E[V_T]", est_v, v0 * math.exp(mu * t), se_v),
        Check("GBM", "mean of log V_T", float(x.mean()), m_ref, math.sqrt(v_ref / n)),
        Check(
            "GBM",
            "variance of log V_T",
            float(x.var(ddof=1)),
            v_ref,
            v_ref * math.sqrt(2.0 / (n - 1)),
        ),
        Check(
            "GBM",
            "KS distance of log V_T (vs 0.1% critical value)",
            float(d),
            1.9495 / math.sqrt(n),
            0.0,
            kind="ks",
        ),
    ]


#: Every case, by name, in the order of the issue that asked for them.
CASES: dict[str, Callable[[bool, int], list[Check]]] = {
    "competing_hazards": competing_hazards,
    "barrier": barrier,
    "merton_debt": merton_debt,
    "warrant_call": warrant_call,
    "dilution": dilution,
    "merton_jumps": merton_jumps,
    "vasicek": vasicek,
    "lifecycle": lifecycle,
    "gbm": gbm,
    "value_default": value_default,
    "systematic_defaults": systematic_defaults,
}


def run(quick: bool = False, seed: int = DEFAULT_SEED, cases: list[str] | None = None) -> Report:
    """Run the validation cases (all by default) and return their :class:`Report`.

    ``quick`` runs about 10x fewer firms (a few seconds in all).
    """
    names = list(CASES) if cases is None else list(cases)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise ValueError(f"cases: unknown {unknown}; choose from {list(CASES)}")
    checks: list[Check] = []
    for i, name in enumerate(names):
        checks.extend(CASES[name](quick, seed + i))
    return Report(checks, quick, seed)
