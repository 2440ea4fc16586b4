r"""What an on-site visit is worth: the fair value of a sharper screening signal, by stage.

Overview
--------
A lender screens on a signal :math:`s = q + \sigma e` of the applicant's latent quality
(:class:`invlend.Screening`) and accepts the applicants above the population quantile that
admits its acceptance rate :math:`a`. An on-site visit (尽职调查 on the premises: the
workshop, the order book, the team) lowers the signal's noise from :math:`\sigma_0` to
:math:`\sigma_1`. Two things follow, both exact in the model:

* **Who is accepted.** The accepted applicants' mean quality is
  :math:`E[q \mid s > s_a] = \rho\, \varphi(z_a)/a` with :math:`\rho = 1/\sqrt{1+\sigma^2}` the
  signal's correlation with quality and :math:`z_a = \Phi^{-1}(1-a)` (the mean of a truncated
  bivariate normal); the summary's ``accepted_quality`` estimates it, and the tests check the
  simulation against it.
* **What it is worth.** :func:`visit_value` simulates the structure at every noise level on the
  same applicants (one run per stage; the screening does not change the firms' paths, so the
  comparison is paired exactly) and reports the gain in fair value per applicant,
  :math:`\Delta = \mathrm{FV}(\sigma_1) - \mathrm{FV}(\sigma_0)`, with its paired standard error.

The **break-even visit cost** is the most the bank can pay for the visit per applicant and
still gain. The screening cost is charged on every applicant as a fraction of the would-be
principal :math:`\ell V_0`, at time 0, so a cost :math:`c` lowers the fair value per applicant
by exactly :math:`c \cdot \ell\, \overline{V_0}`; the break-even is therefore

.. math::

    c^* = \frac{\sum_p \Delta_p}{\sum_p \sum_{i \in p} \ell V_{0,i}},

in the units of :attr:`invlend.Screening.cost` (a fraction of the would-be principal),
a ratio of per-portfolio sums with a delta-method standard error. Adding :math:`c^*` to the
structure's screening cost at noise :math:`\sigma_1` gives back the fair value at
:math:`\sigma_0` to rounding (tested): the invariant that a visit bought at its break-even cost
is worth its cost.

Example
-------
>>> import invlend as il
>>> v = il.visit_value(il.Scenario.default(), il.pure_loan(), noise=[0.5], stages=["early"],
...                    n_portfolios=40, portfolio_size=20, seed=1)
>>> v["early"][0.5]["breakeven_cost"].estimate > 0
True
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Any

from scipy.stats import norm

from invlend import _checks
from invlend import metrics as M
from invlend._sim import layout as L
from invlend._tables import (
    Document,
    Keyed,
    Printed,
    Rows,
    format_estimate,
    json_ready,
)
from invlend.config import Scenario, Structure
from invlend.engine import simulate
from invlend.sweep import need_fair_values, pick_stages, run_sizes, starting_stage

__all__ = ["VisitValue", "selected_quality", "visit_value"]

#: The quantities of a visit's row, with their table headings.
QUANTITIES = {
    "accepted_quality": "accepted quality gain (sd)",
    "pd": "PD change",
    "npv_per_applicant": "real-world NPV gain per applicant",
    "fair_value_per_applicant": "fair value gain per applicant",
    "breakeven_cost": "break-even visit cost (x would-be principal)",
}


def selected_quality(signal_noise: float, acceptance_rate: float) -> float:
    """Closed-form mean latent quality of the accepted applicants (module docs)."""
    noise = _checks.number("signal_noise", signal_noise, low=0.0)
    a = _checks.number("acceptance_rate", acceptance_rate, low=0.0, high=1.0, low_open=True)
    if a == 1.0:
        return 0.0
    rho = 1.0 / math.sqrt(1.0 + noise**2)
    return float(rho * norm.pdf(norm.ppf(1.0 - a)) / a)


class VisitValue(Printed, Keyed, Rows, Document):
    """The value of lowering the signal noise, by stage (see :func:`visit_value`).

    ``v[stage][noise]`` is a dict of :class:`~invlend.metrics.Estimate`: ``accepted_quality``
    (the gain in the accepted applicants' mean quality, in sd), ``pd`` (the change in the
    share of loans that default, real world), ``npv_per_applicant`` (the gain in real-world
    expected cash per applicant, not a price), ``fair_value_per_applicant``
    (the gain in fair value per applicant, currency units) and ``breakeven_cost`` (the most
    a visit may cost per applicant, as a fraction of the would-be principal, the unit of
    :attr:`invlend.Screening.cost`), plus ``closed_form_quality``, the exact gain in accepted
    quality.
    """

    _missing = "no stage {key!r}"
    _left = 2

    def __init__(self, data: dict[str, dict[float, dict[str, Any]]], meta: dict) -> None:
        self._data = data
        self.stages = list(data)
        self.meta = dict(meta)

    def records(self) -> list[dict[str, Any]]:
        """One dict per (stage, noise): each quantity and its ``_se``."""
        out = []
        for stage, by_noise in self._data.items():
            for noise, row in by_noise.items():
                rec: dict[str, Any] = {"stage": stage, "noise_from": self.meta["noise_from"],
                                       "noise_to": noise}  # fmt: skip
                for q in QUANTITIES:
                    rec.update({q: row[q].estimate, f"{q}_se": row[q].se})
                rec["closed_form_quality"] = row["closed_form_quality"]
                out.append(rec)
        return out

    def fields(self) -> list[str]:
        """The columns of :meth:`records`."""
        return ["stage", "noise_from", "noise_to",
                *(f"{q}{x}" for q in QUANTITIES for x in ("", "_se")),
                "closed_form_quality"]  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: the metadata and the records."""
        return json_ready({"meta": self.meta, "rows": self.records()})

    def _parts(self) -> tuple[str, list[str], list[list[str]], list[str]]:
        m = self.meta
        title = (
            f"invlend value of an on-site visit: {m['structure']} (accepts "
            f"{100 * m['acceptance_rate']:g}%, signal noise {m['noise_from']:g}, due diligence "
            f"{100 * m['cost']:g}% of the would-be principal), {m['n_portfolios']} portfolios "
            f"x {m['portfolio_size']} firms, seed {m['seed']} (gain ± paired standard error)"
        )
        header = ["stage", "noise", *QUANTITIES.values(), "closed form (sd)"]
        rows = []
        for stage, by_noise in self._data.items():
            for noise, row in by_noise.items():
                rows.append([
                    stage, f"{m['noise_from']:g} -> {noise:g}",
                    format_estimate(row["accepted_quality"].estimate,
                                    row["accepted_quality"].se),
                    format_estimate(row["pd"].estimate, row["pd"].se, percent=True),
                    format_estimate(row["npv_per_applicant"].estimate,
                                    row["npv_per_applicant"].se),
                    format_estimate(row["fair_value_per_applicant"].estimate,
                                    row["fair_value_per_applicant"].se),
                    format_estimate(row["breakeven_cost"].estimate, row["breakeven_cost"].se,
                                    percent=True),
                    f"{row['closed_form_quality']:.4f}",
                ])  # fmt: skip
        notes = [
            "break-even visit cost: the fair value gain per applicant over the would-be "
            "principal per applicant; a visit that costs less adds value",
            "closed form: the exact gain in the accepted applicants' mean quality",
        ]
        return title, header, rows, notes


