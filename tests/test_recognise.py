"""Drug recognition from real orders: ingredient codes, product codes (SCD/SBD as EHRs send them),
names in normalised text; look-alike letters are reported, never recognised."""

from __future__ import annotations

from typing import Any

import pytest

from cards.knowledge import load_knowledge
from cards.knowledge_model import typed
from cards.recognise import DrugRecogniser, normalise
from service.hooks.extract import build_facts
from service.hooks.validation import HookRequest

KB = load_knowledge()
RECOGNISER = DrugRecogniser.from_codes(typed(KB).codes)
RX = "http://www.nlm.nih.gov/research/umls/rxnorm"


# --- every interacting drug can be recognised from a product code ---------------------------------


def test_every_interaction_drug_with_a_product_in_the_table_is_recognised_by_its_product_code():
    products = KB["codes"]["products"]
    interaction_drugs = {d for e in KB["interactions"]["entries"] for d in e["drugs"]}
    covered = {i for p in products for i in p["ingredients"]} & interaction_drugs
    # the classes a transplant or RIF chart meets most often are covered by product codes
    assert {
        "fluconazole",
        "ketoconazole",
        "clarithromycin",
        "erythromycin",
        "azithromycin",
        "trimethoprim",
        "rifampin",
        "ritonavir",
        "aminoglycoside",
        "vancomycin",
        "ibuprofen",
        "spironolactone",
        "eplerenone",
        "ace_inhibitor",
        "angiotensin_receptor_blocker",
        "nifedipine",
        "diltiazem",
        "verapamil",
        "tacrolimus",
    } <= covered
    for p in products:
        got = RECOGNISER.recognise([p["rxnorm"]], [])
        assert (got.ingredients, got.by) == (tuple(p["ingredients"]), "rxnorm-product"), p["rxnorm"]


PRODUCTS = [  # (id, RxNorm product code, ingredients, strength, dose form)
    ("clarithromycin-500-tablet", "197517", ("clarithromycin",), 500, "Oral Tablet"),
    ("azithromycin-iv", "1668238", ("azithromycin",), 500, "Injection"),
    ("co-trimoxazole-double-strength", "198335", ("sulfamethoxazole", "trimethoprim"), None, "Oral Tablet"),
    ("paxlovid-pack", "2587899", ("ritonavir",), None, "Pack"),
    ("spironolactone-25", "313096", ("spironolactone",), 25, "Oral Tablet"),
    ("sandbox-diflucan-150", "564028", ("fluconazole",), 150, None),
    ("tacrolimus-1-mg-capsule", "198377", ("tacrolimus",), 1, "Oral Capsule"),
    ("tacrolimus-ointment", "284520", ("tacrolimus",), None, "Topical Ointment"),
]


@pytest.mark.parametrize("code,ingredients,strength,form", [p[1:] for p in PRODUCTS], ids=[p[0] for p in PRODUCTS])
def test_product_codes_give_ingredient_strength_and_dose_form(code, ingredients, strength, form):
    got = RECOGNISER.recognise([code], ["anything"])
    assert got.ingredients == ingredients and got.by == "rxnorm-product" and got.matched == f"RxNorm {code}"
    assert got.product is not None and got.product.strength_mg == strength
    assert got.dose_form == form


def test_an_ingredient_code_wins_and_the_product_still_gives_the_strength():
    got = RECOGNISER.recognise(["42316", "198377"], [])
    assert (got.ingredients, got.by, got.product_code) == (("tacrolimus",), "rxnorm-ingredient", "198377")


# --- names are matched after normalisation ----------------------------------------------------------

NORMALISED = [  # (id, text, drug key)
    ("soft-hyphen", "flu\u00adconazole 150 mg tablet", "fluconazole"),
    ("zero-width-space", "clarithro\u200bmycin 500 mg", "clarithromycin"),
    ("zero-width-joiner", "tacro\u200dlimus 1 mg", "tacrolimus"),
    ("word-joiner", "vori\u2060conazole", "voriconazole"),
    ("byte-order-mark", "\ufeffspironolactone 25 mg", "spironolactone"),
    ("fullwidth-letters", "\uff46\uff4c\uff55\uff43\uff4f\uff4e\uff41\uff5a\uff4f\uff4c\uff45", "fluconazole"),
    ("typographic-apostrophe", "St John\u2019s wort extract", "st_johns_wort"),
    ("upper-case", "IBUPROFEN 400MG", "ibuprofen"),
]


