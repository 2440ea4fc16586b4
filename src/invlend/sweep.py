"""Sweeps, break-even terms and sensitivities, all on common random numbers.

Overview
--------
A parameter is named by its dotted path:

* scenario fields: ``"market.factor_loading"``, ``"stages.seed.default_hazard"`` (a stage by
  name or index), ``"horizon_years"``, ``"cycle.cold.default"`` (a funding-cycle field on a
  scenario without a cycle turns on :class:`~invlend.FundingCycle` with its defaults);
* structure fields for every structure that has the component: ``"loan.rate"``,
  ``"warrant.coverage"``, ``"linkage.default_hazard_multiplier"``;
* one structure's field: ``"warrant_loan.warrant.coverage"`` (a missing component is created
  with its defaults, so ``"pure_loan.warrant.coverage"`` adds a warrant to the pure loan).

Every point of a sweep, and every evaluation of a break-even search, runs with the same seed,
so the differences between points are paired: the curve is smooth in the parameter wherever
the model is, and root finding on it is well posed.

:func:`breakeven` solves for the value of one parameter at which a metric -- smooth, or a
tail metric such as ``raroc`` on its full-sample estimate -- reaches a target or another
structure's. :func:`pricing_table` asks four such questions of a pure loan and a warrant loan
for each starting stage: the fair rate, what the warrant is worth in bp of rate, the coverage
that pays for a rate discount, and the rate that meets a RAROC hurdle.

Example
-------
>>> import invlend as il
>>> sw = il.sweep(il.Scenario.default(), il.default_structures(), "loan.rate",
...               [0.04, 0.05], n_portfolios=40, portfolio_size=25, seed=1, n_boot=0)
>>> sorted({r["loan.rate"] for r in sw.records()})
[0.04, 0.05]
"""

from __future__ import annotations

import inspect
import itertools
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import ValidationError
from scipy.optimize import brentq

from invlend import _checks
from invlend import metrics as M
from invlend._sim.lowering import MEASURES
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
from invlend.config import (
    Equity,
    FundingCycle,
    RiskPool,
    RiskShare,
    Scenario,
    Structure,
    Warrant,
)
from invlend.engine import simulate
from invlend.results import Summary
from invlend.structures import pure_loan, structure_list, warrant_loan

__all__ = [
    "PRICING_QUANTITIES",
    "Breakeven",
    "PricingTable",
    "SweepResult",
    "breakeven",
    "need_fair_values",
    "need_seed",
    "pick_stages",
    "pricing_table",
    "run_sizes",
    "sensitivity",
    "set_param",
    "set_term",
    "starting_stage",
    "sweep",
]

_COMPONENTS = {"loan", "warrant", "equity", "linkage", "screening", "risk_share", "risk_pool"}
_NEW_COMPONENT = {"warrant": Warrant, "equity": Equity, "risk_share": RiskShare,
                  "risk_pool": RiskPool}  # fmt: skip
_SIMULATE_DEFAULTS = inspect.signature(simulate).parameters
_EXAMPLES = (
    "e.g. 'loan.rate', 'warrant.coverage', 'stages.seed.default_hazard', 'market.factor_loading'"
)


def _bad_path(path: str, why: str) -> ValueError:
    return ValueError(f"param: {why} in {path!r}; give a dotted path, {_EXAMPLES}")


def _set_in(data: dict, keys: list[str], value: Any, path: str) -> None:
    """Set ``data[k0][k1]...`` for a dumped model, refusing keys the model does not have."""
    node = data
    for i, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            raise _bad_path(path, f"unknown field {'.'.join(keys[: i + 1])!r}")
        if i == len(keys) - 1:
            if isinstance(node[key], (dict, list)):
                raise _bad_path(path, f"{key!r} is not a number")
            node[key] = value
        else:
            node = node[key]


def _set_scenario(scenario: Scenario, keys: list[str], value: Any, path: str) -> Scenario:
    data = scenario.model_dump()
    if keys[0] == "stages":
        if len(keys) != 3:
            raise _bad_path(path, "a stage field needs 'stages.<name>.<field>'")
        names = [s["name"] for s in data["stages"]]
        ref = keys[1]
        try:
            idx = scenario.stage_index(ref)
        except KeyError:  # a stage may also be named by its position
            idx = int(ref) if ref.isdigit() else None
        if idx is None or idx >= len(names):
            raise _bad_path(path, f"no stage {ref!r} (stages are {names})")
        _set_in(data["stages"][idx], [keys[2]], value, path)
    else:
        if keys[0] == "cycle" and data["cycle"] is None:  # a cycle parameter turns one on
            data["cycle"] = FundingCycle().model_dump()
        _set_in(data, keys, value, path)
    return Scenario.model_validate(data)


