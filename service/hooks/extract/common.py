"""Lenient accessors over FHIR JSON, FHIR dates, and the descriptions the data-quality card uses.

Shared by every resource family of the extract stage. Parsing is lenient: objects where arrays are
due, missing fields, malformed statuses, as real clients send them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

UCUM = "http://unitsofmeasure.org"
BLOOD_PRESSURE = "blood_pressure"

IGNORED_OBSERVATION = frozenset({"entered-in-error", "cancelled"})
COUNTED_CLINICAL = frozenset({"active", "recurrence", "relapse"})
REJECTED_VERIFICATION = frozenset({"refuted", "entered-in-error"})
TRANSFER_REQUEST_STATUSES = frozenset({"draft", "active", "on-hold"})
TRANSFER_PROCEDURE_STATUSES = frozenset({"preparation", "in-progress"})
APPOINTMENT_EXCLUDED = frozenset({"cancelled", "noshow", "entered-in-error"})
MEDREQ_STATUSES = frozenset({"active", "on-hold"})
DRAFT_MEDREQ_STATUSES = frozenset({"draft", "active", "on-hold"})
MEDSTATEMENT_STATUSES = frozenset({"active"})
# Ended orders and statements are read too, kept apart from current ones (PatientFacts.ended_medications).
ENDED_MED_STATUSES = frozenset({"stopped", "completed"})

# Dates outside these years are data errors ("9999-12-31" as "no end"); rules add and subtract days
# from dates, so a date near datetime's limits (years 1 and 9999) could overflow there.
MIN_YEAR, MAX_YEAR = 1000, 9000


class _Unusable(Exception):
    """The resource cannot be used; the message is the reason reported to the card."""


# ---------------------------------------------------------------------------------------------------
# Lenient accessors


def _as_list(value: Any) -> list[Any]:
    """A FHIR array that may arrive as a single object (or be absent)."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]


def _obj(value: Any) -> dict[str, Any]:
    """A FHIR object, or an empty one when absent or of the wrong shape."""
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in _as_list(value) if isinstance(v, dict)]


def _codings(concepts: Any) -> list[dict[str, Any]]:
    """All codings of one CodeableConcept or a list of them."""
    out: list[dict[str, Any]] = []
    for cc in concepts if isinstance(concepts, list) else (concepts,):
        if not isinstance(cc, dict):
            continue
        codings = cc.get("coding")
        for c in codings if isinstance(codings, list) else (codings,):
            if not isinstance(c, dict):
                continue
            code = c.get("code")
            if isinstance(code, str) and code:
                # Only string fields are kept, so lookups never meet a list or an object.
                system, display = c.get("system"), c.get("display")
                kept = {"system": system, "code": code} if isinstance(system, str) else {"code": code}
                if isinstance(display, str):
                    kept["display"] = display
                out.append(kept)
    return out


def _texts(concepts: Any) -> list[str]:
    """The text and the codings' displays of one CodeableConcept or a list of them."""
    out: list[str] = []
    for cc in _dicts(concepts):
        if isinstance(cc.get("text"), str):
            out.append(cc["text"])
        out.extend(c["display"] for c in _dicts(cc.get("coding")) if isinstance(c.get("display"), str))
    return out


def _status_code(value: Any) -> str | None:
    """A status given as a CodeableConcept (R4) or, leniently, as a bare string."""
    if isinstance(value, str):
        return value
    for coding in _codings(value):
        return str(coding["code"])
    return None


def _status(res: Mapping[str, Any], default: str) -> str:
    """Resource.status when it is a string; otherwise the default (missing or malformed)."""
    status = res.get("status")
    return status if isinstance(status, str) and status else default


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _fmt(number: float) -> str:
    return f"{number:g}"


def _flatten(resources: list[Any], depth: int = 0) -> list[Any]:
    """Resources, with any Bundle that slipped through the resolver replaced by its entries."""
    out: list[Any] = []
    for r in resources:
        if isinstance(r, dict) and r.get("resourceType") == "Bundle" and depth < 3:
            out.extend(
                _flatten(
                    [e.get("resource") for e in _dicts(r.get("entry")) if isinstance(e.get("resource"), dict)],
                    depth + 1,
                )
            )
        else:
            out.append(r)
    return out


def _ref_of(resource: Mapping[str, Any]) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id') or '(no id)'}"


def _blank_medication(res: Mapping[str, Any]) -> bool:
    """No medication chosen yet: neither a reference nor a concept with a code or a text."""
    if "medicationReference" in res:
        return False
    mcc = res.get("medicationCodeableConcept")
    return (
        mcc is None
        or (isinstance(mcc, dict) and not mcc.get("coding") and not mcc.get("text"))
        or (isinstance(mcc, str) and not mcc.strip())
    )


def _describe(resource: Mapping[str, Any]) -> str:
    """What a record is, in words a clinician recognises (no ids): for the data-quality card."""
    kind = str(resource.get("resourceType") or "record")
    if kind in ("MedicationRequest", "MedicationStatement"):
        named = _texts(resource.get("medicationCodeableConcept")) or [
            str(_obj(resource.get("medicationReference")).get("display") or "")
        ]
        name = next((n for n in named if n.strip()), "")
        return f"the order for {name}" if name else "a medication order"
    names = _texts(resource.get("code"))
    name = names[0] if names else ""
    raw = resource.get("effectiveDateTime") or resource.get("issued") or resource.get("recordedDate")
    day = f" of {raw[:10]}" if isinstance(raw, str) and len(raw) >= 10 else ""
    if kind == "Observation":
        return f"the result {name}{day}" if name else f"a result{day}"
    if kind == "Condition":
        return f"the diagnosis {name}" if name else "a diagnosis"
    return f"a {kind} record{day}"


_PARTIAL_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


def parse_fhir_datetime(value: Any) -> datetime | None:
    """A FHIR date/dateTime/instant as an aware datetime; None when absent; ValueError when unparsable.

    Partial dates (``2026``, ``2026-11``, ``2026-11-20``) become the first instant of that period in UTC;
    a time without a zone (invalid FHIR, seen in practice) is taken as UTC. A year outside
    ``MIN_YEAR``..``MAX_YEAR`` is a ValueError too, so no later date arithmetic can overflow.
    """
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{value!r} is not a FHIR date")
    text = value.strip()
    partial = _PARTIAL_DATE.match(text) if len(text) <= 10 else None  # a partial date is at most 10 long
    try:
        if partial:
            year, month, day = partial.groups()
            parsed = datetime(int(year), int(month or 1), int(day or 1), tzinfo=UTC)
        else:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value!r} is not a FHIR date") from None
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:
        raise ValueError(f"{value!r} is outside the years {MIN_YEAR}-{MAX_YEAR} (a placeholder, not a date)")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _parse_date(value: Any) -> date | None:
    moment = parse_fhir_datetime(value)
    return moment.date() if moment else None
