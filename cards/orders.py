"""FHIR resources the cards suggest: new lab orders and a changed medication order.

Pure functions: they build resource dicts for suggestion actions and never change their input.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

from .dosage import COUNT_UNITS
from .facts import MedicationFact
from .model import Action
from .rules.vocab import EPSILON

LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
MG_UCUM = {"system": "http://unitsofmeasure.org", "code": "mg", "unit": "mg"}


def lab_order(
    patient_id: str, code: str, display: str, reason: str, *, system: str = LOINC, priority: str | None = None
) -> dict[str, Any]:
    """A draft ServiceRequest for one lab test (LOINC unless ``system`` says otherwise)."""
    order: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "proposal",
        "category": [
            {"coding": [{"system": "http://snomed.info/sct", "code": "108252007", "display": "Laboratory procedure"}]}
        ],
        "code": {"coding": [{"system": system, "code": code, "display": display}], "text": display},
        "subject": {"reference": f"Patient/{patient_id}"},
        "reasonCode": [{"text": reason}],
    }
    if priority:
        order["priority"] = priority
    return order


def procedure_order(
    patient_id: str, system: str, code: str, display: str, reason: str, *, priority: str | None = None
) -> dict[str, Any]:
    """A draft ServiceRequest for a diagnostic procedure (e.g. an ECG)."""
    order = lab_order(patient_id, code, display, reason, system=system, priority=priority)
    order["category"] = [
        {"coding": [{"system": "http://snomed.info/sct", "code": "103693007", "display": "Diagnostic procedure"}]}
    ]
    return order


# MedicationRequest elements that FHIR R4 defines as arrays; real clients send some as single objects.
_ARRAY_ELEMENTS = (
    "identifier",
    "category",
    "dosageInstruction",
    "reasonCode",
    "reasonReference",
    "note",
    "basedOn",
    "insurance",
    "supportingInformation",
    "detectedIssue",
    "eventHistory",
)
_DOSAGE_ARRAY_ELEMENTS = ("doseAndRate", "additionalInstruction")


def _as_valid_arrays(resource: dict[str, Any]) -> dict[str, Any]:
    """Wrap array elements sent as single objects, so a suggested update is valid FHIR R4.

    The clinical content is unchanged; only the JSON shape a lenient reader accepted is repaired.
    """
    for name in _ARRAY_ELEMENTS:
        if isinstance(resource.get(name), dict):
            resource[name] = [resource[name]]
    for instruction in _instructions(resource):
        if isinstance(instruction, dict):
            for name in _DOSAGE_ARRAY_ELEMENTS:
                if isinstance(instruction.get(name), dict):
                    instruction[name] = [instruction[name]]
    return resource


def _instructions(resource: Mapping[str, Any]) -> list[Any]:
    """``dosageInstruction`` as a list; anything else a client sent there (a number, true) is none."""
    value = resource.get("dosageInstruction")
    return value if isinstance(value, list) else []


def _dose_quantities(resource: dict[str, Any]) -> list[dict[str, Any]]:
    """Every doseQuantity object of the order, tolerating doseAndRate as an object."""
    found: list[dict[str, Any]] = []
    for instruction in _instructions(resource):
        if not isinstance(instruction, dict):
            continue
        dose_and_rate = instruction.get("doseAndRate")
        items = dose_and_rate if isinstance(dose_and_rate, list) else [dose_and_rate]
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("doseQuantity"), dict):
                found.append(item["doseQuantity"])
    return found


STEP_MG = 0.5  # the smallest capsule: a per-dose amount is a whole number of these steps
_TIMES = {1: "once daily", 2: "twice daily", 3: "three times daily", 4: "four times daily"}


def per_dose_step_below(daily_mg: float, doses_per_day: float) -> float:
    """The largest per-dose amount in 0.5 mg steps giving at most ``daily_mg`` a day (0 when none)."""
    return math.floor(daily_mg / doses_per_day / STEP_MG + EPSILON) * STEP_MG


def sig_text(per_dose_mg: float, doses_per_day: float, count: int | None = None) -> str:
    """ "1.5 mg by mouth twice daily (3 mg/day)": the dose in words, to replace an order's old text."""
    n = int(round(doses_per_day))
    times = _TIMES.get(n, f"{fmt(doses_per_day)} times daily")
    amount = f"{fmt(per_dose_mg)} mg"
    if count is not None:
        amount = f"{count} capsule{'s' if count != 1 else ''} ({amount})"
    return f"{amount} by mouth {times} ({fmt(per_dose_mg * doses_per_day)} mg/day)"


