"""``cards.evaluate.evaluate`` skips its per-check bookkeeping (which checks lack data, which cards
those checks made, which were partly read) when no prefetch key is missing or incomplete. Every
fixture request and the bench's bodies, as they come and with keys missing or incomplete, must give
the same cards as the bookkeeping done in full."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from bench.bodies import build_body
from cards.evaluate import RULES, _kept, _lacking, evaluate, skipped
from cards.facts import PatientFacts
from cards.knowledge import load_knowledge
from cards.model import SEVERITY, Card
from cards.rules.data_quality import evaluate_data_quality, evaluate_missing_data
from cards.vocab import CHEMISTRY, IMMUNIZATIONS, TACROLIMUS_LEVELS
from fhir_fixtures import scenario_clock
from service.config import default_settings
from service.hooks.extract import extract
from service.hooks.prefetch import resources_of
from service.hooks.validation import validate_request

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_REQUESTS = sorted(ROOT.glob("fhir_fixtures/*/requests/*.json"))
KNOWLEDGE = load_knowledge()
LIMITS = default_settings()


def every_check(facts: PatientFacts, today: date, knowledge: Any) -> list[Card]:
    """``evaluate`` with every check's bookkeeping done, whatever is missing."""
    cards: list[Card] = []
    for spec in RULES:
        if all(_lacking(facts, check) for check in spec.checks):
            continue
        cards.extend(card for card in spec.rule(facts, today, knowledge) if _kept(spec, card, facts))
    partly = [
        (check.name, keys)
        for spec in RULES
        for check in spec.checks
        if (keys := [key for key in facts.incomplete if key in check.needs])
    ]
    cards.extend(evaluate_data_quality(facts, today, knowledge))
    cards.extend(
        evaluate_missing_data(facts, [(check.name, keys) for check, keys in skipped(facts)], knowledge, partial=partly)
    )
    return sorted(cards, key=lambda c: SEVERITY[c.indicator])


def facts_of(body: dict[str, Any], today: date) -> PatientFacts:
    request = validate_request(body, hook=body["hook"], limits=LIMITS)
    data = {key: resources_of(value) for key, value in (body.get("prefetch") or {}).items()}
    return extract(request, data, KNOWLEDGE, today=today).facts


def variants(facts: PatientFacts) -> list[PatientFacts]:
    return [
        facts,
        replace(facts, missing={CHEMISTRY: "the server answered 500"}),
        replace(facts, missing={TACROLIMUS_LEVELS: "timed out", IMMUNIZATIONS: "refused"}),
        replace(facts, incomplete={CHEMISTRY: "a next page could not be had"}),
    ]


@pytest.mark.parametrize("path", FIXTURE_REQUESTS, ids=lambda p: f"{p.parent.parent.name}/{p.stem}")
def test_every_fixture_request_gives_the_cards_of_the_full_bookkeeping(path: Path) -> None:
    body = json.loads(path.read_text(encoding="utf-8"))
    today = scenario_clock(path.parent.parent.name).date()
    for facts in variants(facts_of(body, today)):
        # Each evaluation on facts of its own: the rules keep what they derive on the facts.
        assert evaluate(replace(facts), today, KNOWLEDGE) == every_check(replace(facts), today, KNOWLEDGE)


@pytest.mark.parametrize("name", ["order-select", "order-select-cards"])
def test_the_bench_bodies_give_the_cards_of_the_full_bookkeeping(name: str) -> None:
    body = build_body(name)
    document = json.loads(body.payload)
    today = LIMITS.site_today(datetime.now(UTC))  # the bodies are dated from now, as the service reads them
    for facts in variants(facts_of(document, today)):
        assert evaluate(replace(facts), today, KNOWLEDGE) == every_check(replace(facts), today, KNOWLEDGE)
