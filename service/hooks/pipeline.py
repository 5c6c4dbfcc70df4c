"""One CDS Hooks call, stage by stage: validate → resolve prefetch → extract facts → evaluate
rules → render. Each stage is its own module; this file only sequences them. Data that could not
be had goes into the facts (``missing``): only when no rule can run is the call a 412."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from cards.evaluate import can_run, evaluate
from service.hooks.extract import build_facts
from service.hooks.prefetch import unavailable_error
from service.hooks.render import render_cards, with_smart_link
from service.hooks.validation import HookRequest, validate_request
from service.runtime import Runtime


def invoke(
    rt: Runtime,
    service_id: str,
    body: Any,
    *,
    issuer: str | None = None,
    app_url: str | None = None,
    checked_for: str | None = None,
) -> tuple[HookRequest, dict[str, Any], list[str]]:
    """Answer one service call; returns the request, the response body and the card kinds.
    ``issuer`` is the verified caller's ``iss`` (None when authentication is off); ``app_url`` the
    SMART app's launch URL the cards link to (None: no link); ``checked_for`` the hook whose
    schemas the body is known to satisfy (``service.hooks.decode``)."""
    service = rt.registry.get(service_id)
    request = validate_request(body, hook=service.hook, limits=rt.settings, checked_for=checked_for)
    data, missing = rt.resolver.resolve_partial(request, service.prefetch, issuer=issuer)
    today = rt.clock().date()
    facts = build_facts(request, data, rt.knowledge, today=today)
    if missing:
        # Rules needing missing data are skipped (a card says which); 412 only when none can run.
        reasons: dict[str, str] = {}
        for item in missing:
            reasons[item.key] = f"{reasons[item.key]}; {item.reason}" if item.key in reasons else item.reason
        facts = replace(facts, missing=reasons)
        if not can_run(facts):
            raise unavailable_error([m for m in missing if m.key not in rt.resolver.optional])
    cards = evaluate(facts, today, rt.knowledge)
    cards = with_smart_link(cards, app_url, facts)
    rendered = render_cards(cards, rt.new_uuid)
    return request, {"cards": rendered}, [c.kind for c in cards]
