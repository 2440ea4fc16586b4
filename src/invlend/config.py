"""Validated inputs: the scenario (firms and market) and the financing structures.

Overview
--------
Every input of a simulation is a frozen pydantic model with ``extra="forbid"``: a typo in a
field name, a number out of bounds or an inconsistent combination fails at construction with an
:class:`InputError` (a pydantic ``ValidationError``) that lists every error of the input, each
naming its stage or structure and the field (``stage 'seed': volatilty: unknown field — did you
mean volatility?``). The models hold no behaviour beyond validation and TOML
input/output; :mod:`invlend._sim.lowering` turns them into plain arrays for the kernels.

Units: times in years, rates and hazards annual (continuous compounding for discounting),
values in currency units (the built-in scenario uses millions), fractions in [0, 1].

Example
-------
>>> import invlend as il
>>> sc = il.Scenario.default()
>>> [s.name for s in sc.stages]
['seed', 'early', 'growth', 'expansion', 'mature']
>>> loan = il.Loan(loan_to_value=0.2, rate=0.045, maturity_years=3.0)
>>> il.Structure(name="plain", loan=loan).warrant is None
True
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType, UnionType
from typing import Annotated, Any, Literal, Self, Union, get_args, get_origin

import numpy as np
import tomli_w
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from invlend import _checks

__all__ = [
    "COLLATERAL_KINDS",
    "Collateral",
    "Equity",
    "FundingCycle",
    "InputError",
    "Linkage",
    "Loan",
    "Market",
    "Regime",
    "RiskPool",
    "RiskShare",
    "Scenario",
    "Screening",
    "Stage",
    "Structure",
    "Warrant",
]


def _strict(error_type: str, what: str):
    """A before-validator that refuses bools and strings where ``what`` is meant.

    pydantic's lax mode reads ``"5"`` and ``True`` as numbers and its strict mode refuses
    ``numpy.int64``; neither is what a model of a bank's book wants. numpy scalars are turned
    into Python numbers, then pydantic checks the type and bounds as usual.
    """

    def check(value: Any) -> Any:
        if isinstance(value, np.integer | np.floating):
            return value.item()
        if isinstance(value, bool | np.bool_) or not isinstance(value, int | float):
            kind = "a string" if isinstance(value, str) else type(value).__name__
            raise PydanticCustomError(
                error_type, "Input should be a valid {what}, not {kind}",
                {"what": what, "kind": "a bool" if isinstance(value, bool) else kind},
            )  # fmt: skip
        return value

    return check


#: A finite float given as a number (never a bool or a string); numpy scalars are accepted.
Number = Annotated[
    float, BeforeValidator(_strict("float_type", "number")), Field(allow_inf_nan=False)
]
#: An integer given as a number (never a bool or a string); numpy integers are accepted.
Count = Annotated[int, BeforeValidator(_strict("int_type", "integer"))]
Fraction = Annotated[Number, Field(ge=0.0, le=1.0)]
NonNeg = Annotated[Number, Field(ge=0.0)]
Hazard = Annotated[Number, Field(ge=0.0, le=1000.0)]


#: How far from 1 the stage weights may sum (then they are scaled to sum to 1): weights
#: written with a few decimals, such as 0.3333 three times and 0.0001 more, pass.
WEIGHT_TOLERANCE = 1e-6


class _Breaches(ValueError):
    """Several broken cross-field rules of one model, each as ``where: why``.

    Raised by a model validator, it becomes one line of :class:`InputError` per rule.
    """

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages

    @classmethod
    def check(cls, messages: Iterable[str]) -> None:
        """Raise the broken rules ``messages``, if there is any."""
        found = list(messages)
        if found:
            raise cls(found)


class InputError(ValidationError):
    """Every problem of one input, each as ``where: rule``, without pydantic's URLs and dumps.

    A :class:`pydantic.ValidationError` (so a ``ValueError``), raised by the models of this
    module for all the errors of their input at once. Each line names the element of a list
    by its name (``stage 'seed': volatility: ...``, ``structure 'warrant_loan': ...``), the
    rest by its path (``market.factor_loading``, ``stages[0].weight`` when a stage has no
    usable name). :meth:`errors` gives the same rules under ``msg`` and the line's location
    under ``ctx["at"]``; :attr:`messages` gives the lines.

    Example
    -------
    >>> import invlend as il
    >>> try:
    ...     il.Stage(name="seed", volatilty=0.5)
    ... except il.config.InputError as exc:
    ...     print(exc)
    stage 'seed': volatilty: unknown field — did you mean volatility?
    """

    @property
    def messages(self) -> list[str]:
        """One line per error: ``where: rule`` (the rule alone for a whole-input rule)."""
        lines = []
        for err in self.errors(include_url=False, include_input=False):
            at = (err.get("ctx") or {}).get("at", "")
            lines.append(f"{at}: {err['msg']}" if at else err["msg"])
        return lines

    def __str__(self) -> str:
        return _checks.errors_text(self.title, self.messages)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    @classmethod
    def of(
        cls, model: type[BaseModel], data: Any, exc: ValidationError, at: tuple = ()
    ) -> InputError:
        """The errors ``exc`` of validating ``data`` as ``model``, located and reworded.

        ``at`` is the location of ``data`` in a larger input (``("structure", 2)``): it
        prefixes the paths of an element without a name.
        """
        return cls.from_exception_data(model.__name__, _details(model, data, exc, at))


def _detail(err: dict, where: str, msg: str, at: tuple) -> dict:
    """An error of :meth:`ValidationError.errors` rebuilt with its rule and place.

    ``msg`` is the rule, ``where`` the place as the user reads it; ``at`` prefixes the location.
    """
    return {
        "type": PydanticCustomError(err["type"], msg, {**(err.get("ctx") or {}), "at": where}),
        "loc": (*at, *err["loc"]),
        "input": err.get("input"),
    }


def _details(model: type[BaseModel], data: Any, exc: ValidationError, at: tuple) -> list[dict]:
    """Each error of ``exc`` located (see :func:`_locate`) and reworded (see :func:`_rules`)."""
    out = []
    for err in exc.errors(include_url=False):
        where, holder = _locate(model, data, err["loc"], list(at))
        out.extend(_detail(err, where, msg, at) for msg in _rules(err, holder))
    return out


def _rules(err: dict, holder: type[BaseModel] | None) -> list[str]:
    """The rules an error states, each as one message.

    pydantic's message without its "Value error, " prefix; an unknown field with the closest
    field of ``holder`` (the model it was given to); each broken rule of a model validator.
    """
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, _Breaches):
        return cause.messages
    if err["type"] == "extra_forbidden" and holder is not None:
        return [_checks.unknown_field(err["loc"][-1], list(holder.model_fields))]
    return [err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")]


def _models_in(annotation: Any) -> dict[str | None, type[BaseModel] | None]:
    """The models a field can hold, keyed by their union ``Tag`` (``None`` when untagged).

    Every tag of the union is a key, with ``None`` for a member that is not a model.
    """
    found: dict[str | None, type[BaseModel] | None] = {}
    stack = [(annotation, None)]
    while stack:
        node, tag = stack.pop()
        if isinstance(node, type) and issubclass(node, BaseModel):
            found[tag] = node
        elif get_origin(node) is Annotated:
            base, *meta = get_args(node)
            tag = next((m.tag for m in meta if isinstance(m, Tag)), tag)
            if tag is not None:
                found.setdefault(tag, None)
            stack.append((base, tag))
        elif get_origin(node) in (Union, UnionType, list):
            stack.extend((arg, tag) for arg in get_args(node))
    return found


def _child(node: Any, key: str | int) -> Any:
    """``node[key]`` of an input (a dict, a list or a model), or ``None`` when absent."""
    try:
        return getattr(node, key) if isinstance(node, BaseModel) else node[key]
    except (AttributeError, IndexError, KeyError, TypeError):
        return None


def _label(models: dict, node: Any) -> str:
    """``"stage 'seed'"`` for an input of a model with a valid ``name``; else ``""``."""
    model = models.get(None)
    if model is None or "name" not in model.model_fields:
        return ""
    name = _child(node, "name")
    return f"{model.__name__.lower()} {name!r}" if _checks.is_identifier(name) else ""


def _locate(
    model: type[BaseModel], data: Any, loc: tuple, parts: list
) -> tuple[str, type[BaseModel] | None]:
    """Where an error at ``loc`` is, as the user reads it, and the model holding its last key.

    The path restarts at each element with a name (``stage 'seed'``); union tags are left out.
    """
    models: dict = {None: model}
    label, holder = _label(models, data), None
    if label:
        parts = []
    for key in loc:
        data = _child(data, key)
        if isinstance(key, int):
            parts.append(key)
            if named := _label(models, data):
                label, parts = named, []
        elif key in models:
            models = {None: models[key]}
        else:
            holder = models.get(None)
            parts.append(key)
            field = holder.model_fields.get(key) if holder else None
            models = _models_in(field.annotation) if field else {}
    path = _checks.field_path(parts)
    return ": ".join(x for x in (label, path) if x), holder


@contextmanager
def _input_errors(model: type[BaseModel], data: Any) -> Iterator[None]:
    """Turn pydantic's ``ValidationError`` for ``data`` into an :class:`InputError`."""
    try:
        yield
    except ValidationError as exc:
        raise InputError.of(model, data, exc) from None


