"""Card 3, timing: start 2 days before the transfer, at least 16 days, through pregnancy."""

from __future__ import annotations

import copy

import pytest
from rules_support import (
    KB,
    TODAY,
    action_types,
    assert_card_rules,
    day,
    draft,
    make_facts,
    on_tacrolimus,
    order_of,
    pregnancy,
    resource_of,
    transfer,
)

from cards.rules.timing import evaluate_timing

# Transfer in 10 days → protocol start day(8), at least to day(8 + 15) = day(23).
# (id, draft, transfers, verdict or None, indicator, words, suggestion actions, recommended?)
CASES = [
    ("start and course match: no card", draft(2, start=day(8), end=day(23)), [transfer(10)], None, None, [], [], None),
    ("open-ended course matching start: no card", draft(2, start=day(8)), [transfer(10)], None, None, [], [], None),
    (
        "start one day late",
        draft(2, start=day(9), end=day(24)),
        [transfer(10)],
        "start-differs",
        "warning",
        ["2026-12-04 is not 2026-12-03", "2026-12-05 transfer"],
        [["update"]],
        True,
    ),
    (
        "course of 15 days is too short",
        draft(2, start=day(8), end=day(22)),
        [transfer(10)],
        "ends-early",
        "warning",
        ["ends 2026-12-17", "2026-12-18"],
        [["update"]],
        True,
    ),
    (
        "no start date: the date is offered, not recommended",
        draft(2),
        [transfer(10)],
        "no-start-date",
        "info",
        ["Set the tacrolimus start date: 2026-12-03"],
        [["update"]],
        False,
    ),
    (
        "back-dated start",
        draft(2, start=day(-3)),
        [transfer(10)],
        "back-dated",
        "warning",
        ["2026-11-22 is in the past"],
        [["update"]],
        True,
    ),
    (
        "no transfer on record: how to time it",
        draft(2, start=day(1)),
        [],
        "no-transfer",
        "info",
        ["No embryo transfer on record", "2 days", "16 days"],
        [],
        None,
    ),
    (
        "transfer 17 days ago does not count",
        draft(2, start=day(1)),
        [transfer(-17)],
        "no-transfer",
        "info",
        [],
        [],
        None,
    ),
    (
        "transfer yesterday, draft starts today: outside the protocol, no date suggested",
        draft(2, start=day(0)),
        [transfer(-1)],
        "starts-after-transfer",
        "warning",
        ["after the 2026-11-24 transfer", "outside the protocol"],
        [],
        None,
    ),
    (
        "transfer yesterday, no start date: outside the protocol",
        draft(2),
        [transfer(-1)],
        "starts-after-transfer",
        "warning",
        [],
        [],
        None,
    ),
    (
        "transfer tomorrow: protocol start passed, today offered, not recommended",
        draft(2),
        [transfer(1)],
        "late-start",
        "warning",
        ["has passed"],
        [["update"]],
        False,
    ),
]


@pytest.mark.parametrize(
    "med,transfers,verdict,indicator,words,actions,recommended", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_timing(med, transfers, verdict, indicator, words, actions, recommended):
    cards = evaluate_timing(make_facts("order-select", meds=[med], transfers=transfers), TODAY, KB)
    if verdict is None:
        assert cards == []
        return
    [card] = cards
    assert (card.kind, card.verdict, card.indicator) == ("timing", verdict, indicator), card.summary
    text = card.summary + "\n" + card.detail
    for word in words:
        assert word in text, text
    assert action_types(card) == actions
    if recommended is not None:
        assert card.suggestions[0].is_recommended is recommended
    assert_card_rules(card)


def test_negative_test_after_the_transfer_completes_the_course():
    """Negative hCG on the protocol's test day (course day 16, 13 days after the transfer), a renewal
    drafted: stop, and the renewal is questioned."""
    facts = make_facts(
        "order-sign",
        meds=[on_tacrolimus(16), draft(2, prior="MedicationRequest/tac-active")],
        transfers=[transfer(-14)],
        pregnancy_status=pregnancy(False, 1),
    )
    [card] = evaluate_timing(facts, TODAY, KB)
    assert (card.verdict, card.indicator) == ("course-complete", "warning")
    assert "2026-11-24" in card.summary and "stop tacrolimus" in card.summary
    assert action_types(card) == [["delete"]]
    assert_card_rules(card)


def test_negative_test_on_patient_view_says_stop():
    facts = make_facts(
        "patient-view", meds=[on_tacrolimus(18)], transfers=[transfer(-16)], pregnancy_status=pregnancy(False, 1)
    )
    [card] = evaluate_timing(facts, TODAY, KB)
    assert card.verdict == "course-complete" and not card.suggestions


def test_pregnant_and_not_on_tacrolimus_a_new_draft_is_a_new_start():
    facts = make_facts(
        "order-sign", meds=[draft(3)], transfers=[transfer(-40)], pregnancy_status=pregnancy(True, 30, weeks=8)
    )
    [card] = evaluate_timing(facts, TODAY, KB)
    assert (card.verdict, card.indicator) == ("starts-in-pregnancy", "warning")
    assert "about 8 weeks" in card.detail
    assert_card_rules(card)


def test_no_transfer_advice_is_given_once_at_selection_not_again_at_signing():
    assert evaluate_timing(make_facts("order-sign", meds=[draft(2, start=day(1))]), TODAY, KB) == []


def test_man_gets_no_timing_card():
    assert (
        evaluate_timing(make_facts("order-sign", meds=[draft(2)], transfers=[transfer(10)], sex="male"), TODAY, KB)
        == []
    )


def test_update_changes_only_the_bounds_period():
    med = draft(2, start=day(9), end=day(24))
    [card] = evaluate_timing(make_facts(meds=[med], transfers=[transfer(10)]), TODAY, KB)
    [action] = card.suggestions[0].actions
    expected = copy.deepcopy(order_of(med))
    expected["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] = {"start": "2026-12-03", "end": "2026-12-19"}
    assert resource_of(action) == expected


def test_short_course_is_extended_to_the_pregnancy_test():
    med = draft(2, start=day(8), end=day(20))
    [card] = evaluate_timing(make_facts(meds=[med], transfers=[transfer(10)]), TODAY, KB)
    period = resource_of(card.suggestions[0].actions[0])["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"]
    assert period == {"start": "2026-12-03", "end": "2026-12-18"}


def test_nearest_future_transfer_counts():
    med = draft(2, start=day(3))
    facts = make_facts(meds=[med], transfers=[transfer(30), transfer(5)])
    assert evaluate_timing(facts, TODAY, KB) == []


def test_patient_view_has_no_timing_card():
    assert evaluate_timing(make_facts("patient-view", transfers=[transfer(10)]), TODAY, KB) == []


@pytest.mark.parametrize(
    "transfers",
    [[transfer(-12), transfer(20)], [transfer(-60)]],
    ids=["a new transfer is planned: a new course", "the negative test belongs to no recent transfer"],
)
def test_negative_test_does_not_end_a_new_course(transfers):
    facts = make_facts(
        "order-sign", meds=[draft(2, start=day(18))], transfers=transfers, pregnancy_status=pregnancy(False, 1)
    )
    assert "course-complete" not in [c.verdict for c in evaluate_timing(facts, TODAY, KB)]
