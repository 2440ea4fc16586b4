r"""Attribution: how much of a structure's difference from a baseline each of its terms makes.

Overview
--------
:func:`attribute` splits the paired difference ``metric(structure) - metric(baseline)`` into
one part per term in which the two structures differ. A **term** is a top-level component
that differs (``"warrant"``, ``"equity"``, ``"linkage"``, ``"screening"``, ``"risk_share"``,
``"risk_pool"``) or a field of the loan that differs (``"loan.rate"``,
``"loan.upfront_fee"``, ...); ``groups`` lets terms that only make sense together (a
maturity and its interest-only period) move as one.

With :math:`n` terms :math:`N`, every one of the :math:`2^n` **hybrids** -- the baseline with
the terms of a subset :math:`S \subseteq N` switched to the structure's -- is evaluated in
one :func:`invlend.simulate` call, on common random numbers, and the part of term :math:`i`
is its Shapley value

.. math::

    \phi_i = \sum_{S \subseteq N \setminus \{i\}} \frac{|S|!\,(n - |S| - 1)!}{n!}
             \bigl(v(S \cup \{i\}) - v(S)\bigr),

the mean over the :math:`n!` orders of switching the terms one by one of the step term
:math:`i` makes, with :math:`v(S)` the metric of hybrid :math:`S`. The parts add up to
:math:`v(N) - v(\emptyset)`, the paired difference, and a term whose effect does not depend
on the others gets exactly its one-at-a-time effect :math:`v(\{i\}) - v(\emptyset)`.

Each :math:`\phi_i` is a fixed linear combination of smooth metrics, so its per-portfolio
influence values are the same combination of theirs (:func:`invlend.metrics.smooth_metrics`)
and its standard error, clustered by portfolio, is
:func:`invlend.metrics.influence_se` of them. Tail metrics (``raroc``, VaR, ...) have
bootstrap errors instead and are refused.

:func:`attribute_run` replays a run (its scenario, seed, sizes, backend and measures) to
attribute each structure's difference in :meth:`~invlend.SimulationResult.compare`; the totals
equal the comparison's differences.

Example
-------
>>> import invlend as il
>>> a = il.attribute(il.Scenario.default(), il.warrant_loan(), il.pure_loan(),
...                  n_portfolios=40, portfolio_size=25, seed=1)
>>> a.terms
('loan.rate', 'warrant')
>>> parts = a["fair_value_per_principal"]
>>> abs(parts["loan.rate"].estimate + parts["warrant"].estimate - parts["total"].estimate) < 1e-12
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from pydantic import ValidationError

from invlend import _checks
from invlend import capital as C
from invlend import metrics as M
from invlend._sim.lowering import MEASURES
from invlend._tables import Document, Footnotes, Keyed, Rows, html_table, json_ready, text_table
from invlend.config import Loan, Scenario, Structure, check_run
from invlend.engine import simulate
from invlend.estimation import Estimator
from invlend.results import SimulationResult

__all__ = ["MAX_TERMS", "SMOOTH_METRICS", "Attribution", "attribute", "attribute_run",
           "differing_terms"]  # fmt: skip

#: Most terms one attribution splits: 2^8 = 256 hybrid structures in one run.
MAX_TERMS = 8
#: The metrics an attribution can split: those with influence values (not the tail metrics).
SMOOTH_METRICS = tuple(m for m in M.METRICS if not M.is_tail(m))
#: Structure components compared whole, in the order of :class:`~invlend.Structure`.
COMPONENTS = ("warrant", "equity", "linkage", "screening", "risk_share", "risk_pool")
TOTAL = "total"


class _Term(NamedTuple):
    """One term of an attribution: its label and the paths (``("loan", "rate")``) it moves."""

    label: str
    paths: tuple[tuple[str, ...], ...]


def differing_terms(structure: Structure, baseline: Structure) -> list[str]:
    """The terms in which ``structure`` differs from ``baseline``, in model order.

    Loan fields first (``"loan.rate"``, in the order of :class:`~invlend.Loan`), then the
    whole components of :data:`COMPONENTS` (``"warrant"``, ...). Names are not terms.
    """
    out = [f"loan.{f}" for f in Loan.model_fields
           if getattr(structure.loan, f) != getattr(baseline.loan, f)]  # fmt: skip
    out += [c for c in COMPONENTS if getattr(structure, c) != getattr(baseline, c)]
    return out


def _plan_terms(structure: Structure, baseline: Structure, groups: Any) -> list[_Term]:
    """The terms to attribute, with ``groups`` of differing terms merged into one each."""
    labels = differing_terms(structure, baseline)
    if not labels:
        raise ValueError(
            f"structure: {structure.name!r} has the same terms as the baseline "
            f"{baseline.name!r} (only names differ): there is nothing to attribute"
        )
    if isinstance(groups, str) or not isinstance(groups, Sequence):
        raise TypeError(f"groups: expected a sequence of sequences of term names, got {groups!r}")
    grouped: dict[str, int] = {}
    for g, group in enumerate(groups):
        if isinstance(group, str) or not isinstance(group, Sequence) or len(group) < 2:
            raise ValueError(
                f"groups[{g}]: give two or more term names to move together, got {group!r}"
            )
        for label in group:
            if label not in labels:
                raise ValueError(
                    f"groups[{g}]: {label!r} is not a term in which {structure.name!r} differs "
                    f"from {baseline.name!r}; the terms are {labels}"
                )
            if label in grouped:
                raise ValueError(f"groups[{g}]: {label!r} is already in groups[{grouped[label]}]")
            grouped[label] = g
    terms, seen = [], set()
    for label in labels:
        g = grouped.get(label)
        if g is None:
            terms.append(_Term(label, (tuple(label.split(".")),)))
        elif g not in seen:
            seen.add(g)
            members = [x for x in labels if grouped.get(x) == g]  # model order
            terms.append(_Term("+".join(members), tuple(tuple(x.split(".")) for x in members)))
    if len(terms) > MAX_TERMS:
        raise ValueError(
            f"structure: {structure.name!r} differs from {baseline.name!r} in {len(terms)} terms "
            f"({', '.join(t.label for t in terms)}); at most {MAX_TERMS} can be attributed "
            f"(2^{MAX_TERMS} = {2**MAX_TERMS} hybrid structures in one run): move some together "
            "with groups=[...], or attribute in steps through an intermediate structure"
        )
    return terms


def _hybrid_name(mask: int, n: int) -> str:
    """``h`` and one digit per term (1: switched), first term first: ``h10`` for n = 2."""
    return "h" + "".join("1" if mask >> i & 1 else "0" for i in range(n))


def _hybrids(scenario: Scenario, structure: Structure, baseline: Structure,
             terms: list[_Term]) -> list[Structure]:  # fmt: skip
    """Every hybrid, hybrid ``mask`` with term ``i`` switched where bit ``i`` of mask is set.

    Each is validated (model rules and :func:`invlend.config.check_run`) before any run; an
    invalid one raises ``ValueError`` naming the terms switched in it.
    """
    base, new = baseline.model_dump(), structure.model_dump()
    n = len(terms)
    out = []
    for mask in range(2**n):
        data = {**base, "loan": dict(base["loan"]), "name": _hybrid_name(mask, n)}
        on = [t for i, t in enumerate(terms) if mask >> i & 1]
        for term in on:
            for path in term.paths:
                if len(path) == 1:
                    data[path[0]] = new[path[0]]
                else:
                    data["loan"][path[1]] = new["loan"][path[1]]
        try:
            hybrid = Structure.model_validate(data)
            check_run(scenario, [hybrid])
        except (ValidationError, ValueError) as exc:
            if isinstance(exc, ValidationError):
                first = exc.errors()[0]
                loc = ".".join(str(x) for x in first["loc"])
                why = f"{loc + ': ' if loc else ''}{first['msg'].removeprefix('Value error, ')}"
            else:
                why = str(exc).removeprefix(f"{data['name']}.")
            switched = ", ".join(t.label for t in on)
            raise ValueError(
                f"structure: the hybrid of {baseline.name!r} with {switched} switched to "
                f"{structure.name!r}'s is not a valid structure ({why}); move such terms "
                "together with groups=[(...)]"
            ) from None
        out.append(hybrid)
    return out


def _shapley_matrix(n: int) -> np.ndarray:
    """``(n, 2^n)`` coefficients: row ``i`` dotted with the hybrids' values is ``phi_i``."""
    coef = np.zeros((n, 2**n))
    weight = [math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)]
    for i in range(n):
        bit = 1 << i
        for mask in range(2**n):
            if not mask & bit:
                w = weight[mask.bit_count()]
                coef[i, mask | bit] += w
                coef[i, mask] -= w
    return coef