def _validate_each(model: type[InputModel], items: list, key: str) -> list:
    """Each of ``items`` validated as ``model``; every error of every item in one InputError.

    ``key`` names the list in the input (``"structure"`` for ``[[structure]]`` tables): an
    item without a usable name is located as ``structure[1]``.
    """
    out, details = [], []
    for i, item in enumerate(items):
        try:
            out.append(super(InputModel, model).model_validate(item))
        except ValidationError as exc:
            details += _details(model, item, exc, (key, i))
    if details:
        raise InputError.from_exception_data(model.__name__, details)
    return out


class InputModel(BaseModel):
    """Base of every input model: frozen, closed to unknown fields, finite numbers.

    Invalid input raises :class:`InputError`, naming every bad field.
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", allow_inf_nan=False, validate_default=True
    )

    def __init__(self, /, **data: Any) -> None:
        with _input_errors(type(self), data):
            super().__init__(**data)

    # Not a custom __init__ to pydantic: a nested model is validated as before, so its errors
    # keep their location in the outer input (pydantic marks its own __init__ so).
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Self:
        """Validate ``obj``; invalid input raises :class:`InputError` (see pydantic's method)."""
        with _input_errors(cls, obj):
            return super().model_validate(obj, **kwargs)

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied and validated again, cross-field rules included.

        Unlike pydantic's ``model_copy(update=...)``, which skips validation, a bad value
        raises here naming the field: ``sc.replace(horizon_years=-1)`` fails as the
        constructor would. Values may be models or plain dicts of their fields.
        """
        return type(self).model_validate({**self.model_dump(), **changes})


# --------------------------------------------------------------------------------------------
# Scenario: firms and market
# --------------------------------------------------------------------------------------------


class Stage(InputModel):
    r"""One lifecycle stage of a technology firm.

    While in the stage, log firm value follows

    .. math::

        d\log V = (\mu_s + \beta_q q - \tfrac12 \sigma_s^2)\,dt
                  + \sigma_s (a\, dM_t + \sqrt{1-a^2}\, dW_t)

    and the firm meets competing events with annual intensities: default
    :math:`\lambda^D_s e^{-\gamma q}`, IPO :math:`\lambda^I_s`, M&A :math:`\lambda^M_s` and
    advance to the next stage :math:`\lambda^A_s`.

    Parameters
    ----------
    name : str
        Stage label (unique within a scenario), e.g. ``"seed"``.
    weight : float
        Share of applicant firms that start in this stage. The weights of a scenario's stages
        sum to 1 within ``1e-6`` (0.3333, 0.3333, 0.3334 pass) and are then scaled to sum
        to 1.
    initial_value : float
        Median firm value of an applicant in this stage, currency units.
    drift : float
        Arithmetic drift :math:`\mu_s` of firm value, per year (so
        :math:`E[V_T] = V_0 e^{\mu_s T}` without events).
    volatility : float
        Volatility :math:`\sigma_s` of log firm value, per square-root year.
    default_hazard, ipo_hazard, ma_hazard, advance_hazard : float
        Annual intensities of default, IPO, M&A (trade sale or buy-back) and of a funding
        round that moves the firm to the next stage. The last stage cannot advance.
    round_size : float
        New money raised at a round out of this stage, as a fraction of the pre-round value;
        existing holders are diluted by ``1 / (1 + round_size)``.
    runway_years : float or None
        Cash runway: years after the stage's last funding round (or after entry) that the
        money lasts. From the first step that starts at or after it, the default intensity is
        multiplied by :attr:`Scenario.runway_hazard_multiplier`. ``None`` (the default): no
        runway effect.

    Notes
    -----
    Defaults describe a neutral single-stage firm (weight 1, value 100, no drift, no volatility,
    no events), so a test or a closed-form case states only what it needs. The built-in
    scenario's sourced stages are in :meth:`Scenario.default`.
    """

    name: str
    weight: Fraction = 1.0
    initial_value: Annotated[Number, Field(ge=1e-6, le=1e12)] = 100.0
    drift: Annotated[Number, Field(ge=-2.0, le=2.0)] = 0.0
    volatility: Annotated[Number, Field(ge=0.0, le=5.0)] = 0.0
    default_hazard: Hazard = 0.0
    ipo_hazard: Hazard = 0.0
    ma_hazard: Hazard = 0.0
    advance_hazard: Hazard = 0.0
    round_size: Annotated[Number, Field(ge=0.0, le=100.0)] = 0.0
    runway_years: Annotated[Number | None, Field(gt=0.0, le=100.0)] = None

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        return _checks.identifier("stage name", v)


class Market(InputModel):
    """The economy shared by the firms of one portfolio.

    Parameters
    ----------
    discount_rate : float
        Continuously compounded annual rate at which the bank discounts cash flows.
        Default 0.02: Chinese government bond yields of 1.5-2.0% (not researched; an
        estimate of the project, see ``docs/sources.md``).
    factor_loading : float
        Loading ``a`` of each firm's growth shock on the portfolio's market factor; the asset
        correlation between two firms is ``a**2``. Default 0.35 (``a**2 = 0.1225``, an
        estimate), inside the project's one-factor range rho = 0.12-0.20 [E] and the Basel
        SME-adjusted corporate correlation 0.08-0.20 (computed from the IRB formula of Basel II
        ¶272-273).
    jump_rate : float
        Annual intensity of jumps in log firm value (compound Poisson). Default 0: no jumps
        (an estimate; turn on for technology shocks such as a lost key contract).
    jump_mean, jump_vol : float
        Mean and standard deviation of each log-value jump. Defaults -0.10 and 0.15 are the
        inputs of the project's Merton (1976) jump-diffusion test case (``docs/validation.md``).
        Jumps are compensated, so ``drift`` stays
        the arithmetic drift of firm value.
    default_risk_premium : float
        Ratio of the risk-neutral to the actual default intensity: under the risk-neutral
        measure (fair value) every default intensity is this multiple of the real-world one
        (1 = no default-event premium). Default 2: risk-neutral intensities implied by 5-year
        CDS are about twice Moody's KMV expected default frequencies (Berndt, Douglas, Duffie,
        Ferguson and Schranz 2005); carried over to technology SMEs as an estimate [E]. It
        changes no real-world figure.
    illiquidity_discount : float
        Discount for lack of marketability taken on the horizon marks of unlisted equity
        (the equity stake and the warrant of a firm that has not exited by the horizon); exits
        are paid in cash and are not discounted. Default 0 (off); studies of pre-IPO and
        restricted-stock sales put it at 26-48% (``docs/valuation.md``).
    """

    discount_rate: Annotated[Number, Field(ge=-0.1, le=1.0)] = 0.02
    factor_loading: Fraction = 0.35
    jump_rate: Hazard = 0.0
    jump_mean: Annotated[Number, Field(ge=-5.0, le=5.0)] = -0.10
    jump_vol: Annotated[Number, Field(ge=0.0, le=5.0)] = 0.15
    default_risk_premium: Annotated[Number, Field(gt=0.0, le=100.0)] = 2.0
    illiquidity_discount: Annotated[Number, Field(ge=0.0, lt=1.0)] = 0.0


class Regime(InputModel):
    """How one state of the funding market scales the firms' hazards and exit multiples.

    Parameters
    ----------
    advance : float
        Multiplier on every stage's ``advance_hazard`` (funding rounds).
    exit : float
        Multiplier on the IPO and M&A hazards.
    default : float
        Multiplier on the default hazard.
    exit_multiple : float
        Multiplier on ``ipo_multiple`` and ``ma_multiple`` for exits in this state.
    distress_value : float
        Multiplier on the scenario's ``distress_value`` for defaults in this state: distressed
        assets fetch less when the buyers who would pay most are distressed too.
    """

    advance: Annotated[Number, Field(ge=0.0, le=100.0)] = 1.0
    exit: Annotated[Number, Field(ge=0.0, le=100.0)] = 1.0
    default: Annotated[Number, Field(ge=0.0, le=100.0)] = 1.0
    exit_multiple: Annotated[Number, Field(gt=0.0, le=100.0)] = 1.0
    distress_value: Annotated[Number, Field(ge=0.0, le=100.0)] = 1.0


# Defaults of FundingCycle: each multiplier has stationary mean 1 (1/3 of the time cold), so
# the cycle moves hazards together without changing their long-run average.
_HOT = Regime(advance=1.2, exit=1.15, default=0.5, exit_multiple=1.1, distress_value=1.1)
_COLD = Regime(advance=0.6, exit=0.7, default=2.0, exit_multiple=0.8, distress_value=0.8)


class FundingCycle(InputModel):
    """A systematic funding cycle: a two-state (hot, cold) Markov chain per portfolio.

    Every firm of a portfolio lives in the same regime path; the regime switches in continuous
    time with the annual intensities below (sampled exactly on the time grid) and, while it
    lasts, scales every stage's hazards and the exit multiples by its :class:`Regime`.

    Parameters
    ----------
    hot_to_cold, cold_to_hot : float
        Annual switching intensities; mean spells are their reciprocals. Defaults 0.25 and
        0.5: hot markets last 4 years and cold ones 2 on average (estimates, after the 2021
        peak and the 2022-24 trough of Carta's round intervals).
    start : {"stationary", "hot", "cold"}
        Regime at time 0: drawn from the stationary distribution (the default) or fixed.
    hot, cold : Regime
        Multipliers in each state. Defaults: a cold market halves the advance hazard (Carta:
        the median seed-to-A interval went from 420 days in Q4 2021 to 774 days in Q4 2024,
        and A-to-B intervals were 97% longer), multiplies the default hazard by 4 against a
        hot one (venture-debt defaults of about 1% in good times and 5-8% in a tough
        environment, Kruze Consulting; 4x is an estimate at the low end), lowers the exit
        hazards to 0.7/1.15 of a hot market's and exit multiples to 0.8/1.1 (both
        estimates), and what distressed assets fetch to 0.8/1.1 of the scenario's
        ``distress_value`` (creditors recover less when the defaulter's industry is in
        distress, Acharya, Bharath & Srinivasan 2007; the size is an estimate). Each default
        multiplier averages 1 over the stationary distribution (1/3 cold): the cycle
        redistributes events in time without changing mean hazards.
    """

    hot_to_cold: Annotated[Number, Field(ge=0.0, le=100.0)] = 0.25
    cold_to_hot: Annotated[Number, Field(ge=0.0, le=100.0)] = 0.5
    start: Literal["stationary", "hot", "cold"] = "stationary"
    hot: Regime = _HOT
    cold: Regime = _COLD

    @model_validator(mode="after")
    def _stationary_defined(self) -> Self:
        if self.start == "stationary" and self.hot_to_cold + self.cold_to_hot == 0.0:
            raise ValueError(
                "start: 'stationary' needs a switching intensity above 0 "
                "(hot_to_cold or cold_to_hot); with no switching fix start='hot' or 'cold'"
            )
        return self

    @property
    def stationary_cold(self) -> float:
        """Long-run share of time in the cold state, ``hot_to_cold / (sum of intensities)``."""
        total = self.hot_to_cold + self.cold_to_hot
        return self.hot_to_cold / total if total > 0.0 else float(self.start == "cold")

    @property
    def initial_cold(self) -> float:
        """Probability that a portfolio starts cold."""
        return {"hot": 0.0, "cold": 1.0}.get(self.start, self.stationary_cold)

    def transition(self, dt: float) -> tuple[float, float]:
        """Exact probabilities of switching hot->cold and cold->hot over ``dt`` years."""
        total = self.hot_to_cold + self.cold_to_hot
        if total == 0.0:
            return 0.0, 0.0
        move = -math.expm1(-total * dt)
        return self.hot_to_cold / total * move, self.cold_to_hot / total * move


class Scenario(InputModel):
    r"""A population of applicant technology firms and the market they live in.

    Parameters
    ----------
    stages : list of Stage
        Lifecycle stages in order; a round moves a firm from stage ``s`` to ``s + 1``.
    market : Market
        Discounting, systematic factor and jumps.
    default_barrier : float
        Structural default when ``V < default_barrier * V0``, checked at step ends (0 = off).
    value_dispersion : float
        Log standard deviation of an applicant's initial value around its stage's
        ``initial_value``.
    quality_drift : float
        Extra drift per unit of latent quality ``q ~ N(0, 1)``.
    quality_hazard : float
        Default hazard scales as ``exp(-quality_hazard * q)``.
    hazard_value_elasticity : float
        Elasticity :math:`\beta` of the default intensity to firm value: the intensity scales
        as ``(V / V_ref) ** -hazard_value_elasticity``, ``V_ref`` the value just after the
        last funding round (``V0`` before any). Firms fail when they are worth little, and
        through the market factor in ``V`` defaults cluster in bad paths. 0 (the default
        here): version 1's value-blind hazard.
    runway_hazard_multiplier : float
        Multiplier on the default intensity once the time since the last round passes the
        stage's :attr:`Stage.runway_years`. 1 (the default here): no runway effect.
    distress_value : float
        What a defaulted firm's assets fetch, as a fraction of its value ``V`` at default: a
        property of the firm, the same whatever the bank lent. A loan recovers its
        ``recovery_rate`` share of it (plus its collateral), capped at the balance.
    ipo_multiple, ma_multiple : float
        Exit value as a multiple of firm value at an IPO or an M&A.
    horizon_years : float
        Length of the simulation; survivors are marked at firm value then.
    steps_per_year : int
        Time steps per year; ``horizon_years * steps_per_year`` must be a whole number.
    cycle : FundingCycle or None
        A hot/cold funding cycle shared by the firms of a portfolio (``None`` = off, the
        default: hazards are constant in time).

    Notes
    -----
    Defaults (all estimates, the same as the built-in scenario; see ``docs/defaults.md``):
    ``value_dispersion`` 0.5, ``quality_drift`` 0.05, ``quality_hazard`` 0.3,
    ``ipo_multiple`` 1.5 (Chinese IPO exits return about 4-5x book, Zero2IPO 2020; kept low
    because V is already a market value), ``ma_multiple`` 0.9 (30% of exited US firms were
    acquired below capital raised, Sand Hill Econometrics), ``horizon_years`` 5 (a 3-year loan
    and a 5-year warrant), ``steps_per_year`` 12 (venture loans pay monthly, Davis-Morse-Wang
    slides 2018), ``default_barrier`` 0 (failure comes from the hazards; a value cutoff on top
    of them would count failure twice), ``distress_value`` 0.140 (the built-in scenario's,
    calibrated there). ``hazard_value_elasticity`` 0 and ``runway_hazard_multiplier`` 1 are
    version 1's model, the neutral settings; the built-in scenario sets its own (see
    ``docs/defaults.md``).
    """

    stages: list[Stage] = Field(min_length=1, max_length=64)
    market: Market = Market()
    default_barrier: Annotated[Number, Field(ge=0.0, lt=1.0)] = 0.0
    value_dispersion: Annotated[Number, Field(ge=0.0, le=5.0)] = 0.5
    quality_drift: Annotated[Number, Field(ge=-1.0, le=1.0)] = 0.05
    quality_hazard: Annotated[Number, Field(ge=-5.0, le=5.0)] = 0.3
    hazard_value_elasticity: Annotated[Number, Field(ge=0.0, le=10.0)] = 0.0
    runway_hazard_multiplier: Annotated[Number, Field(ge=0.0, le=100.0)] = 1.0
    distress_value: Fraction = 0.140
    ipo_multiple: Annotated[Number, Field(gt=0.0, le=100.0)] = 1.5
    ma_multiple: Annotated[Number, Field(gt=0.0, le=100.0)] = 0.9
    horizon_years: Annotated[Number, Field(gt=0.0, le=100.0)] = 5.0
    steps_per_year: Annotated[Count, Field(ge=1, le=3650)] = 12
    cycle: FundingCycle | None = None

    @field_validator("stages")
    @classmethod
    def _weights_sum_to_one(cls, stages: list[Stage]) -> list[Stage]:
        """Accept weights within ``WEIGHT_TOLERANCE`` of 1, scaled to sum to 1."""
        total = math.fsum(s.weight for s in stages)
        if abs(total - 1.0) > WEIGHT_TOLERANCE:
            raise ValueError(f"stage weights must sum to 1, they sum to {total:.12g}")
        if total == 1.0:
            return stages
        return [s.model_copy(update={"weight": s.weight / total}) for s in stages]

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Self:
        _Breaches.check(self._breaches())
        return self

    def _breaches(self) -> Iterator[str]:
        """Every cross-field rule the scenario breaks, each as ``where: why``."""
        names = [s.name for s in self.stages]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            yield f"stages: stage names must be unique, repeated: {dupes}"
        last = self.stages[-1]
        if last.advance_hazard != 0.0:
            yield (
                f"stage {last.name!r}: advance_hazard: the last stage cannot advance; set it to 0"
            )
        n_steps = self.horizon_years * self.steps_per_year
        if abs(n_steps - round(n_steps)) > 1e-9:
            yield (
                f"horizon_years: horizon_years * steps_per_year = {n_steps:g} must be a whole "
                "number of steps"
            )
        if round(n_steps) < 1:
            yield (
                f"horizon_years: {self.horizon_years:g} y is less than one step of "
                f"{1 / self.steps_per_year:g} y (steps_per_year={self.steps_per_year})"
            )
        if round(n_steps) > 100_000:
            yield (
                f"horizon_years: {round(n_steps)} steps exceed the limit of 100000; "
                "lower horizon_years or steps_per_year"
            )
        per_step = self.market.jump_rate / self.steps_per_year
        if per_step > 50.0:
            yield (
                f"market.jump_rate: {self.market.jump_rate:g} jumps a year are "
                f"{per_step:g} expected jumps per step; at most 50 per step are supported "
                "(raise steps_per_year)"
            )
        top = self._log_value_bound()
        if top > 700.0:
            yield (
                f"horizon_years: firm values could overflow: log V could reach {top:.0f} "
                "(> 700, the float64 limit) within 10 standard deviations over the horizon; "
                "lower horizon_years, the stages' drift or volatility, or the jumps"
            )

    def _log_value_bound(self) -> float:
        """A conservative 10-sigma upper bound on log firm value over the horizon."""
        m = self.market
        t = self.horizon_years
        comp = m.jump_rate * math.expm1(m.jump_mean + 0.5 * m.jump_vol**2)
        drift = max(s.drift for s in self.stages) + 10.0 * abs(self.quality_drift) - comp
        var = t * (max(s.volatility for s in self.stages) ** 2
                   + m.jump_rate * (m.jump_mean**2 + m.jump_vol**2))  # fmt: skip
        return (
            math.log(max(s.initial_value for s in self.stages))
            + 10.0 * self.value_dispersion
            + sum(math.log1p(s.round_size) for s in self.stages)
            + t * max(drift, 0.0)
            + t * m.jump_rate * max(m.jump_mean, 0.0)
            + 10.0 * math.sqrt(var)
        )

    @property
    def n_steps(self) -> int:
        """Number of time steps, ``horizon_years * steps_per_year``."""
        return round(self.horizon_years * self.steps_per_year)

    @property
    def dt(self) -> float:
        """Step length in years."""
        return 1.0 / self.steps_per_year

    @property
    def n_years(self) -> int:
        """Years of the horizon, a last part-year counting as one (rows of the pool tables)."""
        return -(-self.n_steps // self.steps_per_year)

    def stage_index(self, name: str) -> int:
        """Position of the stage called ``name``."""
        for i, s in enumerate(self.stages):
            if s.name == name:
                return i
        raise KeyError(f"no stage named {name!r}; stages are {[s.name for s in self.stages]}")

    @classmethod
    def default(cls) -> Scenario:
        """Return the built-in five-stage scenario for Chinese technology SMEs.

        Every number and its source is in ``invlend/data/default_scenario.toml``
        and in ``docs/defaults.md``.
        """
        return _default_scenario()

    @classmethod
    def preset(cls, name: str) -> Scenario:
        """Return a built-in industry or regional scenario (frozen, cached).

        Each preset is the built-in scenario (:meth:`default`) with a few fields changed for
        an industry (``"software"``, ``"semiconductors"``, ``"biomedicine"``) or a region
        (``"yangtze_delta"``, ``"greater_bay"``, ``"central_west"``); ``"default"`` is the
        built-in scenario itself. Every changed line of its TOML file
        (``invlend/data/presets/NAME.toml``, printed by :func:`preset_toml` and
        ``invlend scenario show --preset NAME``) gives the built-in value and the source of
        the change; ``docs/presets.md`` compares them.

        Parameters
        ----------
        name : str
            One of the keys of :meth:`presets`.

        Returns
        -------
        Scenario
            The preset, validated once and shared by every caller.

        Raises
        ------
        ValueError
            ``name`` is not a preset (the message lists them).

        Example
        -------
        >>> import invlend as il
        >>> bio = il.Scenario.preset("biomedicine")
        >>> bio.market.jump_rate > il.Scenario.default().market.jump_rate
        True
        >>> il.Scenario.preset("default") is il.Scenario.default()
        True
        """
        return _preset_scenario(_preset_name(name))

    @classmethod
    def presets(cls) -> dict[str, str]:
        """The built-in scenarios by name, each with a one-line description.

        ``"default"`` (the built-in scenario, :meth:`default`) comes first, then the industry
        and regional presets of :meth:`preset` in alphabetical order. A new dict each call.

        Example
        -------
        >>> import invlend as il
        >>> names = il.Scenario.presets()
        >>> next(iter(names))
        'default'
        >>> "software" in names
        True
        """
        return dict(_preset_descriptions())

    @classmethod
    def from_toml(cls, path: str | Path) -> Scenario:
        """Read a scenario from a TOML file (the format :meth:`to_toml` writes)."""
        return cls.model_validate(_read_toml(path))

    def to_toml(self, path: str | Path | None = None) -> str:
        """Write the scenario as TOML to ``path`` (if given) and return the text."""
        text = tomli_w.dumps(self.model_dump(mode="json", exclude_none=True))
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text


#: The built-in scenario inside the package: commented TOML, every number with its source.
DEFAULT_SCENARIO_FILE = "data/default_scenario.toml"


def default_scenario_toml() -> str:
    """The built-in scenario as commented TOML, each number with its source."""
    return resources.files("invlend").joinpath(DEFAULT_SCENARIO_FILE).read_text("utf-8")


@cache
def _default_scenario() -> Scenario:
    # Parsed and validated once: the model is frozen, so every caller can share it.
    return Scenario.model_validate(tomllib.loads(default_scenario_toml()))


#: The industry and regional presets inside the package, one commented TOML file each.
PRESETS_DIR = "data/presets"
#: The name that :meth:`Scenario.preset` gives the built-in scenario.
DEFAULT_PRESET = "default"
_DEFAULT_DESCRIPTION = "the built-in scenario: a Chinese bank's sci-tech book of all industries"
#: First line of a preset file: ``# invlend preset "NAME"``; the comment lines after it, up
#: to a bare ``#``, are its one-line description.
_PRESET_HEAD = re.compile(r'^# invlend preset "(?P<name>[a-z][a-z0-9_]*)"$')


def _preset_files() -> dict[str, Any]:
    """Each preset's name and its file in the package, by file name."""
    folder = resources.files("invlend").joinpath(PRESETS_DIR)
    files = [f for f in folder.iterdir() if f.name.endswith(".toml")]
    return {f.name.removesuffix(".toml"): f for f in sorted(files, key=lambda f: f.name)}


