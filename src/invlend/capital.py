r"""Bank capital: Basel IRB risk weights, equity risk weights, RAROC and EVA.

Overview
--------
A bank in 投贷联动 holds capital against two things: the loan (credit risk, here the Basel
internal-ratings-based formula of Basel II ¶272-273) and, where its investment arm takes a stake
or the loan carries a warrant, the equity (a flat risk weight). :func:`irb_capital` gives the
capital requirement ``K`` per unit of exposure at default, :func:`irb_risk_weight` the risk
weight ``12.5 K``, :func:`effective_maturity` the loan's IRB effective maturity ``M`` from its
contractual cash flows, :func:`equity_risk_weight` the weight of an equity stake under a named
framework, :func:`warrant_value_proxy` the value of a warrant that weight applies to (a
Black-Scholes proxy until fair values exist), and :func:`raroc` / :func:`eva` the return on
that capital (the standard RAROC and EVA definitions, see ``docs/sources.md``).

Units: probabilities, LGD, risk weights and capital are fractions (a risk weight of 0.9232 is
92.32%); maturities in years; sales in millions of euro. Risk-weighted assets are
``risk_weight * EAD`` and the 8% minimum capital is ``0.08 * RWA = K * EAD``.

The IRB functions are vectorised: ``pd``, ``lgd``, ``maturity_years`` and ``sales_eur_m``
broadcast with numpy rules; scalars in give a Python ``float`` out.

Sources: the IRB formulas are Basel II (June 2006 comprehensive version) ¶272-273 and ¶330
with the BCBS *Explanatory Note on the IRB Risk Weight Functions* (2005) [S], reproduced
against the illustrative risk weights of Basel II Annex 5 [S]. Other paragraph numbers cited
here (¶44, ¶231, ¶285,
¶318, ¶320, ¶331, ¶344) are recalled [R]; the numbers they carry are marked where they are used.

Example
-------
>>> from invlend import capital
>>> round(capital.irb_risk_weight(0.01, 0.45), 4)  # Basel II Annex 5: 92.32%
0.9232
>>> round(capital.irb_risk_weight(0.01, 0.45, sales_eur_m=5.0), 4)  # SME, S = 5
0.7239
>>> capital.equity_risk_weight("speculative_unlisted")  # Basel III: 400%
4.0
>>> round(capital.effective_maturity((0.045, 3.0, 3.0), 12), 4)  # 3-year monthly bullet
2.8265
"""

from __future__ import annotations

from types import MappingProxyType
from typing import NamedTuple

import numpy as np
from scipy.special import ndtr, ndtri

from invlend import _checks
from invlend._sim.lowering import balance_schedule
from invlend.closed_forms import bs_call

__all__ = [
    "DEFAULT_HURDLE",
    "EQUITY_RISK_WEIGHTS",
    "MIN_CAPITAL_RATIO",
    "EquityWeight",
    "effective_maturity",
    "equity_risk_weight",
    "eva",
    "irb_capital",
    "irb_risk_weight",
    "raroc",
    "warrant_value_proxy",
]

# Basel II ¶272-273 and the BCBS Explanatory Note (2005) [S]: the confidence
# level of the one-factor model and the constants of the correlation and maturity functions.
#: Minimum total capital ratio (Basel II ¶40 [R]): capital is 8% of risk-weighted assets, so a
#: risk weight RW costs ``MIN_CAPITAL_RATIO * RW`` of capital per unit of exposure.
MIN_CAPITAL_RATIO = 0.08
_CONFIDENCE = 0.999
_Z_CONFIDENCE = float(ndtri(_CONFIDENCE))
_MATURITY_REFERENCE = 2.5  # years, the maturity the formula is calibrated at (¶272)
#: Years, Basel II ¶320 / Basel Framework CRE32.47 (advanced IRB): M at least 1, at most 5 [R].
_MATURITY_BOUNDS = (1.0, 5.0)
_SALES_BOUNDS = (5.0, 50.0)  # EUR millions, Basel II ¶273: S clamped to [5, 50]
_KINDS = ("corporate", "retail")


