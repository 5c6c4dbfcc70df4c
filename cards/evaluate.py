"""Entry point of the rules: facts and today's date in, cards out, most severe first."""

from __future__ import annotations

from datetime import date
from typing import Any, Mapping

from .facts import PatientFacts
from .model import SEVERITY, Card


def evaluate(facts: PatientFacts, today: date, knowledge: Mapping[str, Any]) -> list[Card]:
    """All cards for one hook call, ordered by severity."""
    cards: list[Card] = []
    return sorted(cards, key=lambda c: SEVERITY[c.indicator])
