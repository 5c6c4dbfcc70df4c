"""Suggested resources are valid FHIR R4 even when the draft arrived in a lenient shape."""

from fhir.resources.R4B.medicationrequest import MedicationRequest

from cards.facts import MedicationFact
from cards.orders import with_daily_dose, with_timing

SANDBOX_DRAFT = {
    "resourceType": "MedicationRequest", "id": "d1", "status": "draft", "intent": "order",
    "subject": {"reference": "Patient/p1"},
    "category": {"coding": [{"code": "outpatient"}]},
    "medicationCodeableConcept": {"text": "tacrolimus 1 mg capsule"},
    "dosageInstruction": [{"doseAndRate": {"doseQuantity": {"value": 2, "unit": "{pill}"}},
                           "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}}}],
}


def fact(resource):
    return MedicationFact(source="MedicationRequest/d1", resource_type="MedicationRequest", status="draft",
                          display="tacrolimus 1 mg capsule", ingredients=("tacrolimus",),
                          recognised_by="text", matched="tacrolimus", strength_mg=1.0, daily_dose_mg=2.0,
                          doses_per_day=1.0, is_draft=True, resource=resource)


def test_dose_update_of_a_sandbox_draft_is_valid_fhir_with_only_the_dose_changed():
    updated = with_daily_dose(fact(SANDBOX_DRAFT), 1.0)
    MedicationRequest.model_validate(updated)
    assert updated["dosageInstruction"][0]["doseAndRate"] == [{"doseQuantity": {"value": 1, "unit": "{pill}"}}]
    assert updated["category"] == [SANDBOX_DRAFT["category"]]
    assert {k: v for k, v in updated.items() if k not in ("dosageInstruction", "category")} == \
        {k: v for k, v in SANDBOX_DRAFT.items() if k not in ("dosageInstruction", "category")}
    assert isinstance(SANDBOX_DRAFT["dosageInstruction"][0]["doseAndRate"], dict)  # input untouched


def test_timing_update_of_a_sandbox_draft_is_valid_fhir():
    updated = with_timing(fact(SANDBOX_DRAFT), "2026-12-02", "2026-12-17")
    MedicationRequest.model_validate(updated)
    assert updated["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] == {
        "start": "2026-12-02", "end": "2026-12-17"}


def test_dosage_instruction_that_is_not_a_list_gives_no_suggestion_and_no_error():
    broken = dict(SANDBOX_DRAFT, dosageInstruction=5)
    assert with_daily_dose(fact(broken), 1.0) is None
    assert with_timing(fact(broken), "2026-12-02", None) is None
