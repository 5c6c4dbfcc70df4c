"""Card 7, interactions with tacrolimus: clinical tables a reviewer can read (issue 4, item 7).

Sources: guideline "Drug Interactions" (reduce 50-75 % with azoles, troughs every 2-3 days, prefer
azithromycin); clinical-reference.md §3 (voriconazole/posaconazole to one third, inducers, inhibitors,
cyclosporine, nephrotoxic drugs, potassium raisers, immediate- vs extended-release).
"""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from cards.facts import MedicationFact, PatientFacts
from cards.knowledge import load_knowledge
from cards.model import Card
from cards.rules.interactions import evaluate_interactions

TODAY = date(2026, 11, 25)
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
KB = load_knowledge()


# --- a small factory: MedicationFacts as extraction would build them -----------------------------

def med(drug: str, state: str, *, rid: str | None = None, daily_mg: float | None = None,
        unit: str = "mg", strength_mg: float | None = 1.0, release: str | None = "immediate",
        recognised_by: str = "rxnorm-ingredient", doses_per_day: float = 1) -> MedicationFact:
    """A MedicationRequest fact; state is "selected" (selected draft), "draft" or "active"."""
    rid = rid or f"{drug}-{state}"
    status = "active" if state == "active" else "draft"
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": status,
        "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "0000", "display": drug}],
                                      "text": drug},
        "subject": {"reference": "Patient/p1"},
        "authoredOn": "2026-11-25",
    }
    if daily_mg is not None:
        per_dose = daily_mg / doses_per_day
        value = per_dose if unit == "mg" else per_dose / (strength_mg or 1)
        resource["dosageInstruction"] = [{
            "text": "by mouth",
            "timing": {"repeat": {"frequency": doses_per_day, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": value, "unit": unit,
                                              "system": "http://unitsofmeasure.org", "code": unit}}],
        }]
    is_tac = drug == "tacrolimus"
    return MedicationFact(
        source=f"MedicationRequest/{rid}", resource_type="MedicationRequest", status=status,
        display=f"{drug} order", ingredients=(drug,), recognised_by=recognised_by,  # type: ignore[arg-type]
        matched=drug if recognised_by == "text" else "RxNorm 0000",
        strength_mg=strength_mg if is_tac else None, release=release if is_tac else None,  # type: ignore[arg-type]
        daily_dose_mg=daily_mg, dose_problem=None if daily_mg is not None else "no dosage instruction",
        doses_per_day=doses_per_day if daily_mg is not None else None,
        is_draft=state != "active", is_selected=state == "selected", resource=resource)


def facts(hook: str, *meds: MedicationFact) -> PatientFacts:
    return PatientFacts(hook=hook, patient_id="p1", medications=meds,
                        selections=tuple(m.source for m in meds if m.is_selected))


def cards_for(hook: str, *meds: MedicationFact) -> list[Card]:
    return evaluate_interactions(facts(hook, *meds), TODAY, KB)


def only_card(hook: str, *meds: MedicationFact) -> Card:
    cards = cards_for(hook, *meds)
    assert len(cards) == 1, [c.kind for c in cards]
    return cards[0]


def fhir_valid(resource: dict[str, Any]) -> None:
    """Parse with fhir.resources (R4B shares R4's MedicationRequest and ServiceRequest)."""
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def dose_value(resource: dict[str, Any]) -> float:
    return resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"]


def updates(card: Card) -> list[Any]:
    return [a for s in card.suggestions for a in s.actions if a.type == "update"]


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
    ("ritonavir", "strong inhibitor", "warning"),
    ("other_protease_inhibitor", "strong inhibitor", "warning"),
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
@pytest.mark.parametrize("hook, tac_state, drug_state, expected", [d[1:] for d in DIRECTIONS],
                         ids=[d[0] for d in DIRECTIONS])
