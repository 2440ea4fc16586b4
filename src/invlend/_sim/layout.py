"""The one schema of a simulation: event codes, output fields, aggregate columns, run record.

Overview
--------
Every backend, the engine, the results and the store read the layout of a run from here:

* :class:`Event` and the ``EV_*`` integers the kernels compare with;
* :data:`OUTCOMES`, the per-firm fields of one firm simulation (one set per linkage group),
  and :data:`PER_FIRM`, the per-firm fields of one structure's evaluation, each a
  :class:`Field` with its array key, its result attribute, dtype and meaning. Their order is the
  order of the kernels' output arguments (a test pins it to the kernels' signatures);
* :data:`AGGREGATES`, the per-portfolio columns a structure's evaluation writes, and the
  ``AGG_*`` column numbers;
* :func:`arrays`, the name, shape and dtype of every array a run holds, from which the engine
  allocates and :mod:`invlend.store` checks a saved file;
* :class:`RunInfo`, the record of how a run was made (sizes, seed, backend, versions).

Array keys are ``g{i}.<key>`` for linkage group ``i`` (:func:`group_key`), ``s{j}.<key>`` for
structure ``j`` (:func:`structure_key`) and ``cold_share`` for the run. Axis order: per firm
``(n_portfolios, portfolio_size)``, per portfolio ``(n_portfolios,)``, sample paths
``(n_sample_paths, n_steps + 1)``; the kernels see per-firm arrays flat, portfolio-major.

This module holds no numba code and imports nothing of the package but numpy, so any layer may
read it.
"""

from __future__ import annotations

import math
from enum import IntEnum
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "AGGREGATES",
    "OUTCOMES",
    "PER_FIRM",
    "Event",
    "Field",
    "FirmOutcomes",
    "RunInfo",
    "Sizes",
    "arrays",
    "available_bytes",
    "group_key",
    "measure_key",
    "result_bytes",
    "structure_key",
]

#: The backends a run can record (``"auto"`` resolves to one of them before the run).
BACKENDS = ("cpu", "numpy", "cuda")
#: Per-firm arrays beyond this many firms would not fit any single machine.
MAX_FIRMS = 2_000_000_000
#: Most sample paths a run records.
MAX_SAMPLE_PATHS = 100_000


class Event(IntEnum):
    """What ended a firm's path: codes stored in ``Outcomes.event`` (int8)."""

    NONE = 0  #: reached the horizon
    DEFAULT = 1  #: failed (hazard or value barrier)
    IPO = 2  #: listed
    MA = 3  #: trade sale or buy-back


# The kernels compare plain integers (numba folds module-level ints into the code).
EV_NONE = int(Event.NONE)
EV_DEFAULT = int(Event.DEFAULT)
EV_IPO = int(Event.IPO)
EV_MA = int(Event.MA)
#: A funding round: a competing event of the step loop that moves the firm on, never an end.
EV_ADVANCE = 4
#: Largest log of the default intensity's value factor ``(V / V_ref) ** -beta``: e**50 makes
#: default all but certain within a step at any hazard, and keeps the intensity finite.
MAX_LOG_VALUE_FACTOR = 50.0


class Field(NamedTuple):
    """One per-firm output array."""

    key: str  # name of the array in the engine's outputs and in saved files
    attr: str  # attribute of the result object that shows it
    dtype: np.dtype
    doc: str


def _fields(*rows: tuple[str, str, Any, str]) -> tuple[Field, ...]:
    return tuple(Field(key, attr, np.dtype(dtype), doc) for key, attr, dtype, doc in rows)


#: Per-firm outcomes of one firm simulation, in the order of the kernels' output arguments.
OUTCOMES = _fields(
    ("event", "event", np.int8, "Event code of the firm's event (NONE at the horizon)"),
    ("step", "step", np.int32, "step of the event (n_steps if none)"),
    ("value", "value", np.float64, "firm value at the event (before any exit multiple)"),
    ("stage0", "initial_stage", np.int8, "stage index at entry"),
    ("stage", "stage", np.int8, "stage index at the event"),
    ("rounds", "n_rounds", np.int16, "funding rounds raised"),
    ("dilution", "dilution", np.float64, "what remains of an entry stake after the rounds"),
    ("v0", "initial_value", np.float64, "firm value at entry"),
    ("quality", "quality", np.float64, "latent quality q, in standard deviations"),
    ("signal", "signal_error", np.float64, "noise e of the lenders' quality signal"),
    ("regime", "regime", np.int8, "funding regime (0 hot, 1 cold) in the event's step"),
    ("appraisal", "appraisal_error", np.float64, "normal error of a pledge's appraisal"),
    ("stage2", "stage2", np.int8, "1 where the one-year IFRS 9 test puts the firm in stage 2"),
)

