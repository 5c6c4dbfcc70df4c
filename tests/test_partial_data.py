"""One missing prefetch key never silences everything (through the HTTP API): the rules whose data
are complete still run, the rules needing the missing data are skipped and one card says which checks
were not made and why; the call is 412 only when no rule can run."""

from __future__ import annotations

from typing import Any

import pytest

from cards.knowledge import load_knowledge
from service.hooks.templates import prefetch_templates

SERVICE = "/cds-services/tacrolimus-patient-view"
PATIENT = "pt-1"
LOCAL = "http://example.org/fhir/CodeSystem/tacro-cds"
TEMPLATES = prefetch_templates(load_knowledge())


def bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r} for r in resources],
    }


TROUGH = {
    "resourceType": "Observation",
    "id": "lvl",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "77348-1"}]},
    "effectiveDateTime": "2026-11-24T07:30:00Z",
    "valueQuantity": {"value": 21.5, "unit": "ng/mL", "system": "http://unitsofmeasure.org", "code": "ng/mL"},
}
ORDER = {
    "resourceType": "MedicationRequest",
    "id": "tac",
    "status": "active",
    "intent": "order",
    "subject": {"reference": f"Patient/{PATIENT}"},
    "authoredOn": "2026-11-05",
    "medicationCodeableConcept": {
        "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "198377"}]
    },
    "dosageInstruction": [
        {
            "timing": {
                "repeat": {"frequency": 2, "period": 1, "periodUnit": "d", "boundsPeriod": {"start": "2026-11-05"}}
            },
            "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "mg"}}],
        }
    ],
}
RIF = {
    "resourceType": "Condition",
    "id": "rif",
    "subject": {"reference": f"Patient/{PATIENT}"},
    "clinicalStatus": {"coding": [{"code": "active"}]},
    "code": {"coding": [{"system": LOCAL, "code": "recurrent-implantation-failure"}]},
}


def full_prefetch() -> dict[str, Any]:
    prefetch: dict[str, Any] = {key: bundle() for key in TEMPLATES}
    prefetch["patient"] = {"resourceType": "Patient", "id": PATIENT, "gender": "female", "birthDate": "1990-04-02"}
    prefetch["tacrolimusLevels"] = bundle(TROUGH)
    prefetch["medicationRequests"] = bundle(ORDER)
    prefetch["conditions"] = bundle(RIF)
    return prefetch


def call(client, prefetch: dict[str, Any]):
    body = {
        "hook": "patient-view",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {"userId": "Practitioner/doc-1", "patientId": PATIENT},
        "prefetch": prefetch,
    }
    return client.post(SERVICE, json=body)


def without(*keys: str) -> dict[str, Any]:
    prefetch = full_prefetch()
    for key in keys:
        del prefetch[key]
    return prefetch


def missing_card(cards: list[dict[str, Any]]) -> dict[str, Any] | None:
    found = [c for c in cards if "data not available" in c["summary"]]
    assert len(found) <= 1
    return found[0] if found else None


@pytest.mark.parametrize(
    "dropped, skipped_check, named",
    [
        (("transferAppointments",), "Timing around the embryo transfer", "Embryo transfer appointments"),
        (("immunology",), "Dose", "Th1/Th2 and NK cell results"),
        (("chemistry",), "Potassium", "Kidney, potassium, glucose and liver results"),
    ],
    ids=["no-transfer-appointments", "no-immunology", "no-chemistry"],
)
def test_a_critical_trough_is_still_reported_when_another_key_is_missing(make_app, dropped, skipped_check, named):
    response = call(make_app().test_client(), without(*dropped))
    assert response.status_code == 200, response.text
    cards = response.json["cards"]
    trough = [c for c in cards if c["indicator"] == "critical" and "21.5" in c["summary"] + c["detail"]]
    assert trough, [c["summary"] for c in cards]
    card = missing_card(cards)
    assert card is not None and card["indicator"] == "warning"
    assert f"- {skipped_check}:" in card["detail"]
    assert f"- {named}: not prefetched, and no fhirServer was given to fetch it from" in card["detail"]
    assert PATIENT not in card["detail"]


def test_nothing_missing_means_no_missing_data_card(make_app):
    response = call(make_app().test_client(), full_prefetch())
    assert response.status_code == 200
    assert missing_card(response.json["cards"]) is None


def test_a_missing_patient_skips_no_check(make_app):
    response = call(make_app().test_client(), without("patient"))
    assert response.status_code == 200
    assert missing_card(response.json["cards"]) is None


def test_no_rule_can_run_is_412_naming_every_required_key(make_app):
    response = call(make_app(LOG_LEVEL="ERROR").test_client(), {})
    assert response.status_code == 412
    named = {i["location"][0].removeprefix("$.prefetch.") for i in response.json["issue"][1:]}
    assert named == set(TEMPLATES) - {"patient"}