def _step(mask: int, n: int) -> np.ndarray:
    """Coefficients of ``v(mask) - v({})``: hybrid ``mask`` minus the baseline."""
    w = np.zeros(2**n)
    w[mask], w[0] = 1.0, -1.0
    return w


def _combine(weights: np.ndarray, e: np.ndarray, u: np.ndarray, note: str) -> M.Estimate:
    """The estimate ``weights @ e`` of the hybrids' metric values ``e`` and its standard error.

    ``u`` holds the hybrids' influence values, (2^n, n_portfolios); the combination's are
    ``weights @ u``, clustered by portfolio as every smooth metric's.
    """
    return M.make_estimate(float(weights @ e), M.influence_se(weights @ u), note)


def _check_metrics(metrics: Any, measures: tuple[str, ...]) -> tuple[str, ...]:
    names = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    if not names:
        raise ValueError(f"metrics: give at least one of the smooth metrics {list(SMOOTH_METRICS)}")
    for m in names:
        _checks.metric("metrics", m, M.METRICS)
        if M.is_tail(m):
            raise ValueError(
                f"metrics: {m!r} is a tail metric (its standard error is a bootstrap, which "
                f"does not split into parts); attribute takes the smooth metrics "
                f"{list(SMOOTH_METRICS)}"
            )
        if m.startswith("fair_value") and "risk_neutral" not in measures:
            raise ValueError(
                f"metrics: {m!r} needs the risk-neutral measure; simulate with "
                f"measures={MEASURES} (the default) or choose a real-world metric"
            )
    return tuple(dict.fromkeys(names))


