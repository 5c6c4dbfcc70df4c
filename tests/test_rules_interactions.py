"""Drug interactions with tacrolimus: clinical tables a reviewer can read.

Each table row is a chart (the orders, the labs on record, who the patient is) and what the card must
say and offer. Sources: the RIF guideline's "Drug Interactions" (azoles 50-75 % cut, troughs every
2-3 days, prefer azithromycin); drug labels (voriconazole to one third, nirmatrelvir/ritonavir,
spironolactone contraindicated in hyperkalaemia); UK Kidney Association 2020 (potassium 5.5-5.9 mild,
6.0-6.4 moderate, >= 6.5 severe); KDIGO 2012 (acute kidney injury: 1.5 x baseline or +0.3 mg/dL in 48 h).
"""

from __future__ import annotations

import copy
import re
from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from rules_support import day, lab, order_fields, order_of, resource_of, when

from cards.facts import (
    RIF,
    TRANSPLANT,
    ConditionFact,
    Measurement,
    MedicationFact,
    PatientFacts,
    PregnancyStatus,
    TransferPlan,
)
from cards.knowledge import load_knowledge
from cards.model import Card
from cards.rules.interactions import decide_interactions, evaluate_interactions
from service.hooks.extract.medications import order_shape

TODAY = date(2026, 11, 25)
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
KB = load_knowledge()


# --- a small factory: facts as extraction would build them ----------------------------------------


