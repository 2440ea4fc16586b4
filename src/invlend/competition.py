r"""Over-competition for mature firms: several banks courting one firm, and what it costs a bank.

Overview
--------
A 2025 article in 金融时报 warns Chinese banks against over-competing for the same mature
technology firms while early-stage firms go unserved. This module turns the warning into
numbers with three rules and two analyses.

:class:`Competition` holds the rules (every parameter with its source in the class docs and in
``docs/competition.md``). When :math:`n` banks court a firm:

* **the spread is compressed** towards a floor rate,
  :math:`r(n) = r_f + (r(1) - r_f)\, n^{-\kappa}` (a rate at or below the floor is left as it
  is); :math:`\kappa = 1` is the symmetric-Cournot limit, where the margin over marginal cost
  falls as :math:`1/n`;
* **the firm borrows from several of them**: each other courting bank also lends, with
  probability ``multi_bank_share`` :math:`s`, a loan like the bank's own, so the firm carries
  :math:`m(n) = 1 + s (n - 1)` such loans;
* **its default intensity rises with the extra debt**: by
  :math:`\exp(\eta\,(m - 1)\,\ell\, b(t))`, with :math:`\ell` the loan-to-value, :math:`b(t)`
  the outstanding fraction of each loan and :math:`\eta` a semi-elasticity of the default
  intensity to debt over value; and **recoveries are shared pari passu**: the bank's share of
  the distressed firm's assets is ``recovery_rate / m`` (its own collateral stays its own).

:func:`compete` returns the :class:`~invlend.Structure` one bank offers under these rules.
:func:`competition_curve` simulates it for several :math:`n` on the same firms (one
:func:`invlend.simulate` call: common random numbers) and reports rate, PD, LGD, expected loss,
fair value, capital and RAROC with standard errors and the paired change against the smallest
:math:`n`. :func:`crowding_out` puts a fixed capital budget behind it: the bank keeps a fixed
book of mature clients, whose capital per unit rises with :math:`n`, and lends what capital is
left to early-stage firms; it reports the early-stage lending crowded out and what the
"mature first" policy costs against a value-maximising allocation.

Example
-------
>>> import invlend as il
>>> from invlend.competition import Competition, compete
>>> s = compete(il.pure_loan(), 4, Competition())
>>> s.name, round(s.loan.rate, 6), s.loan.recovery_rate
('pure_loan_n4', 0.03375, 0.4)
>>> compete(il.pure_loan(), 1).model_dump(exclude={"name"}) == il.pure_loan().model_dump(
...     exclude={"name"})
True
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import Field, field_validator

from invlend import _checks
from invlend import capital as C
from invlend import metrics as M
from invlend._tables import (
    Document,
    Footnotes,
    Keyed,
    Printed,
    Rows,
    estimate_columns,
    estimate_fields,
    format_estimate,
    html_table,
    json_ready,
    text_table,
)
from invlend.config import Count, Fraction, InputModel, Loan, Number, Scenario, Structure
from invlend.engine import simulate
from invlend.estimation import Difference, Estimator
from invlend.plotting import plot_competition_curve
from invlend.sweep import need_fair_values, pick_stages, run_sizes, starting_stage

__all__ = [
    "CURVE_METRICS",
    "Competition",
    "CompetitionCurve",
    "CrowdingOut",
    "compete",
    "competition_curve",
    "crowding_out",
    "plot_competition_curve",
]

#: Most banks courting one firm.
MAX_BANKS = 1000
#: The numbers of banks a curve runs by default.
DEFAULT_BANKS = (1, 2, 3, 4, 6, 8)
#: The metrics of :func:`competition_curve`, in display order.
CURVE_METRICS = (
    "pd",
    "lgd",
    "expected_loss",
    "fair_value_per_principal",
    "irb_capital",
    "economic_capital",
    "raroc_irb",
    "raroc",
)
#: Most structure default-hazard multiplier (the bound of ``Linkage.default_hazard_multiplier``).
_MAX_HAZARD_MULTIPLIER = 100.0

BankCount = Annotated[Count, Field(ge=1, le=MAX_BANKS)]


class Competition(InputModel):
    r"""How the number of banks courting a firm changes the loan one bank makes to it.

    With :math:`n` banks courting the firm (:math:`n = 1`: the bank alone),

    .. math::

        r(n) = r_f + (r(1) - r_f)\, n^{-\kappa}, \qquad m(n) = 1 + s\,(n - 1),

    .. math::

        \lambda_D(n) = \lambda_D \cdot \frac{1}{T}\int_0^T e^{\eta (m - 1)\ell\, b(t)}\,dt,
        \qquad \rho(n) = \rho / m,

    with :math:`r(1)` the structure's own rate, :math:`\ell` its ``loan_to_value``,
    :math:`b(t)` the outstanding fraction of a loan (1 while interest-only, then linear to 0 at
    maturity :math:`T`) and :math:`\rho` its ``recovery_rate``. A rate at or below the floor is
    left as it is.

    Parameters
    ----------
    banks : int or dict of str to int
        Banks courting a firm, by the stage it applies in: one number for every stage, or a
        mapping ``{stage name: count}`` (a stage the mapping leaves out is courted by 1).
        Default 1 (no competition), so ``Competition()`` changes nothing until a count is
        set; ``docs/competition.md`` uses 1 for seed and early firms and up to 8 for mature
        ones [E].
    spread_elasticity : float
        :math:`\kappa`, how fast the spread over the floor falls with the number of banks.
        Default 1: symmetric Cournot competition, where the Lerner index is
        :math:`1/(n\varepsilon)` and the margin falls as :math:`1/n` [E]. The evidence on the
        sign is mixed: Petersen & Rajan (1994) find that firms borrowing from more lenders pay
        more, and Beyhaghi, Fracassi & Weitzner find rates about 7 bp higher per six more
        banks in a US county (an adverse-selection "winner's curse"); so the rule is the
        benchmark of the article's worry, not an estimate.
    floor_rate : float
        :math:`r_f`, the rate competition cannot push a loan below. Default 3.00%: the 1-year
        LPR (PBoC, 20 May 2025) [S]; competitive loans are priced lower still (Beijing's new
        corporate loans averaged 2.34% in December 2025, PBoC Beijing via 财联社 [S]), so a
        lower floor is a scenario the user may set.
    multi_bank_share : float
        :math:`s`, the probability that each other courting bank also lends the firm a loan of
        the bank's size and terms. Default 0.5 [E].
    leverage_hazard_elasticity : float
        :math:`\eta`, the semi-elasticity of the default intensity to debt over firm value.
        Default 1.42: the coefficient on total liabilities over market-valued total assets in
        the failure logit of Campbell, Hilscher & Szilagyi (2008), 12-month-ahead model [R];
        for rare events a logit coefficient is the semi-elasticity of the probability.

    Notes
    -----
    The hazard multiplier is carried by the structure's
    :attr:`~invlend.Linkage.default_hazard_multiplier`, which scales the firm's default
    intensity in every stage over the whole horizon: the other banks' loans are taken to run
    over the bank's own term, and the multiplier is the mean of
    :math:`e^{\eta (m-1)\ell b(t)}` over that term (exact for the integrated intensity of a
    constant-hazard firm over the term). For a loan alone the intensity after maturity does not
    matter; a warrant or an equity stake that lives past it sees the extra leverage to the
    horizon. :math:`m` is the expected number of loans: the extra loans' number is random
    (binomial) in fact, and by Jensen's inequality the mean multiplier understates the hazard
    slightly while :math:`\rho/m` overstates the recovery dilution slightly. Pari passu
    sharing by :math:`\rho/m` is exact for equal claims, which the like-for-like loans are.
    """

    banks: BankCount | dict[str, BankCount] = 1
    spread_elasticity: Annotated[Number, Field(ge=0.0, le=10.0)] = 1.0
    floor_rate: Annotated[Number, Field(ge=0.0, le=1.0)] = 0.030
    multi_bank_share: Fraction = 0.5
    leverage_hazard_elasticity: Annotated[Number, Field(ge=0.0, le=20.0)] = 1.42

    @field_validator("banks")
    @classmethod
    def _stage_names(cls, v: Any) -> Any:
        if isinstance(v, dict):
            for name in v:
                _checks.identifier("stage name", name)
        return v

    def banks_at(self, stage: str) -> int:
        """Banks courting a firm that applies in ``stage`` (1 where a mapping leaves it out)."""
        if isinstance(self.banks, dict):
            return self.banks.get(stage, 1)
        return self.banks

    def check_stages(self, scenario: Scenario) -> None:
        """Refuse a ``banks`` mapping that names a stage the scenario does not have."""
        if isinstance(self.banks, dict):
            names = [s.name for s in scenario.stages]
            unknown = sorted(set(self.banks) - set(names))
            if unknown:
                raise ValueError(
                    f"competition.banks: no stage {unknown[0]!r} in the scenario; stages are "
                    f"{names}"
                )

    def loans(self, n_banks: int) -> float:
        """:math:`m(n) = 1 + s(n - 1)`, the loans of the bank's size the firm carries."""
        return 1.0 + self.multi_bank_share * (n_banks - 1)

    def rate(self, rate: float, n_banks: int) -> float:
        r"""The rate :math:`r_f + (r - r_f) n^{-\kappa}`; ``rate`` itself at or below the floor."""
        if rate <= self.floor_rate or n_banks == 1:
            return rate
        return self.floor_rate + (rate - self.floor_rate) * n_banks ** (-self.spread_elasticity)

    def hazard_multiplier(self, loan: Loan, n_banks: int) -> float:
        r"""Mean of :math:`e^{\eta (m-1)\ell b(t)}` over the loan's term (1 at :math:`n = 1`).

        With interest-only years :math:`a` and maturity :math:`T`, and
        :math:`c = \eta (m-1)\ell`: :math:`[a e^c + (T - a)(e^c - 1)/c] / T`.
        """
        c = self.leverage_hazard_elasticity * (self.loans(n_banks) - 1.0) * loan.loan_to_value
        if c == 0.0:
            return 1.0
        if c > 700.0:  # beyond float64: no structure can carry it (compete refuses it)
            return math.inf
        t, a = loan.maturity_years, loan.io_years
        return (a * math.exp(c) + (t - a) * math.expm1(c) / c) / t

    def recovery_rate(self, recovery_rate: float, n_banks: int) -> float:
        """The bank's pari passu share ``recovery_rate / m`` of the distressed assets."""
        return recovery_rate / self.loans(n_banks)


