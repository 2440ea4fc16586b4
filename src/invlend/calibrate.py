r"""Calibration of stage hazards to published lifecycle targets, on the exact cohort chain.

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

Example
-------
>>> import invlend as il
>>> il.target_sets()
['cbinsights_seed', 'cn_bank_book', 'korteweg_sorensen', 'sand_hill', 'zero2ipo_exits']
>>> rep = il.calibration_report(il.Scenario.default(), "cn_bank_book")
>>> round(rep.max_abs_residual, 1)
5.2
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, Self

import numpy as np
from pydantic import Field, ValidationError, model_validator
from scipy.optimize import least_squares

from invlend import _checks
from invlend._tables import Document, Rows, json_ready, pandas, text_table
from invlend.cohort import Hazards, check_barrier, law_averaged, start_weights
from invlend.config import InputModel, Linkage, Number, Scenario, Stage

__all__ = [
    "Calibration",
    "Target",
    "TargetReport",
    "TargetRow",
    "TargetSet",
    "calibrate",
    "calibration_report",
    "load_targets",
    "target_sets",
]

#: Stage fields that :func:`calibrate` can fit.
HAZARD_FIELDS = ("default_hazard", "ipo_hazard", "ma_hazard", "advance_hazard")
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
    :meth:`to_dict` and ``to_json(path)`` export it.
    """

    target_set: str
    title: str
    rows: tuple[TargetRow, ...]

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
        """JSON-ready dict."""
        return {
            "target_set": self.target_set,
            "title": self.title,
            "max_abs_residual_pp": self.max_abs_residual,
            "rows": self.records(),
        }

    def __str__(self) -> str:
        rows = [
            [r.name, r.quantity, r.mark, f"{r.target:.3f}", f"{r.model:.3f}", _pp(r.residual_pp)]
            for r in self.rows
        ]
        head = ["target", "quantity", "mark", "target", "model", "resid (pp)"]
        lines = [f"{self.target_set}: {self.title}", text_table(head, rows, left=3)]
        lines.append(f"max |residual| = {self.max_abs_residual:.2f} pp")
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


class _Evaluator:
    """Model values of a target set's targets as a function of the stage hazards."""

    def __init__(self, scenario: Scenario, tset: TargetSet, linkage: Linkage | None):
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

    def laws(self, hazards: np.ndarray, nodes: int | None) -> tuple[dict, int]:
        h = hazards * self.mult
        hz = Hazards(h[0], h[1], h[2], h[3], self.gamma, self.cycle)
        out, used = {}, 1
        for horizon, p0 in self.p0.items():
            out[horizon], n = law_averaged(hz, np.array(p0), horizon, None, nodes)
            used = max(used, n)
        return out, used

    def values(self, hazards: np.ndarray, nodes: int | None = None) -> tuple[np.ndarray, int]:
        laws, used = self.laws(hazards, nodes)
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


def _check_scenario(scenario: Scenario, ignore_barrier: bool) -> None:
    if not isinstance(scenario, Scenario):
        raise TypeError(f"scenario: expected an invlend.Scenario, got {type(scenario).__name__}")
    check_barrier(scenario, ignore_barrier)


