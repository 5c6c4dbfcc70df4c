"""Answers a clinical review found wrong, as tables a clinician can read: chart → (kind, indicator,
verdict) and, where the finding is about a suggestion, what the suggestion does (never the English).

Sources: the RIF studies (start 2 days before the transfer; continue through pregnancy, so a pregnancy
that ended ends the indication); tacrolimus label (grapefruit; metronidazole, with case series of 2-3-fold
rises); KDIGO 2012 for creatinine.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from rules_support import (
    KB,
    TODAY,
    action_types,
    assert_card_rules,
    day,
    draft,
    lab,
    make_facts,
    on_tacrolimus,
    resource_of,
    transfer,
)
from test_rules_interactions import facts as interaction_facts
from test_rules_interactions import med

from cards.facts import PREGNANCY_OUTCOME, ConditionFact
from cards.model import Card
from cards.rules.dose import evaluate_dose
from cards.rules.interactions import evaluate_interactions
from cards.rules.timing import evaluate_timing


def decisions(cards: list[Card]) -> set[tuple[str, str, str]]:
    return {(c.kind, c.indicator, c.verdict) for c in cards}


def outcome(display: str, days_ago: int, code: str) -> ConditionFact:
    return ConditionFact(
        PREGNANCY_OUTCOME,
        f"Condition/{code}",
        f"icd|{code}",
        display,
        onset=datetime.combine(day(-days_ago), datetime.min.time(), tzinfo=UTC),
    )


# --- a recorded miscarriage, ectopic pregnancy or delivery ends the indication ------------------------

PREGNANCY_ENDED = [
    pytest.param(
        "patient-view",
        [on_tacrolimus(40)],
        [transfer(-38)],
        outcome("Miscarriage", 3, "O03.9"),
        ("timing", "warning", "pregnancy-ended"),
        [],
        id="miscarriage on record, on tacrolimus: stop or review",
    ),
    pytest.param(
        "patient-view",
        [on_tacrolimus(40)],
        [transfer(-38)],
        outcome("Ectopic pregnancy", 5, "O00.1"),
        ("timing", "warning", "pregnancy-ended"),
        [],
        id="ectopic pregnancy: stop or review",
    ),
    pytest.param(
        "order-sign",
        [on_tacrolimus(280), draft(2, prior="MedicationRequest/tac-active")],
        [transfer(-270)],
        outcome("Single live birth", 2, "Z37.0"),
        ("timing", "warning", "pregnancy-ended"),
        [["delete"]],
        id="live birth, a renewal drafted: the renewal is questioned",
    ),
    pytest.param(
        "patient-view",
        [on_tacrolimus(10)],
        [transfer(-8)],
        outcome("Miscarriage", 400, "O03.9"),
        None,
        [],
        id="a miscarriage before this course: nothing",
    ),
    pytest.param(
        "patient-view",
        [on_tacrolimus(40)],
        [transfer(-38), transfer(5)],
        outcome("Miscarriage", 3, "O03.9"),
        None,
        [],
        id="a new transfer planned after the loss: a new course",
    ),
]


@pytest.mark.parametrize("hook,meds,transfers,ended,expected,actions", PREGNANCY_ENDED)
def test_a_pregnancy_that_ended_ends_the_indication(
    hook: str,
    meds: list[Any],
    transfers: list[Any],
    ended: ConditionFact,
    expected: tuple[str, str, str] | None,
    actions: list[list[str]],
) -> None:
    cards = evaluate_timing(make_facts(hook, meds=meds, transfers=transfers, conditions=[ended]), TODAY, KB)
    if expected is None:
        assert "pregnancy-ended" not in {c.verdict for c in cards}
        return
    [card] = cards
    assert (card.kind, card.indicator, card.verdict) == expected
    assert action_types(card) == actions
    assert_card_rules(card)


# --- a start on or after the transfer day is late ------------------------------------------------------

LATE_STARTS = [
    pytest.param(
        draft(2, start=day(0)),
        transfer(0),
        "starts-on-transfer-day",
        None,
        id="start on the transfer day (today): late, no earlier day left",
    ),
    pytest.param(
        draft(2, start=day(3)),
        transfer(3),
        "starts-on-transfer-day",
        day(1).isoformat(),
        id="start drafted on a transfer 3 days ahead: the protocol start is offered",
    ),
    pytest.param(
        draft(2, start=day(-1)),
        transfer(-1),
        "starts-after-transfer",
        None,
        id="the day after the transfer, start dated on the transfer day: outside, no start after it",
    ),
    pytest.param(
        draft(2), transfer(1), "late-start", day(0).isoformat(), id="transfer tomorrow, no start date: today is offered"
    ),
]


@pytest.mark.parametrize("order,planned,verdict,offered_start", LATE_STARTS)
def test_a_start_on_or_after_the_transfer_day_is_late(
    order: Any, planned: Any, verdict: str, offered_start: str | None
) -> None:
    [card] = evaluate_timing(make_facts("order-select", meds=[order], transfers=[planned]), TODAY, KB)
    assert (card.kind, card.indicator, card.verdict) == ("timing", "warning", verdict)
    starts = [
        resource_of(a)["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"]["start"]
        for s in card.suggestions
        for a in s.actions
        if a.resource
    ]
    assert starts == ([offered_start] if offered_start else [])
    for start in starts:
        assert start < planned.when.date().isoformat()  # never a start on or after the transfer
    assert_card_rules(card)


# --- interactions to add: metronidazole, grapefruit and pomelo ------------------------------------------

TAC = med("tacrolimus", "active", daily_mg=2)


@pytest.mark.parametrize(
    "drug,verdict",
    [("metronidazole", "interaction"), ("grapefruit", "interaction")],
    ids=["metronidazole: a trough in 3-5 days", "grapefruit: avoid"],
)
def test_metronidazole_and_grapefruit_raise_levels(drug: str, verdict: str) -> None:
    cards = evaluate_interactions(
        interaction_facts("order-select", TAC, med(drug, "selected", daily_mg=1500)), TODAY, KB
    )
    assert (f"interaction:{drug}", "warning", verdict) in decisions(cards)


def test_metronidazole_offers_one_trough_order() -> None:
    [card] = evaluate_interactions(
        interaction_facts("order-select", TAC, med("metronidazole", "selected", daily_mg=1500)), TODAY, KB
    )
    codes = [resource_of(a)["code"]["coding"][0]["code"] for s in card.suggestions for a in s.actions if a.resource]
    assert codes == ["77348-1"]


# --- no tacrolimus trough before the first dose ----------------------------------------------------------


def _creatinine_rise() -> tuple[Any, ...]:
    return (lab("creatinine", 0.7, 20), lab("creatinine", 1.2, 1))


@pytest.mark.parametrize(
    "tacrolimus,trough_offered",
    [
        pytest.param(med("tacrolimus", "draft", daily_mg=2), False, id="not yet on tacrolimus: creatinine only"),
        pytest.param(
            med("tacrolimus", "active", daily_mg=2, start=day(-30)), True, id="on tacrolimus: creatinine and trough"
        ),
    ],
)
def test_a_trough_is_offered_only_to_a_woman_on_tacrolimus(tacrolimus: Any, trough_offered: bool) -> None:
    nsaid = med("ibuprofen", "selected", daily_mg=1200)
    [card] = evaluate_interactions(
        interaction_facts("order-select", tacrolimus, nsaid, labs=_creatinine_rise()), TODAY, KB
    )
    assert card.verdict == "creatinine-aki"
    codes = {resource_of(a)["code"]["coding"][0]["code"] for s in card.suggestions for a in s.actions if a.resource}
    assert ("77348-1" in codes) is trough_offered
    assert "2160-0" in codes


# --- above what the chart allows with the Th1 % unknown: each allowed dose offered ----------------------


def test_each_dose_the_chart_allows_is_offered_when_the_th1_is_unknown() -> None:
    facts = make_facts(
        "order-select", meds=[draft(4, start=day(8))], transfers=[transfer(10)], labs=[lab("th1_th2_ratio", 10.8, 5)]
    )
    [card] = evaluate_dose(facts, TODAY, KB)
    assert (card.verdict, card.selection_behavior) == ("above-band-dose", "at-most-one")
    doses = sorted(
        resource_of(s.actions[0])["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"]
        for s in card.suggestions
    )
    assert doses == [1, 2]
    assert not any(s.is_recommended for s in card.suggestions)


# --- a branded product code (the sandbox's Prograf SBD) gives its strength: the maximum is checked -----

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


@pytest.mark.parametrize(
    "code,display,per_dose,verdict",
    [
        pytest.param("108513", "Tacrolimus 1 MG Oral Capsule [Prograf]", 3, "above-maximum", id="Prograf 1 mg SBD"),
        pytest.param("1235243", "Tacrolimus 1 MG Oral Capsule [Hecoria]", 3, "above-maximum", id="Hecoria 1 mg SBD"),
        pytest.param(
            "1664463",
            "24 HR Tacrolimus 1 MG Extended Release Oral Tablet [Envarsus]",
            3,
            "above-maximum",
            id="Envarsus XR 1 mg SBD",
        ),
    ],
)
def test_a_branded_product_code_gives_its_strength_so_the_maximum_is_checked(code, display, per_dose, verdict):
    """3 capsules (or tablets) twice daily of a 1 mg product: 6 mg/day, above the 4 mg/day maximum."""
    from service.hooks.extract import build_facts
    from service.hooks.validation import HookRequest

    order = {
        "resourceType": "MedicationRequest",
        "id": "tac",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code, "display": display}]},
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": per_dose, "unit": "capsule", "code": "{capsule}"}}],
            }
        ],
    }
    context = {
        "patientId": "p1",
        "userId": "Practitioner/u1",
        "selections": ["MedicationRequest/tac"],
        "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": order}]},
    }
    request = HookRequest(hook="order-select", hook_instance="00000000-0000-4000-8000-000000000000", context=context)
    facts = build_facts(request, {}, KB)
    facts = make_facts("order-select", meds=facts.medications, transfers=[transfer(10)])
    [card] = evaluate_dose(facts, TODAY, KB)
    assert (card.kind, card.indicator, card.verdict) == ("dose", "critical", verdict)


# --- "cut to one third" never becomes a 50 % cut -----------------------------------------------------


@pytest.mark.parametrize(
    "daily_mg,verdict,doses",
    [
        pytest.param(3, "dose-cut", [1], id="3 mg/day: one third is 1 mg, offered"),
        pytest.param(2, "dose-cut", [0.5], id="2 mg/day: one third 0.67 mg, 0.5 mg is within a quarter, offered"),
        pytest.param(1, "dose-cut-no-step-fits", [], id="1 mg/day: one third 0.33 mg, 0.5 mg would be half, by hand"),
    ],
)
def test_a_one_third_cut_is_offered_only_when_a_step_is_close_to_one_third(daily_mg, verdict, doses):
    tac = med("tacrolimus", "active", daily_mg=daily_mg, start=day(-30))
    vori = med("voriconazole", "selected", daily_mg=400)
    cards = evaluate_interactions(interaction_facts("order-select", tac, vori), TODAY, KB)
    [card] = [c for c in cards if c.kind == "interaction:voriconazole"]
    assert card.verdict == verdict
    offered = [
        resource_of(a)["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"]
        for s in card.suggestions
        for a in s.actions
        if a.resource and resource_of(a).get("resourceType") == "MedicationRequest"
    ]
    assert offered == doses


# --- breastfeeding coded in SNOMED CT is read ------------------------------------------------------------


@pytest.mark.parametrize(
    "system,code",
    [
        pytest.param("http://snomed.info/sct", "413712001", id="SNOMED CT 413712001 breastfeeding (mother)"),
        pytest.param("http://snomed.info/sct", "169750002", id="SNOMED CT 169750002 mother currently breast-feeding"),
    ],
)
def test_breastfeeding_coded_in_snomed_gets_its_card(system, code):
    from cards.rules.care import evaluate_care
    from service.hooks.extract import build_facts
    from service.hooks.validation import HookRequest

    condition = {
        "resourceType": "Condition",
        "id": "bf",
        "subject": {"reference": "Patient/p1"},
        "clinicalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
        },
        "code": {"coding": [{"system": system, "code": code}]},
    }
    request = HookRequest(
        hook="patient-view",
        hook_instance="00000000-0000-4000-8000-000000000000",
        context={"patientId": "p1", "userId": "Practitioner/u1"},
    )
    read = build_facts(request, {"conditions": [condition]}, KB)
    facts = make_facts("patient-view", meds=[on_tacrolimus(60)], conditions=list(read.conditions))
    kinds = {c.kind for c in evaluate_care(facts, TODAY, KB)}
    assert "care:breastfeeding" in kinds


@pytest.mark.parametrize(
    "code",
    [pytest.param("17369002", id="SNOMED CT miscarriage"), pytest.param("34801009", id="SNOMED CT ectopic pregnancy")],
)
def test_a_pregnancy_outcome_coded_in_snomed_ends_the_indication(code):
    from service.hooks.extract import build_facts
    from service.hooks.validation import HookRequest

    condition = {
        "resourceType": "Condition",
        "id": "loss",
        "subject": {"reference": "Patient/p1"},
        "clinicalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
        },
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": code}]},
        "onsetDateTime": day(-3).isoformat(),
    }
    request = HookRequest(
        hook="patient-view",
        hook_instance="00000000-0000-4000-8000-000000000000",
        context={"patientId": "p1", "userId": "Practitioner/u1"},
    )
    read = build_facts(request, {"conditions": [condition]}, KB)
    facts = make_facts(
        "patient-view", meds=[on_tacrolimus(40)], transfers=[transfer(-38)], conditions=list(read.conditions)
    )
    assert "pregnancy-ended" in {c.verdict for c in evaluate_timing(facts, TODAY, KB)}
