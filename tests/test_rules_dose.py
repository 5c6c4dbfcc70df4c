"""Card 2, dose: the total daily tacrolimus of the session against the 4 mg/day maximum and the band
dose; duplicate therapy; suggestions an EHR can apply (0.5 mg steps, sig text rewritten, a new draft
replacing an active order)."""

from __future__ import annotations

import copy

import pytest
from rules_support import (
    KB,
    TODAY,
    action_types,
    assert_card_rules,
    assert_valid_fhir,
    condition,
    draft,
    lab,
    make_facts,
    on_tacrolimus,
    order_of,
    resource_of,
)

from cards.facts import MedicationFact
from cards.rules.dose import evaluate_dose

RATIO, TH1 = "th1_th2_ratio", "th1_pct"


def immunology(ratio, th1=20.0, days_ago=30):
    labs = [lab(RATIO, ratio, days_ago)]
    if th1 is not None:
        labs.append(lab(TH1, th1, days_ago))
    return labs


def confirmed_kb():
    """The knowledge base of a site whose clinicians confirmed the dose bands and the Th1 % trigger."""
    kb = copy.deepcopy(KB)
    kb["protocol"]["dose"]["bands"]["site_default"] = False
    kb["protocol"]["dose"]["th1_high_addon"]["th1_pct_min"]["site_default"] = False
    return kb


# Shipped knowledge: the bands are unconfirmed site defaults, only "at most 4 mg/day" is confirmed.
# (id, labs, drafts, verdict or None, indicator, words, suggestion action types, recommended?)
CASES = [
    ("ratio 10.3, 1 mg matches: no card", immunology(10.3), [draft(1)], None, None, [], [], None),
    ("below an unconfirmed band: no card", immunology(14.0), [draft(1)], None, None, [], [], None),
    ("4 mg exactly is allowed with a high Th1 %", immunology(20.0, th1=35), [draft(4)], None, None, [], [], None),
    (
        "4.5 mg/day: critical, band dose offered, not recommended",
        immunology(20.0, th1=35),
        [draft(4.5)],
        "above-maximum",
        "critical",
        ["exceeds the 4 mg/day maximum", "offered, not recommended"],
        [["update"]],
        False,
    ),
    (
        "5 mg/day with no ratio: critical, reduce by hand",
        [],
        [draft(5)],
        "above-maximum",
        "critical",
        ["at most 4 mg/day"],
        [],
        None,
    ),
    (
        "1 mg x3 + 0.5 mg x4 together = 5 mg/day: critical on the total",
        immunology(14.0),
        [
            draft(3, rid="one", frequency=3),
            draft(2, rid="half", frequency=4, strength=0.5, product="tacrolimus 0.5 MG Oral Capsule"),
        ],
        "above-maximum",
        "critical",
        ["5 mg/day in total", "Total: **5 mg/day**"],
        [],
        None,
    ),
    (
        "ratio 10.8 (1 mg band), 4 mg drafted, Th1 % unknown: above what the chart allows",
        immunology(10.8, th1=None),
        [draft(4)],
        "above-band-dose",
        "warning",
        ["above the 2 mg/day the Th1/Th2 result allows", "Th1 % unknown"],
        [["update"], ["update"]],
        False,
    ),
    (
        "ratio 14 (2 mg band), 3 mg: within band + add-on while the bands are unconfirmed",
        immunology(14.0),
        [draft(3)],
        None,
        None,
        [],
        [],
        None,
    ),
    (
        "ratio 14 (2 mg band), 4 mg: above band + add-on, 2 mg offered, not recommended",
        immunology(14.0),
        [draft(4)],
        "above-band-dose",
        "warning",
        ["above the 3 mg/day"],
        [["update"]],
        False,
    ),
    (
        "extended-release twice daily",
        immunology(14.0),
        [draft(2, frequency=2, release="extended")],
        "extended-release-twice-daily",
        "warning",
        ["once daily"],
        [],
        None,
    ),
    (
        "dose unreadable at signing",
        immunology(14.0),
        [draft(None, dose_problem="no doseQuantity")],
        "dose-unreadable",
        "warning",
        ["could not be read", "at most 4 mg/day"],
        [],
        None,
    ),
]


