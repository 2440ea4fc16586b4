"""Preset financing structures, with terms from the sources of ``docs/sources.md``.

Overview
--------
Three structures the bank chooses between, on the same applicants (every term and its source
is in ``docs/defaults.md``; [S] seen in a source, [C] computed, [E] an estimate of the project):

* :func:`pure_loan` -- a bullet credit loan priced at the 1-year LPR plus 150 bp, screened
  by the bank alone with a noisy signal.
* :func:`warrant_loan` -- venture debt / 认股选择权贷款: a cheaper amortising loan with a
  warrant on the firm's equity, also screened by the bank alone.
* :func:`vc_linked` -- lending alongside a VC partner (外部投贷联动): the VC's monitoring
  lowers default and raises exit intensities, and its due diligence gives the bank a better
  signal at a lower cost.

Each preset accepts keyword overrides of its loan terms (``rate=0.05``) and of whole
components (``warrant=il.Warrant(coverage=0.2)``).

Example
-------
>>> import invlend as il
>>> il.warrant_loan(rate=0.05).loan.rate
0.05
>>> [s.name for s in il.default_structures()]
['pure_loan', 'warrant_loan', 'vc_linked']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from invlend.config import Linkage, Loan, Screening, Structure, Warrant

__all__ = ["default_structures", "pure_loan", "structure_list", "vc_linked", "warrant_loan"]

_COMPONENTS = ("warrant", "equity", "linkage", "screening", "risk_share", "risk_pool", "name")

# The bank screening alone: a noisy signal of quality [E]; it accepts 60% of applicants [E]
# and spends 1% of the would-be principal on due diligence per applicant [E].
_BANK_SCREENING = Screening(signal_noise=1.0, acceptance_rate=0.6, cost=0.01)

# Venture-debt terms shared by the warrant loan and the VC-linked loan (sources in their docs).
_VENTURE_LOAN = dict(
    loan_to_value=0.10,
    rate=0.040,
    maturity_years=3.0,
    interest_only_years=0.5,
    upfront_fee=0.01,
    collateral=0.0,
)


def _build(defaults: dict[str, Any], loan: dict[str, Any], terms: dict[str, Any]) -> Structure:
    parts = {k: terms.pop(k) for k in list(terms) if k in _COMPONENTS}
    unknown = set(terms) - set(Loan.model_fields)
    if unknown:
        raise TypeError(
            f"unknown term(s) {sorted(unknown)}; give loan fields {sorted(Loan.model_fields)} "
            f"or components {list(_COMPONENTS)}"
        )
    return Structure(**{**defaults, **parts, "loan": Loan(**{**loan, **terms})})


def pure_loan(**terms: Any) -> Structure:
    """A plain credit loan.

    Defaults: loan-to-value 0.20 (loan size <= 20% of firm value, [E]); rate 4.5% (1-year LPR
    3.00%, PBoC 20 May 2025 [S], + 150 bp [E]); 3-year bullet [E]; upfront fee 0.5% (middle of
    0-1%, [E]); the shared recovery rule (the loan takes the defaulted firm's distressed
    value up to its balance, ``Loan.recovery_rate`` 1 and the scenario's ``distress_value``;
    see ``docs/defaults.md``); bank-alone screening (see module docs).
    """
    loan = dict(
        loan_to_value=0.20,
        rate=0.045,
        maturity_years=3.0,
        interest_only_years=None,
        upfront_fee=0.005,
        collateral=0.0,
    )
    return _build({"name": "pure_loan", "screening": _BANK_SCREENING}, loan, dict(terms))


def warrant_loan(**terms: Any) -> Structure:
    """Venture debt with a warrant (认股选择权贷款).

    Defaults: loan-to-value 0.10 (at Series A, up to 25% of the round or 10% of enterprise
    value, nighthawkpartners [S]); rate 4.0% (LPR + 100 bp: the warrant replaces part of the
    spread, [E]); 3 years with 6 months interest-only then linear amortisation (Davis-Morse-
    Wang slides [S]); upfront fee 1% [E]; the shared recovery rule (its LGD follows from the
    loan's size and amortisation, not from a dial of its own); warrant coverage 10% of
    principal (US practice 2-10% and 5-20%, Kruze Consulting and bizbuzzmag.org [S]), 5-year
    life, full share of the gain [E]; bank-alone screening.
    """
    loan = dict(_VENTURE_LOAN)
    defaults = {
        "name": "warrant_loan",
        "warrant": Warrant(coverage=0.10, share_of_gain=1.0, expiry_years=5.0),
        "screening": _BANK_SCREENING,
    }
    return _build(defaults, loan, dict(terms))


def vc_linked(**terms: Any) -> Structure:
    """Lending alongside a VC partner (外部投贷联动).

    Defaults: loan-to-value 0.10 (25-35% of the VC round, [E]); rate 4.0% (LPR + 100 bp, [E]);
    3 years, 6 months interest-only (Davis-Morse-Wang slides [S]); upfront fee 1% [E]; the
    shared recovery rule; linkage multipliers 0.75 on default (VC screening and monitoring;
    Puri & Zarutskie 2012 find lower early failure [S]) and 1.2 on exits (Davis, Morse &
    Wang: +4-10% exits [S]), both [E]; the VC's due diligence halves the signal noise and the
    bank pays a quarter of the bank-alone cost [E].
    """
    loan = dict(_VENTURE_LOAN)
    defaults = {
        "name": "vc_linked",
        "linkage": Linkage(default_hazard_multiplier=0.75, exit_hazard_multiplier=1.2),
        "screening": Screening(signal_noise=0.5, acceptance_rate=0.6, cost=0.0025),
    }
    return _build(defaults, loan, dict(terms))


def default_structures() -> list[Structure]:
    """The three presets with their default terms: pure loan, warrant loan, VC-linked."""
    return [pure_loan(), warrant_loan(), vc_linked()]


def structure_list(structures: Structure | Sequence[Structure] | None) -> list[Structure]:
    """The ``structures`` argument of :func:`invlend.simulate` and its kin, as a list.

    ``None`` gives :func:`default_structures`, one :class:`~invlend.Structure` a list of it;
    any other iterable is listed and each element checked (``TypeError`` naming its index).
    """
    if structures is None:
        return default_structures()
    if isinstance(structures, Structure):
        return [structures]
    out = list(structures)
    for i, s in enumerate(out):
        if not isinstance(s, Structure):
            raise TypeError(f"structures[{i}]: expected an invlend.Structure, got {type(s)!r}")
    return out