def _set_structure(s: Structure, keys: list[str], value: Any, path: str, create: bool) -> Structure:
    data = s.model_dump()
    comp = keys[0]
    if comp not in _COMPONENTS:
        raise _bad_path(path, f"unknown structure component {comp!r}")
    if data.get(comp) is None:
        if not create:
            return s
        data[comp] = _NEW_COMPONENT[comp]().model_dump()
    _set_in(data, keys, value, path)
    return Structure.model_validate(data)


def set_term(structure: Structure, path: str, value: float) -> Structure:
    """``structure`` with its field at ``path`` (``"loan.rate"``, ``"warrant.coverage"``) set.

    A missing component on the path is created with its defaults; the result is validated
    again, so a value out of bounds raises pydantic's ``ValidationError`` naming the field.
    """
    keys = path.split(".")
    if len(keys) != 2 or not all(keys):
        raise _bad_path(path, "a structure field needs '<component>.<field>'")
    return _set_structure(structure, keys, value, path, create=True)


def set_param(
    scenario: Scenario, structures: Sequence[Structure], path: str, value: float
) -> tuple[Scenario, list[Structure]]:
    """Return the scenario and structures with the parameter at ``path`` set to ``value``.

    The result is validated again, so a value out of bounds raises pydantic's
    ``ValidationError`` naming the field; an unknown path raises ``ValueError``.
    """
    structs = list(structures)
    keys = path.split(".")
    if not path or any(not k for k in keys):
        raise _bad_path(path, "an empty name")
    names = [s.name for s in structs]
    if keys[0] in Scenario.model_fields:
        return _set_scenario(scenario, keys, value, path), structs
    if keys[0] in names:
        i = names.index(keys[0])
        if len(keys) < 3:
            raise _bad_path(path, "a structure field needs '<structure>.<component>.<field>'")
        structs[i] = _set_structure(structs[i], keys[1:], value, path, create=True)
        return scenario, structs
    if keys[0] in _COMPONENTS:
        if len(keys) != 2:
            raise _bad_path(path, "a component field needs '<component>.<field>'")
        new = [_set_structure(s, keys, value, path, create=False) for s in structs]
        if all(a is b for a, b in zip(new, structs, strict=True)):
            raise ValueError(f"param: no structure has a {keys[0]!r} component for {path!r}")
        return scenario, new
    raise _bad_path(path, f"{keys[0]!r} is neither a scenario field, a component nor a structure")


def _check_path(scenario, structures, path, value) -> None:
    """Fail early (before any simulation) on an unknown path or a value out of bounds."""
    try:
        set_param(scenario, structures, path, value)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        msg = first["msg"].removeprefix("Value error, ")
        raise ValueError(f"param {path!r} = {value!r}: {loc + ': ' if loc else ''}{msg}") from None


@dataclass(frozen=True)
class SweepResult(Rows):
    """Every metric of every structure at every point of a sweep.

    ``print`` it (or :meth:`table`) for one metric as text; :meth:`records`, ``to_frame()``
    and ``to_csv(path)`` export every metric in tidy rows.

    Attributes
    ----------
    params : tuple of str
        The swept parameter paths (one or two).
    points : list of tuple
        The parameter values of each point, in the order run.
    summaries : list of Summary
        The summary at each point.
    """

    params: tuple[str, ...]
    points: list[tuple[float, ...]]
    summaries: list[Summary]

    def records(self) -> list[dict[str, Any]]:
        """Tidy rows: parameter values, structure, metric, estimate, se, ci_low, ci_high."""
        out = []
        for point, summ in zip(self.points, self.summaries, strict=True):
            values = dict(zip(self.params, point, strict=True))
            for rec in summ.records():
                out.append({**values, **rec})
        return out

    @property
    def structures(self) -> list[str]:
        """Structure names, in run order."""
        return list(self.summaries[0])

    def values(self, param: str | None = None) -> list[float]:
        """Distinct values of ``param`` (default: the first), in run order."""
        i = self.params.index(param or self.params[0])
        return list(dict.fromkeys(p[i] for p in self.points))

    def curve(self, structure: str, metric: str, **fixed: float) -> tuple[np.ndarray, ...]:
        """``(x, estimate, se)`` along the first parameter, other parameters at ``fixed``."""
        xs, est, se = [], [], []
        for point, summ in zip(self.points, self.summaries, strict=True):
            if any(point[self.params.index(k)] != v for k, v in fixed.items()):
                continue
            e = summ[structure][metric]
            xs.append(point[0])
            est.append(e.estimate)
            se.append(e.se)
        return np.array(xs), np.array(est), np.array(se)

    def fields(self) -> list[str]:
        """The columns of :meth:`records`, in the order of ``to_csv``."""
        return [*self.params, "structure", "metric", *M.Estimate._fields]

    def table(self, metric: str = "fair_value_per_principal") -> str:
        """A text table of one metric: a row per point, a column per structure."""
        metric = _checks.metric("metric", metric, M.METRICS)
        marks = Footnotes()
        rows = []
        for point, summ in zip(self.points, self.summaries, strict=True):
            row = [", ".join(f"{v:.6g}" for v in point)]
            row += [marks.cell(metric, summ[n][metric]) for n in self.structures]
            rows.append(row)
        table = text_table([", ".join(self.params), *self.structures], rows)
        return f"{metric} by {', '.join(self.params)}\n{table}" + "".join(
            f"\n{line}" for line in marks.lines()
        )

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        n = len(self.points)
        ranges = ", ".join(
            f"{p} {min(v):.6g} to {max(v):.6g} ({len(v)} values)"
            for p, v in ((p, self.values(p)) for p in self.params)
        )
        names = self.structures if n else []
        shown = names if len(names) <= 8 else [*names[:7], "...", names[-1]]
        return (
            f"SweepResult: {n} point{'' if n == 1 else 's'} over {ranges}\n"
            f"  structures {', '.join(shown)}; print it (or .table(metric)) for the table"
        )

    def _repr_html_(self, metric: str = "fair_value_per_principal") -> str:
        marks = Footnotes()
        rows = [
            [", ".join(f"{v:.6g}" for v in point),
             *(marks.cell(metric, summ[n][metric]) for n in self.structures)]
            for point, summ in zip(self.points, self.summaries, strict=True)
        ]  # fmt: skip
        title = f"SweepResult: {metric} by {', '.join(self.params)} (estimate ± standard error)"
        header = [", ".join(self.params), *(self.structures if self.points else [])]
        return html_table(header, rows, title=title, notes=marks.lines())

    def plot(self, metric: str = "fair_value_per_principal", **kw):
        """Curves of ``metric`` with 95% bands; see :func:`invlend.plotting.plot_sweep`."""
        from invlend.plotting import plot_sweep

        return plot_sweep(self, metric=metric, **kw)


