"""The evaluate entry point: hook focus, severity order, site overrides, the knowledge base itself."""

from __future__ import annotations

from dataclasses import replace

import pytest
from rules_support import (
    KB,
    TODAY,
    assert_card_rules,
    bp,
    condition,
    draft,
    lab,
    make_facts,
    on_tacrolimus,
    pregnancy,
    transfer,
)

from cards.evaluate import evaluate
from cards.knowledge import load_knowledge, source_problems
from cards.rules.eligibility import evaluate_eligibility

SEVERITY = {"critical": 0, "warning": 1, "info": 2}


def kinds(facts):
    return sorted(c.kind for c in evaluate(facts, TODAY, KB))


def test_order_select_candidate_gets_baseline_timing_and_counselling_cards():
    facts = make_facts(
        "order-select",
        labs=[lab("th1_th2_ratio", 14.0, 20), lab("th1_pct", 20.0, 20)],
        meds=[draft(3, start=TODAY)],
        transfers=[transfer(10)],
    )
    # 3 mg is within the 2 mg band plus the Th1 % add-on: no dose card while the bands are unconfirmed.
    assert kinds(facts) == ["baseline-labs", "care:administration", "timing"]


def test_order_select_without_tacrolimus_selected_gives_no_protocol_cards():
    facts = make_facts("order-select", labs=[lab("potassium", 6.5, 1)], meds=[draft(2, selected=False)])
    assert evaluate(facts, TODAY, KB) == []


def test_patient_view_on_therapy_reviews_monitoring():
    facts = make_facts(
        "patient-view",
        labs=[
            lab("tacrolimus", 6, 3, timing="trough"),
            lab("potassium", 4.0, 3),
            lab("creatinine", 0.8, 3),
            lab("glucose", 80, 3),
            lab("alt", 20, 3),
        ],
        meds=[on_tacrolimus(60)],
        pressures=[bp(120, 80)],
    )
    assert kinds(facts) == []  # everything in range: no card that changes nothing


def test_patient_view_with_neither_therapy_nor_candidacy_gives_nothing():
    assert evaluate(make_facts("patient-view", rif=False, labs=[lab("potassium", 6.5, 1)]), TODAY, KB) == []


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_incomplete_draft_is_normal_input(hook):
    """While a clinician fills the form, an incomplete draft is normal input — usually no card, never an error."""
    cards = evaluate(make_facts(hook, meds=[draft(None, no_dosage=True)], rif=False), TODAY, KB)
    for card in cards:
        assert_card_rules(card)
    if hook == "order-select":
        assert "dose" not in [c.kind for c in cards]


def test_draft_without_a_medication_gets_no_protocol_cards():
    unnamed = replace(draft(None, no_dosage=True), ingredients=(), recognised_by=None, matched=None)
    assert evaluate(make_facts("order-select", meds=[unnamed]), TODAY, KB) == []


def test_cards_are_sorted_by_severity_and_one_per_concern():
    facts = make_facts(
        "order-sign",
        labs=[lab("th1_th2_ratio", 9.0, 20), lab("tacrolimus", 25, 3, timing="trough"), lab("potassium", 5.2, 2)],
        meds=[draft(5), on_tacrolimus(60)],
        pressures=[bp(150, 95)],
    )
    cards = evaluate(facts, TODAY, KB)
    assert [SEVERITY[c.indicator] for c in cards] == sorted(SEVERITY[c.indicator] for c in cards)
    assert len({c.kind for c in cards}) == len(cards)
    assert cards[0].indicator == "critical"
    for card in cards:
        assert_card_rules(card)


