"""Card 6, safety monitoring: creatinine, potassium, glucose, blood pressure and liver enzymes."""

from __future__ import annotations

from dataclasses import replace

import pytest
from rules_support import (
    KB,
    TODAY,
    action_types,
    assert_card_rules,
    bp,
    condition,
    draft,
    lab,
    make_facts,
    on_tacrolimus,
    only,
    pregnancy,
    resource_of,
)

from cards.rules.safety import evaluate_safety

CR, K, GLU, A1C = "creatinine", "potassium", "glucose", "hba1c"


def check(kind, labs=(), pressures=(), pregnant=None, started=60):
    facts = make_facts("patient-view", labs=labs, pressures=pressures, pregnant=pregnant, meds=[on_tacrolimus(started)])
    cards = evaluate_safety(facts, TODAY, KB)
    for card in cards:
        assert_card_rules(card)
    return only(cards, kind)


# Baseline 1.0 mg/dL drawn before tacrolimus started (60 days ago).
CREATININE = [
    ("+19 % from baseline: no card", [lab(CR, 1.0, 90), lab(CR, 1.19, 2)], None, None, []),
    ("+20 % exactly: warning", [lab(CR, 1.0, 90), lab(CR, 1.2, 2)], None, "warning", ["+20 %", "1.0 mg/dL"]),
    ("1.49× baseline: warning", [lab(CR, 1.0, 90), lab(CR, 1.49, 2)], None, "warning", ["+49 %"]),
    (
        "1.5× baseline exactly: critical (KDIGO)",
        [lab(CR, 0.8, 90), lab(CR, 1.2, 2)],
        None,
        "critical",
        ["1.5×", "KDIGO"],
    ),
    (
        "+0.3 mg/dL within 48 h: critical",
        [lab(CR, 0.9, 90), lab(CR, 0.8, 3), lab(CR, 1.1, 1)],
        None,
        "critical",
        ["rose from 0.8 mg/dL to 1.1 mg/dL within 48 h"],
    ),
    (
        "+0.3 mg/dL over 72 h is not the 48 h criterion",
        [lab(CR, 1.0, 90), lab(CR, 0.9, 4), lab(CR, 1.15, 1)],
        None,
        None,
        [],
    ),
    (
        "baseline is the latest before the course, not the oldest of the year: 0.6 → 0.85 is +42 %",
        [lab(CR, 1.0, 300), lab(CR, 0.6, 70), lab(CR, 0.85, 2)],
        None,
        "warning",
        ["+42 %", "0.6 mg/dL on 2026-09-16"],
    ),
    ("same-time results 0.9 and 1.3: the higher is used", "conflict", None, "warning", ["Conflicting creatinine"]),
    ("pregnant, 1.11 mg/dL: warning", [lab(CR, 1.0, 90), lab(CR, 1.11, 2)], True, "warning", ["above 1.1"]),
    ("pregnant, 1.1 exactly: no card", [lab(CR, 1.0, 90), lab(CR, 1.1, 2)], True, None, []),
    (
        "latest preliminary: not acted on",
        [lab(CR, 1.0, 90), lab(CR, 2.0, 1, status="preliminary"), lab(CR, 1.0, 5)],
        None,
        None,
        [],
    ),
    ("latest 31 days old (stale): not acted on", [lab(CR, 0.5, 90), lab(CR, 1.5, 31)], None, None, []),
]


@pytest.mark.parametrize("labs,pregnant,indicator,words", [c[1:] for c in CREATININE], ids=[c[0] for c in CREATININE])
def test_creatinine(labs, pregnant, indicator, words):
    if labs == "conflict":
        a, b = lab(CR, 0.9, 2), lab(CR, 1.3, 2)
        labs = [lab(CR, 1.0, 90), replace(a, conflicts_with=(b.source,)), replace(b, conflicts_with=(a.source,))]
    card = check("safety:creatinine", labs, pregnant=pregnant)
    assert (card.indicator if card else None) == indicator
    for word in words:
        assert word in card.summary + card.detail


