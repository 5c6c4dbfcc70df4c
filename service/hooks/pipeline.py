"""One CDS Hooks call, stage by stage: validate → resolve prefetch → extract facts → evaluate
rules → render. Each stage is its own module; this file only sequences them. Data that could not
be had goes into the facts (``missing``): only when no rule can run is the call a 412."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from cards.evaluate import can_run, evaluate
from cards.facts import PatientFacts
from cards.model import Card
from service.hooks.base import HookRequest
from service.hooks.extract import extract
from service.hooks.orders import Orders
from service.hooks.pilot import pilot_rows
from service.hooks.prefetch_values import MissingData, unavailable_error
from service.hooks.render import render_cards, with_smart_link
from service.hooks.validation import validate_request
from service.runtime import Runtime


@dataclass(frozen=True)
class Decision:
    """What the rules decided on one hook call, before rendering."""

    facts: PatientFacts
    cards: list[Card]
    orders: Orders  # the orders the facts were read from: the cards' suggested changes apply to them


def decide(
    rt: Runtime, service_id: str, body: Any, *, issuer: str | None = None, checked_for: str | None = None
) -> tuple[HookRequest, Decision]:
    """The decisions of one service call, before rendering: the request, the facts, cards and orders.
    ``issuer`` is the verified caller's ``iss`` (None when authentication is off); ``checked_for`` the
    hook whose schemas the body is known to satisfy (``service.hooks.decode``)."""
    service = rt.registry.get(service_id)
    request = validate_request(body, hook=service.hook, limits=rt.settings, checked_for=checked_for)
    data, missing = rt.resolver.resolve_partial(request, service.prefetch, issuer=issuer)
    decision = evaluate_hook(
        request, data, rt.knowledge, today=rt.today(), missing=missing, optional=rt.resolver.optional
    )
    return request, decision


def evaluate_hook(
    request: HookRequest,
    data: Mapping[str, list[dict[str, Any]]],
    knowledge: Mapping[str, Any],
    *,
    today: date,
    missing: Sequence[MissingData] = (),
    optional: Collection[str] = (),
) -> Decision:
    """The decision of one hook call on resources already had: extract the facts, then evaluate the
    rules. The one way a hook is run, by the CDS service and by the SMART app alike.
    ``missing`` names the prefetch keys that could not be had: rules needing them are skipped (a card
    says which), and a 412 is raised only when no rule can run (keys in ``optional`` never cause it)."""
    extracted = extract(request, data, knowledge, today=today)
    facts = extracted.facts
    if missing:
        reasons: dict[str, str] = {}
        partial: dict[str, str] = {}
        for item in missing:
            into = partial if item.partial else reasons
            into[item.key] = f"{into[item.key]}; {item.reason}" if item.key in into else item.reason
        facts = replace(facts, missing=reasons, incomplete=partial)
        if not can_run(facts):
            raise unavailable_error([m for m in missing if m.key not in optional and not m.partial])
    return Decision(facts, evaluate(facts, today, knowledge), extracted.orders)


def invoke(
    rt: Runtime,
    service_id: str,
    body: Any,
    *,
    issuer: str | None = None,
    app_url: str | None = None,
    tenant: str | None = None,
    fhir_user: str | None = None,
    checked_for: str | None = None,
) -> tuple[HookRequest, dict[str, Any], list[str]]:
    """Answer one service call; returns the request, the response body and the card kinds.
    ``issuer`` is the verified caller's ``iss`` (None when authentication is off), ``tenant`` and
    ``fhir_user`` its claims; ``app_url`` the SMART app's launch URL the cards link to (None: no link);
    ``checked_for`` as for ``decide``.
    In a pilot mode other than live the cards are recorded, and answered only to whom the mode shows
    them."""
    request, decision = decide(rt, service_id, body, issuer=issuer, checked_for=checked_for)
    facts = decision.facts
    cards = with_smart_link(decision.cards, app_url, facts)
    rendered = render_cards(cards, rt.new_uuid, decision.orders)
    mode = rt.pilot.mode(service_id, issuer)
    if mode == "live":
        return request, {"cards": rendered}, [c.kind for c in cards]
    shown = rt.pilot.shows(mode, (facts.user_id, fhir_user))
    if cards and rt.pilot_records is not None:
        rt.pilot_records.record(
            pilot_rows(
                service_id=service_id,
                hook=request.hook,
                mode=mode,
                shown=shown,
                cards=cards,
                rendered=rendered,
                facts=facts,
                issuer=issuer,
                tenant=tenant,
            )
        )
    if not shown:
        return request, {"cards": []}, []
    return request, {"cards": rendered}, [c.kind for c in cards]
