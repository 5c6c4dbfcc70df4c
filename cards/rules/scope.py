"""Who the RIF protocol is for.

The protocol's numbers (cut-offs, ratio bands, the 4 mg/day maximum, the 4–8 ng/mL target, the 16-day
course) were established in women with recurrent implantation failure undergoing IVF. They apply only
to a woman of reproductive age in an IVF / RIF course — a RIF Condition, an embryo-transfer plan or a
Th1/Th2 result on record — taking oral tacrolimus. Anyone else on tacrolimus (a transplant recipient,
a man, a child, tacrolimus ointment) gets no protocol card; the generic safety and interaction cards,
which do not use the protocol's numbers, still apply.

Unknown sex with an IVF course on record stays in scope (the course itself is the evidence), and the
eligibility card says the sex is not recorded. Unknown age stays in scope.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from ..facts import RIF, TH1_PCT, TH1_TH2_RATIO, TH2_PCT, TRANSPLANT, MedicationFact, PatientFacts
from .vocab import TACROLIMUS

Verdict = Literal["rif-course", "male", "transplant", "outside-age", "no-ivf-course", "not-oral"]
PROTOCOL_ROUTES = frozenset({"oral"})  # and an unstated route: oral is what is prescribed


@dataclass(frozen=True)
class Scope:
    """Whether the RIF protocol applies, and why (or why not)."""

    protocol: bool
    verdict: Verdict
    reason: str  # in words, for a card's detail
    course_evidence: tuple[str, ...] = ()  # what puts her in an IVF / RIF course
    sex_unrecorded: bool = False


def is_protocol_route(med: MedicationFact) -> bool:
    """Oral tacrolimus (or the route not stated): what the protocol's doses and troughs are about."""
    return med.route is None or med.route in PROTOCOL_ROUTES


def age_years(birth: date, today: date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def course_evidence(facts: PatientFacts) -> tuple[str, ...]:
    """What on record shows an IVF / RIF course."""
    found: list[str] = []
    if facts.has_condition(RIF):
        found.append("recurrent implantation failure is documented")
    if facts.transfers:
        found.append("an embryo transfer is planned or recorded")
    if any(facts.results(c) for c in (TH1_TH2_RATIO, TH1_PCT, TH2_PCT)):
        found.append("a Th1/Th2 result is on record")
    return tuple(found)


def scope_of(facts: PatientFacts, today: date, kb: Mapping[str, Any]) -> Scope:
    """Decide whether the RIF protocol applies to this patient and these tacrolimus orders."""
    evidence = course_evidence(facts)
    if facts.has_condition(TRANSPLANT):
        return Scope(
            False,
            "transplant",
            "she has a transplant: tacrolimus is dosed and monitored for the transplant, not by the RIF protocol",
            evidence,
        )
    if facts.sex == "male":
        return Scope(False, "male", "the patient is male: the RIF protocol is for women in IVF", evidence)
    if facts.birth_date is not None:
        limits = kb["protocol"].get("scope") or {}
        low = int((limits.get("min_age_years") or {}).get("value", 0))
        high = int((limits.get("max_age_years") or {}).get("value", 200))
        age = age_years(facts.birth_date, today)
        if not low <= age <= high:
            return Scope(
                False,
                "outside-age",
                f"the patient is {age} years old, outside the ages the IVF protocol is applied at ({low}–{high})",
                evidence,
            )
    if not evidence:
        return Scope(
            False,
            "no-ivf-course",
            "no IVF / RIF course is on record (no RIF diagnosis, embryo transfer or Th1/Th2 result)",
        )
    systemic = [m for m in facts.medications_with(TACROLIMUS) if m.systemic]
    if systemic and not any(is_protocol_route(m) for m in systemic):
        return Scope(
            False, "not-oral", "the tacrolimus is not oral: the protocol's doses are for oral capsules", evidence
        )
    unrecorded = facts.sex not in {"female", "male"}
    return Scope(
        True, "rif-course", "in an IVF / RIF course: " + "; ".join(evidence), evidence, sex_unrecorded=unrecorded
    )
