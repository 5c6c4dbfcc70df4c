"""Suggested resources are valid FHIR R4 even when the draft arrived in a lenient shape."""

from dataclasses import replace

import pytest
from fhir.resources.R4B.medicationrequest import MedicationRequest
from rules_support import order_fields, order_of, resource_of

from cards import orders
from cards.facts import MedicationFact
from cards.knowledge import load_knowledge
from cards.knowledge_model import typed
from cards.orders import dose_change, per_dose_step_below
from service.hooks.base import HookRequest
from service.hooks.extract import extract

SANDBOX_DRAFT = {
    "resourceType": "MedicationRequest",
    "id": "d1",
    "status": "draft",
    "intent": "order",
    "subject": {"reference": "Patient/p1"},
    "category": {"coding": [{"code": "outpatient"}]},
    "medicationCodeableConcept": {"text": "tacrolimus 1 mg capsule"},
    "dosageInstruction": [
        {
            "doseAndRate": {"doseQuantity": {"value": 2, "unit": "{pill}"}},
            "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
        }
    ],
}


def with_daily_dose(med, daily_mg, **kwargs):
    """The order at ``daily_mg`` a day as the render step writes it; None when none can be written."""
    change = orders.with_daily_dose(med, daily_mg, **kwargs)
    return None if change is None else resource_of(change)


def with_timing(med, start, end):
    """The order with new dates as the render step writes it; None when none can be written."""
    change = orders.with_timing(med, start, end)
    return None if change is None else resource_of(change)


def fact(resource):
    return MedicationFact(
        source="MedicationRequest/d1",
        resource_type="MedicationRequest",
        status="draft",
        display="tacrolimus 1 mg capsule",
        ingredients=("tacrolimus",),
        recognised_by="text",
        matched="tacrolimus",
        strength_mg=1.0,
        daily_dose_mg=2.0,
        doses_per_day=1.0,
        is_draft=True,
        **order_fields(resource),
    )


def test_dose_update_of_a_sandbox_draft_is_valid_fhir_with_only_the_dose_changed():
    updated = with_daily_dose(fact(SANDBOX_DRAFT), 1.0)
    MedicationRequest.model_validate(updated)
    assert updated["dosageInstruction"][0]["doseAndRate"] == [{"doseQuantity": {"value": 1, "unit": "{pill}"}}]
    assert updated["category"] == [SANDBOX_DRAFT["category"]]
    assert updated["dosageInstruction"][0]["text"] == "1 capsule (1 mg) by mouth once daily (1 mg/day)"
    assert {k: v for k, v in updated.items() if k not in ("dosageInstruction", "category")} == {
        k: v for k, v in SANDBOX_DRAFT.items() if k not in ("dosageInstruction", "category")
    }
    assert isinstance(SANDBOX_DRAFT["dosageInstruction"][0]["doseAndRate"], dict)  # input untouched


def test_timing_update_of_a_sandbox_draft_is_valid_fhir():
    updated = with_timing(fact(SANDBOX_DRAFT), "2026-12-02", "2026-12-17")
    MedicationRequest.model_validate(updated)
    assert updated["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] == {
        "start": "2026-12-02",
        "end": "2026-12-17",
    }


def test_dosage_instruction_that_is_not_a_list_gives_no_suggestion_and_no_error():
    broken = dict(SANDBOX_DRAFT, dosageInstruction=5)
    assert with_daily_dose(fact(broken), 1.0) is None
    assert with_timing(fact(broken), "2026-12-02", None) is None


MG_ORDER = {
    "resourceType": "MedicationRequest",
    "id": "a1",
    "status": "active",
    "intent": "order",
    "subject": {"reference": "Patient/p1"},
    "authoredOn": "2026-11-01",
    "medicationCodeableConcept": {"text": "tacrolimus 1 mg capsule"},
    "dosageInstruction": [
        {
            "text": "3 mg once daily after dinner",
            "patientInstruction": "Take 3 mg after dinner",
            "doseAndRate": [{"doseQuantity": {"value": 1.5, "unit": "mg", "code": "mg"}}],
            "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
        }
    ],
}


def mg_fact(status="active"):
    return MedicationFact(
        source="MedicationRequest/a1",
        resource_type="MedicationRequest",
        status=status,
        display="tacrolimus 1 mg capsule",
        ingredients=("tacrolimus",),
        recognised_by="text",
        matched="tacrolimus",
        strength_mg=1.0,
        daily_dose_mg=3.0,
        doses_per_day=2.0,
        is_draft=status == "draft",
        **order_fields(dict(MG_ORDER, status=status)),
    )


PRODUCTS = tuple(typed(load_knowledge()).codes.products)


