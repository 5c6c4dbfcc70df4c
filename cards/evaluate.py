"""Entry point of the rules: facts and today's date in, cards out, most severe first."""

from __future__ import annotations

from datetime import date
from typing import Any, Callable, Mapping

from .facts import PatientFacts
from .model import SEVERITY, Card
from .rules.baseline_labs import evaluate_baseline_labs
from .rules.care import evaluate_care
from .rules.data_quality import evaluate_data_quality
from .rules.dose import evaluate_dose
from .rules.eligibility import evaluate_eligibility
from .rules.interactions import evaluate_interactions
from .rules.safety import evaluate_safety
from .rules.timing import evaluate_timing
from .rules.trough import evaluate_trough

Rule = Callable[[PatientFacts, date, Mapping[str, Any]], list[Card]]

# One function per concern, each returning at most one card per concern (card `kind`).
RULES: tuple[Rule, ...] = (
    evaluate_eligibility,  # 1 candidate selection
    evaluate_dose,  # 2 dose
    evaluate_timing,  # 3 timing
    evaluate_baseline_labs,  # 4 baseline labs
    evaluate_trough,  # 5 trough monitoring
    evaluate_safety,  # 6 safety monitoring
    evaluate_interactions,  # 7 drug interactions
    evaluate_care,  # 8 administration and care
    evaluate_data_quality,  # records received but not usable
)


def evaluate(facts: PatientFacts, today: date, knowledge: Mapping[str, Any]) -> list[Card]:
    """All cards for one hook call, ordered by severity (stable within a severity)."""
    cards: list[Card] = []
    for rule in RULES:
        cards.extend(rule(facts, today, knowledge))
    return sorted(cards, key=lambda c: SEVERITY[c.indicator])