# Named as the UK Kidney Association (2020) does: 5.5–5.9 mild, 6.0–6.4 moderate, ≥ 6.5 severe.
POTASSIUM = [
    ("5.0 exactly: no card", 5.0, None, [], []),
    ("5.1: advisory", 5.1, "info", ["above the normal range"], []),
    ("5.49: advisory", 5.49, "info", [], []),
    ("5.5 exactly: mild, repeat", 5.5, "warning", ["mild hyperkalaemia"], [["create"]]),
    ("5.99: mild", 5.99, "warning", ["mild"], [["create"]]),
    (
        "6.0 exactly: moderate, urgent repeat and ECG",
        6.0,
        "critical",
        ["moderate hyperkalaemia", "ECG"],
        [["create", "create"]],
    ),
    ("6.4: moderate, not severe", 6.4, "critical", ["moderate"], [["create", "create"]]),
    ("6.5: severe", 6.5, "critical", ["severe hyperkalaemia"], [["create", "create"]]),
]


@pytest.mark.parametrize("value,indicator,words,actions", [c[1:] for c in POTASSIUM], ids=[c[0] for c in POTASSIUM])
def test_potassium(value, indicator, words, actions):
    card = check("safety:potassium", [lab(K, value, 2)])
    assert (card.indicator if card else None) == indicator
    if card:
        assert f"{value} mmol/L" in card.summary and "2026-11-23" in card.summary
        for word in words:
            assert word in card.summary + card.detail
        assert action_types(card) == actions


def test_potassium_6_or_more_orders_an_urgent_repeat_and_an_ecg():
    card = check("safety:potassium", [lab(K, 6.4, 1)])
    repeat, ecg = card.suggestions[0].actions
    assert resource_of(repeat)["priority"] == "stat" and resource_of(repeat)["code"]["coding"][0]["code"] == "2823-3"
    assert resource_of(ecg)["code"]["coding"][0] == {
        "system": "http://snomed.info/sct",
        "code": "29303009",
        "display": "Electrocardiographic procedure",
    }
    assert card.suggestions[0].is_recommended


def test_conflicting_potassium_uses_the_worse_and_shows_both():
    """K 4.3 and 6.4 at the same time: neither wins by bundle order."""
    a, b = lab(K, 4.3, 1), lab(K, 6.4, 1)
    card = check("safety:potassium", [replace(a, conflicts_with=(b.source,)), replace(b, conflicts_with=(a.source,))])
    assert card.indicator == "critical" and "4.3 mmol/L and 6.4 mmol/L" in card.detail


def test_potassium_in_an_unusable_unit_is_not_compared():
    """Not compared with any threshold, but shown as reported, never silent."""
    card = check("safety:potassium", [lab(K, 7.0, 2, unit="mg/dL")])
    assert card.indicator == "info" and card.verdict == "potassium-as-reported"
    assert "reported as 7.0 mg/dL" in card.summary and "no older result" in card.detail
    due = check("safety:monitoring-due", [lab(K, 7.0, 2, unit="mg/dL")])
    assert "is in mg/dL, not mmol/L" in due.detail


GLUCOSE = [
    ("fasting 91, pregnant: no card", [lab(GLU, 91, 2, fasting=True)], True, None, []),
    ("fasting 92, pregnant: GDM criterion", [lab(GLU, 92, 2, fasting=True)], True, "warning", ["gestational"]),
    ("fasting 92, not pregnant: no card", [lab(GLU, 92, 2, fasting=True)], None, None, []),
    ("fasting 126: overt diabetes", [lab(GLU, 126, 2, fasting=True)], None, "warning", ["overt diabetes"]),
    ("random 199: no card", [lab(GLU, 199, 2)], True, None, []),
    ("random 200: overt diabetes", [lab(GLU, 200, 2)], None, "warning", ["Random glucose 200"]),
    ("HbA1c 6.5 %: overt diabetes", [lab(A1C, 6.5, 2)], None, "warning", ["HbA1c 6.5 %"]),
    ("HbA1c 6.4 %: no card", [lab(A1C, 6.4, 2)], None, None, []),
]


@pytest.mark.parametrize("labs,pregnant,indicator,words", [c[1:] for c in GLUCOSE], ids=[c[0] for c in GLUCOSE])
def test_glucose(labs, pregnant, indicator, words):
    card = check("safety:glucose", labs, pregnant=pregnant)
    assert (card.indicator if card else None) == indicator
    for word in words:
        assert word in card.summary + card.detail


