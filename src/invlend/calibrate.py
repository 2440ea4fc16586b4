r"""Calibration of stage hazards to published lifecycle targets, on the cohort chain.

Overview
--------
A **target set** is a published funnel or outcome mix (CB Insights, Korteweg-Sorensen, Sand
Hill Econometrics, Zero2IPO, ...) written as a list of :class:`Target`: a probability that the
cohort model of :func:`invlend.cohort` computes exactly. A target is one of

* an outcome -- ``default``, ``ipo``, ``ma``, ``exit`` (IPO or M&A), ``ended`` (any event) or
  ``alive`` (no event; needs a horizon) -- eventual or by ``horizon_years``;
* ``reach``: the probability of ever being in ``stage``;
* a share: an outcome divided by the sum of the outcomes named in ``among``
  (``ipo`` among ``["ipo", "ma"]`` is the IPO share of exits),

for a cohort that starts in ``start_stage`` (or the scenario's mix of stages). Sets ship as
TOML files in ``invlend/data/targets/``, each target with its source and a mark as in
``docs/sources.md``: [S] seen in the source, [C] computed from published numbers, [E] an
estimate.

:func:`calibration_report` evaluates a scenario against a set; :func:`calibrate` fits stage
hazards to it with ``scipy.optimize.least_squares`` on log-hazards, bounded by the
:class:`~invlend.Stage` limits. Only hazards are fitted: drift and volatility do not enter
any of these targets (they would need value-based targets such as exit multiples).

Two methods
-----------
``method="exact"`` fits the exact stage chain, which is the model when the default intensity
depends on a firm's stage alone (``hazard_value_elasticity`` 0 and no runway effect).
``method="simulation"`` fits a scenario with a value or runway factor: the chain with each
stage's default hazard times a ratio ``m_s`` measured by simulating the cohort on common
random numbers, iterated to a fixed point, and checked target by target in a fresh
simulation (:func:`calibrate` says how). ``method="auto"`` (the default) picks the exact
method where it applies. :func:`calibration_report` refuses a scenario the chain does not
describe unless ``approximate=True``.

Example
-------
>>> import invlend as il
>>> il.target_sets()
['cbinsights_seed', 'cn_bank_book', 'korteweg_sorensen', 'sand_hill', 'zero2ipo_exits']
>>> v1 = il.Scenario.default().replace(hazard_value_elasticity=0.0,
...                                    runway_hazard_multiplier=1.0, cycle=None)
>>> rep = il.calibration_report(v1, "cn_bank_book")
>>> round(rep.max_abs_residual, 1)
4.0
>>> fit = il.calibrate(il.Scenario.default(), "cn_bank_book", n_firms=20_000)
>>> fit.method, fit.ratio_converged, round(fit.max_abs_residual, 2)
('simulation', True, 0.0)
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, Self

import numpy as np
from pydantic import Field, ValidationError, model_validator
from scipy.optimize import least_squares

from invlend import _checks
from invlend._sim.layout import Event
from invlend._tables import Document, Rows, json_ready, pandas, text_table
from invlend.cohort import (
    HAZARD_FIELDS,
    SIMULATION_PORTFOLIO_SIZE,
    Hazards,
    StageDefaults,
    check_barrier,
    check_exact,
    check_steps,
    check_stream,
    clustered_se,
    effective_ratios,
    eventual_years,
    law_averaged,
    mix_share,
    path_dependence,
    simulate_outcomes,
    simulation_scenario,
    simulation_seed,
    stage_defaults,
    start_weights,
)
from invlend.config import InputModel, Linkage, Number, Scenario, Stage

__all__ = [
    "Calibration",
    "HazardRatio",
    "SimulatedTarget",
    "Target",
    "TargetReport",
    "TargetRow",
    "TargetSet",
    "calibrate",
    "calibration_report",
    "load_targets",
    "target_sets",
]

#: Stage fields that :func:`calibrate` can fit: ``HAZARD_FIELDS`` (from :mod:`invlend.cohort`).
HazardField = Literal["default_hazard", "ipo_hazard", "ma_hazard", "advance_hazard"]
Outcome = Literal["default", "ipo", "ma", "exit", "ended", "alive", "reach"]
Part = Literal["default", "ipo", "ma", "alive"]

#: What each outcome adds up, in the absorbing states (and "alive").
_PARTS: dict[str, tuple[str, ...]] = {
    "default": ("default",),
    "ipo": ("ipo",),
    "ma": ("ma",),
    "alive": ("alive",),
    "exit": ("ipo", "ma"),
    "ended": ("default", "ipo", "ma"),
}
_LABEL = {
    "default": "default",
    "ipo": "IPO",
    "ma": "M&A",
    "alive": "alive",
    "exit": "exit",
    "ended": "any event",
}

#: Lower bound of a fitted hazard (per year): positive, so that log-hazards are finite. The
#: upper bound is the Stage model's own (``le`` of the field).
HAZARD_FLOOR = 1e-8


Probability = Annotated[Number, Field(ge=0.0, le=1.0)]
Years = Annotated[Number, Field(gt=0.0, le=1000.0)]


class Target(InputModel):
    """One published number the cohort model should reproduce.

    Parameters
    ----------
    name : str
        Identifier, unique within its set.
    outcome : {"default", "ipo", "ma", "exit", "ended", "alive", "reach"}
        What the probability is of (``exit`` = IPO or M&A; ``ended`` = any event; ``reach``
        = ever being in ``stage``).
    stage : str, optional
        The stage of a ``reach`` target (only there).
    among : list of {"default", "ipo", "ma", "alive"}, optional
        Makes the target a share: the outcome's probability divided by the sum of these
        (which must include the outcome's parts). ``["ipo", "ma"]``: a share of exits.
    value : float
        The published number, a probability in [0, 1].
    range : [float, float], optional
        The published spread around ``value`` (several sources or vintages), for the report.
    horizon_years : float, optional
        By this horizon; otherwise the set's horizon, and if that is unset too, eventual.
    start_stage : str, optional
        Stage the cohort starts in; otherwise the set's.
    mark : {"S", "C", "E"}
        Seen in the source, computed from published numbers, or an estimate.
    source : str
        Where the number comes from.
    note : str
        How the published number is mapped onto the chain, when that needs saying.
    weight : float
        Weight of the target's residual in the fit (default 1).
    """

    name: str
    outcome: Outcome
    stage: str | None = None
    among: tuple[Part, ...] | None = None
    value: Probability
    range: tuple[Probability, Probability] | None = None
    horizon_years: Years | None = None
    start_stage: str | None = None
    mark: Literal["S", "C", "E"]
    source: Annotated[str, Field(min_length=1)]
    note: str = ""
    weight: Annotated[Number, Field(gt=0.0, le=1000.0)] = 1.0

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _checks.identifier("name: target name", self.name)
        if self.outcome == "reach" and self.stage is None:
            raise ValueError("stage: a 'reach' target needs the stage it reaches")
        if self.outcome != "reach" and self.stage is not None:
            raise ValueError(f"stage: only a 'reach' target has a stage, not {self.outcome!r}")
        if self.among is not None:
            if self.outcome == "reach":
                raise ValueError("among: a 'reach' target cannot be a share")
            if len(set(self.among)) != len(self.among):
                raise ValueError(f"among: repeated outcomes in {list(self.among)}")
            missing = [p for p in _PARTS[self.outcome] if p not in self.among]
            if missing:
                raise ValueError(
                    f"among: a share of {self.outcome!r} must be among outcomes that include "
                    f"it; add {missing}"
                )
        if self.range is not None and not self.range[0] <= self.value <= self.range[1]:
            raise ValueError(
                f"range: value {self.value:g} is outside the range [{self.range[0]:g}, "
                f"{self.range[1]:g}]"
            )
        return self

    def quantity(self, start: str | None, horizon: float | None) -> str:
        """The target in words, e.g. ``P(reach early | seed)``."""
        if self.outcome == "reach":
            what = f"P(reach {self.stage})"
        elif self.among is not None:
            what = f"{_LABEL[self.outcome]} / ({' + '.join(_LABEL[p] for p in self.among)})"
        else:
            what = f"P({_LABEL[self.outcome]})"
        when = "" if horizon is None else f" by {horizon:g} y"
        return f"{what}{when} from {start or 'mix'}"


class TargetSet(InputModel):
    """A published set of lifecycle targets (one TOML file of ``invlend/data/targets``).

    Parameters
    ----------
    name : str
        Identifier (the file's stem for the shipped sets).
    title, source : str
        What the numbers are and where they were published.
    reference : str
        Where the project's bibliography lists the primary source: ``docs/sources.md`` and
        the source's author and year there (for a set of your own, any citation).
    start_stage : str, optional
        Stage the cohort starts in (``None``: the scenario's mix of starting stages).
    horizon_years : float, optional
        Horizon of the targets that do not give their own (``None``: eventual).
    free : list of str, optional
        The hazards a fit to this set should free by default (:func:`calibrate`).
    notes : str
        How the published numbers are mapped onto the chain.
    targets : list of Target
        At least one.
    """

    name: str
    title: Annotated[str, Field(min_length=1)]
    source: Annotated[str, Field(min_length=1)]
    reference: Annotated[str, Field(min_length=1)]
    start_stage: str | None = None
    horizon_years: Years | None = None
    free: tuple[HazardField, ...] | None = None
    notes: str = ""
    targets: list[Target] = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _checks.identifier("name: target set name", self.name)
        names = [t.name for t in self.targets]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"targets: target names must be unique, repeated: {dupes}")
        for i, t in enumerate(self.targets):
            wants_alive = t.outcome == "alive" or (t.among is not None and "alive" in t.among)
            if wants_alive and self.horizon_of(t) is None:
                raise ValueError(
                    f"targets[{i}].horizon_years: target {t.name!r} uses 'alive', which is 0 "
                    "for eventual outcomes; give a horizon"
                )
        return self

    def horizon_of(self, target: Target) -> float | None:
        """The target's horizon, or the set's."""
        return target.horizon_years if target.horizon_years is not None else self.horizon_years

    def start_of(self, target: Target) -> str | None:
        """The target's start stage, or the set's (``None``: the scenario's mix)."""
        return target.start_stage if target.start_stage is not None else self.start_stage

    @classmethod
    def from_toml(cls, path: str | Path) -> TargetSet:
        """Read a target set from a TOML file; errors name the file and the field."""
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ValueError(f"cannot read target set {p}: {exc.strerror}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{p} is not valid TOML: {exc}") from None
        return _validate(data, str(p))


def _validate(data: dict[str, Any], where: str) -> TargetSet:
    try:
        return TargetSet.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ""
            for part in err["loc"]:
                loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else part)
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"  {loc or '(set)'}: {msg}")
        raise ValueError(f"{where}: invalid target set\n" + "\n".join(lines)) from None


# ------------------------------------------------------------------------------- loading


def _shipped() -> dict[str, Any]:
    folder = resources.files("invlend").joinpath("data/targets")
    return {f.name[: -len(".toml")]: f for f in folder.iterdir() if f.name.endswith(".toml")}


def target_sets() -> list[str]:
    """Names of the target sets shipped with invlend (for :func:`load_targets`)."""
    return sorted(_shipped())


def load_targets(name: str | Path | TargetSet) -> TargetSet:
    """A shipped target set by name (see :func:`target_sets`), or one read from a TOML path.

    Raises ``ValueError`` naming the file and the field for an invalid set, and listing the
    shipped names for an unknown one.
    """
    if isinstance(name, TargetSet):
        return name
    if isinstance(name, Path) or (isinstance(name, str) and name.endswith(".toml")):
        return TargetSet.from_toml(name)
    if not isinstance(name, str):
        raise TypeError(f"targets: give a set name, a path or a TargetSet, not {type(name)}")
    shipped = _shipped()
    if name not in shipped:
        raise ValueError(f"targets: no target set named {name!r}; shipped sets: {sorted(shipped)}")
    data = tomllib.loads(shipped[name].read_text(encoding="utf-8"))
    return _validate(data, f"invlend/data/targets/{name}.toml")


# ------------------------------------------------------------------------------ the report


class TargetRow(NamedTuple):
    """One target against the model, residual in percentage points."""

    name: str
    quantity: str
    mark: str
    target: float
    model: float
    residual_pp: float  # 100 * (model - target)
    low: float  # the published range (NaN when none)
    high: float
    source: str


def _pp(x: float) -> str:
    return f"{x:+.2f}"


@dataclass(frozen=True)
class TargetReport(Rows, Document):
    """A scenario against a target set: one :class:`TargetRow` per target.

    ``print`` it for the table; :meth:`records`, ``to_frame()``, ``to_csv(path)``,
    :meth:`to_dict` and ``to_json(path)`` export it. ``note`` is empty for the exact chain and
    says how the model values were approximated otherwise (``calibration_report(...,
    approximate=True)``).
    """

    target_set: str
    title: str
    rows: tuple[TargetRow, ...]
    note: str = ""

    @property
    def approximate(self) -> bool:
        """Whether the model values are the approximate chain's (see ``note``)."""
        return bool(self.note)

    @property
    def max_abs_residual(self) -> float:
        """Largest ``|model - target|``, in percentage points."""
        return max(abs(r.residual_pp) for r in self.rows)

    def within(self, tolerance_pp: float) -> bool:
        """Whether every target is matched within ``tolerance_pp`` percentage points."""
        return self.max_abs_residual <= tolerance_pp

    def records(self) -> list[dict[str, Any]]:
        """The rows as dicts (a missing published range as None)."""
        return [json_ready({"target_set": self.target_set, **r._asdict()}) for r in self.rows]

    def fields(self) -> list[str]:
        """The columns of :meth:`records`."""
        return ["target_set", *TargetRow._fields]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (with ``note`` when the values are approximate)."""
        out = {
            "target_set": self.target_set,
            "title": self.title,
            "max_abs_residual_pp": self.max_abs_residual,
            "rows": self.records(),
        }
        if self.note:
            out["note"] = self.note
        return out

    def __str__(self) -> str:
        rows = [
            [r.name, r.quantity, r.mark, f"{r.target:.3f}", f"{r.model:.3f}", _pp(r.residual_pp)]
            for r in self.rows
        ]
        head = ["target", "quantity", "mark", "target", "model", "resid (pp)"]
        lines = [f"{self.target_set}: {self.title}", text_table(head, rows, left=3)]
        lines.append(f"max |residual| = {self.max_abs_residual:.2f} pp")
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)

    __repr__ = __str__


# ------------------------------------------------------------------------ the evaluator


def _base_hazards(scenario: Scenario) -> np.ndarray:
    """(4, n_stages) hazards in the order of ``HAZARD_FIELDS``, before any linkage."""
    return np.array([[getattr(s, f) for s in scenario.stages] for f in HAZARD_FIELDS])


def _stage_of(scenario: Scenario, name: str, where: str) -> int:
    """Index of the stage ``name``; a ``ValueError`` starting with ``where`` if there is none."""
    try:
        return scenario.stage_index(name)
    except KeyError:
        names = [s.name for s in scenario.stages]
        raise ValueError(
            f"{where}: no stage named {name!r} in the scenario; stages are {names}"
        ) from None


#: Default-hazard ratios of the simulation method, keyed by (horizon, start stage) as the
#: evaluator groups its targets (horizon ``None``: eventual; start ``None``: the stage mix).
Ratios = dict[tuple[float | None, str | None], np.ndarray]


class _Evaluator:
    """Model values of a target set's targets as a function of the stage hazards.

    ``dt`` is the engine's step for the law of the grid (``None``: continuous time). With
    ``ratios`` each (horizon, start) group of targets is evaluated on the chain with its
    default hazards times the group's ratios (the simulation method); without, every start of
    a horizon shares one solve.
    """

    def __init__(
        self,
        scenario: Scenario,
        tset: TargetSet,
        linkage: Linkage | None,
        dt: float | None = None,
    ):
        self.dt = dt
        lk = linkage if linkage is not None else Linkage()
        self.mult = np.array(
            [lk.default_hazard_multiplier, lk.exit_hazard_multiplier,
             lk.exit_hazard_multiplier, 1.0]
        )[:, None]  # fmt: skip
        self.gamma = scenario.quality_hazard
        self.cycle = scenario.cycle
        # Targets at one horizon share the matrix work: one row of start weights per start.
        self.starts: dict[float | None, list[str | None]] = {}
        self.p0: dict[float | None, list[np.ndarray]] = {}
        self.plan = []
        for i, t in enumerate(tset.targets):
            start = tset.start_of(t)
            if start is not None:
                where = f"targets[{i}].start_stage" if t.start_stage else "start_stage"
                _stage_of(scenario, start, f"{tset.name}: {where}")
            j = None  # the stage column of a 'reach' target
            if t.stage is not None:
                j = _stage_of(scenario, t.stage, f"{tset.name}: targets[{i}].stage")
            horizon = tset.horizon_of(t)
            starts = self.starts.setdefault(horizon, [])
            if start not in starts:
                starts.append(start)
                self.p0.setdefault(horizon, []).append(start_weights(scenario, start))
            self.plan.append((horizon, starts.index(start), t, j))

    def chain_hazards(self, hazards: np.ndarray, ratio: np.ndarray | None = None) -> Hazards:
        """The chain's hazards: ``hazards`` (4, n_stages) under the linkage, times ``ratio``."""
        h = hazards * self.mult
        default = h[0] if ratio is None else h[0] * ratio
        return Hazards(default, h[1], h[2], h[3], self.gamma, self.cycle)

    def laws(
        self, hazards: np.ndarray, nodes: int | None, ratios: Ratios | None = None
    ) -> tuple[dict, int]:
        out, used = {}, 1
        if ratios is None:
            hz = self.chain_hazards(hazards)
            for horizon, p0 in self.p0.items():
                out[horizon], n = law_averaged(hz, np.array(p0), horizon, self.dt, nodes)
                used = max(used, n)
            return out, used
        for horizon, p0 in self.p0.items():
            rows = []
            for start, p in zip(self.starts[horizon], p0, strict=True):
                hz = self.chain_hazards(hazards, ratios[(horizon, start)])
                law, n = law_averaged(hz, p[None, :], horizon, self.dt, nodes)
                rows.append(law)
                used = max(used, n)
            out[horizon] = {f: np.concatenate([r[f] for r in rows]) for f in rows[0]}
        return out, used

    def values(
        self, hazards: np.ndarray, nodes: int | None = None, ratios: Ratios | None = None
    ) -> tuple[np.ndarray, int]:
        laws, used = self.laws(hazards, nodes, ratios)
        vals = np.empty(len(self.plan))
        for k, (horizon, row, t, j) in enumerate(self.plan):
            law = {f: v[row] for f, v in laws[horizon].items()}
            if t.outcome == "reach":
                vals[k] = law["reach"][j]
                continue
            part = {
                "default": law["absorbed"][0],
                "ipo": law["absorbed"][1],
                "ma": law["absorbed"][2],
                "alive": law["alive_in"].sum(),
            }
            num = sum(part[p] for p in _PARTS[t.outcome])
            if t.among is None:
                vals[k] = num
            else:
                den = sum(part[p] for p in t.among)
                vals[k] = num / den if den > 0 else 0.0
        return vals, used


def _report(tset: TargetSet, values: np.ndarray) -> TargetReport:
    rows = []
    for t, v in zip(tset.targets, values, strict=True):
        lo, hi = t.range if t.range is not None else (math.nan, math.nan)
        rows.append(
            TargetRow(
                name=t.name,
                quantity=t.quantity(tset.start_of(t), tset.horizon_of(t)),
                mark=f"[{t.mark}]",
                target=t.value,
                model=float(v),
                residual_pp=100.0 * (float(v) - t.value),
                low=lo,
                high=hi,
                source=t.source,
            )
        )
    return TargetReport(tset.name, tset.title, tuple(rows))


# ------------------------------------------------------------- the simulation method


class HazardRatio(NamedTuple):
    """One stage's effective default-hazard ratio ``m_s`` for one group of targets.

    ``horizon_years`` is the group's (``None``: eventual) and ``measured_years`` the horizon the
    simulated defaults were counted by; ``se`` is the ratio's standard error (delta method,
    from the clustered standard error of the simulated defaults; NaN where not measured) and
    ``defaults`` the simulated defaults in the stage behind it (0: not measured, ratio 1).
    """

    horizon_years: float | None
    measured_years: float
    start: str
    stage: str
    ratio: float
    se: float
    defaults: int


class SimulatedTarget(NamedTuple):
    """A target measured in a fresh simulation of the fitted scenario.

    ``horizon_years`` is the target's horizon, or the simulated years for an eventual target
    (which is then checked by that horizon: ``chain`` is the fitted chain's value there too).
    ``se`` is the check's standard error (clustered by portfolio). The fitted chain carries the
    Monte Carlo error of its ratios, measured on a run of as many firms: about ``se`` again
    for a default target (less for the others), so ``z = (simulated - chain) / (sqrt(2) se)``.
    """

    name: str
    horizon_years: float
    eventual: bool
    target: float
    chain: float
    simulated: float
    se: float
    z: float


class _Measured(NamedTuple):
    ratio: np.ndarray  # (n_stages,)
    se_log: np.ndarray  # (n_stages,)
    defaults: StageDefaults


class _Simulation:
    """The simulation method's measurements for one target set.

    Every (horizon, start) group of the evaluator gets its own ratios: simulated defaults by
    the group's horizon (eventual groups: by ``years``), from the group's start law. One
    simulation serves all groups: its firms start as the average of the groups' start laws
    and each group's estimate reweights them by start stage (:func:`invlend.cohort.mix_share`).
    """

    def __init__(
        self,
        scenario: Scenario,
        tset: TargetSet,
        ev: _Evaluator,
        linkage: Linkage | None,
        n_firms: Any,
        seed: Any,
        years: Any,
    ):
        self.scenario, self.tset, self.ev, self.linkage = scenario, tset, ev, linkage
        self.names = tuple(s.name for s in scenario.stages)
        size = SIMULATION_PORTFOLIO_SIZE
        n_firms = _checks.count("n_firms", n_firms, low=2 * size, high=100_000_000)
        self.n_firms = -(-n_firms // size) * size  # whole portfolios
        self.root = simulation_seed(seed)
        longest = _check_target_steps(scenario, tset)
        self.keys = [(h, start) for h, starts in ev.starts.items() for start in starts]
        self.law = {start: start_weights(scenario, start) for _, start in self.keys}
        if years is None:
            years = longest
            eventual = [self.law[start] for h, start in self.keys if h is None]
            if eventual:
                hz = ev.chain_hazards(_base_hazards(scenario))
                years = max(years, eventual_years(hz, np.array(eventual), max(longest, 1.0)))
        else:
            years = _checks.number("simulation_years", years, low=0.0, high=100.0,
                                   low_open=True)  # fmt: skip
            check_steps(years, scenario, "simulation_years")
            if years < longest - 1e-9:
                raise ValueError(
                    f"simulation_years: {years:g} y is shorter than the longest target horizon "
                    f"({longest:g} y)"
                )
        self.years = float(years)
        weights = np.mean([self.law[s] for s in dict.fromkeys(st for _, st in self.keys)], axis=0)
        self.weights = weights / weights.sum()
        self.nodes: dict[tuple[float, str | None], int] = {}

    def measured_years(self, horizon: float | None) -> float:
        return self.years if horizon is None else horizon

    def simulate(self, hazards: np.ndarray, years: float, seed: np.random.SeedSequence):
        scn = simulation_scenario(self.scenario, hazards, self.weights, years)
        return simulate_outcomes(scn, self.linkage, self.n_firms, seed)

    def ratios(self, hazards: np.ndarray) -> dict[tuple[float | None, str | None], _Measured]:
        """Simulate at ``hazards`` on the common random numbers, and solve every group's ratios."""
        outcomes = self.simulate(hazards, self.years, self.root)
        hz = self.ev.chain_hazards(hazards)
        dt = self.scenario.dt
        solved: dict[tuple[float, str | None], _Measured] = {}
        for h, start in self.keys:
            years = self.measured_years(h)
            key = (years, start)
            if key in solved:
                continue
            law = self.law[start]
            steps = round(years * self.scenario.steps_per_year)
            simulated = stage_defaults(outcomes, steps, law, self.names)
            if key not in self.nodes:
                self.nodes[key] = law_averaged(hz, law[None, :], years, dt, None)[1]
            ratio, se_log = effective_ratios(hz, law, years, dt, simulated, self.nodes[key])
            solved[key] = _Measured(ratio, se_log, simulated)
        return {(h, start): solved[(self.measured_years(h), start)] for h, start in self.keys}

    def rows(self, measured: dict) -> tuple[HazardRatio, ...]:
        out = []
        for (h, start), m in measured.items():
            for j, name in enumerate(self.names):
                out.append(HazardRatio(
                    horizon_years=h, measured_years=self.measured_years(h),
                    start=start or "mix", stage=name, ratio=float(m.ratio[j]),
                    se=float(m.ratio[j] * m.se_log[j]), defaults=int(m.defaults.count[j]),
                ))  # fmt: skip
        return tuple(out)

    def check(
        self, hazards: np.ndarray, ratios: Ratios, dt: float | None
    ) -> tuple[SimulatedTarget, ...]:
        """Every target in a fresh simulation at ``hazards``, next to the fitted chain's value.

        An eventual target is checked by ``years`` on both sides. The simulation uses
        :func:`invlend.cohort.check_stream` of the root: independent of the fit's numbers.
        """
        tset = self.tset
        by = [self.measured_years(tset.horizon_of(t)) for t in tset.targets]
        moved = [t if tset.horizon_of(t) is not None else t.model_copy(
            update={"horizon_years": self.years}) for t in tset.targets]  # fmt: skip
        check_set = tset.model_copy(update={"targets": moved})
        cev = _Evaluator(self.scenario, check_set, self.linkage, dt)
        cratios = {(self.measured_years(h), s): r for (h, s), r in ratios.items()}
        chain, _ = cev.values(hazards, None, cratios)
        stream = check_stream(self.root)
        runs = {years: self.simulate(hazards, years, stream) for years in sorted(set(by))}
        rows = []
        for k, t in enumerate(tset.targets):
            value, se = self.simulated(t, runs[by[k]], tset.start_of(t))
            z = (value - chain[k]) / (math.sqrt(2.0) * se) if se > 0 else math.nan
            rows.append(SimulatedTarget(t.name, by[k], tset.horizon_of(t) is None, t.value,
                                        float(chain[k]), value, se, z))  # fmt: skip
        return tuple(rows)

    def simulated(self, t: Target, outcomes, start: str | None) -> tuple[float, float]:
        """A target's value, by the run's horizon, and its standard error (by portfolio)."""
        event = np.asarray(outcomes.event)
        initial = np.asarray(outcomes.initial_stage)
        law = self.law[start] if start in self.law else start_weights(self.scenario, start)

        def share(hit: np.ndarray) -> tuple[float, np.ndarray]:
            return mix_share(hit, initial, law, self.names)

        if t.outcome == "reach":
            j = self.scenario.stage_index(t.stage)
            value, psi = share((initial <= j) & (np.asarray(outcomes.stage) >= j))
        else:
            part = {"default": event == int(Event.DEFAULT), "ipo": event == int(Event.IPO),
                    "ma": event == int(Event.MA), "alive": event == int(Event.NONE)}  # fmt: skip
            value, psi = share(np.logical_or.reduce([part[p] for p in _PARTS[t.outcome]]))
            if t.among is not None:
                den, dpsi = share(np.logical_or.reduce([part[p] for p in t.among]))
                value, psi = (value / den, (psi - value / den * dpsi) / den) if den > 0 else (
                    0.0, np.zeros_like(psi))  # fmt: skip
        return float(value), clustered_se(psi)


def _ratio_arrays(measured: dict) -> Ratios:
    return {k: m.ratio for k, m in measured.items()}


#: The simulation method's ratios have settled when each moved by at most the tolerance or
#: this many of its own Monte Carlo standard errors: iterating further cannot resolve less.
_SETTLED_SE = 0.5


def _ratio_moves(old: dict, new: dict, tolerance: float) -> tuple[float, float, bool]:
    """How far the ratios moved between two measurements.

    Returns the largest ``|log m_new - log m_old|``, the largest such move in units of the
    standard error of ``log m`` (of the new measurement, else the old), and whether every
    ratio moved by at most ``max(tolerance, _SETTLED_SE * se)``.
    """
    raw, in_se, settled = 0.0, 0.0, True
    for k in old:
        move = np.abs(np.log(new[k].ratio) - np.log(old[k].ratio))
        se = np.where(np.isfinite(new[k].se_log), new[k].se_log, old[k].se_log)
        se = np.where(np.isfinite(se), se, np.inf)
        raw = max(raw, float(move.max()))
        with np.errstate(divide="ignore", invalid="ignore"):
            in_se = max(in_se, float(np.max(np.where(move > 0, move / se, 0.0))))
        settled &= bool(np.all(move <= np.maximum(tolerance, _SETTLED_SE * se)))
    return raw, in_se, settled


_REPORT_REMEDY = (
    "Simulate the scenario (il.simulate), pass approximate=True for the chain with each "
    "stage's default hazard rescaled by a simulation (an approximation), or fit with "
    "calibrate(..., method='simulation'), which reports a simulation check of each target."
)
_EXACT_REMEDY = (
    "Use method='simulation' (or 'auto'), which fits the chain with each stage's default "
    "hazard rescaled by a simulation and checks the fit in a fresh one, or simulate the "
    "scenario (il.simulate)."
)


def _check_target_steps(scenario: Scenario, tset: TargetSet) -> float:
    """Check that every target horizon is whole steps of the grid; return the longest (or 0)."""
    longest = 0.0
    for i, t in enumerate(tset.targets):
        h = tset.horizon_of(t)
        if h is not None:
            where = f"targets[{i}].horizon_years" if t.horizon_years else "horizon_years"
            check_steps(h, scenario, f"{tset.name}: {where}")
            longest = max(longest, h)
    return longest


def _check_scenario(scenario: Scenario, ignore_barrier: bool) -> None:
    if not isinstance(scenario, Scenario):
        raise TypeError(f"scenario: expected an invlend.Scenario, got {type(scenario).__name__}")
    check_barrier(scenario, ignore_barrier)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name}: expected True or False, got {type(value).__name__}")
    return bool(value)


def calibration_report(
    scenario: Scenario,
    targets: str | Path | TargetSet,
    *,
    linkage: Linkage | None = None,
    ignore_barrier: bool = False,
    grid: bool = False,
    approximate: bool = False,
    n_firms: int = 100_000,
    seed: int | np.random.SeedSequence | None = 0,
    simulation_years: float | None = None,
) -> TargetReport:
    """Evaluate a scenario against a target set, without fitting.

    The model values are those of the stage chain (:func:`invlend.cohort`): exact when the
    default intensity depends on a firm's stage alone (``hazard_value_elasticity`` 0 and no
    runway effect). For a scenario with a value or runway factor this raises ``ValueError``
    naming the field, unless ``approximate=True``.

    Parameters
    ----------
    scenario : Scenario
        The stages and their hazards (see :func:`invlend.cohort` for what enters).
    targets : str, Path or TargetSet
        A shipped set's name (:func:`target_sets`), a TOML file or a :class:`TargetSet`.
    linkage : Linkage, optional
        Evaluate the cohort under a VC partner's hazard multipliers.
    ignore_barrier : bool
        As in :func:`invlend.cohort`.
    grid : bool
        Evaluate the law of the engine's grid (``cohort(..., grid=True)``) rather than
        continuous time; every target horizon must then be a whole number of steps.
    approximate : bool
        For a scenario with a value or runway factor: the chain with each stage's default
        hazard times the ratio measured by simulation, per group of targets (as
        :func:`calibrate`'s simulation method measures it). The report's ``note`` says so.
        Where the chain is exact this changes nothing.
    n_firms, seed, simulation_years
        The simulation of ``approximate``, as in :func:`calibrate`.

    Returns
    -------
    TargetReport
        Target, model value and residual (model - target, in percentage points) per target.
    """
    _check_scenario(scenario, ignore_barrier)
    grid, approximate = _flag("grid", grid), _flag("approximate", approximate)
    if not approximate:
        check_exact(scenario, _REPORT_REMEDY)
    tset = load_targets(targets)
    if grid:
        _check_target_steps(scenario, tset)
    ev = _Evaluator(scenario, tset, linkage, scenario.dt if grid else None)
    if not (approximate and path_dependence(scenario)):
        values, _ = ev.values(_base_hazards(scenario))
        return _report(tset, values)
    sim = _Simulation(scenario, tset, ev, linkage, n_firms, seed, simulation_years)
    measured = sim.ratios(_base_hazards(scenario))
    values, _ = ev.values(_base_hazards(scenario), None, _ratio_arrays(measured))
    groups = "; ".join(
        f"{'eventual' if h is None else f'by {h:g} y'} from {start or 'mix'}: "
        + " ".join(f"{n} {m.ratio[j]:.3f}" for j, n in enumerate(sim.names))
        for (h, start), m in measured.items()
    )
    note = (
        f"APPROXIMATE ({', '.join(f for f, _ in path_dependence(scenario))}): the chain with "
        f"default hazards x ratios measured by simulating {sim.n_firms} firms over "
        f"{sim.years:g} y ({groups})"
    )
    return replace(_report(tset, values), note=note)


# ----------------------------------------------------------------------------- the fit


class FittedHazard(NamedTuple):
    """One stage hazard the fit moved."""

    stage: str
    field: str
    start: float
    fitted: float


@dataclass(frozen=True)
class Calibration(Document):
    """The result of :func:`calibrate`.

    Attributes
    ----------
    scenario : Scenario
        The input scenario with the fitted hazards (validated).
    report : TargetReport
        The fitted scenario against the targets: on the chain the fit used (with the
        simulation method, the chain with default hazards times ``ratios``).
    initial : TargetReport
        The input scenario against the targets, on the same chain (with the simulation
        method, with the ratios measured at the input hazards).
    parameters : tuple of FittedHazard
        Every hazard the fit could move, with its start and fitted value.
    success : bool
        Whether ``least_squares`` converged (see ``message``); how well the targets are met is
        ``max_abs_residual``.
    message : str
        The optimiser's message.
    nfev : int
        Model evaluations (of every fit, with the simulation method). Not in the printed
        summary: the optimiser's path, so this count, depends on the last bits of the
        machine's linear algebra (``docs/reproducibility.md``).
    free : tuple of str
        The hazard fields that were free.
    tie_stages : bool
        Whether one multiplier per field was fitted (True) or one hazard per stage.
    method : {"exact", "simulation"}
        The method used (``"auto"`` resolved).
    grid : bool
        Whether the chain was the law of the engine's grid (True) or continuous time.
    iterations : int
        Fits made by the simulation method (0 for the exact one).
    ratio_change : float
        Largest ``|log m_new - log m|`` between the ratios used by the last fit and those
        measured at its hazards (NaN for the exact method).
    ratio_change_se : float
        The largest such move in units of the ratio's standard error (of ``log m``).
    ratio_converged : bool
        Whether every ratio moved by at most ``ratio_tolerance`` or half its standard error
        (True for the exact method).
    ratios : tuple of HazardRatio
        The ratios the last fit used, per group of targets and stage (empty for the exact
        method).
    check : tuple of SimulatedTarget
        Each target in a fresh simulation of the fitted scenario, with its standard error,
        next to the chain's value (empty for the exact method).
    simulation : dict or None
        How the simulation method simulated: ``n_firms``, ``portfolio_size``,
        ``simulation_years``, ``seed`` and ``spawn_key`` of the root (replay with
        ``SeedSequence(seed, spawn_key=spawn_key)``), ``check_spawn_key`` of the check's
        stream.
    """

    scenario: Scenario
    report: TargetReport
    initial: TargetReport
    parameters: tuple[FittedHazard, ...]
    success: bool
    message: str
    nfev: int
    free: tuple[str, ...]
    tie_stages: bool
    method: str = "exact"
    grid: bool = False
    iterations: int = 0
    ratio_change: float = math.nan
    ratio_change_se: float = math.nan
    ratio_converged: bool = True
    ratios: tuple[HazardRatio, ...] = ()
    check: tuple[SimulatedTarget, ...] = ()
    simulation: dict[str, Any] | None = None

    @property
    def max_abs_residual(self) -> float:
        """Largest ``|fitted - target|`` in percentage points."""
        return self.report.max_abs_residual

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: the reports, the fitted hazards and the fitted scenario."""
        out = {
            "target_set": self.report.target_set,
            "success": self.success,
            "message": self.message,
            "nfev": self.nfev,
            "free": list(self.free),
            "tie_stages": self.tie_stages,
            "max_abs_residual_pp": self.max_abs_residual,
            "report": self.report.records(),
            "initial": self.initial.records(),
            "parameters": [p._asdict() for p in self.parameters],
            "scenario": self.scenario.model_dump(mode="json"),
            "method": self.method,
            "grid": self.grid,
        }
        if self.method == "simulation":
            out.update(
                iterations=self.iterations,
                ratio_change=self.ratio_change,
                ratio_change_se=self.ratio_change_se,
                ratio_converged=self.ratio_converged,
                ratios=[json_ready(r._asdict()) for r in self.ratios],
                check=[json_ready(r._asdict()) for r in self.check],
                simulation=json_ready(dict(self.simulation or {})),
            )
        return out

    def to_frame(self):
        """Target, start and fitted values, residuals: a pandas DataFrame (pandas optional).

        With the simulation method, also the check: ``simulated``, ``simulated_se`` and
        ``z`` (NaN where a target was not checked).
        """
        df = pandas().DataFrame.from_records(self.report.records())
        df.insert(df.columns.get_loc("model"), "start", [r.model for r in self.initial.rows])
        if self.check:
            df["simulated"] = [c.simulated for c in self.check]
            df["simulated_se"] = [c.se for c in self.check]
            df["z"] = [c.z for c in self.check]
        return df

    def __str__(self) -> str:
        status = "converged" if self.success else f"NOT converged ({self.message})"
        rows = [
            [r.name, r.quantity, r.mark, f"{r.target:.3f}", f"{s.model:.3f}", f"{r.model:.3f}",
             _pp(r.residual_pp)]
            for r, s in zip(self.report.rows, self.initial.rows, strict=True)
        ]  # fmt: skip
        head = ["target", "quantity", "mark", "target", "start", "fitted", "resid (pp)"]
        prow = [[p.stage, p.field, f"{p.start:.4g}", f"{p.fitted:.4g}"] for p in self.parameters]
        lines = [
            f"Calibration to {self.report.target_set}: {self.report.title}",
            f"free: {', '.join(self.free)}"
            f"{' (one multiplier per field)' if self.tie_stages else ' (per stage)'}; "
            f"{status}; max |residual| = "
            f"{self.max_abs_residual:.2f} pp",
        ]
        if self.method == "simulation":
            lines.append(self._method_line())
        lines += [
            text_table(head, rows, left=3),
            "",
            text_table(["stage", "hazard", "start", "fitted"], prow, left=2),
        ]
        if self.method == "simulation":
            lines += ["", *self._simulation_tables()]
        return "\n".join(lines)

    __repr__ = __str__

    def _method_line(self) -> str:
        sim = self.simulation or {}
        moved = "converged" if self.ratio_converged else "NOT converged"
        return (
            f"method: simulation (APPROXIMATE chain: default hazards x ratios m measured by "
            f"simulating {sim.get('n_firms')} firms over {sim.get('simulation_years'):g} y on "
            f"common random numbers); {self.iterations} fit(s), ratios {moved} (last move "
            f"{100 * self.ratio_change:.2f}%, {self.ratio_change_se:.2f} SE)"
        )

    def _simulation_tables(self) -> list[str]:
        stages = list(dict.fromkeys(r.stage for r in self.ratios))
        groups: dict[tuple[float | None, str], dict[str, HazardRatio]] = {}
        for r in self.ratios:
            groups.setdefault((r.horizon_years, r.start), {})[r.stage] = r

        def cell(r: HazardRatio) -> str:
            return f"{r.ratio:.3f} ({r.se:.3f})" if r.defaults > 0 else "1 (n/m)"

        rrows = [
            [f"{'eventual' if h is None else f'by {h:g} y'} from {start}",
             *(cell(g[s]) for s in stages)]
            for (h, start), g in groups.items()
        ]  # fmt: skip
        crows = [
            [c.name, f"by {c.horizon_years:g} y" + (" (eventual)" if c.eventual else ""),
             f"{c.target:.3f}", f"{c.chain:.4f}", f"{c.simulated:.4f}", f"{c.se:.4f}",
             f"{c.z:+.2f}" if math.isfinite(c.z) else "n/a"]
            for c in self.check
        ]  # fmt: skip
        sim = self.simulation or {}
        return [
            "default-hazard ratios m (standard error; n/m: no simulated default, not measured):",
            text_table(["targets", *stages], rrows),
            "",
            f"simulation check of the fitted scenario: {sim.get('n_firms')} firms on an "
            "independent stream; eventual targets by the simulated years; SE of the check; "
            "z = (simulated - chain) / (sqrt(2) SE), the fit's own error being about SE again",
            text_table(["target", "by", "target", "chain", "simulated", "SE", "z"], crows, left=2),
        ]


def _upper(field: str) -> float:
    for meta in Stage.model_fields[field].metadata:
        le = getattr(meta, "le", None)
        if le is not None:
            return float(le)
    return math.inf  # pragma: no cover - every hazard field has an upper bound


METHODS = ("auto", "exact", "simulation")


def calibrate(
    scenario: Scenario,
    targets: str | Path | TargetSet,
    *,
    free: Sequence[str] | None = None,
    stages: Sequence[str] | None = None,
    tie_stages: bool = False,
    linkage: Linkage | None = None,
    regularization: float = 0.01,
    ignore_barrier: bool = False,
    max_nfev: int = 2000,
    method: str = "auto",
    grid: bool = False,
    n_firms: int = 100_000,
    seed: int | np.random.SeedSequence | None = 0,
    simulation_years: float | None = None,
    max_iterations: int = 25,
    ratio_tolerance: float = 0.005,
) -> Calibration:
    r"""Fit stage hazards so that the cohort model meets a target set.

    Minimises, with ``scipy.optimize.least_squares`` (trust region reflective, bounds), the
    sum of squares of

    .. math::

        w_k \cdot 100\,(m_k(\theta) - y_k) \quad\text{(targets, in percentage points)},
        \qquad \rho\,(\theta - \theta_0) \quad\text{(one per parameter)}

    over log-hazards :math:`\theta`, where :math:`m_k` is the cohort value of target
    :math:`k` and :math:`y_k` the published number. The small :math:`\rho` makes the fit
    unique when the targets do not pin every hazard down: among the hazards that meet the
    targets equally well it picks those closest, in log terms, to the start. Each hazard stays
    within [1e-8, the Stage model's upper bound] per year.

    **Exact method.** :math:`m_k` is the exact stage chain (:func:`invlend.cohort`), which is
    the model when the default intensity depends on a firm's stage alone
    (``hazard_value_elasticity`` 0 and no runway effect).

    **Simulation method**, for a scenario whose default intensity depends on the firm's value
    path or on the time since its last round. For every group of targets (one horizon, one
    start law) and stage ``s``, a simulation of ``n_firms`` firms at the current hazards
    measures the ratio :math:`m_s` with which the chain on the engine's grid meets the
    simulated probability of defaulting in stage ``s`` by the group's horizon
    (:func:`invlend.cohort.effective_ratios`): the simulated defaults of the stage per year
    the chain spends there, over the chain's own rate. The fit is then made on the chain with
    default hazards :math:`m_s \lambda^D_s`; the fitted hazards are simulated again **on the
    same random numbers** and the ratios measured again, until each moves by at most
    ``ratio_tolerance`` (in log) or half its own Monte Carlo standard error (iterating further
    cannot resolve less), or after ``max_iterations`` fits. Where the chain is exact
    the ratios are 1 in law (a test). At the fixed point the chain meets, within Monte Carlo
    error, every simulated per-stage default probability of each group by its horizon;
    other quantities (exits, reach) are approximate. The result's ``check`` measures every
    target in a fresh simulation (an independent stream) of the fitted scenario, each with
    its standard error, next to the chain's value.

    Parameters
    ----------
    scenario : Scenario
        The starting point; everything but the free hazards is kept.
    targets : str, Path or TargetSet
        A shipped set's name (:func:`target_sets`), a TOML file or a :class:`TargetSet`.
    free : sequence of str, optional
        Hazard fields to fit, among ``default_hazard``, ``ipo_hazard``, ``ma_hazard``,
        ``advance_hazard``. ``None``: the set's ``free`` if it names one, else
        ``("advance_hazard", "default_hazard")``.
    stages : sequence of str, optional
        Stages whose hazards are free (``None``: all). A hazard that is 0 in the start stays 0
        (for example the seed stage's IPO hazard): set it positive to free it. The last
        stage's advance hazard is always 0.
    tie_stages : bool
        False (default): one free hazard per (stage, field). True: one multiplier per field,
        common to the chosen stages, which keeps the stage profile of the start.
    linkage : Linkage, optional
        Fit the cohort under these hazard multipliers (the fitted scenario holds the hazards
        before them).
    regularization : float
        :math:`\rho` above, in percentage points per unit of log-hazard (0 turns it off).
    ignore_barrier : bool
        As in :func:`invlend.cohort` (the simulation method then simulates without the
        barrier).
    max_nfev : int
        Most model evaluations (of each fit).
    method : {"auto", "exact", "simulation"}
        ``"auto"`` (default): ``"exact"`` where the chain is exact, ``"simulation"``
        otherwise. ``"exact"`` on a scenario with a value or runway factor raises
        ``ValueError`` naming the field.
    grid : bool
        Fit the law of the engine's grid (``cohort(..., grid=True)``, what
        :func:`invlend.simulate` samples) rather than the continuous-time chain; every target
        horizon must then be a whole number of steps.
    n_firms : int
        Firms per simulation of the simulation method (rounded up to portfolios of 50;
        standard errors are clustered by portfolio).
    seed : int, numpy.random.SeedSequence or None
        Root of the simulation method's random numbers (default 0: the fit is
        reproducible); ``None`` draws fresh entropy once, recorded in ``simulation``.
    simulation_years : float, optional
        Years simulated: at least the longest target horizon. By default that horizon, or,
        where some target is eventual, the first whole year at which the chain (at the start
        hazards) leaves at most 1% of every eventual group's cohort alive (at most 50).
    max_iterations : int
        Most fits of the simulation method (25: ``cn_bank_book`` on the built-in scenario
        settles in 3-4, a tied fit of ``cbinsights_seed`` in about 14, a per-stage one in
        about 20; a result that did not settle says so).
    ratio_tolerance : float
        The simulation method stops when no ratio moves by more than this (in log) or by more
        than half its standard error.

    Returns
    -------
    Calibration
        The fitted scenario, the target report before and after, the hazards moved; with the
        simulation method also the ratios, the iterations and the simulation check.

    Notes
    -----
    Only hazards are fitted: drift and volatility do not enter lifecycle-outcome targets.
    """
    _check_scenario(scenario, ignore_barrier)
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method: {method!r} is not one of {', '.join(map(repr, METHODS))}")
    grid = _flag("grid", grid)
    if method == "auto":
        method = "simulation" if path_dependence(scenario) else "exact"
    if method == "exact":
        check_exact(scenario, _EXACT_REMEDY)
    tset = load_targets(targets)
    if free is None:
        free = tset.free if tset.free is not None else ("advance_hazard", "default_hazard")
    if isinstance(free, str) or not free:
        raise ValueError("free: give a sequence of hazard fields, e.g. ('default_hazard',)")
    free = tuple(free)
    bad = [f for f in free if f not in HAZARD_FIELDS]
    if bad:
        raise ValueError(f"free: {bad} are not hazards; choose from {list(HAZARD_FIELDS)}")
    names = [s.name for s in scenario.stages]
    chosen = names if stages is None else list(stages)
    unknown = [s for s in chosen if s not in names]
    if unknown:
        raise ValueError(f"stages: no stage named {unknown}; stages are {names}")
    regularization = _checks.number("regularization", regularization, low=0.0)
    max_nfev = _checks.count("max_nfev", max_nfev, low=1, high=1_000_000)
    if method == "simulation":
        max_iterations = _checks.count("max_iterations", max_iterations, low=1, high=100)
        ratio_tolerance = _checks.number("ratio_tolerance", ratio_tolerance, low=0.0)
    if grid:
        _check_target_steps(scenario, tset)

    base = _base_hazards(scenario)
    # Which hazards move: (field row, stage column) pairs, grouped into parameters.
    groups: list[list[tuple[int, int]]] = []
    columns = [scenario.stage_index(s) for s in chosen]
    last = len(names) - 1  # the last stage cannot advance
    for f in free:
        row = HAZARD_FIELDS.index(f)
        cells = [
            (row, j)
            for j in columns
            if base[row, j] > 0 and not (f == "advance_hazard" and j == last)
        ]
        if tie_stages:
            groups += [cells] if cells else []
        else:
            groups += [[c] for c in cells]
    if not groups:
        raise ValueError(
            f"free: every {list(free)} hazard of stages {chosen} is 0 (zeros stay fixed); "
            "set the ones to fit positive"
        )
    floor = np.array([[HAZARD_FLOOR] * len(names)] * 4)
    top = np.array([[_upper(f)] * len(names) for f in HAZARD_FIELDS])
    start = np.clip(base, floor, top)
    if tie_stages:
        x0 = np.zeros(len(groups))
        lb = np.array([max(math.log(floor[c] / start[c]) for c in g) for g in groups])
        ub = np.array([min(math.log(top[c] / start[c]) for c in g) for g in groups])
    else:
        x0 = np.array([math.log(start[g[0]]) for g in groups])
        lb = np.array([math.log(floor[g[0]]) for g in groups])
        ub = np.array([math.log(top[g[0]]) for g in groups])

    def hazards(x: np.ndarray) -> np.ndarray:
        h = base.copy()
        for g, xi in zip(groups, x, strict=True):
            for c in g:
                h[c] = start[c] * math.exp(xi) if tie_stages else math.exp(xi)
        return h

    dt = scenario.dt if grid else None
    ev = _Evaluator(scenario, tset, linkage, dt)
    y = np.array([t.value for t in tset.targets])
    w = np.array([t.weight for t in tset.targets])
    sim = measured = None
    if method == "simulation":
        sim = _Simulation(scenario, tset, ev, linkage, n_firms, seed, simulation_years)
        measured = sim.ratios(base)
    # The quadrature's size is settled once, at the start (it depends on quality_hazard).
    initial_values, nodes = ev.values(base, None, None if sim is None else _ratio_arrays(measured))

    def fit(x_start: np.ndarray, ratios: Ratios | None):
        def residuals(x: np.ndarray) -> np.ndarray:
            vals, _ = ev.values(hazards(x), nodes, ratios)
            return np.concatenate([w * 100.0 * (vals - y), regularization * (x - x0)])

        return least_squares(
            residuals, x_start, bounds=(lb, ub), method="trf", x_scale=1.0,
            ftol=1e-12, xtol=1e-12, gtol=1e-12, max_nfev=max_nfev,
        )  # fmt: skip

    extra: dict[str, Any] = {}
    if sim is None:
        opt = fit(x0, None)
        nfev = int(opt.nfev)
        ratios = None
    else:
        # Fixed point of (ratios -> fitted hazards -> ratios measured there), each
        # simulation on the same random numbers so that only the hazards change.
        x, nfev = x0, 0
        used = measured
        for iteration in range(1, max_iterations + 1):
            opt = fit(x, _ratio_arrays(used))
            x, nfev = opt.x, nfev + int(opt.nfev)
            again = sim.ratios(hazards(x))
            change, change_se, settled = _ratio_moves(used, again, ratio_tolerance)
            if settled or iteration == max_iterations:
                break
            used = again
        ratios = _ratio_arrays(used)
        extra = dict(method="simulation", iterations=iteration, ratio_change=change,
                     ratio_change_se=change_se, ratio_converged=settled,
                     ratios=sim.rows(used))  # fmt: skip
    fitted = hazards(opt.x)
    new_stages = [
        s.model_copy(update={f: float(fitted[r, j]) for r, f in enumerate(HAZARD_FIELDS)})
        for j, s in enumerate(scenario.stages)
    ]
    new = Scenario.model_validate({**scenario.model_dump(), "stages": [
        s.model_dump() for s in new_stages]})  # fmt: skip
    final_values, _ = _Evaluator(new, tset, linkage, dt).values(_base_hazards(new), None, ratios)
    moved = sorted({c for g in groups for c in g}, key=lambda c: (c[1], c[0]))
    params = tuple(
        FittedHazard(names[j], HAZARD_FIELDS[r], float(base[r, j]), float(fitted[r, j]))
        for r, j in moved
    )
    if sim is not None:
        extra["check"] = sim.check(_base_hazards(new), ratios, dt)
        root = sim.root
        extra["simulation"] = {
            "n_firms": sim.n_firms,
            "portfolio_size": SIMULATION_PORTFOLIO_SIZE,
            "simulation_years": sim.years,
            "seed": root.entropy,
            "spawn_key": list(root.spawn_key),
            "check_spawn_key": list(check_stream(root).spawn_key),
        }
    return Calibration(
        scenario=new,
        report=_report(tset, final_values),
        initial=_report(tset, initial_values),
        parameters=params,
        success=bool(opt.success),
        message=str(opt.message),
        nfev=nfev,
        free=free,
        tie_stages=tie_stages,
        grid=grid,
        **extra,
    )
