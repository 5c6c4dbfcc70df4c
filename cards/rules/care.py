"""Card 8: administration and care, from the care table (knowledge/care.yaml).

Information cards only, and few of them (alert fatigue): each card of the table names the hooks it may
show on and when it applies. Counselling comes once, when a new start is selected — never on a renewal,
on patient-view, or when the Th1/Th2 ratio does not support tacrolimus; the pregnancy card when she is
pregnant on tacrolimus. Only a patient in the RIF protocol's scope gets them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from ..facts import PatientFacts
from ..knowledge_model import CareCard, CareTable, CareWhen, typed
from ..model import Card
from .common import describe_pregnancy, protocol_of
from .eligibility import decide_eligibility
from .focus import fill, focus_of, span
from .scope import scope_of
from .vocab import ORDERING_HOOKS, build_card, reason_codings


def evaluate_care(facts: PatientFacts, today: date, kb: Mapping[str, Any]) -> list[Card]:
    """Administration and care cards (card 8) that apply to this hook call."""
    table = typed(kb).care
    focus = focus_of(facts)
    focused = focus.drafts if facts.hook in ORDERING_HOOKS else focus.active
    if not focused or not scope_of(facts, today, kb).protocol:
        return []
    # A new start: tacrolimus is being ordered, she has no active tacrolimus order (not a renewal), and
    # the ratio supports it (no counselling beside "order the ratio first" or "not supported").
    started = (
        facts.hook in ORDERING_HOOKS
        and not focus.on_therapy
        and decide_eligibility(facts, today, protocol_of(kb)).verdict == "candidate"
    )
    values = {key: span(number.value) for key, number in table.numbers.items()}
    cards: list[Card] = []
    for spec in table.cards:
        if facts.hook in spec.hooks and _applies(facts, spec.when, started, focus.on_therapy):
            cards.append(_card(facts, spec, table, values))
    return cards


def _taking(facts: PatientFacts, drugs: Sequence[str] | None) -> bool:
    return any(m.has(d) for m in facts.medications for d in drugs or [])


def _applies(facts: PatientFacts, when: CareWhen, started: bool, continuing: bool) -> bool:
    if when.tacrolimus == "started" and not started:
        return False
    if when.tacrolimus == "continuing" and not continuing:
        return False
    pregnancy = when.pregnancy
    if pregnancy == "pregnant" and facts.pregnancy.pregnant is not True:
        return False
    if pregnancy == "not-known-pregnant" and facts.pregnancy.pregnant is True:
        return False
    if not all(facts.has_condition(c) for c in when.conditions or []):
        return False
    return not _taking(facts, when.unless_taking)


def _card(facts: PatientFacts, spec: CareCard, table: CareTable, values: Mapping[str, str]) -> Card:
    points = [
        fill(p.text, values)
        for p in spec.points
        if all(facts.has_condition(c) for c in p.if_conditions or []) and not _taking(facts, p.unless_taking)
    ]
    lines = [f"- {p}" for p in points]
    if spec.when.pregnancy == "pregnant":
        lines.append(f"- She is {describe_pregnancy(facts.pregnancy)}.")
    lines += ["", "Source: " + "; ".join(spec.sources) + "."]
    return build_card(
        kind=spec.kind,
        verdict=spec.id,
        summary=fill(spec.summary, values),
        indicator=spec.indicator,
        detail="\n".join(lines),
        source_label=table.source_label,
        override_reasons=reason_codings(table.override_reasons),
    )