def _check_capital(hurdle: Any, sales_eur_m: Any) -> None:
    """The checks of :meth:`invlend.SimulationResult.summary`, made before any run."""
    _checks.number("hurdle", hurdle, low=-1.0, high=10.0)
    if sales_eur_m is not None:
        _checks.number("sales_eur_m", sales_eur_m, low=0.0)


def _measures(simulate_kw: dict[str, Any]) -> tuple[str, ...]:
    given = simulate_kw.get("measures", MEASURES)
    return (given,) if isinstance(given, str) else tuple(given)


class Attribution(Keyed, Rows, Document):
    """A paired difference split term by term into Shapley values, each with its standard error.

    Index as ``attribution[metric][term]`` to get an :class:`~invlend.metrics.Estimate`; the
    terms are :attr:`terms` and, last, ``"total"``: the paired difference
    ``metric(structure) - metric(baseline)`` itself, which the parts add up to (to rounding).
    Standard errors are clustered by portfolio (influence values of each linear combination
    of the hybrids' metrics), so parts and total are paired like :class:`~invlend.Comparison`.

    Attributes
    ----------
    structure, baseline : str
        The names of the two structures compared.
    terms : tuple of str
        The terms, in model order (loan fields first); a group reads ``"a+b"``.
    metrics : tuple of str
        The metrics split.
    alone : dict
        ``alone[metric][term]``: the term's one-at-a-time effect ``v({i}) - v({})`` (the
        baseline with that term alone switched), an :class:`~invlend.metrics.Estimate`; where
        it differs from the Shapley part, the term's effect depends on the others.
    hybrids : dict
        Name of each hybrid structure of the run -> the terms switched in it.
    notes : list of str
        Notes on the run and the reasons of NaNs.
    meta : dict
        The run's sizes, seed, backend and versions.
    """

    def __init__(self, structure: str, baseline: str, terms: tuple[str, ...],
                 data: dict[str, dict[str, M.Estimate]], alone: dict[str, dict[str, M.Estimate]],
                 hybrids: dict[str, tuple[str, ...]], notes: list[str],
                 meta: dict[str, Any]) -> None:  # fmt: skip
        self.structure = structure
        self.baseline = baseline
        self.terms = tuple(terms)
        self.metrics = tuple(data)
        self._data = data
        self.alone = alone
        self.hybrids = dict(hybrids)
        self.notes = list(notes)
        self.meta = dict(meta)

    _missing = "no metric {key!r} in this attribution"

    def records(self) -> list[dict[str, Any]]:
        """One dict per (metric, term), ``"total"`` last in each metric.

        Columns: structure, baseline, metric, term, the Shapley part (estimate, se, ci_low,
        ci_high, note), and ``alone`` / ``alone_se``, the one-at-a-time effect (for
        ``"total"``: the difference again).
        """
        out = []
        for metric, row in self._data.items():
            for term, est in row.items():
                single = self.alone[metric].get(term, est)
                out.append({"structure": self.structure, "baseline": self.baseline,
                            "metric": metric, "term": term, **est._asdict(),
                            "alone": single.estimate, "alone_se": single.se})  # fmt: skip
        return out

    def fields(self) -> list[str]:
        """The columns of :meth:`records`."""
        return ["structure", "baseline", "metric", "term", *M.Estimate._fields, "alone",
                "alone_se"]  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: the run's metadata, the terms, the hybrids, notes and records."""
        return {
            "meta": self.meta,
            "structure": self.structure,
            "baseline": self.baseline,
            "terms": list(self.terms),
            "hybrids": {k: list(v) for k, v in self.hybrids.items()},
            "notes": self.notes,
            "rows": json_ready(self.records()),
        }

    def _parts(self) -> tuple[str, list[str], list[list[str]], list[str]]:
        """Title, header, rows and footer lines, for the text and the HTML table."""
        n = len(self.terms)
        title = (
            f"invlend attribution of {self.structure!r} - {self.baseline!r}: Shapley values over "
            f"2^{n} = {2**n} hybrids, {self.meta['n_portfolios']} portfolios x "
            f"{self.meta['portfolio_size']} firms, seed {self.meta['seed']} "
            "(estimate ± standard error clustered by portfolio; the parts add up to the total)"
        )
        marks = Footnotes()
        rows = [[m, *(marks.cell(m, est) for est in row.values())] for m, row in self._data.items()]
        notes = [*marks.lines(), *(f"note: {x}" for x in self.notes)]
        return title, ["metric", *self.terms, TOTAL], rows, notes

    def __str__(self) -> str:
        title, header, rows, notes = self._parts()
        return f"{title}\n" + text_table(header, rows) + "".join(f"\n{x}" for x in notes)

    def __repr__(self) -> str:
        return self.__str__()

    def _repr_html_(self) -> str:
        title, header, rows, notes = self._parts()
        return html_table(header, rows, title=title, notes=notes)


