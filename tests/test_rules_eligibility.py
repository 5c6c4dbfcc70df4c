"""Card 1, candidate selection: facts → indicator, the numbers in the text, suggestion actions."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

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
    resource_of,
    transfer,
)

from cards.facts import AUTOIMMUNE, ConditionFact
from cards.rules.eligibility import evaluate_eligibility

RATIO = "th1_th2_ratio"

# A candidate is told on patient-view; what blocks an order on order-select of a new start.
# (id, labs, transfers, rif, verdict, indicator, words, actions)
CASES = [
    (
        "ratio 10.3 exactly meets the standard cut-off",
        [lab(RATIO, 10.3, 30)],
        [],
        True,
        "candidate",
        "info",
        ["10.3", "meets", "2026-10-26"],
        [],
    ),
    (
        "ratio 10.29 is below the standard cut-off",
        [lab(RATIO, 10.29, 30)],
        [],
        True,
        "below-cutoff",
        "warning",
        ["10.29", "below the 10.3 cut-off", "does not support"],
        [],
    ),
    (
        "euploid transfer: 11.8 exactly meets 11.8",
        [lab(RATIO, 11.8, 30)],
        [transfer(5, euploid=True)],
        True,
        "candidate",
        "info",
        ["11.8", "euploid blastocyst"],
        [],
    ),
    (
        "euploid transfer: 11.79 is below 11.8",
        [lab(RATIO, 11.79, 30)],
        [transfer(5, euploid=True)],
        True,
        "below-cutoff",
        "warning",
        ["below the 11.8 cut-off"],
        [],
    ),
    (
        "euploid transfer 10 days ago still counts",
        [lab(RATIO, 11.0, 30)],
        [transfer(-10, euploid=True)],
        True,
        "below-cutoff",
        "warning",
        ["below the 11.8"],
        [],
    ),
    (
        "euploid transfer 17 days ago no longer counts",
        [lab(RATIO, 11.0, 30)],
        [transfer(-17, euploid=True)],
        True,
        "candidate",
        "info",
        ["meets the 10.3"],
        [],
    ),
    (
        "no ratio on record: order the test",
        [],
        [],
        True,
        "no-ratio",
        "warning",
        ["No current Th1/Th2 ratio", "no Th1/Th2 ratio result on record"],
        [["create"]],
    ),
    (
        "ratio older than 180 days is stale",
        [lab(RATIO, 14.0, 181)],
        [],
        True,
        "no-ratio",
        "warning",
        ["181 days old", "limit 180 days"],
        [["create"]],
    ),
    ("ratio exactly 180 days old still counts", [lab(RATIO, 14.0, 180)], [], True, "candidate", "info", [], []),
    (
        "preliminary ratio: wait, do not re-order",
        [lab(RATIO, 14.0, 2, status="preliminary")],
        [],
        True,
        "ratio-pending",
        "warning",
        ["not final yet"],
        [],
    ),
    (
        "preliminary 8.0 newer than a final 12.4: newer result pending",
        [lab(RATIO, 8.0, 2, status="preliminary"), lab(RATIO, 12.4, 40)],
        [],
        True,
        "newer-result-pending",
        "warning",
        ["Newer Th1/Th2 result pending", "preliminary"],
        [],
    ),
    (
        "ratio in an unusable unit: order again",
        [lab(RATIO, None, 5, problem="unit 'ug' not convertible")],
        [],
        True,
        "no-ratio",
        "warning",
        ["cannot be compared", "not convertible"],
        [["create"]],
    ),
    (
        "RIF not documented",
        [lab(RATIO, 12.0, 30)],
        [],
        False,
        "rif-not-documented",
        "warning",
        ["RIF is not documented"],
        [],
    ),
    (
        "derived ratio says so",
        [lab(RATIO, 12.0, 30, derived_from=("Observation/t1", "Observation/t2"))],
        [],
        True,
        "candidate",
        "info",
        ["calculated from the Th1 % and Th2 %"],
        [],
    ),
]


@pytest.mark.parametrize(
    "labs,transfers,rif,verdict,indicator,words,actions", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_candidate_selection(labs, transfers, rif, verdict, indicator, words, actions):
    hook, meds = ("patient-view", []) if verdict == "candidate" else ("order-select", [draft(2)])
    facts = make_facts(hook, labs=labs, transfers=transfers, rif=rif, meds=meds)
    [card] = evaluate_eligibility(facts, TODAY, KB)
    assert (card.kind, card.verdict, card.indicator) == ("eligibility", verdict, indicator), card.summary
    text = card.summary + "\n" + card.detail
    for word in words:
        assert word in text, text
    assert action_types(card) == actions
    assert_card_rules(card)


def test_conflicting_ratios_at_one_time_are_both_shown_and_nothing_is_decided():
    a, b = lab(RATIO, 9.8, 5), lab(RATIO, 12.1, 5)
    a, b = replace(a, conflicts_with=(b.source,)), replace(b, conflicts_with=(a.source,))
    [card] = evaluate_eligibility(make_facts("order-sign", labs=[a, b], meds=[draft(2)]), TODAY, KB)
    assert card.verdict == "conflicting-ratios" and card.indicator == "warning"
    assert "9.8" in card.detail and "12.1" in card.detail


# Who gets a card, where: the same card does not follow the clinician through every hook.
@pytest.mark.parametrize(
    "hook,meds,rif,labs,extra,verdicts",
    [
        ("order-select", [draft(2, selected=False)], True, [], {}, []),
        ("order-select", [draft(2)], True, [lab(RATIO, 12.0, 30)], {}, []),  # an order being written: nothing new
        ("order-sign", [draft(2)], True, [lab(RATIO, 12.0, 30)], {}, []),  # said at order-select
        ("order-sign", [draft(2, selected=False)], True, [], {}, ["no-ratio"]),
        ("order-sign", [draft(2)], True, [lab(RATIO, 9.0, 30)], {}, ["below-cutoff"]),
        ("patient-view", [], True, [lab(RATIO, 12.0, 30)], {}, ["candidate"]),
        ("patient-view", [], True, [], {}, []),  # a chart opened: no "order the test"
        ("patient-view", [], True, [lab(RATIO, 9.0, 30)], {}, []),
        ("patient-view", [], False, [], {}, []),
        ("patient-view", [], True, [lab(RATIO, 12.0, 30)], {"sex": "male"}, []),
        ("order-select", [draft(2)], True, [lab(RATIO, 12.0, 30)], {"sex": "male"}, []),
        ("order-select", [draft(2)], True, [lab(RATIO, 12.0, 30)], {"birth_date": date(1960, 1, 1)}, []),
        (
            "order-select",
            [draft(2)],
            True,
            [lab(RATIO, 12.0, 30)],
            {"conditions": [condition("transplant_status")]},
            [],
        ),
        ("order-select", [draft(2, route="topical")], True, [lab(RATIO, 12.0, 30)], {}, []),
        ("order-select", [draft(2)], True, [lab(RATIO, 9.0, 30)], {"pregnant": True}, ["below-cutoff"]),
    ],
    ids=[
        "select: tacrolimus not selected",
        "select: candidate, nothing to add",
        "sign: candidate, nothing to add",
        "sign: no ratio",
        "sign: below cut-off",
        "view: candidate",
        "view: no ratio, nothing",
        "view: below cut-off, nothing",
        "view: neither RIF nor ratio",
        "view: a man with RIF",
        "select: a man with RIF",
        "select: 66 years old",
        "select: transplant recipient",
        "select: tacrolimus ointment",
        "select: pregnant, not on tacrolimus, is a new start",
    ],
)
def test_where_the_card_shows(hook, meds, rif, labs, extra, verdicts):
    facts = make_facts(hook, meds=meds, rif=rif, labs=labs, **extra)
    assert [c.verdict for c in evaluate_eligibility(facts, TODAY, KB)] == verdicts


def test_unknown_sex_with_an_ivf_course_is_in_scope_and_said():
    [card] = evaluate_eligibility(make_facts("patient-view", labs=[lab(RATIO, 12.0, 30)], sex=None), TODAY, KB)
    assert card.verdict == "candidate" and "Sex is not recorded" in card.detail


def test_ineligible_card_has_no_outcomes():
    [card] = evaluate_eligibility(make_facts(labs=[lab(RATIO, 9.0, 30)], meds=[draft(2)]), TODAY, KB)
    assert "live birth" not in card.detail


def test_order_suggestion_is_the_local_th1_th2_code():
    [card] = evaluate_eligibility(make_facts(meds=[draft(2)]), TODAY, KB)
    [action] = card.suggestions[0].actions
    coding = resource_of(action)["code"]["coding"][0]
    assert (coding["system"], coding["code"]) == ("http://example.org/fhir/CodeSystem/tacro-cds", "th1-th2-ratio")
    assert resource_of(action)["subject"] == {"reference": "Patient/p1"}


def test_candidate_card_gives_the_outcomes_of_the_cut_off_study_in_one_line():
    [card] = evaluate_eligibility(make_facts("patient-view", labs=[lab(RATIO, 12.0, 30)]), TODAY, KB)
    for words in ("64.0 %", "60.0 %", "6.3 %", "Source: Nakagawa 2015"):
        assert words in card.detail
    assert any("doi.org" in link.url for link in card.links)


def test_autoimmune_disease_and_raised_nk_cells_are_noted():
    autoimmune = ConditionFact(
        concept=AUTOIMMUNE, source="Condition/sle", code="sct|85828009", display="Systemic <i>lupus</i> erythematosus"
    )
    facts = make_facts(
        "patient-view",
        labs=[lab(RATIO, 12.0, 30), lab("nk_cells", 450, 30, reference_high=300)],
        conditions=[autoimmune],
    )
    [card] = evaluate_eligibility(facts, TODAY, KB)
    assert "Autoimmune disease on record (Systemic lupus erythematosus)" in card.detail  # HTML from the record removed
    assert "NK cells raised (450" in card.detail
