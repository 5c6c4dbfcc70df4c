"""Records received but not usable: listed once, so nothing is dropped without the clinician knowing."""

from __future__ import annotations

from datetime import date
from typing import Any, Mapping

from ..facts import PatientFacts
from ..model import Card
from .common import Detail, Protocol, make_card
from .focus import focus_of
from .vocab import TACROLIMUS

KIND = "data-quality"
SHOWN = 10  # records listed in the detail; the rest are counted


def evaluate_data_quality(facts: PatientFacts, today: date, kb: Mapping[str, Any]) -> list[Card]:
    """One info card listing the records that could not be read, when the protocol applies at all."""
    if not facts.unusable or not (focus_of(facts).applies or facts.medications_with(TACROLIMUS)):
        return []
    proto = Protocol(kb)
    detail = Detail(proto)
    count = len(facts.unusable)
    detail.add("These records were received but could not be used, so no card relies on them:")
    detail.add("")
    for item in facts.unusable[:SHOWN]:
        detail.add(f"- {item.source}: {item.reason}")
    if count > SHOWN:
        detail.add(f"- … and {count - SHOWN} more")
    detail.add("")
    detail.add("Correct them in the record (code, unit, date, status) to have them considered.")
    noun = "record" if count == 1 else "records"
    return [make_card(proto, detail, kind=KIND, indicator="info", source_id="data-profile",
                      summary=f"{count} {noun} could not be read and were not used: see details")]