def test_interaction_class_both_directions_on_each_hook(drug, klass, indicator, hook, tac_state,
                                                        drug_state, expected):
    cards = cards_for(hook, med("tacrolimus", tac_state, daily_mg=2), med(drug, drug_state))
    if not expected:
        assert cards == []
        return
    [card] = cards
    assert card.kind == f"interaction:{drug}"
    assert card.indicator == indicator
    assert len(card.summary) < 140
    assert "{" not in card.summary + card.detail  # every placeholder filled
    assert "MedicationRequest/tacrolimus-" in card.detail and f"MedicationRequest/{drug}-" in card.detail
    assert "**Sources:**" in card.detail
    assert card.override_reasons and all(r.display for r in card.override_reasons)
    assert (card.selection_behavior is not None) == bool(card.suggestions)


@pytest.mark.parametrize("drug", [c[0] for c in CLASS_EXAMPLES])
@pytest.mark.parametrize("hook", ["order-select", "order-sign", "patient-view"])
def test_no_card_without_tacrolimus_anywhere(drug, hook):
    state = {"order-select": "selected", "order-sign": "draft", "patient-view": "active"}[hook]
    assert cards_for(hook, med(drug, state), med("fluconazole", "active")) == []


# --- azoles: dose arithmetic --------------------------------------------------------------------

AZOLE_DOSES = [  # (id, drug, current mg/day, expected suggested mg/day, highest first)
    ("fluconazole-2mg-to-1-or-0.5", "fluconazole", 2, [1, 0.5]),
    ("fluconazole-3mg-to-1.5-or-1", "fluconazole", 3, [1.5, 1]),
    ("fluconazole-4mg-to-2-or-1", "fluconazole", 4, [2, 1]),
    ("fluconazole-1mg-to-0.5", "fluconazole", 1, [0.5]),
    ("itraconazole-2mg-to-1-or-0.5", "itraconazole", 2, [1, 0.5]),
    ("voriconazole-3mg-to-1", "voriconazole", 3, [1]),
    ("posaconazole-4.5mg-to-1.5", "posaconazole", 4.5, [1.5]),
    ("voriconazole-2mg-third-0.67-rounded-0.5", "voriconazole", 2, [0.5]),
]