def _evaluate(res: SimulationResult, structure: str, baseline: str, terms: list[_Term],
              metrics: tuple[str, ...], hurdle: float,
              sales_eur_m: float | None) -> Attribution:  # fmt: skip
    """The Shapley parts of ``metrics`` from a run of every hybrid (named by ``_hybrid_name``)."""
    n = len(terms)
    names = [_hybrid_name(mask, n) for mask in range(2**n)]
    est = Estimator(res)
    smooth, tail, run_notes = est.estimates(0, hurdle, sales_eur_m)
    coef = _shapley_matrix(n)
    labels = [t.label for t in terms]
    switched = {nm: tuple(lb for i, lb in enumerate(labels) if mask >> i & 1)
                for mask, nm in enumerate(names)}  # fmt: skip
    data, alone = {}, {}
    for metric in metrics:
        e = np.array([smooth[nm][metric][0] for nm in names])
        u = np.stack([smooth[nm][metric][1] for nm in names])
        note = ""
        if not np.all(np.isfinite(e)):
            bad = next(nm for nm, x in zip(names, e, strict=True) if not math.isfinite(x))
            why = est.row(bad, smooth[bad], tail[bad], 0)[metric].note
            what = ", ".join(switched[bad]) or "no term"
            note = f"undefined for the hybrid with {what} switched: {why}"
        elif res.run.n_portfolios < 2:
            note = "standard error needs at least 2 portfolios"
        row = {lb: _combine(coef[i], e, u, note) for i, lb in enumerate(labels)}
        row[TOTAL] = _combine(_step(2**n - 1, n), e, u, note)
        data[metric] = row
        alone[metric] = {lb: _combine(_step(1 << i, n), e, u, note) for i, lb in enumerate(labels)}
    # The run's notes on a hybrid (an IRR undefined somewhere), said of its terms; the notes
    # on the run's tail metrics do not concern the parts.
    notes = []
    for line in run_notes:
        nm, sep, rest = line.partition(": ")
        if sep and nm in switched:
            notes.append(f"hybrid with {', '.join(switched[nm]) or 'no term'} switched: {rest}")
        elif line.startswith("standard errors need"):
            notes.append(line)
    meta = {**est.meta(0), "hurdle": hurdle, "sales_eur_m": sales_eur_m}
    del meta["n_boot"]
    return Attribution(structure, baseline, tuple(labels), data, alone, switched, notes, meta)