def need_seed(simulate_kw: dict[str, Any], who: str, what: str) -> None:
    """Refuse ``seed=None``: fresh entropy per run would leave ``what`` of ``who`` unpaired."""
    why = f"{who} needs a fixed seed so that {what} are paired"
    _checks.seed("seed", simulate_kw.get("seed"), fixed=why)


def run_sizes(result) -> dict[str, Any]:
    """A run's ``n_portfolios``, ``portfolio_size`` and ``seed``, as the tables print them."""
    run = result.run
    seed = run.seed
    return {
        "n_portfolios": run.n_portfolios,
        "portfolio_size": run.portfolio_size,
        "seed": seed if isinstance(seed, int) else repr(seed),
    }


def need_fair_values(simulate_kw: dict[str, Any], who: str, what: str) -> None:
    """:func:`need_seed`, and refuse a run without the risk-neutral measure (fair values)."""
    need_seed(simulate_kw, who, what)
    measures = simulate_kw.get("measures", MEASURES)
    if "risk_neutral" not in ((measures,) if isinstance(measures, str) else tuple(measures)):
        raise ValueError(f"measures: {who} needs the risk-neutral measure (fair values)")


#: Most values of one swept parameter, and most points of a sweep (each point is a run).
MAX_VALUES = 1000
MAX_POINTS = 10_000


def _as_values(values, name: str = "values") -> list[float]:
    return _checks.numbers_list(name, values, most=MAX_VALUES)


def sweep(
    scenario: Scenario,
    structures: Structure | Sequence[Structure] | None,
    param: str | Sequence[str],
    values: Sequence[float] | Sequence[Sequence[float]],
    *,
    n_boot: int = 200,
    progress: bool = False,
    **simulate_kw: Any,
) -> SweepResult:
    """Vary one parameter (or two, on a grid) on common random numbers.

    Parameters
    ----------
    scenario, structures
        The base inputs (structures default to :func:`invlend.default_structures`).
    param : str or pair of str
        Dotted path(s) of the parameter(s); see the module docs.
    values : sequence of float, or pair of sequences
        Values of the parameter, or of each of the two on a grid.
    n_boot : int
        Bootstrap replicates for the tail metrics at each point (0: skip their SE).
    progress : bool
        Print one line per point on standard error.
    **simulate_kw
        Passed to :func:`invlend.simulate` (``n_portfolios``, ``portfolio_size``, ``seed``,
        ``backend``, ...). Give a ``seed``: with ``seed=None`` each point would draw fresh
        entropy and the points would not be paired.
    """
    structs = structure_list(structures)
    params = (param,) if isinstance(param, str) else tuple(param)
    if not 1 <= len(params) <= 2:
        raise ValueError(f"param: give one or two parameter paths, got {len(params)}")
    if len(params) == 1:
        grids = [_as_values(values)]
    else:
        if isinstance(values, str | bytes) or len(values) != len(params):
            raise ValueError(f"values: give one list of values per parameter ({len(params)})")
        grids = [_as_values(v, f"values[{i}]") for i, v in enumerate(values)]
    if math.prod(len(g) for g in grids) > MAX_POINTS:
        raise ValueError(
            f"values: {' x '.join(str(len(g)) for g in grids)} points exceed the limit of "
            f"{MAX_POINTS} runs in one sweep"
        )
    n_boot = _checks.count("n_boot", n_boot, low=0)
    need_seed(simulate_kw, "a sweep", "its points")
    for p, grid in zip(params, grids, strict=True):  # check every path and value up front
        for v in grid:
            _check_path(scenario, structs, p, v)
    points = list(itertools.product(*grids))
    summaries = []
    for k, point in enumerate(points):
        sc, st = scenario, structs
        for p, v in zip(params, point, strict=True):
            sc, st = set_param(sc, st, p, v)
        res = simulate(sc, st, **simulate_kw)
        summaries.append(res.summary(n_boot=n_boot))
        if progress:
            where = ", ".join(f"{p} = {v:g}" for p, v in zip(params, point, strict=True))
            sys.stderr.write(f"sweep point {k + 1}/{len(points)}: {where}\n")
    return SweepResult(params, points, summaries)


