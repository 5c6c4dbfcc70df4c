"""Card 3, timing: start 2 days before the transfer, at least 16 days, through pregnancy."""

from __future__ import annotations

import copy

import pytest

from cards.rules.timing import evaluate_timing
from rules_support import KB, TODAY, action_types, assert_card_rules, day, draft, make_facts, transfer

# Transfer in 10 days → protocol start day(8), at least to day(8 + 15) = day(23).
CASES = [
    ("start and course match: no card", draft(2, start=day(8), end=day(23)), [transfer(10)], None, [], []),
    ("open-ended course matching start: no card", draft(2, start=day(8)), [transfer(10)], None, [], []),
    ("start one day late", draft(2, start=day(9), end=day(24)), [transfer(10)], "warning",
     ["start 2026-12-04 is not 2026-12-03", "2026-12-05"], [["update"]]),
    ("course of 15 days is too short", draft(2, start=day(8), end=day(22)), [transfer(10)], "warning",
     ["ends 2026-12-17, before 2026-12-18"], [["update"]]),
    ("no start date on the draft", draft(2), [transfer(10)], "info", ["no start date", "2026-12-03"], [["update"]]),
    ("no transfer on record: how to time it", draft(2, start=day(1)), [], "info",
     ["No embryo transfer on record", "2 d", "16 d"], []),
    ("transfer 17 days ago does not count", draft(2, start=day(1)), [transfer(-17)], "info",
     ["No embryo transfer on record"], []),
    ("transfer 3 days ago: start passed, start today", draft(2, start=day(5)), [transfer(-3)], "warning",
     ["has passed", "start 2026-11-30 is not 2026-11-20"], [["update"]]),
]


@pytest.mark.parametrize("med,transfers,indicator,words,actions", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_timing(med, transfers, indicator, words, actions):
    cards = evaluate_timing(make_facts("order-sign", meds=[med], transfers=transfers), TODAY, KB)
    if indicator is None:
        assert cards == []
        return
    [card] = cards
    assert card.kind == "timing" and card.indicator == indicator
    text = card.summary + "\n" + card.detail
    for word in words:
        assert word in text
    assert action_types(card) == actions
    assert_card_rules(card)


def test_update_changes_only_the_bounds_period():
    med = draft(2, start=day(9), end=day(24))
    [card] = evaluate_timing(make_facts(meds=[med], transfers=[transfer(10)]), TODAY, KB)
    [action] = card.suggestions[0].actions
    expected = copy.deepcopy(dict(med.resource))
    expected["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] = {"start": "2026-12-03",
                                                                            "end": "2026-12-19"}
    assert action.resource == expected


def test_short_course_is_extended_to_the_pregnancy_test():
    med = draft(2, start=day(8), end=day(20))
    [card] = evaluate_timing(make_facts(meds=[med], transfers=[transfer(10)]), TODAY, KB)
    period = card.suggestions[0].actions[0].resource["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"]
    assert period == {"start": "2026-12-03", "end": "2026-12-18"}


def test_nearest_future_transfer_counts():
    med = draft(2, start=day(3))
    facts = make_facts(meds=[med], transfers=[transfer(30), transfer(5)])
    assert evaluate_timing(facts, TODAY, KB) == []


def test_patient_view_has_no_timing_card():
    assert evaluate_timing(make_facts("patient-view", transfers=[transfer(10)]), TODAY, KB) == []
