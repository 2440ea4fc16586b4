"""Preset financing structures, with terms from the sources of ``docs/sources.md``.

Overview
--------
Three structures the bank chooses between, on the same applicants, **like for like**: they
share one loan (size, maturity, amortisation, fees, recovery) and differ from the pure loan
only in what names them and in a documented rate (every term and its source is in
``docs/defaults.md``; [S] seen in a source, [C] computed, [E] an estimate of the project):

* :func:`pure_loan` -- the shared term loan at the 1-year LPR plus 150 bp, screened by the
  bank alone with a noisy signal.
* :func:`warrant_loan` -- venture debt / 认股选择权贷款: the same loan at LPR + 100 bp
  with a warrant on the firm's equity (the warrant buys back the 50 bp), screened by the bank
  alone.
* :func:`vc_linked` -- lending alongside a VC partner (外部投贷联动): the same loan at LPR +
  100 bp; the VC's monitoring lowers default and raises exit intensities, and its due
  diligence gives the bank a better signal at a lower cost.

So ``warrant_loan - pure_loan`` is the warrant and 50 bp of rate, and ``vc_linked -
pure_loan`` is the partner (linkage and screening) and the same 50 bp;
:func:`invlend.attribute` splits each difference term by term.

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

# The loan all three presets share: 10% of entry value (at Series A, up to 25% of the round or
# 10% of enterprise value, nighthawkpartners [S]); 3 years, 6 months interest-only then linear
# amortisation (Davis-Morse-Wang slides [S]); 1% upfront fee (venturedebt.co sample term sheet
# [S]); no final or prepayment fee (Chinese bank practice [E]); no collateral; the shared
# recovery rule (Loan.recovery_rate 1 and the scenario's distress_value).
SHARED_LOAN = dict(
    loan_to_value=0.10,
    maturity_years=3.0,
    interest_only_years=0.5,
    upfront_fee=0.01,
    final_fee=0.0,
    prepayment_fee=0.0,
    collateral=0.0,
)
#: The rates of the presets: the 1-year LPR 3.00% (PBoC, 20 May 2025 [S]) plus 150 bp for the
#: pure loan and plus 100 bp where a warrant or a VC partner takes part of the spread [E].
PURE_LOAN_RATE = 0.045
LINKED_RATE = 0.040


def _build(defaults: dict[str, Any], loan: dict[str, Any], terms: dict[str, Any]) -> Structure:
    parts = {k: terms.pop(k) for k in list(terms) if k in _COMPONENTS}
    unknown = set(terms) - set(Loan.model_fields)
    if unknown:
        raise TypeError(
            f"unknown term(s) {sorted(unknown)}; give loan fields {sorted(Loan.model_fields)} "
            f"or components {list(_COMPONENTS)}"
        )
    loan = {**loan, **terms}
    if "interest_only_years" not in terms and loan.get("interest_only_years") is not None:
        # A shorter maturity keeps the loan valid: interest-only for at most its life.
        loan["interest_only_years"] = min(loan["interest_only_years"], loan["maturity_years"])
    return Structure(**{**defaults, **parts, "loan": Loan(**loan)})


def pure_loan(**terms: Any) -> Structure:
    """A plain credit loan: the shared loan (module docs) at 4.5%, screened by the bank alone.

    Differs from nothing: it is the baseline of the other presets.
    """
    loan = {**SHARED_LOAN, "rate": PURE_LOAN_RATE}
    return _build({"name": "pure_loan", "screening": _BANK_SCREENING}, loan, dict(terms))


def warrant_loan(**terms: Any) -> Structure:
    """Venture debt with a warrant (认股选择权贷款).

    Differs from :func:`pure_loan` in exactly two terms: the rate, 4.0% (LPR + 100 bp, [E]),
    and a warrant with coverage 10% of principal (US practice 2-10% and 5-20%, Kruze
    Consulting and bizbuzzmag.org [S]), a 5-year life and the full share of the gain [E].
    Loan size, maturity, amortisation, fees, recovery and screening are the pure loan's.
    """
    loan = {**SHARED_LOAN, "rate": LINKED_RATE}
    defaults = {
        "name": "warrant_loan",
        "warrant": Warrant(coverage=0.10, share_of_gain=1.0, expiry_years=5.0),
        "screening": _BANK_SCREENING,
    }
    return _build(defaults, loan, dict(terms))


def vc_linked(**terms: Any) -> Structure:
    """Lending alongside a VC partner (外部投贷联动).

    Differs from :func:`pure_loan` in the rate, 4.0% (LPR + 100 bp, [E]), and in the
    partner: linkage multipliers 0.75 on default (VC screening and monitoring; Puri &
    Zarutskie 2012 find lower early failure [S]) and 1.2 on exits (Davis, Morse & Wang: +4-10%
    exits [S]), both [E]; and screening on the VC's due diligence, with half the signal noise
    at a quarter of the bank-alone cost, accepting the same 60% [E]. The loan is the pure
    loan's in every other term.
    """
    loan = {**SHARED_LOAN, "rate": LINKED_RATE}
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