@dataclass(frozen=True)
class Breakeven:
    """The parameter value at which a metric reaches its target.

    Attributes
    ----------
    param, metric : str
    value : float
        The break-even parameter value.
    se : float
        Its Monte Carlo standard error by the delta method: the SE of the (paired) metric gap
        at ``value`` divided by the gap's slope there.
    ci_low, ci_high : float
        95% interval ``value +- 1.96 se``.
    target : float or None
        The target value (None when matching another structure).
    against : str or None
        The structure whose metric is matched.
    slope : float
        d(gap)/d(param) at ``value`` (central difference).
    evaluations : int
        Simulations run by the root finder.
    note : str
        Why ``se`` is NaN (``""`` when it is defined), e.g. a tail metric searched with
        ``n_boot=0``.
    """

    param: str
    metric: str
    structure: str
    value: float
    se: float
    ci_low: float
    ci_high: float
    target: float | None
    against: str | None
    slope: float
    evaluations: int
    note: str = ""

    def __str__(self) -> str:
        goal = f"{self.metric} of {self.against}" if self.against else f"{self.target:g}"
        if math.isfinite(self.se):
            lo, hi = (
                format_estimate(x, self.se).split(" ± ")[0] for x in (self.ci_low, self.ci_high)
            )
            at = (f"{format_estimate(self.value, self.se)} (95% interval {lo} to {hi}; "
                  f"{self.evaluations} simulations)")  # fmt: skip
        else:
            at = (f"{self.value:.6g} (standard error n/a: {self.note}; "
                  f"{self.evaluations} simulations)")  # fmt: skip
        return f"{self.structure}: {self.metric} reaches {goal} at {self.param} = {at}"


class _NoRoot(ValueError):
    """The metric gap does not change sign in the bracket, or is undefined at an end."""


