"""Entry point of the rules: facts and today's date in, cards out, most severe first.

Each check names the data (prefetch keys) it reads. When some data could not be had
(``PatientFacts.missing``), only the checks reading it are withheld, and one card names those checks and
why; every other check still runs, so one missing key never silences a critical alert (a potassium of
6.4 is critical whether or not the pregnancy tests arrived).
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
from .vocab import (
    CBC,
    CHEMISTRY,
    CONDITIONS,
    ENDED_MEDICATION_REQUESTS,
    FAMILY_BASELINE_LABS,
    FAMILY_CARE,
    FAMILY_DOSE,
    FAMILY_ELIGIBILITY,
    FAMILY_INTERACTION,
    FAMILY_SAFETY,
    FAMILY_TIMING,
    FAMILY_TROUGH,
    IMMUNIZATIONS,
    IMMUNOLOGY,
    MEDICATION_REQUESTS,
    MEDICATION_STATEMENTS,
    PREGNANCY_TESTS,
    TACROLIMUS_LEVELS,
    TRANSFERS,
    VITALS,
    card_kind,
)

Rule = Callable[[PatientFacts, date, Mapping[str, Any]], list[Card]]

# The data groups (prefetch keys) the checks need, by short names.
LEVELS = TACROLIMUS_LEVELS
MED_REQUESTS = MEDICATION_REQUESTS
MED_STATEMENTS = MEDICATION_STATEMENTS
ENDED_MED_REQUESTS = ENDED_MEDICATION_REQUESTS
# A Medication an order refers to is not a need of any check: an order whose Medication could not be had
# is named on the data-quality card and only that order goes unchecked.
ORDERS = (MED_REQUESTS,)


@dataclass(frozen=True)
class Check:
    """One check of a rule: the cards it makes and the data it reads.

    Its cards are those of ``kind`` (a card kind, or a prefix ending in ":"), restricted to ``verdicts``
    when given. Without one of ``needs`` its cards are withheld, since the absence of a card would mean
    nothing, and the missing-data card names the check.
    """

    name: str  # as a clinician would name it
    needs: frozenset[str]
    kind: str
    verdicts: frozenset[str] | None = None

    def made(self, card: Card) -> bool:
        """Whether the card is one of this check's."""
        kind_matches = card.kind.startswith(self.kind) if self.kind.endswith(":") else card.kind == self.kind
        return kind_matches and (self.verdicts is None or card.verdict in self.verdicts)


@dataclass(frozen=True)
class RuleSpec:
    rule: Rule
    check: str  # what the rule checks, as a clinician would name it
    checks: tuple[Check, ...]  # its checks, each with the data it reads; a card is matched by the first

    @property
    def needs(self) -> frozenset[str]:
        """Every prefetch key one of its checks reads."""
        return frozenset(key for c in self.checks for key in c.needs)


def _one(rule: Rule, name: str, kind: str, needs: frozenset[str]) -> RuleSpec:
    return RuleSpec(rule, name, (Check(name, needs, kind),))


# The trough verdicts that are about when to draw the next level: they rest on the order's start date.
TROUGH_SCHEDULE = frozenset({"no-trough", "draw-at-steady-state"})
MEDICATION_LISTS = frozenset({MED_REQUESTS, MED_STATEMENTS})

# One function per concern, each returning at most one card per concern (card `kind`).
INTERACTION_CARDS = f"{FAMILY_INTERACTION}:"  # a prefix: every interaction card
CARE_CARDS = f"{FAMILY_CARE}:"