def test_site_file_overriding_the_cut_off_changes_the_card(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text("protocol:\n  eligibility:\n    ratio_cutoff:\n      standard: {value: 12.0, site_default: true}\n")
    kb = load_knowledge(site)
    facts = make_facts("patient-view", labs=[lab("th1_th2_ratio", 11.0, 20)])
    [default] = evaluate_eligibility(facts, TODAY, KB)
    [sited] = evaluate_eligibility(
        replace(facts, hook="order-select", medications=(draft(2),), selections=("MedicationRequest/tac-draft",)),
        TODAY,
        kb,
    )
    assert default.indicator == "info" and "10.3 cut-off" in default.summary
    assert sited.indicator == "warning" and "below the 12 cut-off" in sited.summary
    assert "still to be confirmed: Th1/Th2 cut-off" in sited.detail


def test_every_protocol_entry_names_a_known_source():
    assert source_problems(KB["protocol"]) == []


def test_every_open_number_is_marked_site_default():
    protocol = KB["protocol"]
    assert protocol["dose"]["bands"]["site_default"] is True
    assert protocol["dose"]["th1_high_addon"]["th1_pct_min"]["site_default"] is True
    for entry in (
        protocol["eligibility"]["ratio_max_age_days"],
        protocol["trough"]["interval_days"],
        protocol["baseline_labs"]["lookback_days"],
        protocol["safety"]["liver"]["default_uln"]["alt"],
    ):
        assert entry["site_default"] is True
    assert "site_default" not in protocol["dose"]["max_daily_mg"]  # 4 mg/day is confirmed


START_OF_COURSE = {"eligibility", "dose", "timing", "baseline-labs"}

# A draft that continues a course (she is on tacrolimus, or pregnant) is not a new start: candidacy,
# the starting band dose, timing from the transfer and baseline labs do not apply to it.
CONTINUATIONS = [
    ("renewal while on tacrolimus", dict(meds=[on_tacrolimus(20), draft(3, start=TODAY)])),
]


@pytest.mark.parametrize("kwargs", [c[1] for c in CONTINUATIONS], ids=[c[0] for c in CONTINUATIONS])
def test_continuation_gets_no_start_of_course_cards(kwargs):
    facts = make_facts(
        "order-sign",
        labs=[lab("th1_th2_ratio", 14.0, 20), lab("th1_pct", 20.0, 20)],
        transfers=[transfer(10)],
        **kwargs,
    )
    assert not START_OF_COURSE & set(kinds(facts))


def test_continuation_above_the_maximum_is_still_critical():
    facts = make_facts(
        "order-sign",
        meds=[on_tacrolimus(40), draft(5, start=TODAY, prior="MedicationRequest/tac-active")],
        pregnant=True,
    )
    dose = [c for c in evaluate(facts, TODAY, KB) if c.kind == "dose"]
    assert [c.indicator for c in dose] == ["critical"]


def test_unusable_records_are_listed_once_when_the_protocol_applies():
    from cards.facts import UnusableResource

    facts = replace(
        make_facts("order-select", labs=[lab("th1_th2_ratio", 14.0, 20)], meds=[draft(2, start=TODAY)]),
        unusable=(
            UnusableResource("Observation/x1", "effectiveDateTime '2026-13-40' is not a date"),
            UnusableResource("MedicationRequest/m9", "no medication named"),
        ),
    )
    cards = [c for c in evaluate(facts, TODAY, KB) if c.kind == "data-quality"]
    assert [c.indicator for c in cards] == ["info"]
    assert cards[0].summary == "2 records could not be used: see details"
    assert "- A result: effectiveDateTime '2026-13-40' is not a date" in cards[0].detail
    assert "Observation/x1" not in cards[0].detail and "MedicationRequest/m9" not in cards[0].detail


def test_unusable_records_of_a_patient_outside_the_protocol_say_nothing():
    from cards.facts import UnusableResource

    facts = replace(make_facts("patient-view", rif=False), unusable=(UnusableResource("Observation/x1", "no code"),))
    assert evaluate(facts, TODAY, KB) == []


def test_breastfeeding_condition_on_record_brings_the_breastfeeding_card():
    """From FHIR to card: a Condition with the local breastfeeding code, tacrolimus active."""
    from service.hooks.extract import build_facts
    from service.hooks.validation import HookRequest

    local = "http://example.org/fhir/CodeSystem/tacro-cds"
    condition = {
        "resourceType": "Condition",
        "id": "bf",
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "code": {"coding": [{"system": local, "code": "breastfeeding"}]},
    }
    order = {
        "resourceType": "MedicationRequest",
        "id": "t1",
        "status": "active",
        "intent": "order",
        "authoredOn": "2026-10-01",
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "42316"}]
        },
    }
    request = HookRequest(hook="patient-view", hook_instance="i", context={"userId": "u", "patientId": "p1"})
    rif = {
        "resourceType": "Condition",
        "id": "rif",
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "code": {"coding": [{"system": local, "code": "recurrent-implantation-failure"}]},
    }
    facts = build_facts(request, {"conditions": [condition, rif], "medicationRequests": [order]}, KB)
    assert "care:breastfeeding" in kinds(facts)


# The nine charts of the clinical review that would have harmed a patient, through the whole rule set:
# chart → the decisions on the cards.
def _verdicts(facts):
    return {c.kind: c.verdict for c in evaluate(facts, TODAY, KB)}


def test_kidney_transplant_recipient_gets_no_protocol_card():
    facts = make_facts(
        "order-sign",
        rif=False,
        conditions=[condition("transplant_status", "Kidney transplant")],
        labs=[lab("tacrolimus", 9, 3, timing="trough")],
        meds=[on_tacrolimus(300, daily_mg=6), draft(6, frequency=2, prior="MedicationRequest/tac-active")],
    )
    assert set(_verdicts(facts)) & {"eligibility", "dose", "timing", "trough", "baseline-labs"} == set()


def test_pregnant_eight_weeks_not_on_tacrolimus_new_draft_is_a_new_start():
    facts = make_facts(
        "order-select",
        labs=[lab("th1_th2_ratio", 8.0, 20)],
        meds=[draft(3)],
        transfers=[transfer(-45)],
        pregnancy_status=pregnancy(True, 30, weeks=8),
    )
    verdicts = _verdicts(facts)
    assert verdicts["eligibility"] == "below-cutoff" and verdicts["timing"] == "starts-in-pregnancy"
    assert "care:pregnancy" not in verdicts  # "continue through pregnancy" is for a continuing course
