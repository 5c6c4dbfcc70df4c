"""Card 2, dose: ratio band (+1 mg for a high Th1 %, never above 4 mg/day) against the draft."""

from __future__ import annotations

import copy

import pytest

from cards.facts import MedicationFact
from cards.rules.dose import evaluate_dose
from rules_support import KB, TODAY, action_types, assert_card_rules, draft, lab, make_facts

RATIO, TH1 = "th1_th2_ratio", "th1_pct"


def immunology(ratio, th1=20.0, days_ago=30):
    labs = [lab(RATIO, ratio, days_ago)]
    if th1 is not None:
        labs.append(lab(TH1, th1, days_ago))
    return labs


# (id, labs, drafted mg/day, indicator, words, actions)
CASES = [
    ("ratio 10.3, low Th1: 1 mg matches", immunology(10.3), 1, "info", ["1 mg/day matches"], []),
    ("ratio 12.99 is still the 1 mg band", immunology(12.99), 2, "info", ["site-default dose of 1 mg/day"], [["update"]]),
    ("ratio 13.0 starts the 2 mg band", immunology(13.0), 1, "info", ["site-default dose of 2 mg/day"], [["update"]]),
    ("ratio 15.8 starts the 3 mg band", immunology(15.8), 3, "info", ["3 mg/day matches"], []),
    ("Th1 28.8 % exactly adds 1 mg", immunology(13.0, th1=28.8), 2, "info", ["site-default dose of 3 mg/day", "28.8 %"],
     [["update"]]),
    ("Th1 28.79 % adds nothing", immunology(13.0, th1=28.79), 2, "info", ["matches"], []),
    ("3 mg band + add-on = 4 mg, the maximum", immunology(20.0, th1=35), 4, "info", ["4 mg/day matches"], []),
    ("drafted 4 mg/day exactly is allowed", immunology(20.0, th1=35), 4, "info", ["matches"], []),
    ("drafted 4.5 mg/day is critical", immunology(20.0, th1=35), 4.5, "critical", ["exceeds the 4 mg/day maximum"],
     [["update"]]),
    ("drafted 5 mg/day, no ratio: critical, no dose suggested", [], 5, "critical",
     ["exceeds the 4 mg/day maximum", "by hand", "`dose.max_daily_mg`"], []),
    ("no ratio: no recommendation", [], 2, "info", ["No protocol dose", "no current, final Th1/Th2 ratio"], []),
    ("stale ratio: no recommendation", immunology(14.0, days_ago=200), 2, "info", ["200 days old"], []),
    ("preliminary ratio: no recommendation", [lab(RATIO, 14.0, 2, status="preliminary")], 1, "info",
     ["preliminary, not final"], []),
    ("ratio below cut-off: no recommendation", immunology(9.0), 1, "info", ["below the 10.3 cut-off"], []),
    ("Th1 % missing: no recommendation, both options shown", immunology(14.0, th1=None), 1, "info",
     ["Th1 % needed", "2 mg/day, or 3 mg/day if the Th1 % is high"], []),
    ("Th1 % in an unusable unit: no recommendation", [lab(RATIO, 14.0, 30), lab(TH1, 30.0, 30, unit="ratio")], 1,
     "info", ["is in ratio, not %"], []),
]


