"""Card 5, trough monitoring: in range 4–8 ng/mL (no card); below 4 advisory at steady state; above 8
a warning, also before steady state; at or above 20 critical; untimed or uninterpretable results shown
as such; a high level offers a repeat trough with creatinine and potassium."""

from __future__ import annotations

from dataclasses import replace

import pytest
from rules_support import (
    KB,
    TODAY,
    action_types,
    assert_card_rules,
    condition,
    draft,
    lab,
    make_facts,
    on_tacrolimus,
    resource_of,
)

from cards.rules.trough import evaluate_trough

TAC = "tacrolimus"
REPEAT = [["create", "create", "create"]]  # repeat trough + creatinine + potassium
ORDER = [["create"]]


def trough(value, days_ago=3, **kw):
    kw.setdefault("timing", "trough")
    return lab(TAC, value, days_ago, **kw)


# (id, levels, days on tacrolimus, verdict or None for no card, indicator, words in the text, actions)
CASES = [
    ("4 exactly: in range, no card", [trough(4)], 30, None, None, [], []),
    ("8 exactly: in range, no card", [trough(8)], 30, None, None, [], []),
    ("3.99 at steady state: advisory", [trough(3.99)], 30, "below-target", "info", ["below the 4–8 ng/mL"], []),
    (
        "8.1: warning, dose review, next steps",
        [trough(8.1)],
        30,
        "above-target",
        "warning",
        ["above the 4–8 ng/mL target", "review the dose", "creatinine and potassium"],
        REPEAT,
    ),
    ("19.9: warning", [trough(19.9)], 30, "above-target", "warning", [], REPEAT),
    ("20 exactly: critical", [trough(20)], 30, "critical", "critical", ["at or above 20", "hold or reduce"], REPEAT),
    (
        "day-1 trough 13.5 before steady state: warning, will climb",
        [trough(13.5, 0)],
        1,
        "above-target",
        "warning",
        ["before steady state", "climb"],
        REPEAT,
    ),
    ("pre-steady-state 3 ng/mL: no card, still climbing", [trough(3, 1)], 4, None, None, [], []),
    ("pre-steady-state 25: critical", [trough(25, 1)], 3, "critical", "critical", [], REPEAT),
    (
        "timing unknown 25: repeat as a true trough",
        [trough(25, timing="unknown")],
        30,
        "high-level-unknown-timing",
        "warning",
        ["timing not stated", "true trough"],
        REPEAT,
    ),
    ("timing unknown 6: nothing to act on", [trough(6, timing="unknown")], 30, None, None, [], []),
    (
        "no level on record: order one",
        [],
        30,
        "no-trough",
        "warning",
        ["No usable tacrolimus trough in the last 14 days"],
        ORDER,
    ),
    ("level 15 days old: order one", [trough(6, 15)], 30, "no-trough", "warning", ["15 days old"], ORDER),
    ("preliminary level in range only: wait, no order", [trough(6, 1, status="preliminary")], 30, None, None, [], []),
    (
        "preliminary critical level: critical and pending",
        [trough(25, 1, status="preliminary")],
        30,
        "critical-pending",
        "critical",
        ["25 ng/mL", "preliminary, final pending"],
        REPEAT,
    ),
    (
        "nmol/L level is shown, not hidden",
        [trough(None, 2, unit="nmol/L", shown="9.1 nmol/L", problem="unit nmol/L cannot be converted")],
        30,
        "uninterpretable",
        "info",
        ["reported as 9.1 nmol/L", "Ask the laboratory"],
        [],
    ),
    (
        "censored <1.0 is shown",
        [trough(None, 2, shown="<1.0 ng/mL", problem="below the detection limit")],
        30,
        "uninterpretable",
        "info",
        ["\\<1.0 ng/mL", "missed dose"],
        [],
    ),
    (
        "started 2 days ago, no level: draw at steady state",
        [],
        2,
        "draw-at-steady-state",
        "info",
        ["from 2026-11-28"],
        ORDER,
    ),
    (
        "two troughs at one time: the higher decides",
        [trough(6, 2, conflicts_with=("x",)), trough(12.1, 2, conflicts_with=("y",))],
        30,
        "above-target",
        "warning",
        ["Conflicting tacrolimus level results"],
        REPEAT,
    ),
]


