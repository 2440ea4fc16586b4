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

Example
-------
>>> import invlend as il
>>> sw = il.sweep(il.Scenario.default(), il.default_structures(), "loan.rate",
...               [0.04, 0.05], n_portfolios=40, portfolio_size=25, seed=1, n_boot=0)
>>> sorted({r["loan.rate"] for r in sw.records()})
[0.04, 0.05]
"""

from __future__ import annotations

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
from invlend._tables import Footnotes, Rows, text_table
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
from invlend.structures import structure_list

__all__ = ["Breakeven", "SweepResult", "breakeven", "sensitivity", "set_param", "sweep"]

_COMPONENTS = {"loan", "warrant", "equity", "linkage", "screening", "risk_share", "risk_pool"}
_NEW_COMPONENT = {"warrant": Warrant, "equity": Equity, "risk_share": RiskShare,
                  "risk_pool": RiskPool}  # fmt: skip
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

    def table(self, metric: str = "npv_per_principal") -> str:
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

    def plot(self, metric: str = "npv_per_principal", **kw):
        """Curves of ``metric`` with 95% bands; see :func:`invlend.plotting.plot_sweep`."""
        from invlend.plotting import plot_sweep

        return plot_sweep(self, metric=metric, **kw)


def _need_seed(simulate_kw: dict[str, Any], who: str, what: str) -> None:
    """Refuse ``seed=None``: fresh entropy per run would leave ``what`` of ``who`` unpaired."""
    why = f"{who} needs a fixed seed so that {what} are paired"
    _checks.seed("seed", simulate_kw.get("seed"), fixed=why)


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
    _need_seed(simulate_kw, "a sweep", "its points")
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

    def __str__(self) -> str:
        goal = f"{self.metric} of {self.against}" if self.against else f"{self.target:g}"
        return (
            f"{self.structure}: {self.metric} reaches {goal} at {self.param} = {self.value:.6g} "
            f"± {self.se:.3g} (95% interval {self.ci_low:.6g} to {self.ci_high:.6g}; "
            f"{self.evaluations} simulations)"
        )


def breakeven(
    scenario: Scenario,
    structure: Structure,
    param: str,
    target: float | None = None,
    bracket: tuple[float, float] = (0.0, 1.0),
    *,
    metric: str = "npv_per_principal",
    against: Structure | None = None,
    xtol: float | None = None,
    **simulate_kw: Any,
) -> Breakeven:
    """Solve for the parameter value at which ``metric`` of ``structure`` hits a target.

    Either ``target`` (a number) or ``against`` (another structure: match its metric on the
    same firms) is given. ``param`` applies to ``structure`` only: give it without a
    structure prefix (``"loan.rate"``) or as a scenario path. The metric gap is evaluated on
    common random numbers and its root found by Brent's method in ``bracket``; a bracket
    whose ends give the same sign raises ``ValueError`` before the search.
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
    if M.is_tail(metric):
        raise ValueError(f"metric: {metric!r} is a tail metric; break-even needs a smooth one")
    if isinstance(bracket, str | bytes) or not hasattr(bracket, "__len__") or len(bracket) != 2:
        raise ValueError(f"bracket: give two numbers (lo, hi), got {bracket!r}")
    lo, hi = (_checks.number(f"bracket[{i}]", x) for i, x in enumerate(bracket))
    if not lo < hi:
        raise ValueError(f"bracket: need lo < hi, got {bracket}")
    if xtol is not None:
        xtol = _checks.number("xtol", xtol, low=0.0, low_open=True)
    _need_seed(simulate_kw, "break-even", "evaluations")
    structs = [structure] if against is None else [structure, against]
    if against is not None and against.name == structure.name:
        raise ValueError("against: give a structure with another name")
    full = param if param.split(".")[0] in Scenario.model_fields else f"{structure.name}.{param}"
    for v in (lo, hi):
        _check_path(scenario, structs, full, v)
    calls = 0

    def gap(x: float) -> tuple[float, float]:
        nonlocal calls
        calls += 1
        sc, st = set_param(scenario, structs, full, x)
        res = simulate(sc, st, **simulate_kw)
        if against is None:
            e = res.summary(n_boot=0)[structure.name][metric]
            return e.estimate - target, e.se
        d = res.compare(baseline=against.name, n_boot=0)[structure.name][metric]
        return d.estimate, d.se

    f_lo, f_hi = gap(lo)[0], gap(hi)[0]
    if not (math.isfinite(f_lo) and math.isfinite(f_hi)):
        raise ValueError(f"bracket: {metric} is undefined at an end of {bracket}")
    if f_lo * f_hi > 0:
        goal = f"{metric} of {against.name}" if against is not None else f"{target:g}"
        raise ValueError(
            f"bracket: {metric} - {goal} has the same sign at both ends "
            f"({f_lo:+.4g} at {lo:g}, {f_hi:+.4g} at {hi:g}); widen the bracket"
        )
    tol = xtol if xtol is not None else 1e-6 * (hi - lo)
    root = float(brentq(lambda x: gap(x)[0], lo, hi, xtol=tol, maxiter=100))
    _, se_gap = gap(root)
    h = 0.01 * (hi - lo)
    a, b = max(lo, root - h), min(hi, root + h)
    slope = (gap(b)[0] - gap(a)[0]) / (b - a)
    se = abs(se_gap / slope) if slope != 0 else math.inf
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
    )


def sensitivity(
    scenario: Scenario,
    structure: Structure,
    params: Sequence[str],
    *,
    metric: str = "npv_per_principal",
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
    _need_seed(simulate_kw, "sensitivity", "its runs")
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
