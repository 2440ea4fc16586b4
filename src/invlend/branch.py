r"""Incentives: the same book as a branch paid on first-year profit and one paid on fair value.

Overview
--------
:func:`incentives` asks which applicants a branch would finance, and with which product, if it
were paid on the first year's accounting profit of its loans, and which if it were paid on
their lifetime fair value; and what the bank loses through the first. Every candidate product
is simulated on every applicant (one run, common random numbers), then the branch's decision is
made afterwards, class by class, from what it sees at origination:

* an applicant's **class** is its starting stage and the bin of its screening signal
  :math:`s = q + \sigma e` within the stage (``bins`` bins of equal population probability:
  :math:`s \sim N(0, 1 + \sigma^2)` whatever the stage, so the bin edges are fixed before the
  run);
* per class and product, the **fair value** (risk neutral, every cash flow, discounted) and the
  **first-year profit** (:func:`first_year_profit`: interest and fees received in the first 12
  months, minus the transfer-priced funding of the balance, minus the credit losses of loans
  that default within 12 months, plus warrant proceeds realised in year 1);
* the **first-year branch** takes, per class, the product of highest expected first-year profit
  per applicant, or none where every product's is at most 0; the **lifetime branch** the
  product of highest fair value per applicant, or none where every product's is at most 0;
* the bank's **value lost** through the first-year branch is the fair value of the lifetime
  branch's book minus that of the first-year branch's, per applicant, with a paired standard
  error (the same firms), split into *value destroyed* (loans of negative fair value it makes)
  and *value forgone* (fair value of the loans or the better products it declines).

Example
-------
>>> import invlend as il
>>> from invlend.branch import incentives
>>> view = incentives(il.Scenario.default(), [il.pure_loan(), il.warrant_loan()], bins=2,
...                   n_portfolios=40, portfolio_size=20, seed=1)
>>> len(view.classes), view.picks["lifetime"][-1]
(10, 'warrant_loan')
>>> t = view.totals
>>> abs(t["lost"].estimate - t["destroyed"].estimate - t["forgone"].estimate) < 1e-12
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from scipy.special import ndtri

from invlend import _checks
from invlend import metrics as M
from invlend._sim import layout as L
from invlend._sim.lowering import Terms, lower_structure
from invlend._tables import (
    Document,
    Printed,
    Rows,
    format_estimate,
    json_ready,
    text_table,
)
from invlend.config import Scenario, Screening, Structure
from invlend.engine import simulate
from invlend.sweep import need_fair_values, run_sizes

__all__ = ["FirstYear", "IncentiveView", "first_year_profit", "incentives"]

#: A pick within this many standard errors of the runner-up (or of declining) is flagged.
CLOSE_SE = 2.0
#: Most signal bins per stage.
MAX_BINS = 100
#: The two branches, in display order: (key, label).
BRANCHES = (("first_year", "first-year branch"), ("lifetime", "lifetime branch"))
#: simulate() options a view cannot take: it needs every firm (keep="firms"), both measures,
#: and plain sampling with one fixed size.
_REFUSED = {
    "keep": "a view needs the per-firm arrays (keep='firms', the default)",
    "tail": "a view weighs every portfolio alike (no importance sampling)",
    "tolerance": "a view runs at a fixed size (give n_portfolios)",
    "max_portfolios": "a view runs at a fixed size (give n_portfolios)",
    "structures": "give the candidate structures as products",
}


class FirstYear(NamedTuple):
    """Per-firm first-year accounting of one structure, currency units (arrays like ``step``).

    ``profit = interest + fees - funding - credit_loss + upside``; see :func:`first_year_profit`.
    """

    interest: np.ndarray
    fees: np.ndarray
    funding: np.ndarray
    credit_loss: np.ndarray
    upside: np.ndarray
    profit: np.ndarray


def _accrue(
    terms: Terms,
    *,
    event: np.ndarray,
    step: np.ndarray,
    value: np.ndarray,
    regime: np.ndarray,
    maturity_value: np.ndarray,
    principal: np.ndarray,
    credit_loss: np.ndarray,
    upside: np.ndarray,
    transfer_rate: float,
) -> FirstYear:
    """The first 12 months of each loan's cash flows, from its outcome (see first_year_profit).

    ``maturity_value`` is the firm's value at the loan's maturity step (read only where the
    loan reaches maturity within the year). Arrays of any one shape.
    """
    km, dt, K = terms.maturity_step, terms.dt, terms.steps_per_year
    b = terms.balance
    held = terms.balance_years_cum  # sum of b[j - 1] * dt over steps 1..k
    event = np.asarray(event)
    k = np.asarray(step).astype(np.int64)
    exits = (event == L.EV_IPO) | (event == L.EV_MA)
    ended = (event != L.EV_NONE) & (k <= km)  # the firm's event ends the loan
    k_term = np.where(ended, k, km)  # the step of the loan's last cash flow
    k_full = k_term - 1  # scheduled flows over steps 1..k_full
    multiple = (
        np.where(
            event == L.EV_IPO,
            terms.ipo_multiple,
            np.where(event == L.EV_MA, terms.ma_multiple, 1.0),
        )
        * terms.regime_multiple[np.asarray(regime).astype(np.int64)]
    )
    owed = principal * b[np.maximum(k_term - 1, 0)]
    in_year = k_term <= K
    # Terminal payment within the year: an exit's prepayment with its coupon and fees, or the
    # repayment at maturity (with its coupon and final fee) where the firm's value covers it.
    exit_value = value * multiple
    at_exit = ended & exits
    due = terms.final_fee * principal + np.where(k_term < km, terms.prepayment_fee * owed, 0.0)
    fee_exit = np.minimum(due, np.maximum(exit_value - np.minimum(owed, exit_value), 0.0))
    at_maturity = ~ended
    covered = at_maturity & (maturity_value >= owed)
    fee_maturity = np.minimum(terms.final_fee * principal, np.maximum(maturity_value - owed, 0.0))
    coupon_paid = in_year & (at_exit | covered)
    interest = (
        terms.rate
        * principal
        * (
            held[np.minimum(k_full, K)]
            + np.where(coupon_paid, dt * b[np.maximum(k_term - 1, 0)], 0.0)
        )
    )
    fees = terms.upfront_fee * principal + np.where(
        in_year & at_exit, fee_exit, np.where(in_year & covered, fee_maturity, 0.0)
    )
    funding = transfer_rate * principal * held[np.minimum(k_term, K)]
    loss = np.where(in_year, credit_loss, 0.0)
    # Warrant proceeds are cash only at an exit within the year (the warrant lives at least a
    # year, so it is exercised there): the PV undone at the exit's step. Marks do not count.
    realised = exits & (k <= K)
    cash_up = np.where(
        realised, upside / terms.discount[np.minimum(k, terms.discount.size - 1)], 0.0
    )
    profit = interest + fees - funding - loss + cash_up
    return FirstYear(interest, fees, funding, loss, cash_up, profit)


def first_year_profit(result, structure: str, *, transfer_rate: float | None = None) -> FirstYear:
    r"""Each accepted firm's first-year accounting profit under ``structure``, currency units.

    With :math:`P` the principal, :math:`b_k` the balance per unit of principal after step
    :math:`k` (interest-only, then linear amortisation), :math:`\Delta t` the step,
    :math:`K` the steps of one year, :math:`k_T` the step of the loan's last cash flow (the
    firm's default or exit if it comes before maturity, else maturity) and :math:`\rho` the
    transfer rate,

    .. math::

        \pi_1 = \underbrace{r P \Delta t \Big(\sum_{j=1}^{\min(k_T - 1, K)} b_{j-1}
                + \mathbb 1[\text{coupon at } k_T \le K]\, b_{k_T-1}\Big)}_{\text{interest}}
              + \underbrace{f_0 P + \mathbb 1[k_T \le K]\,\mathrm{fee}_{k_T}}_{\text{fees}}
              - \underbrace{\rho P \Delta t \sum_{j=1}^{\min(k_T, K)} b_{j-1}}_{\text{funding}}
              - \underbrace{\mathbb 1[k_T \le K]\, \ell}_{\text{credit loss}}
              + \underbrace{\mathbb 1[\text{exit at } k \le K]\, W}_{\text{warrant}}

    where the terminal coupon is paid at an exit, and at maturity where the firm's value covers
    the balance (not at a default), :math:`\mathrm{fee}_{k_T}` is the final and prepayment fee
    paid there (as far as the exit value reaches), :math:`\ell` the credit loss of
    ``credit_loss`` (undiscounted, booked in the year the loan defaults) and :math:`W` the
    warrant's proceeds at the exit (its real-world PV ``upside`` undone). Warrant marks, a
    horizon settlement and proceeds after month 12 do not count: they are not year-1 profit.
    The timing is the simulator's (docs/model.md): scheduled interest and amortisation at the
    end of each step, none in the step of a default.

    Parameters
    ----------
    result : SimulationResult
        A run that kept its firms (``keep="firms"``) with a horizon of at least one year.
    structure : str
        The structure's name; it may carry a warrant (living at least a year) but no equity,
        risk share or risk pool.
    transfer_rate : float, optional
        Annual funds-transfer-pricing rate charged on the balance (default: the scenario's
        ``market.discount_rate``).

    Returns
    -------
    FirstYear
        Arrays ``(n_portfolios, portfolio_size)``, NaN where the applicant was not accepted.
    """
    result.require_firms()
    r = result[structure]
    sc = result.scenario
    _check_product(f"structure {structure!r}", r.structure)
    if sc.horizon_years < 1.0 - 1e-12:
        raise ValueError(f"scenario.horizon_years: a first year needs at least 1 y, got "
                         f"{sc.horizon_years:g}")  # fmt: skip
    rate = sc.market.discount_rate if transfer_rate is None else transfer_rate
    rate = _checks.number("transfer_rate", rate, low=-0.1, high=1.0)
    o = r.outcomes
    terms = lower_structure(sc, r.structure, (o.checkpoint_steps, o.checkpoint_diluted))
    chk = o.checkpoint_values[..., terms.checkpoint_index]
    at_km = (o.event == L.EV_NONE) & (o.step == terms.maturity_step)
    fy = _accrue(
        terms,
        event=o.event,
        step=o.step,
        value=o.value,
        regime=o.regime,
        maturity_value=np.where(at_km, o.value, chk),
        principal=r.principal,
        credit_loss=r.credit_loss,
        upside=r.upside,
        transfer_rate=rate,
    )
    lent = r.accepted
    return FirstYear(*(np.where(lent, a, np.nan) for a in fy))


def _check_product(where: str, s: Structure) -> None:
    for part in ("equity", "risk_share", "risk_pool"):
        if getattr(s, part) is not None:
            raise ValueError(
                f"{where}.{part}: the first-year view covers loans and warrants only "
                f"(no first-year accounting of an {part.replace('_', ' ')} is modelled)"
            )
    if s.warrant is not None and s.warrant.expiry_years < 1.0 - 1e-12:
        raise ValueError(
            f"{where}.warrant.expiry_years: the first-year view needs a warrant that lives at "
            f"least a year (exercised only at an exit within it), got {s.warrant.expiry_years:g}"
        )


class _Cell(NamedTuple):
    """One class's estimates for one product."""

    fair_value: M.Estimate  # per applicant, currency units
    first_year: M.Estimate  # per applicant
    fair_value_pp: M.Estimate  # per unit of principal
    first_year_pp: M.Estimate


