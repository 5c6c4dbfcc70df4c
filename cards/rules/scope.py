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

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from ..facts import PREGNANCY, RIF, TH1_PCT, TH1_TH2_RATIO, TH2_PCT, TRANSPLANT, MedicationFact, PatientFacts
from ..knowledge_model import typed
from .vocab import TACROLIMUS

Verdict = Literal["rif-course", "male", "transplant", "other-indication", "outside-age", "no-ivf-course", "not-oral"]
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


def pregnancy_evidence(facts: PatientFacts) -> bool:
    """Evidence that she is or may become pregnant: pregnant now (a pregnancy Condition or a positive hCG
    after a transfer), a pregnancy Condition on record, or an embryo transfer with no later negative test."""
    if facts.pregnancy.pregnant is True or facts.has_condition(PREGNANCY):
        return True
    return bool(facts.transfers) and facts.pregnancy.pregnant is not False


def excluded_from_pregnancy(facts: PatientFacts) -> bool:
    """True only when ``Patient.gender`` is male and nothing on record shows a pregnancy or a transfer.

    ``Patient.gender`` is administrative gender, not sex: a recorded pregnancy, hCG or transfer outweighs
    it for every teratogen and fetal-risk rule."""
    return facts.sex == "male" and not pregnancy_evidence(facts)


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


def other_indication(med: MedicationFact, kb: Mapping[str, Any]) -> str | None:
    """The non-RIF indication an order is given for (its reasonCode), in words; None when it names none
    or names RIF. An order for transplant, lupus nephritis or another autoimmune disease is not an RIF
    course, whatever else is on the problem list."""
    scope = typed(kb).protocol.scope
    table = scope.other_indications if scope is not None else None
    indications = (*med.indications, *_reason_references(med))
    if table is None or not indications:
        return None
    rif_words = [w.lower() for w in table.rif_words]
    rif_codes = [c.lower() for c in table.rif_codes]
    if any(i in rif_codes or _has_word(i, rif_words) for i in indications):
        return None
    prefixes = [p.lower() for p in table.code_prefixes]
    words = [w.lower() for w in table.words]
    for indication in indications:
        if "|" in indication and any(indication.startswith(p) for p in prefixes):
            texts = [i for i in indications if "|" not in i]
            return texts[0] if texts else indication.split("|", 1)[1].upper()
        if "|" not in indication and _has_word(indication, words):
            return indication
    return None


def _reason_references(med: MedicationFact) -> tuple[str, ...]:
    """The words of the order's ``reasonReference`` (its ``display``, e.g. "Lupus nephritis"), lower-cased."""
    return med.reason_references


def _has_word(text: str, words: list[str]) -> bool:
    return any(re.search(rf"(?<!\w){re.escape(w)}(?!\w)", text) for w in words)


def scope_of(facts: PatientFacts, today: date, kb: Mapping[str, Any]) -> Scope:
    """Decide whether the RIF protocol applies to this patient and these tacrolimus orders (once
    for the facts, the day and the knowledge: most rules ask). The knowledge is kept beside the
    answer, so no other knowledge can take its ``id`` while the facts live."""
    _, scope = facts.derived(("scope_of", today, id(kb)), lambda: (kb, _scope_of(facts, today, kb)))
    return scope


def _scope_of(facts: PatientFacts, today: date, kb: Mapping[str, Any]) -> Scope:
    evidence = course_evidence(facts)
    if facts.has_condition(TRANSPLANT):
        return Scope(
            False,
            "transplant",
            "she has a transplant: tacrolimus is dosed and monitored for the transplant, not by the RIF protocol",
            evidence,
        )
    tacrolimus = [m for m in facts.medications_with(TACROLIMUS) if m.systemic]
    others = [other_indication(m, kb) for m in tacrolimus]
    if tacrolimus and all(others):
        return Scope(
            False,
            "other-indication",
            f"this tacrolimus is ordered for {others[0]}, not for RIF",
            evidence,
        )
    if facts.sex == "male":
        return Scope(False, "male", "the patient is male: the RIF protocol is for women in IVF", evidence)
    if facts.birth_date is not None:
        limits = typed(kb).protocol.scope
        low = limits.min_age_years.value if limits is not None else 0
        high = limits.max_age_years.value if limits is not None else 200
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