# --------------------------------------------------------------------------------------------
# IRB risk-weight function (corporate with SME adjustment; other retail)
# --------------------------------------------------------------------------------------------


def _as_checked(x, name: str, lo: float, hi: float) -> np.ndarray:
    """``x`` as a float array, or a ValueError naming ``name`` if a value is outside [lo, hi]."""
    try:
        arr = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number or an array of numbers; got {x!r}") from exc
    bad = ~(np.isfinite(arr) & (arr >= lo) & (arr <= hi))
    if bad.any():
        first = arr[bad].flat[0]
        raise ValueError(f"{name} must be finite and in [{lo:g}, {hi:g}]; got {first!r}")
    return arr


def _check_scalar(x: float, name: str, lo: float, hi: float, lo_open: bool = False) -> float:
    """``x`` as a float, or a ValueError naming ``name`` if it is outside the interval."""
    try:
        value = float(x)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number; got {x!r}") from exc
    ok = np.isfinite(value) and (value > lo if lo_open else value >= lo) and value <= hi
    if not ok:
        bracket = "(" if lo_open else "["
        raise ValueError(f"{name} must be finite and in {bracket}{lo:g}, {hi:g}]; got {x!r}")
    return value


def _correlation_corporate(pd: np.ndarray, sales: np.ndarray | None) -> np.ndarray:
    """Basel II ¶272-273: ``R = 0.12 w + 0.24 (1 - w) - 0.04 (1 - (S - 5)/45)``, w = w(50 PD)."""
    w = -np.expm1(-50.0 * pd) / -np.expm1(-50.0)
    r = 0.12 * w + 0.24 * (1.0 - w)
    if sales is not None:
        s = np.clip(sales, *_SALES_BOUNDS)
        r = r - 0.04 * (1.0 - (s - 5.0) / 45.0)  # zero at S = 50: no adjustment for S >= 50
    return r


def _correlation_retail(pd: np.ndarray) -> np.ndarray:
    """Basel II ¶330 (other retail): ``R = 0.03 w + 0.16 (1 - w)``, w = w(35 PD)."""
    w = -np.expm1(-35.0 * pd) / -np.expm1(-35.0)
    return 0.03 * w + 0.16 * (1.0 - w)


def _maturity_factor(pd: np.ndarray, maturity: np.ndarray) -> np.ndarray:
    """``(1 + (M - 2.5) b) / (1 - 1.5 b)`` with ``b = (0.11852 - 0.05478 ln PD)^2``; 1 at M = 1."""
    safe = np.where(pd > 0.0, pd, 1.0)  # K is set to 0 at PD = 0; avoid log(0) there
    b = (0.11852 - 0.05478 * np.log(safe)) ** 2
    return (1.0 + (maturity - _MATURITY_REFERENCE) * b) / (1.0 - 1.5 * b)


def _irb_capital(
    pd: np.ndarray,
    lgd: np.ndarray,
    maturity: np.ndarray,
    sales: np.ndarray | None,
    retail: bool,
) -> np.ndarray:
    """Unscaled ``K`` per unit EAD on validated, floored, clamped arrays (broadcast)."""
    r = _correlation_retail(pd) if retail else _correlation_corporate(pd, sales)
    # Conditional PD at the 99.9% quantile of the systematic factor (Vasicek 2002).
    # At PD = 1 it is ndtr(+inf) = 1 and at PD = 0 it is ndtr(-inf) = 0: K is 0 at both ends.
    conditional = ndtr((ndtri(pd) + np.sqrt(r) * _Z_CONFIDENCE) / np.sqrt(1.0 - r))
    k = lgd * (conditional - pd)
    if not retail:
        k = k * _maturity_factor(pd, maturity)
    return np.where(pd > 0.0, k, 0.0)