@cache
def _preset_descriptions() -> Mapping[str, str]:
    # Read from the files' headers, so a preset is described where its numbers are.
    out = {DEFAULT_PRESET: _DEFAULT_DESCRIPTION}
    for name, file in _preset_files().items():
        lines = file.read_text("utf-8").splitlines()
        head = _PRESET_HEAD.match(lines[0]) if lines else None
        if head is None or head["name"] != name:
            raise RuntimeError(f"{PRESETS_DIR}/{name}.toml: the first line must be "
                               f'# invlend preset "{name}"')  # fmt: skip
        words = []
        for line in lines[1:]:
            if line.strip() == "#" or not line.startswith("# "):
                break
            words.append(line[2:].strip())
        out[name] = " ".join(words)
    return MappingProxyType(out)


def _preset_name(name: Any) -> str:
    """``name`` if it names a preset; else ``TypeError``/``ValueError`` listing the presets."""
    names = list(_preset_descriptions())
    if not isinstance(name, str):
        raise TypeError(f"name: expected a preset name (str), got {type(name).__name__}")
    if name not in names:
        raise ValueError(f"name: unknown preset {name!r}; the presets are {', '.join(names)}")
    return name


def preset_toml(name: str) -> str:
    """The preset ``name`` as commented TOML, each changed number with its source.

    ``"default"`` gives the built-in scenario's file (:func:`default_scenario_toml`). The text
    reads back with :meth:`Scenario.from_toml` as :meth:`Scenario.preset` gives it.

    Example
    -------
    >>> from invlend.config import preset_toml
    >>> preset_toml("software").splitlines()[0]
    '# invlend preset "software"'
    """
    name = _preset_name(name)
    if name == DEFAULT_PRESET:
        return default_scenario_toml()
    return _preset_files()[name].read_text("utf-8")


