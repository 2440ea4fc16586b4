"""Results: immutable objects around arrays, with summaries and paired comparisons.

Overview
--------
:func:`invlend.simulate` returns a :class:`SimulationResult`, a read-only mapping from
structure name to :class:`StructureResult`. Axis order is fixed everywhere:

* per firm: ``(n_portfolios, portfolio_size)``;
* per portfolio: ``(n_portfolios,)``;
* sampled paths: ``(n_sample_paths, n_steps + 1)``.

Arrays are read-only views; copy them to modify. :meth:`SimulationResult.summary` gives every
metric of :mod:`invlend.metrics` with its clustered standard error and 95% interval, and
:meth:`SimulationResult.compare` gives paired differences against a baseline structure.

Example
-------
>>> import invlend as il
>>> res = il.simulate(il.Scenario.default(), n_portfolios=50, portfolio_size=40, seed=7)
>>> est = res.summary()["pure_loan"]["pd"]
>>> 0.0 <= est.estimate <= 1.0
True
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from invlend import _checks
from invlend import _kernels as K
from invlend import capital as C
from invlend import metrics as M
from invlend.config import Scenario, Structure

__all__ = ["Comparison", "Difference", "Outcomes", "SimulationResult", "StructureResult", "Summary"]

_PERCENT = {m for m in M.METRICS if M.is_rate(m)}
#: Most bootstrap replicates a summary takes (each costs a pass over the portfolios).
MAX_BOOT = 100_000


def _ro(a: np.ndarray) -> np.ndarray:
    a = a.view()
    a.flags.writeable = False
    return a


@dataclass(frozen=True, eq=False)
class Outcomes:
    """What happened to each applicant firm under one set of dynamics.

    Attributes
    ----------
    event : ndarray of int8, (n_portfolios, portfolio_size)
        :class:`invlend.Event` code of the firm's event (``NONE`` if it reached the horizon).
    step : ndarray of int32
        Step of the event (``n_steps`` if none).
    value : ndarray of float64
        Firm value at the event (before any exit multiple), or at the horizon.
    initial_stage, stage : ndarray of int8
        Stage index at entry and at the event.
    n_rounds : ndarray of int16
        Funding rounds raised.
    dilution : ndarray of float64
        Product of ``1 / (1 + round_size)`` over the rounds: what remains of an entry stake.
    initial_value : ndarray of float64
        Firm value at entry, ``V0``.
    quality, signal_error : ndarray of float64
        Latent quality ``q`` and the noise ``e`` of lenders' quality signals.
    regime : ndarray of int8
        Funding regime (0 hot, 1 cold) in the step of the event, or the last step; all 0
        without a funding cycle.
    checkpoint_values : ndarray of float64, (n_portfolios, portfolio_size, n_checkpoints)
        Firm value at each loan maturity step (``checkpoint_steps``); NaN after the event.
    paths : ndarray of float64, (n_sample_paths, n_steps + 1)
        Value paths of the first firms in flat order when ``sample_paths`` was asked for;
        NaN after the firm's event.
    dt : float
        Step length in years.
    """

    event: np.ndarray
    step: np.ndarray
    value: np.ndarray
    initial_stage: np.ndarray
    stage: np.ndarray
    n_rounds: np.ndarray
    dilution: np.ndarray
    initial_value: np.ndarray
    quality: np.ndarray
    signal_error: np.ndarray
    checkpoint_values: np.ndarray
    checkpoint_steps: np.ndarray
    paths: np.ndarray
    dt: float
    regime: np.ndarray | None = None

    @property
    def time(self) -> np.ndarray | None:
        """Years to the event (the horizon if none), ``step * dt``."""
        return None if self.step is None else self.step * self.dt


@dataclass(frozen=True, eq=False)
class StructureResult:
    """One structure evaluated on simulated outcomes.

    Attributes
    ----------
    structure : Structure
    outcomes : Outcomes
        Shared by all structures with the same linkage.
    npv : ndarray of float64, (n_portfolios, portfolio_size)
        Present value of the bank's cash flows per accepted firm, currency units; NaN where
        the applicant was not accepted.
    principal : ndarray of float64
        Principal lent (0 where not accepted).
    loan_default : ndarray of bool
        Loan defaulted: the firm defaulted while the loan was outstanding, could not repay
        the balance at maturity, or exited for less than the balance (a default may still
        lose nothing when the recovery covers the balance).
    credit_loss : ndarray of float64
        Balance lost at default, before risk sharing, currency units (undiscounted).
    upside : ndarray of float64
        Present value of warrant and equity proceeds.
    portfolio_npv, portfolio_loss_rate, portfolio_irr : ndarray of float64, (n_portfolios,)
        NPV (incl. screening cost of rejected applicants); credit loss after risk sharing
        over principal lent (0 where nothing was lent); annual IRR of the portfolio's cash
        flows (NaN where nothing was lent or no rate prices the flows, -1 where nothing came
        back).
    aggregates : ndarray of float64, (n_portfolios, N_AGG)
        Per-portfolio totals behind the metrics (columns ``invlend._kernels.AGG_*``).
    pool_claims, pool_paid : ndarray of float64, (n_portfolios, n_years)
        Claims on the structure's risk pool and what it paid (after its annual cap), by
        portfolio and year of the horizon, currency units; zeros without a pool.
    """

    structure: Structure
    outcomes: Outcomes
    npv: np.ndarray
    principal: np.ndarray
    loan_default: np.ndarray
    credit_loss: np.ndarray
    upside: np.ndarray
    portfolio_irr: np.ndarray
    aggregates: np.ndarray
    pool_claims: np.ndarray | None = None
    pool_paid: np.ndarray | None = None

    @property
    def accepted(self) -> np.ndarray | None:
        """Applicants the structure lent to, (n_portfolios, portfolio_size) bool."""
        return None if self.npv is None else ~np.isnan(self.npv)

    @property
    def portfolio_npv(self) -> np.ndarray:
        """NPV of each portfolio, incl. the screening cost of rejected applicants."""
        return self.aggregates[:, K.AGG_NPV]

    @property
    def portfolio_loss_rate(self) -> np.ndarray:
        """Credit loss after risk sharing / principal lent, per portfolio."""
        return M.loss_rate(self.aggregates)


class Difference(NamedTuple):
    """A paired difference (structure minus baseline) with its standard error."""

    estimate: float
    se: float
    ci_low: float
    ci_high: float
    z: float
    note: str = ""


def _pandas():
    """pandas, imported on demand: it is optional."""
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("to_frame() needs pandas: pip install pandas") from None
    return pd


def write_csv(path: str | Path, records: list[dict[str, Any]], fields: list[str]) -> None:
    """Write ``records`` (dicts with the keys ``fields``) as a CSV file with a header."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(records)


