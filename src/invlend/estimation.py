"""Estimation: every metric with its clustered standard error, and paired differences.

Overview
--------
:class:`Estimator` turns the per-portfolio aggregates of a
:class:`~invlend.results.SimulationResult` into the estimates behind its ``summary``,
``compare`` and ``compare_runs``. Smooth metrics carry influence
values (delta method, clustered by portfolio), tail metrics bootstrap replicates drawn from the
run's seed (:mod:`invlend.metrics`); a paired difference uses the per-portfolio differences of
both, so its standard error reflects the common random numbers. Every NaN carries its reason.

:class:`Summary` and :class:`Comparison` are the tables they return: a mapping
``table[structure][metric]`` of :class:`~invlend.metrics.Estimate` or :class:`Difference`, with
text, CSV, JSON and pandas exports from :mod:`invlend._tables`.

Example
-------
>>> import invlend as il
>>> res = il.simulate(il.Scenario.default(), n_portfolios=50, portfolio_size=40, seed=7)
>>> d = res.compare("pure_loan")["warrant_loan"]["pd"]
>>> abs(d.z) < 10
True
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from invlend import _checks
from invlend import capital as C
from invlend import metrics as M
from invlend._boot import COLUMNS, boot_key, tail_estimates
from invlend._sim import layout as L
from invlend._sim.layout import AGG_ACCEPTED, AGG_PRINCIPAL, AGG_PV_WARRANT
from invlend._tables import (
    Document,
    Footnotes,
    Keyed,
    Rows,
    format_estimate,
    html_table,
    json_ready,
    metric_rows,
    text_table,
)
from invlend.config import Scenario, Structure
from invlend.tail import tail_points

__all__ = ["Comparison", "Decomposition", "Difference", "Estimator", "Summary"]

#: Most bootstrap replicates a summary takes (each costs a pass over the portfolios).
MAX_BOOT = 100_000


class Difference(NamedTuple):
    """A paired difference (structure minus baseline) with its standard error."""

    estimate: float
    se: float
    ci_low: float
    ci_high: float
    z: float
    note: str = ""


class _Table(Mapping, Rows, Document):
    """Shared behaviour of :class:`Summary` and :class:`Comparison`."""

    _row_type: type = M.Estimate
    _difference = False  # cells are paired differences: signed, rates in percentage points

    def __init__(self, data: dict[str, dict[str, tuple]], notes: list[str], meta: dict) -> None:
        self._data = data
        self.notes = list(notes)
        self.meta = dict(meta)

    def __getitem__(self, key: str) -> dict[str, Any]:
        try:
            return dict(self._data[key])
        except KeyError:
            base = self.meta.get("baseline")
            why = " (the baseline of this comparison)" if key == base and key is not None else ""
            raise KeyError(f"no structure named {key!r}{why}; have {list(self._data)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def records(self) -> list[dict[str, Any]]:
        """One dict per (structure, metric), in display order."""
        out = []
        for name, row in self._data.items():
            for metric, est in row.items():
                out.append({"structure": name, "metric": metric, **est._asdict()})
        return out

    def fields(self) -> list[str]:
        """The columns of :meth:`records`."""
        return ["structure", "metric", *self._row_type._fields]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: the records, notes and run metadata (NaN written as null)."""
        return {"meta": self.meta, "notes": self.notes, "rows": json_ready(self.records())}

    def __repr__(self) -> str:
        return self.__str__()

    def _head(self) -> tuple[str, list[str]]:
        """The title line (with its newline) and the column titles of the table."""
        raise NotImplementedError

    def _parts(self) -> tuple[str, list[str], list[list[str]], list[str]]:
        """Title line, header, rows and footer lines, for the text and the HTML table."""
        head, columns = self._head()
        marks = Footnotes(difference=self._difference)
        rows = metric_rows(self._data, marks)
        footer = [*marks.lines(), *(f"note: {n}" for n in self.notes)]
        return head, ["metric", *columns], rows, footer

    def __str__(self) -> str:
        head, header, rows, footer = self._parts()
        return head + text_table(header, rows) + "".join(f"\n{line}" for line in footer)

    def _repr_html_(self) -> str:
        head, header, rows, footer = self._parts()
        return html_table(header, rows, title=head.strip(), notes=footer)