def calibration_report(
    scenario: Scenario,
    targets: str | Path | TargetSet,
    *,
    linkage: Linkage | None = None,
    ignore_barrier: bool = False,
) -> TargetReport:
    """Evaluate a scenario against a target set, without fitting.

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

    Returns
    -------
    TargetReport
        Target, model value and residual (model - target, in percentage points) per target.
    """
    _check_scenario(scenario, ignore_barrier)
    tset = load_targets(targets)
    ev = _Evaluator(scenario, tset, linkage)
    values, _ = ev.values(_base_hazards(scenario))
    return _report(tset, values)


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
        The fitted scenario against the targets.
    initial : TargetReport
        The input scenario against the targets.
    parameters : tuple of FittedHazard
        Every hazard the fit could move, with its start and fitted value.
    success : bool
        Whether ``least_squares`` converged (see ``message``); how well the targets are met is
        ``max_abs_residual``.
    message : str
        The optimiser's message.
    nfev : int
        Model evaluations.
    free : tuple of str
        The hazard fields that were free.
    tie_stages : bool
        Whether one multiplier per field was fitted (True) or one hazard per stage.
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

    @property
    def max_abs_residual(self) -> float:
        """Largest ``|fitted - target|`` in percentage points."""
        return self.report.max_abs_residual

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: the reports, the fitted hazards and the fitted scenario."""
        return {
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
        }

    def to_frame(self):
        """Target, start and fitted values, residuals: a pandas DataFrame (pandas optional)."""
        df = pandas().DataFrame.from_records(self.report.records())
        df.insert(df.columns.get_loc("model"), "start", [r.model for r in self.initial.rows])
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
        return "\n".join(
            [
                f"Calibration to {self.report.target_set}: {self.report.title}",
                f"free: {', '.join(self.free)}"
                f"{' (one multiplier per field)' if self.tie_stages else ' (per stage)'}; "
                f"{status} after {self.nfev} evaluations; max |residual| = "
                f"{self.max_abs_residual:.2f} pp",
                text_table(head, rows, left=3),
                "",
                text_table(["stage", "hazard", "start", "fitted"], prow, left=2),
            ]
        )

    __repr__ = __str__


def _upper(field: str) -> float:
    for meta in Stage.model_fields[field].metadata:
        le = getattr(meta, "le", None)
        if le is not None:
            return float(le)
    return math.inf  # pragma: no cover - every hazard field has an upper bound


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
) -> Calibration:
    r"""Fit stage hazards so that the cohort model meets a target set.

    Minimises, with ``scipy.optimize.least_squares`` (trust region reflective, bounds), the
    sum of squares of

    .. math::

        w_k \cdot 100\,(m_k(\theta) - y_k) \quad\text{(targets, in percentage points)},
        \qquad \rho\,(\theta - \theta_0) \quad\text{(one per parameter)}

    over log-hazards :math:`\theta`, where :math:`m_k` is the exact cohort value of target
    :math:`k` (:func:`invlend.cohort`) and :math:`y_k` the published number. The small
    :math:`\rho` makes the fit unique when the targets do not pin every hazard down: among the
    hazards that meet the targets equally well it picks those closest, in log terms, to the
    start. Each hazard stays within [1e-8, the Stage model's upper bound] per year.

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
        As in :func:`invlend.cohort`.
    max_nfev : int
        Most model evaluations.

    Returns
    -------
    Calibration
        The fitted scenario, the target report before and after, the hazards moved.

    Notes
    -----
    Only hazards are fitted: drift and volatility do not enter lifecycle-outcome targets.
    """
    _check_scenario(scenario, ignore_barrier)
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

    ev = _Evaluator(scenario, tset, linkage)
    y = np.array([t.value for t in tset.targets])
    w = np.array([t.weight for t in tset.targets])
    # The quadrature's size is settled once, at the start (it depends on quality_hazard).
    initial_values, nodes = ev.values(base)

    def residuals(x: np.ndarray) -> np.ndarray:
        vals, _ = ev.values(hazards(x), nodes)
        return np.concatenate([w * 100.0 * (vals - y), regularization * (x - x0)])

    opt = least_squares(
        residuals, x0, bounds=(lb, ub), method="trf", x_scale=1.0,
        ftol=1e-12, xtol=1e-12, gtol=1e-12, max_nfev=max_nfev,
    )  # fmt: skip
    fitted = hazards(opt.x)
    new_stages = [
        s.model_copy(update={f: float(fitted[r, j]) for r, f in enumerate(HAZARD_FIELDS)})
        for j, s in enumerate(scenario.stages)
    ]
    new = Scenario.model_validate({**scenario.model_dump(), "stages": [
        s.model_dump() for s in new_stages]})  # fmt: skip
    final_values, _ = _Evaluator(new, tset, linkage).values(_base_hazards(new))
    moved = sorted({c for g in groups for c in g}, key=lambda c: (c[1], c[0]))
    params = tuple(
        FittedHazard(names[j], HAZARD_FIELDS[r], float(base[r, j]), float(fitted[r, j]))
        for r, j in moved
    )
    return Calibration(
        scenario=new,
        report=_report(tset, final_values),
        initial=_report(tset, initial_values),
        parameters=params,
        success=bool(opt.success),
        message=str(opt.message),
        nfev=int(opt.nfev),
        free=free,
        tie_stages=tie_stages,
    )
