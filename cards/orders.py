"""FHIR resources the cards suggest: new lab orders and a changed medication order.

Pure functions: they build resource dicts for suggestion actions and never change their input.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

from .facts import MedicationFact

LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
MG_UCUM = {"system": "http://unitsofmeasure.org", "code": "mg", "unit": "mg"}
from .dosage import COUNT_UNITS


def lab_order(patient_id: str, code: str, display: str, reason: str, *,
              system: str = LOINC) -> dict[str, Any]:
    """A draft ServiceRequest for one lab test (LOINC unless ``system`` says otherwise)."""
    return {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "proposal",
        "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "108252007",
                                  "display": "Laboratory procedure"}]}],
        "code": {"coding": [{"system": system, "code": code, "display": display}], "text": display},
        "subject": {"reference": f"Patient/{patient_id}"},
        "reasonCode": [{"text": reason}],
    }


# MedicationRequest elements that FHIR R4 defines as arrays; real clients send some as single objects.
_ARRAY_ELEMENTS = ("identifier", "category", "dosageInstruction", "reasonCode", "reasonReference", "note",
                   "basedOn", "insurance", "supportingInformation", "detectedIssue", "eventHistory")
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


def with_daily_dose(med: MedicationFact, daily_mg: float) -> dict[str, Any] | None:
    """The whole MedicationRequest with only its dose changed to ``daily_mg`` per day.

    None when the order's dose cannot be rewritten safely: not exactly one dose quantity, doses per
    day unknown, or a count unit whose strength is unknown or would need a fraction of a capsule.
    """
    if med.doses_per_day is None or med.doses_per_day <= 0 or not med.resource:
        return None
    resource = _as_valid_arrays(copy.deepcopy(dict(med.resource)))
    quantities = _dose_quantities(resource)
    if len(quantities) != 1:
        return None
    quantity = quantities[0]
    per_dose_mg = daily_mg / med.doses_per_day
    unit = str(quantity.get("code") or quantity.get("unit") or "").strip()
    if unit.lower() == "mg":
        quantity["value"] = _tidy(per_dose_mg)
        return resource
    if unit in COUNT_UNITS and med.strength_mg:
        count = per_dose_mg / med.strength_mg
        if abs(count - round(count)) > 1e-9 or round(count) < 1:
            return None
        quantity["value"] = int(round(count))
        return resource
    return None


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
