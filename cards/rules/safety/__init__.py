"""Card 6, safety monitoring: creatinine, potassium, glucose, blood pressure and liver enzymes
against their thresholds, one card per concern, each with the values and dates used.

Each concern lives in its own module: kidney and potassium in ``renal``, glucose, liver enzymes and
blood pressure in ``glucose_liver_bp``; what they share in ``support``. This module runs them and
makes the monitoring-due card.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from ...facts import PatientFacts
from ...knowledge_model import Order, ProtocolTable
from ...model import Card, Suggestion
from ...text import fits_summary
from ..common import Current, Detail, make_card, order_action, protocol_of
from ..focus import focus_of
from ..interactions import decide_interactions
from ..scope import scope_of
from .glucose_liver_bp import blood_pressure_check, glucose_check, liver_check
from .renal import creatinine_check, potassium_check
from .support import SAFETY


def evaluate_safety(facts: PatientFacts, today: date, kb: Mapping[str, Any]) -> list[Card]:
    """Card 6: one card per safety concern over its threshold; on therapy, what is overdue."""
    focus = focus_of(facts)
    if not focus.applies or not (focus.on_therapy or focus.drafts):
        return []  # a candidate who is not on (or being ordered) tacrolimus: not ours to monitor
    proto = protocol_of(kb)
    cards: list[Card] = []
    gaps: list[tuple[str, Current, Order | None]] = []
    covered = _potassium_on_interaction_card(facts, today, kb)
    safety = proto.safety
    for label, check, order in (
        ("Creatinine", creatinine_check, safety.creatinine.order),
        ("Potassium", potassium_check, safety.potassium.order),
        ("Glucose", glucose_check, safety.glucose.order),
        ("Liver enzymes (ALT/AST)", liver_check, safety.liver.order),
    ):
        card, state = check(facts, today, proto, focus)
        if card is not None and not (covered and card.kind == f"{SAFETY}:potassium"):
            cards.append(card)
        if state is not None and state.value is None:
            gaps.append((label, state, order if state.orderable else None))
    bp_card, bp_gap = blood_pressure_check(facts, today, proto)
    if bp_card is not None:
        cards.append(bp_card)
    if focus.on_therapy and scope_of(facts, today, kb).protocol:
        # The monitoring schedule is the protocol's; a transplant clinic keeps its own.
        due = _monitoring_due(facts, proto, gaps, bp_gap)
        if due is not None:
            cards.append(due)
    return cards


def _potassium_on_interaction_card(facts: PatientFacts, today: date, kb: Mapping[str, Any]) -> bool:
    """A potassium raiser's interaction card already names the high potassium (and offers the urgent
    repeat and ECG): one concern, one card. Only with every prefetch key at hand: when some data are
    missing the interaction card may be withheld, and two cards are better than none."""
    if facts.missing:
        return False
    return any(d.potassium is not None and d.potassium.high for d in decide_interactions(facts, today, kb))


def _monitoring_due(
    facts: PatientFacts, proto: ProtocolTable, gaps: list[tuple[str, Current, Order | None]], bp_gap: str | None
) -> Card | None:
    """On therapy: the safety values that are missing, stale or not usable, with their orders."""
    if not any(order is not None for _, _, order in gaps):
        return None  # nothing to order (a blood pressure is taken at the visit): no card
    detail = Detail(proto)
    detail.number("how long a safety result counts", proto.safety.stale_after_days)
    detail.add("")
    names: list[str] = []
    for label, state, _ in gaps:
        detail.add(f"- {label}: {state.problem}")
        names.append(label.split(" (")[0].lower())
    if bp_gap is not None:
        detail.add(f"- Blood pressure: {bp_gap}")
        names.append("blood pressure")
    detail.add("")
    detail.add("On tacrolimus, monitor blood pressure, renal function, glucose and liver enzymes regularly.")
    detail.cite("guideline", "Monitoring Requirements")
    actions = tuple(
        order_action(facts, order, f"Safety monitoring on tacrolimus: {label}")
        for label, _, order in gaps
        if order is not None
    )
    suggestions = [Suggestion(label="Order the overdue safety tests", actions=actions)] if actions else []
    summary = f"Tacrolimus safety monitoring due: {', '.join(names)}"
    if not fits_summary(summary):
        summary = "Tacrolimus safety monitoring due: several tests, see details"
    return make_card(
        proto,
        detail,
        kind=f"{SAFETY}:monitoring-due",
        summary=summary,
        indicator="info",
        source_id="guideline",
        suggestions=suggestions,
    )