@cache
def _preset_scenario(name: str) -> Scenario:
    # As the built-in scenario: parsed and validated once, then shared (the model is frozen).
    if name == DEFAULT_PRESET:
        return Scenario.default()
    return Scenario.model_validate(tomllib.loads(preset_toml(name)))


#: Largest TOML input read: a scenario or a structure list is a few kilobytes; anything near
#: this is not an input file (and parsing 100 MB would take minutes and gigabytes).
MAX_TOML_BYTES = 1 << 20
#: Deepest nesting of tables and arrays accepted in TOML input (the models need 4).
MAX_TOML_DEPTH = 32


def _read_toml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            raw = fh.read(MAX_TOML_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"cannot read {p}: {exc.strerror}") from None
    if len(raw) > MAX_TOML_BYTES:
        raise ValueError(
            f"{p}: larger than {MAX_TOML_BYTES // 1024} KiB; an invlend TOML file is a few "
            "kilobytes"
        )
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{p} is not valid TOML: {exc}") from None
    except RecursionError:
        raise ValueError(f"{p}: nested deeper than Python can parse") from None
    if _depth(data) > MAX_TOML_DEPTH:
        raise ValueError(f"{p}: tables or arrays nested deeper than {MAX_TOML_DEPTH} levels")
    return data


def _depth(node: Any, limit: int = MAX_TOML_DEPTH + 1) -> int:
    """Nesting depth of dicts and lists, counted up to ``limit`` (so never deep recursion)."""
    if limit <= 0 or not isinstance(node, dict | list):
        return 0
    children = node.values() if isinstance(node, dict) else node
    return 1 + max((_depth(c, limit - 1) for c in children), default=0)