def _equity_charge(structure: Structure) -> float:
    """Regulatory capital of the structure's equity stake per unit of principal."""
    e = structure.equity
    return 0.0 if e is None else M.equity_charge(e.equity_to_value, structure.loan.loan_to_value)


def _need_firms(result) -> None:
    """Refuse per-firm work on a result that kept only aggregates."""
    if result.keep != "firms":
        raise ValueError(
            "keep: this result kept only per-portfolio aggregates; run simulate(..., "
            "keep='firms') for per-firm arrays"
        )


def _fmt(metric: str, x: float) -> str:
    if not math.isfinite(x):
        return "n/a"
    return f"{100 * x:.3f}%" if metric in _PERCENT else f"{x:.4g}"


class Footnotes:
    """Numbered reasons for the NaNs of a table: ``cell()`` marks them, ``lines()`` lists them.

    Every ``n/a`` a table prints carries a marker such as ``[1]``, and the footer says what it
    means (``[1] nobody was accepted``); the same reason shares one number.
    """

    def __init__(self) -> None:
        self._numbers: dict[str, int] = {}

    def mark(self, note: str) -> str:
        """The marker of ``note`` (``""`` for no note)."""
        if not note:
            return ""
        k = self._numbers.setdefault(note, len(self._numbers) + 1)
        return f" [{k}]"

    def cell(self, metric: str, est) -> str:
        """``estimate ± se`` of an Estimate or Difference, marked where either is NaN."""
        text = f"{_fmt(metric, est.estimate)} ± {_fmt(metric, est.se)}"
        if isinstance(est, Difference):
            text += f" z={est.z:+.1f}" if math.isfinite(est.z) else " z=n/a"
        return text + self.mark(est.note)

    def lines(self) -> list[str]:
        """``[k] reason`` for every reason marked, in order."""
        return [f"[{k}] {note}" for note, k in self._numbers.items()]


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(
        h.ljust(widths[0]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(header)
    )
    out = [line, "-" * len(line)]
    for r in rows:
        out.append(
            "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r))
        )
    return "\n".join(out)


class _Table(Mapping):
    """Shared behaviour of :class:`Summary` and :class:`Comparison`."""

    _row_type: type = M.Estimate

    def __init__(self, data: dict[str, dict[str, tuple]], notes: list[str], meta: dict) -> None:
        self._data = data
        self.notes = list(notes)
        self.meta = dict(meta)

    def __getitem__(self, key: str) -> dict[str, Any]:
        return dict(self._data[key])

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

    def to_frame(self):
        """The table as a long pandas DataFrame (needs pandas)."""
        return _pandas().DataFrame.from_records(self.records())

    def to_csv(self, path: str | Path) -> None:
        """Write :meth:`records` as CSV."""
        write_csv(path, self.records(), ["structure", "metric", *self._row_type._fields])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: the records, notes and run metadata (NaN written as null)."""

        def clean(v: Any) -> Any:
            return None if isinstance(v, float) and not math.isfinite(v) else v

        recs = [{k: clean(v) for k, v in r.items()} for r in self.records()]
        return {"meta": self.meta, "notes": self.notes, "rows": recs}

    def to_json(self, path: str | Path | None = None) -> str:
        """Write :meth:`to_dict` as JSON to ``path`` (if given) and return the text."""
        text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def __repr__(self) -> str:
        return self.__str__()

    def _shown(self) -> list[str]:
        """Metrics to print in the text table.

        A row that is n/a for every structure (``pool_shortfall`` with no risk pool) is left
        out; it stays in the data and in exports.
        """
        return [
            m
            for m in M.METRICS
            if any(row[m].note != M.NOT_APPLICABLE for row in self._data.values()) or not self._data
        ]

    def _rows(self, names: list[str], marks: Footnotes) -> list[list[str]]:
        return [[m, *(marks.cell(m, self._data[n][m]) for n in names)] for m in self._shown()]

    def _footer(self, marks: Footnotes) -> str:
        return "".join(f"\n{line}" for line in marks.lines()) + "".join(
            f"\nnote: {n}" for n in self.notes
        )


class Summary(_Table):
    """Every metric of every structure with its standard error and 95% interval.

    Index as ``summary[structure][metric]`` to get an :class:`~invlend.metrics.Estimate`.
    """

    _row_type = M.Estimate

    def __str__(self) -> str:
        names = list(self._data)
        marks = Footnotes()
        rows = self._rows(names, marks)
        head = (
            f"invlend summary: {self.meta['n_portfolios']} portfolios x "
            f"{self.meta['portfolio_size']} firms, seed {self.meta['seed']} "
            "(estimate ± standard error clustered by portfolio)\n"
        )
        return head + _table(["metric", *names], rows) + self._footer(marks)


class Comparison(_Table):
    """Paired differences (structure minus baseline) of every metric.

    Index as ``comparison[structure][metric]`` to get a :class:`Difference`.
    """

    _row_type = Difference

    def __str__(self) -> str:
        names = list(self._data)
        base = self.meta["baseline"]
        marks = Footnotes()
        rows = self._rows(names, marks)
        if self.meta.get("runs"):
            head = "invlend paired comparison of two runs (this run - other run ± standard error)\n"
            cols = [f"{n}: this - other" for n in names]
        else:
            head = f"invlend paired comparison against {base!r} (difference ± standard error)\n"
            cols = [f"{n} - {base}" for n in names]
        return head + _table(["metric", *cols], rows) + self._footer(marks)


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
            if all(n[metric] == M.NOT_APPLICABLE for n in (notes_a, notes_b)):
                note = M.NOT_APPLICABLE
        e = M.make_estimate(diff, se)
        row[metric] = Difference(e.estimate, e.se, e.ci_low, e.ci_high, float(z), note)
    return row


@dataclass(frozen=True, eq=False)
class SimulationResult(Mapping):
    """Outcome of :func:`invlend.simulate`: a read-only mapping structure name -> result.

    Attributes
    ----------
    scenario : Scenario
    structures : list of Structure
    n_portfolios, portfolio_size : int
    seed : int or sequence of int
        Entropy of the root ``SeedSequence``.
    seed_spawn_key : tuple of int
        Its spawn key (empty unless the seed was a spawned child):
        ``simulate(..., seed=SeedSequence(seed, spawn_key=seed_spawn_key))`` replays the run.
    backend : str
    versions : dict
        invlend, Python, numpy, scipy, numba, pydantic and random-stream versions.
    keep : {"firms", "aggregates"}
        What was kept: with ``"aggregates"`` the per-firm arrays (``npv``, ``outcomes.event``,
        ...) are ``None`` and only per-portfolio results, summaries and comparisons remain.
    """

    scenario: Scenario
    structures: list[Structure]
    n_portfolios: int
    portfolio_size: int
    seed: Any
    seed_spawn_key: tuple
    backend: str
    versions: dict[str, str]
    keep: str
    _results: dict[str, StructureResult] = field(repr=False)
    _arrays: dict[str, np.ndarray] = field(repr=False)
    _group_of: tuple[int, ...] = field(repr=False)
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def _build(
        cls,
        *,
        scenario,
        structures,
        group_of,
        arrays,
        n_portfolios,
        portfolio_size,
        seed,
        seed_spawn_key,
        backend,
        versions,
        keep="firms",
    ) -> SimulationResult:
        a = {k: _ro(v) for k, v in arrays.items()}
        chk_steps = np.unique(
            [round(s.loan.maturity_years * scenario.steps_per_year) for s in structures]
        )
        outcomes = {}
        for g in sorted(set(group_of)):
            outcomes[g] = Outcomes(
                event=a.get(f"g{g}.event"),
                step=a.get(f"g{g}.step"),
                value=a.get(f"g{g}.value"),
                initial_stage=a.get(f"g{g}.stage0"),
                stage=a.get(f"g{g}.stage"),
                n_rounds=a.get(f"g{g}.rounds"),
                dilution=a.get(f"g{g}.dilution"),
                initial_value=a.get(f"g{g}.v0"),
                quality=a.get(f"g{g}.quality"),
                signal_error=a.get(f"g{g}.signal"),
                regime=a.get(f"g{g}.regime"),
                checkpoint_values=a.get(f"g{g}.chk"),
                checkpoint_steps=_ro(chk_steps.astype(np.int64)),
                paths=a[f"g{g}.paths"],
                dt=scenario.dt,
            )
        results = {}
        for i, s in enumerate(structures):
            default = a.get(f"s{i}.default")
            results[s.name] = StructureResult(
                structure=s,
                outcomes=outcomes[group_of[i]],
                npv=a.get(f"s{i}.npv"),
                principal=a.get(f"s{i}.principal"),
                loan_default=None if default is None else default.view(bool),
                credit_loss=a.get(f"s{i}.loss"),
                upside=a.get(f"s{i}.upside"),
                portfolio_irr=a[f"s{i}.irr"],
                aggregates=a[f"s{i}.agg"],
                pool_claims=a.get(f"s{i}.pool_claims"),
                pool_paid=a.get(f"s{i}.pool_paid"),
            )
        return cls(
            scenario=scenario,
            structures=list(structures),
            n_portfolios=n_portfolios,
            portfolio_size=portfolio_size,
            seed=seed,
            seed_spawn_key=tuple(seed_spawn_key),
            backend=backend,
            versions=versions,
            keep=keep,
            _results=results,
            _arrays=a,
            _group_of=tuple(group_of),
        )

    def __getitem__(self, name: str) -> StructureResult:
        try:
            return self._results[name]
        except KeyError:
            raise KeyError(f"no structure named {name!r}; have {list(self._results)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._results)

    def __len__(self) -> int:
        return len(self._results)

    def __repr__(self) -> str:
        return (
            f"SimulationResult(structures={list(self._results)}, n_portfolios={self.n_portfolios}"
            f", portfolio_size={self.portfolio_size}, seed={self.seed}, backend={self.backend!r})"
        )

    @property
    def cold_share(self) -> np.ndarray:
        """Each portfolio's share of time in the cold funding regime, (n_portfolios,).

        All zeros without a funding cycle (``scenario.cycle`` is ``None``).
        """
        share = self._arrays.get("cold_share")
        return _ro(np.zeros(self.n_portfolios)) if share is None else share

    @property
    def meta(self) -> dict[str, Any]:
        """Run metadata: sizes, seed, backend, versions and the full inputs."""
        return {
            "n_portfolios": self.n_portfolios,
            "portfolio_size": self.portfolio_size,
            "seed": self.seed,
            "seed_spawn_key": list(self.seed_spawn_key),
            "backend": self.backend,
            "keep": self.keep,
            "versions": self.versions,
            "scenario": self.scenario.model_dump(mode="json"),
            "structures": [s.model_dump(mode="json") for s in self.structures],
        }

    # ---------------------------------------------------------------- metrics
    def _estimates(
        self, n_boot: int, hurdle: float, sales_eur_m: float | None
    ) -> tuple[dict, dict, list[str]]:
        """Per structure: smooth metrics with influence values, tail replicates (cached)."""
        n_boot = _checks.count("n_boot", n_boot, low=0, high=MAX_BOOT)
        hurdle = _checks.number("hurdle", hurdle, low=-1.0, high=10.0)
        if sales_eur_m is not None:
            sales_eur_m = _checks.number("sales_eur_m", sales_eur_m, low=0.0)
        key = (n_boot, hurdle, sales_eur_m)
        if key not in self._cache:
            self._cache[key] = self._compute_estimates(n_boot, hurdle, sales_eur_m)
        return self._cache[key]

    def _compute_estimates(
        self, n_boot: int, hurdle: float, sales_eur_m: float | None
    ) -> tuple[dict, dict, list[str]]:
        size = self.portfolio_size
        smooth = {
            n: M.smooth_metrics(r.aggregates, r.portfolio_irr, size,
                                r.structure.loan.maturity_years, hurdle, sales_eur_m,
                                _equity_charge(r.structure))
            for n, r in self.items()
        }  # fmt: skip
        full = np.ones((1, self.n_portfolios))
        tail = {
            n: {k: (v[0], []) for k, v in M.tail_metrics(r.aggregates, full, hurdle).items()}
            for n, r in self.items()
        }
        if self.n_portfolios >= 2 and n_boot > 0:
            boot = M.bootstrap_weights(self.n_portfolios, n_boot, self.seed, self.seed_spawn_key)
            for w in boot:
                for n, r in self.items():
                    for k, v in M.tail_metrics(r.aggregates, w, hurdle).items():
                        tail[n][k][1].append(v)
        tail = {
            n: {k: (e, np.concatenate(reps) if reps else np.zeros(0)) for k, (e, reps) in d.items()}
            for n, d in tail.items()
        }
        notes = []
        if self.n_portfolios < 2:
            notes.append("standard errors need at least 2 portfolios")
        for n, r in self.items():
            if r.aggregates[:, K.AGG_ACCEPTED].sum() == 0:
                rate = r.structure.screening.acceptance_rate
                notes.append(
                    f"{n}: nobody was accepted in any portfolio (screening acceptance_rate "
                    f"{rate:g} of {self.portfolio_size} applicants each): its loan metrics are "
                    "undefined"
                )
                continue
            bad = int(np.sum(~np.isfinite(r.portfolio_irr)))
            if bad:
                notes.append(
                    f"{n}: IRR undefined in {bad} of {self.n_portfolios} portfolios (nothing "
                    "lent, or no rate in [-99.97%, +298000%] prices the cash flows); irr "
                    "averages the others"
                )
        beyond = self.n_portfolios * (1.0 - 0.999)
        if beyond < 10:
            notes.append(
                f"{self.n_portfolios} portfolios leave {beyond:.1f} beyond the 99.9% loss "
                "quantile: loss_var_999, loss_es_999, economic_capital, raroc and eva are rough; "
                "use >= 10000 portfolios for them"
            )
        return smooth, tail, notes

    def summary(
        self,
        n_boot: int = 400,
        *,
        hurdle: float = C.DEFAULT_HURDLE,
        sales_eur_m: float | None = M.IRB_SALES_EUR_M,
    ) -> Summary:
        """Every metric with its clustered Monte Carlo standard error and 95% interval.

        Parameters
        ----------
        n_boot : int
            Bootstrap replicates for the tail metrics (VaR, ES, economic capital, RAROC, EVA).
        hurdle : float
            Annual hurdle rate (cost of equity) of ``eva`` and ``eva_irb``; default 12%
            (domain.md §6.2, an estimate within the 10-15% of §5.3).
        sales_eur_m : float or None
            Borrowers' annual sales in EUR millions for the SME adjustment of ``irb_capital``
            (default 5, the adjustment's floor: an estimate for small technology firms;
            ``None`` for the plain corporate formula).
        """
        smooth, tail, notes = self._estimates(n_boot, hurdle, sales_eur_m)
        data = {n: self._row(n, smooth[n], tail[n], n_boot) for n in self}
        return Summary(data, notes, self._table_meta(n_boot))

    def _row(self, name: str, smooth: dict, tail: dict, n_boot: int) -> dict[str, M.Estimate]:
        """Every metric of structure ``name`` as an Estimate, with the reason of any NaN."""
        r = self._results[name]
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
                n_boot=n_boot, replicates=reps, lgd=smooth["lgd"][0],
                economic_capital=tail["economic_capital"][0], irb_capital=smooth["irb_capital"][0],
            )  # fmt: skip
            row[metric] = M.make_estimate(est, se, note)
        return row

    def _notes(self, smooth: dict, tail: dict, n_boot: int) -> dict[str, dict[str, str]]:
        """The NaN reason of every structure's every metric."""
        return {
            n: {m: e.note for m, e in self._row(n, smooth[n], tail[n], n_boot).items()}
            for n in self
        }

    def compare(
        self,
        baseline: str = "pure_loan",
        n_boot: int = 400,
        *,
        hurdle: float = C.DEFAULT_HURDLE,
        sales_eur_m: float | None = M.IRB_SALES_EUR_M,
    ) -> Comparison:
        """Paired differences of every metric against ``baseline`` on common random numbers.

        The standard error of a difference uses the per-portfolio pairing (influence values or
        bootstrap replicates of both structures on the same resamples), so it is typically
        much smaller than the two standard errors combined. ``n_boot``, ``hurdle`` and
        ``sales_eur_m`` are as in :meth:`summary`.
        """
        if baseline not in self._results:
            raise ValueError(f"baseline: no structure named {baseline!r}; have {list(self)}")
        smooth, tail, notes = self._estimates(n_boot, hurdle, sales_eur_m)
        why = self._notes(smooth, tail, n_boot)
        data = {
            n: _differences(
                smooth[n],
                tail[n],
                smooth[baseline],
                tail[baseline],
                (why[n], why[baseline], n, baseline),
            )
            for n in self
            if n != baseline
        }
        return Comparison(data, notes, {**self._table_meta(n_boot), "baseline": baseline})

    def compare_runs(
        self,
        other: SimulationResult,
        n_boot: int = 400,
        *,
        hurdle: float = C.DEFAULT_HURDLE,
        sales_eur_m: float | None = M.IRB_SALES_EUR_M,
    ) -> Comparison:
        """Paired differences of each structure's metrics between two runs: this minus ``other``.

        For a scenario change on the same applicants, e.g. a funding cycle against none:
        ``simulate(sc_cycle, ..., seed=s).compare_runs(simulate(sc, ..., seed=s))``. Runs with
        the same seed, ``n_portfolios`` and ``portfolio_size`` draw every firm's random numbers
        from the same streams, so portfolio ``p`` of one run is paired with portfolio ``p`` of
        the other: the standard errors use the per-portfolio differences (influence values, and
        the same bootstrap resamples for the tail metrics). Structures are matched by name;
        those in only one run are left out. ``n_boot``, ``hurdle`` and ``sales_eur_m`` are as
        in :meth:`summary`.
        """
        if not isinstance(other, SimulationResult):
            raise TypeError(f"other: expected a SimulationResult, got {type(other).__name__}")
        for attr in ("seed", "seed_spawn_key", "n_portfolios", "portfolio_size"):
            mine, theirs = getattr(self, attr), getattr(other, attr)
            if mine != theirs:
                raise ValueError(
                    f"other: runs are paired only with the same {attr} ({mine!r} here, "
                    f"{theirs!r} there); simulate both with the same seed and sizes"
                )
        common = [n for n in self if n in other]
        if not common:
            raise ValueError(f"other: no structure in common (here {list(self)}, there "
                             f"{list(other)})")  # fmt: skip
        smooth, tail, notes = self._estimates(n_boot, hurdle, sales_eur_m)
        o_smooth, o_tail, o_notes = other._estimates(n_boot, hurdle, sales_eur_m)
        why, o_why = self._notes(smooth, tail, n_boot), other._notes(o_smooth, o_tail, n_boot)
        data = {
            n: _differences(
                smooth[n],
                tail[n],
                o_smooth[n],
                o_tail[n],
                (why[n], o_why[n], "this run", "other run"),
            )
            for n in common
        }
        meta = {**self._table_meta(n_boot), "baseline": "other run", "runs": True}
        return Comparison(data, [*notes, *(f"other run: {n}" for n in o_notes)], meta)

    def _table_meta(self, n_boot: int) -> dict[str, Any]:
        return {
            "n_portfolios": self.n_portfolios,
            "portfolio_size": self.portfolio_size,
            "seed": self.seed,
            "backend": self.backend,
            "n_boot": n_boot,
            "versions": self.versions,
        }

    def save(self, path) -> None:
        """Write the result to an ``.npz`` file; see :func:`invlend.store.save`."""
        from invlend.store import save

        save(self, path)

    # ---------------------------------------------------------------- plots
    def plot_npv_distribution(self, **kw):
        """See :func:`invlend.plotting.plot_npv_distribution`."""
        from invlend.plotting import plot_npv_distribution

        return plot_npv_distribution(self, **kw)

    def plot_loss_distribution(self, **kw):
        """See :func:`invlend.plotting.plot_loss_distribution`."""
        from invlend.plotting import plot_loss_distribution

        return plot_loss_distribution(self, **kw)

    def plot_cumulative_incidence(self, **kw):
        """See :func:`invlend.plotting.plot_cumulative_incidence`."""
        from invlend.plotting import plot_cumulative_incidence

        return plot_cumulative_incidence(self, **kw)

    def plot_value_fan(self, **kw):
        """See :func:`invlend.plotting.plot_value_fan`."""
        from invlend.plotting import plot_value_fan

        return plot_value_fan(self, **kw)

    def plot_loss_by_regime(self, **kw):
        """See :func:`invlend.plotting.plot_loss_by_regime`."""
        from invlend.plotting import plot_loss_by_regime

        return plot_loss_by_regime(self, **kw)

    def plot_pool(self, **kw):
        """See :func:`invlend.plotting.plot_pool`."""
        from invlend.plotting import plot_pool

        return plot_pool(self, **kw)

    def plot_risk_return(self, **kw):
        """See :func:`invlend.plotting.plot_risk_return`."""
        from invlend.plotting import plot_risk_return

        return plot_risk_return(self, **kw)

    def to_frame(self):
        """Per-firm long table (one row per structure and applicant) as a pandas DataFrame."""
        _need_firms(self)
        pd = _pandas()
        frames = []
        n_p, size = self.n_portfolios, self.portfolio_size
        port = np.repeat(np.arange(n_p), size)
        firm = np.tile(np.arange(size), n_p)
        for n, r in self.items():
            o = r.outcomes
            frames.append(
                pd.DataFrame(
                    {
                        "structure": n,
                        "portfolio": port,
                        "firm": firm,
                        "accepted": r.accepted.ravel(),
                        "npv": r.npv.ravel(),
                        "principal": r.principal.ravel(),
                        "loan_default": r.loan_default.ravel(),
                        "credit_loss": r.credit_loss.ravel(),
                        "upside": r.upside.ravel(),
                        "event": o.event.ravel(),
                        "time": o.time.ravel(),
                        "value": o.value.ravel(),
                        "initial_stage": o.initial_stage.ravel(),
                        "stage": o.stage.ravel(),
                        "initial_value": o.initial_value.ravel(),
                    }
                )
            )
        return pd.concat(frames, ignore_index=True)
