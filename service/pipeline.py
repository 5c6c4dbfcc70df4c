"""One CDS Hooks call, stage by stage: validate → resolve prefetch → extract facts → evaluate
rules → render. Each stage is its own module; this file only sequences them."""

from __future__ import annotations

from typing import Any

from cards.evaluate import evaluate

from .extract import build_facts
from .render import render_cards, with_smart_link
from .runtime import Runtime
from .smart_app import launch_url
from .validation import HookRequest, validate_request


def invoke(rt: Runtime, service_id: str, body: Any, *,
           issuer: str | None = None) -> tuple[HookRequest, dict[str, Any], list[str]]:
    """Answer one service call; returns the request, the response body and the card kinds.
    ``issuer`` is the verified caller's ``iss`` (None when authentication is off)."""
    service = rt.registry.get(service_id)
    request = validate_request(body, hook=service.hook, limits=rt.config)
    data = rt.resolver.resolve(request, service.prefetch, issuer=issuer)
    today = rt.clock().date()
    facts = build_facts(request, data, rt.knowledge, today=today)
    cards = evaluate(facts, today, rt.knowledge)
    cards = with_smart_link(cards, launch_url(rt.config), facts)
    rendered = render_cards(cards, rt.new_uuid)
    return request, {"cards": rendered}, [c.kind for c in cards]