# --------------------------------------------------------------------------------------------
# Structures: the bank's claims on one accepted firm
# --------------------------------------------------------------------------------------------


#: The fields of :class:`Collateral` that each kind sets a default for, in the order of the
#: rows of :data:`COLLATERAL_KINDS`.
_COLLATERAL_FIELDS = ("pledged_to_principal", "haircut", "appraisal_error", "value_elasticity",
                      "liquidation_years", "liquidation_cost")  # fmt: skip
#: Defaults of each kind of :class:`Collateral` (estimates of the project; ``docs/capital.md``).
COLLATERAL_KINDS: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        kind: MappingProxyType(dict(zip(_COLLATERAL_FIELDS, row, strict=True)))
        for kind, row in {
            "ip": (1 / 0.3, 0.5, 0.5, 0.5, 1.5, 0.10),
            "equity": (2.0, 0.0, 0.3, 1.0, 1.0, 0.10),
            "cash": (1.0, 0.0, 0.0, 0.0, 0.0, 0.0),
        }.items()
    }
)


class Collateral(InputModel):
    r"""A pledge whose realised value at default is uncertain (IP, shares or cash).

    At a default at time :math:`\tau` the pledge realises, per unit of principal,

    .. math::

        c = P (1 - h)\, e^{s\varepsilon - s^2/2}
            \left(\frac{V_\tau}{V_0}\right)^{\eta} (1 - \kappa)\, e^{-r L}

    with :math:`P` = ``pledged_to_principal`` (appraised value pledged per unit of
    principal), :math:`h` the ``haircut``, :math:`s` the ``appraisal_error`` (log-sd of the
    true value around the appraisal, :math:`\varepsilon \sim N(0,1)` drawn once per firm, so
    the appraisal is right on average), :math:`\eta` the ``value_elasticity`` (how the
    pledged asset's value moves with the firm's), :math:`\kappa` the ``liquidation_cost``,
    :math:`L` the ``liquidation_years`` and :math:`r` the market's discount rate.

    Parameters
    ----------
    kind : {"ip", "equity", "cash"}
        What is pledged; it sets the defaults of the other fields (:data:`COLLATERAL_KINDS`):
        ``"ip"`` a patent or trademark pledge (appraised at 1/0.3 of principal: banks lend
        about 30% of appraised value, Economic Daily 2021), ``"equity"`` the borrower's own
        unlisted shares (elasticity 1: worth little exactly when the firm defaults; lent at
        up to 50% of appraised value), ``"cash"`` a deposit (realises its face value).
    pledged_to_principal, haircut, appraisal_error, value_elasticity : float
    liquidation_years, liquidation_cost : float
        As in the formula; any given overrides the kind's default.
    """

    kind: Literal["ip", "equity", "cash"]
    pledged_to_principal: Annotated[Number, Field(ge=0.0, le=100.0)]
    haircut: Fraction
    appraisal_error: Annotated[Number, Field(ge=0.0, le=3.0)]
    value_elasticity: Annotated[Number, Field(ge=0.0, le=3.0)]
    liquidation_years: Annotated[Number, Field(ge=0.0, le=20.0)]
    liquidation_cost: Fraction

    @model_validator(mode="before")
    @classmethod
    def _kind_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        kind = data.get("kind")
        if kind not in COLLATERAL_KINDS:
            raise ValueError(
                f"kind: {kind!r} is not one of {list(COLLATERAL_KINDS)} (it sets the "
                "defaults of the other fields)"
            )
        return {**COLLATERAL_KINDS[kind], **data}

    def realised_mean(self, value_ratio: float, discount_rate: float) -> float:
        """Expected realised value per unit of principal at a default with ``V_tau / V0``."""
        return (
            self.pledged_to_principal
            * (1.0 - self.haircut)
            * value_ratio**self.value_elasticity
            * (1.0 - self.liquidation_cost)
            * math.exp(-discount_rate * self.liquidation_years)
        )