class Summary(_Table):
    """Every metric of every structure with its standard error and 95% interval.

    Index as ``summary[structure][metric]`` to get an :class:`~invlend.metrics.Estimate`.
    """

    _row_type = M.Estimate

    def _head(self) -> tuple[str, list[str]]:
        head = (
            f"invlend summary: {self.meta['n_portfolios']} portfolios x "
            f"{self.meta['portfolio_size']} firms, seed {self.meta['seed']} "
            "(estimate ± standard error clustered by portfolio)\n"
        )
        if self.meta.get("sampling", "plain") != "plain":
            head += f"importance sampling, every estimate weighted: {self.meta['sampling']}\n"
        return head, list(self._data)


class Comparison(_Table):
    """Paired differences (structure minus baseline) of every metric.

    Index as ``comparison[structure][metric]`` to get a :class:`Difference`.
    """

    _row_type = Difference
    _difference = True

    def _head(self) -> tuple[str, list[str]]:
        names = list(self._data)
        base = self.meta["baseline"]
        if self.meta.get("runs"):
            head = (
                "invlend paired comparison of two runs (this run - other run ± standard error; "
                "rates in percentage points)\n"
            )
            return head, [f"{n}: this - other" for n in names]
        head = (
            f"invlend paired comparison against {base!r} (difference ± standard error; "
            "rates in percentage points)\n"
        )
        return head, [f"{n} - {base}" for n in names]


class Decomposition(Keyed, Rows, Document):
    """A structure's value per unit lent, part by part, each with its standard error.

    Index as ``decomposition[part]`` to get an :class:`~invlend.metrics.Estimate`; the parts
    are :data:`invlend._sim.layout.COMPONENTS` and ``"total"``, their sum (to rounding, the
    structure's ``fair_value_per_principal`` or ``npv_per_principal``). Every part is a ratio
    of sums over portfolios with the same denominator (the principal lent), so the part
    estimates add up to the total and their influence values to the total's.
    """

    def __init__(self, structure: str, measure: str, data: dict[str, M.Estimate],
                 meta: dict) -> None:  # fmt: skip
        self.structure = structure
        self.measure = measure
        self._data = data
        self.meta = dict(meta)

    _missing = "no part {key!r}"

    def records(self) -> list[dict[str, Any]]:
        """One dict per part, ``"total"`` last."""
        return [
            {"structure": self.structure, "measure": self.measure, "part": k, **e._asdict()}
            for k, e in self._data.items()
        ]

    def fields(self) -> list[str]:
        """The columns of :meth:`records`."""
        return ["structure", "measure", "part", *M.Estimate._fields]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: the records and the run's metadata."""
        return {"meta": self.meta, "rows": json_ready(self.records())}

    def _parts(self) -> tuple[str, list[str], list[list[str]]]:
        what = "fair value" if self.measure == "risk_neutral" else "real-world NPV"
        head = (
            f"invlend decomposition of {self.structure!r}: {what} per unit lent, "
            f"{self.meta['n_portfolios']} portfolios x {self.meta['portfolio_size']} firms "
            "(estimate ± standard error clustered by portfolio)\n"
        )
        rows = [[k, format_estimate(e.estimate, e.se, percent=True, sign=True)]
                for k, e in self.items()]  # fmt: skip
        return head, ["part", "per unit lent"], rows

    def __str__(self) -> str:
        head, header, rows = self._parts()
        return head + text_table(header, rows)

    def _repr_html_(self) -> str:
        head, header, rows = self._parts()
        return html_table(header, rows, title=head.strip())

    def __repr__(self) -> str:
        return self.__str__()


def shown_parts(decompositions: Mapping[str, Decomposition]) -> list[str]:
    """The parts worth showing for these decompositions, in order.

    Every part that is not zero in at least one of them, and ``"total"``.
    """
    ds = list(decompositions.values())
    return [k for k in ds[0] if k == "total" or any(d[k].estimate != 0 for d in ds)]


