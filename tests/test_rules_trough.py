"""Card 5, trough monitoring: 4–8 ng/mL with tiers; pre-steady-state or untimed levels not acted on."""

from __future__ import annotations

import pytest

from cards.rules.trough import evaluate_trough
from rules_support import KB, TODAY, action_types, assert_card_rules, draft, lab, make_facts, on_tacrolimus

TAC = "tacrolimus"


def trough(value, days_ago=3, **kw):
    kw.setdefault("timing", "trough")
    return lab(TAC, value, days_ago, **kw)


# On tacrolimus for 30 days unless the case says otherwise.
CASES = [
    ("3.99 below target", [trough(3.99)], 30, "info", ["below the 4–8 ng/mL target"], []),
    ("4 exactly in range", [trough(4)], 30, "info", ["within the 4–8 ng/mL target"], []),
    ("8 exactly in range", [trough(8)], 30, "info", ["within"], []),
    ("8.1 above target", [trough(8.1)], 30, "info", ["above the 4–8 ng/mL target"], []),
    ("14.9 above target only", [trough(14.9)], 30, "info", ["above the"], []),
    ("15 exactly: warning", [trough(15)], 30, "warning", ["at or above 15"], []),
    ("19.9: warning", [trough(19.9)], 30, "warning", ["at or above 15"], []),
    ("20 exactly: critical", [trough(20)], 30, "critical", ["at or above 20", "review the dose"], []),
    ("no level on record: order one", [], 30, "warning", ["No usable tacrolimus trough in the last 14 days"],
     [["create"]]),
    ("level 15 days old (interval 14, site default): order one", [trough(6, 15)], 30, "warning",
     ["15 days old", "site default"], [["create"]]),
    ("level 14 days old still counts", [trough(6, 14)], 30, "info", ["within"], []),
    ("drawn 3 days after start: pre-steady-state", [trough(3, 1)], 4, "info",
     ["not a steady-state trough", "before steady state (5 days)"], [["create"]]),
    ("drawn 5 days after start: steady state", [trough(6, 0)], 5, "info", ["within"], []),
    ("pre-steady-state 25 ng/mL: critical, levels still rising", [trough(25, 1)], 3, "critical",
     ["before steady state is already at or above 20", "Do not adjust the dose"], [["create"]]),
    ("pre-steady-state 16 ng/mL: warning", [trough(16, 1)], 3, "warning",
     ["before steady state is already at or above 15"], [["create"]]),
    ("timing unknown 25 ng/mL: warning to repeat (may be a peak)", [trough(25, timing="unknown")], 30, "warning",
     ["high but not a steady-state trough"], [["create"]]),
    ("timing unknown: not acted on", [trough(2, timing="unknown")], 30, "info",
     ["not a steady-state trough", "timing is not stated"], [["create"]]),
    ("preliminary level: wait", [trough(25, 1, status="preliminary")], 30, "info", ["pending", "preliminary"], []),
    ("unusable unit: order again", [trough(6, unit="nmol/L")], 30, "warning", ["is in nmol/L, not ng/mL"],
     [["create"]]),
    ("started 2 days ago, no level yet: draw at steady state", [], 2, "info", ["from 2026-11-28"], [["create"]]),
]


@pytest.mark.parametrize("labs,started,indicator,words,actions", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_trough(labs, started, indicator, words, actions):
    facts = make_facts("patient-view", labs=labs, meds=[on_tacrolimus(started)])
    [card] = evaluate_trough(facts, TODAY, KB)
    assert card.kind == "trough" and card.indicator == indicator, card.summary
    text = card.summary + "\n" + card.detail
    for word in words:
        assert word in text
    assert action_types(card) == actions
    assert_card_rules(card)


def test_trough_order_is_loinc_77348_1():
    [card] = evaluate_trough(make_facts("patient-view", meds=[on_tacrolimus(30)]), TODAY, KB)
    coding = card.suggestions[0].actions[0].resource["code"]["coding"][0]
    assert (coding["system"], coding["code"]) == ("http://loinc.org", "77348-1")


def test_extended_release_needs_seven_days():
    facts = make_facts("patient-view", labs=[trough(6, 0)], meds=[on_tacrolimus(6, release="extended")])
    [card] = evaluate_trough(facts, TODAY, KB)
    assert "not a steady-state trough" in card.summary and "(7 days)" in card.detail


def test_visible_dose_change_restarts_steady_state():
    facts = make_facts("patient-view", labs=[trough(12, 1)],
                       meds=[on_tacrolimus(60, rid="old"), on_tacrolimus(3, daily_mg=3, rid="new")])
    [card] = evaluate_trough(facts, TODAY, KB)
    assert card.indicator == "info" and "not a steady-state trough" in card.summary


def test_low_trough_in_pregnancy_warns_against_chasing_it():
    facts = make_facts("patient-view", labs=[trough(3)], meds=[on_tacrolimus(60)], pregnant=True)
    [card] = evaluate_trough(facts, TODAY, KB)
    assert "can overshoot" in card.detail


def test_no_trough_card_before_therapy():
    assert evaluate_trough(make_facts("order-select", meds=[draft(2)]), TODAY, KB) == []


def test_order_date_is_not_a_start_date():
    """authoredOn says when the order was written, not when she began: steady state is unconfirmed."""
    from dataclasses import replace as with_

    med = with_(on_tacrolimus(30), start_from="authoredOn")
    facts = make_facts("patient-view", labs=[trough(6)], meds=[med])
    [card] = evaluate_trough(facts, TODAY, KB)
    assert card.indicator == "info"
    assert "start date is unknown" in card.detail and "not a steady-state trough" in card.summary
