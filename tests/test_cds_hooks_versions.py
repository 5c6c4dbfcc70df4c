"""What the service implements of CDS Hooks 3.0 (ballot and post-ballot text) beside 2.0.1, each
test naming the clause. The "Versions" section of docs/cds-hooks.md is the reader's view of this."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cardcheck import assert_valid_response
from conftest import counting_uuids

from cards.model import Card
from service.hooks.registry import CDS_HOOKS_VERSION, HOOK_VERSIONS
from service.hooks.render import TOPIC_SYSTEM, TOPICS, render_card

# The fields of a 2.0 discovery entry ("Discovery", CDS Service): a 2.0 client knows only these.
FIELDS_2_0 = {"hook", "id", "title", "description", "prefetch", "usageRequirements"}


@pytest.fixture
def client(make_app):
    return make_app().test_client()


def test_discovery_names_the_specification_and_hook_versions(client):
    """3.0 ballot, "Discovery": each CDS Service SHOULD give the specification ``version`` it
    implements (semver in the post-ballot text) and MAY give the ``hookVersion`` of the hook's
    definition in the Hooks Library (1.0 for order-select, order-sign and patient-view)."""
    services = client.get("/cds-services").get_json()["services"]
    assert {s["hook"]: (s["version"], s["hookVersion"]) for s in services} == {
        "order-select": ("2.0.1", "1.0"),
        "order-sign": ("2.0.1", "1.0"),
        "patient-view": ("2.0.1", "1.0"),
    }
    assert CDS_HOOKS_VERSION == "2.0.1" and set(HOOK_VERSIONS) == {s["hook"] for s in services}


def test_a_2_0_client_sees_the_same_entries_as_before(client):
    """2.0.1, "Discovery": a client reads hook, id, title, description, prefetch and
    usageRequirements; the public sandbox copies each entry as it is and reads only those, so the
    two 3.0 fields are the only additions and every 2.0 field keeps its form."""
    for service in client.get("/cds-services").get_json()["services"]:
        assert set(service) - FIELDS_2_0 == {"version", "hookVersion"}
        assert isinstance(service["hook"], str) and isinstance(service["id"], str)
        assert isinstance(service["description"], str) and isinstance(service["prefetch"], dict)
        assert all(isinstance(q, str) for q in service["prefetch"].values())


# -- long ids from real EHRs ----------------------------------------------------------------------


FIXTURE = Path(__file__).resolve().parents[1] / "fhir_fixtures" / "macrolide-clarithromycin"
# The shape of the MedicationRequest ids in the 3.0 text's own order-select example: ~190 characters
# of an EHR's opaque identifier, far past FHIR's 64.
LONG_ID = "eGHiT7s-" + "Ab3xY9qLm0-ZkT5wP2vR8sN4uJ6hC1dF7gK0bE3aQ.9" * 4 + "x"


def _with_draft_id(draft_id: str) -> dict:
    body = json.loads((FIXTURE / "requests" / "order-select.json").read_text())
    old = body["context"]["selections"][0].split("/", 1)[1]
    for entry in body["context"]["draftOrders"]["entry"]:
        if entry["resource"].get("id") == old:
            entry["resource"]["id"] = draft_id
    body["context"]["selections"] = [f"MedicationRequest/{draft_id}"]
    return body


def test_an_order_select_with_a_long_ehr_id_is_answered(client):
    """3.0 ballot, order-select example (and 2.0.1 "selections": Type/id of draftOrders entries):
    real EHR ids are longer than FHIR's 64-character id; a selection of one is answered, and a card
    deleting that draft names it whole in resourceId (checked by the response schema)."""
    assert len(LONG_ID) > 180
    response = client.post("/cds-services/tacrolimus-order-select", json=_with_draft_id(LONG_ID))
    assert response.status_code == 200, response.get_json()
    answer = response.get_json()
    assert_valid_response(answer)
    deletes = [
        a["resourceId"]
        for c in answer["cards"]
        for s in c.get("suggestions", ())
        for a in s["actions"]
        if a["type"] == "delete"
    ]
    assert deletes == [f"MedicationRequest/{LONG_ID}"]


@pytest.mark.parametrize("draft_id", ["a" * 1025, "has space", "tab\there"], ids=["over-1024", "space", "tab"])
def test_an_id_beyond_the_bound_or_with_whitespace_is_a_400(client, draft_id):
    response = client.post("/cds-services/tacrolimus-order-select", json=_with_draft_id(draft_id))
    assert response.status_code == 400
    assert response.get_json()["issue"][0]["location"] == ["$.context.selections[0]"]


def test_a_selection_with_a_slash_in_the_id_is_a_400(client):
    body = _with_draft_id(LONG_ID)
    body["context"]["selections"] = [f"MedicationRequest/{LONG_ID}/_history/1"]
    response = client.post("/cds-services/tacrolimus-order-select", json=body)
    assert response.status_code == 400


# -- source.topic ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, code",
    [
        ("eligibility", "eligibility"),
        ("dose", "dose"),
        ("timing", "timing"),
        ("baseline-labs", "baseline-labs"),
        ("trough", "trough"),
        ("safety:potassium", "safety"),
        ("safety:monitoring-due", "safety"),
        ("interaction:fluconazole", "interaction"),
        ("interaction:tacrolimus-release-switch", "interaction"),
        ("care:administration", "care"),
        ("data-quality", "data-quality"),
    ],
)
def test_every_card_kind_has_a_topic_from_our_own_system(kind, code):
    """2.0.1 "Source": topic is a Coding describing the card's subject, which EHRs and analytics
    use to group cards; ours come from our own code system, one code per card family."""
    card = Card(kind=kind, summary="s", indicator="info", detail="", source_label="tacro-cds")
    topic = render_card(card, counting_uuids())["source"]["topic"]
    assert topic == {"system": TOPIC_SYSTEM, "code": code, "display": TOPICS[code]}


def test_every_golden_card_carries_a_topic():
    """Every card the fixture scenarios produce has its family's topic (no kind left unmapped)."""
    cards = [
        card
        for path in sorted((FIXTURE.parent).glob("*/expected/*.response.json"))
        for card in json.loads(path.read_text())["cards"]
    ]
    assert cards
    assert all(c["source"]["topic"]["system"] == TOPIC_SYSTEM and c["source"]["topic"]["code"] in TOPICS for c in cards)