def _pledge_or_amount(value: Any) -> str:
    """Which kind of ``Loan.collateral`` a value is: a table is a pledge, anything else a number."""
    return "pledge" if isinstance(value, dict | Collateral) else "amount"


#: ``Loan.collateral``: a certain amount per unit of principal, or a :class:`Collateral`.
#: Tagged, so that a bad value gets the errors of the kind it is, not of both.
PledgeOrAmount = Annotated[
    Annotated[Annotated[Number, Field(ge=0.0, le=10.0)], Tag("amount")]
    | Annotated[Collateral, Tag("pledge")],
    Discriminator(_pledge_or_amount),
]


class Loan(InputModel):
    """A term loan to the firm.

    Parameters
    ----------
    loan_to_value : float
        Principal as a fraction of the firm's value at entry ``V0``. Default 0.20: loan size
        at most 20% of firm value (an estimate of the project for a credit loan).
    rate : float
        Annual interest rate on the outstanding balance, paid every step. Default 4.5%: the
        1-year LPR 3.00% (PBoC, 20 May 2025) plus 150 bp (an estimate).
    maturity_years : float
        Time to final repayment; must not exceed the scenario horizon. Default 3 years (an
        estimate; venture loans run 36-48 months, venturecapitaltracker.com).
    interest_only_years : float
        Interest-only period, then linear amortisation to zero at maturity. ``None`` (the
        default) means equal to maturity: a bullet loan.
    upfront_fee : float
        Fee as a fraction of principal, received at entry. Default 0.
    final_fee : float
        End-of-term payment as a fraction of principal, due when the loan is repaid (at
        maturity, or at an exit that prepays it), paid out of the firm's value as far as it
        reaches. Default 0; US venture lenders charge 2.5-7.85% (Hercules Capital's 2024
        schedule of investments, ``docs/defaults.md``).
    prepayment_fee : float
        Fee as a fraction of the balance repaid at an exit before maturity. Default 0.
    recovery_rate : float
        The loan's share of what the defaulted firm's assets fetch (its seniority): the
        recovery is ``min(outstanding, recovery_rate * distress_value * V + collateral)``
        with the scenario's :attr:`Scenario.distress_value`. Default 1: the bank is the
        firm's senior lender and takes the distressed assets' proceeds up to its balance (an
        estimate of the project).
    collateral : float or Collateral
        What a pledge realises at a default. A number keeps version 1's meaning: a certain
        amount per unit of principal (a guarantee). A :class:`Collateral` models an IP,
        equity or cash pledge whose realised value is uncertain. Default 0.
    """

    loan_to_value: Annotated[Number, Field(gt=0.0, le=10.0)] = 0.20
    rate: Annotated[Number, Field(ge=0.0, le=1.0)] = 0.045
    maturity_years: Annotated[Number, Field(gt=0.0, le=100.0)] = 3.0
    interest_only_years: Annotated[Number | None, Field(ge=0.0, le=100.0)] = None
    upfront_fee: Fraction = 0.0
    final_fee: Fraction = 0.0
    prepayment_fee: Fraction = 0.0
    recovery_rate: Fraction = 1.0
    collateral: PledgeOrAmount = 0.0

    @model_validator(mode="after")
    def _io_within_maturity(self) -> Self:
        if self.interest_only_years is not None and self.interest_only_years > (
            self.maturity_years + 1e-12
        ):
            raise ValueError(
                f"interest_only_years: the interest-only period ({self.interest_only_years:g} y)"
                f" cannot exceed maturity_years ({self.maturity_years:g} y)"
            )
        return self

    @property
    def io_years(self) -> float:
        """Interest-only period in years (maturity for a bullet loan)."""
        return self.maturity_years if self.interest_only_years is None else self.interest_only_years


