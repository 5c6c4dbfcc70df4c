"""The response checker itself: it passes good responses and catches each card rule broken."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tests.cardcheck import assert_valid_response, response_violations

MEDICATION_REQUEST = {
    "resourceType": "MedicationRequest",
    "id": "draft-1",
    "status": "draft",
    "intent": "order",
    "medicationCodeableConcept": {
        "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "42316", "display": "tacrolimus"}]
    },
    "subject": {"reference": "Patient/p1"},
}

SERVICE_REQUEST = {
    "resourceType": "ServiceRequest",
    "status": "draft",
    "intent": "order",
    "code": {"text": "Tacrolimus trough level"},
    "subject": {"reference": "Patient/p1"},
}


def full_response() -> dict[str, Any]:
    """A response using every part of a card the spec defines."""
    return {
        "cards": [
            {
                "uuid": "00000000-0000-4000-8000-000000000001",
                "summary": "Tacrolimus trough level due before embryo transfer",
                "indicator": "warning",
                "detail": "Order a **trough level** 12 h after the evening dose.",
                "source": {"label": "Tacrolimus RIF protocol", "url": "https://example.org/protocol"},
                "suggestions": [
                    {
                        "label": "Order a trough level",
                        "uuid": "00000000-0000-4000-8000-000000000002",
                        "isRecommended": True,
                        "actions": [
                            {"type": "create", "description": "Order the level", "resource": SERVICE_REQUEST},
                            {"type": "update", "description": "Keep the dose", "resource": MEDICATION_REQUEST},
                            {
                                "type": "delete",
                                "description": "Drop the duplicate order",
                                "resourceId": "MedicationRequest/draft-2",
                            },
                        ],
                    }
                ],
                "selectionBehavior": "at-most-one",
                "overrideReasons": [
                    {
                        "system": "http://example.org/reasons",
                        "code": "done-elsewhere",
                        "display": "Level already drawn elsewhere",
                    }
                ],
                "links": [
                    {"label": "Protocol", "url": "https://example.org/protocol", "type": "absolute"},
                    {
                        "label": "Dose planner",
                        "url": "https://app.example.org/launch",
                        "type": "smart",
                        "appContext": "patient=p1",
                    },
                ],
            }
        ],
    }


GOOD = {
    "no-cards": {"cards": []},
    "minimal-card": {
        "cards": [
            {
                "uuid": "00000000-0000-4000-8000-000000000001",
                "summary": "s",
                "indicator": "info",
                "source": {"label": "l"},
            }
        ]
    },
    "every-card-part": full_response(),
    "system-action": {
        "cards": [],
        "systemActions": [{"type": "update", "description": "Record the plan", "resource": MEDICATION_REQUEST}],
    },
    "summary-139-chars": {
        "cards": [
            {
                "uuid": "00000000-0000-4000-8000-000000000001",
                "summary": "x" * 139,
                "indicator": "critical",
                "source": {"label": "l"},
            }
        ]
    },
}


@pytest.mark.parametrize("body", GOOD.values(), ids=GOOD.keys())
def test_good_responses_pass(body):
    assert response_violations(body) == []
    assert_valid_response(body)


def _card(r: dict[str, Any]) -> dict[str, Any]:
    card: dict[str, Any] = r["cards"][0]
    return card


def _action(r: dict[str, Any], i: int) -> dict[str, Any]:
    action: dict[str, Any] = _card(r)["suggestions"][0]["actions"][i]
    return action


# (id, change to the full response, text the violation must contain)
BAD: list[tuple[str, Callable[[dict[str, Any]], Any], str]] = [
    ("cards-missing", lambda r: r.pop("cards"), "'cards' is a required property"),
    ("cards-null", lambda r: r.update(cards=None), "None is not of type 'array'"),
    ("summary-140-chars", lambda r: _card(r).update(summary="x" * 140), "$.cards[0].summary"),
    ("summary-missing", lambda r: _card(r).pop("summary"), "'summary' is a required property"),
    ("indicator-unknown", lambda r: _card(r).update(indicator="hard-stop"), "$.cards[0].indicator"),
    ("indicator-missing", lambda r: _card(r).pop("indicator"), "'indicator' is a required"),
    ("source-label-missing", lambda r: _card(r)["source"].pop("label"), "'label' is a required"),
    ("source-missing", lambda r: _card(r).pop("source"), "'source' is a required"),
    ("card-uuid-missing", lambda r: _card(r).pop("uuid"), "'uuid' is a required"),
    # 3.0 ballot, CDSHooksResponse logical model: card and suggestion uuid are of type uuid (2.0.1
    # "Card Attributes" says string only); feedback names the card by it.
    ("card-uuid-not-a-uuid", lambda r: _card(r).update(uuid="card-1"), "$.cards[0].uuid"),
    (
        "suggestion-uuid-not-a-uuid",
        lambda r: _card(r)["suggestions"][0].update(uuid="s1"),
        "$.cards[0].suggestions[0].uuid",
    ),
    (
        "suggestion-uuid-missing",
        lambda r: _card(r)["suggestions"][0].pop("uuid"),
        "$.cards[0].suggestions[0]: 'uuid' is a required",
    ),
    ("uuid-reused", lambda r: _card(r)["suggestions"][0].update(uuid=_card(r)["uuid"]), "already used at $.cards[0]"),
    ("selection-behavior-missing", lambda r: _card(r).pop("selectionBehavior"), "'selectionBehavior' is a dependency"),
    ("selection-behavior-unknown", lambda r: _card(r).update(selectionBehavior="all"), "$.cards[0].selectionBehavior"),
    (
        "override-reason-without-display",
        lambda r: _card(r)["overrideReasons"][0].pop("display"),
        "$.cards[0].overrideReasons[0]: 'display' is a required",
    ),
    (
        "action-type-unknown",
        lambda r: _action(r, 0).update(type="replace"),
        "$.cards[0].suggestions[0].actions[0].type",
    ),
    ("action-description-missing", lambda r: _action(r, 0).pop("description"), "'description' is a required"),
    ("create-without-resource", lambda r: _action(r, 0).pop("resource"), "'resource' is a required"),
    ("update-without-resource", lambda r: _action(r, 1).pop("resource"), "'resource' is a required"),
    ("delete-without-resource-id", lambda r: _action(r, 2).pop("resourceId"), "'resourceId' is a required"),
    (
        "delete-resource-id-not-type-slash-id",
        lambda r: _action(r, 2).update(resourceId="draft-2"),
        "$.cards[0].suggestions[0].actions[2].resourceId",
    ),
    (
        "create-resource-not-fhir",
        lambda r: _action(r, 0).update(resource={"resourceType": "Prescription"}),
        "'Prescription' is not a FHIR R4B resource type",
    ),
    (
        "update-resource-invalid-fhir",
        lambda r: _action(r, 1).update(resource={**MEDICATION_REQUEST, "status": 7, "subject": None}),
        "not a valid MedicationRequest",
    ),
    (
        "update-resource-missing-required",
        lambda r: _action(r, 1)["resource"].pop("subject"),
        "not a valid MedicationRequest: subject",
    ),
    ("app-context-on-absolute-link", lambda r: _card(r)["links"][0].update(appContext="x=1"), "$.cards[0].links[0]"),
    ("link-without-type", lambda r: _card(r)["links"][0].pop("type"), "'type' is a required"),
    ("link-without-url", lambda r: _card(r)["links"][0].pop("url"), "'url' is a required"),
    ("link-without-label", lambda r: _card(r)["links"][1].pop("label"), "'label' is a required"),
    ("link-type-unknown", lambda r: _card(r)["links"][0].update(type="relative"), "$.cards[0].links[0].type"),
    ("link-url-not-absolute", lambda r: _card(r)["links"][0].update(url="protocol.html"), "$.cards[0].links[0].url"),
    ("null-detail", lambda r: _card(r).update(detail=None), "$.cards[0].detail: null"),
    ("empty-detail", lambda r: _card(r).update(detail=""), "$.cards[0].detail: empty str"),
    ("empty-suggestions", lambda r: _card(r).update(suggestions=[]), "$.cards[0].suggestions: empty list"),
    ("empty-links", lambda r: _card(r).update(links=[]), "$.cards[0].links: empty list"),
    ("empty-source-url", lambda r: _card(r)["source"].update(url=""), "$.cards[0].source.url: empty"),
    (
        "empty-object-in-resource",
        lambda r: _action(r, 0)["resource"].update(code={}),
        "$.cards[0].suggestions[0].actions[0].resource.code: empty dict",
    ),
    (
        "null-deep-in-resource",
        lambda r: _action(r, 1)["resource"]["subject"].update(display=None),
        "resource.subject.display: null",
    ),
    ("empty-system-actions", lambda r: r.update(systemActions=[]), "$.systemActions: empty list"),
    (
        "unknown-card-field",
        lambda r: _card(r).update(selectionbehaviour="any"),
        "Additional properties are not allowed",
    ),
    (
        "system-action-without-resource",
        lambda r: r.update(systemActions=[{"type": "create", "description": "d"}]),
        "$.systemActions[0]: 'resource' is a required",
    ),
]


@pytest.mark.parametrize("change, expected", [(c, e) for _, c, e in BAD], ids=[i for i, _, _ in BAD])
def test_each_broken_rule_is_caught(change, expected):
    body = copy.deepcopy(full_response())
    change(body)
    problems = response_violations(body)
    assert any(expected in p for p in problems), problems
    with pytest.raises(AssertionError, match="invalid CDS Hooks response"):
        assert_valid_response(body)


@pytest.mark.parametrize("body", [None, [], "cards", 42], ids=["null", "array", "string", "number"])
def test_a_body_that_is_not_an_object_is_caught(body):
    assert response_violations(body) != []
