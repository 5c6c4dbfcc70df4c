"""Answers a clinical review found misleading or noisy, as tables a clinician can read: chart → the
cards' (kind, indicator, verdict), never their English.

Sources: UK Kidney Association 2020 (potassium above 5.0 is above normal, 5.5-5.9 mild); ACOG Practice
Bulletin 222 (from 20 weeks, hypertension calls for a pre-eclampsia assessment); the Envarsus XR and
Advagraf labels (not interchangeable mg for mg); trough = 24 h after a once-daily dose.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from rules_support import (
    KB,
    TODAY,
    assert_card_rules,
    bp,
    day,
    draft,
    lab,
    make_facts,
    on_tacrolimus,
    order_fields,
    order_of,
    pregnancy,
    transfer,
    when,
)
from test_rules_interactions import facts as interaction_facts
from test_rules_interactions import med

from cards.evaluate import evaluate
from cards.facts import MedicationFact
from cards.model import Card
from cards.rules.care import evaluate_care
from cards.rules.dose import evaluate_dose
from cards.rules.eligibility import evaluate_eligibility
from cards.rules.interactions import decide_interactions
from cards.rules.safety import evaluate_safety
from cards.rules.trough import evaluate_trough


def decisions(cards: list[Card]) -> set[tuple[str, str, str]]:
    return {(c.kind, c.indicator, c.verdict) for c in cards}


# --- potassium above the normal range is never "normal" -------------------------------------------------


@pytest.mark.parametrize(
    "value,tier",
    [(5.0, "normal"), (5.1, "above-normal"), (5.4, "above-normal"), (5.5, "mild")],
    ids=["5.0 normal", "5.1 above normal", "5.4 above normal", "5.5 mild hyperkalaemia"],
)
def test_potassium_between_5_and_5_5_is_above_normal(value: float, tier: str) -> None:
    spiro = med("spironolactone", "selected", daily_mg=25)
    [d] = decide_interactions(
        interaction_facts(
            "order-select", med("tacrolimus", "active", daily_mg=2), spiro, labs=(lab("potassium", value, 1),)
        ),
        TODAY,
        KB,
    )
    assert d.potassium is not None and d.potassium.tier == tier


# --- one concern, one card ------------------------------------------------------------------------------


def test_a_high_potassium_beside_a_potassium_raiser_is_one_card() -> None:
    spiro = med("spironolactone", "active", daily_mg=25, start=day(-5))
    facts = interaction_facts(
        "patient-view", med("tacrolimus", "active", daily_mg=2, start=day(-40)), spiro, labs=(lab("potassium", 6.2, 1),)
    )
    kinds = [c.kind for c in evaluate(facts, TODAY, KB)]
    assert "interaction:spironolactone" in kinds and "safety:potassium" not in kinds


def test_a_high_potassium_without_a_raiser_keeps_its_safety_card() -> None:
    facts = make_facts("patient-view", meds=[on_tacrolimus(40)], labs=[lab("potassium", 6.2, 1)])
    assert ("safety:potassium", "critical", "potassium-critical") in decisions(evaluate_safety(facts, TODAY, KB))


def test_an_immediate_to_extended_release_switch_is_one_card() -> None:
    envarsus = draft(2, release="extended", product="Envarsus XR 1 MG Extended Release Oral Tablet")
    facts = make_facts("order-select", meds=[on_tacrolimus(40), envarsus], transfers=[transfer(10)])
    kinds = [c.kind for c in evaluate(facts, TODAY, KB)]
    assert kinds.count("interaction:tacrolimus-release-switch") == 1 and "dose" not in kinds


def test_do_not_chase_a_normal_trough_is_said_once() -> None:
    facts = make_facts(
        "patient-view",
        meds=[on_tacrolimus(90)],
        labs=[lab("tacrolimus", 3.0, 1, timing="trough")],
        pregnancy_status=pregnancy(True, 60, weeks=10),
    )
    cards = evaluate(facts, TODAY, KB)
    assert sum("chase" in c.detail for c in cards) == 1


# --- the total, not "double" --------------------------------------------------------------------------


def test_an_add_on_beside_an_active_order_states_the_total() -> None:
    add_on = draft(0.5, strength=0.5, product="tacrolimus 0.5 MG Oral Capsule", rid="half")
    facts = make_facts("order-select", meds=[on_tacrolimus(40), add_on], transfers=[transfer(10)])
    [card] = evaluate_dose(facts, TODAY, KB)
    assert card.verdict == "duplicate-therapy"
    assert "2.5 mg/day" in card.summary and "double" not in card.summary


# --- a morning level after a once-daily evening dose is a 12-hour level ---------------------------------


def _evening(order: MedicationFact, **timing: Any) -> MedicationFact:
    resource = dict(order_of(order))
    resource["dosageInstruction"] = [
        {
            **resource["dosageInstruction"][0],
            "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d", **timing}},
        }
    ]
    return replace(order, **order_fields(resource))


TWELVE_HOUR = [
    pytest.param(
        _evening(on_tacrolimus(40), timeOfDay=["20:00:00"]),
        8,
        "twelve-hour-level",
        id="08:00 level, dose at 20:00: a 12-hour level",
    ),
    pytest.param(
        _evening(on_tacrolimus(40), when=["PCV"]),
        8,
        "twelve-hour-level",
        id="08:00 level, dose after dinner: a 12-hour level",
    ),
    pytest.param(
        _evening(on_tacrolimus(40), timeOfDay=["20:00:00"]),
        19,
        "above-target",
        id="19:00 level, just before the 20:00 dose: a trough",
    ),
    pytest.param(on_tacrolimus(40), 8, "above-target", id="08:00 level, dose time not recorded: a trough"),
]


@pytest.mark.parametrize("order,hour,verdict", TWELVE_HOUR)
def test_a_morning_level_after_an_evening_dose_is_not_a_trough(order: MedicationFact, hour: int, verdict: str) -> None:
    level = replace(lab("tacrolimus", 11.0, 1, timing="trough"), when=when(1, hour))
    [card] = evaluate_trough(make_facts("patient-view", meds=[order], labs=[level]), TODAY, KB)
    assert (card.kind, card.indicator, card.verdict) == ("trough", "warning", verdict)
    assert_card_rules(card)


# --- trough-schedule cards belong on the chart and on tacrolimus orders ---------------------------------


@pytest.mark.parametrize(
    "hook,extra,shown",
    [
        pytest.param("patient-view", [], True, id="patient-view: order a trough"),
        pytest.param(
            "order-select",
            [med("paracetamol", "selected", daily_mg=3000)],
            False,
            id="paracetamol ordered: no trough schedule card",
        ),
        pytest.param(
            "order-select",
            [draft(2, prior="MedicationRequest/tac-active")],
            True,
            id="tacrolimus renewal ordered: the trough is due",
        ),
    ],
)
def test_trough_schedule_cards_stay_off_unrelated_orders(hook: str, extra: list[Any], shown: bool) -> None:
    facts = make_facts(hook, meds=[on_tacrolimus(60), *extra])
    verdicts = {c.verdict for c in evaluate_trough(facts, TODAY, KB)}
    assert ("no-trough" in verdicts) is shown


# --- extended release: bands are immediate-release mg ---------------------------------------------------


@pytest.mark.parametrize(
    "release,expected",
    [("extended", {("dose", "info", "extended-release-start")}), ("immediate", set())],
    ids=["Envarsus/Advagraf new start at a band dose: said once", "immediate-release new start: nothing"],
)
def test_an_extended_release_start_says_the_bands_are_immediate_release_mg(release: str, expected: set[Any]) -> None:
    facts = make_facts(
        "order-select",
        meds=[draft(2, start=day(8), release=release)],
        transfers=[transfer(10)],
        labs=[lab("th1_th2_ratio", 14.0, 5), lab("th1_pct", 20.0, 5)],
    )
    assert decisions(evaluate_dose(facts, TODAY, KB)) == expected


# --- blood pressure from 20 weeks: pre-eclampsia -------------------------------------------------------


@pytest.mark.parametrize(
    "weeks,verdict",
    [(24, "blood-pressure-pre-eclampsia"), (12, "blood-pressure-warning"), (None, "blood-pressure-warning")],
    ids=["145/95 at 24 weeks: pre-eclampsia assessment", "145/95 at 12 weeks: review", "145/95 not pregnant: review"],
)
def test_hypertension_from_20_weeks_calls_for_a_pre_eclampsia_assessment(weeks: int | None, verdict: str) -> None:
    status = pregnancy(True, 30, weeks=weeks) if weeks is not None else None
    facts = make_facts("patient-view", meds=[on_tacrolimus(90)], pressures=[bp(145, 95)], pregnancy_status=status)
    cards = [c for c in evaluate_safety(facts, TODAY, KB) if c.kind == "safety:blood-pressure"]
    assert decisions(cards) == {("safety:blood-pressure", "warning", verdict)}


# --- numbers in the laboratory's unit; summaries are plain text ----------------------------------------


def test_a_glucose_summary_is_in_the_laboratorys_unit() -> None:
    glucose = lab("glucose", 216.2, 1, shown="12 mmol/L")
    facts = make_facts("patient-view", meds=[on_tacrolimus(90)], labs=[glucose])
    [card] = [c for c in evaluate_safety(facts, TODAY, KB) if c.kind == "safety:glucose"]
    assert "12 mmol/L" in card.summary and "mg/dL" not in card.summary


def test_a_summary_carries_no_markdown() -> None:
    level = lab("tacrolimus", None, 1, timing="trough", shown="<1.0 ng/mL", problem="reported as a limit")
    [card] = evaluate_trough(make_facts("patient-view", meds=[on_tacrolimus(40)], labs=[level]), TODAY, KB)
    assert "<1.0 ng/mL" in card.summary and "\\" not in card.summary and "**" not in card.summary


def test_conflicting_ratios_block_without_choosing_one() -> None:
    a, b = lab("th1_th2_ratio", 12.1, 3), lab("th1_th2_ratio", 9.0, 3)
    a, b = replace(a, conflicts_with=(b.source,)), replace(b, conflicts_with=(a.source,))
    [card] = evaluate_eligibility(make_facts("order-select", meds=[draft(2)], labs=[a, b]), TODAY, KB)
    assert card.verdict == "conflicting-ratios"
    assert "The worse" not in card.detail and "12.1 is used" not in card.detail


# --- no routine Pneumocystis prophylaxis sentence --------------------------------------------------------


def test_counselling_does_not_advise_pneumocystis_prophylaxis_on_every_start() -> None:
    facts = make_facts("order-select", meds=[draft(2)], labs=[lab("th1_th2_ratio", 12.0, 5)])
    cards = [c for c in evaluate_care(facts, TODAY, KB) if c.kind == "care:administration"]
    assert cards and all("Pneumocystis" not in c.detail for c in cards)


def test_with_data_missing_the_safety_card_keeps_a_high_potassium_never_silenced() -> None:
    """The interaction card is withheld when the medication statements could not be had; the safety card
    then still shows the potassium (two cards rather than none)."""
    spiro = med("spironolactone", "active", daily_mg=25, start=day(-5))
    facts = interaction_facts(
        "patient-view",
        med("tacrolimus", "active", daily_mg=2, start=day(-40)),
        spiro,
        labs=(lab("potassium", 6.2, 1),),
        missing={"medicationStatements": "server error"},
    )
    kinds = [c.kind for c in evaluate(facts, TODAY, KB)]
    assert "safety:potassium" in kinds
