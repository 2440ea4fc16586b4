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

import functools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from invlend import _resultfile, _tables, plotting
from invlend import capital as C
from invlend import metrics as M
from invlend._sim import layout as L
from invlend._sim.layout import RunInfo
from invlend._sim.lowering import checkpoint_table
from invlend.config import Scenario, Structure
from invlend.estimation import Comparison, Decomposition, Difference, Estimator, Summary

__all__ = [
    "Comparison",
    "Decomposition",
    "Difference",
    "Outcomes",
    "SimulationResult",
    "StructureResult",
    "Summary",
]


def _ro(a: np.ndarray) -> np.ndarray:
    a = a.view()
    a.flags.writeable = False
    return a


#: Metrics the notebook view of a result shows (all have influence-value standard errors, so
#: the view needs no bootstrap); the full list is in ``summary()``.
HEADLINE_METRICS = (
    "fair_value_per_principal",
    "npv_per_principal",
    "npv_per_loan",
    "irr",
    "acceptance_rate",
    "pd",
    "lgd",
    "expected_loss",
    "irb_capital",
    "raroc_irb",
)


def _short_list(names: list[str], most: int = 8) -> str:
    """``names`` as a list's repr, the middle left out beyond ``most`` names."""
    if len(names) <= most:
        return repr(names)
    shown = ", ".join(repr(n) for n in names[: most - 1])
    return f"[{shown}, ... {len(names) - most} more ..., {names[-1]!r}]"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _short(value: Any, most: int = 60) -> str:
    """``repr(value)``, cut to ``most`` characters."""
    text = repr(value)
    return text if len(text) <= most else text[: most - 3] + "..."


def _headline_html(summary: Summary, title: str, lines: list[str]) -> str:
    """The headline metrics of ``summary`` as an HTML table, ``lines`` under it."""
    shown = [m for m in _tables.shown_metrics(summary) if m in HEADLINE_METRICS]
    marks = _tables.Footnotes()
    rows = [[m, *(marks.cell(m, summary[n][m]) for n in summary)] for m in shown]
    notes = [*lines, *marks.lines()]
    return _tables.html_table(["metric", *summary], rows, title=title, notes=notes)


def _delegate(plot):
    """A method of the result that draws ``plot(result, **kw)``."""

    def method(self, **kw):
        return plot(self, **kw)

    method.__name__ = plot.__name__
    method.__doc__ = f"See :func:`invlend.plotting.{plot.__name__}`."
    return method