BLOOD_PRESSURE = [
    ("139/89: no card", bp(139, 89), None),
    ("140/80: hypertension", bp(140, 80), "warning"),
    ("130/90: hypertension", bp(130, 90), "warning"),
    ("159/109: hypertension", bp(159, 109), "warning"),
    ("160/100: severe", bp(160, 100), "critical"),
    ("150/110: severe", bp(150, 110), "critical"),
    ("170/115 but 31 days old: not acted on", bp(170, 115, days_ago=31), None),
    ("170/115 preliminary: not acted on", bp(170, 115, status="preliminary"), None),
]


@pytest.mark.parametrize("reading,indicator", [c[1:] for c in BLOOD_PRESSURE], ids=[c[0] for c in BLOOD_PRESSURE])
def test_blood_pressure(reading, indicator):
    card = check("safety:blood-pressure", pressures=[reading])
    assert (card.indicator if card else None) == indicator
    if card:
        assert f"{reading.systolic:g}/{reading.diastolic:g} mmHg" in card.summary


LIVER = [
    ("ALT 69 with ULN 35 (site default): no card", [lab("alt", 69, 2)], None, []),
    ("ALT 70 = 2× default ULN 35: warning", [lab("alt", 70, 2)], "warning", ["ALT 70 U/L", "still to be confirmed"]),
    ("AST 60 = 2× laboratory ULN 30: warning", [lab("ast", 60, 2, reference_high=30)], "warning", ["laboratory range"]),
    ("AST 59 with laboratory ULN 30: no card", [lab("ast", 59, 2, reference_high=30)], None, []),
]


@pytest.mark.parametrize("labs,indicator,words", [c[1:] for c in LIVER], ids=[c[0] for c in LIVER])
def test_liver(labs, indicator, words):
    card = check("safety:liver", labs)
    assert (card.indicator if card else None) == indicator
    for word in words:
        assert word in card.summary + card.detail


def test_monitoring_due_lists_every_gap_with_one_order_suggestion():
    card = check("safety:monitoring-due", [lab(CR, 0.8, 45), lab(K, 4.0, 3)])
    assert card.indicator == "info"
    assert "45 days old" in card.detail and "no glucose result" in card.detail
    assert "blood pressure" in card.summary
    [suggestion] = card.suggestions
    assert [resource_of(a)["code"]["coding"][0]["code"] for a in suggestion.actions] == ["2160-0", "2345-7", "24325-3"]


def test_draft_before_therapy_checks_thresholds_but_not_overdue_monitoring():
    facts = make_facts("order-select", labs=[lab(K, 6.2, 2)], meds=[draft(2)])
    cards = evaluate_safety(facts, TODAY, KB)
    assert [c.kind for c in cards] == ["safety:potassium"]
    assert cards[0].indicator == "critical"


def test_candidate_not_on_tacrolimus_gets_no_safety_cards():
    facts = make_facts("patient-view", labs=[lab(K, 6.2, 2)])
    assert evaluate_safety(facts, TODAY, KB) == []


def test_pregnancy_known_from_an_hcg_134_days_ago_keeps_the_pregnancy_checks():
    """No Condition, a positive hCG 134 days ago that nothing ended: still pregnant for every check."""
    facts = make_facts(
        "patient-view",
        labs=[lab(GLU, 95, 2, fasting=True), lab(CR, 1.0, 90), lab(CR, 1.2, 2)],
        meds=[on_tacrolimus(150)],
        pregnancy_status=pregnancy(True, 134, weeks=21),
    )
    cards = evaluate_safety(facts, TODAY, KB)
    assert only(cards, "safety:glucose").verdict == "glucose-warning"
    assert "pre-eclampsia" in only(cards, "safety:creatinine").summary + only(cards, "safety:creatinine").detail


def test_transplant_recipient_keeps_generic_safety_cards_but_not_the_protocol_schedule():
    facts = make_facts(
        "patient-view",
        labs=[lab(K, 6.1, 1)],
        meds=[on_tacrolimus(300)],
        rif=False,
        conditions=[condition("transplant_status", "Kidney transplant")],
    )
    cards = evaluate_safety(facts, TODAY, KB)
    assert only(cards, "safety:potassium").indicator == "critical"
    assert only(cards, "safety:monitoring-due") is None


def test_a_newer_pending_potassium_is_named_beside_the_final_one():
    card = check("safety:potassium", [lab(K, 5.0, 0.5, status="preliminary"), lab(K, 6.2, 2)])
    assert card.indicator == "critical" and "is preliminary" in card.detail
