r"""A lifecycle-matched product menu: the best structure and terms for each starting stage.

Overview
--------
:func:`product_menu` answers "what should the bank offer a firm that applies at this stage?"
from a grid of candidate structures the user gives. For each starting stage it simulates every
candidate on the same applicants (one run on a copy of the scenario whose applicants all start
there, :func:`invlend.sweep.starting_stage`: common random numbers), estimates the objective
and the constrained metrics with their clustered standard errors, and

* keeps the candidates that meet the constraints on their point estimates (a price cap on
  the borrower's all-in cost, a loss budget on ``expected_loss``, a capital budget on
  ``economic_capital`` or ``irb_capital``, a minimum ``acceptance_rate``), flagging a
  constraint as *marginal* where its bound lies within 1.96 standard errors of the estimate;
* offers the feasible candidate with the highest objective, or declines the stage when even
  that one adds no value (objective below its zero: 0 for a fair value or an EVA, the hurdle
  rate for a RAROC: declining lends nothing, risks nothing and is worth 0);
* says which choices are statistically distinguishable: for every other feasible candidate,
  the paired difference from the chosen one with its standard error on common random numbers
  (``res.compare``) and its z-score, and the chosen one against declining. A candidate is
  *tied* with the chosen one when its one-sided z-score is below the Bonferroni critical value
  :math:`z_{1-\alpha/m}` over the :math:`m` comparisons of the stage (multiple comparisons
  with the best, Hsu 1981): the tied set contains the best candidate with probability at least
  :math:`1-\alpha` (asymptotically), so a menu entry whose tied set has one name is a choice the
  simulation has made, and one with several is a choice it has not.

:func:`term_grid` builds a candidate grid from a base structure and the values of some of its
terms (dotted paths as in :func:`invlend.sweep`).

Why a price cap
---------------
Firm value does not depend on how the firm is financed, so a higher rate, a larger fee or a
larger warrant is value the firm hands to the bank: with no limit on what a borrower pays,
the bank's best offer is always the dearest candidate, at every stage. What disciplines the
terms is the borrower's alternative (another bank, a VC round, no loan). ``price_cap`` states
it as the borrower's **all-in cost**, :func:`borrower_cost`: the fair value of everything the
bank takes from the firm (interest, fees, principal, recoveries, collateral, warrant and equity
proceeds, risk sharing; the screening cost is the bank's own) per unit-year of principal
outstanding,

.. math::

    c = \frac{\sum_p (\mathrm{FV}_p - \mathrm{PV}^{\mathrm{screening}}_p)}
             {\sum_p \mathrm{exposure}_p},

an annual spread over a fairly priced loan (0 for a loan priced at its fair rate; a warrant
worth 50 bp a year adds 0.5%). Under a cap the menu asks the question a bank faces: at the
price the market allows, which structure -- and which partner, screening and collateral --
leaves the bank the most value per applicant, or the best return on its capital?

Example
-------
>>> import invlend as il
>>> grid = il.term_grid(il.warrant_loan(), {"loan.rate": [0.04, 0.06]})
>>> [s.name for s in grid]
['warrant_loan-rate0.04', 'warrant_loan-rate0.06']
>>> menu = il.product_menu(il.Scenario.default(), [il.pure_loan(), *grid], stages=["mature"],
...                        n_portfolios=40, portfolio_size=20, seed=1, n_boot=0)
>>> menu["mature"].offer in {"pure_loan", *(s.name for s in grid), None}
True
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from scipy.stats import norm

from invlend import _checks
from invlend import capital as C
from invlend import metrics as M
from invlend._sim import layout as L
from invlend._tables import (
    Document,
    Keyed,
    Printed,
    Rows,
    format_estimate,
    json_ready,
    text_table,
)
from invlend.config import Scenario, Structure
from invlend.engine import simulate
from invlend.estimation import Difference
from invlend.structures import structure_list
from invlend.sweep import need_fair_values, pick_stages, run_sizes, set_term, starting_stage

__all__ = [
    "BORROWER_COST",
    "OBJECTIVES",
    "MenuEntry",
    "ProductMenu",
    "borrower_cost",
    "product_menu",
    "term_grid",
]  # fmt: skip

#: Objectives a menu can maximise, and what each is measured against (declining is worth
#: this): 0 for values, the hurdle rate for a RAROC.
OBJECTIVES = {
    "fair_value_per_applicant": "zero",
    "fair_value_per_principal": "zero",
    "eva": "zero",
    "eva_irb": "zero",
    "raroc": "hurdle",
    "raroc_irb": "hurdle",
}
#: The metric of a price cap: the borrower's all-in cost per year (:func:`borrower_cost`).
BORROWER_COST = "borrower_cost"
#: Fewest bootstrap replicates for a tail objective or a tail constraint's standard error.
MIN_BOOT = 20
#: Most candidates of one menu (each is a structure evaluated for every stage).
MAX_CANDIDATES = 200


class Constraint(NamedTuple):
    """One constraint of a menu: ``metric`` at most (``"<="``) or at least (``">="``) ``bound``."""

    name: str  # the argument of product_menu that set it
    metric: str
    op: str
    bound: float

    def met(self, x: float) -> bool:
        """Whether the estimate ``x`` meets the bound (a NaN does not)."""
        return bool(x <= self.bound) if self.op == "<=" else bool(x >= self.bound)

    def __str__(self) -> str:
        scale = 100.0 if M.is_rate(self.metric) else 1.0
        unit = "%" if scale == 100.0 else ""
        return f"{self.metric} {self.op} {scale * self.bound:g}{unit}"


class MenuEntry(NamedTuple):
    """The menu's choice for one starting stage.

    ``offer`` is the chosen candidate's name, or ``None`` where the stage is declined (no
    feasible candidate, or none whose objective beats its zero). ``objective`` is the offer's
    estimate (of the zero, with SE 0, where declined). ``tied`` lists the options not
    distinguishable from the offer (the offer first; ``"decline"`` among them where the offer
    is not distinguishably better than lending nothing). ``runner_up`` and ``margin`` are the
    next-best feasible option and the paired difference offer minus runner-up;
    ``z_critical`` the one-sided z-score a gap must reach to count as distinguishable
    (Bonferroni over the stage's comparisons).
    """

    stage: str
    offer: str | None
    objective: M.Estimate
    tied: tuple[str, ...]
    runner_up: str | None
    margin: Difference | None
    infeasible: tuple[str, ...]
    marginal: tuple[str, ...]
    z_critical: float

    @property
    def distinguishable(self) -> bool:
        """Whether the simulation has told the offer apart from every other option."""
        return len(self.tied) == 1


def _step(values: Sequence[float]) -> str:
    return ",".join(f"{v:g}" for v in values)


def term_grid(base: Structure, terms: Mapping[str, Sequence[float]]) -> list[Structure]:
    """Every combination of the given term values on a base structure, as named candidates.

    Parameters
    ----------
    base : Structure
        The structure whose terms vary (a missing component on a path is created with its
        defaults, as in :func:`invlend.sweep`: ``"warrant.coverage"`` adds a warrant to a
        pure loan).
    terms : mapping of str to sequence of float
        Dotted paths of the structure's fields (``"loan.rate"``, ``"warrant.coverage"``,
        ``"screening.acceptance_rate"``) and the values each takes.

    Returns
    -------
    list of Structure
        One structure per combination, in the order of ``itertools.product``, each validated
        and named ``<base>-<field><value>...`` (for example
        ``warrant_loan-rate0.05-coverage0.1``), or ``<base>-<i>`` where that name would be
        longer than the 64 characters a name may have.
    """
    if not isinstance(base, Structure):
        raise TypeError(f"base: expected an invlend.Structure, got {type(base)!r}")
    if not isinstance(terms, Mapping) or not terms:
        raise ValueError("terms: give a mapping of at least one dotted path to its values")
    axes: list[tuple[str, list[float]]] = []
    for path, values in terms.items():
        if not isinstance(path, str) or path.split(".")[0] in Scenario.model_fields:
            raise ValueError(f"terms: {path!r} is not a structure field; give e.g. 'loan.rate'")
        if isinstance(values, str | bytes) or not hasattr(values, "__iter__"):
            raise ValueError(f"terms[{path!r}]: give a sequence of values, got {values!r}")
        vals = [_checks.number(f"terms[{path!r}][{i}]", v) for i, v in enumerate(values)]
        if not vals or len(set(vals)) != len(vals):
            raise ValueError(f"terms[{path!r}]: give distinct values, got {_step(vals)!r}")
        axes.append((path, vals))
    n = math.prod(len(v) for _, v in axes)
    if n > MAX_CANDIDATES:
        raise ValueError(f"terms: {n} combinations exceed the {MAX_CANDIDATES} a menu takes")
    out = []
    for i, combo in enumerate(itertools.product(*(v for _, v in axes))):
        s = base
        for (path, _), value in zip(axes, combo, strict=True):
            s = set_term(s, path, value)
        name = base.name + "".join(
            f"-{p.split('.')[-1]}{v:g}" for (p, _), v in zip(axes, combo, strict=True)
        )
        out.append(s.replace(name=name if _checks.is_identifier(name) else f"{base.name}-{i}"))
    return out


def describe(s: Structure) -> str:
    """A candidate's terms in a few words: rate, size, warrant, equity, partner, screening."""
    parts = [f"{100 * s.loan.rate:.2f}%", f"LTV {100 * s.loan.loan_to_value:g}%"]
    if s.warrant is not None:
        parts.append(f"warrant {100 * s.warrant.coverage:g}%")
    if s.equity is not None:
        parts.append(f"equity {100 * s.equity.equity_to_value:g}%")
    if s.linkage != type(s.linkage)():
        k = s.linkage
        parts.append(f"partner: default x{k.default_hazard_multiplier:g}, "
                     f"exits x{k.exit_hazard_multiplier:g}")  # fmt: skip
    sc = s.screening
    if sc.acceptance_rate < 1.0:
        parts.append(f"accept {100 * sc.acceptance_rate:g}% at noise {sc.signal_noise:g}")
    if sc.cost > 0:
        parts.append(f"diligence {100 * sc.cost:g}%")
    if not isinstance(s.loan.collateral, int | float) or s.loan.collateral > 0:
        parts.append("pledge")
    if s.risk_share is not None or s.risk_pool is not None:
        parts.append("risk sharing")
    return ", ".join(parts)