def attribute(
    scenario: Scenario,
    structure: Structure,
    baseline: Structure,
    *,
    metrics: str | Sequence[str] = ("fair_value_per_principal",),
    groups: Sequence[Sequence[str]] = (),
    hurdle: float = C.DEFAULT_HURDLE,
    sales_eur_m: float | None = M.IRB_SALES_EUR_M,
    **simulate_kw: Any,
) -> Attribution:
    """Split ``metric(structure) - metric(baseline)`` into the Shapley part of each term.

    Parameters
    ----------
    scenario : Scenario
        The applicants and the market.
    structure, baseline : Structure
        The structure whose difference is split, and the one it is measured from.
    metrics : str or sequence of str
        Smooth metrics to split (:data:`SMOOTH_METRICS`); default the fair value per unit
        lent. Tail metrics (``raroc``, ``loss_var_999``, ...) are refused.
    groups : sequence of sequences of str
        Terms to move together as one, e.g. ``[("loan.maturity_years",
        "loan.interest_only_years")]`` when a hybrid with one but not the other would be
        invalid; the group's label joins its terms with ``+``.
    hurdle, sales_eur_m : float
        As in :meth:`invlend.SimulationResult.summary` (they enter ``eva_irb`` and the IRB
        metrics).
    **simulate_kw
        Passed to :func:`invlend.simulate` (``n_portfolios``, ``portfolio_size``, ``seed``,
        ``backend``, ``measures``, ...). A ``seed`` is required, so that the run can be
        replayed and paired with other runs of the same seed; ``keep`` defaults to
        ``"aggregates"`` (the parts need only the per-portfolio totals).

    Returns
    -------
    Attribution
        ``attribution[metric][term]`` and ``attribution[metric]["total"]``.

    Raises
    ------
    ValueError
        Before any simulation: no seed; the two structures alike in every term; more than
        :data:`MAX_TERMS` terms; a tail or unknown metric; a fair value without the
        risk-neutral measure; a hybrid that is not a valid structure (use ``groups``).

    Notes
    -----
    All :math:`2^n` hybrids run in one :func:`invlend.simulate` call, so every part is paired
    with every other on the same firms; with the same seed and sizes the hybrid with no term
    switched is the baseline and the one with every term switched is the structure, portfolio
    by portfolio, of any other run. Cost: one run of :math:`2^n` structures (those that share
    a linkage share one firm simulation).
    """
    if not isinstance(scenario, Scenario):
        raise TypeError(f"scenario: expected an invlend.Scenario, got {type(scenario)!r}")
    for what, s in (("structure", structure), ("baseline", baseline)):
        if not isinstance(s, Structure):
            raise TypeError(f"{what}: expected an invlend.Structure, got {type(s)!r}")
    _checks.seed("seed", simulate_kw.get("seed"), fixed="attribution needs a fixed seed so that "
                 "its run can be replayed and paired with runs of the same seed")  # fmt: skip
    metrics = _check_metrics(metrics, _measures(simulate_kw))
    _check_capital(hurdle, sales_eur_m)
    terms = _plan_terms(structure, baseline, groups)
    hybrids = _hybrids(scenario, structure, baseline, terms)
    res = simulate(scenario, hybrids, **{"keep": "aggregates", **simulate_kw})
    return _evaluate(res, structure.name, baseline.name, terms, metrics, hurdle, sales_eur_m)


