"""Builders for rule tests: readable patient facts around a fixed today (2026-11-25)."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

from cards.facts import (
    RIF,
    BloodPressure,
    ConditionFact,
    Measurement,
    MedicationFact,
    PatientFacts,
    PregnancyStatus,
    TransferPlan,
)
from cards.knowledge import load_knowledge
from cards.model import Action, Card, Proposal
from cards.text import DETAIL_MAX
from service.hooks.extract.medications import order_shape
from service.hooks.orders import resource_of as render_resource

TODAY = date(2026, 11, 25)
REQUEST_STATUS = {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"}
KB = load_knowledge()

UNITS = {
    "th1_th2_ratio": "{ratio}",
    "th1_pct": "%",
    "th2_pct": "%",
    "tacrolimus": "ng/mL",
    "creatinine": "mg/dL",
    "glucose": "mg/dL",
    "hba1c": "%",
    "potassium": "mmol/L",
    "alt": "U/L",
    "ast": "U/L",
    "bilirubin": "mg/dL",
    "cbc_panel": None,
    "hemoglobin": "g/dL",
    "wbc": "10*3/uL",
    "platelets": "10*3/uL",
    "nk_cells": "/uL",
}


def when(days_ago: float, hour: int = 8) -> datetime:
    """A time ``days_ago`` days before TODAY (fractions allowed: 0.5 = 12 h earlier)."""
    base = datetime.combine(TODAY, time(hour), tzinfo=UTC)
    return base - timedelta(days=days_ago)


def day(days_from_today: int) -> date:
    return TODAY + timedelta(days=days_from_today)


_counter = iter(range(1, 10_000))


def lab(
    concept: str,
    value: float | None,
    days_ago: float = 3,
    *,
    status: str = "final",
    unit: str | None = "default",
    **extra: Any,
) -> Measurement:
    """One result of ``concept`` in its canonical unit unless ``unit`` says otherwise."""
    u = UNITS.get(concept) if unit == "default" else unit
    shown = extra.pop("shown", f"{value} {u}" if value is not None else "no value")
    return Measurement(
        concept=concept,
        source=f"Observation/{concept}-{next(_counter)}",
        code="x|y",
        status=status,
        when=when(days_ago) if days_ago is not None else None,
        value=value,
        unit=u,
        shown=shown,
        **extra,
    )


def bp(systolic: float, diastolic: float, days_ago: float = 1, status: str = "final") -> BloodPressure:
    return BloodPressure(
        source=f"Observation/bp-{next(_counter)}",
        status=status,
        when=when(days_ago),
        systolic=systolic,
        diastolic=diastolic,
    )


def medication_request(
    per_dose: float | None,
    unit: str = "mg",
    frequency: int = 1,
    start: date | None = None,
    end: date | None = None,
    rid: str = "tac-draft",
) -> dict[str, Any]:
    """A realistic draft MedicationRequest for tacrolimus 1 mg capsules."""
    dosage: dict[str, Any] = {
        "text": "tacrolimus by mouth",
        "timing": {"repeat": {"frequency": frequency, "period": 1, "periodUnit": "d"}},
    }
    if per_dose is not None:
        dosage["doseAndRate"] = [
            {"doseQuantity": {"value": per_dose, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}}
        ]
    if start is not None:
        dosage["timing"]["repeat"]["boundsPeriod"] = {
            "start": start.isoformat(),
            **({"end": end.isoformat()} if end else {}),
        }
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [
                {
                    "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                    "code": "198377",
                    "display": "tacrolimus 1 MG Oral Capsule",
                }
            ],
            "text": "tacrolimus 1 MG Oral Capsule",
        },
        "subject": {"reference": "Patient/p1"},
        "authoredOn": "2026-11-25",
        "dosageInstruction": [dosage],
    }


def draft(
    daily_mg: float | None = 2,
    *,
    frequency: int = 1,
    start: date | None = None,
    end: date | None = None,
    selected: bool = True,
    unit: str = "mg",
    rid: str = "tac-draft",
    dose_problem: str | None = None,
    no_dosage: bool = False,
    release: str = "immediate",
    route: str | None = None,
    prior: str | None = None,
    strength: float = 1,
    product: str = "tacrolimus 1 MG Oral Capsule",
    sig: str | None = None,
) -> MedicationFact:
    """A tacrolimus draft order; ``daily_mg`` None with ``no_dosage`` = nothing entered yet."""
    per_dose = None if daily_mg is None else daily_mg / frequency
    resource = medication_request(per_dose, unit, frequency, start, end, rid)
    resource["medicationCodeableConcept"]["text"] = product
    if sig is not None:
        resource["dosageInstruction"][0]["text"] = sig
        resource["dosageInstruction"][0]["patientInstruction"] = sig
    if no_dosage:
        resource.pop("dosageInstruction")
    return MedicationFact(
        source=f"MedicationRequest/{rid}",
        resource_type="MedicationRequest",
        status="draft",
        display=product,
        ingredients=("tacrolimus",),
        recognised_by="rxnorm-product",
        matched=f"RxNorm {product}",
        strength_mg=strength,
        release=release,  # type: ignore[arg-type]
        route=route,
        prior_prescription=prior,  # type: ignore[arg-type]
        daily_dose_mg=daily_mg,
        dose_problem=dose_problem,
        doses_per_day=None if no_dosage else frequency,
        start=start or (TODAY if not no_dosage else None),
        start_from="boundsPeriod" if start else "authoredOn",
        end=end,
        duration_days=((end - start).days + 1) if start and end else None,
        is_draft=True,
        is_selected=selected,
        **order_fields(resource),
    )


def on_tacrolimus(
    started_days_ago: int = 30,
    daily_mg: float = 2,
    release: str = "immediate",
    rid: str = "tac-active",
    start_from: str = "boundsPeriod",
    route: str | None = None,
    product: str = "tacrolimus 1 MG Oral Capsule",
) -> MedicationFact:
    start = day(-started_days_ago)
    active = medication_request(daily_mg, start=start, rid=rid) | {"status": "active"}
    return MedicationFact(
        source=f"MedicationRequest/{rid}",
        resource_type="MedicationRequest",
        status="active",
        display=product,
        ingredients=("tacrolimus",),
        recognised_by="rxnorm-product",
        matched=f"RxNorm {product}",
        strength_mg=1,
        release=release,  # type: ignore[arg-type]
        route=route,  # type: ignore[arg-type]
        daily_dose_mg=daily_mg,
        doses_per_day=1,
        start=start,
        start_from=start_from,  # type: ignore[arg-type]
        **order_fields(active),
    )


def transfer(days_from_today: int, euploid: bool = False) -> TransferPlan:
    return TransferPlan(source="ServiceRequest/et1", status="active", when=when(-days_from_today), euploid=euploid)


def condition(concept: str, display: str = "", code: str = "x|y") -> ConditionFact:
    return ConditionFact(
        concept=concept,
        source=f"Condition/{concept}-{next(_counter)}",
        code=code,
        display=display or concept.replace("_", " "),
    )


def pregnancy(
    pregnant: bool | None,
    days_ago: int = 30,
    *,
    since_days_ago: int | None = None,
    weeks: int | None = None,
    evidence: str = "serum hCG",
) -> PregnancyStatus:
    """Pregnancy status known from a test ``days_ago`` days ago."""
    return PregnancyStatus(
        pregnant=pregnant,
        evidence=evidence,
        source="Observation/hcg",
        when=when(days_ago),
        since=day(-(since_days_ago if since_days_ago is not None else days_ago)) if pregnant else None,
        gestational_age_days=weeks * 7 if weeks is not None else None,
    )


def make_facts(
    hook: str = "order-select",
    *,
    labs: Iterable[Measurement] = (),
    meds: Iterable[MedicationFact] = (),
    rif: bool = True,
    conditions: Iterable[ConditionFact] = (),
    transfers: Iterable[TransferPlan] = (),
    pregnant: bool | None = None,
    pressures: Iterable[BloodPressure] = (),
    sex: str | None = "female",
    birth_date: date | None = None,
    pregnancy_status: PregnancyStatus | None = None,
) -> PatientFacts:
    """Patient facts; labs are filed by concept, newest first, as extraction does."""
    by_concept: dict[str, list[Measurement]] = {}
    for m in labs:
        by_concept.setdefault(m.concept, []).append(m)
    ordered = {
        k: tuple(sorted(v, key=lambda m: m.when or datetime.min.replace(tzinfo=UTC), reverse=True))
        for k, v in by_concept.items()
    }
    conds = list(conditions)
    if rif:
        conds.append(
            ConditionFact(
                concept=RIF, source="Condition/rif", code="local|rif", display="Recurrent implantation failure"
            )
        )
    pregnancy = (
        PregnancyStatus(pregnant=pregnant, evidence="Condition 77386006", source="Condition/preg")
        if pregnant is not None
        else PregnancyStatus(pregnant=None, evidence="nothing on record")
    )
    if pregnancy_status is not None:
        pregnancy = pregnancy_status
    meds = tuple(meds)
    return PatientFacts(
        hook=hook,
        patient_id="p1",
        labs=ordered,
        conditions=tuple(conds),
        sex=sex,
        birth_date=birth_date,
        pregnancy=pregnancy,
        transfers=tuple(transfers),
        medications=meds,
        blood_pressure=tuple(sorted(pressures, key=lambda b: b.when or when(0), reverse=True)),
        selections=tuple(m.source for m in meds if m.is_selected),
    )


def only(cards: list[Card], kind: str) -> Card | None:
    """The one card of ``kind`` (asserting there is at most one)."""
    found = [c for c in cards if c.kind == kind]
    assert len(found) <= 1, f"{len(found)} cards of kind {kind}"
    return found[0] if found else None


def action_types(card: Card | None) -> list[list[str]]:
    return [[a.type for a in s.actions] for s in card.suggestions] if card else []


# Every order the builders made, by its fact's key: the table extraction returns beside the facts.
ORDERS: dict[str, dict[str, Any]] = {}


def order_fields(resource: dict[str, Any]) -> dict[str, Any]:
    """The MedicationFact fields extraction reads of the order itself, with a key naming it in ``ORDERS``."""
    key = f"{resource.get('resourceType')}/{resource.get('id') or '(no id)'}#{len(ORDERS) + 1}"
    ORDERS[key] = resource
    return {**order_shape(resource), "key": key}


def order_of(med: MedicationFact) -> dict[str, Any]:
    """The order a built fact was read from."""
    return ORDERS[med.key]


def resource_of(action: Action | Proposal, orders: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The FHIR resource an action (or a proposal) carries, written by the service's render step;
    ``orders`` the table extraction returned (default: the orders the builders made)."""
    proposal = action.resource if isinstance(action, Action) else action
    assert proposal is not None, action
    return render_resource(proposal, ORDERS if orders is None else orders)