class ProductMenu(Printed, Keyed, Rows, Document):
    """The product menu by starting stage (see :func:`product_menu`).

    Index as ``menu[stage]`` to get the stage's :class:`MenuEntry`; :meth:`candidates` lists
    every candidate of a stage with its objective, constraints and paired difference from the
    offer; :meth:`records` has one row per (stage, candidate).
    """

    _missing = "no stage {key!r}"
    _left = 3

    def __init__(
        self,
        entries: dict[str, MenuEntry],
        rows: dict[str, list[dict[str, Any]]],
        structures: dict[str, Structure],
        meta: dict[str, Any],
    ) -> None:
        self._data = entries
        self._rows = rows
        self.structures = dict(structures)
        self.stages = list(entries)
        self.meta = dict(meta)

    def candidates(self, stage: str) -> list[dict[str, Any]]:
        """Every candidate of ``stage``: objective, constrained metrics, difference from offer.

        Each dict has ``structure``, ``terms``, ``objective`` (an
        :class:`~invlend.metrics.Estimate`), one Estimate per constrained metric,
        ``feasible``, ``marginal`` (constraints whose bound lies within 1.96 SE),
        ``gap`` (offer minus this candidate, a :class:`~invlend.estimation.Difference`; None
        for the offer and the infeasible) and ``status``: ``"offer"``, ``"tied"`` (not
        distinguishable from the offer), ``"worse"`` or ``"infeasible"``.
        """
        self[stage]  # a KeyError naming the stages
        return [dict(r) for r in self._rows[stage]]

    def records(self) -> list[dict[str, Any]]:
        """One dict per (stage, candidate): estimates as ``x``, ``x_se``; the gap and status."""
        out = []
        for stage, rows in self._rows.items():
            for r in rows:
                rec: dict[str, Any] = {"stage": stage, "structure": r["structure"],
                                       "terms": r["terms"]}  # fmt: skip
                for m in self._metrics():
                    e = r[m]
                    rec.update({m: e.estimate, f"{m}_se": e.se})
                gap = r["gap"]
                rec.update({
                    "gap": math.nan if gap is None else gap.estimate,
                    "gap_se": math.nan if gap is None else gap.se,
                    "gap_z": math.nan if gap is None else gap.z,
                    "feasible": r["feasible"], "marginal": ",".join(r["marginal"]),
                    "status": r["status"],
                })  # fmt: skip
                out.append(rec)
        return out

    def _metrics(self) -> list[str]:
        shown = [self.meta["objective"], BORROWER_COST,
                 *(c.metric for c in self.meta["constraint_list"])]  # fmt: skip
        return list(dict.fromkeys(shown))

    def fields(self) -> list[str]:
        """The columns of :meth:`records`."""
        cols = ["stage", "structure", "terms"]
        for m in self._metrics():
            cols += [m, f"{m}_se"]
        return [*cols, "gap", "gap_se", "gap_z", "feasible", "marginal", "status"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: the metadata, the menu and the candidate records."""
        menu = [{"stage": e.stage, "offer": e.offer, "objective": e.objective.estimate,
                 "objective_se": e.objective.se, "tied": list(e.tied),
                 "runner_up": e.runner_up,
                 "margin": None if e.margin is None else e.margin.estimate,
                 "margin_se": None if e.margin is None else e.margin.se,
                 "z_critical": e.z_critical, "distinguishable": e.distinguishable}
                for e in self._data.values()]  # fmt: skip
        meta = {k: v for k, v in self.meta.items() if k != "constraint_list"}
        return json_ready({"meta": meta, "menu": menu, "candidates": self.records()})

    def _format(self, metric: str, e: M.Estimate | Difference) -> str:
        return format_estimate(e.estimate, e.se, percent=M.is_rate(metric))

    def _parts(self) -> tuple[str, list[str], list[list[str]], list[str]]:
        m = self.meta
        obj = m["objective"]
        title = (
            f"invlend product menu: best of {m['n_candidates']} candidates by {obj}, "
            f"{m['n_portfolios']} portfolios x {m['portfolio_size']} firms, seed {m['seed']} "
            "(estimate ± standard error; common random numbers within a stage)"
        )
        header = [
            "stage",
            "offer",
            "terms",
            obj,
            "runner-up",
            "margin",
            "z",
            "z*",
            "tied with offer",
        ]
        rows = []
        for e in self._data.values():
            offer = e.offer or "decline"
            terms = describe(self.structures[e.offer]) if e.offer else "lend nothing"
            margin = "n/a" if e.margin is None else self._format(obj, e.margin)
            z = "n/a" if e.margin is None or not math.isfinite(e.margin.z) else f"{e.margin.z:.1f}"
            tied = ", ".join(t for t in e.tied[1:]) or "none"
            rows.append([e.stage, offer, terms, self._format(obj, e.objective),
                         e.runner_up or "n/a", margin, z, f"{e.z_critical:.2f}", tied])  # fmt: skip
        notes = [
            f"constraints: {', '.join(map(str, m['constraint_list'])) or 'none'}"
            " (on point estimates)",
            f"declining is worth {m['zero_text']}; margin: offer minus runner-up, paired "
            "(a declined stage: declining minus its best candidate)",
            f"tied: one-sided z below z* (Bonferroni over the stage's comparisons, level "
            f"{m['level']:g})",
        ]
        for e in self._data.values():
            if e.marginal:
                notes.append(f"{e.stage}: within 1.96 SE of a bound: {', '.join(e.marginal)}")
        return title, header, rows, notes

    def table(self, stage: str) -> str:
        """The candidates of one stage as a text table (what :meth:`candidates` holds)."""
        obj = self.meta["objective"]
        metrics = self._metrics()
        header = ["structure", "terms", *metrics, "offer - this", "z", "status"]
        rows = []
        for r in self.candidates(stage):
            gap = r["gap"]
            rows.append([r["structure"], r["terms"], *(self._format(x, r[x]) for x in metrics),
                         "" if gap is None else self._format(obj, gap),
                         "" if gap is None or not math.isfinite(gap.z) else f"{gap.z:.1f}",
                         r["status"] + (" (marginal)" if r["marginal"] else "")])  # fmt: skip
        return f"{stage}\n" + text_table(header, rows, left=2)

    def plot(self, *, ax=None, **kw):
        """The objective of every candidate by stage, ± 1.96 SE, the offers filled in."""
        from invlend.plotting import plot_menu

        return plot_menu(self, ax=ax, **kw)


def borrower_cost(result, structure: str) -> M.Estimate:
    """The borrower's all-in cost of ``structure`` per year, with its clustered SE.

    The fair value (risk neutral) of every cash flow the bank receives from the firm, net of
    the principal lent and gross of the bank's screening cost, divided by the principal-years
    outstanding (module docs, "Why a price cap"). Importance weights enter as in every smooth
    metric (the weight as a control variate).
    """
    r = result[structure]
    if r.fair_aggregates is None:
        return M.make_estimate(math.nan, math.nan, M.NO_FAIR_VALUE)
    agg, w = r.fair_aggregates, result.weights
    y = M.controlled(agg[:, L.AGG_NPV] - agg[:, L.AGG_PV["screening"]], w)
    x = M.controlled(agg[:, L.AGG_EXPOSURE], w)
    if not x.sum() > 0:
        return M.make_estimate(math.nan, math.nan, "nobody was accepted")
    value, u = M.ratio(y, x)
    return M.make_estimate(value, M.influence_se(u))


def _constraints(
    price_cap: float | None,
    loss_budget: float | None,
    capital_budget: float | None,
    capital: str,
    min_acceptance: float | None,
) -> list[Constraint]:
    capital = _checks.metric("capital", capital, M.CAPITAL_METRICS)
    out = []
    if price_cap is not None:
        x = _checks.number("price_cap", price_cap, low=-1.0, high=1.0)
        out.append(Constraint("price_cap", BORROWER_COST, "<=", x))
    if loss_budget is not None:
        x = _checks.number("loss_budget", loss_budget, low=0.0)
        out.append(Constraint("loss_budget", "expected_loss", "<=", x))
    if capital_budget is not None:
        x = _checks.number("capital_budget", capital_budget, low=0.0)
        out.append(Constraint("capital_budget", capital, "<=", x))
    if min_acceptance is not None:
        x = _checks.number("min_acceptance", min_acceptance, low=0.0, high=1.0)
        out.append(Constraint("min_acceptance", "acceptance_rate", ">=", x))
    return out


def _choose(
    names: list[str], summary, objective: str, constraints: list[Constraint]
) -> tuple[list[str], str | None, dict[str, tuple[str, ...]]]:
    """Feasible candidates (in order), the best of them, and each one's marginal bounds."""
    feasible, marginal = [], {}
    for n in names:
        row = summary[n]
        marginal[n] = tuple(
            c.name for c in constraints
            if math.isfinite(row[c.metric].se)
            and abs(row[c.metric].estimate - c.bound) < M.Z95 * row[c.metric].se
        )  # fmt: skip
        ok = math.isfinite(row[objective].estimate) and all(
            c.met(row[c.metric].estimate) for c in constraints
        )
        if ok:
            feasible.append(n)
    best = max(feasible, key=lambda n: summary[n][objective].estimate, default=None)
    return feasible, best, marginal


def product_menu(
    scenario: Scenario,
    candidates: Sequence[Structure],
    *,
    objective: str = "fair_value_per_applicant",
    stages: Sequence[str | int] | None = None,
    price_cap: float | None = None,
    loss_budget: float | None = None,
    capital_budget: float | None = None,
    capital: str = "economic_capital",
    min_acceptance: float | None = None,
    level: float = 0.95,
    n_boot: int = 200,
    hurdle: float = C.DEFAULT_HURDLE,
    progress: bool = False,
    **simulate_kw: Any,
) -> ProductMenu:
    """The best candidate structure for each starting stage, under constraints, with its SEs.

    Parameters
    ----------
    scenario : Scenario
        The applicants and the market. Each stage is evaluated on a copy whose applicants all
        start there (:func:`invlend.sweep.starting_stage`); every stage keeps its dynamics.
    candidates : sequence of Structure
        The candidate grid (for example from :func:`term_grid`), with distinct names.
    objective : str
        What the offer maximises (:data:`OBJECTIVES`): ``"fair_value_per_applicant"`` (the
        default: value added per firm that applies, in currency units, which ranks
        candidates that lend different amounts or accept different shares fairly),
        ``"fair_value_per_principal"``, ``"eva"``, ``"raroc"`` or their ``_irb`` forms.
    stages : sequence of str or int, optional
        Starting stages, by name or position (default: every stage).
    price_cap : float, optional
        Most all-in cost a borrower pays, per year (:func:`borrower_cost`; for example 0.02:
        2% a year over a fairly priced loan). Without it the dearest candidate wins (module
        docs, "Why a price cap").
    loss_budget : float, optional
        Most ``expected_loss`` (credit loss after risk sharing per unit lent) an offer may
        carry.
    capital_budget : float, optional
        Most capital per unit lent an offer may tie up, measured by ``capital``.
    capital : {"economic_capital", "irb_capital", "credit_capital"}
        The capital measure of ``capital_budget`` (default the value-based economic capital,
        which also carries warrant and equity risk).
    min_acceptance : float, optional
        Least ``acceptance_rate`` (share of applicants financed) an offer must have: a
        product that serves almost nobody is not a product for the stage.
    level : float
        Confidence of the statement of which choices are distinguishable (default 0.95).
    n_boot : int
        Bootstrap replicates for the tail metrics (``raroc``, ``eva``, ``economic_capital``);
        at least 20 where the objective or a constraint is one of them.
    hurdle : float
        Annual hurdle rate of ``eva`` and the zero of a ``raroc`` objective (default 12%).
    progress : bool
        One line per stage on standard error.
    **simulate_kw
        Passed to :func:`invlend.simulate` (``n_portfolios``, ``portfolio_size``, ``seed``,
        ``tail``, ``backend``, ...); a ``seed`` is required, and the risk-neutral measure.

    Returns
    -------
    ProductMenu
        ``menu[stage]`` is a :class:`MenuEntry`; ``menu.candidates(stage)`` the full
        comparison.

    Notes
    -----
    The choice is made on point estimates; what the standard errors add is the tied set
    (module docs). Candidates are compared within a stage on common random numbers; stages
    are separate runs with the same seed.
    """
    items = structure_list(candidates)
    if not items:
        raise ValueError("candidates: give at least one structure")
    if len(items) > MAX_CANDIDATES:
        raise ValueError(f"candidates: {len(items)} exceed the {MAX_CANDIDATES} a menu takes")
    names = [s.name for s in items]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"candidates: names must be distinct, repeated: {dupes}")
    objective = _checks.metric("objective", objective, tuple(OBJECTIVES))
    constraints = _constraints(price_cap, loss_budget, capital_budget, capital, min_acceptance)
    level = _checks.number("level", level, low=0.5, high=1.0)
    if level == 1.0:
        raise ValueError("level: must be below 1 (a 100% statement ties every candidate)")
    n_boot = _checks.count("n_boot", n_boot, low=0)
    hurdle = _checks.number("hurdle", hurdle, low=-1.0, high=10.0)
    tails = [m for m in (objective, *(c.metric for c in constraints)) if M.is_tail(m)]
    if tails and n_boot < MIN_BOOT:
        raise ValueError(
            f"n_boot: {tails[0]} is a tail metric; its standard error needs at least "
            f"{MIN_BOOT} bootstrap replicates, got {n_boot}"
        )
    if "structures" in simulate_kw:
        raise TypeError("structures: give the candidates as the second argument")
    need_fair_values(simulate_kw, "a product menu", "its candidates and stages")
    picked = pick_stages(scenario, stages)
    zero = hurdle if OBJECTIVES[objective] == "hurdle" else 0.0

    entries: dict[str, MenuEntry] = {}
    rows: dict[str, list[dict[str, Any]]] = {}
    for k in picked:
        stage = scenario.stages[k].name
        res = simulate(starting_stage(scenario, k), items, **simulate_kw)
        summary = res.summary(n_boot, hurdle=hurdle)
        summary = {n: {**summary[n], BORROWER_COST: borrower_cost(res, n)} for n in names}
        feasible, best, marginal = _choose(names, summary, objective, constraints)
        # Comparisons of the stage: the offer against each other feasible candidate and
        # against declining; Bonferroni over them (Hsu's multiple comparisons with the best).
        n_cmp = max(len(feasible), 1)
        z_crit = float(norm.ppf(1.0 - (1.0 - level) / n_cmp))
        gaps: dict[str, Difference] = {}
        top = summary[best][objective] if best is not None else None
        declines = top is None or not top.estimate > zero
        if declines:
            # The offer is to lend nothing: each feasible candidate's gap is to declining.
            for n in feasible:
                gaps[n] = _below(zero, summary[n][objective])
            offer, obj = None, M.make_estimate(zero, 0.0, "declined: lend nothing")
            tied = ("decline", *(n for n in feasible if _tied(gaps[n].estimate, gaps[n].se,
                                                                z_crit)))  # fmt: skip
            runner, margin = best, gaps.get(best)
        else:
            comp = res.compare(baseline=best, n_boot=n_boot, hurdle=hurdle)
            for n in feasible:
                if n != best:
                    gaps[n] = _negated(comp[n][objective])  # best minus candidate
            offer, obj = best, top
            tied = (
                best,
                *(n for n in feasible if n != best and _tied(gaps[n].estimate, gaps[n].se, z_crit)),
            )
            if _tied(top.estimate - zero, top.se, z_crit):
                tied = (*tied, "decline")
            ranked = sorted((n for n in feasible if n != best),
                            key=lambda n: -summary[n][objective].estimate)  # fmt: skip
            runner = ranked[0] if ranked else "decline"
            margin = gaps[runner] if ranked else _above(top, zero)
        entries[stage] = MenuEntry(
            stage, offer, obj, tied, runner, margin,
            tuple(n for n in names if n not in feasible),
            marginal.get(offer, ()) if offer else (), z_crit,
        )  # fmt: skip
        rows[stage] = [
            _candidate_row(s, summary[s.name], objective, constraints, s.name in feasible,
                           marginal[s.name], gaps.get(s.name), offer, tied)
            for s in items
        ]  # fmt: skip
        if progress:
            sys.stderr.write(f"menu {stage}: {offer or 'decline'}\n")
    meta = {
        "objective": objective,
        "zero": zero,
        "zero_text": f"{100 * zero:g}% (the hurdle)" if zero else "0",
        "constraints": [str(c) for c in constraints],
        "constraint_list": constraints,
        "level": level,
        "n_boot": n_boot,
        "hurdle": hurdle,
        "n_candidates": len(items),
        **run_sizes(res),
    }
    return ProductMenu(entries, rows, {s.name: s for s in items}, meta)


