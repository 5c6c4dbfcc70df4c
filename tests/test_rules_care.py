"""Card 8, administration and care (issue 4, item 8): which information card shows on which hook.

Sources: guideline "Administration Guidelines" (same time, same food relation; food cuts absorption by
37 %), "Contraindications and Precautions" (Pneumocystis prophylaxis; screen for gestational diabetes
and hypertension), "Special Considerations for RIF-Plus-RPL Patients", "Breastfeeding Considerations";
clinical-reference.md §3 and §5 (co-trimoxazole; infant exposure < 0.3 %).
"""

from __future__ import annotations

from datetime import date

import pytest
import yaml

from cards.facts import RIF, RPL, ConditionFact, MedicationFact, PatientFacts, PregnancyStatus
from cards.knowledge import load_knowledge
from cards.model import Card
from cards.rules.care import evaluate_care

TODAY = date(2026, 11, 25)
KB = load_knowledge()
BREASTFEEDING = "breastfeeding"


def med(drug: str, state: str, rid: str | None = None) -> MedicationFact:
    """A MedicationRequest fact; state is "selected" (selected draft), "draft" or "active"."""
    rid = rid or f"{drug}-{state}"
    status = "active" if state == "active" else "draft"
    return MedicationFact(
        source=f"MedicationRequest/{rid}", resource_type="MedicationRequest", status=status,
        display=f"{drug} order", ingredients=(drug,), recognised_by="rxnorm-ingredient", matched="RxNorm 0000",
        daily_dose_mg=2 if drug == "tacrolimus" else None, is_draft=state != "active",
        is_selected=state == "selected",
        resource={"resourceType": "MedicationRequest", "id": rid, "status": status})


def condition(concept: str) -> ConditionFact:
    return ConditionFact(concept=concept, source=f"Condition/{concept}", code="local|x", display=concept.replace("_", " "))


def facts(hook: str, meds: list[MedicationFact], pregnant: bool | None = None,
          conditions: tuple[str, ...] = ()) -> PatientFacts:
    pregnancy = PregnancyStatus(pregnant=pregnant, evidence="Condition 77386006" if pregnant else "nothing on record",
                                source="Condition/preg" if pregnant else None)
    return PatientFacts(hook=hook, patient_id="p1", medications=tuple(meds), pregnancy=pregnancy,
                        conditions=tuple(condition(c) for c in conditions),
                        selections=tuple(m.source for m in meds if m.is_selected))


def kinds(cards: list[Card]) -> list[str]:
    return [c.kind for c in cards]


ADMIN, PJP, PREG, RIF_RPL, BF = ("care:administration", "care:pjp-prophylaxis", "care:pregnancy",
                                 "care:rif-rpl-continue", "care:breastfeeding")