@dataclass(frozen=True, eq=False, repr=False)
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
    appraisal_error : ndarray of float64
        Standard normal error of the appraisal of anything the firm pledges (one per firm, so
        every structure's :class:`~invlend.Collateral` sees the same error).
    stage2 : ndarray of int8
        1 where the one-year IFRS 9 test puts the firm in stage 2: alive and unfunded in the
        test's step, with a default intensity at least twice its origination intensity or
        its runway run out.
    checkpoint_values : ndarray of float64, (n_portfolios, portfolio_size, n_checkpoints)
        Firm value at each loan maturity step (``checkpoint_steps``), and the value of an entry
        share (firm value times ``dilution`` so far) at the expiry step of each warrant that
        expires before the horizon (where ``checkpoint_diluted`` is true); NaN after the event.
    checkpoint_diluted : ndarray of bool, (n_checkpoints,)
        Which checkpoints record an entry share's value rather than the firm's.
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
    appraisal_error: np.ndarray | None = None
    stage2: np.ndarray | None = None
    checkpoint_diluted: np.ndarray | None = None

    @property
    def time(self) -> np.ndarray | None:
        """Years to the event (the horizon if none), ``step * dt``."""
        return None if self.step is None else self.step * self.dt

    @property
    def n_steps(self) -> int:
        """Steps of the time grid to the horizon."""
        return int(self.paths.shape[-1]) - 1

    def __repr__(self) -> str:
        n_steps = self.n_steps
        head = (
            f"Outcomes: {n_steps} steps of {self.dt:.4g} y (horizon {n_steps * self.dt:.4g} y), "
            f"{_count(self.paths.shape[0], 'sample path')}, "
            f"{_count(self.checkpoint_steps.size, 'checkpoint')}"
        )
        if self.event is None:
            return head + "\n  per-firm arrays not kept (keep='aggregates')"
        n_p, size = self.event.shape
        counts = np.bincount(self.event.ravel().astype(np.int64), minlength=len(L.Event))
        shares = "  ".join(
            f"{e.name} {counts[int(e)] / max(self.event.size, 1):.1%}" for e in L.Event
        )
        return f"{head}\n  {n_p} portfolios x {size} firms; events: {shares}"


@dataclass(frozen=True, eq=False, repr=False)
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
        Per-portfolio totals behind the metrics (columns :data:`invlend._sim.layout.AGGREGATES`).
    pool_claims, pool_paid : ndarray of float64, (n_portfolios, n_years)
        Claims on the structure's risk pool and what it paid (after its annual cap), by
        portfolio and year of the horizon, currency units; zeros without a pool.
    fair_value : ndarray of float64, (n_portfolios, portfolio_size) or None
        The same cash flows under the risk-neutral measure, discounted at the discount rate:
        the fair value of the bank's position in each accepted firm (NaN where not accepted;
        ``None`` when the run simulated the real world only, or kept aggregates only).
    fair_aggregates : ndarray of float64, (n_portfolios, N_AGG) or None
        The per-portfolio totals under the risk-neutral measure (``None`` without it).
    scenario : Scenario or None
        The scenario of the run (for its display; ``None`` when built by hand).
    run : RunInfo or None
        How the run was made (sizes, seed, measures, what was kept), as the
        :class:`SimulationResult`'s.
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
    fair_value: np.ndarray | None = None
    fair_aggregates: np.ndarray | None = None
    scenario: Scenario | None = None
    run: RunInfo | None = None

    @property
    def accepted(self) -> np.ndarray | None:
        """Applicants the structure lent to, (n_portfolios, portfolio_size) bool."""
        return None if self.npv is None else ~np.isnan(self.npv)

    @property
    def portfolio_npv(self) -> np.ndarray:
        """NPV of each portfolio, incl. the screening cost of rejected applicants."""
        return self.aggregates[:, L.AGG_NPV]

    @property
    def portfolio_loss_rate(self) -> np.ndarray:
        """Credit loss after risk sharing / principal lent, per portfolio."""
        return M.loss_rate(self.aggregates)

    def _describe(self) -> tuple[str, list[str]]:
        """The structure's name and parts, and the run's lines, for the displays."""
        s = self.structure
        parts = [k for k in ("warrant", "equity", "risk_share", "risk_pool") if getattr(s, k)]
        loan = s.loan
        what = (
            f"{s.name!r}: loan {loan.loan_to_value:.3g} of value at {loan.rate:.3g} for "
            f"{loan.maturity_years:g} y" + (f", with {', '.join(parts)}" if parts else "")
        )
        o, run = self.outcomes, self.run
        size = (
            run.portfolio_size
            if run is not None
            else (None if self.npv is None else self.npv.shape[1])
        )
        lines = [
            f"{self.aggregates.shape[0]} portfolios x {size} firms, horizon "
            f"{o.n_steps * o.dt:g} y ({o.n_steps} steps)"
        ]
        if run is not None:
            lines.append(
                f"measures {', '.join(run.measures)}; keep {run.keep!r}; seed "
                f"{_short(run.seed)}; backend {run.backend!r}"
            )
        else:
            measures = "real_world" + (", risk_neutral" if self.fair_aggregates is not None else "")
            lines.append(f"measures {measures}; keep "
                         f"{'firms' if self.npv is not None else 'aggregates'!r}")  # fmt: skip
        return what, lines

    def __repr__(self) -> str:
        what, lines = self._describe()
        lent = float(self.aggregates[:, L.AGG_ACCEPTED].sum())
        lines.append(f"{lent:.0f} loans made; mean portfolio NPV {self.portfolio_npv.mean():.4g}")
        return f"StructureResult {what}\n" + "\n".join(f"  {x}" for x in lines)

    def summary(
        self,
        n_boot: int = 400,
        *,
        hurdle: float = C.DEFAULT_HURDLE,
        sales_eur_m: float | None = M.IRB_SALES_EUR_M,
    ) -> Summary:
        """Every metric of this structure, as :meth:`SimulationResult.summary` gives them."""
        if self.run is None or self.scenario is None:
            raise ValueError("summary: this result does not carry its run (scenario and RunInfo)")
        return Estimator(_OneStructure(self)).summary(n_boot, hurdle, sales_eur_m)

    def _repr_html_(self) -> str:
        what, lines = self._describe()
        if self.run is None or self.scenario is None:
            return _tables.html_table(["structure"], [[what]], notes=lines)
        return _headline_html(self.summary(n_boot=0), f"StructureResult {what}", lines)


