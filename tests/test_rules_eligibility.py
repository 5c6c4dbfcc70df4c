"""Card 1, candidate selection: facts → indicator, the numbers in the text, suggestion actions."""

from __future__ import annotations

import pytest

from cards.facts import AUTOIMMUNE, ConditionFact
from cards.rules.eligibility import evaluate_eligibility
from rules_support import KB, TODAY, action_types, assert_card_rules, draft, lab, make_facts, transfer

RATIO = "th1_th2_ratio"

# (id, labs, transfers, rif, expected indicator, words in summary+detail, suggestion action types)
CASES = [
    ("ratio 10.3 exactly meets the standard cut-off", [lab(RATIO, 10.3, 30)], [], True,
     "info", ["10.3", "meets", "2026-10-26"], []),
    ("ratio 10.29 is below the standard cut-off", [lab(RATIO, 10.29, 30)], [], True,
     "warning", ["10.29", "below the 10.3 cut-off", "does not support"], []),
    ("euploid transfer: 11.8 exactly meets 11.8", [lab(RATIO, 11.8, 30)], [transfer(5, euploid=True)], True,
     "info", ["11.8", "euploid blastocyst", "meets"], []),
    ("euploid transfer: 11.79 is below 11.8", [lab(RATIO, 11.79, 30)], [transfer(5, euploid=True)], True,
     "warning", ["11.79", "below the 11.8 cut-off"], []),
    ("euploid transfer 10 days ago still counts", [lab(RATIO, 11.0, 30)], [transfer(-10, euploid=True)], True,
     "warning", ["below the 11.8"], []),
    ("euploid transfer 17 days ago no longer counts", [lab(RATIO, 11.0, 30)], [transfer(-17, euploid=True)], True,
     "info", ["meets the 10.3"], []),
    ("no ratio on record: order the test", [], [], True,
     "warning", ["No current Th1/Th2 ratio", "no Th1/Th2 ratio result on record"], [["create"]]),
    ("ratio older than 180 days (site default) is stale", [lab(RATIO, 14.0, 181)], [], True,
     "warning", ["181 days old", "limit 180 days", "site default"], [["create"]]),
    ("ratio exactly 180 days old still counts", [lab(RATIO, 14.0, 180)], [], True,
     "info", ["meets"], []),
    ("preliminary ratio: wait, do not re-order", [lab(RATIO, 14.0, 2, status="preliminary")], [], True,
     "warning", ["not final yet", "preliminary"], []),
    ("ratio in an unusable unit: order again", [lab(RATIO, None, 5, problem="unit 'ug' not convertible")],
     [], True, "warning", ["cannot be used", "not convertible"], [["create"]]),
    ("RIF not documented", [lab(RATIO, 12.0, 30)], [], False,
     "warning", ["RIF is not documented", "not documented"], []),
    ("derived ratio says so", [lab(RATIO, 12.0, 30, derived_from=("Observation/t1", "Observation/t2"))],
     [], True, "info", ["derived as Th1 % / Th2 %", "Observation/t1"], []),
]


@pytest.mark.parametrize("labs,transfers,rif,indicator,words,actions",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_candidate_selection(labs, transfers, rif, indicator, words, actions):
    facts = make_facts("order-select", labs=labs, transfers=transfers, rif=rif, meds=[draft(2)])
    [card] = evaluate_eligibility(facts, TODAY, KB)
    assert card.kind == "eligibility"
    assert card.indicator == indicator
    text = card.summary + "\n" + card.detail
    for word in words:
        assert word in text
    assert action_types(card) == actions
    assert_card_rules(card)


def test_order_suggestion_is_the_local_th1_th2_code():
    [card] = evaluate_eligibility(make_facts(meds=[draft(2)]), TODAY, KB)
    [action] = card.suggestions[0].actions
    coding = action.resource["code"]["coding"][0]
    assert (coding["system"], coding["code"]) == ("http://example.org/fhir/CodeSystem/tacro-cds", "th1-th2-ratio")
    assert action.resource["subject"] == {"reference": "Patient/p1"}


def test_detail_quotes_outcomes_with_citations():
    [card] = evaluate_eligibility(make_facts(labs=[lab(RATIO, 12.0, 30)], meds=[draft(2)]), TODAY, KB)
    for words in ("64.0 %", "60.0 %", "6.3 %", "[nakagawa-2015]", "[bahrami-asl-2020]", "doi.org/10.1111/aji.12338"):
        assert words in card.detail
    assert any("doi.org" in link.url for link in card.links)


def test_autoimmune_disease_and_raised_nk_cells_are_noted():
    autoimmune = ConditionFact(concept=AUTOIMMUNE, source="Condition/sle", code="sct|85828009",
                               display="Systemic lupus erythematosus")
    facts = make_facts(labs=[lab(RATIO, 12.0, 30), lab("nk_cells", 450, 30, reference_high=300)],
                       conditions=[autoimmune], meds=[draft(2)])
    [card] = evaluate_eligibility(facts, TODAY, KB)
    assert "Autoimmune disease noted: Systemic lupus erythematosus" in card.detail
    assert "NK cells: 450" in card.detail and "raised" in card.detail


@pytest.mark.parametrize("hook,meds,rif,labs,expected", [
    ("order-select", [draft(2, selected=False)], True, [], 0),
    ("order-sign", [draft(2, selected=False)], True, [], 1),
    ("patient-view", [], True, [], 1),
    ("patient-view", [], False, [lab(RATIO, 12.0, 30)], 1),
    ("patient-view", [], False, [], 0),
], ids=["select: tacrolimus not selected", "sign: every draft", "view: RIF candidate",
        "view: ratio on record", "view: neither RIF nor ratio"])
def test_hook_focus(hook, meds, rif, labs, expected):
    facts = make_facts(hook, meds=meds, rif=rif, labs=labs)
    assert len(evaluate_eligibility(facts, TODAY, KB)) == expected