#: Per-firm results of one structure's evaluation, in the order of the kernels' outputs.
PER_FIRM = _fields(
    ("npv", "npv", np.float64, "PV of the bank's cash flows; NaN where not accepted"),
    ("principal", "principal", np.float64, "principal lent (0 where not accepted)"),
    ("default", "loan_default", np.int8, "1 where the loan defaulted (shown as bool)"),
    ("loss", "credit_loss", np.float64, "balance lost at default, before risk sharing"),
    ("upside", "upside", np.float64, "PV of warrant and equity proceeds"),
)

#: The outcomes an evaluation reads, as one read-only tuple of flat arrays.
FirmOutcomes = NamedTuple("FirmOutcomes", [(f.key, np.ndarray) for f in OUTCOMES])

#: Per-portfolio columns of a structure's aggregates (n_portfolios, N_AGG), in column order.
AGGREGATES = {
    "accepted": "number of accepted applicants",
    "principal": "principal lent",
    "npv": "NPV of the portfolio, incl. screening cost of rejected applicants",
    "screen_rejected": "screening cost spent on rejected applicants",
    "defaults": "loans that defaulted (firm default in the loan's life, or shortfall)",
    "ead": "outstanding balance of the defaulted loans at default",
    "loss": "credit loss before risk sharing",
    "loss_net": "credit loss after risk sharing",
    "negative": "accepted firms with a negative NPV",
    "exposure": "principal-years outstanding",
    "upside": "present value of warrant and equity proceeds",
    "quality": "sum of the latent quality q of accepted applicants",
    "pool_claims": "claims on the risk pool (before its annual cap)",
    "pool_paid": "compensation the risk pool paid (after its annual cap)",
    "ecl_12m": "credit loss after risk sharing from defaults within 12 months, PV at the rate",
    "ecl_lifetime": "credit loss after risk sharing over the loan's life, PV at the rate",
    "stage2": "loans outstanding at the one-year test whose firm is then in IFRS 9 stage 2",
    "recovered": "recoveries at default (distressed assets and collateral)",
    "collateral": "the part of the recoveries that the collateral realised",
}
#: The parts of a structure's value (present values; they add up to the ``npv`` column). Each
#: is the aggregate column ``pv_<part>``.
COMPONENTS = {
    "interest": "interest received on the balance",
    "principal": "principal repaid (scheduled, at an exit, at maturity) minus principal lent",
    "fees": "upfront, final and prepayment fees",
    "recoveries": "what the distressed firm's assets pay at a default",
    "collateral": "what the pledge realises at a default",
    "warrant": "the warrant's proceeds (an exit, expiry or the horizon settlement)",
    "equity": "the equity stake's proceeds minus its cost",
    "screening": "minus the screening cost of every applicant, accepted or not",
    "risk_sharing": "the risk share's compensation for losses minus its premium",
    "pool": "the risk pool's payments minus the contributions to it",
}
AGGREGATES.update({f"pv_{name}": f"PV of {doc}" for name, doc in COMPONENTS.items()})
_COLUMN = {name: i for i, name in enumerate(AGGREGATES)}
AGG_ACCEPTED = _COLUMN["accepted"]
AGG_PRINCIPAL = _COLUMN["principal"]
AGG_NPV = _COLUMN["npv"]
AGG_SCREEN_REJECTED = _COLUMN["screen_rejected"]
AGG_DEFAULTS = _COLUMN["defaults"]
AGG_EAD = _COLUMN["ead"]
AGG_LOSS = _COLUMN["loss"]
AGG_LOSS_NET = _COLUMN["loss_net"]
AGG_NEGATIVE = _COLUMN["negative"]
AGG_EXPOSURE = _COLUMN["exposure"]
AGG_UPSIDE = _COLUMN["upside"]
AGG_QUALITY = _COLUMN["quality"]
AGG_POOL_CLAIMS = _COLUMN["pool_claims"]
AGG_POOL_PAID = _COLUMN["pool_paid"]
AGG_ECL_12M = _COLUMN["ecl_12m"]
AGG_ECL_LIFETIME = _COLUMN["ecl_lifetime"]
AGG_STAGE2 = _COLUMN["stage2"]
AGG_RECOVERED = _COLUMN["recovered"]
AGG_COLLATERAL = _COLUMN["collateral"]
AGG_PV = {name: _COLUMN[f"pv_{name}"] for name in COMPONENTS}
AGG_PV_INTEREST = AGG_PV["interest"]
AGG_PV_PRINCIPAL = AGG_PV["principal"]
AGG_PV_FEES = AGG_PV["fees"]
AGG_PV_RECOVERIES = AGG_PV["recoveries"]
AGG_PV_COLLATERAL = AGG_PV["collateral"]
AGG_PV_WARRANT = AGG_PV["warrant"]
AGG_PV_EQUITY = AGG_PV["equity"]
AGG_PV_SCREENING = AGG_PV["screening"]
AGG_PV_RISK_SHARING = AGG_PV["risk_sharing"]
AGG_PV_POOL = AGG_PV["pool"]
N_AGG = len(AGGREGATES)