@pytest.mark.parametrize(
    "daily,per_dose,product,sig",
    [
        (2, 1, "198377", "1 capsule (1 mg) by mouth twice daily (2 mg/day)"),
        (1, 0.5, "313190", "1 capsule (0.5 mg) by mouth twice daily (1 mg/day)"),
        (3, 1.5, "313190", "3 capsules of 0.5 mg (1.5 mg) by mouth twice daily (3 mg/day)"),
    ],
    ids=["1 mg per dose of the 1 mg capsule", "0.5 mg per dose: the 0.5 mg capsule", "1.5 mg: three 0.5 mg capsules"],
)
def test_a_new_dose_rewrites_the_sig_text_so_the_order_carries_one_dose(daily, per_dose, product, sig):
    med = replace(mg_fact("draft"), recognised_by="rxnorm-product", matched="RxNorm 198377")
    updated = with_daily_dose(med, daily, products=PRODUCTS)
    dosage = updated["dosageInstruction"][0]
    assert dosage["doseAndRate"][0]["doseQuantity"]["value"] == per_dose
    codes = updated["medicationCodeableConcept"].get("coding") or [{"code": "198377"}]
    assert codes[0]["code"] == product
    assert dosage["text"] == sig
    assert dosage["patientInstruction"] == "Take " + dosage["text"]


def test_a_dose_the_product_cannot_give_is_not_written_when_no_product_can():
    """A 1 mg capsule known only by its name: 0.5 mg per dose cannot be given, nothing is suggested."""
    assert with_daily_dose(mg_fact("draft"), 1, products=PRODUCTS) is None


@pytest.mark.parametrize("daily", [0.5, 1.5, 2.5, 0.75])
def test_no_per_dose_amount_below_or_between_half_milligram_capsule_steps(daily):
    """Twice daily: 0.25, 0.75, 1.25 or 0.375 mg per dose are no capsule: nothing is suggested."""
    assert with_daily_dose(mg_fact("draft"), daily) is None


@pytest.mark.parametrize("daily,doses,expected", [(3, 2, 1.5), (1.5, 2, 0.5), (0.75, 2, 0), (2, 3, 0.5)])
def test_per_dose_step_below(daily, doses, expected):
    assert per_dose_step_below(daily, doses) == expected


def test_a_draft_is_updated():
    action = dose_change(mg_fact("draft"), 2, "Set the dose to 2 mg/day")
    assert action is not None and action.type == "update" and resource_of(action)["id"] == "a1"


def test_an_active_order_gets_a_new_draft_replacing_it_instead_of_an_update():
    """Many EHRs accept updates only to draft orders."""
    action = dose_change(mg_fact("active"), 2, "Set the dose to 2 mg/day")
    assert action is not None and action.type == "create"
    resource = resource_of(action)
    assert resource["status"] == "draft" and "id" not in resource and "authoredOn" not in resource
    assert resource["priorPrescription"] == {"reference": "MedicationRequest/a1"}
    assert resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 1
    MedicationRequest.model_validate(dict(resource))


def test_unchanged_input():
    med = mg_fact("active")
    before = repr(order_of(med))
    dose_change(replace(med), 2, "x")
    assert repr(order_of(med)) == before


@pytest.mark.parametrize(
    "unit,sig,expected",
    [
        pytest.param(
            "{tablet}",
            "2 tablets once daily after dinner",
            "1 tablet (1 mg) by mouth once daily after dinner (1 mg/day)",
            id="tablets stay tablets and after dinner stays",
        ),
        pytest.param(
            "{capsule}",
            "2 mg at bedtime",
            "1 capsule (1 mg) by mouth once daily at bedtime (1 mg/day)",
            id="capsules, at bedtime kept",
        ),
    ],
)
def test_a_rewritten_sig_names_the_form_and_keeps_the_timing_words(unit, sig, expected):
    resource = {
        "resourceType": "MedicationRequest",
        "id": "t1",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {"text": "tacrolimus 1 mg"},
        "dosageInstruction": [
            {
                "text": sig,
                "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": 2, "unit": unit.strip("{}"), "code": unit}}],
            }
        ],
    }
    med = replace(fact(resource), doses_per_day=1.0, daily_dose_mg=2.0)
    updated = with_daily_dose(med, 1)
    assert updated["dosageInstruction"][0]["text"] == expected


def test_a_change_is_applied_to_its_own_order_when_orders_share_a_source():
    """Orders without an id share a source ("MedicationRequest/(no id)"): extraction keys each one, and
    the render step applies a change to the order its fact was read from."""
    request = HookRequest(hook="patient-view", hook_instance="i", context={"patientId": "p1", "userId": "u"})
    first, second = (
        {k: v for k, v in dict(MG_ORDER, status="active", note=[{"text": note}]).items() if k != "id"}
        for note in ("first", "second")
    )
    extracted = extract(request, {"medications": [first, second]}, load_knowledge())
    meds = extracted.facts.medications
    assert [m.source for m in meds] == ["MedicationRequest/(no id)"] * 2
    assert len({m.key for m in meds}) == 2
    for med, note in zip(meds, ("first", "second"), strict=True):
        updated = resource_of(orders.with_daily_dose(med, 2), extracted.orders)
        assert updated["note"] == [{"text": note}]
        assert updated["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 1
