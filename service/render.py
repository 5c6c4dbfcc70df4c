"""Cards (``cards.model``) to CDS Hooks 2.0 JSON. Gives every card and suggestion a uuid and
leaves out every empty value, as the spec requires."""

from __future__ import annotations

from typing import Any, Callable, Iterable

from cards.model import Action, Card, Link, Suggestion


def _action(a: Action) -> dict[str, Any]:
    out: dict[str, Any] = {"type": a.type, "description": a.description}
    if a.resource is not None:
        out["resource"] = dict(a.resource)
    if a.resource_id is not None:
        out["resourceId"] = a.resource_id
    return out


def _suggestion(s: Suggestion, new_uuid: Callable[[], str]) -> dict[str, Any]:
    out: dict[str, Any] = {"label": s.label, "uuid": new_uuid(), "isRecommended": s.is_recommended,
                           "actions": [_action(a) for a in s.actions]}
    return out


def _link(link: Link) -> dict[str, Any]:
    out = {"label": link.label, "url": link.url, "type": link.type}
    if link.type == "smart" and link.app_context:
        out["appContext"] = link.app_context
    return out


def render_card(card: Card, new_uuid: Callable[[], str]) -> dict[str, Any]:
    out: dict[str, Any] = {"uuid": new_uuid(), "summary": card.summary, "indicator": card.indicator}
    if card.detail:
        out["detail"] = card.detail
    source: dict[str, Any] = {"label": card.source_label}
    if card.source_url:
        source["url"] = card.source_url
    out["source"] = source
    if card.suggestions:
        out["suggestions"] = [_suggestion(s, new_uuid) for s in card.suggestions]
        out["selectionBehavior"] = card.selection_behavior or "at-most-one"
    if card.override_reasons:
        out["overrideReasons"] = [{"system": c.system, "code": c.code, "display": c.display}
                                  for c in card.override_reasons]
    if card.links:
        out["links"] = [_link(link) for link in card.links]
    return out


def render_cards(cards: Iterable[Card], new_uuid: Callable[[], str]) -> list[dict[str, Any]]:
    return [render_card(card, new_uuid) for card in cards]