def _equity_charge(
    structure: Structure,
    scenario: Scenario,
    fair: np.ndarray | None,
    n_port: int,
    weights: np.ndarray | None = None,
) -> M.Smooth:
    """Equity-risk capital of the structure's equity stake and warrant per unit of principal.

    The warrant's value is its fair value per unit lent from the risk-neutral aggregates
    ``fair``, an estimate whose influence values the charge carries (so the standard error of
    ``irb_capital`` includes the warrant's); without them, the Black-Scholes proxy of
    :func:`invlend.capital.warrant_value_proxy` over the scenario's entry stages, with a life
    of ``expiry_years``, a constant. Returns the charge and its influence values per portfolio.
    """
    charge, influence = 0.0, np.zeros(n_port)
    e, w = structure.equity, structure.warrant
    if e is not None:
        charge += M.equity_charge(e.equity_to_value, structure.loan.loan_to_value)
    if w is not None and fair is not None:
        fw = fair if weights is None else fair * weights[:, None]
        value, u_value = M.ratio(fw[:, AGG_PV_WARRANT], fw[:, AGG_PRINCIPAL])
        if math.isfinite(value):
            charge += M.warrant_charge(value)
            influence = M.warrant_charge(1.0) * u_value  # the charge is linear in the value
    elif w is not None:
        stages = scenario.stages
        value = C.warrant_value_proxy(
            w.coverage,
            w.share_of_gain,
            [s.weight for s in stages],
            [s.volatility for s in stages],
            [s.default_hazard for s in stages],
            scenario.market.discount_rate,
            w.expiry_years,
        )
        charge += M.warrant_charge(value)
    return charge, influence


def _differences(
    smooth_a: dict, tail_a: dict, smooth_b: dict, tail_b: dict, notes: tuple[dict, dict, str, str]
) -> dict:
    """Every metric of A minus B, with SEs from paired influence values or replicates.

    ``notes`` holds the NaN reasons of A's and B's estimates and the two names to say whose.
    """
    notes_a, notes_b, name_a, name_b = notes
    row = {}
    for metric in M.METRICS:
        if M.is_tail(metric):
            (ea, ra), (eb, rb) = tail_a[metric], tail_b[metric]
            d = ra - rb
            ok = d.size > 1 and np.all(np.isfinite(d))
            se = float(np.std(d, ddof=1)) if ok else math.nan
        else:
            (ea, ua), (eb, ub) = smooth_a[metric], smooth_b[metric]
            se = M.influence_se(ua - ub)
        diff = ea - eb
        z = diff / se if se > 0 and math.isfinite(se) else math.nan
        note = ""
        if not (math.isfinite(diff) and math.isfinite(se)):
            sides = ((name_a, notes_a), (name_b, notes_b))
            whose = [f"{name}: {n[metric]}" for name, n in sides if n[metric]]
            note = "; ".join(whose) or (
                "standard error undefined for this run" if math.isfinite(diff) else "undefined"
            )
            for omitted in M.OMITTED:
                if all(n[metric] == omitted for n in (notes_a, notes_b)):
                    note = omitted
        e = M.make_estimate(diff, se)
        row[metric] = Difference(e.estimate, e.se, e.ci_low, e.ci_high, float(z), note)
    return row