RULES: tuple[RuleSpec, ...] = (
    _one(
        evaluate_eligibility,
        "candidate selection",
        FAMILY_ELIGIBILITY,
        frozenset({IMMUNOLOGY, CONDITIONS, *TRANSFERS, *ORDERS}),
    ),
    _one(evaluate_dose, "dose", FAMILY_DOSE, frozenset({IMMUNOLOGY, *ORDERS})),
    _one(evaluate_timing, "timing around the embryo transfer", FAMILY_TIMING, frozenset({*TRANSFERS, *ORDERS})),
    _one(evaluate_baseline_labs, "baseline labs", FAMILY_BASELINE_LABS, frozenset({CHEMISTRY, CBC, *ORDERS})),
    RuleSpec(
        evaluate_trough,
        "tacrolimus levels",
        (
            # When to draw the next trough depends on when the course started: the orders.
            Check(
                "when to draw the next tacrolimus trough", frozenset({LEVELS, *ORDERS}), FAMILY_TROUGH, TROUGH_SCHEDULE
            ),
            # A level on record is judged on the level: a critical trough needs no order list to be seen.
            Check("tacrolimus levels", frozenset({LEVELS}), FAMILY_TROUGH),
        ),
    ),
    RuleSpec(
        evaluate_safety,
        "kidney, potassium, glucose, blood pressure and liver monitoring",
        (
            Check("creatinine", frozenset({CHEMISTRY}), card_kind(FAMILY_SAFETY, "creatinine")),
            Check("potassium", frozenset({CHEMISTRY}), card_kind(FAMILY_SAFETY, "potassium")),
            Check("glucose", frozenset({CHEMISTRY}), card_kind(FAMILY_SAFETY, "glucose")),
            Check("liver enzymes", frozenset({CHEMISTRY}), card_kind(FAMILY_SAFETY, "liver")),
            Check("blood pressure", frozenset({VITALS}), card_kind(FAMILY_SAFETY, "blood-pressure")),
            # Without the pregnancy tests the glucose and blood-pressure checks still run, on the pregnancy
            # status the other records tell (a pregnancy Condition, a transfer); what a positive test
            # alone would have added is named as not checked. It withholds no card.
            Check(
                "pregnancy thresholds for glucose and blood pressure (pregnancy status unknown)",
                frozenset({PREGNANCY_TESTS}),
                f"{FAMILY_SAFETY}:",
                frozenset(),
            ),
            Check(
                "monitoring schedule", frozenset({CHEMISTRY, CBC, VITALS}), card_kind(FAMILY_SAFETY, "monitoring-due")
            ),
        ),
    ),
    # The interaction cards read potassium and creatinine too, and say so themselves when the chemistry
    # is missing; a drug that needs no laboratory value (spironolactone) is flagged without it.
    RuleSpec(
        evaluate_interactions,
        "drug interactions",
        (
            Check("drug interactions", MEDICATION_LISTS, INTERACTION_CARDS),
            # Their cards are interaction cards like the others (matched above); these entries name what
            # went unchecked when only the ended orders or the vaccines given could not be had.
            Check(
                "interacting drugs stopped in the last days",
                frozenset({ENDED_MED_REQUESTS}),
                INTERACTION_CARDS,
                frozenset(),
            ),
            Check(
                "live vaccines given in the last 30 days", frozenset({IMMUNIZATIONS}), INTERACTION_CARDS, frozenset()
            ),
        ),
    ),
    _one(
        evaluate_care,
        "administration and care",
        CARE_CARDS,
        frozenset({CONDITIONS, *MEDICATION_LISTS, PREGNANCY_TESTS}),
    ),
)


def _lacking(facts: PatientFacts, check: Check) -> list[str]:
    return [key for key in facts.missing if key in check.needs]


def skipped(facts: PatientFacts) -> list[tuple[Check, list[str]]]:
    """The checks that cannot be made on these facts, each with the missing keys it reads."""
    out: list[tuple[Check, list[str]]] = []
    for spec in RULES:
        for check in spec.checks:
            lacking = _lacking(facts, check)
            if lacking:
                out.append((check, lacking))
    return out


def can_run(facts: PatientFacts) -> bool:
    """True when at least one check has all the data it reads."""
    return any(not _lacking(facts, check) for spec in RULES for check in spec.checks)


def _kept(spec: RuleSpec, card: Card, facts: PatientFacts) -> bool:
    """A card stays unless the check that made it lacks data (a card no check claims stays)."""
    check = next((c for c in spec.checks if c.made(card)), None)
    return check is None or not _lacking(facts, check)


def evaluate(facts: PatientFacts, today: date, knowledge: Mapping[str, Any]) -> list[Card]:
    """All cards for one hook call, ordered by severity (stable within a severity)."""
    cards: list[Card] = []
    # With every key at hand (the usual call) no check lacks data: every rule runs, every card stays
    # and none is skipped, so the per-check bookkeeping below is not needed.
    missing = bool(facts.missing)
    for spec in RULES:
        if missing and all(_lacking(facts, check) for check in spec.checks):
            continue  # none of its checks has its data
        made = spec.rule(facts, today, knowledge)
        if missing:
            made = [card for card in made if _kept(spec, card, facts)]
        cards.extend(made)
    not_run = skipped(facts) if missing else []
    partly = (
        [
            (check.name, keys)
            for spec in RULES
            for check in spec.checks
            if (keys := [key for key in facts.incomplete if key in check.needs])
        ]
        if facts.incomplete
        else []
    )
    cards.extend(evaluate_data_quality(facts, today, knowledge))
    cards.extend(
        evaluate_missing_data(facts, [(check.name, keys) for check, keys in not_run], knowledge, partial=partly)
    )
    return sorted(cards, key=lambda c: SEVERITY[c.indicator])