PLACEMENT = [  # (id, hook, medications, pregnant, conditions, expected card kinds)
    ("select-new-tacrolimus-administration-only", "order-select", [med("tacrolimus", "selected")], None, (), [ADMIN]),
    ("sign-new-tacrolimus-administration-and-pjp", "order-sign", [med("tacrolimus", "draft")], None, (), [ADMIN, PJP]),
    ("sign-renewal-while-on-tacrolimus-nothing", "order-sign",
     [med("tacrolimus", "draft"), med("tacrolimus", "active")], None, (), []),
    ("sign-already-on-co-trimoxazole-no-pjp", "order-sign",
     [med("tacrolimus", "draft"), med("trimethoprim", "active"), med("sulfamethoxazole", "active")], None, (), [ADMIN]),
    ("sign-pjp-draft-in-same-basket-no-pjp", "order-sign",
     [med("tacrolimus", "draft"), med("atovaquone", "draft")], None, (), [ADMIN]),
    ("select-tacrolimus-draft-not-selected-nothing", "order-select",
     [med("tacrolimus", "draft"), med("fluconazole", "selected")], None, (), []),
    ("view-on-tacrolimus-not-pregnant-nothing", "patient-view", [med("tacrolimus", "active")], False, (), []),
    ("view-on-tacrolimus-pregnant", "patient-view", [med("tacrolimus", "active")], True, (), [PREG]),
    ("view-pregnant-without-tacrolimus-nothing", "patient-view", [med("fluconazole", "active")], True, (), []),
    ("select-new-tacrolimus-pregnant", "order-select", [med("tacrolimus", "selected")], True, (), [ADMIN, PREG]),
    ("select-rif-plus-rpl-not-pregnant", "order-select", [med("tacrolimus", "selected")], None, (RIF, RPL),
     [ADMIN, RIF_RPL]),
    ("sign-rif-plus-rpl-renewal", "order-sign", [med("tacrolimus", "draft"), med("tacrolimus", "active")],
     False, (RIF, RPL), [RIF_RPL]),
    ("select-rif-alone-no-rpl-card", "order-select", [med("tacrolimus", "selected")], None, (RIF,), [ADMIN]),
    ("view-rif-plus-rpl-pregnant-pregnancy-card-only", "patient-view", [med("tacrolimus", "active")], True,
     (RIF, RPL), [PREG]),
    ("view-breastfeeding-on-tacrolimus", "patient-view", [med("tacrolimus", "active")], False, (BREASTFEEDING,), [BF]),
    ("view-nothing-at-all", "patient-view", [], None, (), []),
]


@pytest.mark.parametrize("hook, meds, pregnant, conditions, expected", [p[1:] for p in PLACEMENT],
                         ids=[p[0] for p in PLACEMENT])
def test_care_cards_per_hook(hook, meds, pregnant, conditions, expected):
    cards = evaluate_care(facts(hook, meds, pregnant, conditions), TODAY, KB)
    assert kinds(cards) == expected
    for card in cards:
        assert card.indicator == "info"  # care cards never interrupt
        assert len(card.summary) < 140 and "{" not in card.summary + card.detail
        assert "**Sources:**" in card.detail and "MedicationRequest/" not in card.detail  # no ids in text
        assert card.override_reasons and all(r.display for r in card.override_reasons)
        assert card.suggestions == ()


def only(kind: str, f: PatientFacts) -> Card:
    [card] = [c for c in evaluate_care(f, TODAY, KB) if c.kind == kind]
    return card


def test_administration_names_food_37_percent_with_source():
    card = only(ADMIN, facts("order-select", [med("tacrolimus", "selected")]))
    assert "same time" in card.summary and "37 %" in card.summary
    assert "- 37 %: guideline 'Administration Guidelines' [5]" in card.detail
    assert "grapefruit" in card.detail


def test_pjp_card_names_co_trimoxazole_risks():
    card = only(PJP, facts("order-sign", [med("tacrolimus", "draft")]))
    assert "Pneumocystis" in card.summary
    assert "potassium and creatinine" in card.detail


def test_pregnancy_card_says_continue_and_screen():
    card = only(PREG, facts("patient-view", [med("tacrolimus", "active")], True))
    assert "continue" in card.summary and "gestational diabetes" in card.summary and "hypertension" in card.summary
    assert "Pregnant: Condition 77386006 (Condition/preg)" in card.detail
    assert "2/109 (1.8 %)" in card.detail and "30–60 %" in card.detail
    assert "conditionally compatible with breastfeeding (infant exposure < 0.3 %" in card.detail
    assert "recurrent pregnancy loss" not in card.detail


def test_pregnancy_card_adds_rpl_point_when_rpl_on_record():
    card = only(PREG, facts("patient-view", [med("tacrolimus", "active")], True, (RIF, RPL)))
    assert "RIF with recurrent pregnancy loss: continuing through pregnancy" in card.detail