def group_key(group: int, key: str) -> str:
    """Array key of ``key`` for linkage group ``group``."""
    return f"g{group}.{key}"


def structure_key(structure: int, key: str) -> str:
    """Array key of ``key`` for structure ``structure`` (its index in the run)."""
    return f"s{structure}.{key}"


#: Prefix of the arrays of the risk-neutral measure (the real-world ones have none).
RISK_NEUTRAL_PREFIX = "q."


def measure_key(measure: str, key: str) -> str:
    """Array key of ``key`` under ``measure`` ("real_world" keys are unprefixed)."""
    return key if measure == "real_world" else RISK_NEUTRAL_PREFIX + key


def is_paths(key: str) -> bool:
    """Whether ``key`` holds sample paths: rows by flat firm, not by portfolio."""
    return key.endswith(".paths")


class Sizes(NamedTuple):
    """The sizes that fix a run's arrays (see :func:`arrays`)."""

    n_groups: int
    n_structures: int
    portfolio_size: int
    n_checkpoints: int
    n_steps: int
    n_years: int
    sample_paths: int | None  # None: not known (a saved file does not record it)
    measures: tuple[str, ...] = ("real_world",)  # the measures simulated, real world first


def arrays(sizes: Sizes, n_port: int, firms: bool = True) -> dict[str, tuple[tuple, np.dtype]]:
    """Key -> (shape, dtype) of every array of a run of ``n_port`` portfolios.

    Per-firm arrays only when ``firms``; the rest (aggregates, IRRs, pool tables, sample paths,
    ``cold_share``, ``log_weight``) is what ``keep="aggregates"`` keeps. ``log_weight`` is each
    portfolio's log importance weight ``log dP/dQ`` (:mod:`invlend.tail`; 0 without a tilt).
    """
    size, f8 = sizes.portfolio_size, np.dtype(np.float64)
    out: dict[str, tuple[tuple, np.dtype]] = {}
    for g in range(sizes.n_groups):
        if firms:
            for f in OUTCOMES:
                out[group_key(g, f.key)] = ((n_port, size), f.dtype)
            out[group_key(g, "chk")] = ((n_port, size, sizes.n_checkpoints), f8)
        out[group_key(g, "paths")] = ((sizes.sample_paths, sizes.n_steps + 1), f8)
    for s in range(sizes.n_structures):
        if firms:
            for f in PER_FIRM:
                out[structure_key(s, f.key)] = ((n_port, size), f.dtype)
        out[structure_key(s, "agg")] = ((n_port, N_AGG), f8)
        out[structure_key(s, "irr")] = ((n_port,), f8)
        out[structure_key(s, "pool_claims")] = ((n_port, sizes.n_years), f8)
        out[structure_key(s, "pool_paid")] = ((n_port, sizes.n_years), f8)
        if "risk_neutral" in sizes.measures:
            # Fair value: the aggregates, and each accepted firm's value (keep="firms").
            q = RISK_NEUTRAL_PREFIX
            out[q + structure_key(s, "agg")] = ((n_port, N_AGG), f8)
            if firms:
                out[q + structure_key(s, "npv")] = ((n_port, size), f8)
    out["cold_share"] = ((n_port,), f8)
    out["log_weight"] = ((n_port,), f8)
    return out


def result_bytes(sizes: Sizes, n_port: int, firms: bool = True) -> int:
    """Bytes of the arrays of :func:`arrays` (sample paths left out)."""
    layout = arrays(sizes._replace(sample_paths=0), n_port, firms)
    return sum(math.prod(shape) * dtype.itemsize for shape, dtype in layout.values())


class RunInfo(NamedTuple):
    """How a run was made: enough, with its inputs, to replay it bit for bit."""

    n_portfolios: int
    portfolio_size: int
    seed: Any  # entropy of the root SeedSequence: an int or a list of ints
    seed_spawn_key: tuple[int, ...]
    backend: str  # the backend that ran ("auto" resolved)
    keep: str  # "firms" or "aggregates"
    versions: dict[str, str]  # invlend, Python, numpy, scipy, numba, pydantic, stream, ...
    measures: tuple[str, ...] = ("real_world",)  # the measures simulated, real world first
    tail: dict[str, Any] | None = None  # the importance-sampling Tilt (Tilt.as_dict), or None
    stopping: dict[str, Any] | None = None  # how a run with a tolerance stopped, or None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields (the spawn key and the measures as lists)."""
        return {
            **self._asdict(),
            "seed_spawn_key": list(self.seed_spawn_key),
            "measures": list(self.measures),
        }


def available_bytes() -> int | None:
    """Memory available to new allocations (Linux ``MemAvailable``), or None if unknown.

    The engine checks a run's :func:`result_bytes` against it before any work, and the store a
    saved file's arrays before it reads them.
    """
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