def breakeven(
    scenario: Scenario,
    structure: Structure,
    param: str,
    target: float | None = None,
    bracket: tuple[float, float] = (0.0, 1.0),
    *,
    metric: str = "fair_value_per_principal",
    against: Structure | None = None,
    xtol: float | None = None,
    n_boot: int = 200,
    **simulate_kw: Any,
) -> Breakeven:
    """Solve for the parameter value at which ``metric`` of ``structure`` hits a target.

    Parameters
    ----------
    scenario, structure
        The inputs; ``param`` applies to ``structure`` only.
    param : str
        Dotted path without a structure prefix (``"loan.rate"``, ``"warrant.coverage"``) or a
        scenario path (``"market.factor_loading"``).
    target : float, optional
        The value ``metric`` must reach.
    bracket : (float, float)
        The interval searched; the gap must change sign between its ends.
    metric : str
        Any metric of :data:`invlend.metrics.METRICS`. A tail metric (``"raroc"``,
        ``"eva"``, ...) is searched on its full-sample estimate, so "the rate that meets a
        RAROC hurdle" is ``breakeven(sc, pure, "loan.rate", target=0.15, metric="raroc")``.
    against : Structure, optional
        Instead of ``target``: match this structure's metric on the same firms.
    xtol : float, optional
        Absolute tolerance on the root (default ``1e-6 * (hi - lo)``).
    n_boot : int
        Bootstrap replicates of the gap at the root, for the standard error of a tail
        metric's root (0: its ``se`` is NaN, with the reason in ``note``); smooth metrics use
        influence values and ignore it.
    **simulate_kw
        Passed to :func:`invlend.simulate`; a ``seed`` is required.

    Returns
    -------
    Breakeven
        The root with its delta-method standard error ``se(gap at the root) / |slope|``.

    Notes
    -----
    Every evaluation runs on common random numbers (the same seed), so the gap is a smooth
    -- for a tail metric, continuous and piecewise smooth -- function of the parameter, and
    its root is found by Brent's method. A bracket whose ends give the same sign, or where
    the metric is undefined, raises ``ValueError`` after those two evaluations.
    """
    if not isinstance(structure, Structure):
        raise TypeError(f"structure: expected an invlend.Structure, got {type(structure)!r}")
    if (target is None) == (against is None):
        raise ValueError("target: give exactly one of target (a number) or against (a structure)")
    if target is not None:
        target = _checks.number("target", target)
    if against is not None and not isinstance(against, Structure):
        raise TypeError(f"against: expected an invlend.Structure, got {type(against)!r}")
    metric = _checks.metric("metric", metric, M.METRICS)
    n_boot = _checks.count("n_boot", n_boot, low=0)
    if isinstance(bracket, str | bytes) or not hasattr(bracket, "__len__") or len(bracket) != 2:
        raise ValueError(f"bracket: give two numbers (lo, hi), got {bracket!r}")
    lo, hi = (_checks.number(f"bracket[{i}]", x) for i, x in enumerate(bracket))
    if not lo < hi:
        raise ValueError(f"bracket: need lo < hi, got {bracket}")
    if xtol is not None:
        xtol = _checks.number("xtol", xtol, low=0.0, low_open=True)
    need_seed(simulate_kw, "break-even", "evaluations")
    structs = [structure] if against is None else [structure, against]
    if against is not None and against.name == structure.name:
        raise ValueError("against: give a structure with another name")
    full = param if param.split(".")[0] in Scenario.model_fields else f"{structure.name}.{param}"
    for v in (lo, hi):
        _check_path(scenario, structs, full, v)
    calls = 0

    def gap(x: float, boot: int = 0) -> tuple[float, float, str]:
        nonlocal calls
        calls += 1
        sc, st = set_param(scenario, structs, full, x)
        res = simulate(sc, st, **simulate_kw)
        if against is None:
            e = res.summary(n_boot=boot)[structure.name][metric]
            return e.estimate - target, e.se, e.note
        d = res.compare(baseline=against.name, n_boot=boot)[structure.name][metric]
        return d.estimate, d.se, d.note

    (f_lo, _, note_lo), (f_hi, _, note_hi) = gap(lo), gap(hi)
    if not (math.isfinite(f_lo) and math.isfinite(f_hi)):
        why = note_lo if not math.isfinite(f_lo) else note_hi
        raise _NoRoot(
            f"bracket: {metric} is undefined at an end of {bracket}" + (f" ({why})" if why else "")
        )
    if f_lo * f_hi > 0:
        goal = f"{metric} of {against.name}" if against is not None else f"{target:g}"
        raise _NoRoot(
            f"bracket: {metric} - {goal} has the same sign at both ends "
            f"({f_lo:+.4g} at {lo:g}, {f_hi:+.4g} at {hi:g}); widen the bracket"
        )
    tol = xtol if xtol is not None else 1e-6 * (hi - lo)
    root = float(brentq(lambda x: gap(x)[0], lo, hi, xtol=tol, maxiter=100))
    # A tail metric's gap has bootstrap replicates (on the run's own resamples) only here.
    _, se_gap, note = gap(root, n_boot if M.is_tail(metric) else 0)
    h = 0.01 * (hi - lo)
    a, b = max(lo, root - h), min(hi, root + h)
    slope = (gap(b)[0] - gap(a)[0]) / (b - a)
    se = abs(se_gap / slope) if slope != 0 else math.inf
    if not math.isfinite(se) and not note:
        note = "the gap is flat at the root" if slope == 0 else "standard error undefined"
    return Breakeven(
        param=param,
        metric=metric,
        structure=structure.name,
        value=root,
        se=se,
        ci_low=root - M.Z95 * se,
        ci_high=root + M.Z95 * se,
        target=target,
        against=None if against is None else against.name,
        slope=slope,
        evaluations=calls,
        note=note if not math.isfinite(se) else "",
    )


#: The answers of :func:`pricing_table`, one column each: (header, unit, what it is); the
#: header and the description name the table's ``meta`` in braces.
PRICING_QUANTITIES = {
    "fair_rate": ("fair rate", "rate",
                  "the rate of {pure} at which its fair_value_per_principal is 0"),
    "warrant_value_bp": ("warrant worth, bp/yr", "bp",
                         "the rate of {pure} at which its fair value equals {warrant}'s, minus "
                         "{warrant}'s rate {warrant_rate:.3%}: the warrant in bp of rate a year"),
    "breakeven_coverage": ("coverage for {discount_bp:g} bp", "rate",
                           "the warrant coverage (per unit of principal) at which {warrant} at "
                           "{discounted_rate:.3%}, {discount_bp:g} bp below {pure}, has "
                           "{pure}'s fair value"),
    "hurdle_rate": ("rate for RAROC {hurdle_raroc:.0%}", "rate",
                    "the rate of {pure} at which its raroc reaches {hurdle_raroc:.2%}"),
}  # fmt: skip