@pytest.mark.parametrize("text,key", [n[1:] for n in NORMALISED], ids=[n[0] for n in NORMALISED])
def test_names_are_found_in_normalised_text(text, key):
    got = RECOGNISER.recognise([], [text])
    assert got.ingredients == (key,) and got.by == "text" and got.problem is None


def test_normalise_removes_format_characters_and_folds_compatibility_forms():
    assert normalise("Flu\u00adcon\u200bazole\u200e \ufb01") == "fluconazole fi"


LOOKALIKES = [  # (id, text): a known name with letters of another script
    ("cyrillic-o", "fluc\u043enazole 150 mg"),
    ("cyrillic-a-and-e", "spironol\u0430ctone 25 mg"),
    ("greek-omicron", "clarithr\u03bfmycin"),
]


@pytest.mark.parametrize("text", [t[1] for t in LOOKALIKES], ids=[t[0] for t in LOOKALIKES])
def test_lookalike_letters_are_not_recognised_but_reported(text):
    got = RECOGNISER.recognise([], [text])
    assert got.ingredients == () and got.by is None
    assert got.problem and "look-alike letters of another alphabet" in got.problem


def test_text_in_another_alphabet_that_names_no_drug_is_not_reported():
    assert RECOGNISER.recognise([], ["\u0430\u0441\u043f\u0438\u0440\u0438\u043d"]).problem is None  # Russian "aspirin"
    assert RECOGNISER.recognise([], ["paracetamol 500 mg"]).problem is None


# --- through extraction: what an order from an EHR becomes -----------------------------------------


def _facts(*orders: dict[str, Any]):
    request = HookRequest(
        hook="order-select",
        hook_instance="00000000-0000-4000-8000-000000000000",
        context={
            "patientId": "p1",
            "userId": "Practitioner/u1",
            "selections": [],
            "draftOrders": {"resourceType": "Bundle", "entry": []},
        },
    )
    return build_facts(request, {"medicationRequests": list(orders)}, KB)


def _order(mid: str, concept: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": mid,
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": concept,
    }


def test_a_product_coded_order_is_recognised_by_its_code_not_its_text():
    f = _facts(
        _order(
            "m1",
            {
                "coding": [
                    {
                        "system": RX,
                        "code": "198335",
                        "display": "sulfamethoxazole 800 MG / trimethoprim 160 MG Oral Tablet",
                    }
                ]
            },
        )
    )
    [m] = f.medications
    assert (m.ingredients, m.recognised_by, m.matched) == (
        ("sulfamethoxazole", "trimethoprim"),
        "rxnorm-product",
        "RxNorm 198335",
    )


def test_a_lookalike_name_is_reported_as_a_record_that_could_not_be_checked():
    f = _facts(_order("m1", {"text": "fluc\u043enazole 150 mg tablet"}))
    [m] = f.medications
    assert m.ingredients == ()
    [problem] = f.unusable
    assert problem.source == "MedicationRequest/m1" and "reads as fluconazole" in problem.reason


def test_the_recognition_says_strength_and_release_typed():
    got = RECOGNISER.recognise(["198377"], [])
    assert (got.strength_mg, got.release, got.dose_form) == (1.0, "immediate", "Oral Capsule")
    er = RECOGNISER.recognise(["1431971"], [])
    assert (er.strength_mg, er.release, er.dose_form) == (0.5, "extended", "Extended Release Oral Capsule")
    assert RECOGNISER.recognise([], ["fluconazole"]).strength_mg is None


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Tacrolimus 1 MG Oral Capsule", "tacrolimus 1 mg oral capsule"),
        ("Tacro\u200blimus", "tacrolimus"),  # a zero-width space inside the name is dropped
        ("\uff34acrolimus", "tacrolimus"),  # a fullwidth letter folds to ASCII
        ("Prograf\u2019s", "prograf's"),
    ],
)
def test_normalise_folds_ascii_and_other_text_alike(text, expected):
    assert normalise(text) == expected