def assert_valid_fhir(card: Card) -> None:
    """Every create/update resource of the card parses as FHIR R4 (R4B models)."""
    for suggestion in card.suggestions:
        for action in suggestion.actions:
            if action.resource is not None:
                resource = copy.deepcopy(resource_of(action))
                get_fhir_model_class(resource["resourceType"]).model_validate(resource)
                # fhir.resources does not check code values; the request status is the one we set.
                assert resource["status"] in REQUEST_STATUS


def assert_card_rules(card: Card) -> None:
    """CDS Hooks card rules, and the house rules for text a clinician reads in five seconds."""
    assert 0 < len(card.summary) < 140, card.summary
    assert len(card.detail) <= DETAIL_MAX, (len(card.detail), card.detail)
    text = card.summary + card.detail
    for technical in (
        "MedicationRequest/",
        "Observation/",
        "Condition/",
        ".yaml",
        "`",
        "{ratio}",
        "LOINC",
        "docs/",
        "mm[Hg]",
        "umol",
    ):
        assert technical not in text, (technical, text)
    assert card.detail.count("Source:") <= 1
    assert card.verdict
    assert card.indicator in {"info", "warning", "critical"}
    assert card.source_label
    assert card.override_reasons and all(c.display for c in card.override_reasons)
    assert card.detail
    assert_valid_fhir(card)
