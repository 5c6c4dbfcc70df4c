"""Card 8, administration and care: which information card shows on which hook, and only when it
changes what the clinician does.

Counselling (same time, same food relation: food cuts exposure 37 %; Pneumocystis prophylaxis to
consider) comes once, when a new start is selected; the pregnancy card when she is pregnant on
tacrolimus; nothing for a renewal at signing, for a patient outside the RIF protocol, or beside a ratio
that does not support tacrolimus.
"""

from __future__ import annotations

import pytest
import yaml
from rules_support import (
    KB,
    TODAY,
    assert_card_rules,
    condition,
    draft,
    lab,
    make_facts,
    on_tacrolimus,
    pregnancy,
)

from cards.facts import RPL, MedicationFact
from cards.knowledge import load_knowledge
from cards.model import Card
from cards.rules.care import evaluate_care

ADMIN, PREG, RIF_RPL, BF = "care:administration", "care:pregnancy", "care:rif-rpl-continue", "care:breastfeeding"
RATIO_OK, RATIO_LOW = lab("th1_th2_ratio", 12.0, 20), lab("th1_th2_ratio", 9.0, 20)


def other(drug: str, status: str = "active") -> MedicationFact:
    return MedicationFact(
        source=f"MedicationRequest/{drug}",
        resource_type="MedicationRequest",
        status=status,
        display=f"{drug} order",
        ingredients=(drug,),
        recognised_by="rxnorm-ingredient",
        matched="RxNorm 0000",
        is_draft=status == "draft",
    )


def kinds(cards: list[Card]) -> list[str]:
    return [c.kind for c in cards]


PLACEMENT = [  # (id, hook, medications, extra facts, expected card kinds)
    ("select new start: counselling", "order-select", [draft(2)], {}, [ADMIN]),
    ("sign new start: counselling already given at selection", "order-sign", [draft(2)], {}, []),
    ("select a renewal while on tacrolimus: nothing", "order-select", [draft(2), on_tacrolimus()], {}, []),
    ("select new start, ratio below cut-off: no counselling", "order-select", [draft(2)], {"labs": [RATIO_LOW]}, []),
    ("view on tacrolimus, not pregnant: nothing", "patient-view", [on_tacrolimus()], {}, []),
    ("view on tacrolimus, pregnant: pregnancy card", "patient-view", [on_tacrolimus()], {"pregnant": True}, [PREG]),
    ("view pregnant without tacrolimus: nothing", "patient-view", [], {"pregnant": True}, []),
    (
        "select new start while pregnant: counselling, not 'continue'",
        "order-select",
        [draft(2)],
        {"pregnant": True},
        [ADMIN],
    ),
    ("select RIF + RPL new start", "order-select", [draft(2)], {"conditions": [condition(RPL)]}, [ADMIN, RIF_RPL]),
    (
        "view breastfeeding on tacrolimus",
        "patient-view",
        [on_tacrolimus()],
        {"conditions": [condition("breastfeeding")]},
        [BF],
    ),
    ("a man with RIF: nothing", "order-select", [draft(2)], {"sex": "male"}, []),
    (
        "transplant recipient pregnant on tacrolimus: nothing from the RIF protocol",
        "patient-view",
        [on_tacrolimus()],
        {"pregnant": True, "rif": False, "conditions": [condition("transplant_status")]},
        [],
    ),
]


@pytest.mark.parametrize("hook,meds,extra,expected", [p[1:] for p in PLACEMENT], ids=[p[0] for p in PLACEMENT])
def test_care_cards_per_hook(hook, meds, extra, expected):
    extra.setdefault("labs", [RATIO_OK])
    cards = evaluate_care(make_facts(hook, meds=meds, **extra), TODAY, KB)
    assert kinds(cards) == expected
    for card in cards:
        assert card.indicator == "info" and card.suggestions == ()  # care cards never interrupt
        assert_card_rules(card)


def only(kind: str, cards: list[Card]) -> Card:
    [card] = [c for c in cards if c.kind == kind]
    return card


def test_counselling_names_food_37_percent_and_no_routine_pneumocystis_prophylaxis():
    """Pneumocystis prophylaxis is not routine for 1-4 mg/day over 16 days in a healthy woman."""
    card = only(ADMIN, evaluate_care(make_facts(labs=[RATIO_OK], meds=[draft(2)]), TODAY, KB))
    assert "same time" in card.summary and "37 %" in card.summary
    assert "grapefruit" in card.detail and "Pneumocystis" not in card.detail
    assert "Source: Tacrolimus-RIF guideline" in card.detail


def _site_with_prophylaxis_point(tmp_path):
    cards = [dict(c) for c in KB["care"]["cards"]]
    for c in cards:
        if c["id"] == "administration":
            c["points"] = [
                *c["points"],
                {
                    "text": "Pneumocystis prophylaxis per site policy; co-trimoxazole is a "
                    "folate antagonist: avoid around conception.",
                    "unless_taking": ["dapsone", "atovaquone", "pentamidine", "trimethoprim"],
                },
            ]
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump({"care": {"cards": cards}}), encoding="utf-8")
    return load_knowledge(site)


@pytest.mark.parametrize(
    "drug,shown",
    [(None, True), ("dapsone", False), ("atovaquone", False), ("pentamidine", False), ("trimethoprim", False)],
)
def test_a_site_pneumocystis_point_is_left_out_when_prophylaxis_is_on_record(tmp_path, drug, shown):
    kb = _site_with_prophylaxis_point(tmp_path)
    facts = make_facts(labs=[RATIO_OK], meds=[draft(2), *([other(drug)] if drug else [])])
    assert ("Pneumocystis" in only(ADMIN, evaluate_care(facts, TODAY, kb)).detail) is shown


def test_pregnancy_card_says_continue_and_screen_with_how_far_along():
    facts = make_facts(
        "patient-view", labs=[RATIO_OK], meds=[on_tacrolimus(90)], pregnancy_status=pregnancy(True, 60, weeks=10)
    )
    card = only(PREG, evaluate_care(facts, TODAY, KB))
    assert "continue" in card.summary and "gestational diabetes" in card.summary
    assert "about 10 weeks" in card.detail and "2/109 (1.8 %)" in card.detail
    assert "recurrent pregnancy loss" not in card.detail


def test_pregnancy_card_adds_rpl_point_when_rpl_on_record():
    facts = make_facts(
        "patient-view", labs=[RATIO_OK], meds=[on_tacrolimus()], pregnant=True, conditions=[condition(RPL)]
    )
    assert "recurrent pregnancy loss: continuing" in only(PREG, evaluate_care(facts, TODAY, KB)).detail


def test_site_file_moves_a_card_to_another_hook(tmp_path):
    """Placement is data: a site can show the counselling card at signing too."""
    cards = [dict(c) for c in KB["care"]["cards"]]
    for c in cards:
        if c["id"] == "administration":
            c["hooks"] = ["order-select", "order-sign"]
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump({"care": {"cards": cards}}), encoding="utf-8")
    moved = load_knowledge(site)
    assert kinds(evaluate_care(make_facts("order-sign", labs=[RATIO_OK], meds=[draft(2)]), TODAY, moved)) == [ADMIN]
