"""Data the rules could not use, said once and readably: records received but unreadable, results no
patient can have, a selected order that could not be identified, and checks skipped for missing data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from ..facts import PatientFacts, UnusableResource
from ..knowledge_model import ProtocolTable
from ..model import Card
from ..text import plain
from ..vocab import (
    CBC,
    CHEMISTRY,
    CONDITIONS,
    ENDED_MEDICATION_REQUESTS,
    FAMILY_DATA_QUALITY,
    FAMILY_MISSING_DATA,
    IMMUNIZATIONS,
    IMMUNOLOGY,
    MEDICATION_REQUESTS,
    MEDICATION_STATEMENTS,
    MEDICATIONS,
    PATIENT,
    PREGNANCY_TESTS,
    TACROLIMUS_LEVELS,
    TRANSFER_APPOINTMENTS,
    TRANSFER_PROCEDURES,
    TRANSFER_REQUESTS,
    VITALS,
    card_kind,
)
from .common import Detail, make_card, protocol_of
from .focus import focus_of
from .vocab import TACROLIMUS

KIND = FAMILY_DATA_QUALITY
ORDER_KIND = card_kind(FAMILY_DATA_QUALITY, "order")
OTHER_PATIENT_KIND = card_kind(FAMILY_DATA_QUALITY, "other-patient")
MISSING_KIND = FAMILY_MISSING_DATA
SHOWN = 8  # records listed in the detail; the rest are counted
IMPLAUSIBLE = "not a plausible result"
IGNORED_UNDATED = frozenset({"entered-in-error", "cancelled"})

# Prefetch keys in words, for the missing-data card.
DATA_NAMES = {
    PATIENT: "the patient's sex and date of birth",
    IMMUNOLOGY: "Th1/Th2 and NK cell results",
    TACROLIMUS_LEVELS: "tacrolimus levels",
    CHEMISTRY: "kidney, potassium, glucose and liver results",
    CBC: "blood counts",
    VITALS: "blood pressure readings",
    PREGNANCY_TESTS: "pregnancy tests",
    CONDITIONS: "diagnoses",
    MEDICATION_REQUESTS: "medication orders",
    MEDICATION_STATEMENTS: "medications she reports taking",
    MEDICATIONS: "the medications that orders refer to",
    ENDED_MEDICATION_REQUESTS: "medication orders stopped or completed",
    IMMUNIZATIONS: "vaccines given",
    TRANSFER_REQUESTS: "embryo transfer requests",
    TRANSFER_PROCEDURES: "embryo transfer procedures",
    TRANSFER_APPOINTMENTS: "embryo transfer appointments",
}

# Results in words, for the list of implausible values.
CONCEPT_NAMES = {
    "th1_th2_ratio": "Th1/Th2 ratio",
    "th1_pct": "Th1 %",
    "th2_pct": "Th2 %",
    "tacrolimus": "Tacrolimus level",
    "hba1c": "HbA1c",
    "alt": "ALT",
    "ast": "AST",
    "hcg": "Serum hCG",
    "nk_cells": "NK cells",
    "wbc": "White cells",
}


def _what(item: UnusableResource) -> str:
    if item.what:
        return plain(item.what)
    kind = item.source.split("/", 1)[0]
    return {
        "Observation": "a result",
        "MedicationRequest": "a medication order",
        "MedicationStatement": "a medication she reports",
        "Condition": "a diagnosis",
    }.get(kind, "a record")


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def evaluate_data_quality(facts: PatientFacts, today: date, kb: Mapping[str, Any]) -> list[Card]:
    """A card for a draft order the hook is about that could not be identified; one info card listing
    the other records and implausible results that could not be used, when tacrolimus is in play."""
    cards: list[Card] = []
    proto = protocol_of(kb)
    orders = [u for u in facts.unusable if u.order_in_focus]
    if orders:
        detail = Detail(proto)
        for item in orders[:SHOWN]:
            detail.add(f"- {_sentence(_what(item))}: {plain(item.reason, 160)}")
        detail.add("")
        detail.add(
            "It was not checked against tacrolimus (interactions, dose, timing). Choose the medication "
            "again from the list, or check it by hand before signing."
        )
        noun = "The order" if len(orders) == 1 else f"{len(orders)} orders"
        cards.append(
            make_card(
                proto,
                detail,
                kind=ORDER_KIND,
                indicator="warning",
                source_id="data-profile",
                summary=f"{noun} could not be checked: medication not identified",
            )
        )
    if facts.other_patient_records:
        cards.append(_other_patient(proto, facts.other_patient_records))
    in_play = focus_of(facts).applies or bool(facts.medications_with(TACROLIMUS))
    others = [u for u in facts.unusable if not u.order_in_focus]
    # Results no rule can place in time (no effective time, no issued time): named, never silently dropped.
    implausible = [
        m
        for ms in facts.labs.values()
        for m in ms
        if m.problem and (IMPLAUSIBLE in m.problem or (m.when is None and m.status not in IGNORED_UNDATED))
    ]
    count = len(others) + len(implausible)
    if not count or not in_play:
        return cards
    detail = Detail(proto)
    lines = [
        f"- {CONCEPT_NAMES.get(m.concept) or _sentence(m.concept.replace('_', ' '))} of {m.when.date().isoformat() if m.when else 'unknown date'}: "
        f"{plain(m.problem or '', 160)}"
        for m in implausible
    ]
    lines += [f"- {_sentence(_what(u))}: {plain(u.reason, 160)}" for u in others]
    detail.add("No card relies on these records:")
    detail.add("")
    for line in lines[:SHOWN]:
        detail.add(line)
    if count > SHOWN:
        detail.add(f"- and {count - SHOWN} more")
    detail.add("")
    detail.add("Correct them in the record (value, unit, date or status) to have them considered.")
    summary = (
        "A record could not be used: see details" if count == 1 else f"{count} records could not be used: see details"
    )
    cards.append(make_card(proto, detail, kind=KIND, indicator="info", source_id="data-profile", summary=summary))
    return cards


def evaluate_missing_data(
    facts: PatientFacts,
    skipped: Sequence[tuple[str, Sequence[str]]],
    kb: Mapping[str, Any],
    *,
    partial: Sequence[tuple[str, Sequence[str]]] = (),
) -> list[Card]:
    """One card naming the checks that could not be made, and those made on part of their data, the
    data each lacked and why."""
    if not skipped and not partial:
        return []
    proto = protocol_of(kb)
    detail = Detail(proto)
    reasons: dict[str, str] = {}
    if skipped:
        detail.add("These checks were not made, so their absence of a card means nothing:")
        detail.add("")
        for check, keys in skipped:
            lacking = ", ".join(DATA_NAMES.get(k, k) for k in keys)
            detail.add(f"- {_sentence(check)}: no {lacking}")
            for key in keys:
                reasons.setdefault(key, facts.missing.get(key, "not available"))
        detail.add("")
    if partial:
        detail.add(
            "These checks were made on part of their data (the cards shown stand; a result that was not "
            "read may be missing from them):"
        )
        detail.add("")
        for check, keys in partial:
            detail.add(f"- {_sentence(check)}: part of the {', '.join(DATA_NAMES.get(k, k) for k in keys)}")
            for key in keys:
                reasons.setdefault(key, facts.incomplete.get(key, "partly available"))
        detail.add("")
    detail.add("Why the data were not available:")
    for key, reason in reasons.items():
        detail.add(f"- {_sentence(DATA_NAMES.get(key, key))}: {plain(reason, 200)}")
    detail.add("")
    detail.add(
        "Check these by hand now. To have them checked, the EHR must send this data with the request, "
        "or give the service access to its FHIR server."
    )
    names = [check for check, _ in skipped]
    if not names:
        partly = [check for check, _ in partial]
        summary = (
            f"Checked on part of the data ({', '.join(partly)}): the rest could not be read"
            if len(partly) <= 2
            else f"{len(partly)} checks made on part of the data: the rest could not be read"
        )
    elif len(names) <= 2:
        summary = f"Not checked ({', '.join(names)}): data not available"
    else:
        summary = f"{len(names)} checks not made: data not available"
    return [make_card(proto, detail, kind=MISSING_KIND, indicator="warning", source_id="data-profile", summary=summary)]


def _other_patient(proto: ProtocolTable, count: int) -> Card:
    """Records of another patient arrived with this one's: refused, and said, whatever else is in play."""
    detail = Detail(proto)
    noun = "record" if count == 1 else "records"
    detail.add(
        f"{count} {noun} sent with this request belong to another patient (their subject is not the patient "
        "of this chart). They were not used for any card."
    )
    detail.add("")
    detail.add(
        "The EHR's data for this request may be mixed up: check the results and orders shown here against "
        "the chart before acting, and report it to the EHR team."
    )
    return make_card(
        proto,
        detail,
        kind=OTHER_PATIENT_KIND,
        indicator="warning",
        source_id="data-profile",
        summary=f"{count} {noun} of another patient refused: check the chart before acting",
    )
