"""The render step for suggested orders: the FHIR resource of each proposal a card's action makes.

The rules decide what to order (``cards.model`` proposals); this module alone writes the resources, so
the clinical layer never builds or reads FHIR.
"""

from __future__ import annotations

from typing import Any

from cards.model import MedicationProposal, Proposal, ServiceRequestProposal

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


def resource_of(proposal: Proposal) -> dict[str, Any]:
    """The FHIR resource a create or update action carries."""
    if isinstance(proposal, ServiceRequestProposal):
        return service_request(proposal)
    if isinstance(proposal, MedicationProposal):
        return medication_request(proposal)
    return dict(proposal)


def reference_of(proposal: Proposal) -> str | None:
    """ "MedicationRequest/<id>" of the resource an action writes: an order updated in place; None for a new one."""
    if isinstance(proposal, (ServiceRequestProposal, MedicationProposal)):
        return None
    rid = proposal.get("id")
    return f"{proposal.get('resourceType')}/{rid}" if rid else None
