"""The data-quality cards, from FHIR to card: what could not be used is said once, readably, without
resource ids; an order the clinician is writing that cannot be identified is never silently passed."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from cards.evaluate import RULES, evaluate
from cards.knowledge import load_knowledge
from service.hooks.extract import build_facts
from service.hooks.templates import prefetch_templates
from service.hooks.validation import HookRequest

KB = load_knowledge()
TODAY = date(2026, 11, 25)
RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
TACRO = {"coding": [{"system": RX, "code": "198377"}]}


def order(oid: str, status: str = "draft", **fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": oid,
        "status": status,
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        **fields,
    }


def cards_for(
    hook: str,
    drafts: list[dict[str, Any]],
    selections: tuple[str, ...] = (),
    data: dict[str, list[dict[str, Any]]] | None = None,
):
    context: dict[str, Any] = {
        "patientId": "p1",
        "userId": "Practitioner/u1",
        "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": r} for r in drafts]},
    }
    if hook == "order-select":
        context["selections"] = list(selections)
    facts = build_facts(HookRequest(hook=hook, hook_instance="i", context=context), data or {}, KB, today=TODAY)
    return facts, evaluate(facts, TODAY, KB)


UNRESOLVABLE = order("d1", medicationReference={"reference": "#med-missing"})


@pytest.mark.parametrize(
    "hook, drafts, selections",
    [
        ("order-select", [UNRESOLVABLE], ("MedicationRequest/d1",)),
        ("order-sign", [UNRESOLVABLE], ()),
        (
            "order-select",
            [order("d1", medicationReference={"reference": "Medication/nowhere"})],
            ("MedicationRequest/d1",),
        ),
    ],
    ids=["selected-contained-reference-missing", "signing", "reference-not-in-the-data"],
)
def test_an_order_in_focus_that_cannot_be_identified_gets_a_warning(hook, drafts, selections):
    _, cards = cards_for(hook, drafts, selections)
    [card] = [c for c in cards if c.kind == "data-quality:order"]
    assert card.indicator == "warning"
    assert card.summary == "The order could not be checked: medication not identified"
    assert "could not be resolved" in card.detail
    assert "MedicationRequest/d1" not in card.detail


def test_an_unidentified_order_not_selected_gets_no_order_card():
    _, cards = cards_for(
        "order-select", [UNRESOLVABLE, order("d2", medicationCodeableConcept=TACRO)], ("MedicationRequest/d2",)
    )
    assert not [c for c in cards if c.kind == "data-quality:order"]


@pytest.mark.parametrize(
    "blank",
    [
        order("new"),
        order("new", medicationCodeableConcept={}),
        order("new", medicationCodeableConcept={"coding": []}),
    ],
    ids=["no-medication", "empty-concept", "empty-coding"],
)
def test_the_blank_draft_of_an_order_form_is_normal_input(blank):
    facts, cards = cards_for("order-select", [blank], ("MedicationRequest/new",))
    assert facts.unusable == () and facts.medications == ()
    assert cards == []


def test_implausible_results_are_listed_readably_on_the_data_quality_card():
    ratio = {
        "resourceType": "Observation",
        "id": "r",
        "status": "final",
        "code": {"coding": [{"system": "http://example.org/fhir/CodeSystem/tacro-cds", "code": "th1-th2-ratio"}]},
        "effectiveDateTime": "2026-11-01",
        "valueQuantity": {"value": 124},
    }
    active = order("a", status="active", medicationCodeableConcept=TACRO)
    _, cards = cards_for("order-sign", [], data={"immunology": [ratio], "medicationRequests": [active]})
    [card] = [c for c in cards if c.kind == "data-quality"]
    assert card.summary == "A record could not be used: see details"
    assert "- Th1/Th2 ratio of 2026-11-01: 124 is not a plausible result (expected 0.1 to 100); not used" in card.detail
    assert "Observation/r" not in card.detail


def test_every_key_a_rule_needs_is_a_prefetch_key():
    keys = set(prefetch_templates(KB)) | {"medications"}
    assert {k for spec in RULES for k in spec.needs} <= keys


def test_a_selected_order_coded_only_in_an_unknown_code_gets_the_order_card():
    ndc = order(
        "d1", medicationCodeableConcept={"coding": [{"system": "http://hl7.org/fhir/sid/ndc", "code": "0000-1111"}]}
    )
    _, cards = cards_for("order-select", [ndc], ("MedicationRequest/d1",))
    [card] = [c for c in cards if c.kind == "data-quality:order"]
    assert "only as a code this service does not know (ndc 0000-1111)" in card.detail


def test_a_selected_order_with_a_name_this_service_does_not_list_is_not_flagged():
    named = order("d1", medicationCodeableConcept={"text": "paracetamol 500 mg tablet"})
    _, cards = cards_for("order-select", [named], ("MedicationRequest/d1",))
    assert cards == []