# -- override reasons in HL7's suggested codes ----------------------------------------------------

HL7_OVERRIDE = "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes"
# The codes of that system this service uses, with their displays as HL7 publishes them.
HL7_CODES = {
    "cds-not-applicable": "PC CDS does not apply to patient",
    "cds-suboptimal-context": "PC CDS delivered in suboptimal context",
    "recipient-disagrees-evidence": "Recipient disagrees with recommendation because of issues with the evidence",
    "indication-order-exists": "Patient has indication/order for intended action",
    "action-completed": "Recommended action was already completed",
}
OURS = "http://example.org/fhir/CodeSystem/tacro-cds-override"


def test_override_reasons_use_hl7_codes_where_they_match_and_ours_elsewhere():
    """3.0 ballot, "Override reasons": HL7 publishes suggested override reason codes (Non-Adherence
    Reason Codes); a service may offer them beside its own. Every card family offers some of
    HL7's (with HL7's display), keeps ours where none matches, and never offers one code twice."""
    reasons = [
        c
        for path in sorted(FIXTURE.parent.glob("*/expected/*.response.json"))
        for card in json.loads(path.read_text())["cards"]
        for c in [card.get("overrideReasons")]
        if c
    ]
    assert reasons
    for offered in reasons:
        keys = [(r["system"], r["code"]) for r in offered]
        assert len(keys) == len(set(keys))
        assert {r["system"] for r in offered} <= {HL7_OVERRIDE, OURS}
        for r in offered:
            if r["system"] == HL7_OVERRIDE:
                assert HL7_CODES[r["code"]] == r["display"]
    used = {(r["system"], r["code"]) for offered in reasons for r in offered}
    assert {(HL7_OVERRIDE, code) for code in HL7_CODES} <= used
    assert {
        (OURS, "clinical-judgement"),
        (OURS, "patient-declined"),
        (OURS, "interaction-benefit-outweighs-risk"),
    } <= used