def test_rif_rpl_card_names_the_conditions():
    card = only(RIF_RPL, facts("order-select", [med("tacrolimus", "selected")], None, (RIF, RPL)))
    assert "continue tacrolimus through pregnancy" in card.summary
    assert "Condition/recurrent_implantation_failure" in card.detail
    assert "Condition/recurrent_pregnancy_loss" in card.detail


def test_breastfeeding_card_gives_infant_exposure():
    card = only(BF, facts("patient-view", [med("tacrolimus", "active")], False, (BREASTFEEDING,)))
    assert "conditionally compatible" in card.summary and "< 0.3 %" in card.summary


def test_site_file_moves_a_card_to_another_hook(tmp_path):
    """Placement is data: a site can show the Pneumocystis card on order-select too."""
    kb = load_knowledge()
    cards = [dict(c) for c in kb["care"]["cards"]]
    for c in cards:
        if c["id"] == "pjp-prophylaxis":
            c["hooks"] = ["order-select", "order-sign"]
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump({"care": {"cards": cards}}), encoding="utf-8")
    moved = load_knowledge(site)
    assert kinds(evaluate_care(facts("order-select", [med("tacrolimus", "selected")]), TODAY, moved)) == [ADMIN, PJP]


# --- from FHIR: Pneumocystis prophylaxis already on record suppresses the card -----------------------
# The whole path (service.extract.build_facts, then cards.evaluate.evaluate) on order-sign with a new
# tacrolimus draft (RxNorm 42316): the drugs of `unless_taking` are recognised from their text.

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def _fhir_order(rid: str, medication: dict, status: str) -> dict:
    return {"resourceType": "MedicationRequest", "id": rid, "status": status, "intent": "order",
            "subject": {"reference": "Patient/p1"}, "authoredOn": "2026-11-25",
            "medicationCodeableConcept": medication}


def _care_kinds_from_fhir(active: list[dict], drafts: list[dict]) -> list[str]:
    from cards.evaluate import evaluate
    from service.extract import build_facts
    from service.validation import HookRequest

    context = {"patientId": "p1", "userId": "Practitioner/u1",
               "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": r} for r in drafts]}}
    request = HookRequest(hook="order-sign", hook_instance="00000000-0000-4000-8000-000000000000", context=context)
    return [c.kind for c in evaluate(build_facts(request, {"medications": active}, KB), TODAY, KB)
            if c.kind.startswith("care:")]


TACROLIMUS_DRAFT = _fhir_order("tac", {"coding": [{"system": RXNORM, "code": "42316", "display": "tacrolimus"}]},
                               "draft")

PJP_FROM_FHIR = [  # (id, other active orders' text, draft orders' text, Pneumocystis card shown)
    ("nothing-else-card-shown", [], [], True),
    ("active-dapsone-no-card", ["dapsone 100 mg tablet"], [], False),
    ("dapsone-drafted-with-tacrolimus-no-card", [], ["Dapsone 100 mg tablet"], False),
    ("active-atovaquone-no-card", ["atovaquone 750 mg/5 mL oral suspension"], [], False),
    ("active-pentamidine-no-card", ["pentamidine 300 mg for inhalation"], [], False),
    ("unrelated-drug-card-shown", ["folic acid 5 mg tablet"], [], True),
]


@pytest.mark.parametrize("active, drafted, shown", [p[1:] for p in PJP_FROM_FHIR], ids=[p[0] for p in PJP_FROM_FHIR])
def test_pjp_card_suppressed_by_prophylaxis_named_in_fhir(active, drafted, shown):
    active_orders = [_fhir_order(f"a{i}", {"text": t}, "active") for i, t in enumerate(active)]
    drafts = [TACROLIMUS_DRAFT] + [_fhir_order(f"d{i}", {"text": t}, "draft") for i, t in enumerate(drafted)]
    kinds_ = _care_kinds_from_fhir(active_orders, drafts)
    assert ADMIN in kinds_  # a new start either way
    assert (PJP in kinds_) == shown