def _competition(value: Any) -> Competition:
    if value is None:
        return Competition()
    if not isinstance(value, Competition):
        raise TypeError(f"competition: expected an invlend Competition, got {type(value).__name__}")
    return value


def _structure(name: str, value: Any) -> Structure:
    if not isinstance(value, Structure):
        raise TypeError(f"{name}: expected an invlend.Structure, got {type(value).__name__}")
    return value


def compete(
    structure: Structure,
    n_banks: int,
    competition: Competition | None = None,
    *,
    name: str | None = None,
) -> Structure:
    """The structure one bank offers when ``n_banks`` banks court the firm.

    Parameters
    ----------
    structure : Structure
        What the bank offers when it courts the firm alone (its rate is :math:`r(1)`).
    n_banks : int
        Banks courting the firm, the bank included (>= 1).
    competition : Competition, optional
        The rules (default ``Competition()``).
    name : str, optional
        The new structure's name (default ``f"{structure.name}_n{n_banks}"``).

    Returns
    -------
    Structure
        ``structure`` with the compressed rate :meth:`Competition.rate`, its linkage's
        ``default_hazard_multiplier`` times :meth:`Competition.hazard_multiplier` and its
        loan's ``recovery_rate`` divided by :meth:`Competition.loans`; every other term is
        unchanged (fees, collateral, warrant, screening). At ``n_banks=1`` only the name
        changes.
    """
    structure = _structure("structure", structure)
    n = _checks.count("n_banks", n_banks, low=1, high=MAX_BANKS)
    comp = _competition(competition)
    loan = structure.loan
    hazard = structure.linkage.default_hazard_multiplier * comp.hazard_multiplier(loan, n)
    if hazard > _MAX_HAZARD_MULTIPLIER:
        raise ValueError(
            f"n_banks: with {n} banks the default hazard multiplier would be {hazard:.4g}, above "
            f"{_MAX_HAZARD_MULTIPLIER:g}; lower competition.leverage_hazard_elasticity or "
            "multi_bank_share"
        )
    new_loan = loan.replace(
        rate=comp.rate(loan.rate, n), recovery_rate=comp.recovery_rate(loan.recovery_rate, n)
    )
    linkage = structure.linkage.replace(default_hazard_multiplier=hazard)
    return structure.replace(
        name=f"{structure.name}_n{n}" if name is None else name, loan=new_loan, linkage=linkage
    )


