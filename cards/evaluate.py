"""Entry point of the rules: facts and today's date in, cards out, most severe first.

Each rule declares the data (prefetch keys) it cannot do without. When some data could not be had
(``PatientFacts.missing``), the rules needing it are skipped and one card says which checks were not
made and why; every other rule still runs, so one missing key never silences a critical alert.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from .facts import PatientFacts
from .model import SEVERITY, Card
from .rules.baseline_labs import evaluate_baseline_labs
from .rules.care import evaluate_care
from .rules.data_quality import evaluate_data_quality, evaluate_missing_data
from .rules.dose import evaluate_dose
from .rules.eligibility import evaluate_eligibility
from .rules.interactions import evaluate_interactions
from .rules.safety import evaluate_safety
from .rules.timing import evaluate_timing
from .rules.trough import evaluate_trough

Rule = Callable[[PatientFacts, date, Mapping[str, Any]], list[Card]]

# Prefetch keys (the data groups of the service's prefetch templates).
PATIENT = "patient"
IMMUNOLOGY = "immunology"
LEVELS = "tacrolimusLevels"
CHEMISTRY = "chemistry"
CBC = "cbc"
VITALS = "vitals"
PREGNANCY_TESTS = "pregnancyTests"
CONDITIONS = "conditions"
MED_REQUESTS = "medicationRequests"
MED_STATEMENTS = "medicationStatements"
MEDICATIONS = "medications"  # Medication resources that orders reference
TRANSFERS = ("transferRequests", "transferProcedures", "transferAppointments")
ORDERS = (MED_REQUESTS, MEDICATIONS)


@dataclass(frozen=True)
class RuleSpec:
    rule: Rule
    check: str  # what the rule checks, as a clinician would name it
    needs: frozenset[str]  # prefetch keys without which its answer could be wrong


# One function per concern, each returning at most one card per concern (card `kind`).
RULES: tuple[RuleSpec, ...] = (
    RuleSpec(evaluate_eligibility, "candidate selection", frozenset({IMMUNOLOGY, CONDITIONS, *TRANSFERS, *ORDERS})),
    RuleSpec(evaluate_dose, "dose", frozenset({IMMUNOLOGY, *ORDERS})),
    RuleSpec(evaluate_timing, "timing around the embryo transfer", frozenset({*TRANSFERS, *ORDERS})),
    RuleSpec(evaluate_baseline_labs, "baseline labs", frozenset({CHEMISTRY, CBC, *ORDERS})),
    RuleSpec(evaluate_trough, "tacrolimus levels", frozenset({LEVELS, *ORDERS})),
    RuleSpec(
        evaluate_safety,
        "kidney, potassium, glucose, blood pressure and liver monitoring",
        frozenset({CHEMISTRY, VITALS, CBC, PREGNANCY_TESTS}),
    ),
    RuleSpec(
        evaluate_interactions, "drug interactions", frozenset({MED_REQUESTS, MED_STATEMENTS, MEDICATIONS, CHEMISTRY})
    ),
    RuleSpec(
        evaluate_care,
        "administration and care",
        frozenset({CONDITIONS, MED_REQUESTS, MED_STATEMENTS, MEDICATIONS, PREGNANCY_TESTS}),
    ),
)


def skipped(facts: PatientFacts) -> list[tuple[RuleSpec, list[str]]]:
    """The rules that cannot run on these facts, each with the missing keys it needs."""
    out: list[tuple[RuleSpec, list[str]]] = []
    for spec in RULES:
        lacking = [key for key in facts.missing if key in spec.needs]
        if lacking:
            out.append((spec, lacking))
    return out


def can_run(facts: PatientFacts) -> bool:
    """True when at least one rule has all the data it needs."""
    return len(skipped(facts)) < len(RULES)


def evaluate(facts: PatientFacts, today: date, knowledge: Mapping[str, Any]) -> list[Card]:
    """All cards for one hook call, ordered by severity (stable within a severity)."""
    not_run = skipped(facts)
    names = {id(spec) for spec, _ in not_run}
    cards: list[Card] = []
    for spec in RULES:
        if id(spec) not in names:
            cards.extend(spec.rule(facts, today, knowledge))
    cards.extend(evaluate_data_quality(facts, today, knowledge))
    cards.extend(evaluate_missing_data(facts, [(spec.check, keys) for spec, keys in not_run], knowledge))
    return sorted(cards, key=lambda c: SEVERITY[c.indicator])