def _noise_levels(noise: Any, base: float) -> list[float]:
    values = _checks.numbers_list("noise", noise, most=50)
    for i, v in enumerate(values):
        _checks.number(f"noise[{i}]", v, low=0.0, high=100.0)
        if v == base:
            raise ValueError(f"noise[{i}]: {v:g} is the structure's own signal_noise")
    if len(set(values)) != len(values):
        raise ValueError(f"noise: give distinct levels, got {values}")
    return [float(v) for v in values]


def visit_value(
    scenario: Scenario,
    structure: Structure,
    *,
    noise: Sequence[float] = (0.75, 0.5, 0.25, 0.0),
    stages: Sequence[str | int] | None = None,
    progress: bool = False,
    **simulate_kw: Any,
) -> VisitValue:
    """The fair value of lowering the screening noise, per applicant, for each starting stage.

    Parameters
    ----------
    scenario : Scenario
        The applicants and the market; each stage is evaluated on a copy whose applicants all
        start there (:func:`invlend.sweep.starting_stage`).
    structure : Structure
        The structure as the bank offers it today; its :class:`~invlend.Screening` gives the
        noise before the visit, the acceptance rate (held fixed) and the due-diligence cost.
        It must screen (``acceptance_rate < 1``): a lender that accepts everyone has no use
        for a sharper signal.
    noise : sequence of float
        The signal noise after the visit, one row per level (default 0.75, 0.5, 0.25 and 0,
        perfect information); each different from the structure's own.
    stages : sequence of str or int, optional
        Starting stages, by name or position (default: every stage).
    progress : bool
        One line per stage on standard error.
    **simulate_kw
        Passed to :func:`invlend.simulate`; a ``seed`` is required, and the risk-neutral
        measure.

    Returns
    -------
    VisitValue
        ``v[stage][noise]`` holds the gains and the break-even visit cost with their SEs.
    """
    if not isinstance(structure, Structure):
        raise TypeError(f"structure: expected an invlend.Structure, got {type(structure)!r}")
    sc = structure.screening
    if sc.acceptance_rate >= 1.0:
        raise ValueError(
            f"structure: {structure.name!r} accepts every applicant (screening."
            "acceptance_rate 1); a sharper signal changes nothing without screening"
        )
    levels = _noise_levels(noise, sc.signal_noise)
    if "structures" in simulate_kw:
        raise TypeError("structures: give the one structure as the second argument")
    need_fair_values(simulate_kw, "a visit value", "its noise levels")
    picked = pick_stages(scenario, stages)
    names = [f"noise{i}" for i in range(len(levels))]
    variants = [
        structure.replace(name=n, screening=sc.replace(signal_noise=v))
        for n, v in zip(names, levels, strict=True)
    ]
    base = structure.replace(name="before")
    ltv = structure.loan.loan_to_value
    data: dict[str, dict[float, dict[str, Any]]] = {}
    for k in picked:
        stage = scenario.stages[k].name
        res = simulate(starting_stage(scenario, k), [base, *variants], **simulate_kw)
        comp = res.compare(baseline="before", n_boot=0)
        w = res.weights
        would_be = M.controlled((ltv * res["before"].outcomes.initial_value).sum(axis=1), w)
        before = res["before"].fair_aggregates[:, L.AGG_NPV]
        data[stage] = {}
        for n, v in zip(names, levels, strict=True):
            gain = M.controlled(res[n].fair_aggregates[:, L.AGG_NPV] - before, w)
            c, u = M.ratio(gain, would_be)
            d = comp[n]
            data[stage][v] = {
                "accepted_quality": _estimate(d["accepted_quality"]),
                "pd": _estimate(d["pd"]),
                "npv_per_applicant": _estimate(d["npv_per_applicant"]),
                "fair_value_per_applicant": _estimate(d["fair_value_per_applicant"]),
                "breakeven_cost": M.make_estimate(c, M.influence_se(u)),
                "closed_form_quality": selected_quality(v, sc.acceptance_rate)
                - selected_quality(sc.signal_noise, sc.acceptance_rate),
            }
        if progress:
            sys.stderr.write(f"visit value {stage}: done\n")
    meta = {
        "structure": structure.name,
        "noise_from": sc.signal_noise,
        "noise_to": levels,
        "acceptance_rate": sc.acceptance_rate,
        "cost": sc.cost,
        **run_sizes(res),
    }
    return VisitValue(data, meta)


def _estimate(d) -> M.Estimate:
    return M.Estimate(d.estimate, d.se, d.ci_low, d.ci_high, d.note)