# -------------------------------------------------------------------------- shared checks


def _bank_counts(value: Any) -> list[int]:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_):
        value = [value]
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        raise TypeError(f"banks: expected a sequence of integers, got {type(value).__name__}")
    items = list(value)
    if not items:
        raise ValueError("banks: give at least one number of banks")
    out = [_checks.count(f"banks[{i}]", v, low=1, high=MAX_BANKS) for i, v in enumerate(items)]
    return sorted(set(out))


def _curve_run(scenario, structure, stage, banks, comp, simulate_kw):
    """Simulate ``compete(structure, n)`` for every ``n`` on firms that start in ``stage``."""
    k = pick_stages(scenario, stage, "stage")[0]
    stage_name = scenario.stages[k].name
    structs = [compete(structure, n, comp) for n in banks]
    res = simulate(starting_stage(scenario, k), structs, **simulate_kw)
    return stage_name, structs, res, Estimator(res)


# -------------------------------------------------------------------------- the curve


class CompetitionCurve(Keyed, Rows, Document):
    """Risk and value of one bank's loan to firms of one stage, by the number of banks courting.

    Index as ``curve[n][metric]`` for an :class:`~invlend.metrics.Estimate` of each of
    :data:`CURVE_METRICS`; ``curve[n]["fair_value_change"]`` and
    ``curve[n]["irb_capital_change"]`` are paired :class:`~invlend.results.Difference` s
    against the smallest ``n`` (common random numbers). ``print`` it for aligned text;
    :meth:`records`, ``to_frame()``, ``to_csv(path)``, ``to_json()`` export it and
    :meth:`plot` draws it.

    Attributes
    ----------
    banks : list of int
        The numbers of banks, one row each, ascending.
    terms : dict
        ``terms[n]``: the competed structure's ``structure`` name, ``loans`` :math:`m`,
        ``rate``, ``hazard_multiplier`` and ``recovery_rate``.
    meta : dict
        The stage, the structure, the competition rules, the baseline ``n``, the run's sizes
        and seed and ``n_boot``.
    notes : list of str
        The run's notes (what its size leaves rough).
    """

    _missing = "no number of banks {key!r}"
    #: The paired changes against the baseline, and the metric each is of.
    CHANGES: ClassVar[dict[str, str]] = {
        "fair_value_change": "fair_value_per_principal",
        "irb_capital_change": "irb_capital",
    }

    def __init__(self, data: dict, terms: dict, meta: dict, notes: list[str]) -> None:
        self._data = data
        self.banks = list(data)
        self.terms = terms
        self.meta = dict(meta)
        self.notes = list(notes)

    def records(self) -> list[dict[str, Any]]:
        """One dict per number of banks: the terms, then each estimate with its SE and CI."""
        out = []
        for n, row in self._data.items():
            rec: dict[str, Any] = {"n_banks": n, **self.terms[n]}
            for q, e in row.items():
                rec.update(estimate_columns(q, e))
            out.append(rec)
        return out

    def fields(self) -> list[str]:
        """The columns of :meth:`records`."""
        cols = ["n_banks", "structure", "loans", "rate", "hazard_multiplier", "recovery_rate"]
        for q in (*CURVE_METRICS, *self.CHANGES):
            z = ("_z",) if q in self.CHANGES else ()
            cols += estimate_fields(q, z=bool(z))
        return cols

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: the metadata, the notes and the records."""
        return {
            "meta": json_ready(self.meta),
            "notes": self.notes,
            "rows": json_ready(self.records()),
        }

    def _parts(self) -> tuple[str, list[tuple[list[str], list[list[str]]]], list[str]]:
        m = self.meta
        title = (
            f"invlend competition curve: {m['structure']} on firms starting in {m['stage']!r}, "
            f"{m['n_portfolios']} portfolios x {m['portfolio_size']} firms, seed {m['seed']} "
            "(estimate ± standard error; common random numbers)"
        )
        marks = Footnotes()
        diff = Footnotes(difference=True)
        base = m["baseline"]
        risk_head = ["banks", "loans", "rate", "hazard x", "recovery", "pd", "lgd", "expected loss"]
        value_head = [
            "banks",
            "fair value",
            f"vs n={base}",
            "IRB capital",
            f"vs n={base}",
            "econ. capital",
            "RAROC (IRB)",
            "RAROC",
        ]
        risk, value = [], []
        for n, row in self._data.items():
            t = self.terms[n]
            risk.append(
                [
                    str(n),
                    f"{t['loans']:.3g}",
                    f"{100 * t['rate']:.3f}%",
                    f"{t['hazard_multiplier']:.4f}",
                    f"{t['recovery_rate']:.4g}",
                    *(marks.cell(q, row[q]) for q in ("pd", "lgd", "expected_loss")),
                ]
            )
            value.append(
                [
                    str(n),
                    marks.cell("fair_value_per_principal", row["fair_value_per_principal"]),
                    ""
                    if n == base
                    else diff.cell("fair_value_per_principal", row["fair_value_change"]),
                    marks.cell("irb_capital", row["irb_capital"]),
                    "" if n == base else diff.cell("irb_capital", row["irb_capital_change"]),
                    *(marks.cell(q, row[q]) for q in ("economic_capital", "raroc_irb", "raroc")),
                ]
            )
        notes = [
            f"rules: floor {100 * m['floor_rate']:.2f}%, spread elasticity "
            f"{m['spread_elasticity']:g}, multi-bank share {m['multi_bank_share']:g}, leverage "
            f"hazard elasticity {m['leverage_hazard_elasticity']:g}; loans m = 1 + share (n - 1)",
            f"vs n={base}: paired difference from the {base}-bank row, with its z-score",
            *marks.lines(),
            *diff.lines(),
            *self.notes,
        ]
        return title, [(risk_head, risk), (value_head, value)], notes

    def __str__(self) -> str:
        title, tables, notes = self._parts()
        body = "\n\n".join(text_table(h, r) for h, r in tables)
        return f"{title}\n{body}" + "".join(f"\n{x}" for x in notes)

    def __repr__(self) -> str:
        m = self.meta
        return (
            f"CompetitionCurve: {m['structure']} on {m['stage']!r} firms, banks {self.banks}; "
            "print it for the table"
        )

    def _repr_html_(self) -> str:
        title, tables, notes = self._parts()
        (h1, r1), (h2, r2) = tables
        return html_table(h1, r1, title=title) + html_table(h2, r2, notes=notes)

    def curve(self, metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(n, estimate, se)`` of one of :data:`CURVE_METRICS` along the number of banks."""
        metric = _checks.metric("metric", metric, CURVE_METRICS)
        est = np.array([self._data[n][metric].estimate for n in self.banks])
        se = np.array([self._data[n][metric].se for n in self.banks])
        return np.array(self.banks, float), est, se

    def plot(self, **kw: Any):
        """Fair value and capital against the number of banks (:func:`plot_competition_curve`)."""
        return plot_competition_curve(self, **kw)