def attribute_run(
    result: SimulationResult,
    baseline: str = "pure_loan",
    *,
    structures: Sequence[str] | None = None,
    metrics: str | Sequence[str] | None = None,
    groups: Sequence[Sequence[str]] = (),
    hurdle: float = C.DEFAULT_HURDLE,
    sales_eur_m: float | None = M.IRB_SALES_EUR_M,
) -> dict[str, Attribution]:
    """Attribute each structure's difference in ``result.compare(baseline)``, term by term.

    Replays the run -- its scenario, seed (``SeedSequence(result.seed,
    spawn_key=result.seed_spawn_key)``), ``n_portfolios``, ``portfolio_size``, backend and
    measures -- with the hybrids of each structure and the baseline (:func:`attribute`), so
    each attribution's ``"total"`` equals the comparison's difference, and its standard error
    the comparison's, portfolio by portfolio.

    Parameters
    ----------
    result : SimulationResult
        The run to explain.
    baseline : str
        The baseline structure's name, as in :meth:`~invlend.SimulationResult.compare`.
    structures : sequence of str, optional
        Structures to attribute (default: every other structure of the run; those alike the
        baseline in every term are left out, having nothing to attribute).
    metrics : str or sequence of str, optional
        Smooth metrics (default: every smooth metric the run defines: the fair values only
        with the risk-neutral measure, ``pool_shortfall`` only where a risk pool is in play).
    groups, hurdle, sales_eur_m
        As in :func:`attribute` (``groups`` applies to every structure).

    Returns
    -------
    dict
        Structure name -> :class:`Attribution`, in run order. Every argument, structure and
        hybrid is checked before the first simulation.
    """
    if not isinstance(result, SimulationResult):
        raise TypeError(f"result: expected a SimulationResult, got {type(result).__name__}")
    if baseline not in result:
        raise ValueError(f"baseline: no structure named {baseline!r}; have {list(result)}")
    _check_capital(hurdle, sales_eur_m)
    base = result[baseline].structure
    run = result.run
    if structures is None:
        names = [n for n in result if n != baseline and differing_terms(result[n].structure, base)]
    else:
        names = [structures] if isinstance(structures, str) else list(structures)
        for n in names:
            if n not in result or n == baseline:
                raise ValueError(
                    f"structures: {n!r} is not another structure of the run; have "
                    f"{[x for x in result if x != baseline]}"
                )
    plans = []
    for n in names:
        s = result[n].structure
        if metrics is None:
            chosen = [m for m in SMOOTH_METRICS
                      if (not m.startswith("fair_value") or "risk_neutral" in run.measures)
                      and (m != "pool_shortfall" or s.risk_pool or base.risk_pool)]  # fmt: skip
        else:
            chosen = metrics
        ms = _check_metrics(chosen, run.measures)
        terms = _plan_terms(s, base, groups)
        plans.append((s, ms, terms, _hybrids(result.scenario, s, base, terms)))
    kw = dict(
        n_portfolios=run.n_portfolios,
        portfolio_size=run.portfolio_size,
        backend=run.backend,
        measures=run.measures,
        keep="aggregates",
        tail=result.tilt,  # the same sampling law: the hybrids' runs pair with the result
    )
    out = {}
    for s, ms, terms, hybrids in plans:
        seed = np.random.SeedSequence(run.seed, spawn_key=run.seed_spawn_key)
        res = simulate(result.scenario, hybrids, seed=seed, **kw)
        out[s.name] = _evaluate(res, s.name, baseline, terms, ms, hurdle, sales_eur_m)
    return out