@pytest.mark.parametrize("drug, dose, expected", [a[1:] for a in AZOLE_DOSES], ids=[a[0] for a in AZOLE_DOSES])
def test_azole_dose_reduction_updates_the_tacrolimus_order(drug, dose, expected):
    tac = med("tacrolimus", "draft", daily_mg=dose)
    card = only_card("order-sign", tac, med(drug, "draft"))
    assert card.selection_behavior == "at-most-one"
    dose_suggestions = [s for s in card.suggestions if any(a.type == "update" for a in s.actions)]
    assert [dose_value(u.resource) for u in updates(card)] == expected
    for suggestion, new in zip(dose_suggestions, expected):
        assert f"{new:g} mg/day" in suggestion.label
        update, *rest = suggestion.actions
        # The update is the whole original order with only the dose changed.
        changed = copy.deepcopy(dict(tac.resource))
        changed["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = new
        assert update.resource == changed
        assert tac.resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == dose
        fhir_valid(dict(update.resource))
        assert [a.resource["code"]["coding"][0]["code"] for a in rest] == ["77348-1"]
    assert f"{dose:g} mg/day" in card.detail  # the arithmetic is shown
    # Trough orders alone are always offered as well.
    assert any(s.label.startswith("Order tacrolimus trough") for s in card.suggestions)


def test_azole_range_names_fraction_and_bounds():
    card = only_card("order-sign", med("tacrolimus", "draft", daily_mg=2), med("fluconazole", "draft"))
    assert "50–75 %" in card.summary and "2–3 days" in card.summary
    assert "2 mg/day reduced by 50–75 % = 0.5–1 mg/day" in card.detail
    assert [s.label for s in card.suggestions][:2] == [
        "Reduce tacrolimus to 1 mg/day (50 % less) and order troughs",
        "Reduce tacrolimus to 0.5 mg/day (75 % less) and order troughs"]


def test_voriconazole_names_one_third_and_rounding():
    card = only_card("order-sign", med("tacrolimus", "draft", daily_mg=2), med("voriconazole", "draft"))
    assert "one third" in card.summary
    assert "one third of 2 mg/day = 0.67 mg/day, rounded to 0.5 mg/day" in card.detail


def test_dose_unknown_gives_no_update_but_still_troughs():
    card = only_card("order-sign", med("tacrolimus", "draft"), med("fluconazole", "draft"))
    assert updates(card) == []
    assert "daily dose of MedicationRequest/tacrolimus-draft is unknown (no dosage instruction)" in card.detail
    assert [s.label for s in card.suggestions] == ["Order tacrolimus trough every 2–3 days (3 checks)"]


def test_dose_too_small_for_capsule_steps_is_said_not_suggested():
    card = only_card("order-sign", med("tacrolimus", "draft", daily_mg=0.5), med("fluconazole", "draft"))
    assert updates(card) == []
    assert "No dose in 0.5 mg steps fits this range" in card.detail


def test_capsule_count_order_only_gets_whole_capsule_doses():
    """1 mg capsules: 2 mg/day → 1 capsule is writable, 0.5 mg/day (half a capsule) is not."""
    tac = med("tacrolimus", "draft", daily_mg=2, unit="{capsule}", strength_mg=1)
    card = only_card("order-sign", tac, med("fluconazole", "draft"))
    assert [dose_value(u.resource) for u in updates(card)] == [1]
    assert "0.5 mg/day cannot be written into MedicationRequest/tacrolimus-draft automatically" in card.detail


def test_active_tacrolimus_order_is_updated_and_said_to_be_active():
    card = only_card("order-sign", med("tacrolimus", "active", daily_mg=2), med("fluconazole", "draft"))
    [first, *_] = updates(card)
    assert first.resource["status"] == "active" and first.resource["id"] == "tacrolimus-active"
    assert first.description.startswith("Change the active tacrolimus order MedicationRequest/tacrolimus-active")


def test_patient_view_suggests_no_dose_change_only_troughs():
    card = only_card("patient-view", med("tacrolimus", "active", daily_mg=2), med("fluconazole", "active"))
    assert updates(card) == []
    assert "both drugs are already active" in card.detail
    assert [a.type for s in card.suggestions for a in s.actions] == ["create"]


def test_several_tacrolimus_orders_without_a_focus_get_no_dose_change():
    card = only_card("order-select", med("tacrolimus", "active", rid="t1", daily_mg=2),
                     med("tacrolimus", "active", rid="t2", daily_mg=1), med("fluconazole", "selected"))
    assert updates(card) == []
    assert "several tacrolimus orders" in card.detail


def test_the_tacrolimus_order_in_focus_is_the_one_updated():
    card = only_card("order-sign", med("tacrolimus", "active", rid="t1", daily_mg=2),
                     med("tacrolimus", "draft", rid="t2", daily_mg=4), med("fluconazole", "active"))
    assert {u.resource["id"] for u in updates(card)} == {"t2"}


def test_trough_order_repeats_every_2_to_3_days():
    card = only_card("order-sign", med("tacrolimus", "draft", daily_mg=2), med("fluconazole", "draft"))
    trough = card.suggestions[-1].actions[0].resource
    fhir_valid(dict(trough))
    assert trough["status"] == "draft" and trough["subject"] == {"reference": "Patient/p1"}
    assert trough["code"]["coding"][0] == {"system": "http://loinc.org", "code": "77348-1",
                                          "display": "Tacrolimus [Mass/volume] in Blood --trough"}
    assert trough["occurrenceTiming"]["repeat"] == {"count": 3, "frequency": 1, "period": 2, "periodMax": 3,
                                                    "periodUnit": "d"}
    assert "number of checks: site default" in card.detail


# --- macrolides ---------------------------------------------------------------------------------

@pytest.mark.parametrize("drug", ["clarithromycin", "erythromycin"])
def test_macrolide_draft_is_replaced_by_an_azithromycin_draft(drug):
    card = only_card("order-select", med("tacrolimus", "active", daily_mg=2), med(drug, "selected", rid="m1"))
    replace = card.suggestions[0]
    assert replace.label == f"Replace {drug} with azithromycin (draft to complete)" and replace.is_recommended
    delete, create = replace.actions
    assert (delete.type, delete.resource_id) == ("delete", "MedicationRequest/m1")
    assert create.type == "create"
    assert create.resource == {
        "resourceType": "MedicationRequest", "status": "draft", "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "18631", "display": "azithromycin"}],
                                      "text": "azithromycin"},
        "subject": {"reference": "Patient/p1"}}
    fhir_valid(dict(create.resource))
    assert "prefer azithromycin" in card.summary
    assert card.selection_behavior == "any"