def competition_curve(
    scenario: Scenario,
    structure: Structure,
    *,
    stage: str | int = "mature",
    banks: Sequence[int] = DEFAULT_BANKS,
    competition: Competition | None = None,
    n_boot: int = 200,
    **simulate_kw: Any,
) -> CompetitionCurve:
    """Risk, value and capital of one bank's loan as the number of banks courting grows.

    Parameters
    ----------
    scenario : Scenario
        The applicants and the market; a copy whose applicants all start in ``stage`` is
        simulated (:func:`invlend.sweep.starting_stage`).
    structure : Structure
        What the bank offers a firm it courts alone; :func:`compete` gives each ``n``'s.
    stage : str or int
        The starting stage, by name or position (default ``"mature"``).
    banks : sequence of int
        Numbers of banks courting, each >= 1 (default 1, 2, 3, 4, 6, 8); sorted, duplicates
        dropped. The smallest is the baseline of the paired changes.
    competition : Competition, optional
        The rules (default ``Competition()``); its ``banks`` field is not used here.
    n_boot : int
        Bootstrap replicates for the tail metrics (``economic_capital``, ``raroc``; 0 leaves
        their standard errors NaN, with the reason).
    **simulate_kw
        Passed to :func:`invlend.simulate` (``n_portfolios``, ``portfolio_size``, ``seed``,
        ...); a ``seed`` is required and the risk-neutral measure.

    Returns
    -------
    CompetitionCurve
        One row per number of banks. Every structure runs in one simulation, so the firms
        are the same for every ``n`` (the hazard multiplier changes the linkage, so events
        are drawn again from the same keyed streams) and the changes are paired.
    """
    structure = _structure("structure", structure)
    counts = _bank_counts(banks)
    comp = _competition(competition)
    n_boot = _checks.count("n_boot", n_boot, low=0)
    need_fair_values(simulate_kw, "a competition curve", "its numbers of banks")
    comp.check_stages(scenario)
    stage_name, structs, res, est = _curve_run(
        scenario, structure, stage, counts, comp, simulate_kw
    )
    base = structs[0].name
    summ = est.summary(n_boot, C.DEFAULT_HURDLE, M.IRB_SALES_EUR_M)
    cmp = est.compare(base, n_boot, C.DEFAULT_HURDLE, M.IRB_SALES_EUR_M) if len(structs) > 1 else {}
    data, terms = {}, {}
    for n, s in zip(counts, structs, strict=True):
        row = {q: summ[s.name][q] for q in CURVE_METRICS}
        for q, metric in CompetitionCurve.CHANGES.items():
            row[q] = (
                cmp[s.name][metric]
                if s.name != base
                else Difference(0.0, 0.0, 0.0, 0.0, math.nan, "")
            )
        data[n] = row
        terms[n] = {
            "structure": s.name,
            "loans": comp.loans(n),
            "rate": s.loan.rate,
            "hazard_multiplier": s.linkage.default_hazard_multiplier,
            "recovery_rate": s.loan.recovery_rate,
        }
    meta = {
        "stage": stage_name,
        "structure": structure.name,
        "baseline": counts[0],
        **comp.model_dump(exclude={"banks"}),
        "n_boot": n_boot,
        **run_sizes(res),
    }
    return CompetitionCurve(data, terms, meta, [f"note: {x}" for x in summ.notes])