def with_daily_dose(med: MedicationFact, daily_mg: float) -> dict[str, Any] | None:
    """The whole MedicationRequest with its dose changed to ``daily_mg`` per day and its sig text
    (``Dosage.text``, ``patientInstruction``) rewritten to the new dose, so the order never carries
    two different doses.

    None when the order's dose cannot be rewritten safely: not exactly one dose quantity, doses per
    day unknown, a per-dose amount that is not a whole number of 0.5 mg steps, or a count unit whose
    strength is unknown or would need a fraction of a capsule.
    """
    if med.doses_per_day is None or med.doses_per_day <= 0 or not med.resource:
        return None
    resource = _as_valid_arrays(copy.deepcopy(dict(med.resource)))
    quantities = _dose_quantities(resource)
    if len(quantities) != 1:
        return None
    quantity = quantities[0]
    per_dose_mg = daily_mg / med.doses_per_day
    steps = per_dose_mg / STEP_MG
    if abs(steps - round(steps)) > 1e-6 or round(steps) < 1:
        return None  # no such capsule: never suggest 0.25 mg or 0.33 mg
    unit = str(quantity.get("code") or quantity.get("unit") or "").strip()
    count: int | None = None
    if unit.lower() == "mg":
        quantity["value"] = _tidy(per_dose_mg)
    elif unit in COUNT_UNITS and med.strength_mg:
        exact = per_dose_mg / med.strength_mg
        if abs(exact - round(exact)) > 1e-6 or round(exact) < 1:
            return None
        count = int(round(exact))
        quantity["value"] = count
    else:
        return None
    text = sig_text(per_dose_mg, med.doses_per_day, count)
    for instruction in _instructions(resource):
        if isinstance(instruction, dict):
            instruction["text"] = text
            if "patientInstruction" in instruction:
                instruction["patientInstruction"] = "Take " + text
    return resource


def dose_change(med: MedicationFact, daily_mg: float, description: str) -> Action | None:
    """The action that changes a tacrolimus order to ``daily_mg`` a day.

    A draft is updated. An active order is not: many EHRs accept updates only to drafts, so a new
    draft replacing it is created (``priorPrescription`` = the active order). None when the dose
    cannot be written (see ``with_daily_dose``).
    """
    resource = with_daily_dose(med, daily_mg)
    if resource is None:
        return None
    if med.is_draft or med.status == "draft":
        return Action(type="update", description=description, resource=resource)
    new = {k: v for k, v in resource.items() if k not in {"id", "meta", "authoredOn", "identifier"}}
    new["status"] = "draft"
    new["priorPrescription"] = {"reference": med.source}
    return Action(type="create", description=f"{description} (new order replacing the active one)", resource=new)


def replacement(create: Action, delete_id: str, description: str) -> tuple[Action, Action]:
    """Replace one order by another: the ``create`` first, then the ``delete`` (a client that stops
    at the first delete still gets the new order)."""
    return create, Action(type="delete", description=description, resource_id=delete_id)


def fmt(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _tidy(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 3)


def with_timing(med: MedicationFact, start: str, end: str | None) -> dict[str, Any] | None:
    """The whole MedicationRequest with only ``timing.repeat.boundsPeriod`` changed."""
    if not med.resource:
        return None
    resource = _as_valid_arrays(copy.deepcopy(dict(med.resource)))
    instructions = resource.get("dosageInstruction")
    if not isinstance(instructions, list) or not instructions or not isinstance(instructions[0], dict):
        return None
    for instruction in instructions:
        if not isinstance(instruction, dict):
            return None
        timing = instruction.setdefault("timing", {})
        repeat = timing.setdefault("repeat", {}) if isinstance(timing, dict) else None
        if not isinstance(repeat, dict):
            return None
        repeat.pop("boundsDuration", None)
        repeat["boundsPeriod"] = {"start": start, **({"end": end} if end else {})}
    return resource


def reference_of(resource: Mapping[str, Any]) -> str | None:
    rid = resource.get("id")
    return f"{resource.get('resourceType')}/{rid}" if rid else None


def with_repeat(order: Mapping[str, Any], every_days: tuple[float, float], count: int) -> dict[str, Any]:
    """A copy of a lab order repeated ``count`` times, one draw every ``every_days`` (min, max) days."""
    repeated = copy.deepcopy(dict(order))
    low, high = every_days
    repeat: dict[str, Any] = {"count": count, "frequency": 1, "period": _tidy(low), "periodUnit": "d"}
    if high != low:
        repeat["periodMax"] = _tidy(high)
    repeated["occurrenceTiming"] = {"repeat": repeat}
    return repeated


def draft_medication_request(patient_id: str, rxnorm: str, display: str) -> dict[str, Any]:
    """A draft MedicationRequest naming only the drug (RxNorm), for the prescriber to complete."""
    return {
        "resourceType": "MedicationRequest",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": rxnorm, "display": display}],
            "text": display,
        },
        "subject": {"reference": f"Patient/{patient_id}"},
    }