def irb_capital(
    pd,
    lgd,
    maturity_years=2.5,
    sales_eur_m=None,
    kind: str = "corporate",
    *,
    pd_floor: float = 0.0003,
    scaling: float = 1.0,
):
    r"""Basel IRB capital requirement ``K`` per unit of exposure at default.

    For ``kind="corporate"`` (Basel II ¶272-273; BCBS Explanatory Note 2005):

    .. math::

        K = \left[\mathrm{LGD}\,\Phi\!\left(\frac{\Phi^{-1}(\mathrm{PD})
            + \sqrt{R}\,\Phi^{-1}(0.999)}{\sqrt{1-R}}\right) - \mathrm{PD}\cdot\mathrm{LGD}\right]
            \frac{1 + (M - 2.5)\,b}{1 - 1.5\,b},
        \qquad b = (0.11852 - 0.05478 \ln \mathrm{PD})^2,

    with correlation :math:`R = 0.12\,w + 0.24\,(1-w) - 0.04\,(1 - (S-5)/45)`,
    :math:`w = (1-e^{-50\,\mathrm{PD}})/(1-e^{-50})`; the last term (the SME firm-size
    adjustment) applies only when ``sales_eur_m`` is given, with S clamped to [5, 50], so it is
    zero for S >= 50. For ``kind="retail"`` (Basel "other retail", ¶330) the correlation is
    :math:`R = 0.03\,w_{35} + 0.16\,(1-w_{35})` with
    :math:`w_{35} = (1-e^{-35\,\mathrm{PD}})/(1-e^{-35})`, and there is neither a maturity
    nor a firm-size adjustment. The result is multiplied by
    ``scaling``.

    The maturity factor equals 1 at M = 1 year (not at 2.5): there ``K`` is the Vasicek
    unexpected loss ``LGD (L_0.999 - PD)`` of the large homogeneous portfolio (Vasicek 2002).

    Parameters
    ----------
    pd : float or array_like
        One-year probability of default, in [0, 1]. Raised to ``pd_floor`` before use.
    lgd : float or array_like
        Loss given default, in [0, 1]. ``K`` is linear in it.
    maturity_years : float or array_like, default 2.5
        Effective maturity M in years, >= 0. Corporate only: clamped to [1, 5] years
        (Basel II ¶320: M is at least one year and at most five). 2.5 is the foundation-IRB
        value (¶318) and the one Basel II Annex 5 uses; a simulation's summary takes the
        advanced-IRB M of the loan's cash flows, :func:`effective_maturity`. Validated but
        unused for retail.
    sales_eur_m : float or array_like, optional
        Annual sales of the borrower in millions of euro, >= 0, for the SME firm-size
        adjustment (¶273); clamped to [5, 50]. ``None`` (default) means no adjustment, the same
        as any S >= 50. Validated but unused for retail.
    kind : {"corporate", "retail"}
        ``"retail"`` is Basel "other retail" (including SME exposures under EUR 1M managed as
        retail, ¶231).
    pd_floor : float, default 0.0003
        Minimum PD: 0.03%, Basel II ¶285 (corporate) and ¶331 (retail) [R]; it is also the
        corporate floor of APRA APS 113 as described by the R package creditriskau [S].
        Basel III (BCBS d424, 2017) raises it to 0.05% [R]; pass ``pd_floor=0.0005`` for that.
        ``0`` disables the floor. Annex 5's first row (PD 0.03%) sits on the floor.
    scaling : float, default 1.0
        Multiplier on ``K``: Basel II and the EU CRR apply 1.06 to IRB credit RWA [S] (the
        paragraph, ¶44, is [R]); Annex 5 does not, and Basel III (d424) removes it [R]. Must
        be > 0.

    Returns
    -------
    float or numpy.ndarray
        ``K`` as a fraction of EAD; the broadcast shape of the four array arguments, or a
        ``float`` when all of them are scalars. ``K = 0`` at PD = 0 (floor disabled) and at
        PD = 1 (a defaulted exposure: its loss is expected, not unexpected).

    Raises
    ------
    ValueError
        Naming the argument, before any computation: ``pd`` or ``lgd`` outside [0, 1] or not
        finite, ``maturity_years`` or ``sales_eur_m`` negative or not finite, ``kind`` not
        ``"corporate"`` or ``"retail"``, ``pd_floor`` outside [0, 1], ``scaling`` not > 0.

    Examples
    --------
    >>> round(irb_capital(0.01, 0.45), 6)  # 92.32% / 12.5
    0.073853
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, _KINDS))}; got {kind!r}")
    p = _as_checked(pd, "pd", 0.0, 1.0)
    loss = _as_checked(lgd, "lgd", 0.0, 1.0)
    m = _as_checked(maturity_years, "maturity_years", 0.0, np.inf)
    s = None if sales_eur_m is None else _as_checked(sales_eur_m, "sales_eur_m", 0.0, np.inf)
    floor = _check_scalar(pd_floor, "pd_floor", 0.0, 1.0)
    factor = _check_scalar(scaling, "scaling", 0.0, np.inf, lo_open=True)

    scalar_in = p.ndim == loss.ndim == m.ndim == 0 and (s is None or s.ndim == 0)
    retail = kind == "retail"
    m = m if retail else np.clip(m, *_MATURITY_BOUNDS)
    k = factor * _irb_capital(np.maximum(p, floor), loss, m, s, retail)
    # Broadcast against every argument so retail (which ignores M and S) has the same shape.
    shape = np.broadcast_shapes(p.shape, loss.shape, m.shape, () if s is None else s.shape)
    k = np.broadcast_to(k, shape).copy()
    return float(k) if scalar_in else k


def irb_risk_weight(
    pd,
    lgd,
    maturity_years=2.5,
    sales_eur_m=None,
    kind: str = "corporate",
    *,
    pd_floor: float = 0.0003,
    scaling: float = 1.0,
):
    r"""Basel IRB risk weight ``RW = 12.5 K`` as a fraction (0.9232 for 92.32%).

    ``12.5 = 1/8%``, so that the 8% minimum capital on ``RW * EAD`` is ``K * EAD``. ``K`` is
    :func:`irb_capital` with the same arguments (``scaling`` included); see it for the formula,
    the PD floor, the maturity clamp, broadcasting and errors.

    Parameters
    ----------
    pd : float or array_like
        One-year probability of default, in [0, 1].
    lgd : float or array_like
        Loss given default, in [0, 1].
    maturity_years : float or array_like, default 2.5
        Effective maturity in years (corporate; clamped to [1, 5]).
    sales_eur_m : float or array_like, optional
        Annual sales in EUR millions for the SME adjustment (corporate; clamped to [5, 50]).
    kind : {"corporate", "retail"}
        Corporate (with optional SME adjustment) or Basel "other retail".
    pd_floor : float, default 0.0003
        Minimum PD (Basel II ¶285).
    scaling : float, default 1.0
        1.06 for Basel II / CRR; 1.0 for Annex 5 and Basel III.

    Returns
    -------
    float or numpy.ndarray
        The risk weight; ``float`` for scalar inputs, else the broadcast shape.

    Examples
    --------
    >>> round(irb_risk_weight(0.03, 0.45, kind="retail"), 4)  # Annex 5: 62.79%
    0.6279
    """
    k = irb_capital(pd, lgd, maturity_years, sales_eur_m, kind, pd_floor=pd_floor, scaling=scaling)
    return 12.5 * k  # 1 / MIN_CAPITAL_RATIO


# --------------------------------------------------------------------------------------------
# Effective maturity
# --------------------------------------------------------------------------------------------


def _loan_terms(loan) -> tuple[float, float, float]:
    """``(rate, maturity_years, io_years)`` of an invlend ``Loan`` or of those three numbers."""
    if all(hasattr(loan, a) for a in ("rate", "maturity_years", "io_years")):
        terms = (loan.rate, loan.maturity_years, loan.io_years)
    else:
        try:
            terms = tuple(loan)
        except TypeError:
            terms = ()
        if len(terms) != 3:
            raise ValueError(
                "loan must be an invlend.Loan or the numbers (rate, maturity_years, "
                f"io_years); got {loan!r}"
            )
    rate = _check_scalar(terms[0], "rate", 0.0, np.inf)
    maturity = _check_scalar(terms[1], "maturity_years", 0.0, np.inf, lo_open=True)
    io = _check_scalar(terms[2], "io_years", 0.0, maturity)
    return rate, maturity, io


def effective_maturity(loan, steps_per_year: int = 12) -> float:
    r"""Basel IRB effective maturity ``M`` of a loan, in years, from its contractual cash flows.

    .. math::

        M = \min\!\left(5,\ \max\!\left(1,\ \frac{\sum_k t_k\,CF_k}{\sum_k CF_k}\right)\right),
        \qquad CF_k = r\,\Delta t\,b_{k-1} + (b_{k-1} - b_k),\quad t_k = k\,\Delta t,

    the cash-flow-weighted (undiscounted) time to payment of interest and principal per unit of
    principal (Basel II ¶320, Basel Framework CRE32.47: the advanced-IRB rule, floored at one
    year and capped at five [R]; the 2.5-year foundation value of ¶318 is not used). The
    balance ``b_k`` follows the simulation's schedule (:mod:`invlend._sim.lowering`): 1 during
    the interest-only period, then linear to 0 at maturity, on a grid of ``steps_per_year``
    steps, with interest each step at the annual ``rate`` on the balance outstanding.

    Parameters
    ----------
    loan : invlend.Loan or tuple of float
        The loan, or the numbers ``(rate, maturity_years, io_years)``: annual rate (>= 0),
        maturity in years (> 0) and interest-only years (in [0, maturity]; the maturity for a
        bullet loan, as ``Loan.io_years``).
    steps_per_year : int, default 12
        Payments per year (the scenario's ``steps_per_year``); maturity and the interest-only
        period are rounded to whole steps (at least one step to maturity).

    Returns
    -------
    float
        ``M`` in years, in [1, 5]. A bullet loan at zero rate has ``M`` equal to its maturity
        (within the bounds); interest and amortisation pay earlier and shorten it.

    Raises
    ------
    ValueError
        Naming the term: not a loan or three numbers, a negative rate, a maturity not > 0, an
        interest-only period outside [0, maturity], ``steps_per_year`` outside [1, 3650].
    TypeError
        ``steps_per_year`` not an integer.

    Examples
    --------
    >>> import invlend as il
    >>> bullet = il.Loan(rate=0.045, maturity_years=3.0)  # 3-year bullet, monthly interest
    >>> round(effective_maturity(bullet, steps_per_year=12), 4)  # just under 3
    2.8265
    >>> effective_maturity((0.0, 3.0, 3.0), 12)  # no interest: all paid at maturity
    3.0
    """
    rate, maturity, io = _loan_terms(loan)
    dt = 1.0 / _checks.count("steps_per_year", steps_per_year, high=3650)
    km = max(1, round(maturity / dt))
    kio = min(round(io / dt), km)
    k = np.arange(km + 1)
    balance = balance_schedule(km, kio, km)
    flow = rate * dt * balance[:-1] + (balance[:-1] - balance[1:])
    m = float(np.dot(k[1:] * dt, flow) / flow.sum())
    return float(np.clip(m, *_MATURITY_BOUNDS))


# --------------------------------------------------------------------------------------------
# Equity stakes
# --------------------------------------------------------------------------------------------


class EquityWeight(NamedTuple):
    """One documented equity risk weight: the weight (a fraction), its source and its mark."""

    weight: float  #: risk weight as a fraction (2.5 for 250%)
    source: str  #: where the number comes from
    mark: str  #: "S" seen in a source, "R" recalled, "E" estimate (as in docs/sources.md)


#: Equity risk weights by framework and kind, read-only. Marks as in docs/sources.md: [S] seen in a
#: source (here: in national rulebooks that transpose the Basel text), [R] recalled and not
#: re-read in a source. The Chinese weights are [R]: check them before relying on them.
EQUITY_RISK_WEIGHTS = MappingProxyType(
    {
        "basel3": MappingProxyType(
            {
                "general": EquityWeight(
                    2.5,
                    "Basel III standardised approach, CRE20 (BCBS d424, Dec 2017): equity "
                    "exposures not otherwise treated, 250%. Seen as the end point of the SAMA "
                    "rulebook's phase-in (No. 44047144, ¶17.1: 100% + 5 x 30 pp)",
                    "S",
                ),
                "speculative_unlisted": EquityWeight(
                    4.0,
                    "Basel III standardised approach, CRE20 (BCBS d424, Dec 2017): speculative "
                    "unlisted equity (short-term resale, venture capital and similar), 400%. "
                    "Seen as the end point of the SAMA rulebook's phase-in (No. 44047144, "
                    "¶17.1: 100% + 5 x 60 pp)",
                    "S",
                ),
            }
        ),
        "basel2": MappingProxyType(
            {
                "listed": EquityWeight(
                    3.0,
                    "Basel II (2006) ¶344, IRB simple risk-weight method: publicly traded "
                    "equity, 300%. Seen in the CBB (Bahrain) rulebook's transposition, CA-4.4.2",
                    "S",
                ),
                "other": EquityWeight(
                    4.0,
                    "Basel II (2006) ¶344, IRB simple risk-weight method: all other equity, "
                    "400%. Seen in the CBB (Bahrain) rulebook's transposition, CA-4.4.2",
                    "S",
                ),
            }
        ),
        "china2023": MappingProxyType(
            {
                "passive_in_disposal_period": EquityWeight(
                    2.5,
                    "《商业银行资本管理办法》 (NFRA Order 2023 No. 4, effective 2024), annex 2: "
                    "被动持有的对工商企业股权投资 within the legal disposal period, 250%. "
                    "Recalled, not verified; the 2012 measures had 400% (also recalled)",
                    "R",
                ),
                "other_commercial": EquityWeight(
                    12.5,
                    "《商业银行资本管理办法》 (NFRA Order 2023 No. 4), annex 2: 对工商企业其他"
                    "股权投资, 1250% (as in the 2012 measures). Recalled, not verified",
                    "R",
                ),
            }
        ),
    }
)


def equity_risk_weight(kind: str = "speculative_unlisted", framework: str = "basel3") -> float:
    """Risk weight (a fraction) of an equity stake held in the banking book.

    The documented cases are in :data:`EQUITY_RISK_WEIGHTS`:

    ============= ============================== ====== ====
    framework     kind                           weight mark
    ============= ============================== ====== ====
    ``basel3``    ``general``                    250%   S
    ``basel3``    ``speculative_unlisted``       400%   S
    ``basel2``    ``listed``                     300%   S
    ``basel2``    ``other``                      400%   S
    ``china2023`` ``passive_in_disposal_period`` 250%   R
    ``china2023`` ``other_commercial``           1250%  R
    ============= ============================== ====== ====

    A venture stake of a bank's investment arm in an unlisted tech SME is Basel III
    ``speculative_unlisted`` (the default) and Basel II ``other``. Under China's 2023 measures
    a bank's own equity investment in a commercial enterprise (工商企业) outside the listed
    exceptions is ``other_commercial``; both Chinese weights are recalled, **not verified**
    against the text of the measures, and the treatment of a 投贷联动 investment subsidiary's
    stakes on consolidation was not researched.

    Parameters
    ----------
    kind : str, default "speculative_unlisted"
        The case within ``framework``; see the table.
    framework : {"basel3", "basel2", "china2023"}
        Basel III standardised approach (CRE20), Basel II IRB simple risk-weight method
        (¶344) or China's 2023 《商业银行资本管理办法》 (weighting approach).

    Returns
    -------
    float
        The risk weight, 4.0 for 400%. Capital at 8% is ``0.08 * weight * exposure``.

    Raises
    ------
    ValueError
        Unknown ``framework`` or ``kind``; the message lists the valid ones.

    Examples
    --------
    >>> equity_risk_weight("listed", "basel2")
    3.0
    """
    table = EQUITY_RISK_WEIGHTS.get(framework)
    if table is None:
        valid = ", ".join(map(repr, EQUITY_RISK_WEIGHTS))
        raise ValueError(f"framework must be one of {valid}; got {framework!r}")
    case = table.get(kind)
    if case is None:
        valid = ", ".join(map(repr, table))
        raise ValueError(f"kind for framework {framework!r} must be one of {valid}; got {kind!r}")
    return case.weight


def warrant_value_proxy(
    coverage: float,
    share_of_gain: float,
    weights,
    volatilities,
    default_hazards,
    discount_rate: float,
    years: float,
) -> float:
    r"""Black-Scholes proxy of a warrant's value per unit of principal, for its equity charge.

    .. math::

        W = g\,c \sum_s w_s\, C_{BS}\!\left(1, 1, r + \lambda^D_s, \sigma_s, T\right)

    with ``g`` the bank's share of the gain, ``c`` the coverage (strike as a fraction of
    principal, so the warrant is a call on ``c`` of principal's worth of the firm struck at
    the money), ``w_s``, ``sigma_s`` and ``lambda^D_s`` the stages' weights, volatilities and
    default hazards, ``r`` the discount rate and ``T`` the warrant's life within the horizon.
    Adding the default hazard to the rate prices the firm's jump to zero at default (Merton
    1976 with total loss: the call on a stock that can vanish at rate lambda is the Black-
    Scholes call at rate ``r + lambda``).

    **A proxy, to be replaced by the warrant's fair value** from the simulation: it ignores
    the stages' drift and exits, funding rounds and dilution, quality, linkage multipliers and
    the market factor's jumps. It is the exposure the 400% equity weight applies to until then.

    Parameters
    ----------
    coverage, share_of_gain : float
        ``Warrant.coverage`` (>= 0) and ``Warrant.share_of_gain`` (in [0, 1]).
    weights, volatilities, default_hazards : array_like
        Per stage: entry weights (summing to 1), annual volatilities and default hazards.
    discount_rate : float
        Annual risk-free (discount) rate ``r``.
    years : float
        ``T = min(expiry_years, horizon_years)``, > 0.

    Returns
    -------
    float
        ``W`` per unit of principal.

    Examples
    --------
    >>> round(warrant_value_proxy(0.1, 1.0, [1.0], [0.0], [0.0], 0.02, 5.0), 6)  # 0.1 (1 - e^-0.1)
    0.009516
    """
    c = _check_scalar(coverage, "coverage", 0.0, np.inf)
    g = _check_scalar(share_of_gain, "share_of_gain", 0.0, 1.0)
    r = _check_scalar(discount_rate, "discount_rate", -np.inf, np.inf)
    t = _check_scalar(years, "years", 0.0, np.inf, lo_open=True)
    w = _as_checked(weights, "weights", 0.0, 1.0)
    sigma = _as_checked(volatilities, "volatilities", 0.0, np.inf)
    lam = _as_checked(default_hazards, "default_hazards", 0.0, np.inf)
    if not w.ndim == sigma.ndim == lam.ndim == 1 or not w.size == sigma.size == lam.size:
        raise ValueError("weights, volatilities and default_hazards must be 1-d, one per stage")
    calls = [bs_call(1.0, 1.0, r + lam[s], sigma[s], t) for s in range(w.size)]
    return g * c * float(np.dot(w, calls))


# --------------------------------------------------------------------------------------------
# Return on capital
# --------------------------------------------------------------------------------------------

#: RAROC hurdle (cost of equity): an estimate of the project, within the 10-15% cost of equity
#: banks are taken to face (also an estimate; see docs/sources.md) [E].
DEFAULT_HURDLE = 0.12


def _return_inputs(expected_return, expected_loss, capital):
    ret = _as_checked(expected_return, "expected_return", -np.inf, np.inf)
    el = _as_checked(expected_loss, "expected_loss", 0.0, np.inf)
    cap = _as_checked(capital, "capital", 0.0, np.inf)
    scalar_in = ret.ndim == 0 and el.ndim == 0 and cap.ndim == 0
    return ret, el, cap, scalar_in


def raroc(expected_return, expected_loss, capital):
    r"""Risk-adjusted return on capital (the standard definition, see ``docs/sources.md``).

    .. math::

        \mathrm{RAROC} = \frac{\text{expected return} - \text{EL}}{\text{EC}}

    where the expected return is net of funding and operating cost (interest + fees +
    warrant/equity gains - funding cost - operating cost) and EC is the economic (or
    regulatory) capital held, e.g. ``VaR_0.999(loss) - EL`` or ``K * EAD``. All three in the
    same units (currency, or per unit of exposure) and over the same period, so that RAROC is
    a rate over that period (annual if the return is annual).

    Parameters
    ----------
    expected_return : float or array_like
        Expected return net of costs, before expected loss; finite, any sign.
    expected_loss : float or array_like
        Expected credit loss; finite, >= 0.
    capital : float or array_like
        Capital held; finite, >= 0.

    Returns
    -------
    float or numpy.ndarray
        RAROC, broadcast over the inputs (``float`` for scalars). **NaN where capital is 0**:
        a return on no capital is undefined. This matches ``metrics.raroc`` of a simulation,
        where a portfolio with no tail loss has zero economic capital.

    Raises
    ------
    ValueError
        Naming the argument: a non-finite value, a negative ``expected_loss`` or ``capital``.

    Examples
    --------
    >>> raroc(0.05, 0.01, 0.25)
    0.16
    """
    ret, el, cap, scalar_in = _return_inputs(expected_return, expected_loss, capital)
    positive = cap > 0.0
    out = np.where(positive, (ret - el) / np.where(positive, cap, 1.0), np.nan)
    return float(out) if scalar_in else out


def eva(expected_return, expected_loss, capital, hurdle: float = DEFAULT_HURDLE):
    r"""Economic value added: the return above the cost of the capital held.

    .. math::

        \mathrm{EVA} = (\mathrm{RAROC} - h)\,\mathrm{EC}
                     = \text{expected return} - \text{EL} - h\,\mathrm{EC}

    The second form is the one computed, so EVA is defined (``expected return - EL``) where
    capital is 0. Units are those of the inputs (currency, or per unit of exposure).

    Parameters
    ----------
    expected_return : float or array_like
        Expected return net of costs, before expected loss; finite, any sign.
    expected_loss : float or array_like
        Expected credit loss; finite, >= 0.
    capital : float or array_like
        Capital held; finite, >= 0.
    hurdle : float, default 0.12
        Hurdle rate h (cost of equity) over the same period as the return: 12%, an estimate
        of the project within an estimated 10-15% cost of equity [E]. Finite.

    Returns
    -------
    float or numpy.ndarray
        EVA, broadcast over the inputs (``float`` for scalars).

    Raises
    ------
    ValueError
        Naming the argument: a non-finite value, a negative ``expected_loss`` or ``capital``.

    Examples
    --------
    >>> round(eva(0.05, 0.01, 0.25), 10)  # (0.16 - 0.12) * 0.25
    0.01
    """
    ret, el, cap, scalar_in = _return_inputs(expected_return, expected_loss, capital)
    h = _check_scalar(hurdle, "hurdle", -np.inf, np.inf)
    out = ret - el - h * cap
    return float(out) if scalar_in else out