# -------------------------------------------------------------------------- crowding out

#: The quantities of :class:`CrowdingOut`, each with its header and what it is.
CROWDING_QUANTITIES = {
    "mature_capital_per_unit": ("capital/unit", "capital per unit of mature principal"),
    "mature_lent": (
        "mature lent",
        "mature principal funded (mature first: all the budget reaches)",
    ),
    "mature_capital": ("mature capital", "capital tied up by the mature book (mature first)"),
    "early_principal": ("early lent", "early-stage principal funded with the rest (mature first)"),
    "book_value": ("book value", "fair value of mature + early books (mature first)"),
    "book_value_change": ("vs n={baseline}", "book_value minus its value at the baseline n"),
    "max_mature_principal": ("max: mature", "mature principal of the value-maximising allocation"),
    "max_early_principal": ("max: early", "early principal of the value-maximising allocation"),
    "max_book_value": ("max: value", "book value of the value-maximising allocation"),
    "policy_cost": ("cost of mature first", "max_book_value minus book_value"),
}


class CrowdingOut(Printed, Keyed, Rows, Document):
    """What a fixed capital budget funds when the mature book faces more competing banks.

    Index as ``table[n][quantity]`` for an :class:`~invlend.metrics.Estimate` of each
    quantity of :data:`CROWDING_QUANTITIES` (``"book_value_change"`` is a paired
    :class:`~invlend.results.Difference`). Currency quantities are in the scenario's units
    (the built-in scenario's are millions). ``print`` it for text; :meth:`records`,
    ``to_frame()``, ``to_csv(path)`` and ``to_json()`` export it.

    Attributes
    ----------
    banks : list of int
        The numbers of banks courting the mature firms, one row each.
    early : dict
        The early-stage book: ``fair_value`` and ``capital`` per unit lent (Estimates), its
        ``structure`` name and ``n_banks``.
    meta : dict
        The budget, the mature principal, the early demand, the capital measure, the stages,
        the rules and the run's sizes and seed.
    notes : list of str
        The runs' notes.
    """

    _missing = "no number of banks {key!r}"

    def __init__(self, data: dict, early: dict, meta: dict, notes: list[str]) -> None:
        self._data = data
        self.banks = list(data)
        self.early = early
        self.meta = dict(meta)
        self.notes = list(notes)

    def records(self) -> list[dict[str, Any]]:
        """One dict per number of banks: each quantity with its SE, CI (and z) and note."""
        out = []
        for n, row in self._data.items():
            rec: dict[str, Any] = {"n_banks": n}
            for q, e in row.items():
                rec.update(estimate_columns(q, e))
            out.append(rec)
        return out

    def fields(self) -> list[str]:
        """The columns of :meth:`records`."""
        cols = ["n_banks"]
        for q in CROWDING_QUANTITIES:
            z = ("_z",) if q == "book_value_change" else ()
            cols += estimate_fields(q, z=bool(z))
        return cols

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: the metadata, the early book, the notes and the records."""
        early = {
            k: (v._asdict() if isinstance(v, M.Estimate) else v) for k, v in self.early.items()
        }
        return {
            "meta": json_ready(self.meta),
            "early": json_ready(early),
            "notes": self.notes,
            "rows": json_ready(self.records()),
        }

    def _parts(self) -> tuple[str, list[str], list[list[str]], list[str]]:
        m = self.meta
        title = (
            f"invlend crowding-out: capital budget {m['capital_budget']:g} ({m['capital']}), "
            f"mature principal {m['mature_principal']:g} of {m['structure']} on {m['stage']!r}, "
            f"early stages {', '.join(m['early_stages'])} with {self.early['structure']}; "
            f"{m['n_portfolios']} portfolios x {m['portfolio_size']} firms, seed {m['seed']}"
        )
        marks = Footnotes(lambda q, x: "n/a" if not math.isfinite(x) else f"{x:.4g}")
        diff = Footnotes(lambda q, x: "n/a" if not math.isfinite(x) else f"{x:+.4g}")
        header = [v[0].format(**m) for v in CROWDING_QUANTITIES.values()]
        rows = []
        for n, row in self._data.items():
            cells = [str(n)]
            for q, e in row.items():
                if q == "mature_capital_per_unit":
                    cells.append(
                        format_estimate(e.estimate, e.se, percent=True) + marks.mark(e.note)
                    )
                elif q == "book_value_change":
                    cells.append("" if n == m["baseline"] else _value_cell(e, diff, sign=True))
                else:
                    cells.append(_value_cell(e, marks))
            rows.append(cells)
        fe, ke = self.early["fair_value"], self.early["capital"]
        notes = [
            f"early book: fair value {format_estimate(fe.estimate, fe.se, percent=True)} and "
            f"{m['capital']} {format_estimate(ke.estimate, ke.se, percent=True)} per unit lent "
            f"({self.early['n_banks']} bank(s) courting); early demand "
            + ("unlimited" if m["early_demand"] is None else f"{m['early_demand']:g}"),
            "mature first: the mature principal is kept (as far as the budget reaches), the rest "
            "of the budget funds early-stage loans; max: the book with the higher fair value per "
            "unit of capital is funded first, and a book with a negative fair value not at all",
            "standard errors: delta method on the portfolio influence values of both runs "
            "(allocation regime held at the estimate)"
            + (
                "; tail capital: smooth and bootstrap parts added (an upper bound)"
                if m["capital"] != "irb_capital"
                else ""
            ),
            *(f"{v[0].format(**m)}: {v[1].format(**m)}" for v in CROWDING_QUANTITIES.values()),
            *marks.lines(),
            *diff.lines(),
            *self.notes,
        ]
        return title, ["banks", *header], rows, notes

    def __repr__(self) -> str:
        m = self.meta
        return (
            f"CrowdingOut: budget {m['capital_budget']:g}, mature principal "
            f"{m['mature_principal']:g}, banks {self.banks}; print it for the table"
        )


def _value_cell(e, marks: Footnotes, sign: bool = False) -> str:
    text = format_estimate(e.estimate, e.se, sign=sign)
    if isinstance(e, Difference) and math.isfinite(e.z):
        text += f" z={e.z:+.1f}"
    return text + marks.mark(e.note)


def _early_scenario(scenario: Scenario, stages: list[int]) -> Scenario:
    """A copy whose applicants start in ``stages``, in proportion to their weights there."""
    total = math.fsum(scenario.stages[k].weight for k in stages)
    if total == 0.0:  # every early stage at weight 0: split evenly
        weights = {k: 1.0 / len(stages) for k in stages}
    else:
        weights = {k: scenario.stages[k].weight / total for k in stages}
    rows = [
        {**s.model_dump(), "weight": weights.get(i, 0.0)} for i, s in enumerate(scenario.stages)
    ]
    return scenario.replace(stages=rows)


def _mature_first(theta, budget, mature, demand):
    """(mature principal, early principal) when the mature book is funded first."""
    _, k_m, _, k_e = theta
    if mature * k_m >= budget:  # the mature book alone takes the whole budget
        return budget / k_m, 0.0
    return mature, min(demand, (budget - mature * k_m) / k_e)


def _value_max(theta, budget, mature, demand):
    """(mature principal, early principal) funding the higher fair value per capital first."""
    f_m, k_m, f_e, k_e = theta
    books = [(f_m / k_m, 0, f_m, k_m, mature), (f_e / k_e, 1, f_e, k_e, demand)]
    books.sort(key=lambda b: (-b[0], b[1]))  # ties: the mature book first
    lent, left = [0.0, 0.0], budget
    for _, i, f, k, cap in books:
        if f > 0.0:
            lent[i] = min(cap, left / k)
            left -= lent[i] * k
    return lent[0], lent[1]


def _quantities(theta, budget, mature, demand) -> dict[str, float]:
    f_m, k_m, f_e, _ = theta
    m1, e1 = _mature_first(theta, budget, mature, demand)
    m2, e2 = _value_max(theta, budget, mature, demand)
    v1, v2 = m1 * f_m + e1 * f_e, m2 * f_m + e2 * f_e
    return {
        "mature_capital_per_unit": k_m,
        "mature_lent": m1,
        "mature_capital": m1 * k_m,
        "early_principal": e1,
        "book_value": v1,
        "max_mature_principal": m2,
        "max_early_principal": e2,
        "max_book_value": v2,
        "policy_cost": v2 - v1,
    }


def _gradient(fun: Callable, theta: np.ndarray) -> dict[str, np.ndarray]:
    """Central-difference gradient of each quantity of ``fun`` in the four estimates."""
    grads: dict[str, np.ndarray] = {}
    for i in range(theta.size):
        h = 1e-6 * max(abs(theta[i]), 1e-4)
        up, down = theta.copy(), theta.copy()
        up[i] += h
        down[i] -= h
        hi, lo = fun(up), fun(down)
        for q in hi:
            grads.setdefault(q, np.zeros(theta.size))[i] = (hi[q] - lo[q]) / (2 * h)
    return grads


class _Parts:
    """The four estimates behind a row and their per-portfolio variation, for the delta method.

    ``u`` holds influence values (fair values, and an IRB capital), ``r`` bootstrap replicates
    (a tail capital), each a row per estimate; ``smooth`` says which rows are which.
    """

    def __init__(self, theta, influence, replicates, smooth):
        self.theta = np.array(theta, float)
        self.u = influence  # (4, n_portfolios), rows of tail estimates zero
        self.r = replicates  # (4, n_boot) or None, rows of smooth estimates zero
        self.smooth = smooth

    def se(self, g: np.ndarray, other: _Parts | None = None, g_other=None) -> float:
        u = g @ self.u - (0.0 if other is None else g_other @ other.u)
        se = M.influence_se(u)
        if self.r is not None and not all(self.smooth):
            r = g @ self.r - (0.0 if other is None else g_other @ other.r)
            se_t = float(np.std(r, ddof=1)) if r.size > 1 and np.all(np.isfinite(r)) else math.nan
            se = se + se_t  # no cross term is available: the sum bounds the true SE
        return se


def _estimates_of(est: Estimator, name: str, capital: str, n_boot: int):
    smooth, tail, _ = est.estimates(n_boot, C.DEFAULT_HURDLE, M.IRB_SALES_EUR_M)
    f, u_f = smooth[name]["fair_value_per_principal"]
    if M.is_tail(capital):
        k, reps = tail[name][capital]
        return (f, u_f, True), (k, reps, False)
    k, u_k = smooth[name][capital]
    return (f, u_f, True), (k, u_k, True)


def crowding_out(
    scenario: Scenario,
    structure: Structure,
    *,
    capital_budget: float,
    mature_principal: float,
    banks: Sequence[int] = DEFAULT_BANKS,
    stage: str | int = "mature",
    early_stages: Sequence[str | int] = ("seed", "early"),
    early_structure: Structure | None = None,
    early_demand: float | None = None,
    capital: str = "irb_capital",
    competition: Competition | None = None,
    n_boot: int = 200,
    **simulate_kw: Any,
) -> CrowdingOut:
    r"""Early-stage lending crowded out of a fixed capital budget by competition for mature firms.

    The bank holds ``capital_budget`` of capital (currency units). It lends
    ``mature_principal`` to firms that start in ``stage``, offering :func:`compete` of
    ``structure`` with ``n`` banks courting, and lends to firms that start in
    ``early_stages`` (their applicants pooled in proportion to the stages' weights) with
    ``early_structure`` competed at the banks its :class:`Competition` gives those stages
    (they must agree). With :math:`f` the fair value and :math:`k` the capital per unit lent
    of each book (estimates of two simulations with the same seed and sizes), and
    :math:`B, M, D` the budget, the mature principal and the early demand:

    * **mature first** (the policy the article warns of): mature lent
      :math:`M_1 = \min(M, B/k_m)`, early lent :math:`E_1 = \min(D, (B - M_1 k_m)/k_e)`;
    * **value maximising**: the book with the higher :math:`f/k` is funded first, up to its
      cap (:math:`M`, or :math:`D`), then the other with what is left; a book whose
      :math:`f \le 0` is not funded (ties: mature first);

    and the value of a book is :math:`M_i f_m + E_i f_e`. The cost of "mature first" is the
    second value minus the first.

    Parameters
    ----------
    scenario : Scenario
        The applicants and the market.
    structure : Structure
        The mature firms' loan when the bank courts them alone.
    capital_budget : float
        Capital the bank has for both books, currency units (> 0).
    mature_principal : float
        Principal the bank keeps lent to its mature clients, currency units (> 0).
    banks : sequence of int
        Numbers of banks courting the mature firms (default 1, 2, 3, 4, 6, 8); the smallest
        is the baseline of ``book_value_change``.
    stage : str or int
        The mature stage (default ``"mature"``).
    early_stages : sequence of str or int
        The early stages (default seed and early); they must not include ``stage``.
    early_structure : Structure, optional
        The early-stage loan (default ``structure``).
    early_demand : float, optional
        Most early-stage principal the bank can place (default: no limit).
    capital : {"irb_capital", "economic_capital", "credit_capital"}
        The capital per unit lent that the budget holds (default the Basel IRB requirement,
        which binds a bank's balance sheet).
    competition : Competition, optional
        The rules (default ``Competition()``); its ``banks`` gives the early stages' count.
    n_boot : int
        Bootstrap replicates for a tail ``capital`` (the IRB capital needs none).
    **simulate_kw
        Passed to :func:`invlend.simulate` for both runs; a ``seed`` is required.
        ``tolerance``, ``max_portfolios`` and ``tail`` are refused: both runs must cover the
        same portfolios.

    Returns
    -------
    CrowdingOut
        One row per number of banks, every quantity with its standard error.

    Notes
    -----
    Standard errors by the delta method: every quantity is a function
    :math:`g(f_m, k_m, f_e, k_e)`, differentiated numerically at the estimates (the
    allocation's binding constraints held as they are there), and its influence value per
    portfolio is :math:`\nabla g \cdot (u_{f_m}, u_{k_m}, u_{f_e}, u_{k_e})`. The two runs use
    the same seed and sizes, so portfolio :math:`p` of one shares its market path with
    portfolio :math:`p` of the other; summing the influence values portfolio by portfolio
    accounts for that dependence exactly. A tail capital has bootstrap replicates, not
    influence values: its part of the error is added to the smooth part's (an upper bound).
    """
    structure = _structure("structure", structure)
    early_structure = (
        structure if early_structure is None else _structure("early_structure", early_structure)
    )
    budget = _checks.number("capital_budget", capital_budget, low=0.0, low_open=True)
    mature = _checks.number("mature_principal", mature_principal, low=0.0, low_open=True)
    demand = (
        math.inf if early_demand is None else _checks.number("early_demand", early_demand, low=0.0)
    )
    capital = _checks.metric("capital", capital, M.CAPITAL_METRICS)
    counts = _bank_counts(banks)
    comp = _competition(competition)
    n_boot = _checks.count("n_boot", n_boot, low=0)
    for key in ("tolerance", "max_portfolios", "tail"):
        if simulate_kw.get(key) is not None:
            raise ValueError(
                f"{key}: crowding_out needs both runs on the same portfolios; run a fixed "
                "n_portfolios with plain sampling"
            )
    need_fair_values(simulate_kw, "crowding_out", "its numbers of banks")
    comp.check_stages(scenario)
    mature_k = pick_stages(scenario, stage, "stage")[0]
    early_k = pick_stages(scenario, early_stages, "early_stages")
    if mature_k in early_k:
        raise ValueError(
            f"early_stages: the mature stage {scenario.stages[mature_k].name!r} cannot be an "
            "early stage too"
        )
    early_names = [scenario.stages[k].name for k in early_k]
    n_early = {comp.banks_at(s) for s in early_names}
    if len(n_early) > 1:
        raise ValueError(
            f"competition.banks: the early stages {early_names} must be courted by one number of "
            f"banks, got {sorted(n_early)}"
        )
    n_e = n_early.pop()

    stage_name, structs, res, est = _curve_run(
        scenario, structure, mature_k, counts, comp, simulate_kw
    )
    early_s = compete(early_structure, n_e, comp, name=f"early_{early_structure.name}"[:64])
    res_e = simulate(_early_scenario(scenario, early_k), [early_s], **simulate_kw)
    est_e = Estimator(res_e)
    (f_e, u_fe, _), (k_e, v_ke, smooth_ke) = _estimates_of(est_e, early_s.name, capital, n_boot)
    if not (math.isfinite(k_e) and k_e > 0.0):
        raise ValueError(
            f"capital: the early book's {capital} is {k_e:g}; a positive capital per unit is "
            "needed (more portfolios, or n_boot > 0 for a tail capital)"
        )

    n_port = res.run.n_portfolios
    zeros = np.zeros(n_port)
    parts = {}
    for n, s in zip(counts, structs, strict=True):
        (f_m, u_fm, _), (k_m, v_km, smooth_km) = _estimates_of(est, s.name, capital, n_boot)
        if not (math.isfinite(k_m) and k_m > 0.0):
            raise ValueError(
                f"capital: the mature book's {capital} at n={n} is {k_m:g}; a "
                "positive capital per unit is needed"
            )
        smooth = (True, smooth_km, True, smooth_ke)
        u = np.vstack([u_fm, v_km if smooth_km else zeros, u_fe, v_ke if smooth_ke else zeros])
        r = None
        if not smooth_km:
            b = v_km.size
            r = np.vstack([np.zeros(b), v_km, np.zeros(b), v_ke])
        parts[n] = _Parts((f_m, k_m, f_e, k_e), u, r, smooth)

    def fun(theta):
        return _quantities(theta, budget, mature, demand)

    base = counts[0]
    g_base = _gradient(fun, parts[base].theta)
    data = {}
    for n in counts:
        p = parts[n]
        values, grads = fun(p.theta), _gradient(fun, p.theta)
        row = {}
        for q in CROWDING_QUANTITIES:
            if q == "book_value_change":
                d = values["book_value"] - fun(parts[base].theta)["book_value"]
                se = p.se(grads["book_value"], parts[base], g_base["book_value"])
                if n == base:
                    d, se = 0.0, 0.0
                e = M.make_estimate(d, se)
                z = d / se if se > 0 and math.isfinite(se) else math.nan
                row[q] = Difference(e.estimate, e.se, e.ci_low, e.ci_high, z, "")
            else:
                se = p.se(grads[q])
                note = "" if math.isfinite(se) else f"n_boot={n_boot}: no bootstrap replicates"
                row[q] = M.make_estimate(values[q], se, note)
        data[n] = row
    early = {
        "structure": early_s.name,
        "n_banks": n_e,
        "fair_value": M.make_estimate(f_e, M.influence_se(u_fe)),
        "capital": M.make_estimate(
            k_e,
            M.influence_se(v_ke)
            if smooth_ke
            else (float(np.std(v_ke, ddof=1)) if v_ke.size > 1 else math.nan),
        ),
    }
    meta = {
        "capital_budget": budget,
        "mature_principal": mature,
        "early_demand": None if math.isinf(demand) else demand,
        "capital": capital,
        "stage": stage_name,
        "early_stages": early_names,
        "structure": structure.name,
        "baseline": base,
        **comp.model_dump(exclude={"banks"}),
        "n_boot": n_boot,
        **run_sizes(res),
    }
    # The runs' notes; the one on rough tail metrics only where the budget is a tail capital.
    notes = [
        f"note: {x}"
        for e in (est, est_e)
        for x in e.summary(n_boot, C.DEFAULT_HURDLE, M.IRB_SALES_EUR_M).notes
        if M.is_tail(capital) or "99.9%" not in x
    ]
    return CrowdingOut(data, early, meta, list(dict.fromkeys(notes)))