def test_active_macrolide_is_not_replaced():
    card = only_card("order-select", med("tacrolimus", "selected", daily_mg=2), med("clarithromycin", "active"))
    assert [a.type for s in card.suggestions for a in s.actions] == ["create"]
    assert card.suggestions[0].actions[0].resource["resourceType"] == "ServiceRequest"


def test_macrolide_draft_without_id_gets_no_replacement():
    draft = med("clarithromycin", "draft")
    draft.resource.pop("id")  # type: ignore[attr-defined]
    card = only_card("order-sign", med("tacrolimus", "active", daily_mg=2), draft)
    assert all(a.type != "delete" for s in card.suggestions for a in s.actions)


def test_azithromycin_is_info_and_still_monitored():
    card = only_card("order-sign", med("tacrolimus", "active", daily_mg=2), med("azithromycin", "draft"))
    assert card.indicator == "info"
    assert "still check troughs" in card.summary
    assert card.suggestions[0].actions[0].resource["code"]["coding"][0]["code"] == "77348-1"


# --- mycophenolate and cyclosporine: critical, remove the draft --------------------------------

@pytest.mark.parametrize("drug", ["mycophenolate_mofetil", "mycophenolic_acid", "cyclosporine"])
def test_never_together_drafts_are_critical_with_a_removal(drug):
    card = only_card("order-sign", med("tacrolimus", "active", daily_mg=2), med(drug, "draft", rid="x9"))
    assert card.indicator == "critical"
    [removal] = card.suggestions
    assert removal.label.startswith("Remove the") and removal.is_recommended
    assert [(a.type, a.resource_id) for a in removal.actions] == [("delete", "MedicationRequest/x9")]


def test_mycophenolate_says_contraindicated_in_pregnancy_with_washout():
    card = only_card("order-select", med("tacrolimus", "active"), med("mycophenolate_mofetil", "selected"))
    assert "contraindicated in pregnancy" in card.summary
    assert "6 weeks after stopping" in card.detail


def test_active_mycophenolate_when_tacrolimus_is_ordered_says_stop_it():
    card = only_card("order-select", med("tacrolimus", "selected"), med("mycophenolate_mofetil", "active"))
    assert card.indicator == "critical" and card.suggestions == ()
    assert "is an active order: stop it" in card.detail


def test_cyclosporine_names_the_24_hour_gap():
    card = only_card("order-sign", med("tacrolimus", "draft"), med("cyclosporine", "active"))
    assert "24 h" in card.summary and "24 hours" in card.detail


# --- other classes: what they order --------------------------------------------------------------

@pytest.mark.parametrize("drug, loincs", [
    ("rifampin", ["77348-1"]),
    ("ritonavir", ["77348-1"]),
    ("ibuprofen", ["2160-0"]),
    ("spironolactone", ["2823-3"]),
    ("trimethoprim", ["2823-3", "2160-0"]),
], ids=["inducer-troughs", "inhibitor-troughs", "nephrotoxic-creatinine", "potassium-raiser-potassium",
        "trimethoprim-potassium-and-creatinine"])
def test_monitoring_orders_per_class(drug, loincs):
    card = only_card("order-sign", med("tacrolimus", "active", daily_mg=2), med(drug, "draft"))
    [monitor] = card.suggestions
    assert [a.resource["code"]["coding"][0]["code"] for a in monitor.actions] == loincs
    for action in monitor.actions:
        fhir_valid(dict(action.resource))


# --- immediate- vs extended-release -------------------------------------------------------------

@pytest.mark.parametrize("hook, first, second, expected", [
    ("order-sign", ("active", "immediate"), ("draft", "extended"), True),
    ("order-select", ("active", "extended"), ("selected", "immediate"), True),
    ("patient-view", ("active", "immediate"), ("active", "extended"), True),
    ("order-sign", ("active", "immediate"), ("draft", "immediate"), False),
    ("order-sign", ("active", "immediate"), ("draft", None), False),
    ("order-sign", ("active", "immediate"), ("active", "extended"), False),
], ids=["sign-switch-to-extended", "select-switch-to-immediate", "view-both-formulations-active",
        "sign-same-formulation", "sign-formulation-unknown", "sign-nothing-new"])