@pytest.mark.parametrize(
    "labs,meds,verdict,indicator,words,actions,recommended", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_dose(labs, meds, verdict, indicator, words, actions, recommended):
    cards = evaluate_dose(make_facts("order-sign", labs=labs, meds=meds), TODAY, KB)
    if verdict is None:
        assert cards == []
        return
    [card] = cards
    assert (card.kind, card.verdict, card.indicator) == ("dose", verdict, indicator), card.summary
    text = card.summary + "\n" + card.detail
    for word in words:
        assert word in text, text
    assert action_types(card) == actions
    if recommended is not None:
        assert card.suggestions[0].is_recommended is recommended
    assert_card_rules(card)


@pytest.mark.parametrize(
    "ratio,th1,drafted,expected", [(14.0, 20.0, 1, 2), (13.0, 28.8, 2, 3), (12.99, 20.0, 2, 1), (15.8, 20.0, 2, 3)]
)
def test_confirmed_bands_recommend_the_band_dose(ratio, th1, drafted, expected):
    [card] = evaluate_dose(
        make_facts("order-sign", labs=immunology(ratio, th1), meds=[draft(drafted)]), TODAY, confirmed_kb()
    )
    assert card.indicator == "warning" and card.suggestions[0].is_recommended
    assert card.suggestions[0].label == f"Change to {expected} mg/day"
    assert "still to be confirmed" not in card.detail


def test_unconfirmed_bands_are_named_in_plain_words():
    [card] = evaluate_dose(make_facts("order-sign", labs=immunology(14.0), meds=[draft(4)]), TODAY, KB)
    assert "still to be confirmed: the ratio dose bands, the Th1 % at which 1 mg is added" in card.detail
    assert "Nakagawa 2015" not in card.detail  # the bands are the site's placeholders, not a paper's


def test_update_rewrites_the_dose_and_the_sig_text_together():
    med = draft(4, frequency=2, sig="2 mg once daily after dinner")
    [card] = evaluate_dose(make_facts("order-sign", labs=immunology(14.0), meds=[med]), TODAY, KB)
    [action] = card.suggestions[0].actions
    dosage = resource_of(action)["dosageInstruction"][0]
    assert action.type == "update"
    assert dosage["doseAndRate"][0]["doseQuantity"]["value"] == 1  # 2 mg/day in 2 doses
    assert dosage["text"] == "1 capsule (1 mg) by mouth twice daily (2 mg/day)"
    assert dosage["patientInstruction"] == "Take 1 capsule (1 mg) by mouth twice daily (2 mg/day)"
    assert order_of(med)["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 2  # input untouched
    assert_valid_fhir(card)


def test_a_dose_that_needs_less_than_a_capsule_step_is_changed_by_hand():
    # 1 mg/day in three doses would be 0.33 mg: no such capsule.
    med = draft(3, frequency=3)
    [card] = evaluate_dose(make_facts("order-sign", labs=immunology(10.5), meds=[med]), TODAY, KB)
    assert not card.suggestions and "1 mg/day cannot be written into this order" in card.detail


def test_active_order_with_a_new_draft_that_does_not_replace_it_is_duplicate_therapy():
    facts = make_facts(
        "order-sign",
        labs=immunology(14.0),
        meds=[on_tacrolimus(20, daily_mg=2), draft(2, product="tacrolimus 0.5 MG Oral Capsule")],
    )
    [card] = evaluate_dose(facts, TODAY, KB)
    assert (card.verdict, card.indicator) == ("duplicate-therapy", "warning")
    assert_card_rules(card)


@pytest.mark.parametrize(
    "med",
    [draft(2, prior="MedicationRequest/tac-active"), draft(2)],
    ids=["names the active order", "renews the same product"],
)
def test_a_draft_that_replaces_the_active_order_is_a_renewal(med):
    facts = make_facts("order-sign", labs=immunology(14.0), meds=[on_tacrolimus(20, daily_mg=2), med])
    assert evaluate_dose(facts, TODAY, KB) == []


def test_renewal_above_the_maximum_is_critical():
    facts = make_facts(
        "order-sign", meds=[on_tacrolimus(20, daily_mg=3), draft(6, prior="MedicationRequest/tac-active")]
    )
    [card] = evaluate_dose(facts, TODAY, KB)
    assert card.verdict == "above-maximum" and card.indicator == "critical"


def test_transplant_recipient_gets_no_protocol_maximum():
    """Kidney transplant, 3 mg twice daily renewed: the RIF maximum is not hers."""
    facts = make_facts(
        "order-sign",
        rif=False,
        conditions=[condition("transplant_status", "Kidney transplant")],
        meds=[on_tacrolimus(200, daily_mg=6), draft(6, frequency=2, prior="MedicationRequest/tac-active")],
    )
    assert evaluate_dose(facts, TODAY, KB) == []


def test_transplant_recipient_still_gets_duplicate_therapy():
    facts = make_facts(
        "order-sign",
        rif=False,
        conditions=[condition("transplant_status")],
        meds=[on_tacrolimus(200, daily_mg=6), draft(2, product="Envarsus XR 1 MG")],
    )
    [card] = evaluate_dose(facts, TODAY, KB)
    assert card.verdict == "duplicate-therapy" and "4 mg" not in card.summary + card.detail


def test_drug_changing_levels_leaves_the_band_dose_to_the_interaction_card():
    fluconazole = MedicationFact(
        source="MedicationRequest/flu",
        resource_type="MedicationRequest",
        status="active",
        display="fluconazole 150 mg",
        ingredients=("fluconazole",),
        recognised_by="rxnorm-ingredient",
        matched="RxNorm 4450",
    )
    facts = make_facts("order-sign", labs=immunology(14.0), meds=[draft(1), fluconazole])
    assert evaluate_dose(facts, TODAY, confirmed_kb()) == []


def test_nothing_entered_yet_on_select_gives_no_card():
    facts = make_facts("order-select", labs=immunology(14.0), meds=[draft(None, no_dosage=True)])
    assert evaluate_dose(facts, TODAY, KB) == []


@pytest.mark.parametrize(
    "doses,verdicts",
    [((3, 2), ["above-maximum"]), ((2, 1), []), ((5,), ["above-maximum"])],
    ids=["3 + 2 mg active: 5 mg/day", "2 + 1 mg active: within 4", "one 5 mg order"],
)
def test_patient_view_checks_the_active_orders_together(doses, verdicts):
    meds = [on_tacrolimus(30, daily_mg=d, rid=f"a{i}", product=f"tacrolimus product {i}") for i, d in enumerate(doses)]
    cards = evaluate_dose(make_facts("patient-view", meds=meds), TODAY, KB)
    assert [c.verdict for c in cards] == verdicts
    for card in cards:
        assert card.indicator == "critical" and not card.suggestions
        assert_card_rules(card)


def test_renewal_written_as_two_capsule_strengths_is_checked_on_the_total():
    """On 1 mg capsules; renewed as 1 mg x3 plus 0.5 mg x4 (5 mg/day): critical, not silent."""
    facts = make_facts(
        "order-sign",
        meds=[
            on_tacrolimus(20, daily_mg=3),
            draft(3, rid="one", frequency=3),
            draft(2, rid="half", frequency=4, strength=0.5, product="tacrolimus 0.5 MG Oral Capsule"),
        ],
    )
    [card] = evaluate_dose(facts, TODAY, KB)
    assert (card.verdict, card.indicator) == ("above-maximum", "critical")
    assert "5 mg/day in total" in card.summary