class PricingTable(Printed, Keyed, Rows, Document):
    """Break-even prices by starting stage, each with its Monte Carlo standard error.

    Index as ``table[stage][quantity]`` to get an :class:`~invlend.metrics.Estimate`; the
    quantities are :data:`PRICING_QUANTITIES`. ``print`` it for aligned text;
    :meth:`records` (one row per stage), ``to_frame()``, ``to_csv(path)`` and ``to_json()``
    export it. A quantity whose root is not in its bracket is NaN, with the reason in its
    ``note``.

    Attributes
    ----------
    stages : list of str
        The starting stages, one row each.
    breakevens : dict
        ``breakevens[stage][quantity]``: the :class:`Breakeven` behind each cell (its slope and
        number of simulations), ``None`` where no root was found.
    meta : dict
        The structures, the discount, the hurdle, the brackets and the run sizes and seed.
    """

    def __init__(
        self,
        data: dict[str, dict[str, M.Estimate]],
        breakevens: dict[str, dict[str, Breakeven | None]],
        meta: dict,
    ) -> None:
        self._data = data
        self.stages = list(data)
        self.breakevens = breakevens
        self.meta = dict(meta)

    _missing = "no stage {key!r}"

    def records(self) -> list[dict[str, Any]]:
        """One dict per stage: each quantity, its ``_se``, ``_ci_low``, ``_ci_high``, ``_note``."""
        out = []
        for stage, row in self._data.items():
            rec: dict[str, Any] = {"stage": stage}
            for q, e in row.items():
                rec.update(estimate_columns(q, e))
            out.append(rec)
        return out

    def fields(self) -> list[str]:
        """The columns of :meth:`records`."""
        return ["stage", *(c for q in PRICING_QUANTITIES for c in estimate_fields(q))]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: the metadata and the records."""
        return {"meta": self.meta, "rows": json_ready(self.records())}

    @staticmethod
    def _format(quantity: str, x: float) -> str:
        if not math.isfinite(x):
            return "n/a"
        return f"{x:.1f}" if PRICING_QUANTITIES[quantity][1] == "bp" else f"{100 * x:.3f}%"

    def _parts(self) -> tuple[str, list[str], list[list[str]], list[str]]:
        """Title, header, rows and footer lines, for the text and the HTML table."""
        m = self.meta
        title = (
            f"invlend pricing by starting stage: {m['pure']} against {m['warrant']}, "
            f"{m['n_portfolios']} portfolios x {m['portfolio_size']} firms, seed {m['seed']} "
            "(estimate ± standard error; common random numbers)"
        )
        marks = Footnotes(self._format)
        rows = [[stage, *(marks.cell(q, e) for q, e in row.items())]
                for stage, row in self._data.items()]  # fmt: skip
        header = ["stage", *(v[0].format(**m) for v in PRICING_QUANTITIES.values())]
        lines = [f"{v[0].format(**m)}: {v[2].format(**m)}" for v in PRICING_QUANTITIES.values()]
        return title, header, rows, [*marks.lines(), *lines]


def pick_stages(
    scenario: Scenario, stages: Sequence[str | int] | str | int | None, name: str = "stages"
) -> list[int]:
    """Positions of ``stages`` (names or positions; ``None``: every stage), each once.

    An unknown stage raises ``ValueError`` naming the argument ``name``.
    """
    if stages is None:
        return list(range(len(scenario.stages)))
    items = [stages] if isinstance(stages, str | int) else list(stages)
    if not items:
        raise ValueError(f"{name}: give at least one stage (a name or a position)")
    names = [s.name for s in scenario.stages]
    out = []
    for ref in items:
        if isinstance(ref, str) and ref in names:
            out.append(names.index(ref))
        elif isinstance(ref, int) and not isinstance(ref, bool) and 0 <= ref < len(names):
            out.append(ref)
        else:
            raise ValueError(f"{name}: no stage {ref!r}; stages are {names}")
    return list(dict.fromkeys(out))


def starting_stage(scenario: Scenario, stage: str | int) -> Scenario:
    """A copy of ``scenario`` whose applicants all start in ``stage`` (a name or a position).

    Every stage is kept (firms still advance through the later ones); only the weights move:
    1 on ``stage``, 0 on the others.
    """
    k = pick_stages(scenario, [stage])[0]
    stages = [{**s.model_dump(), "weight": 1.0 if i == k else 0.0}
              for i, s in enumerate(scenario.stages)]  # fmt: skip
    return scenario.replace(stages=stages)


def _bracket(name: str, value: Any) -> tuple[float, float]:
    if isinstance(value, str | bytes) or not hasattr(value, "__len__") or len(value) != 2:
        raise ValueError(f"{name}: give two numbers (lo, hi), got {value!r}")
    lo, hi = (_checks.number(f"{name}[{i}]", x) for i, x in enumerate(value))
    if not lo < hi:
        raise ValueError(f"{name}: need lo < hi, got {value}")
    return lo, hi


def pricing_table(
    scenario: Scenario,
    *,
    pure: Structure | None = None,
    warrant: Structure | None = None,
    stages: Sequence[str | int] | None = None,
    hurdle_raroc: float = 0.15,
    discount_bp: float = 100.0,
    rate_bracket: tuple[float, float] = (0.0, 0.3),
    coverage_bracket: tuple[float, float] = (0.0, 2.0),
    n_boot: int = 200,
    progress: bool = False,
    **simulate_kw: Any,
) -> PricingTable:
    """Break-even prices of a pure loan and a warrant loan for each starting stage.

    For each stage, on a copy of the scenario whose applicants all start there
    (:func:`starting_stage`), four break-even searches (:func:`breakeven`), each on common
    random numbers:

    * ``fair_rate`` -- the pure loan's rate at which its ``fair_value_per_principal`` is 0;
    * ``warrant_value_bp`` -- the pure loan's rate at which its fair value equals the warrant
      loan's, minus the warrant loan's rate, in bp: "the warrant is worth N bp a year";
    * ``breakeven_coverage`` -- the warrant coverage at which the warrant loan priced
      ``discount_bp`` below the pure loan has the pure loan's fair value: "what coverage pays
      for 100 bp";
    * ``hurdle_rate`` -- the pure loan's rate at which its ``raroc`` (a tail metric, on its
      full-sample estimate) meets ``hurdle_raroc``.

    Parameters
    ----------
    scenario : Scenario
        The applicants and the market; every stage keeps its dynamics.
    pure, warrant : Structure, optional
        The pure loan and the warrant loan (default :func:`invlend.pure_loan` and
        :func:`invlend.warrant_loan`, which share every loan term but the rate). ``warrant``
        must carry a warrant.
    stages : sequence of str or int, optional
        The starting stages, by name or position (default: every stage).
    hurdle_raroc : float
        RAROC the pure loan must meet, per year (default 15%: the top of the 10-15% hurdle
        rates banks use, see ``docs/capital.md``).
    discount_bp : float
        How far below the pure loan's rate the warrant loan is priced for
        ``breakeven_coverage``, in bp (default 100).
    rate_bracket, coverage_bracket : (float, float)
        Where the rates (default 0 to 30% a year) and the coverage (default 0 to 2 per unit
        of principal) are searched. A root outside its bracket leaves that cell NaN, with
        the reason in its note.
    n_boot : int
        Bootstrap replicates for the standard error of ``hurdle_rate`` (0: NaN, with the
        reason); the fair-value roots use influence values.
    progress : bool
        Print one line per search on standard error.
    **simulate_kw
        Passed to :func:`invlend.simulate` (``n_portfolios``, ``portfolio_size``, ``seed``,
        ``backend``, ...); a ``seed`` is required, and the risk-neutral measure (the default
        ``measures``).

    Returns
    -------
    PricingTable
        One row per stage; each cell an :class:`~invlend.metrics.Estimate` whose standard
        error is the delta method's (:class:`Breakeven`).

    Notes
    -----
    Rates are solved to 1e-6 (0.01 bp) and coverage to 1e-5 of principal, far inside
    their Monte Carlo errors. Each search runs about 12-16 simulations of one or two
    structures. ``hurdle_rate`` rests on the 0.1% quantile of portfolio value (economic
    capital): with fewer than about 10,000 portfolios it is rough.
    """
    pure = pure_loan() if pure is None else pure
    warrant = warrant_loan() if warrant is None else warrant
    for what, s in (("pure", pure), ("warrant", warrant)):
        if not isinstance(s, Structure):
            raise TypeError(f"{what}: expected an invlend.Structure, got {type(s)!r}")
    if warrant.warrant is None:
        raise ValueError(f"warrant: {warrant.name!r} carries no warrant (warrant=None)")
    if pure.name == warrant.name:
        raise ValueError(f"warrant: give it a name other than the pure loan's ({pure.name!r})")
    hurdle_raroc = _checks.number("hurdle_raroc", hurdle_raroc, low=-1.0, high=10.0)
    discount_bp = _checks.number("discount_bp", discount_bp)
    discounted = pure.loan.rate - discount_bp / 1e4
    if not 0.0 <= discounted <= 1.0:
        raise ValueError(
            f"discount_bp: {discount_bp:g} bp below the pure loan's rate "
            f"{100 * pure.loan.rate:.3f}% is a rate of {100 * discounted:.3f}%, outside [0, 100%]"
        )
    rates = _bracket("rate_bracket", rate_bracket)
    coverages = _bracket("coverage_bracket", coverage_bracket)
    n_boot = _checks.count("n_boot", n_boot, low=0)
    need_fair_values(simulate_kw, "a pricing table", "its searches")
    picked = pick_stages(scenario, stages)
    cheap = warrant.replace(loan=warrant.loan.replace(rate=discounted))
    for v in rates:
        _check_path(scenario, [pure], f"{pure.name}.loan.rate", v)
    for v in coverages:
        _check_path(scenario, [cheap], f"{cheap.name}.warrant.coverage", v)
    fv = "fair_value_per_principal"
    searches = {
        "fair_rate": dict(structure=pure, param="loan.rate", target=0.0, bracket=rates,
                          metric=fv, xtol=1e-6),
        "warrant_value_bp": dict(structure=pure, param="loan.rate", against=warrant,
                                 bracket=rates, metric=fv, xtol=1e-6),
        "breakeven_coverage": dict(structure=cheap, param="warrant.coverage", against=pure,
                                   bracket=coverages, metric=fv, xtol=1e-5),
        "hurdle_rate": dict(structure=pure, param="loan.rate", target=hurdle_raroc,
                            bracket=rates, metric="raroc", xtol=1e-6, n_boot=n_boot),
    }  # fmt: skip
    data: dict[str, dict[str, M.Estimate]] = {}
    found: dict[str, dict[str, Breakeven | None]] = {}
    for k in picked:
        name = scenario.stages[k].name
        sc = starting_stage(scenario, k)
        data[name], found[name] = {}, {}
        for q, search in searches.items():
            try:
                b = breakeven(sc, **search, **simulate_kw)
            except _NoRoot as exc:
                b, cell = None, M.make_estimate(math.nan, math.nan, str(exc))
            else:
                shift, scale = (warrant.loan.rate, 1e4) if q == "warrant_value_bp" else (0.0, 1.0)
                cell = M.make_estimate(scale * (b.value - shift), scale * b.se, b.note)
            data[name][q], found[name][q] = cell, b
            if progress:
                sys.stderr.write(f"pricing {name}: {q} = {cell.estimate:.6g}\n")
    meta = {
        "pure": pure.name,
        "warrant": warrant.name,
        "warrant_rate": warrant.loan.rate,
        "discount_bp": discount_bp,
        "discounted_rate": discounted,
        "hurdle_raroc": hurdle_raroc,
        "rate_bracket": list(rates),
        "coverage_bracket": list(coverages),
        "n_boot": n_boot,
        **{k: simulate_kw.get(k, _SIMULATE_DEFAULTS[k].default)
           for k in ("n_portfolios", "portfolio_size")},
        "seed": seed if isinstance(seed := simulate_kw["seed"], int) else repr(seed),
    }  # fmt: skip
    return PricingTable(data, found, meta)


def sensitivity(
    scenario: Scenario,
    structure: Structure,
    params: Sequence[str],
    *,
    metric: str = "fair_value_per_principal",
    rel_change: float = 0.2,
    **simulate_kw: Any,
) -> dict[str, dict[str, float]]:
    """The metric with each parameter moved down and up by ``rel_change`` (a tornado's data).

    Returns ``{param: {"low": value, "high": value, "base": value, "low_value": x_lo,
    "high_value": x_hi}}`` on common random numbers; parameters are scaled from their base
    value, so a parameter at 0 does not move.
    """
    rel_change = _checks.number("rel_change", rel_change, low=0.0, low_open=True)
    if not rel_change < 1:
        raise ValueError(f"rel_change: must be in (0, 1), got {rel_change}")
    if isinstance(params, str):
        params = [params]
    metric = _checks.metric("metric", metric, M.METRICS)
    need_seed(simulate_kw, "sensitivity", "its runs")
    base = simulate(scenario, structure, **simulate_kw).summary(n_boot=0)[structure.name][metric]
    out: dict[str, dict[str, float]] = {}
    for p in params:
        full = p if p.split(".")[0] in Scenario.model_fields else f"{structure.name}.{p}"
        x0 = _get_param(scenario, structure, full)
        row = {"base": base.estimate}
        for side, factor in (("low", 1 - rel_change), ("high", 1 + rel_change)):
            _check_path(scenario, [structure], full, x0 * factor)
            sc, st = set_param(scenario, [structure], full, x0 * factor)
            s = simulate(sc, st, **simulate_kw).summary(n_boot=0)[structure.name][metric]
            row[side] = s.estimate
            row[f"{side}_value"] = x0 * factor
        out[p] = row
    return out


def _get_param(scenario: Scenario, structure: Structure, path: str) -> float:
    keys = path.split(".")
    if keys[0] in Scenario.model_fields:
        node: Any = scenario.model_dump()
        if keys[0] == "stages" and len(keys) == 3:
            try:
                idx = scenario.stage_index(keys[1])
            except KeyError:  # checked by _check_path: a stage's position
                idx = int(keys[1])
            return float(node["stages"][idx][keys[2]])
    else:
        node = structure.model_dump()
        keys = keys[1:]
    for k in keys:
        if not isinstance(node, dict) or k not in node or node[k] is None:
            raise _bad_path(path, f"no value at {k!r}")
        node = node[k]
    return float(node)