class Estimator:
    """The estimates of one result, computed once per ``(n_boot, hurdle, sales_eur_m)``.

    ``result`` is a :class:`~invlend.results.SimulationResult`: a mapping structure name ->
    :class:`~invlend.results.StructureResult` with its :class:`~invlend._sim.layout.RunInfo`.
    """

    def __init__(self, result) -> None:
        self.result = result
        self._cache: dict = {}

    def estimates(
        self, n_boot: int, hurdle: float, sales_eur_m: float | None, progress: bool = False
    ) -> tuple[dict, dict, list[str]]:
        """Per structure: smooth metrics with influence values, tail replicates; and notes.

        ``progress`` shows a bar over the bootstrap replicates while they are computed (a
        cached call computes nothing and shows none).
        """
        n_boot = _checks.count("n_boot", n_boot, low=0, high=MAX_BOOT)
        hurdle = _checks.number("hurdle", hurdle, low=-1.0, high=10.0)
        if sales_eur_m is not None:
            sales_eur_m = _checks.number("sales_eur_m", sales_eur_m, low=0.0)
        key = (n_boot, hurdle, sales_eur_m)
        if key not in self._cache:
            self._cache[key] = self._compute(n_boot, hurdle, sales_eur_m, progress)
        return self._cache[key]

    def _compute(
        self, n_boot: int, hurdle: float, sales_eur_m: float | None, progress: bool
    ) -> tuple[dict, dict, list[str]]:
        res, run = self.result, self.result.run
        size, n_port = run.portfolio_size, run.n_portfolios
        sc = res.scenario
        w = self.weights
        smooth = {
            n: M.smooth_metrics(r.aggregates, r.portfolio_irr, size,
                                C.effective_maturity(r.structure.loan, sc.steps_per_year),
                                hurdle, sales_eur_m,
                                _equity_charge(r.structure, sc, r.fair_aggregates, n_port, w),
                                r.fair_aggregates, w)
            for n, r in res.items()
        }  # fmt: skip
        names = list(res)
        key = boot_key(run.seed, run.seed_spawn_key)
        est, reps = tail_estimates([res[n].aggregates for n in names],
                                   [res[n].fair_aggregates for n in names], w, hurdle,
                                   n_boot if n_port >= 2 else 0, key, progress,
                                   control=w is not None)  # fmt: skip
        tail = {
            n: {k: (float(est[s, j]), reps[:, s, j]) for j, k in enumerate(COLUMNS)}
            for s, n in enumerate(names)
        }
        return smooth, tail, self._run_notes()

    @property
    def weights(self) -> np.ndarray | None:
        """The run's importance weights, or ``None`` for plain sampling (all weights 1)."""
        res = self.result
        return None if res.run.tail is None else np.asarray(res.weights)

    def _run_notes(self) -> list[str]:
        """Notes on the run as a whole: what its size leaves rough or undefined."""
        res, n_port = self.result, self.result.run.n_portfolios
        notes = []
        if n_port < 2:
            notes.append("standard errors need at least 2 portfolios")
        for n, r in res.items():
            if r.aggregates[:, AGG_ACCEPTED].sum() == 0:
                rate = r.structure.screening.acceptance_rate
                notes.append(
                    f"{n}: nobody was accepted in any portfolio (screening acceptance_rate "
                    f"{rate:g} of {res.run.portfolio_size} applicants each): its loan metrics "
                    "are undefined"
                )
                continue
            bad = int(np.sum(~np.isfinite(r.portfolio_irr)))
            if bad:
                notes.append(
                    f"{n}: IRR undefined in {bad} of {n_port} portfolios (nothing "
                    "lent, or no rate in [-99.97%, +298000%] prices the cash flows); irr "
                    "averages the others"
                )
        if res.run.tail is None:
            beyond = n_port * (1.0 - 0.999)
            if beyond < 10:
                notes.append(
                    f"{n_port} portfolios leave {beyond:.1f} beyond the 99.9% loss "
                    "quantile: loss_var_999, loss_es_999, economic_capital, credit_capital, "
                    "raroc and eva are rough; use >= 10000 portfolios for them"
                )
        else:  # importance sampling: count the sampled portfolios in the tails
            few = min(tail_points(res, "loss_var_999"), tail_points(res, "economic_capital"))
            if few < 10:
                notes.append(
                    f"only {few} sampled portfolios lie at or beyond a 99.9% quantile: "
                    "loss_var_999, loss_es_999, economic_capital, credit_capital, raroc and eva "
                    "are rough; simulate more portfolios"
                )
        return notes

    def row(self, name: str, smooth: dict, tail: dict, n_boot: int) -> dict[str, M.Estimate]:
        """Every metric of structure ``name`` as an Estimate, with the reason of any NaN."""
        r = self.result[name]
        row = {}
        for metric in M.METRICS:
            reps = None
            if M.is_tail(metric):
                est, reps = tail[metric]
                ok = reps.size > 1 and np.all(np.isfinite(reps))
                se = float(np.std(reps, ddof=1)) if ok else math.nan
            else:
                est, u = smooth[metric]
                se = M.influence_se(u)
            note = M.nan_notes(
                metric, est, se, r.aggregates, has_pool=r.structure.risk_pool is not None,
                n_boot=n_boot, has_fair=r.fair_aggregates is not None, replicates=reps,
                lgd=smooth["lgd"][0], economic_capital=tail["economic_capital"][0],
                irb_capital=smooth["irb_capital"][0],
            )  # fmt: skip
            row[metric] = M.make_estimate(est, se, note)
        return row

    def _notes(self, smooth: dict, tail: dict, n_boot: int) -> dict[str, dict[str, str]]:
        """The NaN reason of every structure's every metric."""
        return {
            n: {m: e.note for m, e in self.row(n, smooth[n], tail[n], n_boot).items()}
            for n in self.result
        }

    def meta(self, n_boot: int) -> dict[str, Any]:
        """The run's record as the tables show it."""
        run = self.result.run
        keys = ("n_portfolios", "portfolio_size", "seed", "backend")
        sampling = "plain" if run.tail is None else str(self.result.tilt)
        return {**{k: getattr(run, k) for k in keys}, "n_boot": n_boot, "sampling": sampling,
                "versions": run.versions}  # fmt: skip

    def summary(
        self, n_boot: int, hurdle: float, sales_eur_m: float | None, progress: bool = False
    ) -> Summary:
        """See :meth:`invlend.results.SimulationResult.summary`."""
        smooth, tail, notes = self.estimates(n_boot, hurdle, sales_eur_m, progress)
        data = {n: self.row(n, smooth[n], tail[n], n_boot) for n in self.result}
        return Summary(data, notes, self.meta(n_boot))

    def compare(
        self,
        baseline: str,
        n_boot: int,
        hurdle: float,
        sales_eur_m: float | None,
        progress: bool = False,
    ) -> Comparison:
        """See :meth:`invlend.results.SimulationResult.compare`."""
        if baseline not in self.result:
            raise ValueError(f"baseline: no structure named {baseline!r}; have {list(self.result)}")
        smooth, tail, notes = self.estimates(n_boot, hurdle, sales_eur_m, progress)
        why = self._notes(smooth, tail, n_boot)
        data = {
            n: _differences(smooth[n], tail[n], smooth[baseline], tail[baseline],
                            (why[n], why[baseline], n, baseline))
            for n in self.result
            if n != baseline
        }  # fmt: skip
        return Comparison(data, notes, {**self.meta(n_boot), "baseline": baseline})

    def decompose(self, name: str, measure: str) -> Decomposition:
        """See :meth:`invlend.results.SimulationResult.decompose`."""
        if name not in self.result:
            raise ValueError(f"structure: no structure named {name!r}; have {list(self.result)}")
        r = self.result[name]
        if measure not in ("real_world", "risk_neutral"):
            raise ValueError(
                f"measure: unknown {measure!r}; choices are ['real_world', 'risk_neutral']"
            )
        agg = r.aggregates if measure == "real_world" else r.fair_aggregates
        if agg is None:
            raise ValueError(
                "measure: this run has no risk-neutral measure; simulate with "
                "measures=('real_world', 'risk_neutral') for fair values"
            )
        w = self.weights
        if w is not None:
            agg = agg * w[:, None]
        lent = r.aggregates[:, AGG_PRINCIPAL] * (1.0 if w is None else w)
        data, total, u_total = {}, 0.0, np.zeros(lent.shape[0])
        for part in L.COMPONENTS:
            est, u = M.ratio(agg[:, L.AGG_PV[part]], lent)
            total, u_total = total + est, u_total + u
            note = "" if math.isfinite(est) else "the principal lent is 0"
            data[part] = M.make_estimate(est, M.influence_se(u), note)
        note = "" if math.isfinite(total) else "the principal lent is 0"
        data["total"] = M.make_estimate(total, M.influence_se(u_total), note)
        return Decomposition(name, measure, data, self.meta(0))

    def compare_runs(
        self, other: Estimator, n_boot: int, hurdle: float, sales_eur_m: float | None
    ) -> Comparison:
        """See :meth:`invlend.results.SimulationResult.compare_runs`."""
        mine, theirs = self.result.run, other.result.run
        for attr in ("seed", "seed_spawn_key", "n_portfolios", "portfolio_size", "tail"):
            a, b = getattr(mine, attr), getattr(theirs, attr)
            if a != b:
                raise ValueError(
                    f"other: runs are paired only with the same {attr} ({a!r} here, "
                    f"{b!r} there); simulate both with the same seed, sizes and tail"
                )
        common = [n for n in self.result if n in other.result]
        if not common:
            raise ValueError(f"other: no structure in common (here {list(self.result)}, there "
                             f"{list(other.result)})")  # fmt: skip
        smooth, tail, notes = self.estimates(n_boot, hurdle, sales_eur_m)
        o_smooth, o_tail, o_notes = other.estimates(n_boot, hurdle, sales_eur_m)
        why, o_why = self._notes(smooth, tail, n_boot), other._notes(o_smooth, o_tail, n_boot)
        data = {
            n: _differences(smooth[n], tail[n], o_smooth[n], o_tail[n],
                            (why[n], o_why[n], "this run", "other run"))
            for n in common
        }  # fmt: skip
        meta = {**self.meta(n_boot), "baseline": "other run", "runs": True}
        return Comparison(data, [*notes, *(f"other run: {n}" for n in o_notes)], meta)
