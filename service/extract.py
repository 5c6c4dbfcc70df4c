"""FHIR JSON to facts (``cards.facts``). (First version: context only; the data-layer issue adds
observations, conditions, medications and the transfer plan.)"""

from __future__ import annotations

from typing import Any, Mapping

from cards.facts import PatientFacts

from .validation import HookRequest


def build_facts(request: HookRequest, data: Mapping[str, list[dict[str, Any]]],
                knowledge: Mapping[str, Any]) -> PatientFacts:
    return PatientFacts(hook=request.hook, patient_id=request.patient_id,
                        user_id=request.context.get("userId"),
                        encounter_id=request.context.get("encounterId"),
                        selections=request.selections)