@pytest.mark.parametrize("labs,drafted,indicator,words,actions", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_dose(labs, drafted, indicator, words, actions):
    facts = make_facts("order-sign", labs=labs, meds=[draft(drafted)])
    [card] = evaluate_dose(facts, TODAY, KB)
    assert card.kind == "dose"
    assert card.indicator == indicator, card.summary
    text = card.summary + "\n" + card.detail
    for word in words:
        assert word in text
    assert action_types(card) == actions
    assert_card_rules(card)


def confirmed_kb():
    """The knowledge base of a site whose clinicians confirmed the dose bands and the Th1 % trigger."""
    kb = copy.deepcopy(KB)
    kb["protocol"]["dose"]["bands"]["site_default"] = False
    kb["protocol"]["dose"]["th1_high_addon"]["th1_pct_min"]["site_default"] = False
    return kb


def test_unconfirmed_bands_offer_the_dose_without_pressing_it():
    """Site-default numbers are shown, not pressed: info, suggestion not recommended."""
    [card] = evaluate_dose(make_facts(labs=immunology(14.0), meds=[draft(1)]), TODAY, KB)
    assert card.indicator == "info" and not card.suggestions[0].is_recommended


def test_confirmed_bands_make_a_differing_dose_a_warning():
    [card] = evaluate_dose(make_facts(labs=immunology(14.0), meds=[draft(1)]), TODAY, confirmed_kb())
    assert card.indicator == "warning" and card.suggestions[0].is_recommended
    assert "differs from the protocol dose of 2 mg/day" in card.summary
    assert "site default" not in card.detail


def test_drug_changing_levels_leaves_the_dose_to_the_interaction_card():
    fluconazole = MedicationFact(source="MedicationRequest/flu", resource_type="MedicationRequest",
                                 status="active", display="fluconazole 150 mg", ingredients=("fluconazole",),
                                 recognised_by="rxnorm-ingredient", matched="RxNorm 4450")
    facts = make_facts(labs=immunology(14.0), meds=[draft(1), fluconazole])
    [card] = evaluate_dose(facts, TODAY, confirmed_kb())
    assert card.indicator == "info" and not card.suggestions
    assert "interaction card" in card.summary


def test_card_using_site_default_bands_says_a_clinician_must_confirm():
    [card] = evaluate_dose(make_facts(labs=immunology(14.0), meds=[draft(1)]), TODAY, KB)
    assert "site default, a clinician must confirm it" in card.detail
    assert "`dose.bands`" in card.detail and "10.3–<13 → 1 mg" in card.detail


def test_update_carries_the_whole_draft_with_only_the_dose_changed():
    med = draft(1, frequency=2)  # 0.5 mg twice a day
    [card] = evaluate_dose(make_facts(labs=immunology(14.0), meds=[med]), TODAY, KB)
    [action] = card.suggestions[0].actions
    assert action.type == "update"
    expected = copy.deepcopy(dict(med.resource))
    expected["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = 1  # 2 mg/day in 2 doses
    assert action.resource == expected
    assert med.resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 0.5  # input untouched


def test_dose_that_cannot_be_rewritten_is_changed_by_hand():
    # 1 mg/day in two doses of a 1 mg capsule would need half a capsule: not representable.
    med = draft(3, unit="{capsule}", frequency=2)
    [card] = evaluate_dose(make_facts(labs=immunology(10.5), meds=[med]), TODAY, KB)
    assert card.indicator == "info" and not card.suggestions
    assert "change it to 1 mg/day by hand" in card.detail


@pytest.mark.parametrize("hook,med,expected", [
    ("order-select", draft(None, no_dosage=True), 0),
    ("order-select", draft(None, dose_problem="dose unit 'puff' not usable"), 1),
    ("order-sign", draft(None, dose_problem="no doseQuantity"), 1),
], ids=["select, nothing entered yet: no card", "select, dose unreadable: say so",
        "sign, dose unknown: say so"])
def test_unknown_dose_suggests_nothing(hook, med, expected):
    cards = evaluate_dose(make_facts(hook, labs=immunology(14.0), meds=[med]), TODAY, KB)
    assert len(cards) == expected
    for card in cards:
        assert card.indicator == "info" and not card.suggestions
        assert "could not be read" in card.summary and "2 mg/day" in card.summary


def test_two_tacrolimus_drafts_are_pointed_out():
    facts = make_facts("order-sign", labs=immunology(14.0), meds=[draft(2, rid="a"), draft(2, rid="b")])
    [card] = evaluate_dose(facts, TODAY, KB)
    assert "2 tacrolimus drafts are open" in card.detail
