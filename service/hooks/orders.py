"""The render step for suggested orders: the FHIR resource of each proposal a card's action makes.

The rules decide what to order (``cards.model`` proposals); this module alone writes the resources, so
the clinical layer never builds or reads FHIR.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from cards.model import MedicationProposal, OrderChange, Proposal, ServiceRequestProposal

# Each order of the call by its key (``MedicationFact.key``), as extraction read it.
Orders = Mapping[str, Mapping[str, Any]]

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
LAB_CATEGORY = {"system": SNOMED, "code": "108252007", "display": "Laboratory procedure"}
PROCEDURE_CATEGORY = {"system": SNOMED, "code": "103693007", "display": "Diagnostic procedure"}


def _tidy(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 3)


def service_request(proposal: ServiceRequestProposal) -> dict[str, Any]:
    """A draft ServiceRequest (intent proposal) for one lab test or diagnostic procedure."""
    category = PROCEDURE_CATEGORY if proposal.procedure else LAB_CATEGORY
    order: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "proposal",
        "category": [{"coding": [dict(category)]}],
        "code": {
            "coding": [{"system": proposal.system, "code": proposal.code, "display": proposal.display}],
            "text": proposal.display,
        },
        "subject": {"reference": f"Patient/{proposal.patient_id}"},
        "reasonCode": [{"text": proposal.reason}],
    }
    if proposal.priority:
        order["priority"] = proposal.priority
    if proposal.repeat_count is not None and proposal.every_days is not None:
        low, high = proposal.every_days
        repeat: dict[str, Any] = {
            "count": proposal.repeat_count,
            "frequency": 1,
            "period": _tidy(low),
            "periodUnit": "d",
        }
        if high != low:
            repeat["periodMax"] = _tidy(high)
        order["occurrenceTiming"] = {"repeat": repeat}
    return order


def medication_request(proposal: MedicationProposal) -> dict[str, Any]:
    """A draft MedicationRequest naming only the drug, for the prescriber to complete."""
    return {
        "resourceType": "MedicationRequest",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": proposal.rxnorm, "display": proposal.display}],
            "text": proposal.display,
        },
        "subject": {"reference": f"Patient/{proposal.patient_id}"},
    }


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


# Values a copy of a JSON order may share with the original: nothing can change them in place.
_IMMUTABLE = frozenset({str, int, float, bool, type(None)})


def _copy(value: Any) -> Any:
    """A deep copy of JSON (dicts, lists, strings, numbers, true/false, null): each dict and list anew,
    the immutable values shared; anything else by ``copy.deepcopy``. A fraction of ``deepcopy``'s cost,
    which keeps a memo of every object for shapes JSON cannot make."""
    kind = type(value)
    if kind is dict:
        return {key: _copy(item) for key, item in value.items()}
    if kind is list:
        return [_copy(item) for item in value]
    if kind in _IMMUTABLE:
        return value
    return copy.deepcopy(value)


def changed_order(change: OrderChange, order: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``order`` with the change applied; everything else as the client sent it (array elements
    sent as single objects made arrays).

    The rules decided the change from facts read from this same order (``cards.orders.build_order``):
    it has dosage instructions as objects, one dose quantity when the dose changes, and timings that are
    objects."""
    resource = _as_valid_arrays({key: _copy(value) for key, value in order.items()})
    instructions = [i for i in _instructions(resource) if isinstance(i, dict)]
    if change.product is not None:
        resource["medicationCodeableConcept"] = {
            "coding": [
                {"system": change.product.system, "code": change.product.code, "display": change.product.display}
            ],
            "text": change.product.display,
        }
    if change.dose is not None:
        _dose_quantities(resource)[0]["value"] = change.dose
        for instruction, text in zip(instructions, change.sigs, strict=True):
            instruction["text"] = text
            if "patientInstruction" in instruction:
                instruction["patientInstruction"] = "Take " + text
    today = change.today.isoformat() if change.today is not None else None
    for instruction in instructions:
        repeat = instruction.setdefault("timing", {}).setdefault("repeat", {})
        bounds = repeat.get("boundsPeriod") if isinstance(repeat.get("boundsPeriod"), dict) else None
        if change.start is not None:
            repeat.pop("boundsDuration", None)
            repeat["boundsPeriod"] = {
                "start": change.start.isoformat(),
                **({"end": change.end.isoformat()} if change.end else {}),
            }
        elif bounds is not None and today is not None and str(bounds.get("start") or "9999")[:10] < today:
            bounds["start"] = today  # a suggested order never starts in the past
            if str(bounds.get("end") or "9999")[:10] < today:
                bounds.pop("end", None)
    if change.replaces is not None:
        for element in ("id", "meta", "identifier", "authoredOn", "text"):
            resource.pop(element, None)
        resource["status"] = "draft"
        resource["priorPrescription"] = {"reference": change.replaces}
    return resource


def resource_of(proposal: Proposal, orders: Orders) -> dict[str, Any]:
    """The FHIR resource a create or update action carries; ``orders`` holds the orders a change names."""
    if isinstance(proposal, ServiceRequestProposal):
        return service_request(proposal)
    if isinstance(proposal, MedicationProposal):
        return medication_request(proposal)
    return changed_order(proposal, orders[proposal.order])


def reference_of(proposal: Proposal) -> str | None:
    """ "MedicationRequest/<id>" of the resource an action writes: an order updated in place; None for a new one."""
    if isinstance(proposal, OrderChange) and proposal.replaces is None:
        return proposal.reference
    return None