@pytest.mark.parametrize(
    "labs,started,verdict,indicator,words,actions", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_trough(labs, started, verdict, indicator, words, actions):
    # Same-time conflicts name each other by source.
    if len(labs) == 2 and labs[0].conflicts_with:
        labs = [replace(labs[0], conflicts_with=(labs[1].source,)), replace(labs[1], conflicts_with=(labs[0].source,))]
    cards = evaluate_trough(make_facts("patient-view", labs=labs, meds=[on_tacrolimus(started)]), TODAY, KB)
    if verdict is None:
        assert cards == []
        return
    [card] = cards
    assert (card.kind, card.verdict, card.indicator) == ("trough", verdict, indicator), card.summary
    text = card.summary + "\n" + card.detail
    for word in words:
        assert word in text
    assert action_types(card) == actions
    assert_card_rules(card)


def test_high_trough_next_steps_are_trough_creatinine_and_potassium():
    [card] = evaluate_trough(make_facts("patient-view", labs=[trough(11)], meds=[on_tacrolimus(30)]), TODAY, KB)
    codes = [resource_of(a)["code"]["coding"][0]["code"] for a in card.suggestions[0].actions]
    assert codes == ["77348-1", "2160-0", "2823-3"] and card.suggestions[0].is_recommended


def test_order_date_only_does_not_dismiss_every_trough():
    """An active order with only authoredOn: a high trough is still a warning."""
    med = on_tacrolimus(30, start_from="authoredOn")
    [card] = evaluate_trough(make_facts("patient-view", labs=[trough(9.5)], meds=[med]), TODAY, KB)
    assert card.verdict == "above-target" and card.indicator == "warning"


def test_extended_release_needs_seven_days_before_a_low_trough_counts():
    facts = make_facts("patient-view", labs=[trough(3, 0)], meds=[on_tacrolimus(6, release="extended")])
    assert evaluate_trough(facts, TODAY, KB) == []  # 6 days on extended release: not yet steady


def test_visible_dose_change_restarts_steady_state():
    facts = make_facts(
        "patient-view",
        labs=[trough(3, 1)],
        meds=[on_tacrolimus(60, rid="old"), on_tacrolimus(3, daily_mg=3, rid="new")],
    )
    assert evaluate_trough(facts, TODAY, KB) == []


def test_low_trough_in_pregnancy_warns_against_chasing_it():
    facts = make_facts("patient-view", labs=[trough(3)], meds=[on_tacrolimus(60)], pregnant=True)
    [card] = evaluate_trough(facts, TODAY, KB)
    assert "can overshoot" in card.detail


def test_no_trough_card_before_therapy():
    assert evaluate_trough(make_facts("order-select", meds=[draft(2)]), TODAY, KB) == []


@pytest.mark.parametrize("level,verdict", [(9, None), (12, None), (21.5, "critical")])
def test_transplant_recipient_gets_only_the_critical_tier(level, verdict):
    """Outside the protocol the 4–8 target is not hers: only a toxic level is flagged."""
    facts = make_facts(
        "patient-view",
        labs=[trough(level)],
        meds=[on_tacrolimus(60)],
        rif=False,
        conditions=[condition("transplant_status", "Kidney transplant status")],
    )
    cards = evaluate_trough(facts, TODAY, KB)
    assert [c.verdict for c in cards] == ([verdict] if verdict else [])
    for card in cards:
        assert "4–8" not in card.summary + card.detail
        assert_card_rules(card)


def test_tacrolimus_ointment_gets_no_trough_card():
    facts = make_facts("patient-view", labs=[], meds=[on_tacrolimus(60, route="topical")])
    assert evaluate_trough(facts, TODAY, KB) == []
