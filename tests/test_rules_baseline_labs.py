"""Card 4, baseline labs: what is missing in the 90-day look-back, ordered with one suggestion."""

from __future__ import annotations

import pytest
from rules_support import KB, TODAY, assert_card_rules, draft, lab, make_facts, on_tacrolimus, resource_of

from cards.rules.baseline_labs import evaluate_baseline_labs

ALL = [
    lab("cbc_panel", None, 10, coded_value="done"),
    lab("alt", 20, 10),
    lab("creatinine", 0.8, 10),
    lab("glucose", 85, 10),
    lab("potassium", 4.1, 10),
]


def without(concept):
    return [m for m in ALL if m.concept != concept]


CASES = [
    ("all present: no card", ALL, None),
    ("nothing on record: all five ordered", [], ["58410-2", "24325-3", "2160-0", "2345-7", "2823-3"]),
    ("creatinine missing", without("creatinine"), ["2160-0"]),
    ("hemoglobin alone satisfies the CBC", without("cbc_panel") + [lab("hemoglobin", 13, 5)], None),
    ("AST alone satisfies liver tests", without("alt") + [lab("ast", 20, 5)], None),
    ("potassium 91 days old is outside the window", without("potassium") + [lab("potassium", 4.0, 91)], ["2823-3"]),
    ("potassium 90 days old is inside the window", without("potassium") + [lab("potassium", 4.0, 90)], None),
    (
        "preliminary glucose is awaited, not re-ordered",
        without("glucose") + [lab("glucose", 90, 1, status="preliminary")],
        None,
    ),
    (
        "glucose in an unusable unit is re-ordered",
        without("glucose") + [lab("glucose", None, 1, problem="unit 'g' not convertible")],
        ["2345-7"],
    ),
]


@pytest.mark.parametrize("labs,ordered", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_baseline_labs(labs, ordered):
    cards = evaluate_baseline_labs(make_facts("order-select", labs=labs, meds=[draft(2)]), TODAY, KB)
    if ordered is None:
        assert cards == []
        return
    [card] = cards
    assert card.kind == "baseline-labs" and card.indicator == "warning"
    [suggestion] = card.suggestions
    codes = [resource_of(a)["code"]["coding"][0]["code"] for a in suggestion.actions]
    assert codes == ordered
    assert all(a.type == "create" and resource_of(a)["resourceType"] == "ServiceRequest" for a in suggestion.actions)
    assert "90 days" in card.detail and "still to be confirmed: the baseline look-back window" in card.detail
    assert_card_rules(card)


def test_pending_result_is_listed():
    labs = without("glucose") + [lab("glucose", 90, 1, status="preliminary")]
    facts = make_facts(labs=[m for m in labs if m.concept != "creatinine"], meds=[draft(2)])
    [card] = evaluate_baseline_labs(facts, TODAY, KB)
    assert "Glucose: 90 mg/dL" in card.detail and "awaiting the final result" in card.detail
    assert "Creatinine" in card.summary and card.verdict == "baseline-missing"


@pytest.mark.parametrize(
    "hook,meds,labs,extra,expected",
    [
        ("order-sign", [draft(2), on_tacrolimus()], [], {}, 0),
        ("patient-view", [], [lab("th1_th2_ratio", 12.0, 10)], {}, 1),
        ("patient-view", [], [lab("th1_th2_ratio", 9.0, 10)], {}, 0),
        ("patient-view", [], [], {}, 0),
        ("order-sign", [draft(2)], [lab("th1_th2_ratio", 9.0, 10)], {}, 0),
        ("order-sign", [draft(3)], [lab("th1_th2_ratio", 12.0, 10)], {"pregnant": True}, 1),
        ("order-sign", [draft(3)], [lab("th1_th2_ratio", 12.0, 10)], {"sex": "male"}, 0),
    ],
    ids=[
        "on therapy already: safety monitoring instead",
        "view: eligible candidate",
        "view: ratio below cut-off",
        "view: RIF without a ratio",
        "sign: ratio below cut-off, no work-up",
        "sign: pregnant, not on tacrolimus: a new start needs its baseline",
        "sign: a man",
    ],
)
def test_when_the_baseline_card_applies(hook, meds, labs, extra, expected):
    assert len(evaluate_baseline_labs(make_facts(hook, meds=meds, labs=labs, **extra), TODAY, KB)) == expected