class IncentiveView(Printed, Rows, Document):
    """What a first-year-profit branch and a fair-value branch would lend, class by class.

    Built by :func:`incentives`. Estimates are :class:`~invlend.metrics.Estimate` (estimate,
    standard error clustered by portfolio, 95% interval).

    Attributes
    ----------
    products : list of str
        The candidate products, in the order given.
    classes : list of dict
        One per applicant class: ``stage``, ``bin`` (1 = lowest signal), ``signal_low`` and
        ``signal_high`` (the bin's edges), ``share`` (of all applicants, with ``share_se``).
    cells : dict
        ``cells[i][product]``: the class's fair value and first-year profit, per applicant
        and per unit of principal (``fair_value``, ``first_year``, ``fair_value_pp``,
        ``first_year_pp``).
    picks : dict
        ``picks[branch][i]``: the product the branch takes for class ``i`` (``None``: it
        declines), for ``branch`` in ``"first_year"``, ``"lifetime"``.
    margins : dict
        ``margins[branch][i]``: the pick's lead over the branch's next best choice (another
        product, or declining) on the branch's own measure, per applicant, with its paired
        standard error.
    close : list of bool
        Per class: either branch's pick leads by less than ``CLOSE_SE`` standard errors (the
        simulation does not tell the choice from its runner-up).
    totals : dict
        Per applicant of the book, paired on the same firms: ``lifetime_book`` and
        ``first_year_book`` (fair value of each branch's book), ``lost`` (their difference),
        ``destroyed`` and ``forgone`` (its two parts), ``first_year_profit_first_year`` and
        ``first_year_profit_lifetime`` (each book's first-year profit), and the share of
        applicants each branch finances (``accepted_first_year``, ``accepted_lifetime``).
    by_stage : dict
        ``by_stage[stage]``: the same totals per applicant of that starting stage.
    meta : dict
        The run's sizes and seed, the transfer rate, the signal noise and the bins.
    sums : dict
        The per-portfolio class sums behind every figure, arrays (n_portfolios, n_classes):
        ``sums["count"]`` (applicants) and ``sums[product]`` with ``"fair_value"``,
        ``"first_year"`` and ``"principal"``.
    result : SimulationResult
        The run (every product financing every applicant, screening replaced).
    """

    _left = 2

    def __init__(
        self, products, classes, cells, picks, margins, totals, by_stage, meta, sums, result
    ) -> None:
        self.products = list(products)
        self.sums = sums
        self.result = result
        self.classes = classes
        self.cells = cells
        self.picks = picks
        self.margins = margins
        self.close = [
            any(_is_close(margins[b][i]) for b, _ in BRANCHES) for i in range(len(classes))
        ]
        self.totals = totals
        self.by_stage = by_stage
        self.meta = dict(meta)

    # ------------------------------------------------------------------ exports
    def records(self) -> list[dict[str, Any]]:
        """One dict per class: its stage and bin, each product's figures, each branch's pick."""
        out = []
        for i, c in enumerate(self.classes):
            rec: dict[str, Any] = dict(c)
            for p in self.products:
                for field, e in self.cells[i][p]._asdict().items():
                    rec[f"{p}.{field}"] = e.estimate
                    rec[f"{p}.{field}_se"] = e.se
            for b, _ in BRANCHES:
                rec[f"{b}_pick"] = self.picks[b][i]
                rec[f"{b}_margin"] = self.margins[b][i].estimate
                rec[f"{b}_margin_se"] = self.margins[b][i].se
            rec["close"] = self.close[i]
            out.append(rec)
        return out

    def fields(self) -> list[str]:
        """The columns of :meth:`records`."""
        head = ["stage", "bin", "signal_low", "signal_high", "share", "share_se"]
        cells = [f"{p}.{f}{x}" for p in self.products for f in _Cell._fields for x in ("", "_se")]
        picks = [f"{b}{x}" for b, _ in BRANCHES for x in ("_pick", "_margin", "_margin_se")]
        return [*head, *cells, *picks, "close"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: the metadata, the class records, the totals and the stage totals."""

        def est(d):
            return {k: e._asdict() for k, e in d.items()}

        return json_ready({
            "meta": self.meta,
            "rows": self.records(),
            "totals": est(self.totals),
            "by_stage": {s: est(d) for s, d in self.by_stage.items()},
        })  # fmt: skip

    # ------------------------------------------------------------------ display
    def _parts(self) -> tuple[str, list[str], list[list[str]], list[str]]:
        m = self.meta
        title = (
            f"invlend incentives: {m['n_portfolios']} portfolios x {m['portfolio_size']} "
            f"applicants, seed {m['seed']}; transfer rate {m['transfer_rate']:.2%}, signal "
            f"noise {m['signal_noise']:g}, {m['bins']} signal bins per stage"
        )
        header = ["stage", "bin", "share"]
        for p in self.products:
            header += [f"{p} FY", f"{p} FV"]
        header += ["first-year pick", "lifetime pick"]
        rows = []
        for i, c in enumerate(self.classes):
            row = [c["stage"], str(c["bin"]), f"{c['share']:.1%}"]
            for p in self.products:
                cell = self.cells[i][p]
                row += [_pct(cell.first_year_pp), _pct(cell.fair_value_pp)]
            row += [_pick_text(self.picks[b][i], self.margins[b][i]) for b, _ in BRANCHES]
            rows.append(row)
        t = self.totals
        notes = [
            "FY: expected first-year profit per unit of principal (interest and fees received "
            "in 12 months - funding at the transfer rate - credit losses of defaults in 12 "
            "months + warrant proceeds realised in year 1); FV: fair value per unit of "
            "principal (risk neutral, every cash flow). Estimate ± standard error clustered "
            "by portfolio.",
            "picks: the product of highest expected FY (first-year branch) or FV (lifetime "
            "branch) per applicant, '-' where none is above 0; '?' marks a pick whose lead "
            f"over the next best choice is under {CLOSE_SE:g} standard errors.",
            f"book fair value per applicant: lifetime branch "
            f"{_est(t['lifetime_book'])}, first-year branch {_est(t['first_year_book'])}; "
            f"value lost {_est(t['lost'])} = destroyed {_est(t['destroyed'])} + forgone "
            f"{_est(t['forgone'])} (paired, currency units per applicant)",
        ]
        return title, header, rows, notes

    def stage_table(self) -> str:
        """The value lost per applicant of each starting stage, and its parts, as text."""
        header = ["stage", "lifetime book", "first-year book", "lost", "destroyed", "forgone",
                  "FY accepts", "LT accepts"]  # fmt: skip
        rows = []
        for name, d in [*self.by_stage.items(), ("all", self.totals)]:
            rows.append([
                name, *(_est(d[k]) for k in ("lifetime_book", "first_year_book", "lost",
                                             "destroyed", "forgone")),
                *(format_estimate(d[k].estimate, d[k].se, percent=True)
                  for k in ("accepted_first_year", "accepted_lifetime")),
            ])  # fmt: skip
        return (
            "fair value per applicant of each starting stage, currency units (paired on the "
            "same firms); accepts: share of the stage's applicants financed\n"
            + text_table(header, rows)
        )

    def plot(self, *, ax=None, **kw):
        """Fair value against first-year profit per class and product; see plot_incentives."""
        from invlend.plotting import plot_incentives

        return plot_incentives(self, ax=ax, **kw)


def _est(e: M.Estimate) -> str:
    return format_estimate(e.estimate, e.se)


def _pct(e: M.Estimate) -> str:
    return format_estimate(e.estimate, e.se, percent=True)


def _is_close(e: M.Estimate) -> bool:
    return not (math.isfinite(e.se) and abs(e.estimate) >= CLOSE_SE * e.se)


def _pick_text(pick: str | None, margin: M.Estimate) -> str:
    return ("-" if pick is None else pick) + (" ?" if _is_close(margin) else "")


def _simulate_kw(kw: dict[str, Any]) -> dict[str, Any]:
    for key, why in _REFUSED.items():
        if key in kw:
            raise ValueError(f"{key}: {why}")
    need_fair_values(kw, "a view", "its products")
    n = _checks.count("n_portfolios", kw.get("n_portfolios", 1000), low=2)
    return {**kw, "n_portfolios": n}


def _products(products: Any, signal_noise: float) -> list[Structure]:
    if isinstance(products, Structure):
        products = [products]
    if isinstance(products, str | bytes) or not isinstance(products, Sequence):
        raise TypeError(f"products: expected a list of invlend.Structure, got "
                        f"{type(products).__name__}")  # fmt: skip
    if not products:
        raise ValueError("products: give at least one candidate structure")
    out = []
    for i, s in enumerate(products):
        if not isinstance(s, Structure):
            raise TypeError(f"products[{i}]: expected an invlend.Structure, got {type(s)!r}")
        _check_product(f"products[{i}]", s)
        # Every applicant is financed; the branch decides afterwards, by class.
        out.append(s.replace(screening=Screening(acceptance_rate=1.0, signal_noise=signal_noise)))
    names = [s.name for s in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"products: names must be unique, repeated: {dupes}")
    return out


def incentives(
    scenario: Scenario,
    products: Sequence[Structure],
    *,
    bins: int = 5,
    signal_noise: float = 1.0,
    transfer_rate: float | None = None,
    **simulate_kw: Any,
) -> IncentiveView:
    r"""The book as a first-year-profit branch and a lifetime-fair-value branch would lend it.

    One run finances every applicant with every product (each product's screening is replaced
    by ``Screening(acceptance_rate=1, signal_noise=signal_noise)``: no one is turned away in
    the simulation, and due diligence costs nothing, since the branch spends it on every
    applicant whatever it decides, so it changes no decision and no difference). Applicants
    are then put in classes by what the branch sees at origination: the starting stage, and
    the bin of the signal :math:`s = q + \sigma e` among ``bins`` bins of equal probability
    under :math:`s \sim N(0, 1 + \sigma^2)`, edges :math:`\sqrt{1+\sigma^2}\,
    \Phi^{-1}(b/\mathrm{bins})`.

    For class :math:`c` and product :math:`j`, with per-portfolio sums over the class's firms,

    .. math::

        \mathrm{FV}_{cj} = \frac{\sum_p \sum_{i \in c} \mathrm{fv}_{ij}}{\sum_p n_{pc}}, \qquad
        \Pi_{cj} = \frac{\sum_p \sum_{i \in c} \pi_{1,ij}}{\sum_p n_{pc}}

    (fair value and first-year profit per applicant; per unit of principal with the principal
    in the denominator), where :math:`\mathrm{fv}` is the firm's risk-neutral PV
    (``StructureResult.fair_value``) and :math:`\pi_1` its first-year profit
    (:func:`first_year_profit`). The first-year branch picks
    :math:`S_c = \arg\max_j \Pi_{cj}` where that is above 0 (else declines), the lifetime
    branch :math:`L_c = \arg\max_j \mathrm{FV}_{cj}` where above 0. Per applicant of the book,
    with :math:`\mathrm{FV}_{c\varnothing} = 0`,

    .. math::

        \text{lost} = \sum_c w_c (\mathrm{FV}_{cL_c} - \mathrm{FV}_{cS_c})
        = \underbrace{\sum_c w_c \max(-\mathrm{FV}_{cS_c}, 0)}_{\text{destroyed}}
        + \underbrace{\sum_c w_c (\mathrm{FV}_{cL_c}
                                 - \max(\mathrm{FV}_{cS_c}, 0))}_{\text{forgone}}

    with :math:`w_c` the class's share of applicants. Picks are made on the point estimates
    and then held fixed: the standard errors are those of the books so chosen (paired, the
    same firms), not of the choice; a pick within ``CLOSE_SE`` standard errors of its
    runner-up is flagged.

    Parameters
    ----------
    scenario : Scenario
        Applicants and market; the horizon must be at least one year.
    products : sequence of Structure
        The candidate products (unique names), e.g. ``[il.pure_loan(), il.warrant_loan()]``: a
        loan with or without a warrant (living at least a year) and collateral; no equity,
        risk share or risk pool (their first-year accounting is not modelled).
    bins : int
        Signal bins per stage (default 5: quintiles).
    signal_noise : float
        Noise :math:`\sigma` of the branch's quality signal (default 1: the bank's own
        screening in the presets).
    transfer_rate : float, optional
        Annual funds-transfer-pricing rate charged on the balance in the first-year profit
        (default: ``scenario.market.discount_rate``, the rate the fair value discounts at, so
        that the two views differ in horizon and measure only).
    **simulate_kw
        Passed to :func:`invlend.simulate` (``n_portfolios``, ``portfolio_size``, ``seed``,
        ``backend``, ...); a ``seed`` is required; ``keep``, ``tail``, ``tolerance``,
        ``max_portfolios`` are refused and ``measures`` must include the risk-neutral one.

    Returns
    -------
    IncentiveView
    """
    if not isinstance(scenario, Scenario):
        raise TypeError(f"scenario: expected an invlend.Scenario, got {type(scenario)!r}")
    if scenario.horizon_years < 1.0 - 1e-12:
        raise ValueError(f"scenario.horizon_years: a first year needs at least 1 y, got "
                         f"{scenario.horizon_years:g}")  # fmt: skip
    bins = _checks.count("bins", bins, low=1, high=MAX_BINS)
    sigma = _checks.number("signal_noise", signal_noise, low=0.0, high=100.0)
    rate = scenario.market.discount_rate if transfer_rate is None else transfer_rate
    rate = _checks.number("transfer_rate", rate, low=-0.1, high=1.0)
    prods = _products(products, sigma)
    kw = _simulate_kw(simulate_kw)
    res = simulate(scenario, prods, **kw)
    return _view(res, prods, bins, sigma, rate)


def _edges(bins: int, sigma: float) -> np.ndarray:
    inner = math.sqrt(1.0 + sigma**2) * ndtri(np.arange(1, bins) / bins)
    return np.concatenate(([-math.inf], inner, [math.inf]))


def _view(res, prods, bins, sigma, rate) -> IncentiveView:
    sc = res.scenario
    n_p, size = res.n_portfolios, res.portfolio_size
    first = res[prods[0].name].outcomes
    stage0 = first.initial_stage.astype(np.int64)
    signal = first.quality + sigma * first.signal_error
    for s in prods[1:]:  # linkage groups draw the same applicants (keyed streams)
        o = res[s.name].outcomes
        if not (np.array_equal(o.initial_stage, first.initial_stage)
                and np.array_equal(o.quality, first.quality)):  # fmt: skip
            raise RuntimeError("products: the runs of the products drew different applicants")
    edges = _edges(bins, sigma)
    b = np.clip(np.searchsorted(edges, signal, side="right") - 1, 0, bins - 1)
    stages = [i for i, st in enumerate(sc.stages) if st.weight > 0.0]
    code = {(s, k): c for c, (s, k) in enumerate((s, k) for s in stages for k in range(bins))}
    n_c = len(code)
    lookup = np.full((len(sc.stages), bins), -1)
    for (s, k), c in code.items():
        lookup[s, k] = c
    cls = lookup[stage0, b]
    flat = (np.arange(n_p)[:, None] * n_c + cls).ravel()

    def by_class(x):  # (n_p, size) -> (n_p, n_c) per-portfolio class sums
        return np.bincount(flat, weights=np.asarray(x, float).ravel(), minlength=n_p * n_c
                           ).reshape(n_p, n_c)  # fmt: skip

    count = by_class(np.ones((n_p, size)))
    fv, fy, pr = {}, {}, {}
    for s in prods:
        r = res[s.name]
        fv[s.name] = by_class(r.fair_value)
        fy[s.name] = by_class(first_year_profit(res, s.name, transfer_rate=rate).profit)
        pr[s.name] = by_class(r.principal)
    names = [s.name for s in prods]

    def est(y, x) -> M.Estimate:
        v, u = M.ratio(y, x)
        note = "" if math.isfinite(v) else "no applicant in the class"
        return M.make_estimate(v, M.influence_se(u), note)

    classes, cells = [], {}
    ones = size * np.ones(n_p)
    for (s, k), c in code.items():
        share = est(count[:, c], ones)
        classes.append({
            "stage": sc.stages[s].name, "bin": k + 1, "signal_low": float(edges[k]),
            "signal_high": float(edges[k + 1]), "share": share.estimate, "share_se": share.se,
        })  # fmt: skip
        cells[c] = {
            p: _Cell(
                est(fv[p][:, c], count[:, c]),
                est(fy[p][:, c], count[:, c]),
                est(fv[p][:, c], pr[p][:, c]),
                est(fy[p][:, c], pr[p][:, c]),
            )
            for p in names
        }
    # Each branch's pick per class, on the point estimates; declining is worth 0.
    zero = np.zeros(n_p)
    per_branch = {"first_year": fy, "lifetime": fv}
    picks: dict[str, dict[int, str | None]] = {}
    margins: dict[str, dict[int, M.Estimate]] = {}
    for branch, table in per_branch.items():
        picks[branch], margins[branch] = {}, {}
        for c in range(n_c):
            if not count[:, c].sum():
                picks[branch][c] = None
                margins[branch][c] = M.make_estimate(
                    math.nan, math.nan, "no applicant in the class"
                )
                continue
            sums = {p: table[p][:, c].sum() for p in names}
            top = max(names, key=lambda p: sums[p])  # the first of equals
            best = top if sums[top] > 0.0 else None
            rest = [table[p][:, c] for p in names if p != best]
            runner = max(rest + ([] if best is None else [zero]), key=lambda y: y.sum())
            lead = (zero if best is None else table[best][:, c]) - runner
            picks[branch][c] = best
            margins[branch][c] = est(lead, count[:, c])
    totals, by_stage = _totals(res, sc, stages, code, count, fv, fy, picks, n_p, size)
    meta = {
        **run_sizes(res),
        "transfer_rate": rate,
        "signal_noise": sigma,
        "bins": bins,
        "products": names,
        "close_se": CLOSE_SE,
    }
    return IncentiveView(
        names,
        classes,
        [cells[c] for c in range(n_c)],
        {b: [picks[b][c] for c in range(n_c)] for b in picks},
        {b: [margins[b][c] for c in range(n_c)] for b in margins},
        totals,
        by_stage,
        meta,
        {
            "count": count,
            **{p: {"fair_value": fv[p], "first_year": fy[p], "principal": pr[p]} for p in names},
        },
        res,
    )


def _totals(res, sc, stages, code, count, fv, fy, picks, n_p, size):
    """Book totals per applicant (all, and by starting stage), paired on the same firms."""
    zero = np.zeros(n_p)

    def take(table, pick, c):
        return zero if pick is None else table[pick][:, c]

    def sums(cs):
        parts = {k: np.zeros(n_p) for k in ("lifetime_book", "first_year_book", "destroyed",
                 "forgone", "first_year_profit_first_year", "first_year_profit_lifetime",
                 "accepted_first_year", "accepted_lifetime")}  # fmt: skip
        for c in cs:
            s_pick, l_pick = picks["first_year"][c], picks["lifetime"][c]
            fv_s, fv_l = take(fv, s_pick, c), take(fv, l_pick, c)
            parts["lifetime_book"] += fv_l
            parts["first_year_book"] += fv_s
            # The split follows the sign of the point estimate of FV under the first-year pick.
            negative = fv_s.sum() < 0.0
            parts["destroyed"] += -fv_s if negative else zero
            parts["forgone"] += fv_l - (zero if negative else fv_s)
            parts["first_year_profit_first_year"] += take(fy, s_pick, c)
            parts["first_year_profit_lifetime"] += take(fy, l_pick, c)
            parts["accepted_first_year"] += zero if s_pick is None else count[:, c]
            parts["accepted_lifetime"] += zero if l_pick is None else count[:, c]
        parts["lost"] = parts["lifetime_book"] - parts["first_year_book"]
        return parts

    def estimates(parts, denom):
        out = {}
        for k, y in parts.items():
            v, u = M.ratio(y, denom)
            out[k] = M.make_estimate(v, M.influence_se(u))
        return out

    order = ("lifetime_book", "first_year_book", "lost", "destroyed", "forgone",
             "first_year_profit_lifetime", "first_year_profit_first_year",
             "accepted_lifetime", "accepted_first_year")  # fmt: skip
    everything = sums(range(len(code)))
    totals = estimates({k: everything[k] for k in order}, size * np.ones(n_p))
    by_stage = {}
    for s in stages:
        cs = [c for (st, _), c in code.items() if st == s]
        parts = sums(cs)
        denom = count[:, cs].sum(axis=1)
        by_stage[sc.stages[s].name] = estimates({k: parts[k] for k in order}, denom)
    return totals, by_stage
