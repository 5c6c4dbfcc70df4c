"""Cards (``cards.model``) to CDS Hooks 2.0 JSON. Gives every card and suggestion a uuid and
leaves out every empty value, as the spec requires."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from typing import Any

from cards import vocab
from cards.facts import PatientFacts
from cards.model import Action, Card, Link, Suggestion
from service.hooks.orders import Orders, resource_of

_NO_ORDERS: Orders = {}
SMART_LINK_LABEL = "Open the Tacrolimus monitor (SMART app)"  # the app's own name (its page header)

# source.topic (CDS Hooks 2.0.1 "Source": a Coding EHRs and analytics can group cards by), one per
# card family: the part of Card.kind before ":" ("interaction:fluconazole" -> "interaction").
TOPIC_SYSTEM = "http://example.org/fhir/CodeSystem/tacro-cds-card-topic"
TOPICS: dict[str, str] = {
    vocab.FAMILY_ELIGIBILITY: "Tacrolimus candidacy",
    vocab.FAMILY_DOSE: "Tacrolimus dose",
    vocab.FAMILY_TIMING: "Tacrolimus timing around embryo transfer",
    vocab.FAMILY_BASELINE_LABS: "Baseline laboratory tests",
    vocab.FAMILY_TROUGH: "Tacrolimus trough level",
    vocab.FAMILY_SAFETY: "Safety monitoring",
    vocab.FAMILY_INTERACTION: "Drug interaction",
    vocab.FAMILY_CARE: "Care and counselling",
    vocab.FAMILY_DATA_QUALITY: "Data quality",
}


def topic_of(kind: str) -> dict[str, str] | None:
    """The source.topic Coding of a card kind; None for a family the table does not name."""
    family = vocab.card_family(kind)
    display = TOPICS.get(family)
    if display is None:
        return None
    return {"system": TOPIC_SYSTEM, "code": family, "display": display}


def _action(a: Action, orders: Orders) -> dict[str, Any]:
    out: dict[str, Any] = {"type": a.type, "description": a.description}
    if a.resource is not None:
        out["resource"] = resource_of(a.resource, orders)
    if a.resource_id is not None:
        out["resourceId"] = a.resource_id
    return out


def _suggestion(s: Suggestion, new_uuid: Callable[[], str], orders: Orders) -> dict[str, Any]:
    out: dict[str, Any] = {
        "label": s.label,
        "uuid": new_uuid(),
        "isRecommended": s.is_recommended,
        "actions": [_action(a, orders) for a in s.actions],
    }
    return out


def _link(link: Link) -> dict[str, Any]:
    out = {"label": link.label, "url": link.url, "type": link.type}
    if link.type == "smart" and link.app_context:
        out["appContext"] = link.app_context
    return out


def render_card(card: Card, new_uuid: Callable[[], str], orders: Orders = _NO_ORDERS) -> dict[str, Any]:
    """One card as CDS Hooks JSON; ``orders`` (from extraction) holds the orders its suggestions change."""
    out: dict[str, Any] = {"uuid": new_uuid(), "summary": card.summary, "indicator": card.indicator}
    if card.detail:
        out["detail"] = card.detail
    source: dict[str, Any] = {"label": card.source_label}
    if card.source_url:
        source["url"] = card.source_url
    topic = topic_of(card.kind)
    if topic is not None:
        source["topic"] = topic
    out["source"] = source
    if card.suggestions:
        out["suggestions"] = [_suggestion(s, new_uuid, orders) for s in card.suggestions]
        out["selectionBehavior"] = card.selection_behavior or "at-most-one"
    if card.override_reasons:
        out["overrideReasons"] = [
            {"system": c.system, "code": c.code, "display": c.display} for c in card.override_reasons
        ]
    if card.links:
        out["links"] = [_link(link) for link in card.links]
    return out


def render_cards(
    cards: Iterable[Card], new_uuid: Callable[[], str], orders: Orders = _NO_ORDERS
) -> list[dict[str, Any]]:
    return [render_card(card, new_uuid, orders) for card in cards]


def with_smart_link(cards: Iterable[Card], app_url: str | None, facts: PatientFacts) -> list[Card]:
    """Add a SMART app link to each card when ``SMART_APP_URL`` is set; its ``appContext`` names the
    patient and the tacrolimus order the card is about (the selected one first)."""
    if not app_url:
        return list(cards)
    orders = sorted(facts.medications_with("tacrolimus"), key=lambda m: (not m.is_selected, not m.is_draft))
    context: dict[str, str] = {"patientId": facts.patient_id}
    if orders:
        context["orderId"] = orders[0].source
    link = Link(
        label=SMART_LINK_LABEL, url=app_url, type="smart", app_context=json.dumps(context, separators=(",", ":"))
    )
    return [dataclasses.replace(card, links=(*card.links, link)) for card in cards]