class Warrant(InputModel):
    """An option on the firm's equity attached to the loan (认股选择权).

    Parameters
    ----------
    coverage : float
        Strike amount as a fraction of principal; it buys the fraction
        ``coverage * principal / V0`` of the firm at entry value, diluted by later rounds.
    share_of_gain : float
        Share of the exercise gain the bank keeps (the rest goes to the third party that
        holds the option for it in Chinese practice).
    expiry_years : float
        Life of the warrant. It is exercised at an exit before expiry, or at expiry by a firm
        still alive then (cash-settled at the covered shares' value); a life that runs past the
        scenario's horizon is settled at the horizon at its fair value for the remaining life.

    Notes
    -----
    Defaults (estimates of the project, see ``docs/defaults.md``): coverage 10% of principal
    (US practice 2-10% of the loan, Kruze Consulting, and 5-20%, bizbuzzmag.org), the bank
    keeps the whole gain, 5-year life.
    """

    coverage: Annotated[Number, Field(ge=0.0, le=10.0)] = 0.10
    share_of_gain: Fraction = 1.0
    expiry_years: Annotated[Number, Field(gt=0.0, le=100.0)] = 5.0


class Equity(InputModel):
    """A direct stake taken by the bank's investment arm (内部投贷联动).

    Parameters
    ----------
    equity_to_value : float
        Amount invested as a fraction of ``V0``, buying that fraction of the firm at entry
        value; diluted by later rounds and paid pro rata after the loan at exit or horizon.
        Default 0.03: the middle of an estimated 1-5% stake [E].
    """

    equity_to_value: Annotated[Number, Field(ge=0.0, le=1.0)] = 0.03


class Linkage(InputModel):
    """A VC partner's monitoring and follow-on support, as multipliers on event intensities.

    Parameters
    ----------
    default_hazard_multiplier : float
        Multiplies every stage's default hazard.
    exit_hazard_multiplier : float
        Multiplies every stage's IPO and M&A hazards.

    Notes
    -----
    Defaults are 1 (no partner); :func:`invlend.vc_linked` uses 0.75 and 1.2 (estimates after
    Puri & Zarutskie 2012 and Davis, Morse & Wang; see ``docs/defaults.md``).
    """

    default_hazard_multiplier: Annotated[Number, Field(ge=0.0, le=100.0)] = 1.0
    exit_hazard_multiplier: Annotated[Number, Field(ge=0.0, le=100.0)] = 1.0


