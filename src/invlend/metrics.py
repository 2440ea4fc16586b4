r"""Metrics with Monte Carlo standard errors clustered by portfolio.

Overview
--------
Portfolios are independent and identically distributed; firms within a portfolio are not
(they share the market factor). Every metric is therefore computed from per-portfolio totals
(``agg``, columns :data:`invlend._sim.layout.AGGREGATES`) and its standard error treats
the portfolio as the sampling unit:

* **Smooth metrics** (ratios of sums, means) use the delta method. A ratio
  :math:`\hat R = \sum_p y_p / \sum_p x_p` has influence values
  :math:`u_p = (y_p - \hat R x_p)/\bar x` and :math:`\mathrm{SE} = \mathrm{sd}(u)/\sqrt{n}`.
  A paired difference of two structures uses :math:`\mathrm{sd}(u^A - u^B)/\sqrt{n}`, which is
  small because both are evaluated on the same firms (common random numbers).
* **Tail metrics** (loss VaR and ES, economic and credit capital, RAROC, EVA) use a Poisson
  bootstrap over portfolios with ``B`` replicates (:mod:`invlend._boot`, one numba kernel):
  each portfolio's count in a replicate is a Poisson(1) draw keyed by the run's seed, the
  replicate and the portfolio, so replicates are reproducible and independent of threads,
  and paired differences reuse the same counts. Under importance-sampling weights ``w`` the
  tail estimators weight portfolio ``p`` by ``W_p = c_p w_p`` (``c_p`` its count) and
  normalise by the number of portfolios drawn ``N = sum(c)``: the unbiased,
  non-self-normalised forms, equal to the plain empirical ones when ``w = 1``.

Intervals are ``estimate +- 1.96 SE`` (95%).

Metric definitions (all per unit of principal unless stated):

==================== =====================================================================
``fair_value_per_principal`` fair value of the structure per unit lent: every cash flow
                      (screening costs included) under the risk-neutral measure, discounted
                      at the discount rate (what the position is worth; 0 = fairly priced)
``fair_value_per_applicant`` the same per applicant, currency units
``npv_per_principal`` sum of real-world NPV (incl. screening cost of rejected applicants) /
                      principal: expected cash at the discount rate, not a price
``npv_per_loan``      sum of real-world NPV / number of loans, currency units
``npv_per_applicant`` sum of real-world NPV / number of applicants, currency units
``irr``               mean over portfolios of the annual IRR of the portfolio's cash flows
``acceptance_rate``   loans / applicants
``accepted_quality``  mean latent quality ``q`` (in sd) of the accepted applicants; 0 when all
                      are accepted, above 0 when screening selects better firms
``pd``                defaulted loans / loans (a default may lose nothing)
``annual_pd``         ``1 - exp(-h)`` with ``h`` = balance at default / balance-years
                      outstanding: the one-year PD the IRB formula takes
``lgd``               bank's credit loss after risk sharing / exposure at default
``collateral_share``  part of the recoveries at default that the collateral realised
                      (the rest: the distressed assets); NaN where nothing was recovered
``expected_loss``     mean portfolio loss rate (credit loss after risk sharing / principal)
``ecl_12m``           IFRS 9 / CAS 22 12-month expected credit loss at origination per unit
                      lent: credit loss after risk sharing from losses in the first year,
                      discounted at the effective interest rate (the loan's rate)
``ecl_lifetime``      the same over the loan's whole life (the stage 2 provision)
``stage2_share``      loans outstanding after one year whose firm is then in IFRS 9 stage 2
                      (default intensity at least twice its origination intensity, or its
                      runway run out) / loans
``loss_var_99``       99% quantile of the portfolio loss rate (``_999``: 99.9%)
``loss_es_99``        expected shortfall: mean of the loss-rate quantiles above 99%
``economic_capital``  value-based: mean minus the 0.1% quantile of the portfolio's value per
                      unit lent ``npv / principal`` (every cash flow of the structure): the
                      99.9% shortfall of value below its mean
``credit_capital``    ``loss_var_999 - expected_loss``: the loan book's credit capital (the
                      ``economic_capital`` of model version 1)
``irb_capital``       Basel IRB capital ``K`` per unit of exposure (corporate formula with the
                      SME adjustment, :func:`invlend.capital.irb_capital`) at ``annual_pd``,
                      ``lgd`` and the loan's effective maturity
                      (:func:`invlend.capital.effective_maturity`), plus 8% x 400% (Basel III
                      speculative unlisted equity) of an equity stake and of a warrant per
                      unit lent (the warrant at its fair value, :func:`warrant_charge`;
                      at a Black-Scholes proxy when the run has no risk-neutral measure)
``raroc``             ``fair_value_per_principal / (economic_capital * exposure_years)``:
                      annual value added per unit of capital, with ``exposure_years`` the
                      principal-weighted years the loans are outstanding (value from the
                      risk-neutral measure, risk from the real world; NaN without fair values)
``raroc_irb``         the same with ``irb_capital`` in place of economic capital
``eva``               ``fair_value_per_principal / exposure_years - hurdle *
                      economic_capital``: annual value added per unit lent above the cost of
                      the capital it ties up
``eva_irb``           the same with ``irb_capital``
``prob_negative_npv`` loans with NPV < 0 / loans
``pool_shortfall``    share of the claims on a risk pool its annual cap left unpaid
==================== =====================================================================

Which capital
-------------
Model version 2 holds capital on what the bank actually holds:

==================== =====================================================================
``credit_capital``    the loan book's credit risk alone: what the bank's credit losses can
                      exceed their mean by at 99.9%. Comparable with ``irb_capital`` (the
                      same confidence on the same losses, by simulation instead of the
                      one-factor formula) and with version 1's ``economic_capital``.
``economic_capital``  what the bank's whole position in the structure can lose: interest,
                      fees, recoveries, warrant and equity proceeds and screening costs
                      together. The right denominator of ``raroc`` and ``eva`` for structures
                      that hold equity or warrants, whose risk a credit loss misses; for a
                      plain loan it is close to ``credit_capital``.
``irb_capital``       the regulator's requirement (credit by the Basel formula, equity and
                      warrants by the 400% weight): the capital the bank must hold.
==================== =====================================================================
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from invlend import capital as C
from invlend._sim import layout as L

__all__ = ["METRICS", "Estimate", "expected_shortfall", "value_at_risk"]

Z95 = 1.959963984540054

#: Metric names in display order.
METRICS = (
    "fair_value_per_principal",
    "fair_value_per_applicant",
    "npv_per_principal",
    "npv_per_loan",
    "npv_per_applicant",
    "irr",
    "acceptance_rate",
    "accepted_quality",
    "pd",
    "annual_pd",
    "lgd",
    "collateral_share",
    "expected_loss",
    "ecl_12m",
    "ecl_lifetime",
    "stage2_share",
    "loss_var_99",
    "loss_var_999",
    "loss_es_99",
    "loss_es_999",
    "economic_capital",
    "credit_capital",
    "irb_capital",
    "raroc",
    "raroc_irb",
    "eva",
    "eva_irb",
    "prob_negative_npv",
    "pool_shortfall",
)
#: One line per metric, for tables and reports.
DESCRIPTIONS = {
    "fair_value_per_principal": "fair value (risk neutral) of all cash flows per unit lent",
    "fair_value_per_applicant": "fair value (risk neutral) per applicant, currency units",
    "npv_per_principal": "real-world expected cash, discounted, per unit lent (not a price)",
    "npv_per_loan": "real-world NPV per accepted loan, currency units",
    "npv_per_applicant": "real-world NPV per applicant (screening of the rejected included)",
    "irr": "annual IRR of a portfolio's cash flows, averaged over portfolios",
    "acceptance_rate": "share of applicants that get a loan",
    "accepted_quality": "mean latent quality of accepted applicants, in standard deviations",
    "pd": "share of loans that default (a default may lose nothing)",
    "annual_pd": "one-year PD: defaulted balance per balance-year outstanding, as 1 - exp(-h)",
    "lgd": "bank's credit loss after risk sharing per unit of exposure at default",
    "collateral_share": "part of the recoveries at default that the collateral realised",
    "expected_loss": "mean portfolio loss rate (credit loss after risk sharing / principal)",
    "ecl_12m": "IFRS 9 12-month expected credit loss at origination per unit lent, PV at rate",
    "ecl_lifetime": "IFRS 9 lifetime expected credit loss at origination per unit lent",
    "stage2_share": "share of loans made that the one-year IFRS 9 test puts in stage 2",
    "loss_var_99": "99% quantile of the portfolio loss rate",
    "loss_var_999": "99.9% quantile of the portfolio loss rate",
    "loss_es_99": "mean portfolio loss rate beyond its 99% quantile",
    "loss_es_999": "mean portfolio loss rate beyond its 99.9% quantile",
    "economic_capital": "mean minus 0.1% quantile of portfolio value per unit lent (all flows)",
    "credit_capital": "loss_var_999 minus expected_loss: the loan book's credit capital",
    "irb_capital": "Basel IRB K at annual_pd, lgd and effective maturity, plus equity and warrant",
    "raroc": "fair value per principal / (economic capital x years the loans are outstanding)",
    "raroc_irb": "fair value per principal / (IRB capital x years the loans are outstanding)",
    "eva": "annual fair value per unit lent minus the hurdle rate x economic capital",
    "eva_irb": "annual fair value per unit lent minus the hurdle rate x IRB capital",
    "prob_negative_npv": "share of loans whose NPV is below zero",
    "pool_shortfall": "share of claims on the risk pool left unpaid by its annual cap",
}
#: The tail metrics (standard errors from the bootstrap), in the order of
#: :func:`invlend._boot.tail_estimates`' outputs.
TAIL_METRICS = (
    "loss_var_99",
    "loss_var_999",
    "loss_es_99",
    "loss_es_999",
    "economic_capital",
    "credit_capital",
    "raroc",
    "eva",
)

#: Capital measures per unit lent that a capital budget can bind on.
CAPITAL_METRICS = ("economic_capital", "irb_capital", "credit_capital")

#: Metrics in currency units or in standard deviations of quality; all others are rates.
_NOT_RATES = {
    "npv_per_loan": "currency units",
    "npv_per_applicant": "currency units",
    "fair_value_per_applicant": "currency units",
    "accepted_quality": "standard deviations",
}


def is_rate(metric: str) -> bool:
    """Whether ``metric`` is a rate or a share (printed and plotted as a percentage)."""
    return metric not in _NOT_RATES


_LABEL_WORDS = {
    "npv": "NPV",
    "fair": "fair",
    "irb": "IRB",
    "raroc": "RAROC",
    "eva": "EVA",
    "pd": "PD",
    "lgd": "LGD",
    "irr": "IRR",
    "var": "VaR",
    "es": "ES",
    "99": "99%",
    "999": "99.9%",
    "ecl": "ECL",
    "12m": "12-month",
}
_LABELS = {
    "prob_negative_npv": "share of loans with NPV < 0",
    "stage2_share": "share of loans in IFRS 9 stage 2",
    "collateral_share": "collateral share of recoveries",
}


def axis_label(metric: str) -> str:
    """A plot label for ``metric`` with its unit when it is not a percentage."""
    name = _LABELS.get(metric) or " ".join(_LABEL_WORDS.get(w, w) for w in metric.split("_"))
    unit = _NOT_RATES.get(metric)
    return f"{name} ({unit})" if unit else name


#: Borrower annual sales in EUR millions for the IRB SME firm-size adjustment in summaries:
#: 5, the floor of the adjustment (Basel II ¶273), for small technology firms (an estimate).
IRB_SALES_EUR_M = 5.0


class Estimate(NamedTuple):
    """A metric's estimate with its Monte Carlo standard error and 95% interval.

    ``note`` says why the estimate or its standard error is NaN (``""`` when both are
    defined): for example ``"nobody was accepted"`` or ``"n_boot=0: no bootstrap
    replicates"``.
    """

    estimate: float
    se: float
    ci_low: float
    ci_high: float
    note: str = ""


def loss_rate(agg: np.ndarray) -> np.ndarray:
    """Portfolio loss rate: credit loss after risk sharing / principal (0 where none lent)."""
    principal = agg[:, L.AGG_PRINCIPAL]
    loss = agg[:, L.AGG_LOSS_NET]
    return np.divide(loss, principal, out=np.zeros_like(loss), where=principal > 0)


def value_rate(agg: np.ndarray) -> np.ndarray:
    """Portfolio value per unit lent: NPV (every cash flow) / principal (0 where none lent)."""
    principal = agg[:, L.AGG_PRINCIPAL]
    npv = agg[:, L.AGG_NPV]
    return np.divide(npv, principal, out=np.zeros_like(npv), where=principal > 0)


def _weighted_tail(
    sorted_x: np.ndarray,
    w: np.ndarray,
    alpha: float,
    total: np.ndarray | None = None,
    upper: bool = True,
) -> tuple:
    r"""VaR and ES at ``alpha`` of the weighted empirical law on ``sorted_x``.

    ``w`` (b, n) holds a row of weights :math:`W_j` of the sorted points per replicate and
    ``total`` (b,) the normaliser :math:`N` of each row (default: the row's sum). The
    cumulative weight of point :math:`i` is read from the top,
    :math:`\mathrm{cw}_i = (N - \sum_{j>i} W_j)/N` (``upper``, for an upper tail), or from
    the bottom, :math:`\sum_{j \le i} W_j / N`; the two agree when the weights sum to
    :math:`N`. With :math:`i^*` the first point whose ``cw`` reaches :math:`\alpha` (less
    1e-12 for rounding; the last point if none), ``VaR`` :math:`= x_{(i^*)}` and
    ``ES`` :math:`= (\sum_{j>i^*} W_j x_{(j)} / N + \mathrm{VaR}\,(\mathrm{cw}_{i^*} -
    \alpha)) / (1 - \alpha)`. The numpy twin of :mod:`invlend._boot`'s kernel.
    """
    total = (w.sum(axis=-1) if total is None else np.asarray(total, float))[..., None]
    if upper:
        above = np.cumsum(w[..., :0:-1], axis=-1)[..., ::-1]  # sum over j > i, i < n - 1
        above = np.concatenate([above, np.zeros((*w.shape[:-1], 1))], axis=-1)
        cw = (total - above) / total
    else:
        cw = np.cumsum(w, axis=-1) / total
    # Lower quantile: first point whose cumulative weight reaches alpha (guarded for rounding).
    i = np.minimum((cw < alpha - 1e-12).sum(axis=-1), sorted_x.size - 1)
    var = sorted_x[i]
    above = np.where(np.arange(sorted_x.size) > i[..., None], w * sorted_x, 0.0).sum(axis=-1)
    cw_i = np.take_along_axis(cw, i[..., None], axis=-1)[..., 0]
    es = (above / total[..., 0] + var * (cw_i - alpha)) / (1.0 - alpha)
    return var, es


def value_at_risk(x: np.ndarray, alpha: float) -> float:
    """Lower empirical ``alpha``-quantile of ``x``."""
    xs = np.sort(np.asarray(x, float))
    return float(_weighted_tail(xs, np.ones((1, xs.size)), alpha)[0][0])


def expected_shortfall(x: np.ndarray, alpha: float) -> float:
    """Mean of the empirical quantile function of ``x`` over ``(alpha, 1)``."""
    xs = np.sort(np.asarray(x, float))
    return float(_weighted_tail(xs, np.ones((1, xs.size)), alpha)[1][0])


def controlled(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    r"""Each portfolio's contribution to a weighted sum, with the weight as a control variate.

    Importance weights have a known mean, :math:`E[w] = 1`, so
    :math:`\tilde y_p = w_p y_p - \beta (w_p - 1)` has the mean of :math:`w y`, and with
    :math:`\beta = \mathrm{cov}(w y, w) / \mathrm{var}(w)` the least variance of that family
    (the regression estimator; with the defensive mixture, the safe and effective importance
    sampling of Owen and Zhou 2000). A quantity that is the same in every portfolio passes
    through exactly (:math:`\tilde y = y`). ``beta`` is estimated on the run and then held
    fixed, so sums of :math:`\tilde y` are ratio-of-sums inputs like any other; the bias this
    adds is of order :math:`1/n`. Without variation in the weights: ``w * y``.
    """
    y = np.asarray(y, float)
    wy = w * y
    dw = w - w.mean()
    var = float(dw @ dw)
    if var == 0.0 or not np.all(np.isfinite(wy)):
        return wy
    beta = float((wy - wy.mean()) @ dw) / var
    return wy - beta * (w - 1.0)


def ratio(y: np.ndarray, x: np.ndarray) -> tuple[float, np.ndarray]:
    """Ratio of sums and its influence values per portfolio (NaN ratio if sum(x) == 0)."""
    xbar = x.mean()
    if xbar == 0.0:
        return math.nan, np.full(y.shape, math.nan)
    r = y.sum() / x.sum()
    return float(r), (y - r * x) / xbar


def smooth_metrics(
    agg: np.ndarray,
    irr: np.ndarray,
    size: int,
    maturity_years: float = 2.5,
    hurdle: float = C.DEFAULT_HURDLE,
    sales_eur_m: float | None = IRB_SALES_EUR_M,
    equity_charge: tuple[float, np.ndarray | float] = (0.0, 0.0),
    fair: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> dict:
    """Smooth metrics as ``{name: (estimate, influence values)}``.

    ``weights`` are the portfolios' importance weights (:mod:`invlend.tail`; ``None``: all
    1). Every sum over portfolios is then a sum of weighted contributions with the weight as a
    control variate (:func:`controlled`), except a count of applicants or portfolios, whose
    expectation is known: a mean of ``y`` is ``sum(w y - beta (w - 1)) / n`` and a ratio of
    sums the ratio of two such sums. Their influence values are those of the contributions.

    The IRB metrics are smooth functions of ratios, so their influence values follow by the
    chain rule: ``K`` is linear in LGD and differentiated numerically in PD.
    ``maturity_years`` is the loan's effective maturity ``M`` (the summaries pass
    :func:`invlend.capital.effective_maturity`). ``equity_charge`` is the equity-risk capital
    per unit of principal of the structure's equity stake and warrant (:func:`equity_charge`
    plus :func:`warrant_charge`), added to the loan's ``K`` in ``irb_capital``, as an estimate
    and its influence values (0 for a constant charge; the warrant's charge on its fair value
    is an estimate). ``fair`` is
    the aggregates under the risk-neutral measure (``None``: the fair values are NaN).
    """
    ones = np.ones(agg.shape[0])

    def weigh(y):  # each portfolio's contribution to a sum, column by column
        if weights is None:
            return y
        if y.ndim == 1:
            return controlled(y, weights)
        return np.stack([controlled(col, weights) for col in y.T], axis=1)

    a = weigh(agg)
    if fair is not None:
        fair = weigh(fair)
    finite = weigh(np.isfinite(irr).astype(float))
    irr = weigh(np.where(np.isfinite(irr), irr, 0.0))
    lr = weigh(loss_rate(agg))
    npv_pp = ratio(a[:, L.AGG_NPV], a[:, L.AGG_PRINCIPAL])
    lgd = ratio(a[:, L.AGG_LOSS_NET], a[:, L.AGG_EAD])
    h, u_h = ratio(a[:, L.AGG_EAD], a[:, L.AGG_EXPOSURE])
    annual_pd = (-math.expm1(-h), math.exp(-h) * u_h) if math.isfinite(h) else (h, u_h)
    years = ratio(a[:, L.AGG_EXPOSURE], a[:, L.AGG_PRINCIPAL])
    k_loan, u_k = _irb(annual_pd, lgd, maturity_years, sales_eur_m)
    irb = (k_loan + equity_charge[0], u_k + equity_charge[1])
    if fair is None:
        nan = (math.nan, np.full(a.shape[0], math.nan))
        fv_pp = fv_pa = nan
    else:
        fv_pp = ratio(fair[:, L.AGG_NPV], a[:, L.AGG_PRINCIPAL])
        fv_pa = ratio(fair[:, L.AGG_NPV], size * ones)
    return {
        "fair_value_per_principal": fv_pp,
        "fair_value_per_applicant": fv_pa,
        "npv_per_principal": npv_pp,
        "npv_per_loan": ratio(a[:, L.AGG_NPV], a[:, L.AGG_ACCEPTED]),
        "npv_per_applicant": ratio(a[:, L.AGG_NPV], size * ones),
        "irr": ratio(irr, finite),
        "acceptance_rate": ratio(a[:, L.AGG_ACCEPTED], size * ones),
        "accepted_quality": ratio(a[:, L.AGG_QUALITY], a[:, L.AGG_ACCEPTED]),
        "pd": ratio(a[:, L.AGG_DEFAULTS], a[:, L.AGG_ACCEPTED]),
        "annual_pd": annual_pd,
        "lgd": lgd,
        "collateral_share": ratio(a[:, L.AGG_COLLATERAL], a[:, L.AGG_RECOVERED]),
        "expected_loss": ratio(lr, ones),
        "ecl_12m": ratio(a[:, L.AGG_ECL_12M], a[:, L.AGG_PRINCIPAL]),
        "ecl_lifetime": ratio(a[:, L.AGG_ECL_LIFETIME], a[:, L.AGG_PRINCIPAL]),
        "stage2_share": ratio(a[:, L.AGG_STAGE2], a[:, L.AGG_ACCEPTED]),
        "irb_capital": irb,
        "raroc_irb": _quotient(fv_pp, _product(irb, years)),
        "eva_irb": _difference(_quotient(fv_pp, years), _scaled(irb, hurdle)),
        "prob_negative_npv": ratio(a[:, L.AGG_NEGATIVE], a[:, L.AGG_ACCEPTED]),
        "pool_shortfall": ratio(
            a[:, L.AGG_POOL_CLAIMS] - a[:, L.AGG_POOL_PAID], a[:, L.AGG_POOL_CLAIMS]
        ),
    }


def equity_charge(equity_to_value: float, loan_to_value: float) -> float:
    """Regulatory capital of an equity stake per unit of principal lent.

    8% of the stake's risk-weighted amount, with the Basel III standardised weight for
    speculative unlisted equity (venture capital; 400%, see
    :func:`invlend.capital.equity_risk_weight`): ``0.08 * 4.0 * equity_to_value /
    loan_to_value``, since the stake is ``equity_to_value * V0`` and the principal
    ``loan_to_value * V0``.
    """
    if equity_to_value == 0.0:
        return 0.0
    return C.MIN_CAPITAL_RATIO * C.equity_risk_weight() * equity_to_value / loan_to_value


def warrant_charge(value_per_principal: float) -> float:
    """Regulatory capital of a warrant per unit of principal lent: ``0.08 * 4.0 * value``.

    The warrant is an option on the firm's unlisted equity and takes the stake's 400% weight
    (as :func:`equity_charge`) on its value per unit of principal: its fair value from the
    run's risk-neutral measure, or the Black-Scholes proxy
    :func:`invlend.capital.warrant_value_proxy` when the run simulated the real world only.
    """
    if value_per_principal == 0.0:
        return 0.0
    return C.MIN_CAPITAL_RATIO * C.equity_risk_weight() * value_per_principal


# Estimates with influence values, combined by the chain rule (NaN propagates).
Smooth = tuple[float, np.ndarray]


def _quotient(x: Smooth, y: Smooth) -> Smooth:
    (a, ua), (b, ub) = x, y
    if not (math.isfinite(a) and math.isfinite(b)) or b == 0.0:
        return math.nan, np.full(ua.shape, math.nan)
    return a / b, ua / b - a * ub / (b * b)


def _product(x: Smooth, y: Smooth) -> Smooth:
    (a, ua), (b, ub) = x, y
    return a * b, ua * b + a * ub


def _difference(x: Smooth, y: Smooth) -> Smooth:
    return x[0] - y[0], x[1] - y[1]


def _scaled(x: Smooth, c: float) -> Smooth:
    return c * x[0], c * x[1]


def _irb(pd: Smooth, lgd: Smooth, maturity_years: float, sales_eur_m: float | None) -> Smooth:
    """IRB capital ``K`` at the estimated PD and LGD, with its influence values."""
    (p, u_p), (g, u_g) = pd, lgd
    if not (math.isfinite(p) and math.isfinite(g)):
        return math.nan, np.full(u_p.shape, math.nan)
    g = min(max(g, 0.0), 1.0)

    def k(pd_: float, lgd_: float) -> float:
        return C.irb_capital(min(max(pd_, 0.0), 1.0), lgd_, maturity_years, sales_eur_m)

    step = 1e-6 * max(p, 1e-4)
    dk_dp = (k(p + step, g) - k(p - step, g)) / (2.0 * step)
    return k(p, g), dk_dp * u_p + k(p, 1.0) * u_g  # K is linear in LGD


def tail_metrics(
    agg: np.ndarray,
    weights: np.ndarray,
    hurdle: float = C.DEFAULT_HURDLE,
    fair: np.ndarray | None = None,
    importance: np.ndarray | None = None,
) -> dict:
    r"""Tail metrics for each row of resampling ``weights`` (shape (b, n_portfolios)).

    With ``x_p`` the portfolio's value per unit lent (:func:`value_rate`), ``l_p`` its
    loss rate (:func:`loss_rate`), ``c`` a row of ``weights`` and ``w`` the
    importance-sampling weights ``importance`` (shape (n_portfolios,), default 1), each
    portfolio weighs :math:`W_p = c_p w_p` and sums are normalised by :math:`N = \sum_p c_p`:
    ``economic_capital = mean_W(x) - q_W(x; 0.001)`` and
    ``credit_capital = q_W(l; 0.999) - mean_W(l)``, with :math:`\mathrm{mean}_W(x) =
    \sum_p W_p x_p / N` and ``q_W`` the weighted quantile of :func:`_weighted_tail` (the
    loss tail read from the top, the value tail from the bottom). ``raroc`` and ``eva``
    divide by (charge for) ``economic_capital`` the fair value per unit lent, from the
    risk-neutral aggregates ``fair`` (NaN without them).

    The dense numpy form, for a few rows of explicit weights; summaries use the kernel of
    :mod:`invlend._boot`, which computes the same estimators.
    """
    total = weights.sum(axis=1)
    w = weights if importance is None else weights * np.asarray(importance, float)
    lr = loss_rate(agg)
    order = np.argsort(lr, kind="stable")
    var99, es99 = _weighted_tail(lr[order], w[:, order], 0.99, total)
    var999, es999 = _weighted_tail(lr[order], w[:, order], 0.999, total)
    value = value_rate(agg)
    order = np.argsort(value, kind="stable")
    value_q001 = _weighted_tail(value[order], w[:, order], 0.001, total, upper=False)[0]
    el = w @ lr / total
    principal = w @ agg[:, L.AGG_PRINCIPAL]
    with np.errstate(divide="ignore", invalid="ignore"):
        if fair is None:
            fv_pp = np.full(w.shape[0], np.nan)
        else:
            fv_pp = (w @ fair[:, L.AGG_NPV]) / principal
        years = (w @ agg[:, L.AGG_EXPOSURE]) / principal
        ec = w @ value / total - value_q001
        raroc = np.where(ec > 0, fv_pp / (ec * years), np.nan)
        eva = fv_pp / years - hurdle * ec
    return {
        "loss_var_99": var99,
        "loss_var_999": var999,
        "loss_es_99": es99,
        "loss_es_999": es999,
        "economic_capital": ec,
        "credit_capital": var999 - el,
        "raroc": raroc,
        "eva": eva,
    }


def influence_se(u: np.ndarray) -> float:
    """Standard error of a mean-like estimator from its influence values."""
    n = u.shape[0]
    if n < 2 or not np.all(np.isfinite(u)):
        return math.nan
    return float(np.std(u, ddof=1) / math.sqrt(n))


def bootstrap_weights(n: int, n_boot: int, seed_entropy, spawn_key=(), batch: int = 64):
    """Yield batches of multinomial resampling counts (b, n), reproducible from the seed.

    A batch holds at most about 2e7 counts (160 MB), so millions of portfolios stay within
    memory; the batch size does not change the replicates. Explicit counts for
    :func:`tail_metrics`; the summaries' bootstrap draws Poisson counts inside the kernel
    (:func:`invlend._boot.tail_estimates`).
    """
    batch = max(1, min(batch, 20_000_000 // max(n, 1)))
    ss = np.random.SeedSequence(seed_entropy, spawn_key=(*spawn_key, 0xB007))
    gen = np.random.default_rng(ss)
    done = 0
    while done < n_boot:
        b = min(batch, n_boot - done)
        idx = gen.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
        yield np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(float)
        done += b


def make_estimate(value: float, se: float, note: str = "") -> Estimate:
    """Pack an estimate with its normal 95% interval and the reason for any NaN."""
    lo, hi = float(value - Z95 * se), float(value + Z95 * se)
    return Estimate(float(value), float(se), lo, hi, note)


#: The reason of a NaN that means "does not apply" (a table leaves out a row of only these).
NOT_APPLICABLE = "no risk pool"
#: The reason of a fair value's NaN in a run of the real-world measure alone.
NO_FAIR_VALUE = "the run has no risk-neutral measure (measures='real_world', or a value barrier)"
#: Reasons whose rows a table leaves out when every structure has them.
OMITTED = (NOT_APPLICABLE, NO_FAIR_VALUE)


def nan_notes(
    metric: str,
    estimate: float,
    se: float,
    agg: np.ndarray,
    *,
    has_pool: bool,
    n_boot: int,
    has_fair: bool = True,
    replicates: np.ndarray | None = None,
    lgd: float = 0.0,
    economic_capital: float = 0.0,
    irb_capital: float = 0.0,
) -> str:
    """Why ``metric``'s estimate or standard error is NaN, in words (``""`` if neither is).

    ``agg`` holds the per-portfolio totals the metric was computed from; ``replicates`` are
    the bootstrap values of a tail metric; ``lgd``, ``economic_capital`` and ``irb_capital``
    are the estimates the capital ratios divide by.
    """
    if math.isfinite(estimate):
        if math.isfinite(se):
            return ""
        return _se_note(metric, agg.shape[0], n_boot, replicates)
    total = agg.sum(axis=0)
    if not has_fair and (metric.startswith(("fair_value", "raroc", "eva"))):
        return NO_FAIR_VALUE
    if metric == "pool_shortfall":
        return NOT_APPLICABLE if not has_pool else "no claims on the risk pool"
    if total[L.AGG_ACCEPTED] == 0 and metric != "acceptance_rate":
        return "nobody was accepted"
    if total[L.AGG_PRINCIPAL] == 0:
        return "the principal lent is 0"
    if metric == "lgd" or (metric in ("irb_capital", "raroc_irb", "eva_irb") and
                           not math.isfinite(lgd)):  # fmt: skip
        return "no loan defaulted, so LGD is undefined"
    if metric == "collateral_share":
        if total[L.AGG_DEFAULTS] == 0:
            return "no loan defaulted, so nothing was recovered"
        return "nothing was recovered at the defaults (distressed assets or collateral)"
    if metric == "irr":
        return "no rate prices the cash flows in any portfolio"
    if metric == "raroc" and economic_capital == 0:
        return "economic capital is 0: value does not fall below its mean at 99.9%"
    if metric == "raroc" and not economic_capital > 0:
        return "economic capital is negative: the 0.1% value quantile is above the mean"
    if metric == "raroc_irb" and irb_capital == 0:
        return "IRB capital is 0"
    return "undefined for this run"


def _se_note(metric: str, n: int, n_boot: int, replicates: np.ndarray | None) -> str:
    if n < 2:
        return "standard error needs at least 2 portfolios"
    if is_tail(metric):
        if n_boot < 2:
            return f"n_boot={n_boot}: a standard error needs at least 2 bootstrap replicates"
        if replicates is not None:
            bad = int(np.sum(~np.isfinite(replicates)))
            why = " (economic capital not positive there)" if metric == "raroc" else ""
            return (
                f"standard error undefined: NaN in {bad} of {replicates.size} bootstrap "
                f"replicates{why}"
            )
    return "standard error undefined for this run"


def is_tail(metric: str) -> bool:
    """Whether ``metric``'s standard error comes from the bootstrap."""
    return metric in TAIL_METRICS