class _OneStructure(Mapping):
    """One structure's result as the run an :class:`Estimator` reads (a mapping of one)."""

    def __init__(self, result: StructureResult) -> None:
        self._result = result
        self.scenario = result.scenario
        self.run = result.run

    def __getitem__(self, name: str) -> StructureResult:
        if name != self._result.structure.name:
            raise KeyError(f"no structure named {name!r}; have {[self._result.structure.name]}")
        return self._result

    def __iter__(self) -> Iterator[str]:
        return iter([self._result.structure.name])

    def __len__(self) -> int:
        return 1


@dataclass(frozen=True, eq=False)
class SimulationResult(Mapping):
    """Outcome of :func:`invlend.simulate`: a read-only mapping structure name -> result.

    Attributes
    ----------
    scenario : Scenario
    structures : list of Structure
    run : RunInfo
        How the run was made: the sizes, seed, backend, what was kept and the versions
        (:class:`invlend._sim.layout.RunInfo`); its fields are also attributes of the result.
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
    arrays : dict of str -> ndarray
        Every array of the run under its layout key (``g0.event``, ``s1.agg``, ...; see
        :mod:`invlend._sim.layout`), read-only: what :meth:`save` writes.
    group_of : tuple of int
        The linkage group (shared firm simulation) of each structure.
    """

    scenario: Scenario
    structures: list[Structure]
    run: RunInfo
    arrays: dict[str, np.ndarray] = field(repr=False)
    group_of: tuple[int, ...] = field(repr=False)
    _results: dict[str, StructureResult] = field(repr=False)

    @classmethod
    def from_arrays(
        cls,
        scenario: Scenario,
        structures: list[Structure],
        group_of: tuple[int, ...],
        arrays: dict[str, np.ndarray],
        run: RunInfo,
    ) -> SimulationResult:
        """The result of a run from its arrays (the keys and shapes of the run's layout).

        ``arrays`` holds what :func:`invlend._sim.layout.arrays` lists for the run's sizes;
        ``group_of`` is each structure's linkage group.
        """
        a = {k: _ro(v) for k, v in arrays.items()}
        steps, diluted = checkpoint_table(scenario, structures)
        chk_steps, chk_diluted = _ro(steps), _ro(diluted.astype(bool))
        outcomes = {}
        for g in sorted(set(group_of)):
            fields = {f.attr: a.get(L.group_key(g, f.key)) for f in L.OUTCOMES}
            outcomes[g] = Outcomes(
                **fields,
                checkpoint_values=a.get(L.group_key(g, "chk")),
                checkpoint_steps=chk_steps,
                checkpoint_diluted=chk_diluted,
                paths=a[L.group_key(g, "paths")],
                dt=scenario.dt,
            )
        results = {}
        for i, s in enumerate(structures):
            per_firm = {f.attr: a.get(L.structure_key(i, f.key)) for f in L.PER_FIRM}
            default = per_firm["loan_default"]
            per_firm["loan_default"] = None if default is None else default.view(bool)
            results[s.name] = StructureResult(
                structure=s,
                outcomes=outcomes[group_of[i]],
                **per_firm,
                portfolio_irr=a[L.structure_key(i, "irr")],
                aggregates=a[L.structure_key(i, "agg")],
                pool_claims=a.get(L.structure_key(i, "pool_claims")),
                pool_paid=a.get(L.structure_key(i, "pool_paid")),
                fair_value=a.get(L.measure_key("risk_neutral", L.structure_key(i, "npv"))),
                fair_aggregates=a.get(L.measure_key("risk_neutral", L.structure_key(i, "agg"))),
                scenario=scenario,
                run=run,
            )
        return cls(scenario, list(structures), run, a, tuple(group_of), results)

    n_portfolios = property(lambda self: self.run.n_portfolios, doc="Portfolios simulated.")
    portfolio_size = property(lambda self: self.run.portfolio_size, doc="Applicants each.")
    seed = property(lambda self: self.run.seed, doc="Entropy of the root SeedSequence.")
    seed_spawn_key = property(lambda self: self.run.seed_spawn_key, doc="Its spawn key.")
    backend = property(lambda self: self.run.backend, doc="The backend that ran.")
    keep = property(lambda self: self.run.keep, doc="'firms' or 'aggregates'.")
    versions = property(lambda self: self.run.versions, doc="Package and stream versions.")

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
            f"SimulationResult(structures={_short_list(list(self._results))}, "
            f"n_portfolios={self.n_portfolios}, portfolio_size={self.portfolio_size}, "
            f"horizon_years={self.scenario.horizon_years:g}, measures={self.run.measures}, "
            f"keep={self.keep!r}, seed={_short(self.seed)}, backend={self.backend!r})"
        )

    def _repr_html_(self) -> str:
        title = (
            f"SimulationResult: {len(self)} structures, {self.n_portfolios} portfolios x "
            f"{self.portfolio_size} firms, horizon {self.scenario.horizon_years:g} y"
        )
        lines = [
            f"measures {', '.join(self.run.measures)}; keep {self.keep!r}; seed "
            f"{_short(self.seed)}; backend {self.backend!r}",
            "estimate ± standard error clustered by portfolio; summary() for every metric",
        ]
        return _headline_html(self.summary(n_boot=0), title, lines)

    @property
    def cold_share(self) -> np.ndarray:
        """Each portfolio's share of time in the cold funding regime, (n_portfolios,).

        All zeros without a funding cycle (``scenario.cycle`` is ``None``).
        """
        share = self.arrays.get("cold_share")
        return _ro(np.zeros(self.n_portfolios)) if share is None else share

    @property
    def log_weights(self) -> np.ndarray:
        """Each portfolio's log importance weight ``log dP/dQ``, (n_portfolios,); 0 if plain."""
        lw = self.arrays.get("log_weight")
        return _ro(np.zeros(self.n_portfolios)) if lw is None else lw

    @property
    def weights(self) -> np.ndarray:
        """Each portfolio's importance weight ``dP/dQ`` (:mod:`invlend.tail`), (n_portfolios,).

        All ones for a plain run. Every estimate of :meth:`summary` and :meth:`compare` uses
        them; a mean of per-portfolio values ``y`` is ``mean(weights * y)``.
        """
        return _ro(np.exp(self.log_weights))

    @property
    def tilt(self):
        """The :class:`invlend.Tilt` the run sampled under, or ``None`` for plain sampling."""
        from invlend.tail import Tilt

        return None if self.run.tail is None else Tilt.model_validate(self.run.tail)

    @property
    def stopping(self) -> dict[str, Any] | None:
        """How a run with a ``tolerance`` stopped (targets, precision, batches), else None."""
        return self.run.stopping

    @property
    def meta(self) -> dict[str, Any]:
        """Run metadata: sizes, seed, backend, versions and the full inputs."""
        return {
            **self.run.as_dict(),
            "scenario": self.scenario.model_dump(mode="json"),
            "structures": [s.model_dump(mode="json") for s in self.structures],
        }

    def require_firms(self) -> None:
        """Raise ``ValueError`` unless the run kept its per-firm arrays (``keep="firms"``)."""
        if self.keep != "firms":
            raise ValueError(
                "keep: this result kept only per-portfolio aggregates; run simulate(..., "
                "keep='firms') for per-firm arrays"
            )

    # ---------------------------------------------------------------- metrics
    @functools.cached_property
    def _estimator(self) -> Estimator:
        return Estimator(self)

    def summary(
        self,
        n_boot: int = 400,
        *,
        hurdle: float = C.DEFAULT_HURDLE,
        sales_eur_m: float | None = M.IRB_SALES_EUR_M,
        progress: bool = False,
    ) -> Summary:
        """Every metric with its clustered Monte Carlo standard error and 95% interval.

        Parameters
        ----------
        n_boot : int
            Bootstrap replicates for the tail metrics (VaR, ES, economic capital, RAROC, EVA).
        hurdle : float
            Annual hurdle rate (cost of equity) of ``eva`` and ``eva_irb``; default 12%
            (an estimate within the 10-15% banks use; see docs/capital.md).
        sales_eur_m : float or None
            Borrowers' annual sales in EUR millions for the SME adjustment of ``irb_capital``
            (default 5, the adjustment's floor: an estimate for small technology firms;
            ``None`` for the plain corporate formula).
        progress : bool
            Show a progress bar over the bootstrap replicates on standard error. The estimates
            are computed once per ``(n_boot, hurdle, sales_eur_m)`` and cached: a repeated
            call, or ``compare`` after ``summary``, costs nothing and shows no bar.
        """
        return self._estimator.summary(n_boot, hurdle, sales_eur_m, progress)

    def compare(
        self,
        baseline: str = "pure_loan",
        n_boot: int = 400,
        *,
        hurdle: float = C.DEFAULT_HURDLE,
        sales_eur_m: float | None = M.IRB_SALES_EUR_M,
        progress: bool = False,
    ) -> Comparison:
        """Paired differences of every metric against ``baseline`` on common random numbers.

        The standard error of a difference uses the per-portfolio pairing (influence values or
        bootstrap replicates of both structures on the same resamples), so it is typically
        much smaller than the two standard errors combined. ``n_boot``, ``hurdle``,
        ``sales_eur_m`` and ``progress`` are as in :meth:`summary`.
        """
        return self._estimator.compare(baseline, n_boot, hurdle, sales_eur_m, progress)

    def decompose(self, structure: str, measure: str = "risk_neutral") -> Decomposition:
        """The structure's value per unit lent, part by part, with standard errors.

        ``measure="risk_neutral"`` (the default) splits the fair value; ``"real_world"`` the
        real-world NPV (expected cash at the discount rate). The parts -- interest, principal,
        fees, recoveries, collateral, warrant, equity, screening, risk sharing, pool
        (:data:`invlend._sim.layout.COMPONENTS`) -- and their ``"total"`` are each an
        :class:`~invlend.metrics.Estimate`; the parts add up to the total.
        """
        return self._estimator.decompose(structure, measure)

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
        return self._estimator.compare_runs(other._estimator, n_boot, hurdle, sales_eur_m)

    def save(self, path, compress: bool = False) -> None:
        """Write the result to an ``.npz`` file; see :func:`invlend.store.save`."""
        _resultfile.write(self, path, compress)

    # ---------------------------------------------------------------- plots
    plot_npv_distribution = _delegate(plotting.plot_npv_distribution)
    plot_loss_distribution = _delegate(plotting.plot_loss_distribution)
    plot_cumulative_incidence = _delegate(plotting.plot_cumulative_incidence)
    plot_value_fan = _delegate(plotting.plot_value_fan)
    plot_loss_by_regime = _delegate(plotting.plot_loss_by_regime)
    plot_pool = _delegate(plotting.plot_pool)
    plot_risk_return = _delegate(plotting.plot_risk_return)
    plot_decomposition = _delegate(plotting.plot_decomposition)

    def to_xarray(self):
        """The result's arrays as an ``xarray.Dataset`` with named dimensions (needs xarray).

        Per portfolio, dimensions ``(structure, portfolio, aggregate)``: ``aggregates`` (the
        real-world sums, one column per :data:`invlend._sim.layout.AGGREGATES` name) and, with
        the risk-neutral measure, ``fair_aggregates``; ``portfolio_npv`` and
        ``portfolio_loss_rate`` on ``(structure, portfolio)``. With ``keep="firms"`` also the
        per-firm arrays on ``(structure, portfolio, firm)``: ``npv``, ``principal``,
        ``accepted``, ``loan_default``, ``credit_loss``, ``upside`` and the firm outcomes
        ``event``, ``time``, ``value``, ``initial_stage``, ``stage``, ``initial_value``. The
        codes of ``event`` and of the stages are integers named in the variable's
        ``flag_values`` / ``flag_meanings`` attributes (the CF convention), and the run's seed,
        sizes and versions are in the dataset's ``attrs``.
        """
        xr = _tables.optional("xarray", "to_xarray()")
        names = list(self)
        per_port = ("structure", "portfolio")
        data: dict[str, Any] = {
            "aggregates": (
                (*per_port, "aggregate"),
                np.stack([self[n].aggregates for n in names]),
            ),
            "portfolio_npv": (per_port, np.stack([self[n].portfolio_npv for n in names])),
            "portfolio_loss_rate": (
                per_port,
                np.stack([self[n].portfolio_loss_rate for n in names]),
            ),
        }
        if all(self[n].fair_aggregates is not None for n in names):
            data["fair_aggregates"] = (
                (*per_port, "aggregate"),
                np.stack([self[n].fair_aggregates for n in names]),
            )
        if self.keep == "firms":
            per_firm = (*per_port, "firm")
            for field in ("npv", "principal", "accepted", "loan_default", "credit_loss", "upside"):
                data[field] = (per_firm, np.stack([getattr(self[n], field) for n in names]))
            stages = " ".join(st.name for st in self.scenario.stages)
            codes = {
                "event": (list(range(len(L.Event))), " ".join(e.name for e in L.Event)),
                "initial_stage": (list(range(len(self.scenario.stages))), stages),
                "stage": (list(range(len(self.scenario.stages))), stages),
            }
            for field in ("event", "time", "value", "initial_stage", "stage", "initial_value"):
                arr = np.stack([getattr(self[n].outcomes, field) for n in names])
                attrs = {}
                if field in codes:
                    attrs = {"flag_values": codes[field][0], "flag_meanings": codes[field][1]}
                data[field] = xr.Variable(per_firm, arr, attrs=attrs)
        coords = {
            "structure": names,
            "portfolio": np.arange(self.n_portfolios),
            "aggregate": list(L.AGGREGATES),
        }
        if self.keep == "firms":
            coords["firm"] = np.arange(self.portfolio_size)
        # netCDF attributes are numbers or strings: the rest (versions, inputs) as JSON text
        attrs = {
            k: v if isinstance(v, int | float | str) else json.dumps(v, ensure_ascii=False)
            for k, v in self.meta.items()
        }
        return xr.Dataset(data, coords=coords, attrs=attrs)

    def to_frame(self):
        """Per-firm long table (one row per structure and applicant) as a pandas DataFrame.

        ``event`` is a categorical of the :class:`invlend.Event` names (``NONE`` at the
        horizon, ``DEFAULT``, ``IPO``, ``MA``), ``initial_stage`` and ``stage`` categoricals of
        the scenario's stage names, in stage order; ``structure`` a categorical of the names.
        """
        self.require_firms()
        pd = _tables.pandas()
        frames = []
        n_p, size = self.n_portfolios, self.portfolio_size
        port = np.repeat(np.arange(n_p), size)
        firm = np.tile(np.arange(size), n_p)
        event_names = [L.Event(code).name for code in range(len(L.Event))]  # codes 0..n-1
        stage_names = [st.name for st in self.scenario.stages]

        def categorical(codes: np.ndarray, names: list[str]):
            return pd.Categorical.from_codes(codes.ravel().astype(np.int64), categories=names)

        for k, r in enumerate(self.values()):
            o = r.outcomes
            frames.append(
                pd.DataFrame(
                    {
                        "structure": pd.Categorical.from_codes(
                            np.full(n_p * size, k), categories=list(self)
                        ),
                        "portfolio": port,
                        "firm": firm,
                        "accepted": r.accepted.ravel(),
                        "npv": r.npv.ravel(),
                        "principal": r.principal.ravel(),
                        "loan_default": r.loan_default.ravel(),
                        "credit_loss": r.credit_loss.ravel(),
                        "upside": r.upside.ravel(),
                        "event": categorical(o.event, event_names),
                        "time": o.time.ravel(),
                        "value": o.value.ravel(),
                        "initial_stage": categorical(o.initial_stage, stage_names),
                        "stage": categorical(o.stage, stage_names),
                        "initial_value": o.initial_value.ravel(),
                    }
                )
            )
        return pd.concat(frames, ignore_index=True)
