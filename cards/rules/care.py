"""Card 8: administration and care, from the care table (knowledge/care.yaml).

Information cards only, and few of them (alert fatigue): each card of the table names the hooks it may
show on and when it applies. By default the counselling cards (administration, Pneumocystis
prophylaxis, RIF + RPL) appear only when tacrolimus is newly started — never on a renewal or on
patient-view — and the pregnancy and breastfeeding cards also on patient-view, where ongoing care is
reviewed.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Mapping

from ..facts import MedicationFact, PatientFacts
from ..model import Card
from .focus import describe_order, fill, in_focus, span
from .vocab import ORDERING_HOOKS, TACROLIMUS, build_card, override_codings


def evaluate_care(facts: PatientFacts, today: date, kb: Mapping[str, Any]) -> list[Card]:
    """Administration and care cards (card 8) that apply to this hook call."""
    table = kb["care"]
    tacrolimus_orders = facts.medications_with(TACROLIMUS)
    focused = [t for t in tacrolimus_orders if in_focus(facts.hook, t)]
    if not focused:
        return []
    # A new start: tacrolimus is being ordered and she has no active tacrolimus order (not a renewal).
    started = facts.hook in ORDERING_HOOKS and all(t.is_draft for t in tacrolimus_orders)
    values = {key: span(number["value"]) for key, number in table["numbers"].items()}
    cards: list[Card] = []
    for spec in table["cards"]:
        if facts.hook in spec["hooks"] and _applies(facts, spec["when"], started):
            cards.append(_card(facts, spec, table, values, focused))
    return cards


def _applies(facts: PatientFacts, when: Mapping[str, Any], started: bool) -> bool:
    if when["tacrolimus"] == "started" and not started:
        return False
    pregnancy = when.get("pregnancy")
    if pregnancy == "pregnant" and facts.pregnancy.pregnant is not True:
        return False
    if pregnancy == "not-known-pregnant" and facts.pregnancy.pregnant is True:
        return False
    if not all(facts.has_condition(c) for c in when.get("conditions") or []):
        return False
    return not any(m.has(d) for m in facts.medications for d in when.get("unless_taking") or [])


def _card(facts: PatientFacts, spec: Mapping[str, Any], table: Mapping[str, Any],
          values: Mapping[str, str], focused: list[MedicationFact]) -> Card:
    points = [fill(p["text"], values) for p in spec["points"]
              if all(facts.has_condition(c) for c in p.get("if_conditions") or [])]
    lines = [f"- {p}" for p in points] + ["", "**Why this card**"]
    lines += [f"- Tacrolimus: {describe_order(t)}" for t in focused]
    when = spec["when"]
    if when.get("pregnancy") == "pregnant":
        lines.append(f"- Pregnant: {facts.pregnancy.evidence}"
                     + (f" ({facts.pregnancy.source})" if facts.pregnancy.source else ""))
    for concept in when.get("conditions") or []:
        for condition in facts.conditions:
            if condition.concept == concept:
                lines.append(f"- {condition.display} ({condition.source})")
    lines += ["", "**Sources:** " + "; ".join(spec["sources"]) + "."]
    used = spec["summary"] + "".join(p["text"] for p in spec["points"])
    numbers = [(key, number) for key, number in table["numbers"].items() if "{" + key + "}" in used]
    if numbers:
        lines += ["", "**Numbers used**"]
        lines += [f"- {values[key]}{' ' + number['unit'] if number.get('unit') else ''}: {number['source']}"
                  for key, number in numbers]
    return build_card(kind=spec["kind"], verdict=spec["id"], summary=fill(spec["summary"], values),
                      indicator=spec["indicator"], detail="\n".join(lines), source_label=table["source_label"],
                      override_reasons=override_codings(table))