def test_release_switch(hook, first, second, expected):
    cards = cards_for(hook, med("tacrolimus", first[0], rid="t1", release=first[1]),
                      med("tacrolimus", second[0], rid="t2", release=second[1]))
    assert [c.kind for c in cards] == (["interaction:tacrolimus-release-switch"] if expected else [])
    if expected:
        card = cards[0]
        assert card.indicator == "warning" and "not interchangeable" in card.summary
        assert "immediate-release" in card.detail and "extended-release" in card.detail


# --- consolidation, recognition, validity --------------------------------------------------------

def test_same_drug_in_several_orders_gives_one_card():
    cards = cards_for("order-sign", med("tacrolimus", "active", daily_mg=2),
                      med("fluconazole", "draft", rid="f1"), med("fluconazole", "draft", rid="f2"),
                      med("fluconazole", "active", rid="f3"))
    [card] = cards
    assert all(f"MedicationRequest/{f}" in card.detail for f in ("f1", "f2", "f3"))


def test_one_card_per_interacting_drug():
    cards = cards_for("order-sign", med("tacrolimus", "active", daily_mg=2), med("fluconazole", "draft"),
                      med("clarithromycin", "draft"), med("ibuprofen", "draft"), med("naproxen", "active"))
    # naproxen and tacrolimus are both already active: not new on order-sign (patient-view shows it)
    assert [c.kind for c in cards] == ["interaction:fluconazole", "interaction:clarithromycin",
                                       "interaction:ibuprofen"]


def test_text_only_recognition_is_said():
    card = only_card("order-sign", med("tacrolimus", "active", daily_mg=2),
                     med("fluconazole", "draft", recognised_by="text"))
    assert 'recognised only by the text "fluconazole", not by a code' in card.detail


def test_code_recognition_is_named():
    card = only_card("order-sign", med("tacrolimus", "active", daily_mg=2), med("fluconazole", "draft"))
    assert "recognised by RxNorm ingredient code (RxNorm 0000)" in card.detail


@pytest.mark.parametrize("hook", ["order-select", "order-sign", "patient-view"])
def test_every_suggested_resource_is_valid_fhir(hook):
    state = {"order-select": "selected", "order-sign": "draft", "patient-view": "active"}[hook]
    drugs = [c[0] for c in CLASS_EXAMPLES]
    meds = [med("tacrolimus", "active", rid="t0", daily_mg=3),
            med("tacrolimus", state, rid="t1", daily_mg=2, release="extended")]
    meds += [med(d, state, rid=f"x{i}") for i, d in enumerate(drugs)]
    cards = cards_for(hook, *meds)
    assert len(cards) == len(drugs) + 1
    for card in cards:
        for suggestion in card.suggestions:
            assert suggestion.actions
            for action in suggestion.actions:
                assert action.description
                if action.type == "delete":
                    assert action.resource_id and action.resource_id.startswith("MedicationRequest/")
                else:
                    fhir_valid(dict(action.resource))


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
            state = "draft"
            others = [] if drug == "tacrolimus" else [med(drug, state)]
            tacs = ([med("tacrolimus", "active", rid="a", release="immediate"),
                     med("tacrolimus", "draft", rid="b", release="extended")]
                    if drug == "tacrolimus" else [med("tacrolimus", "active")])
            for card in cards_for("order-sign", *tacs, *others):
                assert len(card.summary) < 140 and "{" not in card.summary + card.detail, card.summary