def med(
    drug: str,
    state: str,
    *,
    rid: str | None = None,
    daily_mg: float | None = None,
    unit: str = "mg",
    strength_mg: float | None = 1.0,
    release: str | None = "immediate",
    recognised_by: str = "rxnorm-ingredient",
    doses_per_day: float = 1,
    route: str | None = None,
    start: date | None = None,
    end: date | None = None,
    duration_days: int | None = None,
    indications: tuple[str, ...] = (),
    display: str | None = None,
    sig: str = "by mouth",
) -> MedicationFact:
    """A MedicationRequest fact; state is "selected" (selected draft), "draft", "active" or "completed"."""
    rid = rid or f"{drug}-{state}"
    status = {"selected": "draft", "draft": "draft"}.get(state, state)
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": status,
        "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "0000", "display": drug}], "text": drug},
        "subject": {"reference": "Patient/p1"},
        "authoredOn": "2026-11-25",
    }
    if daily_mg is not None:
        per_dose = daily_mg / doses_per_day
        value = per_dose if unit == "mg" else per_dose / (strength_mg or 1)
        resource["dosageInstruction"] = [
            {
                "text": sig,
                "patientInstruction": sig,
                "timing": {"repeat": {"frequency": doses_per_day, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [
                    {
                        "doseQuantity": {
                            "value": value,
                            "unit": unit,
                            "system": "http://unitsofmeasure.org",
                            "code": unit,
                        }
                    }
                ],
            }
        ]
    is_tac = drug == "tacrolimus"
    # Tacrolimus 1 mg immediate-release capsules are the shipped product 198377 (a 0.5 mg step switches
    # to its 0.5 mg capsule); any other drug is a product the table does not know.
    product_code = "RxNorm 198377" if is_tac and strength_mg == 1.0 and release == "immediate" else "RxNorm 0000"
    return MedicationFact(
        source=f"MedicationRequest/{rid}",
        resource_type="MedicationRequest",
        status=status,
        display=display or f"{drug.replace('_', ' ')} order",
        ingredients=(drug,),
        recognised_by=recognised_by,  # type: ignore[arg-type]
        matched=drug if recognised_by == "text" else product_code,
        strength_mg=strength_mg if is_tac else None,
        release=release if is_tac else None,  # type: ignore[arg-type]
        daily_dose_mg=daily_mg,
        dose_problem=None if daily_mg is not None else "no dosage instruction",
        doses_per_day=doses_per_day if daily_mg is not None else None,
        start=start,
        start_from="boundsPeriod" if start else None,
        end=end,
        duration_days=duration_days,
        is_draft=state in ("selected", "draft"),
        is_selected=state == "selected",
        route=route,  # type: ignore[arg-type]
        indications=indications,
        **order_fields(resource),
    )


def facts(
    hook: str,
    *meds: MedicationFact,
    labs: tuple[Measurement, ...] = (),
    rif: bool = True,
    sex: str | None = "female",
    born: date | None = date(1990, 5, 1),
    transplant: bool = False,
    pregnant_weeks: int | None = None,
    transfer_in_days: int | None = None,
    missing: dict[str, str] | None = None,
) -> PatientFacts:
    """Patient facts; by default a 36-year-old woman with a RIF diagnosis (an IVF course)."""
    by_concept: dict[str, list[Measurement]] = {}
    for m in labs:
        by_concept.setdefault(m.concept, []).append(m)
    ordered = {k: tuple(sorted(v, key=lambda m: m.when, reverse=True)) for k, v in by_concept.items()}
    conditions = []
    if rif:
        conditions.append(
            ConditionFact(
                concept=RIF, source="Condition/rif", code="local|rif", display="Recurrent implantation failure"
            )
        )
    if transplant:
        conditions.append(
            ConditionFact(
                concept=TRANSPLANT, source="Condition/tx", code="icd|Z94.0", display="Kidney transplant status"
            )
        )
    pregnancy = (
        PregnancyStatus(pregnant=True, evidence="hCG positive", gestational_age_days=pregnant_weeks * 7)
        if pregnant_weeks is not None
        else PregnancyStatus(pregnant=None, evidence="nothing on record")
    )
    transfers = (
        (TransferPlan(source="ServiceRequest/et1", status="active", when=when(-transfer_in_days), euploid=False),)
        if transfer_in_days is not None
        else ()
    )
    return PatientFacts(
        hook=hook,
        patient_id="p1",
        medications=meds,
        labs=ordered,
        conditions=tuple(conditions),
        pregnancy=pregnancy,
        transfers=transfers,
        sex=sex,
        birth_date=born,
        missing=missing or {},
        selections=tuple(m.source for m in meds if m.is_selected),
    )


def cards_for(hook: str, *meds: MedicationFact, **chart: Any) -> list[Card]:
    return evaluate_interactions(facts(hook, *meds, **chart), TODAY, KB)


def only_card(hook: str, *meds: MedicationFact, **chart: Any) -> Card:
    cards = cards_for(hook, *meds, **chart)
    assert len(cards) == 1, [c.kind for c in cards]
    assert_readable(cards[0])
    return cards[0]


def assert_readable(card: Card) -> None:
    """What a clinician reads in five seconds: no ids, no file names or codes, one short source line."""
    text = card.summary + "\n" + card.detail
    assert 0 < len(card.summary) < 140, card.summary
    assert len(card.detail) <= 1200, len(card.detail)
    assert "{" not in text and "MedicationRequest/" not in text and "Observation/" not in text
    assert "LOINC" not in text and ".yaml" not in text and "clinical-basis" not in text
    assert card.detail.count("Source:") == 1 and card.detail.rstrip().splitlines()[-1].startswith("Source:")
    assert card.override_reasons and all(r.display for r in card.override_reasons)
    assert (card.selection_behavior is not None) == bool(card.suggestions)
    for suggestion in card.suggestions:
        for action in suggestion.actions:
            assert "MedicationRequest/" not in action.description
            if action.resource is not None:
                fhir_valid(resource_of(action))


def fhir_valid(resource: dict[str, Any]) -> None:
    """Parse with fhir.resources (R4B shares R4's MedicationRequest and ServiceRequest)."""
    get_fhir_model_class(resource["resourceType"]).model_validate(copy.deepcopy(resource))


def dose_value(resource: Any) -> float:
    return resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"]


def dose_actions(card: Card) -> list[Any]:
    return [
        a
        for s in card.suggestions
        for a in s.actions
        if a.resource is not None
        and resource_of(a)["resourceType"] == "MedicationRequest"
        and "dosageInstruction" in resource_of(a)
    ]


def labels(card: Card) -> list[str]:
    return [s.label for s in card.suggestions]


def ordered_codes(card: Card) -> list[str]:
    return [
        resource_of(a)["code"]["coding"][0]["code"]
        for s in card.suggestions
        for a in s.actions
        if a.resource is not None and resource_of(a)["resourceType"] == "ServiceRequest"
    ]


def potassium(value: float, days_ago: float = 1, shown_unit: str = "mmol/L") -> Measurement:
    m = lab("potassium", value, days_ago)
    return Measurement(**{**m.__dict__, "shown": f"{value} {shown_unit}"})


def creatinine(value: float, days_ago: float) -> Measurement:
    m = lab("creatinine", value, days_ago)
    return Measurement(**{**m.__dict__, "shown": f"{value} mg/dL"})


# --- every class, both directions, every hook --------------------------------------------------

CLASS_EXAMPLES = [  # (drug key, class, expected indicator)
    ("fluconazole", "azole", "warning"),
    ("voriconazole", "azole", "warning"),
    ("clarithromycin", "macrolide", "warning"),
    ("erythromycin", "macrolide", "warning"),
    ("azithromycin", "macrolide (preferred)", "info"),
    ("mycophenolate_mofetil", "mycophenolate", "critical"),
    ("mycophenolic_acid", "mycophenolate", "critical"),
    ("rifampin", "inducer", "warning"),
    ("st_johns_wort", "inducer", "warning"),
    ("ritonavir", "booster (e.g. nirmatrelvir/ritonavir)", "critical"),
    ("cobicistat", "booster", "critical"),
    ("other_protease_inhibitor", "strong inhibitor", "critical"),
    ("diltiazem", "moderate inhibitor", "warning"),
    ("amiodarone", "inhibitor", "warning"),
    ("letermovir", "inhibitor", "warning"),
    ("cyclosporine", "calcineurin inhibitor", "critical"),
    ("ibuprofen", "nephrotoxic", "warning"),
    ("vancomycin", "nephrotoxic", "warning"),
    ("other_nsaid", "nephrotoxic", "warning"),
    ("aminoglycoside", "nephrotoxic", "warning"),
    ("spironolactone", "potassium raiser", "warning"),
    ("eplerenone", "potassium raiser", "warning"),
    ("ace_inhibitor", "potassium raiser", "warning"),
    ("angiotensin_receptor_blocker", "potassium raiser", "warning"),
    ("trimethoprim", "potassium raiser", "warning"),
    ("potassium_supplement", "potassium raiser", "warning"),
    ("live_attenuated_vaccine", "live vaccine", "warning"),
]

DIRECTIONS = [  # (id, hook, tacrolimus state, drug state, card expected)
    ("select-drug-added-while-on-tacrolimus", "order-select", "active", "selected", True),
    ("select-tacrolimus-added-while-on-drug", "order-select", "selected", "active", True),
    ("select-drug-with-tacrolimus-draft-as-context", "order-select", "draft", "selected", True),
    ("select-tacrolimus-with-drug-draft-as-context", "order-select", "selected", "draft", True),
    ("select-neither-selected", "order-select", "draft", "draft", False),
    ("select-both-already-active", "order-select", "active", "active", False),
    ("sign-drug-drafted-while-on-tacrolimus", "order-sign", "active", "draft", True),
    ("sign-tacrolimus-drafted-while-on-drug", "order-sign", "draft", "active", True),
    ("sign-both-drafted", "order-sign", "draft", "draft", True),
    ("sign-both-already-active", "order-sign", "active", "active", False),
    ("view-both-active", "patient-view", "active", "active", True),
]


@pytest.mark.parametrize("drug, klass, indicator", CLASS_EXAMPLES, ids=[c[0] for c in CLASS_EXAMPLES])
@pytest.mark.parametrize(
    "hook, tac_state, drug_state, expected", [d[1:] for d in DIRECTIONS], ids=[d[0] for d in DIRECTIONS]
)
def test_interaction_class_both_directions_on_each_hook(drug, klass, indicator, hook, tac_state, drug_state, expected):
    cards = cards_for(hook, med("tacrolimus", tac_state, daily_mg=2), med(drug, drug_state))
    if not expected:
        assert cards == []
        return
    [card] = cards
    assert card.kind == f"interaction:{drug}"
    assert card.indicator == indicator
    assert_readable(card)
    assert "**Tacrolimus:**" in card.detail  # both orders are named, by what they say


@pytest.mark.parametrize("drug", [c[0] for c in CLASS_EXAMPLES])
@pytest.mark.parametrize("hook", ["order-select", "order-sign", "patient-view"])
def test_no_card_without_tacrolimus_anywhere(drug, hook):
    state = {"order-select": "selected", "order-sign": "draft", "patient-view": "active"}[hook]
    assert cards_for(hook, med(drug, state), med("fluconazole", "active")) == []


# --- labs on record: potassium raisers ------------------------------------------------------------

POTASSIUM_CHARTS = [
    # (id, drug, potassium results (value, days ago), drug state, indicator, words in the summary,
    #  suggestion labels)
    (
        "spironolactone-potassium-5.8-yesterday",
        "spironolactone",
        [(5.8, 1)],
        "draft",
        "critical",
        "Potassium 5.8 mmol/L on 2026-11-24: do not start spironolactone (contraindicated in hyperkalaemia)",
        ["Remove the spironolactone draft order"],
    ),
    (
        "spironolactone-potassium-6.2-urgent-repeat-and-ecg",
        "spironolactone",
        [(6.2, 1)],
        "draft",
        "critical",
        "Potassium 6.2 mmol/L on 2026-11-24: urgent repeat and ECG; do not start spironolactone",
        ["Remove the spironolactone draft order", "Urgent potassium and ECG"],
    ),
    (
        "potassium-chloride-potassium-5.8",
        "potassium_supplement",
        [(5.8, 1)],
        "draft",
        "critical",
        "Potassium 5.8 mmol/L on 2026-11-24: do not start a potassium supplement (contraindicated",
        ["Remove the potassium supplement draft order"],
    ),
    (
        "ace-inhibitor-potassium-5.6",
        "ace_inhibitor",
        [(5.6, 2)],
        "draft",
        "critical",
        "Potassium 5.6 mmol/L on 2026-11-23: do not start an ACE inhibitor",
        ["Remove the ACE inhibitor draft order"],
    ),
    (
        "trimethoprim-potassium-6.6-severe",
        "trimethoprim",
        [(6.6, 0)],
        "draft",
        "critical",
        "Potassium 6.6 mmol/L on 2026-11-25: urgent repeat and ECG; do not start trimethoprim",
        ["Remove the trimethoprim draft order", "Urgent potassium and ECG"],
    ),
    (
        "spironolactone-already-taken-potassium-5.9-patient-view",
        "spironolactone",
        [(5.9, 1)],
        "active",
        "critical",
        "Potassium 5.9 mmol/L on 2026-11-24: stop spironolactone",
        [],
    ),
    (
        "spironolactone-normal-potassium-named-not-asked-for",
        "spironolactone",
        [(4.3, 1)],
        "draft",
        "warning",
        "Spironolactone and tacrolimus both raise potassium: recheck potassium after it starts",
        ["Order potassium"],
    ),
    (
        "spironolactone-high-potassium-but-20-days-old",
        "spironolactone",
        [(5.8, 20)],
        "draft",
        "warning",
        "Spironolactone and tacrolimus both raise potassium",
        ["Order potassium"],
    ),
    (
        "conflicting-potassium-4.3-and-6.4-the-worse-counts",
        "spironolactone",
        [(4.3, 1), (6.4, 1)],
        "draft",
        "critical",
        "Potassium 6.4 mmol/L on 2026-11-24: urgent repeat and ECG",
        ["Remove the spironolactone draft order", "Urgent potassium and ECG"],
    ),
]


@pytest.mark.parametrize(
    "drug, results, state, indicator, summary, suggestion_labels",
    [c[1:] for c in POTASSIUM_CHARTS],
    ids=[c[0] for c in POTASSIUM_CHARTS],
)
def test_potassium_on_record_escalates_potassium_raisers(drug, results, state, indicator, summary, suggestion_labels):
    labs = [potassium(v, d) for v, d in results]
    if len(labs) == 2:  # taken at the same time: extraction marks each as conflicting with the other
        a, b = labs
        labs = [
            Measurement(**{**a.__dict__, "when": b.when, "conflicts_with": (b.source,)}),
            Measurement(**{**b.__dict__, "conflicts_with": (a.source,)}),
        ]
    hook = "patient-view" if state == "active" else "order-sign"
    card = only_card(hook, med("tacrolimus", "active", daily_mg=2), med(drug, state), labs=tuple(labs))
    assert card.indicator == indicator
    assert card.summary.startswith(summary), card.summary
    assert labels(card) == suggestion_labels
    if indicator == "critical":
        assert card.verdict.startswith("potassium-")
        assert "check potassium" not in card.detail.lower()  # the result on record is named instead


def test_conflicting_potassium_results_are_both_shown():
    a, b = potassium(4.3, 1), potassium(6.4, 1)
    a = Measurement(**{**a.__dict__, "when": b.when, "conflicts_with": (b.source,)})
    b = Measurement(**{**b.__dict__, "conflicts_with": (a.source,)})
    card = only_card("order-sign", med("tacrolimus", "active", daily_mg=2), med("spironolactone", "draft"), labs=(a, b))
    assert "6.4 mmol/L on 2026-11-24 — moderate hyperkalaemia" in card.detail
    assert "reads 4.3 mmol/L: the results disagree, so the worse one is used" in card.detail


def test_urgent_potassium_orders_are_urgent_potassium_and_ecg():
    card = only_card(
        "order-sign", med("tacrolimus", "active", daily_mg=2), med("spironolactone", "draft"), labs=(potassium(6.2),)
    )
    urgent = card.suggestions[1]
    assert [resource_of(a)["priority"] for a in urgent.actions] == ["urgent", "urgent"]
    assert ordered_codes(card) == ["2823-3", "11524-6"]


def test_potassium_as_the_lab_reported_it():
    card = only_card(
        "order-sign",
        med("tacrolimus", "active", daily_mg=2),
        med("spironolactone", "draft"),
        labs=(potassium(5.8, shown_unit="mEq/L"),),
    )
    assert card.summary.startswith("Potassium 5.8 mEq/L on 2026-11-24")


@pytest.mark.parametrize(
    "tier, value",
    [
        ("normal", 5.0),
        ("above-normal", 5.1),
        ("above-normal", 5.4),
        ("mild", 5.5),
        ("mild", 5.9),
        ("moderate", 6.0),
        ("moderate", 6.4),
        ("severe", 6.5),
    ],
)
def test_potassium_tiers_are_the_uk_kidney_association_ones(tier, value):
    [decision] = decide_interactions(
        facts(
            "order-sign",
            med("tacrolimus", "active", daily_mg=2),
            med("spironolactone", "draft"),
            labs=(potassium(value),),
        ),
        TODAY,
        KB,
    )
    assert decision.potassium is not None and decision.potassium.tier == tier


def test_potassium_results_unavailable_is_said():
    card = only_card(
        "order-sign",
        med("tacrolimus", "active", daily_mg=2),
        med("spironolactone", "draft"),
        missing={"chemistry": "the EHR returned an error"},
    )
    assert "results could not be retrieved" in card.detail


# --- labs on record: nephrotoxic drugs during a creatinine rise -----------------------------------

CREATININE_CHARTS = [
    # (id, creatinine results (mg/dL, days ago), tacrolimus started days ago, indicator, tier,
    #  words in the summary)
    (
        "ibuprofen-creatinine-0.6-to-1.0-aki",
        [(0.6, 40), (1.0, 1)],
        30,
        "critical",
        "aki",
        "Creatinine rose 0.6 mg/dL → 1.0 mg/dL (+67 %): avoid ibuprofen; repeat creatinine and trough",
    ),
    (
        "baseline-is-latest-before-the-course-not-oldest-of-the-year",
        [(1.0, 300), (0.6, 35), (0.85, 1)],
        30,
        "warning",
        "rising",
        "Creatinine rose 0.6 mg/dL → 0.85 mg/dL (+42 %): avoid ibuprofen",
    ),
    (
        "rise-of-0.3-within-48-hours-is-aki",
        [(0.9, 40), (0.7, 1.5), (1.0, 0)],
        30,
        "critical",
        "aki",
        "Creatinine rose 0.9 mg/dL → 1.0 mg/dL (+11 %): avoid ibuprofen",
    ),
    (
        "stable-creatinine-is-named",
        [(0.6, 40), (0.65, 1)],
        30,
        "warning",
        "stable",
        "Ibuprofen adds to tacrolimus kidney toxicity",
    ),
    ("no-current-creatinine", [(0.6, 40)], 30, "warning", "old", "Ibuprofen adds to tacrolimus kidney toxicity"),
]


@pytest.mark.parametrize(
    "results, started, indicator, tier, summary",
    [c[1:] for c in CREATININE_CHARTS],
    ids=[c[0] for c in CREATININE_CHARTS],
)
def test_creatinine_rise_escalates_nephrotoxic_drugs(results, started, indicator, tier, summary):
    tac = med("tacrolimus", "active", daily_mg=2, start=day(-started))
    chart = facts("order-sign", tac, med("ibuprofen", "draft"), labs=tuple(creatinine(v, d) for v, d in results))
    [decision] = decide_interactions(chart, TODAY, KB)
    assert decision.creatinine is not None and decision.creatinine.tier == tier
    [card] = evaluate_interactions(chart, TODAY, KB)
    assert_readable(card)
    assert card.indicator == indicator
    assert card.summary.startswith(summary), card.summary
    if tier in ("rising", "aki"):
        assert card.verdict == f"creatinine-{tier}"
        assert labels(card) == ["Remove the ibuprofen draft order", "Repeat creatinine and tacrolimus trough"]
        assert "(2026-" in card.detail  # the dates of baseline and newest result


def test_creatinine_rise_names_both_dates():
    tac = med("tacrolimus", "active", daily_mg=2, start=day(-30))
    card = only_card("order-sign", tac, med("ibuprofen", "draft"), labs=(creatinine(0.6, 40), creatinine(1.0, 1)))
    assert "0.6 mg/dL (2026-10-16) → 1.0 mg/dL (2026-11-24), +67 % — acute kidney injury range" in card.detail


def test_conflicting_creatinine_results_use_the_higher():
    tac = med("tacrolimus", "active", daily_mg=2, start=day(-30))
    a, b = creatinine(0.7, 1), creatinine(1.1, 1)
    a = Measurement(**{**a.__dict__, "conflicts_with": (b.source,)})
    b = Measurement(**{**b.__dict__, "conflicts_with": (a.source,)})
    card = only_card("order-sign", tac, med("ibuprofen", "draft"), labs=(creatinine(0.6, 40), a, b))
    assert card.verdict == "creatinine-aki"
    assert "0.6 mg/dL (2026-10-16) → 1.1 mg/dL (2026-11-24), +83 %" in card.detail
    assert "reads 0.7 mg/dL: the results disagree" in card.detail


PATIENT_VIEW_NOISE = [  # (id, drug, labs, chart, card expected)
    (
        "spironolactone-long-taken-potassium-normal-yesterday",
        "spironolactone",
        (potassium(4.3),),
        dict(rif=False),
        False,
    ),
    ("spironolactone-long-taken-no-current-potassium", "spironolactone", (), dict(rif=False), True),
    ("ace-inhibitor-long-taken-normal-potassium-trying-to-conceive", "ace_inhibitor", (potassium(4.3),), dict(), True),
    (
        "ibuprofen-long-taken-stable-creatinine",
        "ibuprofen",
        (creatinine(0.6, 40), creatinine(0.62, 1)),
        dict(rif=False),
        False,
    ),
]


@pytest.mark.parametrize(
    "drug, labs, chart, expected", [p[1:] for p in PATIENT_VIEW_NOISE], ids=[p[0] for p in PATIENT_VIEW_NOISE]
)
def test_patient_view_no_card_when_the_labs_are_current_and_normal(drug, labs, chart, expected):
    cards = cards_for("patient-view", med("tacrolimus", "active", daily_mg=2), med(drug, "active"), labs=labs, **chart)
    assert bool(cards) == expected


def test_level_changing_orders_only_counts_systemic_current_use():
    from cards.rules.interactions import level_changing_orders

    chart = facts(
        "order-sign",
        med("tacrolimus", "draft", daily_mg=2),
        med("fluconazole", "active", rid="old", start=day(-9), end=day(-9), duration_days=1),
        med("clotrimazole", "active", rid="vaginal", route="vaginal"),
        med("clarithromycin", "draft", rid="now"),
        med("ibuprofen", "draft", rid="nsaid"),
    )
    assert [m.source for m in level_changing_orders(chart, TODAY, KB)] == ["MedicationRequest/now"]


# --- boosted antivirals ----------------------------------------------------------------------------


def test_long_term_boosted_antiretroviral_is_not_told_to_stop():
    card = only_card("patient-view", med("tacrolimus", "active", daily_mg=1), med("cobicistat", "active"))
    assert card.indicator == "critical" and "stop it" not in card.detail


def test_paxlovid_is_critical_avoid_or_hold():
    card = only_card(
        "order-select",
        med("tacrolimus", "active", daily_mg=2),
        med("ritonavir", "selected", display="nirmatrelvir 150 MG / ritonavir 100 MG (Paxlovid)"),
    )
    assert card.indicator == "critical"
    assert "avoid, or hold tacrolimus" in card.summary
    assert "hold tacrolimus" in card.detail and "without ritonavir" in card.detail
    assert labels(card)[0] == "Remove the ritonavir draft order"


# --- azoles: how long the effect lasts, capsule steps, sig text, active orders ---------------------

AZOLE_TIMING = [
    # (id, the fluconazole order, verdict (None: no card), dose change suggested, words in the summary)
    (
        "ongoing-course-gets-a-temporary-cut",
        dict(state="draft", end=day(7)),
        "dose-cut",
        True,
        "cut tacrolimus by 50–75 %",
    ),
    (
        "stopped-3-days-ago-still-counts",
        dict(state="completed", end=day(-3)),
        "recently-stopped",
        False,
        "Fluconazole stopped on 2026-11-22: tacrolimus levels will fall over 4–5 days",
    ),
    ("stopped-10-days-ago-no-longer-counts", dict(state="completed", end=day(-10)), None, False, ""),
    (
        "single-150-mg-dose-a-week-ago-no-card",
        dict(state="active", start=day(-7), end=day(-7), duration_days=1),
        None,
        False,
        "",
    ),
    (
        "single-dose-drafted-today-no-course-long-cut",
        dict(state="draft", start=day(0), end=day(0), duration_days=1),
        "single-dose",
        False,
        "Single dose of fluconazole: keep the tacrolimus dose",
    ),
    ("active-order-whose-end-date-passed-long-ago", dict(state="active", end=day(-20)), None, False, ""),
    (
        "single-dose-by-its-sig-a-week-ago-no-card",
        dict(state="active", start=day(-7), daily_mg=150, sig="150 mg by mouth, single dose"),
        None,
        False,
        "",
    ),
    (
        "single-dose-by-its-sig-two-days-ago-still-counts",
        dict(state="active", start=day(-2), daily_mg=150, sig="150 mg by mouth, single dose"),
        "single-dose",
        False,
        "Single dose of fluconazole",
    ),
]


@pytest.mark.parametrize(
    "order, verdict, dose_change, summary", [a[1:] for a in AZOLE_TIMING], ids=[a[0] for a in AZOLE_TIMING]
)
def test_azole_effect_lasts_4_to_5_days_and_single_doses_need_no_cut(order, verdict, dose_change, summary):
    hook = "order-sign"
    tac = med("tacrolimus", "draft", daily_mg=2)
    cards = cards_for(hook, tac, med("fluconazole", **order))
    assert [c.verdict for c in cards] == ([verdict] if verdict else [])
    if cards:
        [card] = cards
        assert_readable(card)
        assert summary in card.summary, card.summary
        assert bool(dose_actions(card)) == dose_change


@pytest.mark.parametrize(
    "order",
    [dict(state="draft", start=day(0), end=day(0), duration_days=1), dict(state="completed", end=day(-3))],
    ids=["single-dose", "recently-stopped"],
)
def test_single_dose_or_stopped_azole_gets_one_trough_and_no_cut_advice(order):
    card = only_card("order-sign", med("tacrolimus", "draft", daily_mg=2), med("fluconazole", **order))
    assert "Reduce the tacrolimus dose" not in card.detail
    assert labels(card) == ["Order a tacrolimus trough"]
    assert "occurrenceTiming" not in resource_of(card.suggestions[0].actions[0])


def test_a_dose_the_capsule_cannot_give_switches_to_the_half_milligram_capsule():
    """1 mg capsules counted per dose: 1 mg/day is one capsule; 0.5 mg/day needs the 0.5 mg capsule of the
    same form and release, so the suggested order names that product (one 0.5 mg capsule)."""
    tac = med("tacrolimus", "draft", daily_mg=2, unit="{capsule}", strength_mg=1)
    card = only_card("order-sign", tac, med("fluconazole", "draft"))
    actions = dose_actions(card)
    assert [dose_value(resource_of(a)) for a in actions] == [1, 1]
    codes = [resource_of(a)["medicationCodeableConcept"]["coding"][0]["code"] for a in actions]
    assert codes == ["0000", "313190"]


def test_a_dose_no_known_product_can_give_is_said():
    """An extended-release 1 mg product not in the table: 0.5 mg/day cannot be given, change it by hand."""
    tac = med("tacrolimus", "draft", daily_mg=2, unit="{capsule}", strength_mg=1, release="extended")
    card = only_card("order-sign", tac, med("fluconazole", "draft"))
    assert [dose_value(resource_of(a)) for a in dose_actions(card)] == [1]
    assert "0.5 mg/day cannot be written into this order" in card.detail


def test_azole_cut_is_temporary_and_says_when_to_return():
    card = only_card("order-sign", med("tacrolimus", "draft", daily_mg=2), med("fluconazole", "draft", end=day(7)))
    assert "The cut is temporary" in card.detail
    assert "Fluconazole is planned to end on 2026-12-02: return to 2 mg once daily then" in card.detail


PER_DOSE_STEPS = [  # (id, drug, mg per dose, doses a day, suggested mg per dose, mildest first)
    ("fluconazole-1mg-twice-daily-to-0.5-not-0.25", "fluconazole", 1, 2, [0.5]),
    ("fluconazole-2mg-twice-daily-to-1-or-0.5", "fluconazole", 2, 2, [1, 0.5]),
    ("fluconazole-3mg-once-daily-to-1.5-or-1", "fluconazole", 3, 1, [1.5, 1]),
    ("fluconazole-2mg-once-daily-to-1-or-0.5", "fluconazole", 2, 1, [1, 0.5]),
    ("fluconazole-0.5mg-twice-daily-nothing-fits", "fluconazole", 0.5, 2, []),
    ("itraconazole-4mg-once-daily-to-2-or-1", "itraconazole", 4, 1, [2, 1]),
    ("voriconazole-3mg-once-daily-to-1", "voriconazole", 3, 1, [1]),
    ("voriconazole-1.5mg-twice-daily-to-0.5", "voriconazole", 1.5, 2, [0.5]),
    ("voriconazole-2mg-once-daily-third-0.67-to-0.5", "voriconazole", 2, 1, [0.5]),
]


@pytest.mark.parametrize(
    "drug, per_dose, per_day, expected", [p[1:] for p in PER_DOSE_STEPS], ids=[p[0] for p in PER_DOSE_STEPS]
)
def test_azole_dose_cuts_in_half_milligram_steps_per_dose(drug, per_dose, per_day, expected):
    tac = med("tacrolimus", "draft", daily_mg=per_dose * per_day, doses_per_day=per_day)
    card = only_card("order-sign", tac, med(drug, "draft"))
    assert [dose_value(resource_of(a)) for a in dose_actions(card)] == expected
    if not expected:
        assert "No dose in 0.5 mg steps fits" in card.detail


def test_dose_update_keeps_the_order_and_rewrites_or_drops_the_sig():
    tac = med("tacrolimus", "draft", daily_mg=3, sig="3 mg once daily after dinner")
    card = only_card("order-sign", tac, med("fluconazole", "draft"))
    first = card.suggestions[0]
    update, trough = first.actions
    assert update.type == "update" and resource_of(update)["id"] == "tacrolimus-draft"
    dosage = resource_of(update)["dosageInstruction"][0]
    assert dose_value(resource_of(update)) == 1.5
    assert "3 mg" not in dosage.get("text", "") and "3 mg" not in dosage.get("patientInstruction", "")
    assert order_of(tac)["dosageInstruction"][0]["text"] == "3 mg once daily after dinner"  # input untouched
    assert first.label == "Tacrolimus 1.5 mg once daily, 50 % less, while on fluconazole, and order troughs"
    assert resource_of(trough)["code"]["coding"][0]["code"] == "77348-1"
    assert card.selection_behavior == "at-most-one"


def test_active_tacrolimus_gets_a_new_draft_naming_the_active_order():
    card = only_card(
        "order-sign", med("tacrolimus", "active", rid="tac1", daily_mg=2, doses_per_day=2), med("fluconazole", "draft")
    )
    [create] = [a for a in dose_actions(card)]
    assert create.type == "create"
    assert resource_of(create)["status"] == "draft" and "id" not in resource_of(create)
    assert resource_of(create)["priorPrescription"] == {"reference": "MedicationRequest/tac1"}
    assert dose_value(resource_of(create)) == 0.5
    assert "replacing the active order" in create.description


def test_patient_view_suggests_no_dose_change_only_troughs():
    card = only_card("patient-view", med("tacrolimus", "active", daily_mg=2), med("fluconazole", "active"))
    assert dose_actions(card) == []
    assert "both drugs are already active" in card.detail
    assert ordered_codes(card) == ["77348-1"]


def test_several_tacrolimus_orders_without_a_focus_get_no_dose_change():
    card = only_card(
        "order-select",
        med("tacrolimus", "active", rid="t1", daily_mg=2),
        med("tacrolimus", "active", rid="t2", daily_mg=1),
        med("fluconazole", "selected"),
    )
    assert dose_actions(card) == []
    assert "several tacrolimus orders" in card.detail


def test_trough_order_repeats_every_2_to_3_days():
    card = only_card("order-sign", med("tacrolimus", "draft", daily_mg=2), med("fluconazole", "draft"))
    trough = resource_of(card.suggestions[-1].actions[0])
    assert trough["status"] == "draft" and trough["subject"] == {"reference": "Patient/p1"}
    assert trough["occurrenceTiming"]["repeat"] == {
        "count": 3,
        "frequency": 1,
        "period": 2,
        "periodMax": 3,
        "periodUnit": "d",
    }


# --- route: only systemic use interacts --------------------------------------------------------------

ROUTES = [  # (id, tacrolimus order, other order, cards expected)
    ("vaginal-clotrimazole", dict(), ("clotrimazole", "vaginal"), []),
    ("clotrimazole-troches-by-mouth", dict(), ("clotrimazole", "oral"), ["interaction:clotrimazole"]),
    ("erythromycin-eye-ointment", dict(), ("erythromycin", "ophthalmic"), []),
    ("fluconazole-route-unknown-counts", dict(), ("fluconazole", None), ["interaction:fluconazole"]),
    ("tacrolimus-ointment-with-fluconazole", dict(route="topical"), ("fluconazole", "oral"), []),
]


@pytest.mark.parametrize("tac, other, expected", [r[1:] for r in ROUTES], ids=[r[0] for r in ROUTES])
def test_topical_vaginal_and_eye_products_do_not_interact(tac, other, expected):
    drug, route = other
    cards = cards_for("order-sign", med("tacrolimus", "active", daily_mg=2, **tac), med(drug, "draft", route=route))
    assert [c.kind for c in cards] == expected


# --- macrolides: azithromycin only when the indication allows ---------------------------------------

INDICATIONS = [  # (id, indications of the clarithromycin draft, replacement offered, recommended)
    ("pneumonia-recommended", ("community-acquired pneumonia",), True, True),
    ("no-indication-offered-not-recommended", (), True, False),
    ("h-pylori-text-no-switch", ("helicobacter pylori eradication",), False, False),
    ("mac-icd-10-code-no-switch", ("http://hl7.org/fhir/sid/icd-10-cm|a31.0",), False, False),
    ("mac-words-no-switch", ("mycobacterium avium complex",), False, False),
]


@pytest.mark.parametrize(
    "indications, offered, recommended", [i[1:] for i in INDICATIONS], ids=[i[0] for i in INDICATIONS]
)
def test_clarithromycin_to_azithromycin_only_when_the_indication_allows(indications, offered, recommended):
    card = only_card(
        "order-select",
        med("tacrolimus", "active", daily_mg=2),
        med("clarithromycin", "selected", rid="m1", indications=indications),
    )
    replacements = [s for s in card.suggestions if any(a.type == "delete" for a in s.actions)]
    assert bool(replacements) == offered
    if offered:
        [replace] = replacements
        assert replace.is_recommended == recommended
        create, delete = replace.actions  # the create first: a client stopping at a delete still creates
        assert (create.type, delete.type, delete.resource_id) == ("create", "delete", "MedicationRequest/m1")
        assert resource_of(create)["medicationCodeableConcept"]["coding"][0]["code"] == "18631"
    else:
        assert "does not replace clarithromycin for H. pylori or Mycobacterium avium complex" in card.detail
        assert card.summary.startswith("Clarithromycin raises tacrolimus levels: check a trough within 1–3 days")


def test_azithromycin_is_info_and_still_monitored():
    card = only_card("order-sign", med("tacrolimus", "active", daily_mg=2), med("azithromycin", "draft"))
    assert card.indicator == "info" and "still check troughs" in card.summary
    assert ordered_codes(card) == ["77348-1"]


# --- who the patient is: fetal risk, mycophenolate, transplant framing ----------------------------

FETAL_RISK = [
    # (id, drug, chart, fetal-risk words expected in the detail, or None)
    ("voriconazole-trying-to-conceive", "voriconazole", dict(), "Voriconazole can harm the fetus"),
    ("voriconazole-transplant-patient-no-ivf", "voriconazole", dict(rif=False, transplant=True), None),
    ("trimethoprim-8-weeks-pregnant", "trimethoprim", dict(pregnant_weeks=8), "folate antagonist"),
    ("trimethoprim-20-weeks-pregnant-past-first-trimester", "trimethoprim", dict(pregnant_weeks=20), None),
    ("trimethoprim-trying-to-conceive", "trimethoprim", dict(), "folate antagonist"),
    ("ace-inhibitor-trying-to-conceive", "ace_inhibitor", dict(), "harm the fetus from the second trimester"),
    ("ace-inhibitor-transplant-man", "ace_inhibitor", dict(rif=False, transplant=True, sex="male"), None),
    (
        "mmr-with-transfer-in-10-days",
        "live_attenuated_vaccine",
        dict(transfer_in_days=10),
        "avoid pregnancy for one month after an MMR or varicella vaccine. The embryo transfer planned for "
        "2026-12-05 falls within that month.",
    ),
    ("fluconazole-has-no-fetal-text", "fluconazole", dict(), None),
]


@pytest.mark.parametrize("drug, chart, words", [f[1:] for f in FETAL_RISK], ids=[f[0] for f in FETAL_RISK])
def test_fetal_risk_for_a_woman_trying_to_conceive_or_pregnant(drug, chart, words):
    card = only_card("order-sign", med("tacrolimus", "active", daily_mg=2), med(drug, "draft"), **chart)
    if words is None:
        assert "**Pregnancy:**" not in card.detail
    else:
        assert "**Pregnancy:**" in card.detail and words in card.detail


def test_live_vaccine_on_tacrolimus_is_a_warning_with_removal():
    card = only_card(
        "order-select",
        med("tacrolimus", "active", daily_mg=2),
        med("live_attenuated_vaccine", "selected", display="MMR vaccine"),
    )
    assert card.indicator == "warning"
    assert card.summary == "Live vaccines are avoided on tacrolimus: do not give a live attenuated vaccine"
    assert labels(card) == ["Remove the live attenuated vaccine draft order"]


MYCOPHENOLATE = [  # (id, chart, indicator or None for no card, removal offered)
    ("ivf-course-critical", dict(), "critical", True),
    ("transplant-woman-of-30-contraception-reminder", dict(rif=False, transplant=True), "warning", False),
    ("transplant-man-usual-combination-no-card", dict(rif=False, transplant=True, sex="male"), None, False),
    ("transplant-woman-of-62-no-card", dict(rif=False, transplant=True, born=date(1964, 1, 1)), None, False),
    ("man-coded-with-rif-is-not-conceiving", dict(sex="male"), None, False),
]


@pytest.mark.parametrize("chart, indicator, removal", [m[1:] for m in MYCOPHENOLATE], ids=[m[0] for m in MYCOPHENOLATE])
def test_mycophenolate_framed_by_who_the_patient_is(chart, indicator, removal):
    cards = cards_for(
        "order-sign", med("tacrolimus", "active", daily_mg=2), med("mycophenolate_mofetil", "draft"), **chart
    )
    if indicator is None:
        assert cards == []
        return
    [card] = cards
    assert_readable(card)
    assert card.indicator == indicator
    assert any(s.label.startswith("Remove") for s in card.suggestions) == removal
    if not removal:
        assert "confirm contraception" in card.summary and "IVF" not in card.detail


def test_transplant_patient_still_gets_interaction_cards_without_protocol_numbers():
    card = only_card(
        "order-sign",
        med("tacrolimus", "active", daily_mg=6, doses_per_day=2),
        med("fluconazole", "draft"),
        rif=False,
        transplant=True,
        sex="male",
    )
    assert card.indicator == "warning"
    for words in ("4 mg/day", "4–8", "Th1", "ratio", "IVF", "transfer"):
        assert words not in card.detail
    assert [dose_value(resource_of(a)) for a in dose_actions(card)] == [1.5, 1]  # 3 mg twice daily, per-dose steps


# --- never-together drugs ------------------------------------------------------------------------


@pytest.mark.parametrize("drug", ["mycophenolate_mofetil", "mycophenolic_acid", "cyclosporine"])
def test_never_together_drafts_are_critical_with_a_removal(drug):
    card = only_card("order-sign", med("tacrolimus", "active", daily_mg=2), med(drug, "draft", rid="x9"))
    assert card.indicator == "critical"
    [removal] = card.suggestions
    assert removal.label.startswith("Remove the") and removal.is_recommended
    assert [(a.type, a.resource_id) for a in removal.actions] == [("delete", "MedicationRequest/x9")]


def test_active_mycophenolate_when_tacrolimus_is_ordered_says_stop_it():
    card = only_card("order-select", med("tacrolimus", "selected"), med("mycophenolate_mofetil", "active"))
    assert card.indicator == "critical" and card.suggestions == ()
    assert "is an active order: stop it" in card.detail


def test_cyclosporine_names_the_24_hour_gap():
    card = only_card("order-sign", med("tacrolimus", "draft"), med("cyclosporine", "active"))
    assert "24 h" in card.summary and "24 hours" in card.detail


# --- immediate- vs extended-release -------------------------------------------------------------


@pytest.mark.parametrize(
    "hook, first, second, expected",
    [
        ("order-sign", ("active", "immediate"), ("draft", "extended"), True),
        ("order-select", ("active", "extended"), ("selected", "immediate"), True),
        ("patient-view", ("active", "immediate"), ("active", "extended"), True),
        ("order-sign", ("active", "immediate"), ("draft", "immediate"), False),
        ("order-sign", ("active", "immediate"), ("draft", None), False),
        ("order-sign", ("active", "immediate"), ("active", "extended"), False),
    ],
    ids=[
        "sign-switch-to-extended",
        "select-switch-to-immediate",
        "view-both-formulations-active",
        "sign-same-formulation",
        "sign-formulation-unknown",
        "sign-nothing-new",
    ],
)
def test_release_switch(hook, first, second, expected):
    cards = cards_for(
        hook,
        med("tacrolimus", first[0], rid="t1", release=first[1]),
        med("tacrolimus", second[0], rid="t2", release=second[1]),
    )
    assert [c.kind for c in cards] == (["interaction:tacrolimus-release-switch"] if expected else [])
    if expected:
        card = cards[0]
        assert_readable(card)
        assert card.indicator == "warning" and "not interchangeable" in card.summary
        assert "immediate-release" in card.detail and "extended-release" in card.detail


# --- consolidation, recognition, text --------------------------------------------------------------


def test_same_drug_in_several_orders_gives_one_card():
    cards = cards_for(
        "order-sign",
        med("tacrolimus", "active", daily_mg=2),
        med("fluconazole", "draft", rid="f1", display="Diflucan 150 mg"),
        med("fluconazole", "draft", rid="f2", display="fluconazole 50 mg"),
        med("fluconazole", "active", rid="f3", display="fluconazole 100 mg"),
    )
    [card] = cards
    assert all(words in card.detail for words in ("Diflucan 150 mg", "fluconazole 50 mg", "fluconazole 100 mg"))


def test_one_card_per_interacting_drug():
    cards = cards_for(
        "order-sign",
        med("tacrolimus", "active", daily_mg=2),
        med("fluconazole", "draft"),
        med("clarithromycin", "draft"),
        med("ibuprofen", "draft"),
        med("naproxen", "active"),
    )
    # naproxen and tacrolimus are both already active: not new on order-sign (patient-view shows it)
    assert [c.kind for c in cards] == ["interaction:fluconazole", "interaction:clarithromycin", "interaction:ibuprofen"]


def test_text_only_recognition_is_said():
    named = med("fluconazole", "draft", recognised_by="text")
    order_of(named)["medicationCodeableConcept"].pop("coding")  # type: ignore[attr-defined]
    named = replace(named, **order_shape(order_of(named)))  # the facts read from the order without its code
    card = only_card("order-sign", med("tacrolimus", "active", daily_mg=2), named)
    assert "named only in its text: confirm it is the drug meant" in card.detail


def test_a_coded_order_recognised_by_its_name_says_so_without_doubt():
    """A product code the table does not hold (as every Synthea order has) with the ingredient's name."""
    card = only_card(
        "order-sign", med("tacrolimus", "active", daily_mg=2), med("fluconazole", "draft", recognised_by="text")
    )
    assert "recognised by its ingredient name (its product code is not in this service's table)" in card.detail
    assert "confirm it is the drug meant" not in card.detail


def test_ehr_text_is_escaped_and_stripped_of_html():
    card = only_card(
        "order-sign",
        med("tacrolimus", "active", daily_mg=2),
        med("fluconazole", "draft", display="<b>fluconazole</b> *150* [mg](http://x)"),
    )
    assert "<b>" not in card.detail
    assert r"fluconazole \*150\* \[mg\](http://x)" in card.detail


@pytest.mark.parametrize("hook", ["order-select", "order-sign", "patient-view"])
def test_every_card_readable_and_every_resource_valid_fhir(hook):
    state = {"order-select": "selected", "order-sign": "draft", "patient-view": "active"}[hook]
    drugs = [c[0] for c in CLASS_EXAMPLES]
    meds = [
        med("tacrolimus", "active", rid="t0", daily_mg=3),
        med("tacrolimus", state, rid="t1", daily_mg=2, release="extended"),
    ]
    meds += [med(d, state, rid=f"x{i}", display=f"{d} " + "very long product name " * 6) for i, d in enumerate(drugs)]
    labs = (potassium(6.7), creatinine(0.6, 40), creatinine(1.2, 1))
    cards = cards_for(hook, *meds, labs=labs, pregnant_weeks=6, transfer_in_days=3)
    assert len(cards) == len(drugs) + 1
    for card in cards:
        assert_readable(card)
        for suggestion in card.suggestions:
            assert suggestion.actions
            for action in suggestion.actions:
                if action.type == "delete":
                    assert action.resource_id and action.resource_id.startswith("MedicationRequest/")


# --- the table itself -----------------------------------------------------------------------------


def test_each_drug_has_exactly_one_entry_and_every_entry_a_source():
    seen: list[str] = []
    for entry in KB["interactions"]["entries"]:
        assert entry["sources"]
        seen += entry["drugs"]
    assert len(seen) == len(set(seen))


def test_every_summary_fits_with_its_drug_names():
    for entry in KB["interactions"]["entries"]:
        for drug in entry["drugs"]:
            others = [] if drug == "tacrolimus" else [med(drug, "draft")]
            tacs = (
                [
                    med("tacrolimus", "active", rid="a", release="immediate"),
                    med("tacrolimus", "draft", rid="b", release="extended"),
                ]
                if drug == "tacrolimus"
                else [med("tacrolimus", "active")]
            )
            for card in cards_for("order-sign", *tacs, *others):
                assert_readable(card)


def test_site_file_changes_the_numbers_without_code(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text(
        "interactions:\n  dose_rounding: {step_mg: 1.0, source: 'site: whole 1 mg capsules only'}\n"
        "  default_checks: {count: 5, source: 'site'}\n"
        "protocol:\n  safety:\n    potassium:\n"
        "      warning_at: {value: 6.0, unit: mmol/L, source: site}\n"
        "      critical_at: {value: 6.5, unit: mmol/L, source: site}\n"
        "      severe_at: {value: 7.0, unit: mmol/L, source: site}\n",
        encoding="utf-8",
    )
    kb = load_knowledge(site)
    card = evaluate_interactions(
        facts("order-sign", med("tacrolimus", "draft", daily_mg=3), med("fluconazole", "draft")), TODAY, kb
    )[0]
    assert [dose_value(resource_of(a)) for a in dose_actions(card)] == [1.0]
    assert resource_of(card.suggestions[-1].actions[0])["occurrenceTiming"]["repeat"]["count"] == 5
    [k] = evaluate_interactions(
        facts(
            "order-sign",
            med("tacrolimus", "active", daily_mg=3),
            med("spironolactone", "draft"),
            labs=(potassium(5.8),),
        ),
        TODAY,
        kb,
    )
    assert k.indicator == "warning"  # the site's threshold is 6.0


def test_no_shipped_text_names_internal_files():
    text = open("cards/knowledge/interactions.yaml", encoding="utf-8").read()
    assert re.search(r"clinical-basis|data-profile|\.md\b", text) is None


# --- from FHIR: orders named in text reach their interaction card --------------------------------
# The whole path a request takes (service.hooks.extract.build_facts, then cards.evaluate.evaluate): an
# active tacrolimus order (RxNorm 42316) and an active order known only by its text, on patient-view.


def _fhir_order(rid: str, medication: dict[str, Any], status: str = "active") -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": status,
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "authoredOn": "2026-10-01",
        "medicationCodeableConcept": medication,
    }


def _cards_from_fhir(hook: str, active: list[dict[str, Any]], drafts: list[dict[str, Any]] = ()) -> list[Card]:
    from cards.evaluate import evaluate
    from service.hooks.extract import build_facts
    from service.hooks.validation import HookRequest

    context: dict[str, Any] = {"patientId": "p1", "userId": "Practitioner/u1"}
    if hook == "order-sign":
        context["draftOrders"] = {"resourceType": "Bundle", "entry": [{"resource": r} for r in drafts]}
    request = HookRequest(hook=hook, hook_instance="00000000-0000-4000-8000-000000000000", context=context)
    return evaluate(build_facts(request, {"medications": active}, KB), TODAY, KB)


TACROLIMUS_ACTIVE = _fhir_order("tac", {"coding": [{"system": RXNORM, "code": "42316", "display": "tacrolimus"}]})

FROM_TEXT = [  # (id, the other active order's text, the interaction card expected, indicator, summary words)
    ("lisinopril-ace-inhibitor", "lisinopril 10 mg tablet", "interaction:ace_inhibitor", "warning", "An ACE inhibitor"),
    (
        "losartan-arb",
        "losartan 50 mg tablet",
        "interaction:angiotensin_receptor_blocker",
        "warning",
        "An angiotensin receptor blocker (ARB)",
    ),
    (
        "gentamicin-aminoglycoside",
        "gentamicin 80 mg injection",
        "interaction:aminoglycoside",
        "warning",
        "An aminoglycoside adds to tacrolimus kidney toxicity",
    ),
    (
        "diclofenac-nsaid",
        "diclofenac 50 mg tablet",
        "interaction:other_nsaid",
        "warning",
        "An NSAID adds to tacrolimus kidney toxicity",
    ),
    (
        "eplerenone-potassium-sparing",
        "eplerenone 25 mg tablet",
        "interaction:eplerenone",
        "warning",
        "Eplerenone and tacrolimus",
    ),
    (
        "potassium-chloride-supplement",
        "Potassium Chloride 20 mEq ER tablet",
        "interaction:potassium_supplement",
        "warning",
        "Potassium supplements with tacrolimus",
    ),
    (
        "darunavir-protease-inhibitor",
        "darunavir 800 mg tablet",
        "interaction:other_protease_inhibitor",
        "critical",
        "An HIV/HCV protease inhibitor raises tacrolimus levels many-fold: avoid",
    ),
    (
        "lopinavir-ritonavir-both",
        "lopinavir/ritonavir 200/50 mg tablet",
        "interaction:other_protease_inhibitor",
        "critical",
        "An HIV/HCV protease inhibitor",
    ),
    (
        "paxlovid-by-brand",
        "Paxlovid 300 mg/100 mg dose pack",
        "interaction:ritonavir",
        "critical",
        "Ritonavir raises tacrolimus levels many-fold: avoid, or hold tacrolimus",
    ),
]


@pytest.mark.parametrize("text, kind, indicator, summary", [f[1:] for f in FROM_TEXT], ids=[f[0] for f in FROM_TEXT])
def test_patient_view_text_order_with_active_tacrolimus_gives_its_card(text, kind, indicator, summary):
    cards = _cards_from_fhir("patient-view", [TACROLIMUS_ACTIVE, _fhir_order("other", {"text": text})])
    [card] = [c for c in cards if c.kind == kind]
    assert_readable(card)
    assert card.indicator == indicator
    assert card.summary.startswith(summary), card.summary
    assert "named only in its text" in card.detail  # a clinician sees it was not coded


def test_switch_to_extended_release_named_by_brand_gives_the_release_switch_card():
    """Active immediate-release (RxNorm product 198377) and a draft known only as "Envarsus XR"."""
    active = _fhir_order("tac-ir", {"coding": [{"system": RXNORM, "code": "198377"}]})
    draft = _fhir_order("tac-xr", {"text": "Envarsus XR 4 mg tablet"}, status="draft")
    cards = _cards_from_fhir("order-sign", [active], [draft])
    assert "interaction:tacrolimus-release-switch" in [c.kind for c in cards]


def _potassium_observation(oid: str, value: float, when: str, unit: str = "mmol/L") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
    }


def test_spironolactone_draft_with_potassium_on_record_from_fhir():
    """The chart of the review: spironolactone drafted, potassium 5.8 mEq/L the day before."""
    from cards.evaluate import evaluate
    from service.hooks.extract import build_facts
    from service.hooks.validation import HookRequest

    draft = _fhir_order(
        "spiro", {"coding": [{"system": RXNORM, "code": "9997", "display": "spironolactone"}]}, status="draft"
    )
    context = {
        "patientId": "p1",
        "userId": "Practitioner/u1",
        "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": draft}]},
    }
    request = HookRequest(hook="order-sign", hook_instance="00000000-0000-4000-8000-000000000000", context=context)
    data = {
        "medications": [TACROLIMUS_ACTIVE],
        "chemistry": [_potassium_observation("k1", 5.8, "2026-11-24T08:00:00Z", unit="meq/L")],
    }
    cards = evaluate(build_facts(request, data, KB), TODAY, KB)
    [card] = [c for c in cards if c.kind == "interaction:spironolactone"]
    assert_readable(card)
    assert card.indicator == "critical"
    assert card.summary.startswith("Potassium 5.8 meq/L on 2026-11-24: do not start spironolactone"), card.summary
    assert "Order potassium" not in labels(card)