def _above(e: M.Estimate, zero: float) -> Difference:
    """An estimate's lead over declining (worth ``zero``), as a paired difference."""
    z = (e.estimate - zero) / e.se if e.se > 0 else math.nan
    return Difference(e.estimate - zero, e.se, e.ci_low - zero, e.ci_high - zero, z)


def _negated(d: Difference) -> Difference:
    """The difference the other way round (the same standard error)."""
    return Difference(-d.estimate, d.se, -d.ci_high, -d.ci_low, -d.z, d.note)


def _below(zero: float, e: M.Estimate) -> Difference:
    """Declining's lead over an estimate: what lending on it loses."""
    return _negated(_above(e, zero))


def _tied(gap: float, se: float, z_crit: float) -> bool:
    """Whether a gap of ``gap`` ± ``se`` is below the critical one-sided z.

    Without a standard error (identical candidates, SE 0) only a gap of at most 0 is a tie.
    """
    if not (se > 0 and math.isfinite(se)):
        return not gap > 0
    return gap / se < z_crit


def _candidate_row(
    s: Structure,
    row: Mapping[str, M.Estimate],
    objective: str,
    constraints: list[Constraint],
    feasible: bool,
    marginal: tuple[str, ...],
    gap: Difference | None,
    offer: str | None,
    tied: tuple[str, ...],
) -> dict[str, Any]:
    if s.name == offer:
        status = "offer"
    elif not feasible:
        status = "infeasible"
    elif s.name in tied:
        status = "tied"
    else:
        status = "worse"
    out: dict[str, Any] = {"structure": s.name, "terms": describe(s),
                           objective: row[objective]}  # fmt: skip
    out[BORROWER_COST] = row[BORROWER_COST]
    out.update({c.metric: row[c.metric] for c in constraints})
    out.update(feasible=feasible, marginal=marginal, gap=gap, status=status)
    return out