def test_site_file_changes_the_numbers_without_code(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text("interactions:\n  dose_rounding: {step_mg: 0.25, source: 'site: 0.25 mg steps'}\n"
                    "  default_checks: {count: 5, source: 'site'}\n", encoding="utf-8")
    kb = load_knowledge(site)
    card = evaluate_interactions(facts("order-sign", med("tacrolimus", "draft", daily_mg=3),
                                       med("fluconazole", "draft")), TODAY, kb)[0]
    assert [dose_value(u.resource) for u in updates(card)] == [1.5, 0.75]
    assert card.suggestions[-1].actions[0].resource["occurrenceTiming"]["repeat"]["count"] == 5


# --- from FHIR: orders named in text reach their interaction card --------------------------------
# The whole path a request takes (service.extract.build_facts, then cards.evaluate.evaluate): an
# active tacrolimus order (RxNorm 42316) and an active order known only by its text, on patient-view.

def _fhir_order(rid: str, medication: dict[str, Any], status: str = "active") -> dict[str, Any]:
    return {"resourceType": "MedicationRequest", "id": rid, "status": status, "intent": "order",
            "subject": {"reference": "Patient/p1"}, "authoredOn": "2026-10-01",
            "medicationCodeableConcept": medication}


def _cards_from_fhir(hook: str, active: list[dict[str, Any]], drafts: list[dict[str, Any]] = ()) -> list[Card]:
    from cards.evaluate import evaluate
    from service.extract import build_facts
    from service.validation import HookRequest

    context: dict[str, Any] = {"patientId": "p1", "userId": "Practitioner/u1"}
    if hook == "order-sign":
        context["draftOrders"] = {"resourceType": "Bundle", "entry": [{"resource": r} for r in drafts]}
    request = HookRequest(hook=hook, hook_instance="00000000-0000-4000-8000-000000000000", context=context)
    return evaluate(build_facts(request, {"medications": active}, KB), TODAY, KB)


TACROLIMUS_ACTIVE = _fhir_order("tac", {"coding": [{"system": RXNORM, "code": "42316", "display": "tacrolimus"}]})

FROM_TEXT = [  # (id, the other active order's text, the interaction card expected, words in its summary)
    ("lisinopril-ace-inhibitor", "lisinopril 10 mg tablet", "interaction:ace_inhibitor", "An ACE inhibitor"),
    ("losartan-arb", "losartan 50 mg tablet", "interaction:angiotensin_receptor_blocker",
     "An angiotensin receptor blocker (ARB)"),
    ("gentamicin-aminoglycoside", "gentamicin 80 mg injection", "interaction:aminoglycoside",
     "An aminoglycoside adds to tacrolimus nephrotoxicity"),
    ("diclofenac-nsaid", "diclofenac 50 mg tablet", "interaction:other_nsaid",
     "An NSAID adds to tacrolimus nephrotoxicity"),
    ("eplerenone-potassium-sparing", "eplerenone 25 mg tablet", "interaction:eplerenone", "Eplerenone and tacrolimus"),
    ("darunavir-protease-inhibitor", "darunavir 800 mg tablet", "interaction:other_protease_inhibitor",
     "An HIV/HCV protease inhibitor raises tacrolimus levels"),
    ("lopinavir-ritonavir-both", "lopinavir/ritonavir 200/50 mg tablet", "interaction:other_protease_inhibitor",
     "An HIV/HCV protease inhibitor"),
]


@pytest.mark.parametrize("text, kind, summary", [f[1:] for f in FROM_TEXT], ids=[f[0] for f in FROM_TEXT])
def test_patient_view_text_order_with_active_tacrolimus_gives_its_card(text, kind, summary):
    cards = _cards_from_fhir("patient-view", [TACROLIMUS_ACTIVE, _fhir_order("other", {"text": text})])
    [card] = [c for c in cards if c.kind == kind]
    assert card.indicator == "warning"
    assert card.summary.startswith(summary), card.summary
    assert "{" not in card.summary + card.detail
    assert "MedicationRequest/tac" in card.detail and "MedicationRequest/other" in card.detail
    assert "recognised only by the text" in card.detail  # a clinician sees it was not coded


def test_switch_to_extended_release_named_by_brand_gives_the_release_switch_card():
    """Active immediate-release (RxNorm product 198377) and a draft known only as "Envarsus XR"."""
    active = _fhir_order("tac-ir", {"coding": [{"system": RXNORM, "code": "198377"}]})
    draft = _fhir_order("tac-xr", {"text": "Envarsus XR 4 mg tablet"}, status="draft")
    cards = _cards_from_fhir("order-sign", [active], [draft])
    assert "interaction:tacrolimus-release-switch" in [c.kind for c in cards]