class Screening(InputModel):
    """The lender's selection of applicants under information asymmetry.

    The lender sees ``q + signal_noise * e`` with ``e ~ N(0, 1)`` and accepts applicants above
    the population quantile that admits ``acceptance_rate`` of them.

    Parameters
    ----------
    signal_noise : float
        Noise of the lender's quality signal (0 = perfect information).
    acceptance_rate : float
        Share of applicants accepted (1 = lend to all, no screening).
    cost : float
        Due-diligence cost per applicant screened, as a fraction of the would-be principal.

    Notes
    -----
    Defaults accept every applicant at no cost (no screening); the noise default 1.0 (a signal
    as noisy as the quality it measures) is an estimate used once ``acceptance_rate < 1``.
    """

    signal_noise: Annotated[Number, Field(ge=0.0, le=100.0)] = 1.0
    acceptance_rate: Annotated[Number, Field(gt=0.0, le=1.0)] = 1.0
    cost: Fraction = 0.0


class RiskShare(InputModel):
    """A third party that covers part of each credit loss for a premium (风险补偿, 履约贷).

    Parameters
    ----------
    covered_fraction : float
        Share of each credit loss paid to the bank at default.
    premium : float
        Annual premium on the outstanding balance paid by the bank each step.

    Notes
    -----
    Defaults (estimates; no published figures were found, see ``docs/sources.md``): half of
    each loss covered for 1% a year.
    """

    covered_fraction: Fraction = 0.5
    premium: Annotated[Number, Field(ge=0.0, le=1.0)] = 0.01


class RiskPool(InputModel):
    """A government risk-compensation pool (风险补偿资金池) with an annual cap per portfolio.

    The pool pays ``covered_fraction`` of each credit loss, but in each year of the horizon
    it pays a portfolio at most ``annual_cap`` times the principal the portfolio lent; claims
    above the cap are lost. Compensation for a year's claims arrives at the end of that year
    (the horizon for the last, possibly short, year). Unlike :class:`RiskShare`, whose cover is
    per loan and unlimited, the cap makes the pool worth least in the bad years when it is
    needed most.

    Parameters
    ----------
    covered_fraction : float
        Share of each credit loss claimed on the pool. Default 0.5 (an estimate: the 2016
        investment-lending pilot guidance of the CBRC, MOST and PBoC calls for risk sharing
        with government compensation funds [R], but no published share was found).
    annual_cap : float
        Most the pool pays a portfolio in one year, as a fraction of the principal it lent.
        Default 0.02 (an estimate: about the 1.5-3% annual default of a sci-tech loan book,
        itself an estimate, times the covered share).
    contribution : float
        Annual fee the bank pays into the pool on the outstanding balance. Default 0 (an
        estimate: pools are funded by local governments).
    """

    covered_fraction: Fraction = 0.5
    annual_cap: Annotated[Number, Field(ge=0.0, le=10.0)] = 0.02
    contribution: Annotated[Number, Field(ge=0.0, le=1.0)] = 0.0


class Structure(InputModel):
    """A financing structure: a named loan with optional equity-linked components.

    Parameters
    ----------
    name : str
        Label used as the key of results (unique among the structures of a run).
    loan : Loan
        The loan; every structure has one.
    warrant, equity, risk_share, risk_pool : optional
        Components the structure carries (``None`` = absent). ``risk_share`` and
        ``risk_pool`` together cannot cover more than the whole loss.
    linkage : Linkage
        Intensity multipliers from a VC partner (default: none).
    screening : Screening
        Applicant selection (default: accept all at no cost).
    """

    name: str
    loan: Loan
    warrant: Warrant | None = None
    equity: Equity | None = None
    linkage: Linkage = Linkage()
    screening: Screening = Screening()
    risk_share: RiskShare | None = None
    risk_pool: RiskPool | None = None

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        return _checks.identifier("structure name", v)

    @model_validator(mode="after")
    def _cover_at_most_loss(self) -> Self:
        if self.risk_share is not None and self.risk_pool is not None:
            total = self.risk_share.covered_fraction + self.risk_pool.covered_fraction
            if total > 1.0 + 1e-12:
                raise ValueError(
                    f"risk_pool.covered_fraction: with risk_share the cover is {total:g} of "
                    "each loss; together they can cover at most 1"
                )
        return self

    @classmethod
    def from_toml(cls, path: str | Path) -> list[Structure]:
        """Read structures from TOML: one ``[[structure]]`` table per structure."""
        data = _read_toml(path)
        extra = sorted(set(data) - {"structure"})
        if extra or "structure" not in data:
            raise ValueError(
                f"{path}: expected only [[structure]] tables, found keys {sorted(data)}"
            )
        items = data["structure"]
        if not isinstance(items, list):
            raise ValueError(f"{path}: expected [[structure]] tables, found {type(items).__name__}")
        return _validate_each(cls, items, "structure")


def check_run(scenario: Scenario, structures: list[Structure]) -> None:
    """Cross-check structures against the scenario; one ValueError naming every breach."""
    if not structures:
        raise ValueError("structures: give at least one structure")
    lines = list(_run_breaches(scenario, structures))
    if lines:
        raise ValueError(_checks.errors_text("structures", lines))


def _run_breaches(scenario: Scenario, structures: list[Structure]) -> Iterator[str]:
    """Every rule between the structures and the scenario that is broken, named by structure."""
    names = [s.name for s in structures]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        yield f"structures: structure names must be unique, repeated: {dupes}"
    for s in structures:
        yield from (f"structure {s.name!r}: {why}" for why in _timing_breaches(scenario, s))


def _timing_breaches(scenario: Scenario, s: Structure) -> Iterator[str]:
    """The terms of ``s`` that do not fit the scenario's time grid and horizon."""
    dt = scenario.dt
    grid = f"{dt:g} y (steps_per_year={scenario.steps_per_year})"
    whole = {"loan.maturity_years": s.loan.maturity_years}
    if s.loan.io_years != s.loan.maturity_years:  # a bullet loan's is its maturity's
        whole["loan.interest_only_years"] = s.loan.io_years
    for field, years in whole.items():
        steps = years / dt
        if abs(steps - round(steps)) > 1e-9:
            yield f"{field}: {years:g} y is not a whole number of steps of {grid}"
    # A duration that rounds to zero steps would end before the first step: a loan
    # repaid at once (PD 100% on the grid) or a warrant that never pays.
    durations = {"loan.maturity_years": s.loan.maturity_years}
    if s.warrant is not None:
        durations["warrant.expiry_years"] = s.warrant.expiry_years
    for field, years in durations.items():
        if years / dt < 1.0 - 1e-9:
            yield f"{field}: {years:g} y is shorter than one step of {grid}"
    if s.loan.maturity_years > scenario.horizon_years + 1e-12:
        yield (
            f"loan.maturity_years: the loan ({s.loan.maturity_years:g} y) cannot be longer "
            f"than the scenario horizon_years ({scenario.horizon_years:g} y)"
        )
