"""Rendering cards as CDS Hooks JSON: uuids, no empty values, SMART links."""

import json

from conftest import counting_uuids

from cards.facts import MedicationFact, PatientFacts
from cards.model import Action, Card, Coding, Link, Suggestion
from service.hooks.render import render_cards, with_smart_link

CARD = Card(
    kind="dose",
    summary="Tacrolimus 2 mg/day recommended",
    indicator="warning",
    detail="",
    source_label="tacro-cds",
    suggestions=(
        Suggestion(
            label="Change dose",
            actions=(Action(type="delete", description="Remove draft", resource_id="MedicationRequest/m1"),),
        ),
    ),
    override_reasons=(Coding(system="urn:x", code="c", display="Clinical judgement"),),
)


def test_render_gives_uuids_and_leaves_out_empty_values():
    (out,) = render_cards([CARD], counting_uuids())
    assert out["uuid"] == "00000000-0000-4000-8000-000000000001"
    assert out["suggestions"][0]["uuid"] == "00000000-0000-4000-8000-000000000002"
    assert out["selectionBehavior"] == "at-most-one"
    assert "detail" not in out and "links" not in out and "url" not in out["source"]
    assert out["suggestions"][0]["actions"] == [
        {"type": "delete", "description": "Remove draft", "resourceId": "MedicationRequest/m1"}
    ]


def test_absolute_link_never_carries_app_context():
    card = Card(
        kind="k",
        summary="s",
        indicator="info",
        detail="d",
        source_label="l",
        links=(Link(label="Paper", url="https://doi.org/x", app_context="ignored"),),
    )
    (out,) = render_cards([card], counting_uuids())
    assert out["links"] == [{"label": "Paper", "url": "https://doi.org/x", "type": "absolute"}]


def test_smart_link_names_patient_and_selected_order():
    facts = PatientFacts(
        hook="order-select",
        patient_id="p1",
        medications=(
            MedicationFact(
                source="MedicationRequest/active",
                resource_type="MedicationRequest",
                status="active",
                display="tacrolimus",
                ingredients=("tacrolimus",),
                recognised_by="text",
                matched="tacrolimus",
            ),
            MedicationFact(
                source="MedicationRequest/draft",
                resource_type="MedicationRequest",
                status="draft",
                display="tacrolimus",
                ingredients=("tacrolimus",),
                recognised_by="text",
                matched="tacrolimus",
                is_draft=True,
                is_selected=True,
            ),
        ),
    )
    (card,) = with_smart_link([CARD], "https://app.example.org/launch", facts)
    (out,) = render_cards([card], counting_uuids())
    (link,) = out["links"]
    assert link["type"] == "smart" and link["url"] == "https://app.example.org/launch"
    assert json.loads(link["appContext"]) == {"patientId": "p1", "orderId": "MedicationRequest/draft"}


def test_no_smart_link_without_setting():
    assert with_smart_link([CARD], None, PatientFacts(hook="patient-view", patient_id="p1")) == [CARD]
